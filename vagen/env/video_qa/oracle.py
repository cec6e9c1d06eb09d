"""The expert's action (for tests and SFT warm starts): ask once for the pool frames that
cover the annotated relevant spans (per video, the hull from the first span's start to the
last one's end, so a count also sees the gaps between events), then answer with the ground
truth after a `<think>` that narrates the evidence (a narrating think is what made the tiny
model learn)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from vagen.data.sample import Sample
from vagen.env.video_qa.frames import split_budget
from vagen.env.video_qa.protocols import RequestPart, get_protocol
from vagen.video.pool import FramePool

Span = tuple[float, float, int]  # start_s, end_s, video


def evidence_spans(sample: Sample, pools: Sequence[FramePool],
                   spans: Sequence[Sequence[float]] | None = None) -> list[Span]:
    """Per video with relevant spans (or the given `spans`, same layout), their hull as
    (start, end, video), clipped to the video's duration; in video order."""
    hulls: dict[int, tuple[float, float]] = {}
    for span in (sample.relevant_spans or []) if spans is None else spans:
        video = int(span[2]) if len(span) == 3 else 0
        duration = math.floor(pools[video].duration_s * 100) / 100  # survives "%.2f"
        start, end = (min(max(float(t), 0.0), duration) for t in span[:2])
        low, high = hulls.get(video, (start, end))
        hulls[video] = (min(low, start), max(high, end))
    return [(start, end, video) for video, (start, end) in sorted(hulls.items())]


def span_text(span: Span, num_videos: int) -> str:
    start, end, video = span
    where = f" of video {video + 1}" if num_videos > 1 else ""
    return f"from {start:.1f}s to {end:.1f}s{where}"


def request_text(protocol: str, spans: Sequence[Span], pools: Sequence[FramePool],
                 budget: int, units: str, exact: bool = False) -> str:
    """The request for `spans` in `protocol`'s syntax, one part per span (the protocol
    writes it). Index bounds are the first and last frame the span's retrieval returns, or
    with `exact` the pool frames nearest its ends (a span between two labels the policy was
    shown)."""
    parts = []
    for (start, end, video), share in zip(spans, split_budget(budget, len(spans)), strict=True):
        pool = pools[video]
        indices = pool.in_span(start, end, max(1, share)) or pool.at_times([(start + end) / 2])
        first, last = pool.at_times([start, end]) if exact else (indices[0], indices[-1])
        parts.append(RequestPart(
            video=video, multi=len(pools) > 1, first=int(first), last=int(last), start_s=start,
            end_s=end, times=tuple(float(pool.timestamps[i]) for i in indices), units=units))
    return get_protocol(protocol).request(parts)


def oracle_think_request(spans: Sequence[Span], num_videos: int) -> str:
    where = " and ".join(span_text(s, num_videos) for s in spans)
    return (f"<think>The frames I have do not settle the question; the evidence is {where}. "
            "I will look at those frames.</think>")


def brief_think_request(labels: Sequence[str]) -> str:
    """The brief think of a request: the labels of the frames that show the carrier."""
    return f"<think>{' '.join(labels) or 'none'}</think>"


def narration(sample: Sample, spans: Sequence[Span], num_videos: int, brief: bool = False
              ) -> str:
    """What the answer's think says: the sample's evidence in words (`extra.evidence`, or
    with `brief` the short `extra.evidence_brief`, e.g. "white red"), else where it was."""
    rationale = sample.extra.get("evidence_brief" if brief else "evidence")
    if isinstance(rationale, str) and rationale.strip():
        return rationale.strip()
    where = " and ".join(span_text(s, num_videos) for s in spans)
    return f"The frames {where} show the answer." if spans else "The frames show the answer."


def oracle_answer(rationale: str, answer: str) -> str:
    return f"<think>{rationale}</think><answer>{answer}</answer>"


def shown_span(carrier: Span, pool: FramePool, seen: set[int]) -> Span:
    """The span between two frames the policy was shown: from the last seen frame before the
    carrier starts to the first seen frame after it ends (the first / last seen frame when
    the carrier touches the video's start / end)."""
    start, end, video = carrier
    times = [(float(pool.timestamps[i]), i) for i in sorted(seen)]
    before = [i for t, i in times if t < start] or [times[0][1]]
    after = [i for t, i in times if t > end] or [times[-1][1]]
    return float(pool.timestamps[before[-1]]), float(pool.timestamps[after[0]]), video


def snapped_span(span: Span, pool: FramePool, seen: set[int]) -> Span:
    """`span` with each end moved to the nearest frame the policy was shown (so a request
    for it copies shown labels); unchanged when nothing was shown."""
    start, end, video = span
    if not seen:
        return span
    times = [float(pool.timestamps[i]) for i in sorted(seen)]
    return (min(times, key=lambda t: abs(t - start)), min(times, key=lambda t: abs(t - end)),
            video)


def missed_span(span: Span, duration_s: float) -> Span:
    """A span as wide as `span` just past it (just before it when the video ends first):
    what an imperfect expert asks for."""
    start, end, video = span
    width = end - start
    if end + width <= duration_s:
        return end, end + width, video
    return max(0.0, start - width), start, video
