"""The per-turn rewards the local trainer learns from: the env's own (`rewards: env`), or
Video-MTR's shaping over the whole batch (`rewards: video_mtr`, weights under `shaping`),
which replaces them on each turn's last token before advantages are computed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vagen.env.base import StepInfo
from vagen.rewards.shaping import ShapingConfig, TrajectoryRecord, TurnRecord, shape_batch
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


def shaping_record(infos: Sequence[Mapping[str, Any]]) -> TrajectoryRecord:
    """A trajectory's shaping record from the info of each of its env steps, first to last
    (`StepInfo`); needs the retrieval IoUs (`frames_iou`, `initial_iou`), which the video_qa
    env reports."""
    if not infos:
        raise ValueError("a trajectory with no turns has nothing to shape")
    steps = [StepInfo.of(info) for info in infos]
    if steps[-1].initial_iou is None:
        raise ValueError("reward shaping needs the retrieval IoUs frames_iou and initial_iou "
                         "in the env's step info (StepInfo; the video_qa env reports them); "
                         "this env does not")
    turns = [TurnRecord(valid_format=step.valid_action, fetched=step.frames_iou is not None,
                        frames_iou=step.frames_iou) for step in steps]
    answered = steps[-1].action_type == "answer"
    return TrajectoryRecord(turns=turns, correct=answered and steps[-1].correct,
                            answer_turn=len(turns) if answered else None,
                            initial_iou=float(steps[-1].initial_iou))


def apply_shaping(trajectories: list[Trajectory], config: ShapingConfig) -> dict[str, float]:
    """Overwrite every turn's reward with its shaped reward (in the turn records and on the
    tokens); returns the batch's shaping metrics."""
    shaped = shape_batch([shaping_record([turn.info for turn in t.turns])
                          for t in trajectories], config)
    for trajectory, rewards in zip(trajectories, shaped.turn_rewards, strict=True):
        for index, (turn, reward) in enumerate(zip(trajectory.turns, rewards, strict=True)):
            turn.reward = reward
            trajectory.tokens.set_turn_reward(index, reward)
    return shaped.metrics
