"""vagen's multi-turn advantage estimators in verl's registry (`register_adv_est`), as thin
wrappers over `vagen.trainer.algos` (the math lives there, once).

verl calls a registered estimator with `token_level_rewards, response_mask (bs, L)`, the
group ids `index` (uids) and `config` (the `algorithm` section). Turns are the runs of
policy tokens in `response_mask` (env tokens separate them), and each turn's reward sits on
its last policy token (the agent loop puts it there).

verl 0.9.1's legacy trainer hands critic values only to its built-in `gae`, so
`compute_advantage` below also passes `values` to the registered estimators that need them
(`bi_level_gae`); `install()` puts it in place of verl's in the trainer process."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import fields
from enum import Enum
from typing import Any

import torch
from verl.trainer.ppo import core_algos, ray_trainer

from vagen.rewards.shaping import ShapingConfig
from vagen.trainer.advantages import AdvantageConfig, turn_ids_from_loss_mask
from vagen.trainer.algos import get_advantage_estimator, needs_values
from vagen.trainer.verl.agent_loop import FAILED
from vagen.trainer.verl.shaping import TURN_INFOS, shaped_token_rewards
from vagen.trainer.verl.view import VerlTrajectoryLog

# verl's names for AdvantageConfig fields; the other fields keep their own names.
VERL_NAMES = {"gamma": "gamma", "lam": "lam", "norm_by_std": "norm_adv_by_std_in_grpo"}
# vagen's estimators registered into verl (whether they need critic values: the registry).
VERL_ESTIMATORS = ("grpo_turn", "bi_level_gae")

_VERL_COMPUTE_ADVANTAGE = ray_trainer.compute_advantage


def advantage_config(algorithm: Any) -> AdvantageConfig:
    """verl's `algorithm` section -> AdvantageConfig (missing keys keep its defaults)."""
    algorithm = algorithm or {}
    values = {}
    for f in fields(AdvantageConfig):
        key = VERL_NAMES.get(f.name, f.name)
        if key in algorithm and algorithm[key] is not None:
            values[f.name] = algorithm[key]
    return AdvantageConfig(**values)


def _verl_estimator(name: str) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    def estimator(token_level_rewards: torch.Tensor, response_mask: torch.Tensor,
                  config: Any = None, index: Any = None, values: torch.Tensor | None = None,
                  **_verl_extras: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """`(advantages, returns)`, each `(bs, response_length)`; verl may also pass
        `reward_baselines`, which these estimators do not use."""
        if needs_values(name) and values is None:
            raise ValueError(f"algorithm.adv_estimator={name} needs critic values: set "
                             "critic.enable=true and run through vagen.trainer.verl.main")
        fn = get_advantage_estimator(name)
        return fn(token_level_rewards, response_mask,
                  turn_ids=turn_ids_from_loss_mask(response_mask), values=values,
                  group_ids=index, config=advantage_config(config))

    estimator.__name__ = estimator.__qualname__ = f"vagen_{name}"
    return estimator


ESTIMATORS = {name: _verl_estimator(name) for name in VERL_ESTIMATORS}


def verl_needs_values(name: str) -> bool:
    """Whether the estimator verl runs as `name` is one of ours that needs critic values."""
    return name in VERL_ESTIMATORS and needs_values(name)


def register_estimators() -> None:
    """Register vagen's estimators with verl (again is harmless: same functions)."""
    for name, fn in ESTIMATORS.items():
        core_algos.register_adv_est(name)(fn)


def compute_advantage(data: Any, adv_estimator: str | Enum, gamma: float = 1.0,
                      lam: float = 1.0, num_repeat: int = 1,
                      norm_adv_by_std_in_grpo: bool = True, config: Any = None,
                      shaping: ShapingConfig | None = None,
                      view_log: VerlTrajectoryLog | None = None) -> Any:
    """verl's `ray_trainer.compute_advantage` (same signature), except that the estimators
    that need them get the critic's `values`, and with `shaping` each turn's
    reward is Video-MTR's shaped one (`vagen.trainer.verl.shaping`). A dropped trajectory
    (the agent loop's `FAILED`) is a group of its own, so its stand-in score moves no
    other sample's baseline. With `view_log` the step's kept trajectories are written
    (once a step: verl computes advantages once per step)."""
    if view_log is not None:
        view_log.record(data)
    isolate_failed(data)
    if shaping is not None:
        data.batch["token_level_rewards"] = shaped_token_rewards(
            data.batch["token_level_rewards"], data.batch["response_mask"],
            data.non_tensor_batch[TURN_INFOS], data.non_tensor_batch["turn_scores"], shaping)
    name = adv_estimator.value if isinstance(adv_estimator, Enum) else adv_estimator
    if not verl_needs_values(name):
        return _VERL_COMPUTE_ADVANTAGE(data, adv_estimator, gamma, lam, num_repeat,
                                       norm_adv_by_std_in_grpo, config)
    if "values" not in data.batch.keys():
        raise ValueError(f"algorithm.adv_estimator={name} needs critic values but the batch "
                         "has none; set critic.enable=true")
    advantages, returns = core_algos.get_adv_estimator_fn(name)(
        token_level_rewards=data.batch["token_level_rewards"],
        response_mask=data.batch["response_mask"], config=config,
        index=data.non_tensor_batch.get("uid"), values=data.batch["values"])
    data.batch["advantages"] = advantages
    data.batch["returns"] = returns
    return data


def isolate_failed(data: Any) -> None:
    """Give each failed row a `uid` of its own: group estimators (grpo, grpo_turn) then
    leave it out of its prompt's group mean and std."""
    reasons = data.non_tensor_batch.get(FAILED)
    uids = data.non_tensor_batch.get("uid")
    if reasons is None or uids is None:
        return
    uids = uids.copy()
    for row, reason in enumerate(reasons):
        if reason:
            uids[row] = f"{uids[row]}/failed/{row}"
    data.non_tensor_batch["uid"] = uids


def install(shaping: ShapingConfig | None = None,
            view_log: VerlTrajectoryLog | None = None) -> None:
    """In the process that runs verl's trainer: register the estimators and route
    `compute_advantage` through ours (shaping the rewards with `shaping`, keeping
    trajectories in `view_log`)."""
    register_estimators()
    ray_trainer.compute_advantage = (
        compute_advantage if shaping is None and view_log is None
        else functools.partial(compute_advantage, shaping=shaping, view_log=view_log))
