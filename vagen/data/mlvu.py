"""MLVU dev (JUNJIE99/MLVU `json/<n>_<task>.json`; videos in `video/<n>_<task>/<video>`).

Input: one task file or the `json/` folder (all task files). Rows: video, duration
(seconds), question, candidates (multiple-choice tasks; `answer` is the right candidate's
TEXT), answer, question_type, and `scoring_points` in the open-ended sub-scene task. Ids are
`<task file stem>_<row index>`, as the files carry none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vagen.data.convert import Converter, Row, register_converter
from vagen.data.parse import answer_type_of, choice_answer, read_json_list, require, video_path
from vagen.data.sample import Sample, SampleError

_TASK, _ID = "_task_file", "_id"  # added to each row by `load`


@register_converter("mlvu")
class MLVU(Converter):
    def load(self, path: Path) -> list[Row]:
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        if not files:
            raise SampleError(f"{path}: no MLVU task files (*.json) in this folder")
        return [(f"{file.name} {where}", {**row, _TASK: file.stem, _ID: f"{file.stem}_{i}"})
                for file in files for i, (where, row) in enumerate(read_json_list(file))]

    def to_sample(self, row: dict[str, Any], video_root: Path) -> Sample:
        task = row[_TASK]
        options = [str(c) for c in row["candidates"]] if row.get("candidates") else None
        answer = str(require(row, "answer"))
        if options:
            answer = choice_answer(answer, options, "answer")
        extra = {"task": task}
        if "scoring_points" in row:
            extra["scoring_points"] = row["scoring_points"]
        return Sample(
            id=row[_ID],
            videos=[video_path(video_root, f"{task}/{require(row, 'video')}")],
            question=str(require(row, "question")),
            answer=answer,
            answer_type=answer_type_of(answer, options),
            options=options,
            duration_s=float(require(row, "duration")),
            source="mlvu",
            category=row.get("question_type") or "",
            extra=extra,
        )
