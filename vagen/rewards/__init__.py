"""Rewards: pure functions `(response, ground_truth, info=None) -> float` registered by
name (format, choice, numeric, action_set, grounding), their weighted sums, and the
Video-MTR trajectory shaping (`vagen.rewards.shaping`)."""

from vagen.rewards import action_set, choice, format, grounding, numeric  # noqa: F401  (register)
from vagen.rewards.registry import (
    CombinedReward,
    combine,
    get_reward,
    list_rewards,
    register_reward,
)

__all__ = ["CombinedReward", "combine", "get_reward", "list_rewards", "register_reward"]
