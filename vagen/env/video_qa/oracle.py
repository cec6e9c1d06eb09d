"""The expert's action (for tests and SFT warm starts): ask once for the frames of the
annotated relevant spans, then answer with the ground truth after a `<think>` that narrates
the evidence (DESIGN.md: a narrating think is what made the tiny model learn)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vagen.data.sample import Sample
from vagen.env.video_qa.frames import split_budget
from vagen.video.pool import FramePool

Span = tuple[float, float, int]  # start_s, end_s, video


def relevant_spans(sample: Sample, pools: Sequence[FramePool]) -> list[Span]:
    """The sample's spans as (start, end, video), clipped to their video's duration."""
    spans = []
    for span in sample.relevant_spans or []:
        video = int(span[2]) if len(span) == 3 else 0
        if not 0 <= video < len(pools):
            raise ValueError(f"sample {sample.id}: field 'relevant_spans' names video {video} "
                             f"but the sample has {len(pools)} videos")
        duration = math.floor(pools[video].duration_s * 100) / 100  # survives "%.2f"
        start, end = (min(max(float(t), 0.0), duration) for t in span[:2])
        spans.append((start, end, video))
    return spans


def span_text(span: Span, num_videos: int) -> str:
    start, end, video = span
    where = f" of video {video + 1}" if num_videos > 1 else ""
    return f"from {start:.1f}s to {end:.1f}s{where}"


def request_text(protocol: str, spans: Sequence[Span], pools: Sequence[FramePool],
                 budget: int, units: str) -> str:
    """The request for `spans` in `protocol`'s syntax, one `;`-separated part per span."""
    multi = len(pools) > 1
    parts = []
    for (start, end, video), share in zip(spans, split_budget(budget, len(spans)), strict=True):
        lo, hi = _index_range(pools[video], start, end)
        if protocol == "query":
            parts.append(f"{f'video {video + 1} ' if multi else ''}frames {lo}-{hi}")
            continue
        if protocol == "timestamps":
            body = ",".join(f"{t:.2f}" for t in _spread(start, end, max(1, share)))
        elif units == "seconds":
            body = f"{start:.2f},{end:.2f}"
        else:
            body = f"{lo},{hi}"
        parts.append(f"video {video + 1}: {body}" if multi else body)
    tag = {"retrieve": "retrieve", "query": "query", "timestamps": "frames"}[protocol]
    return f"<{tag}>{'; '.join(parts)}</{tag}>"


def oracle_think_request(spans: Sequence[Span], num_videos: int) -> str:
    where = " and ".join(span_text(s, num_videos) for s in spans)
    return (f"<think>The frames I have do not settle the question; the evidence is {where}. "
            "I will look at those frames.</think>")


def oracle_answer(sample: Sample, spans: Sequence[Span], num_videos: int) -> str:
    rationale = sample.extra.get("evidence")  # the synthetic data narrates its evidence
    if not isinstance(rationale, str) or not rationale.strip():
        where = " and ".join(span_text(s, num_videos) for s in spans)
        rationale = (f"The frames {where} show the answer." if spans
                     else "The frames show the answer.")
    return f"<think>{rationale.strip()}</think><answer>{sample.answer}</answer>"


def _index_range(pool: FramePool, start: float, end: float) -> tuple[int, int]:
    """First and last pool index inside [start, end]; the nearest frame when none is."""
    inside = np.flatnonzero((pool.timestamps >= start) & (pool.timestamps <= end))
    if len(inside) == 0:
        nearest = pool.at_times([(start + end) / 2])[0]
        return nearest, nearest
    return int(inside[0]), int(inside[-1])


def _spread(start: float, end: float, k: int) -> list[float]:
    """`k` distinct times at the centres of `k` equal bins of [start, end]."""
    return list(dict.fromkeys(round(start + (i + 0.5) * (end - start) / k, 2) for i in range(k)))
