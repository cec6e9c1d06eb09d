"""Trajectories a training run keeps for the viewer: every `every` steps, `per_step` of the
step's trajectories (spread over its prompts) go to `trajectories.jsonl` in the run folder,
with the frames as times, not pixels, so `vagen view RUN` shows retrieval change as RL
proceeds. A resumed run drops the lines past its checkpoint, as metrics.jsonl does."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vagen.env.base import StepInfo
from vagen.env.video_qa.config import VideoQAConfig
from vagen.env.video_qa.lookup import SampleLookup
from vagen.rollout.manager import Trajectory
from vagen.rollout.records import episode_view
from vagen.trainer.logger import truncate_after
from vagen.video.sampling import uniform_indices

TRAJECTORIES_FILE = "trajectories.jsonl"


@dataclass
class ViewConfig:
    every: int = field(default=1, metadata={
        "help": "keep trajectories for `vagen view` every k steps (0: none)"})
    per_step: int = field(default=4, metadata={
        "help": "trajectories kept per such step, spread over the step's prompts"})

    def __post_init__(self) -> None:
        if self.every < 0 or self.per_step < 1:
            raise ValueError("view.every must be >= 0 and view.per_step >= 1")


class TrajectoryLog:
    """Appends the kept trajectories of a step to `out_dir/trajectories.jsonl`: the local
    trainer's (one env group) and verl's (each row its group)."""

    def __init__(self, out_dir: Path, config: ViewConfig, resumed_at: int) -> None:
        self.path = Path(out_dir) / TRAJECTORIES_FILE
        self.config = config
        self.lookup = SampleLookup()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        truncate_after(self.path, resumed_at)

    def due(self, step: int) -> bool:
        return bool(self.config.every) and step % self.config.every == 0

    def picks(self, count: int) -> list[int]:
        """Which of a step's `count` trajectories to keep: spread over its prompts."""
        return uniform_indices(count, self.config.per_step)

    def record(self, step: int, trajectories: list[Trajectory],
               groups: list[VideoQAConfig]) -> None:
        """Keep `per_step` of the trajectories of (1-based) `step` when it is due; `groups`:
        the env group of each trajectory."""
        if not self.due(step) or not trajectories:
            return
        with self.path.open("a") as out:
            for index in self.picks(len(trajectories)):
                line = self.line(step, index, trajectories[index], groups[index])
                out.write(json.dumps(line) + "\n")

    def line(self, step: int, index: int, trajectory: Trajectory,
             group: VideoQAConfig) -> dict[str, Any]:
        """One kept trajectory, as the viewer reads it."""
        sample = self.lookup.sample(group.to_dict(), trajectory.seed)
        last = StepInfo.of(trajectory.turns[-1].info)
        return {"step": step, "id": f"step{step}/{trajectory.seed}/{index}",
                "group": group.name, "seed": trajectory.seed, "sample_id": sample.id,
                "source": sample.source, "category": sample.category,
                "duration_s": sample.duration_s, "answer": sample.answer,
                "prediction": last.answer if last.action_type == "answer" else None,
                "correct": last.correct, "reward": trajectory.reward,
                "turns": len(trajectory.turns), "frames_viewed": last.frames_seen,
                **episode_view(trajectory, sample, self.lookup.durations(sample),
                               group.pool_config())}
