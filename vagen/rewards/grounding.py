"""Grounding: how well what the policy looked at matches the annotated evidence.

Spans are `[start_s, end_s]` (video 0) or `[start_s, end_s, video_index]`; frames are pool
indices (video 0) or `(video_index, pool_index)` pairs. Nothing matches nothing: every IoU
with an empty side, or with a union of zero length, is 0.0, so an empty retrieval never
earns credit."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from vagen.rewards.registry import register_reward

Span = Sequence[float]


def set_iou(a: Iterable[Hashable], b: Iterable[Hashable]) -> float:
    """|A ∩ B| / |A ∪ B| of two collections taken as sets; 0.0 when both are empty."""
    set_a, set_b = set(a), set(b)
    union = len(set_a | set_b)
    return len(set_a & set_b) / union if union else 0.0


def frame_set_iou(frames_a: Iterable[Any], frames_b: Iterable[Any]) -> float:
    """IoU of two frame sets; a bare index `i` is frame `(0, i)` of the first video."""
    return set_iou(map(_frame_key, frames_a), map(_frame_key, frames_b))


def temporal_iou(spans_a: Iterable[Span], spans_b: Iterable[Span]) -> float:
    """Length of (∪A ∩ ∪B) / length of (∪A ∪ ∪B), per video and summed over videos.

    Overlapping spans on one side count once: [[0, 4], [2, 6]] vs [[0, 6]] -> 1.0."""
    merged_a, merged_b = _merge_by_video(spans_a), _merge_by_video(spans_b)
    inter = sum(_overlap(merged_a[v], merged_b[v]) for v in merged_a.keys() & merged_b.keys())
    total = sum(e - s for spans in (*merged_a.values(), *merged_b.values()) for s, e in spans)
    union = total - inter
    return inter / union if union > 0 else 0.0


def seen_in_spans(seen_times: Sequence[float], seen_video_ids: Sequence[int] | None,
                  spans: Iterable[Span]) -> float:
    """Share of the distinct frames seen that lie inside a span of their video (ends count
    as inside); 0.0 when nothing was seen or there are no spans."""
    video_ids = list(seen_video_ids) if seen_video_ids else [0] * len(seen_times)
    if len(video_ids) != len(seen_times):
        raise ValueError(f"info['seen_video_ids'] has {len(video_ids)} entries but "
                         f"info['seen_times'] has {len(seen_times)}; give one video id per time")
    merged = _merge_by_video(spans)
    seen = {(int(v), round(float(t), 3)) for v, t in zip(video_ids, seen_times, strict=True)}
    if not seen or not merged:
        return 0.0
    inside = sum(any(s <= t <= e for s, e in merged.get(v, [])) for v, t in seen)
    return inside / len(seen)


def evidence_seen(seen_times: Sequence[float], seen_video_ids: Sequence[int] | None,
                  spans: Sequence[Sequence[float]]) -> bool:
    """Whether every span (`[s, e]` or `[s, e, video]`) holds a viewed frame of its video."""
    video_ids = list(seen_video_ids) if seen_video_ids else [0] * len(seen_times)
    seen = list(zip(video_ids, seen_times, strict=True))
    return all(any(v == (int(span[2]) if len(span) > 2 else 0) and span[0] <= t <= span[1]
                   for v, t in seen) for span in spans)


@register_reward("grounding")
def grounding_reward(response: str, ground_truth: Any = None, info: dict | None = None) -> float:
    """Share of the distinct frames shown to the policy (`info["seen_times"]`, with
    `info["seen_video_ids"]`, default video 0) inside `info["relevant_spans"]`; 0.0 without
    spans. The response and ground truth are not used: the env records what was shown."""
    info = info or {}
    return seen_in_spans(info.get("seen_times") or [], info.get("seen_video_ids"),
                         info.get("relevant_spans") or [])


def _frame_key(frame: Any) -> tuple[int, int]:
    if isinstance(frame, (tuple, list)):
        if len(frame) != 2:
            raise ValueError(f"frame {frame!r}: use a pool index or (video_index, pool_index)")
        return int(frame[0]), int(frame[1])
    return 0, int(frame)


def _merge_by_video(spans: Iterable[Span]) -> dict[int, list[tuple[float, float]]]:
    """Spans grouped by video, sorted, overlapping ones merged."""
    by_video: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for span in spans:
        if len(span) not in (2, 3) or float(span[0]) > float(span[1]):
            raise ValueError(f"span {list(span)!r}: use [start_s, end_s] or "
                             "[start_s, end_s, video_index] with start <= end")
        video = int(span[2]) if len(span) == 3 else 0
        by_video[video].append((float(span[0]), float(span[1])))
    merged: dict[int, list[tuple[float, float]]] = {}
    for video, intervals in by_video.items():
        out: list[tuple[float, float]] = []
        for start, end in sorted(intervals):
            if out and start <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], end))
            else:
                out.append((start, end))
        merged[video] = out
    return merged


def _overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    """Total length shared by two sorted lists of disjoint intervals."""
    total, i, j = 0.0, 0, 0
    while i < len(a) and j < len(b):
        total += max(0.0, min(a[i][1], b[j][1]) - max(a[i][0], b[j][0]))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total
