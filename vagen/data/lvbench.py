"""LVBench (HF `THUDM/LVBench`, `video_info.meta.jsonl`; videos `<key>.mp4`).

One JSON line per video: key (YouTube id), type (genre), video_info {duration_minutes,
fps, resolution}, qa [{uid, question with the options inline ("...\\n(A) x\\n(B) y"),
answer (a letter), question_type (list of capabilities), time_reference ("MM:SS-MM:SS",
the evidence span)}]. Sample ids are the question uids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vagen.data.convert import Converter, Row, register_converter
from vagen.data.parse import (
    choice_answer,
    clock_seconds,
    read_jsonl,
    require,
    split_inline_options,
    video_path,
)
from vagen.data.sample import Sample, SampleError

_VIDEO = "_video"  # the video line's fields, added to each question row by `load`


@register_converter("lvbench")
class LVBench(Converter):
    def load(self, path: Path) -> list[Row]:
        rows = []
        for where, video in read_jsonl(path):
            if not isinstance(video.get("qa"), list):
                raise SampleError(f"{path}: {where}: missing field 'qa' (the video's questions)")
            video_fields = {k: v for k, v in video.items() if k != "qa"}
            rows += [(f"{where} qa {i}", {**qa, _VIDEO: video_fields})
                     for i, qa in enumerate(video["qa"])]
        return rows

    def to_sample(self, row: dict[str, Any], video_root: Path) -> Sample:
        video = row[_VIDEO]
        key = str(require(video, "key"))
        question, options = split_inline_options(str(require(row, "question")))
        if not options:
            raise SampleError("field 'question' has no inline options \"(A) ...\"")
        capabilities = row.get("question_type") or []
        info = video.get("video_info") or {}
        minutes = info.get("duration_minutes")
        return Sample(
            id=str(require(row, "uid")),
            videos=[video_path(video_root, f"{key}.mp4")],
            question=question,
            answer=choice_answer(require(row, "answer"), options, "answer"),
            options=options,
            relevant_spans=_span(row.get("time_reference")),
            duration_s=float(minutes) * 60 if minutes is not None else None,
            source="lvbench",
            category=capabilities[0] if capabilities else "",
            extra={"video_key": key, "genre": video.get("type"), "question_type": capabilities,
                   "time_reference": row.get("time_reference")},
        )


def _span(reference: str | None) -> list[list[float]] | None:
    """"00:15-00:19" -> [[15.0, 19.0]]."""
    if not reference:
        return None
    start, sep, end = str(reference).partition("-")
    try:
        span = [clock_seconds(start), clock_seconds(end)] if sep else None
    except ValueError:
        span = None
    if span is None:
        raise SampleError(f"field 'time_reference' is {reference!r}; expected "
                          "'MM:SS-MM:SS' or 'HH:MM:SS-HH:MM:SS'")
    return [span]
