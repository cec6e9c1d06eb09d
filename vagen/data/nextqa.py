"""NExT-QA multiple-choice CSV (doc-doc/NExT-QA `dataset/nextqa/{train,val,test}.csv`).

Columns: video, frame_count, width, height, question, answer (0-based index of the right
option), qid, type, a0..a4. Videos are `NExTVideo/<folder>/<video>.mp4`, the folder coming
from `map_vid_vidorID.json` next to the CSV; without that file the videos are taken to be
`<video>.mp4` directly under the video root."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vagen.data.convert import Converter, Row, register_converter
from vagen.data.parse import (
    as_int,
    companion,
    read_csv,
    read_json,
    require,
    video_path,
)
from vagen.data.sample import Sample, SampleError, option_letter

OPTION_COLUMNS = ("a0", "a1", "a2", "a3", "a4")
VIDEO_MAP = "map_vid_vidorID.json"


@register_converter("nextqa")
class NextQA(Converter):
    video_column = "video"
    source = "nextqa"

    def load(self, path: Path) -> list[Row]:
        map_path = companion(path, VIDEO_MAP, required=False)
        self.video_map: dict[str, str] | None = read_json(map_path) if map_path else None
        return read_csv(path)

    def answer_letter(self, row: dict[str, Any], options: list[str]) -> str:
        index = as_int(row, "answer")
        if not 0 <= index < len(options):
            raise SampleError(f"field 'answer' is {index}; option indices are "
                              f"0..{len(options) - 1}")
        return option_letter(index)

    def grounding(self, video_id: str, qid: str) -> dict[str, Any]:
        """Sample fields from a companion span file (NExT-GQA); NExT-QA has none."""
        return {}

    def to_sample(self, row: dict[str, Any], video_root: Path) -> Sample:
        video_id = str(require(row, self.video_column))
        qid = str(require(row, "qid"))
        options = [str(require(row, column)) for column in OPTION_COLUMNS]
        grounded = self.grounding(video_id, qid)
        extra = {"frame_count": as_int(row, "frame_count"), "width": as_int(row, "width"),
                 "height": as_int(row, "height"), **grounded.pop("extra", {})}
        return Sample(
            id=f"{video_id}_{qid}",
            videos=[video_path(video_root, self.video_file(video_id))],
            question=str(require(row, "question")),
            answer=self.answer_letter(row, options),
            options=options,
            source=self.source,
            category=row.get("type") or "",
            extra=extra,
            **grounded,
        )

    def video_file(self, video_id: str) -> str:
        if self.video_map is None:
            return f"{video_id}.mp4"
        if video_id not in self.video_map:
            raise SampleError(f"field '{self.video_column}' is {video_id!r}, which "
                              f"{VIDEO_MAP} does not list")
        return f"{self.video_map[video_id]}.mp4"
