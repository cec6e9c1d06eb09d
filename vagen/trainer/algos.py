"""The registries of RL algorithms, after verl's `trainer/ppo/core_algos.py`.

Advantage estimators live in `vagen.trainer.advantages`, policy losses, KL estimators and
loss aggregations in `vagen.trainer.losses`; each registers itself here by decorator, so
every caller (the local trainer, the verl glue) looks an algorithm up by its config name and
never branches on it. Duplicate names are rejected; unknown names list the valid ones.

Uniform signatures, so one wrapper fits every entry of a registry:
- advantage estimator: `fn(token_rewards, loss_mask, *, turn_ids=None, values=None,
  group_ids=None, config: AdvantageConfig) -> (advantages, returns)`, all `(bs, L)`.
- policy loss: `fn(old_log_prob, log_prob, advantages, loss_mask, config: PolicyLossConfig,
  denominator=None) -> (loss, metrics)`.
- KL estimator: `fn(log_prob, ref_log_prob) -> (bs, L)` per-token estimate of KL(pi || ref).
- loss aggregation: `fn(loss_mat, loss_mask, denominator=None) -> scalar`.
"""

from __future__ import annotations

import importlib

from vagen.registry import Registry

_BUILTIN_MODULES = ("vagen.trainer.advantages", "vagen.trainer.losses")


def _load_builtins() -> None:
    # Importing the modules registers their algorithms; import errors propagate.
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


ADVANTAGE_ESTIMATORS: Registry = Registry("advantage estimator", _load_builtins)
POLICY_LOSSES: Registry = Registry("policy loss", _load_builtins)
KL_ESTIMATORS: Registry = Registry("KL estimator", _load_builtins)
LOSS_AGGREGATIONS: Registry = Registry("loss aggregation", _load_builtins)

register_policy_loss = POLICY_LOSSES.register
register_kl_estimator = KL_ESTIMATORS.register
register_loss_aggregation = LOSS_AGGREGATIONS.register

get_advantage_estimator = ADVANTAGE_ESTIMATORS.get
get_policy_loss = POLICY_LOSSES.get
get_kl_estimator = KL_ESTIMATORS.get
get_loss_aggregation = LOSS_AGGREGATIONS.get


def register_advantage_estimator(name: str, needs_values: bool = False):
    """Decorator: register an estimator; `needs_values` says it needs a critic's values
    (PPO), which every caller reads from here (`needs_values(name)`)."""

    def decorator(fn):
        fn.needs_values = needs_values
        return ADVANTAGE_ESTIMATORS.add(name, fn)

    return decorator


def needs_values(name: str) -> bool:
    """Whether the registered estimator `name` needs critic values."""
    return bool(getattr(get_advantage_estimator(name), "needs_values", False))

