"""Trajectories a verl run keeps for `vagen view`. The agent loop sends what the viewer
needs of each episode (its env group's config, seed, each turn's text, step info and reward,
the frames shown as times) as the extra field `vagen_view`; in the trainer process, where
verl computes advantages once a step, `VerlTrajectoryLog` keeps `vagen.view.per_step` rows
of every `vagen.view.every`-th step in `trainer.default_local_dir/trajectories.jsonl`, as
the local trainer does."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vagen.config import from_dict
from vagen.env.base import StepInfo
from vagen.env.video_qa.config import VideoQAConfig
from vagen.rollout.manager import Shown, Trajectory, TurnRecord
from vagen.trainer.trajectory_log import TrajectoryLog, ViewConfig

VIEW_FIELD = "vagen_view"  # extra field: one episode's material for the viewer, JSON
# verl writes the step of its newest checkpoint here (trainer/ppo/ray_trainer.py)
LATEST_STEP_FILE = "latest_checkpointed_iteration.txt"


def episode_material(config: Mapping[str, Any], seed: int, turns: list[TurnRecord],
                     shown: list[Shown]) -> str:
    """What the trainer process needs to keep one played episode."""
    return json.dumps({"config": dict(config), "seed": seed,
                       "turns": [asdict(turn) for turn in turns],
                       "shown": [asdict(view) for view in shown]})


def trajectory_of(material: str) -> tuple[Trajectory, VideoQAConfig]:
    """An episode's material back as a Trajectory (no tokens) and its env group."""
    values = json.loads(material)
    turns = [TurnRecord(**turn) for turn in values["turns"]]
    answered = bool(turns) and StepInfo.of(turns[-1].info).action_type == "answer"
    trajectory = Trajectory("", int(values["seed"]), 0, None, turns,
                            [Shown(**view) for view in values["shown"]], terminated=answered,
                            truncated=not answered)
    return trajectory, VideoQAConfig.from_dict(values["config"])


class VerlTrajectoryLog:
    """Counts verl's steps (one advantage computation each, from the newest checkpoint's
    step) and keeps the due steps' trajectories."""

    def __init__(self, vagen: Mapping[str, Any] | None, out_dir: str | Path) -> None:
        config = from_dict(ViewConfig, dict((vagen or {}).get("view") or {}), "vagen.view.")
        latest = Path(out_dir) / LATEST_STEP_FILE
        self.step = int(latest.read_text().strip()) if latest.exists() else 0
        self.log = TrajectoryLog(Path(out_dir), config, self.step)

    def record(self, data: Any) -> None:
        """Keep the trajectories of the step whose batch `data` (verl's DataProto) is."""
        self.step += 1
        materials = data.non_tensor_batch.get(VIEW_FIELD)
        if materials is None or not self.log.due(self.step):
            return
        played = [trajectory_of(m) for m in materials if m]  # a dropped one has none
        played = [(t, g) for t, g in played if t.turns]  # a row cut before its first turn
        self.log.record(self.step, [t for t, _ in played], [g for _, g in played])
