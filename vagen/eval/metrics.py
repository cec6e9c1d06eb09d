"""Evaluation metrics: what one played episode scored (`score_episode`) and the means over
the results of a benchmark, per env group, source, category and duration bucket
(`summarize`).

Per episode: `correct` (the env's exact check), `numeric_reward` (the `numeric` reward of
the final answer, number questions only), `turns`, `frames_viewed`, `temporal_iou` of the
viewed frames with the annotated spans (samples with spans only; each viewed frame covers
its frame-pool bin, so seeing every pool frame of a span gives an IoU near 1),
`evidence_seen` (some viewed frame lies inside every annotated span: the policy looked where
the answer is) and `invalid_actions` (turns the env rejected); the result row also carries the
episode's summed env `reward`, whose mean is `mean_reward`. Groups report their means; the
invalid-action rate is invalid turns over all turns, so long episodes weigh more."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from vagen.data.sample import DURATION_BUCKETS, UNKNOWN_DURATION, Sample, duration_bucket
from vagen.env.base import StepInfo
from vagen.rewards import get_reward
from vagen.rewards.grounding import evidence_seen, temporal_iou
from vagen.video.sampling import pool_times

BREAKDOWNS = {"group": "by_group", "source": "by_source", "category": "by_category",
              "duration": "by_duration"}
METRICS = ("accuracy", "numeric_reward", "mean_reward", "mean_turns", "frames_viewed",
           "temporal_iou", "evidence_seen", "invalid_action_rate")


def frame_widths(durations_s: Sequence[float], pool_fps: float,
                 pool_max_frames: int) -> list[float]:
    """Seconds one pool frame stands for, per video: its bin of `pool_times`."""
    return [d / len(pool_times(d, pool_fps, pool_max_frames)) for d in durations_s]


def viewed_spans(seen_times: Sequence[float], seen_video_ids: Sequence[int] | None,
                 widths: Sequence[float]) -> list[list[float]]:
    """Each viewed frame as the span of its pool bin, `[t - w/2, t + w/2, video]`."""
    video_ids = list(seen_video_ids) if seen_video_ids else [0] * len(seen_times)
    return [[max(0.0, t - widths[v] / 2), t + widths[v] / 2, v]
            for t, v in zip(seen_times, video_ids, strict=True)]


def score_episode(sample: Sample, responses: Sequence[str], infos: Sequence[Mapping[str, Any]],
                  widths: Sequence[float]) -> dict[str, Any]:
    """The per-sample metrics of one episode, from the policy's responses and the env's info
    of each turn (`widths`: seconds per pool frame of each video, see `frame_widths`)."""
    if not infos or len(responses) != len(infos):
        raise ValueError(f"sample {sample.id}: need one info per response and at least one "
                         f"turn, got {len(responses)} responses and {len(infos)} infos")
    steps = [StepInfo.of(info) for info in infos]
    last = steps[-1]
    answered = last.action_type == "answer"
    numeric = None
    if sample.answer_type == "number":
        numeric = get_reward("numeric")(responses[-1], sample.answer) if answered else 0.0
    iou = evidence = None
    if sample.relevant_spans:
        seen = viewed_spans(last.seen_times, last.seen_video_ids, widths)
        iou = temporal_iou(seen, sample.relevant_spans)
        evidence = evidence_seen(last.seen_times, last.seen_video_ids, sample.relevant_spans)
    return {"prediction": last.answer if answered else None,
            "correct": last.correct, "numeric_reward": numeric,
            "turns": len(steps), "frames_viewed": last.frames_seen,
            "temporal_iou": iou, "evidence_seen": evidence,
            "invalid_actions": sum(not step.valid_action for step in steps)}


def aggregate(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Means of the per-sample metrics; `None` for a metric no result has a value for."""
    turns = sum(r["turns"] for r in results)
    return {"n": len(results),
            "accuracy": _mean(float(r["correct"]) for r in results),
            "numeric_reward": _mean(r["numeric_reward"] for r in results),
            "mean_reward": _mean(r.get("reward") for r in results),
            "mean_turns": _mean(r["turns"] for r in results),
            "frames_viewed": _mean(r["frames_viewed"] for r in results),
            "frames_viewed_p90": _p90(r["frames_viewed"] for r in results),
            "visual_tokens": _mean(r.get("visual_tokens") for r in results),
            "visual_tokens_p90": _p90(r.get("visual_tokens") for r in results),
            "temporal_iou": _mean(r["temporal_iou"] for r in results),
            "evidence_seen": _mean(r.get("evidence_seen") for r in results),
            "invalid_action_rate": (sum(r["invalid_actions"] for r in results) / turns
                                    if turns else None)}


def summarize(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """`overall` plus `by_group` (env group: protocol or baseline), `by_source` (benchmark),
    `by_category` ("source/category") and `by_duration` (bucket order), over the episodes
    that played; `failed_episodes` counts the others (n, by reason, their samples). Results
    are taken in id order, so the summary does not depend on the order they were written in
    (a resumed run gives the same numbers)."""
    ordered = sorted(results, key=lambda r: r["id"])
    failed = [r for r in ordered if r.get("failed")]
    ordered = [r for r in ordered if not r.get("failed")]
    summary: dict[str, Any] = {"overall": aggregate(ordered), "failed_episodes": {
        "n": len(failed), "by_reason": dict(sorted(Counter(r["failed"] for r in failed).items())),
        "samples": [r["sample_id"] or r["id"] for r in failed]}}
    for key, name in BREAKDOWNS.items():
        groups: dict[str, list[Mapping[str, Any]]] = {}
        for result in ordered:
            groups.setdefault(breakdown_key(result, key), []).append(result)
        summary[name] = {label: aggregate(groups[label])
                         for label in sorted(groups, key=_label_order(key))}
    return summary


def breakdown_key(result: Mapping[str, Any], key: str) -> str:
    """The group of a result in one breakdown."""
    if key == "group":
        return result.get("group") or "unknown"
    source = result.get("source") or "unknown"
    if key == "source":
        return source
    if key == "category":
        return f"{source}/{result.get('category') or 'none'}"
    return duration_bucket(result.get("duration_s"))


def _label_order(key: str):
    if key != "duration":
        return lambda label: label
    order = [label for _, label in DURATION_BUCKETS] + [UNKNOWN_DURATION]
    return order.index


def _mean(values: Iterable[float | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _p90(values: Iterable[float | None]) -> float | None:
    """The 90th percentile of the values given, as the training log computes it."""
    present = [float(v) for v in values if v is not None]
    return float(np.percentile(present, 90)) if present else None
