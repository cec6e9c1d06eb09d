"""LongVideoBench (HF `longvideobench/LongVideoBench`: `lvb_val.json`, `lvb_test_wo_gt.json`,
videos in `videos/<video_path>` next to them, as the official loader reads them).

Rows: id, video_id, video_path, question, candidates (unlettered), correct_choice (0-based;
absent in the test file, so those samples get answer ''), duration (seconds),
duration_group, question_category, topic_category, level, position (frame numbers of the
referred moments), subtitle fields, and sometimes `type`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vagen.data.convert import Converter, Row, register_converter
from vagen.data.parse import as_int, read_json_list, require, video_path
from vagen.data.sample import Sample, SampleError, option_letter

_EXTRA_FIELDS = ("video_id", "duration_group", "topic_category", "level", "position", "type",
                 "question_wo_referring_query", "subtitle_path",
                 "starting_timestamp_for_subtitles")


@register_converter("longvideobench")
class LongVideoBench(Converter):
    def load(self, path: Path) -> list[Row]:
        return read_json_list(path)

    def to_sample(self, row: dict[str, Any], video_root: Path) -> Sample:
        options = [str(c) for c in require(row, "candidates")]
        answer = ""
        if row.get("correct_choice") is not None:
            index = as_int(row, "correct_choice")
            if not 0 <= index < len(options):
                raise SampleError(f"field 'correct_choice' is {index}; there are "
                                  f"{len(options)} candidates")
            answer = option_letter(index)
        return Sample(
            id=str(require(row, "id")),
            videos=[video_path(video_root, f"videos/{require(row, 'video_path')}")],
            question=str(require(row, "question")),
            answer=answer,
            options=options,
            duration_s=float(require(row, "duration")),
            source="longvideobench",
            category=row.get("question_category") or "",
            extra={k: row[k] for k in _EXTRA_FIELDS if k in row},
        )
