"""Actor and critic losses, registered in `vagen.trainer.algos`, plus the guarded optimizer
step. Shapes: `(bs, L)` per-token tensors, `loss_mask` 1 on policy tokens. Losses return
`(loss, metrics)` with verl's namespaced metric keys (`actor/pg_clipfrac`, ...).

`denominator` (every loss): when one optimizer step accumulates several micro-batches, pass
the count over the whole step (policy tokens for token-mean, sequences for
seq-mean-token-mean) so the summed micro-batch losses equal the loss of the full batch;
by default the micro-batch's own count is used.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

from vagen.trainer.algos import (
    get_kl_estimator,
    get_loss_aggregation,
    get_policy_loss,
    register_kl_estimator,
    register_loss_aggregation,
    register_policy_loss,
)

Denominator = float | torch.Tensor | None


@dataclass
class PolicyLossConfig:
    """The actor objective: policy loss + kl_coef * KL(pi || ref) - entropy_coef * entropy."""

    policy_loss: str = field(default="ppo_clip", metadata={"help": "registered policy loss"})
    clip_ratio_low: float = field(default=0.2, metadata={"help": "ratio floor is 1 - this"})
    clip_ratio_high: float = field(default=0.28, metadata={
        "help": "ratio ceiling is 1 + this (DAPO's clip-higher; 0.2 = symmetric PPO)"})
    clip_ratio_c: float | None = field(default=None, metadata={
        "help": "dual-clip bound (> 1, e.g. 3.0) on the loss of negative advantages; None = off"})
    loss_agg_mode: str = field(default="token-mean", metadata={
        "help": "registered loss aggregation: token-mean | seq-mean-token-mean"})
    kl_estimator: str = field(default="low_var_kl", metadata={"help": "k1 | k2 | low_var_kl"})
    kl_coef: float = field(default=0.0, metadata={"help": "weight of the KL to the reference"})
    entropy_coef: float = field(default=0.0, metadata={"help": "weight of the entropy bonus"})

    def __post_init__(self) -> None:
        for key, lookup in (("policy_loss", get_policy_loss), ("kl_estimator", get_kl_estimator),
                            ("loss_agg_mode", get_loss_aggregation)):
            try:
                lookup(getattr(self, key))
            except KeyError as error:
                raise ValueError(f"{key}: {error.args[0]}") from None
        for key in ("clip_ratio_low", "clip_ratio_high"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ValueError(f"{key} is {getattr(self, key)}; set it within [0, 1)")
        if self.clip_ratio_c is not None and self.clip_ratio_c <= 1.0:
            raise ValueError(f"clip_ratio_c is {self.clip_ratio_c}; set it > 1 (e.g. 3.0) or "
                             "null to turn dual-clip off")
        for key in ("kl_coef", "entropy_coef"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} is {getattr(self, key)}; set it >= 0")


@register_loss_aggregation("token-mean")
def token_mean(loss_mat: torch.Tensor, loss_mask: torch.Tensor,
               denominator: Denominator = None) -> torch.Tensor:
    """Mean over all policy tokens of the batch: long responses weigh more (DAPO)."""
    mask = loss_mask.to(loss_mat.dtype)
    count = mask.sum() if denominator is None else torch.as_tensor(denominator)
    return (loss_mat * mask).sum() / count.clamp(min=1)


@register_loss_aggregation("seq-mean-token-mean")
def seq_mean_token_mean(loss_mat: torch.Tensor, loss_mask: torch.Tensor,
                        denominator: Denominator = None) -> torch.Tensor:
    """Mean over sequences of each sequence's token mean (original GRPO); sequences without
    policy tokens are left out."""
    mask = loss_mask.to(loss_mat.dtype)
    tokens = mask.sum(-1)
    per_seq = (loss_mat * mask).sum(-1) / tokens.clamp(min=1)
    count = (tokens > 0).sum() if denominator is None else torch.as_tensor(denominator)
    return per_seq.sum() / count.clamp(min=1)


@register_policy_loss("ppo_clip")
def ppo_clip(old_log_prob: torch.Tensor, log_prob: torch.Tensor, advantages: torch.Tensor,
             loss_mask: torch.Tensor, config: PolicyLossConfig,
             denominator: Denominator = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped PPO surrogate `max(-A r, -A clip(r, 1 - low, 1 + high))`, `r = pi / pi_old`,
    with optional dual clip `min(., -A c)` for A < 0 (bounds the loss when a bad token's
    ratio explodes). `actor/pg_clipfrac` is the share of tokens where the clip was active."""
    mask = loss_mask.to(log_prob.dtype)
    log_ratio = (log_prob - old_log_prob).clamp(-20.0, 20.0)
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - config.clip_ratio_low, 1.0 + config.clip_ratio_high)
    losses = torch.maximum(unclipped, clipped)
    dual_clipped = torch.zeros_like(losses, dtype=torch.bool)
    if config.clip_ratio_c is not None:
        bound = -advantages * config.clip_ratio_c
        dual_clipped = (advantages < 0) & (losses > bound)
        losses = torch.where(dual_clipped, bound, losses)
    loss = get_loss_aggregation(config.loss_agg_mode)(losses, mask, denominator)
    metrics = {
        "actor/pg_loss": loss.detach().item(),
        "actor/pg_clipfrac": _masked_mean(clipped > unclipped, mask),
        "actor/pg_clipfrac_lower": _masked_mean(dual_clipped, mask),
        "actor/ppo_kl": _masked_mean(-log_ratio, mask),
    }
    return loss, metrics


