"""NExT-GQA grounded QA (doc-doc/NExT-GQA `datasets/nextgqa/{val,test}.csv` with
`gsub_{val,test}.json`).

The CSV is NExT-QA's (video column `video_id`, `answer` is the option TEXT); the span file
next to it, `{video_id: {duration, fps, location: {qid: [[start_s, end_s], ...]}}}`, gives
`relevant_spans` and `duration_s`. Videos are found as for NExT-QA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vagen.data.convert import Row, register_converter
from vagen.data.nextqa import NextQA
from vagen.data.parse import choice_answer, companion, read_json, require
from vagen.data.sample import SampleError


@register_converter("nextgqa")
class NextGQA(NextQA):
    video_column = "video_id"
    source = "nextgqa"

    def load(self, path: Path) -> list[Row]:
        self.spans_name = f"gsub_{path.stem}.json"
        self.spans: dict[str, Any] = read_json(companion(path, self.spans_name))
        return super().load(path)

    def answer_letter(self, row: dict[str, Any], options: list[str]) -> str:
        return choice_answer(require(row, "answer"), options, "answer")

    def grounding(self, video_id: str, qid: str) -> dict[str, Any]:
        video = self.spans.get(video_id) or {}
        if qid not in (video.get("location") or {}):
            raise SampleError(f"field 'location': {self.spans_name} has no span for video "
                              f"{video_id} qid {qid}")
        return {"relevant_spans": [[float(s), float(e)] for s, e in video["location"][qid]],
                "duration_s": float(require(video, "duration")),
                "extra": {"fps": float(require(video, "fps"))}}
