"""The per-turn rewards the local trainer learns from: the env's own (`rewards: env`), or
Video-MTR's shaping over the whole batch (`rewards: video_mtr`, weights under `shaping`),
which replaces them on each turn's last token before advantages are computed."""

from __future__ import annotations

from vagen.rewards.shaping import ShapingConfig, record_from_infos, shape_batch
from vagen.rollout.manager import Trajectory

REWARD_SOURCES = ("env", "video_mtr")


def check_reward_source(source: str, shaping: ShapingConfig, prefix: str = "") -> None:
    """Errors naming the key (`prefix` + `rewards` / `shaping.turn_discount`)."""
    if source not in REWARD_SOURCES:
        raise ValueError(f"{prefix}rewards is {source!r}; use one of {', '.join(REWARD_SOURCES)}")
    if source == "video_mtr" and shaping.turn_discount != 1.0:
        raise ValueError(f"{prefix}shaping.turn_discount discounts Video-MTR's returns, but "
                         "vagen's trainers compute returns in their advantage estimators: "
                         "leave it at 1.0 and set the estimator's turn discount (algo.advantage"
                         ".high_level_gamma locally, algorithm.high_level_gamma in verl, for "
                         "bi_level_gae)")


def apply_shaping(trajectories: list[Trajectory], config: ShapingConfig) -> dict[str, float]:
    """Overwrite every turn's reward with its shaped reward (in the turn records and on the
    tokens); returns the batch's shaping metrics."""
    shaped = shape_batch([record_from_infos([turn.info for turn in t.turns])
                          for t in trajectories], config)
    for trajectory, rewards in zip(trajectories, shaped.turn_rewards, strict=True):
        for index, (turn, reward) in enumerate(zip(trajectory.turns, rewards, strict=True)):
            turn.reward = reward
            trajectory.tokens.set_turn_reward(index, reward)
    return shaped.metrics
