"""From played trajectories to what the update needs: the training batch of segments, the
per-trajectory view the advantage estimators run on, and rollout metrics for the log."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vagen.env.base import StepInfo
from vagen.env.video_qa.protocols import request_actions
from vagen.rollout.manager import Trajectory
from vagen.rollout.tokens import ChatCodec, collate_segments

# Env action types that ask for more frames.


@dataclass
class TrajectoryView:
    """Policy tokens of each trajectory gathered across its segments, `(n_traj, T)`, and
    where each came from, so per-trajectory results scatter back onto the segment rows.
    Advantage estimators only read policy tokens, so this view is exact for all of them,
    also when the history window split a trajectory into several rows."""

    rows: torch.Tensor  # (n_traj, T) row of each gathered token (-1: padding)
    cols: torch.Tensor  # (n_traj, T) column of each gathered token
    mask: torch.Tensor  # (n_traj, T) 1 on real tokens

    @classmethod
    def build(cls, loss_mask: torch.Tensor, row_traj: list[int], n_traj: int) -> TrajectoryView:
        places: list[list[tuple[int, int]]] = [[] for _ in range(n_traj)]
        for row, traj in enumerate(row_traj):
            for col in torch.nonzero(loss_mask[row] > 0).flatten().tolist():
                places[traj].append((row, col))
        length = max(1, max(len(p) for p in places))
        rows = torch.full((n_traj, length), -1, dtype=torch.long)
        cols = torch.zeros((n_traj, length), dtype=torch.long)
        for traj, place in enumerate(places):
            if place:
                rows[traj, :len(place)] = torch.tensor([r for r, _ in place])
                cols[traj, :len(place)] = torch.tensor([c for _, c in place])
        return cls(rows, cols, (rows >= 0).float())

    def gather(self, values: torch.Tensor) -> torch.Tensor:
        """`(rows, L)` -> `(n_traj, T)`."""
        out = values[self.rows.clamp(min=0), self.cols]
        return out * self.mask.to(out.dtype)

    def scatter(self, values: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """`(n_traj, T)` -> `(rows, L)`, zero off policy tokens."""
        out = torch.zeros(shape, dtype=values.dtype)
        keep = self.mask.bool()
        out[self.rows[keep], self.cols[keep]] = values[keep]
        return out


def training_batch(trajectories: list[Trajectory], codec: ChatCodec,
                   rope_index) -> tuple[dict[str, torch.Tensor], list[int]]:
    """Collated segments of all trajectories and the trajectory index of each row."""
    segments, row_traj = [], []
    for index, trajectory in enumerate(trajectories):
        for segment in trajectory.tokens.segments:
            if any(segment.loss_mask):
                segments.append(segment)
                row_traj.append(index)
    return collate_segments(segments, codec, rope_index), row_traj


def rollout_metrics(trajectories: list[Trajectory]) -> dict[str, float]:
    """Means over trajectories: reward and its parts, accuracy, turns, frames, requests."""
    steps = [[StepInfo.of(turn.info) for turn in t.turns] for t in trajectories]
    parts: dict[str, list[float]] = {}
    for trajectory in steps:
        totals: dict[str, float] = {}
        for step in trajectory:
            for key, value in step.reward_parts.items():
                totals[key] = totals.get(key, 0.0) + float(value)
        for key, value in totals.items():
            parts.setdefault(key, []).append(value)
    last = [trajectory[-1] for trajectory in steps]
    turns = [t for traj in trajectories for t in traj.turns]
    requests = request_actions()
    metrics = {
        "reward/mean": float(np.mean([t.reward for t in trajectories])),
        "reward/std": float(np.std([t.reward for t in trajectories])),
        "rollout/accuracy": float(np.mean([step.correct for step in last])),
        "rollout/answered": float(np.mean([t.terminated for t in trajectories])),
        "rollout/turns": float(np.mean([len(t.turns) for t in trajectories])),
        "rollout/frames_seen": float(np.mean([step.frames_seen for step in last])),
        "rollout/frames_seen_p90": float(np.percentile([step.frames_seen for step in last], 90)),
        "rollout/invalid_action_rate": float(np.mean([not step.valid_action
                                                      for trajectory in steps
                                                      for step in trajectory])),
        "rollout/request_rate": float(np.mean([any(step.action_type in requests
                                                   for step in trajectory)
                                               for trajectory in steps])),
        "rollout/response_tokens": float(np.mean([t.num_tokens for t in turns])),
    }
    metrics.update({f"reward/{key}": float(np.sum(v)) / len(trajectories)
                    for key, v in parts.items()})
    tokens = [step.visual_tokens for step in last if step.visual_tokens is not None]
    if tokens:  # the env reports the image tokens it showed
        metrics.update({"rollout/visual_tokens": float(np.mean(tokens)),
                        "rollout/visual_tokens_p90": float(np.percentile(tokens, 90))})
    return metrics