@register_kl_estimator("k1")
def k1(log_prob: torch.Tensor, ref_log_prob: torch.Tensor) -> torch.Tensor:
    """`log pi - log ref`: unbiased for KL(pi || ref) under samples of pi, high variance."""
    return log_prob - ref_log_prob


@register_kl_estimator("k2")
def k2(log_prob: torch.Tensor, ref_log_prob: torch.Tensor) -> torch.Tensor:
    """`0.5 (log pi - log ref)^2`: biased, low variance; its gradient is KL's gradient."""
    return 0.5 * (log_prob - ref_log_prob).square()


@register_kl_estimator("low_var_kl")
def low_var_kl(log_prob: torch.Tensor, ref_log_prob: torch.Tensor) -> torch.Tensor:
    """Schulman's k3, `ref/pi - log(ref/pi) - 1` >= 0, unbiased and low variance; the log
    ratio is clamped to [-20, 20] and the result to [-10, 10], as verl does."""
    log_ratio = (ref_log_prob - log_prob).clamp(-20.0, 20.0)
    return (log_ratio.exp() - log_ratio - 1.0).clamp(-10.0, 10.0)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """`(bs, L, vocab)` logits -> `(bs, L)` entropy of each token's distribution."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    # Tokens masked with -inf logits have probability 0 and contribute 0 (not 0 * -inf).
    finite = torch.where(torch.isfinite(log_probs), log_probs, 0.0)
    return -(log_probs.exp() * finite).sum(-1)


def actor_loss(old_log_prob: torch.Tensor, log_prob: torch.Tensor, advantages: torch.Tensor,
               loss_mask: torch.Tensor, config: PolicyLossConfig, *,
               ref_log_prob: torch.Tensor | None = None, logits: torch.Tensor | None = None,
               denominator: Denominator = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The whole actor objective, each term aggregated like the policy loss. The KL term
    (`ref_log_prob`, `(bs, L)`) and the entropy (`logits`, `(bs, L, vocab)`) are logged
    whenever given and enter the loss with their coefficients."""
    aggregate = get_loss_aggregation(config.loss_agg_mode)
    loss, metrics = get_policy_loss(config.policy_loss)(old_log_prob, log_prob, advantages,
                                                        loss_mask, config, denominator)
    if ref_log_prob is not None:
        kl = aggregate(get_kl_estimator(config.kl_estimator)(log_prob, ref_log_prob), loss_mask,
                       denominator)
        loss = loss + config.kl_coef * kl
        metrics["actor/kl_loss"] = kl.detach().item()
    elif config.kl_coef > 0:
        raise ValueError(f"kl_coef is {config.kl_coef} but no ref_log_prob was given; pass the "
                         "reference policy's log-probs or set kl_coef: 0")
    if logits is not None:
        entropy = aggregate(entropy_from_logits(logits), loss_mask, denominator)
        loss = loss - config.entropy_coef * entropy
        metrics["actor/entropy"] = entropy.detach().item()
    elif config.entropy_coef > 0:
        raise ValueError(f"entropy_coef is {config.entropy_coef} but no logits were given; "
                         "pass the logits or set entropy_coef: 0")
    metrics["actor/loss"] = loss.detach().item()
    return loss, metrics


def value_loss(vpreds: torch.Tensor, values: torch.Tensor, returns: torch.Tensor,
               loss_mask: torch.Tensor, cliprange_value: float = 0.5,
               loss_agg_mode: str = "token-mean",
               denominator: Denominator = None) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's clipped critic loss `0.5 max((v - R)^2, (clip(v, v_old +- c) - R)^2)`: the new
    prediction `vpreds` may move at most `cliprange_value` from the rollout's `values`."""
    mask = loss_mask.to(vpreds.dtype)
    vpreds_clipped = torch.clamp(vpreds, values - cliprange_value, values + cliprange_value)
    unclipped = (vpreds - returns).square()
    clipped = (vpreds_clipped - returns).square()
    loss = 0.5 * get_loss_aggregation(loss_agg_mode)(torch.maximum(unclipped, clipped), mask,
                                                     denominator)
    metrics = {
        "critic/vf_loss": loss.detach().item(),
        "critic/vf_clipfrac": _masked_mean(clipped > unclipped, mask),
        "critic/vpred_mean": _masked_mean(vpreds, mask),
    }
    return loss, metrics


def step_if_finite(optimizer: torch.optim.Optimizer, parameters: Iterable[torch.nn.Parameter],
                   max_grad_norm: float | None = 1.0) -> tuple[bool, float]:
    """Clips the gradients to `max_grad_norm` (None: no clipping) and steps, unless their
    norm is NaN or inf: one bad batch then costs one skipped update instead of NaN weights.
    Gradients are cleared either way. Returns (stepped, grad norm before clipping)."""
    with_grad = [p for p in parameters if p.grad is not None]
    limit = float("inf") if max_grad_norm is None else max_grad_norm
    norm = torch.nn.utils.clip_grad_norm_(with_grad, limit)
    stepped = bool(torch.isfinite(norm))
    if stepped:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return stepped, float(norm)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> float:
    return float((values.detach().to(mask.dtype) * mask).sum() / mask.sum().clamp(min=1))
