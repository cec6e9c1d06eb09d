"""Advantage estimators for multi-turn trajectories, registered in `vagen.trainer.algos`.

Inputs shared by every estimator (`bs` trajectories, `L` tokens each):
- `token_rewards (bs, L)`: each turn's reward on its last policy token (rollout/tokens.py).
  Rewards are read only on loss-masked tokens; a nonzero reward elsewhere is an error,
  because it would be silently lost. Several rewards inside one turn add up to its reward.
- `loss_mask (bs, L)`: 1 on policy-generated tokens, 0 on prompt, env and padding tokens.
- `turn_ids (bs, L)` (long): the turn index 0, 1, ... of every policy token, non-decreasing
  along the sequence. Only loss-masked positions are read; by convention the rest carry -1
  (`turn_ids_from_loss_mask` derives them when each turn is one run of policy tokens).
- `values (bs, L)`: critic values per token (GAE estimators).
- `group_ids (bs,)`: which trajectories share a prompt (tensor, numpy array of verl uids, or
  list of hashables).
Outputs `(advantages, returns)`, each `(bs, L)` and zero outside the loss mask.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from vagen.trainer.algos import register_advantage_estimator

GroupIds = torch.Tensor | np.ndarray | Sequence[Hashable]


@dataclass
class AdvantageConfig:
    """Hyper-parameters of every estimator; each reads the fields it needs."""

    gamma: float = field(default=1.0, metadata={"help": "token-level discount (masked_gae, "
                                                        "bi_level_gae inside a turn)"})
    lam: float = field(default=1.0, metadata={"help": "GAE lambda, at token and turn level"})
    high_level_gamma: float = field(default=0.95, metadata={
        "help": "turn-level discount (bi_level_gae, grpo_turn); Video-MTR's code uses 1.0"})
    norm_by_std: bool = field(default=True, metadata={
        "help": "grpo/grpo_turn: divide by the group std (False = Dr. GRPO, centre only)"})
    eps: float = field(default=1e-6, metadata={"help": "added to the group std"})
    whiten: bool = field(default=True, metadata={
        "help": "GAE estimators: whiten advantages over the batch's policy tokens, as verl"})

    def __post_init__(self) -> None:
        for key in ("gamma", "lam", "high_level_gamma"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"{key} is {getattr(self, key)}; set it within [0, 1]")
        if self.eps <= 0:
            raise ValueError(f"eps is {self.eps}; set it > 0 (e.g. 1e-6)")


@register_advantage_estimator("grpo")
@torch.no_grad()
def grpo(token_rewards: torch.Tensor, loss_mask: torch.Tensor, *,
         turn_ids: torch.Tensor | None = None, values: torch.Tensor | None = None,
         group_ids: GroupIds | None = None, config: AdvantageConfig) -> tuple[torch.Tensor, ...]:
    """Outcome GRPO: a trajectory's summed reward, normalised by the mean and (unbiased) std
    over its group; every policy token gets it. A group of one has nothing to compare with
    and gets advantage 0 (verl instead passes its raw score). Returns are the raw scores."""
    mask = _check(token_rewards, loss_mask)
    groups = _group_index(group_ids, len(token_rewards), token_rewards.device)
    scores = (token_rewards * mask).sum(-1)
    advantages = _group_normalise(scores, groups, torch.ones_like(scores, dtype=torch.bool),
                                  config)
    return advantages[:, None] * mask, scores[:, None] * mask


@register_advantage_estimator("grpo_turn")
@torch.no_grad()
def grpo_turn(token_rewards: torch.Tensor, loss_mask: torch.Tensor, *,
              turn_ids: torch.Tensor | None = None, values: torch.Tensor | None = None,
              group_ids: GroupIds | None = None,
              config: AdvantageConfig) -> tuple[torch.Tensor, ...]:
    """Per-turn GRPO: turn k's return `G_k = sum_{j>=k} high_level_gamma^(j-k) r_j` is
    normalised against the returns at the same turn position k of the other trajectories of
    its group (so a turn is compared with turns that had the same number of turns behind
    them, not with earlier turns whose returns sum more rewards). A position that only one
    trajectory of the group reached gets advantage 0. Every token of a turn gets its turn's
    advantage; returns are the raw `G_k` per token."""
    mask = _check(token_rewards, loss_mask, turn_ids=turn_ids)
    groups = _group_index(group_ids, len(token_rewards), token_rewards.device)
    turns = _TurnView(token_rewards, mask, turn_ids)
    exists = turns.exists.float()
    turn_returns = _gae_scan(turns.rewards, torch.zeros_like(turns.rewards), exists,
                             gamma=config.high_level_gamma, lam=1.0)
    num_turns = turns.rewards.shape[1]
    positions = torch.arange(num_turns, device=groups.device)
    keys = (groups[:, None] * num_turns + positions[None, :]).flatten()
    turn_adv = _group_normalise(turn_returns.flatten(), keys, turns.exists.flatten(), config)
    turn_adv = turn_adv.view_as(turn_returns)
    return turns.to_tokens(turn_adv), turns.to_tokens(turn_returns)


@register_advantage_estimator("masked_gae", needs_values=True)
@torch.no_grad()
def masked_gae(token_rewards: torch.Tensor, loss_mask: torch.Tensor, *,
               turn_ids: torch.Tensor | None = None, values: torch.Tensor | None = None,
               group_ids: GroupIds | None = None,
               config: AdvantageConfig) -> tuple[torch.Tensor, ...]:
    """Token-level GAE over the policy tokens of the whole trajectory: env and padding
    tokens are skipped, so the recursion bootstraps from the next *policy* token's value
    (verl's `gae` does the same). Returns = advantages + values (before whitening)."""
    mask = _check(token_rewards, loss_mask, values=values)
    advantages = _gae_scan(token_rewards * mask, values, mask, config.gamma, config.lam)
    returns = (advantages + values) * mask
    return _maybe_whiten(advantages, mask, config), returns


@register_advantage_estimator("bi_level_gae", needs_values=True)
@torch.no_grad()
def bi_level_gae(token_rewards: torch.Tensor, loss_mask: torch.Tensor, *,
                 turn_ids: torch.Tensor | None = None, values: torch.Tensor | None = None,
                 group_ids: GroupIds | None = None,
                 config: AdvantageConfig) -> tuple[torch.Tensor, ...]:
    """VAGEN's bi-level GAE. Turn level: GAE with `high_level_gamma` and `lam` over turn
    rewards, a turn's value being the value of its last token; its target is
    `A_turn + V_turn`. Token level: GAE with `gamma`, `lam` inside each turn, where the last
    token's reward is the turn's target and nothing is bootstrapped across turns. Unlike
    VAGEN, turns come from `turn_ids`, so a turn with zero reward is still a turn."""
    mask = _check(token_rewards, loss_mask, turn_ids=turn_ids, values=values)
    turns = _TurnView(token_rewards, mask, turn_ids)
    turn_values = values.gather(1, turns.last_pos.clamp(min=0)) * turns.exists
    turn_adv = _gae_scan(turns.rewards, turn_values, turns.exists.float(),
                         config.high_level_gamma, config.lam)
    targets = turns.to_tokens(turn_adv + turn_values)
    rewards = torch.where(turns.is_last, targets, torch.zeros_like(targets))
    advantages = _gae_scan(rewards, values, mask, config.gamma, config.lam,
                           segment_end=turns.is_last)
    returns = (advantages + values) * mask
    return _maybe_whiten(advantages, mask, config), returns


def turn_ids_from_loss_mask(loss_mask: torch.Tensor) -> torch.Tensor:
    """`(bs, L)` turn ids when every turn is one unbroken run of policy tokens (so env
    tokens separate turns, as in verl's multi-turn `response_mask`): runs are numbered
    0, 1, ... and other tokens get -1."""
    mask = loss_mask.bool()
    previous = torch.nn.functional.pad(mask[:, :-1], (1, 0), value=False)
    starts = mask & ~previous
    ids = torch.cumsum(starts.long(), dim=1) - 1
    return torch.where(mask, ids, torch.full_like(ids, -1))


class _TurnView:
    """Per-turn tensors `(bs, K)` of a batch, K = the most turns of any trajectory."""

    def __init__(self, token_rewards: torch.Tensor, mask: torch.Tensor,
                 turn_ids: torch.Tensor) -> None:
        bs, length = token_rewards.shape
        self.mask = mask
        num_turns = int(turn_ids[mask.bool()].max().item()) + 1 if mask.any() else 1
        # Non-policy tokens go to an extra bucket K that is cut off afterwards.
        bucket = torch.where(mask.bool(), turn_ids.long(), torch.full_like(turn_ids, num_turns))
        self.turn_of_token = bucket.clamp(max=num_turns - 1)
        sums = torch.zeros(bs, num_turns + 1, dtype=token_rewards.dtype,
                           device=token_rewards.device)
        self.rewards = sums.scatter_add(1, bucket, token_rewards * mask)[:, :num_turns]
        positions = torch.arange(length, device=bucket.device).expand(bs, length)
        last = torch.full((bs, num_turns + 1), -1, dtype=torch.long, device=bucket.device)
        self.last_pos = last.scatter_reduce(1, bucket, positions, reduce="amax")[:, :num_turns]
        self.exists = self.last_pos >= 0
        hits = torch.zeros(bs, length, device=bucket.device)
        hits.scatter_add_(1, self.last_pos.clamp(min=0), self.exists.float())
        self.is_last = hits > 0

    def to_tokens(self, per_turn: torch.Tensor) -> torch.Tensor:
        """`(bs, K)` -> `(bs, L)`: each policy token gets its turn's value, others 0."""
        return per_turn.gather(1, self.turn_of_token) * self.mask


def _gae_scan(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
              lam: float, segment_end: torch.Tensor | None = None) -> torch.Tensor:
    """Backward GAE over the positions where `mask` is 1, jumping over the others (their
    advantage is 0 and they neither bootstrap nor reset). After a position marked in
    `segment_end` nothing is bootstrapped. With zero values and lam=1 it gives discounted
    returns. All `(bs, n)`."""
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    next_gae = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        if segment_end is not None:
            next_value = torch.where(segment_end[:, t], 0.0, next_value)
            next_gae = torch.where(segment_end[:, t], 0.0, next_gae)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        gae = delta + gamma * lam * next_gae
        active = mask[:, t].bool()
        advantages[:, t] = torch.where(active, gae, 0.0)
        next_value = torch.where(active, values[:, t], next_value)
        next_gae = torch.where(active, gae, next_gae)
    return advantages


def _group_normalise(scores: torch.Tensor, groups: torch.Tensor, valid: torch.Tensor,
                     config: AdvantageConfig) -> torch.Tensor:
    """`(n,)` scores centred (and divided by the unbiased std + eps) within their group;
    invalid entries are left out of the statistics and get 0, as do groups of one."""
    groups = torch.where(valid, groups, -1)
    _, index, counts = torch.unique(groups, return_inverse=True, return_counts=True)
    weight = valid.to(scores.dtype)
    sums = torch.zeros(len(counts), dtype=scores.dtype, device=scores.device)
    mean = sums.index_add(0, index, scores * weight)[index] / counts[index]
    centred = (scores - mean) * weight
    sq = torch.zeros_like(sums).index_add(0, index, centred**2)[index]
    n = counts[index].to(scores.dtype)
    if config.norm_by_std:
        centred = centred / ((sq / (n - 1).clamp(min=1)).sqrt() + config.eps)
    return torch.where(valid & (n > 1), centred, torch.zeros_like(centred))


def _maybe_whiten(advantages: torch.Tensor, mask: torch.Tensor,
                  config: AdvantageConfig) -> torch.Tensor:
    if not config.whiten:
        return advantages
    n = mask.sum()
    mean = (advantages * mask).sum() / n
    var = (((advantages - mean) * mask) ** 2).sum() / (n - 1).clamp(min=1)
    return (advantages - mean) * torch.rsqrt(var + 1e-8) * mask


def _group_index(group_ids: GroupIds | None, bs: int, device: torch.device) -> torch.Tensor:
    """`(bs,)` long group index from any ids (verl passes a numpy array of uid strings)."""
    if group_ids is None:
        raise ValueError("group_ids is required: (bs,) ids of the prompt each trajectory "
                         "answers, so trajectories of one prompt are compared")
    ids = group_ids.tolist() if isinstance(group_ids, torch.Tensor | np.ndarray) else group_ids
    if len(ids) != bs:
        raise ValueError(f"group_ids has {len(ids)} entries; expected one per trajectory ({bs})")
    index: dict[Hashable, int] = {}
    return torch.tensor([index.setdefault(g, len(index)) for g in ids], device=device)


def _check(token_rewards: torch.Tensor, loss_mask: torch.Tensor,
           **needed: torch.Tensor | None) -> torch.Tensor:
    """Validates shapes and placement; returns the loss mask as the rewards' dtype."""
    if token_rewards.dim() != 2:
        raise ValueError(f"token_rewards must be (bs, L); got shape {tuple(token_rewards.shape)}")
    shape = token_rewards.shape
    for name, tensor in {"loss_mask": loss_mask, **needed}.items():
        if tensor is None:
            raise ValueError(f"{name} is required by this estimator: a (bs, L) tensor")
        if tensor.shape != shape:
            raise ValueError(f"{name} has shape {tuple(tensor.shape)}; expected {tuple(shape)} "
                             "like token_rewards")
    mask = loss_mask.to(token_rewards.dtype)
    stray = int(((token_rewards != 0) & (mask == 0)).sum())
    if stray:
        raise ValueError(f"token_rewards: {stray} nonzero rewards lie outside loss_mask; put "
                         "each turn's reward on its last policy token")
    turn_ids = needed.get("turn_ids")
    if turn_ids is not None:
        policy = mask.bool()
        if bool((turn_ids[policy] < 0).any()):
            raise ValueError("turn_ids: every policy token (loss_mask 1) needs a turn id >= 0")
        masked_ids = torch.where(policy, turn_ids, -1).cummax(dim=1).values
        if bool((policy & (turn_ids < masked_ids)).any()):
            raise ValueError("turn_ids must not decrease along a sequence's policy tokens")
    return mask
