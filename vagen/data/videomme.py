"""Video-MME (HF `lmms-lab/Video-MME`, `videomme/test-00000-of-00001.parquet`).

One row per question: video_id ("001"), duration ("short"/"medium"/"long", a bucket, not
seconds), domain, sub_category, url, videoID (YouTube id; the file is `data/<videoID>.mp4`),
question_id, task_type, question, options (["A. ...", ...]), answer (a letter). The same
rows as JSON/JSONL are read too, and the per-video layout of the official results template
(`[{video_id, duration, domain, sub_category, videoID or url, questions: [...]}]`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vagen.data.convert import Converter, Row, register_converter
from vagen.data.parse import (
    choice_answer,
    read_json_list,
    read_jsonl,
    read_parquet,
    require,
    strip_option_letter,
    video_path,
)
from vagen.data.sample import Sample, SampleError

_READERS = {".parquet": read_parquet, ".jsonl": read_jsonl, ".json": read_json_list}
_VIDEO_FIELDS = ("video_id", "duration", "domain", "sub_category", "url", "videoID")


@register_converter("videomme")
class VideoMME(Converter):
    def load(self, path: Path) -> list[Row]:
        if path.suffix not in _READERS:
            raise SampleError(f"{path}: Video-MME annotations are .parquet, .jsonl or .json")
        rows = []
        for where, row in _READERS[path.suffix](path):
            if "questions" not in row:
                rows.append((where, row))
                continue
            video = {k: row[k] for k in _VIDEO_FIELDS if k in row}
            for i, question in enumerate(row["questions"]):
                rows.append((f"{where} question {i}", {**video, **question}))
        return rows

    def to_sample(self, row: dict[str, Any], video_root: Path) -> Sample:
        options = [strip_option_letter(o, i) for i, o in enumerate(require(row, "options"))]
        return Sample(
            id=str(require(row, "question_id")),
            videos=[video_path(video_root, f"{_youtube_id(row)}.mp4")],
            question=str(require(row, "question")),
            answer=choice_answer(require(row, "answer"), options, "answer"),
            options=options,
            source="videomme",
            category=row.get("task_type") or "",
            extra={"video_id": row.get("video_id"), "duration_group": row.get("duration"),
                   "domain": row.get("domain"), "sub_category": row.get("sub_category")},
        )


def _youtube_id(row: dict[str, Any]) -> str:
    """`videoID`, else the id in `url` (a watch URL, or a bare id in some re-releases)."""
    if row.get("videoID"):
        return str(row["videoID"])
    if row.get("url"):
        return str(row["url"]).rsplit("v=", 1)[-1]
    raise SampleError("missing field 'videoID' (the YouTube id naming the video file)")
