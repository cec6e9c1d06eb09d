"""Video-MTR annotation JSON (Xyuan13/Video-MTR `data/{train,eval}/*.json`, Video-R1 style).

[{problem_id, problem (or `query`), problem_type ("multiple choice", "numerical", ...),
options (["A. x", ...]), solution ("<answer>B</answer>"), path ("./Evaluation/<bench>/...",
or `vid` for QVHighlights rows: "videos/<vid>.mp4"), data_source, relevant_sample_frames
(train rows: frame indices among the <= 64 frames the Video-MTR env decodes)}]. Paths are
resolved as Video-MTR does: a leading "./Evaluation" (else ".") is cut off and the rest
is taken under the video root (its `data_root`). `relevant_sample_frames` is kept in
`extra`: turning it into seconds needs the video's duration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vagen.data.convert import Converter, Row, register_converter
from vagen.data.parse import (
    answer_type_of,
    choice_answer,
    read_json_list,
    read_jsonl,
    require,
    strip_answer_tags,
    strip_option_letter,
    video_path,
)
from vagen.data.sample import Sample, SampleError

EVAL_PREFIX = "./Evaluation"


@register_converter("videomtr")
class VideoMTR(Converter):
    def load(self, path: Path) -> list[Row]:
        return read_jsonl(path) if path.suffix == ".jsonl" else read_json_list(path)

    def to_sample(self, row: dict[str, Any], video_root: Path) -> Sample:
        question = row.get("problem") or row.get("query")
        if not question:
            raise SampleError("missing field 'problem'")
        problem_type = str(require(row, "problem_type"))
        options = None
        answer = strip_answer_tags(require(row, "solution"))
        if problem_type == "multiple choice":
            options = [strip_option_letter(o, i) for i, o in enumerate(require(row, "options"))]
            answer = choice_answer(answer, options, "solution")
        extra: dict[str, Any] = {"problem_type": problem_type}
        if row.get("relevant_sample_frames") is not None:
            extra["relevant_sample_frames"] = [int(i) for i in row["relevant_sample_frames"]]
        return Sample(
            id=str(require(row, "problem_id")),
            videos=[video_path(video_root, _relative_path(row))],
            question=str(question),
            answer=answer,
            answer_type=answer_type_of(answer, options),
            options=options,
            source=str(row.get("data_source") or "videomtr"),
            extra=extra,
        )


def _relative_path(row: dict[str, Any]) -> str:
    if row.get("path"):
        path = str(row["path"])
        if path.startswith(EVAL_PREFIX):
            path = path[len(EVAL_PREFIX):]
        elif path.startswith("."):
            path = path[1:]
        return path.lstrip("/")
    if row.get("vid"):
        return f"videos/{row['vid']}.mp4"
    raise SampleError("missing field 'path' (or 'vid')")
