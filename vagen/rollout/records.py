"""What the trajectory viewer shows of an episode, as plain JSON: the sample (question,
options, videos and their durations, relevant spans), the frames shown at each turn as
times, not pixels, and per turn the policy's text, its parsed action, the env's feedback
and rewards. Eval writes it into each results.jsonl line; the local trainer writes sampled
trajectories with it; `vagen view` turns either into a page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from vagen.data.sample import Sample
from vagen.env.base import StepInfo
from vagen.rollout.manager import Trajectory
from vagen.video.pool import PoolConfig

MAX_FEEDBACK_CHARS = 400  # an observation's text without its frame labels is short


def episode_view(trajectory: Trajectory, sample: Sample, durations: Sequence[float],
                 pool: PoolConfig) -> dict[str, Any]:
    """The viewer's fields of one played episode (`pool`: how its videos became frames, so
    the viewer can cut thumbnails of exactly the frames shown)."""
    steps = []
    for turn, shown in zip(trajectory.turns, trajectory.shown[1:], strict=True):
        step = StepInfo.of(turn.info)
        steps.append({"response": turn.response, "action": step.action_type,
                      "valid": step.valid_action, "error": step.error,
                      "requested": step.requested, "reward": turn.reward,
                      "reward_parts": step.reward_parts,
                      "shown": {"times": shown.times, "videos": shown.videos},
                      "feedback": _feedback(shown.text)})
    opening = trajectory.shown[0]
    last = StepInfo.of(trajectory.turns[-1].info) if trajectory.turns else None
    return {"question": sample.question, "options": sample.options or [],
            "videos": [{"path": path, "duration_s": float(duration)}
                       for path, duration in zip(sample.videos, durations, strict=True)],
            "relevant_spans": sample.relevant_spans or [],
            "pool": {f.name: getattr(pool, f.name) for f in fields(PoolConfig)},
            "opening": {"times": opening.times, "videos": opening.videos},
            "steps": steps,
            "visual_tokens": last.visual_tokens if last else None}


def _feedback(text: str) -> str:
    """An observation's text with its frame lines left out (the viewer shows the frames)."""
    lines = [line for line in text.splitlines() if "<image>" not in line]
    return "\n".join(lines)[:MAX_FEEDBACK_CHARS]
