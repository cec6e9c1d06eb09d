"""verl-tool video parquet (TIGER-AI-Lab/verl-tool `examples/data_preprocess/pixel_reasoner/`,
reused by the video_qar recipe).

Columns: data_source, prompt ([system, user] messages; the user content is one "<image>"
per media file, the question, then "\\n\\nGuidelines: ..."), images ([{image: path}];
video files for video rows), reward_model {ground_truth: str or list of str},
extra_info {split, index, qid, is_video, images}. Image rows (`is_video` false) are
skipped and counted. Relative paths are resolved against the video root; the recipe writes
absolute ones, kept as they are. Options written in the question ("A. x" lines) make a
choice question."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vagen.data.convert import Converter, Row, SkipRow, register_converter
from vagen.data.parse import (
    answer_type_of,
    choice_answer,
    read_parquet,
    require,
    split_inline_options,
    video_path,
)
from vagen.data.sample import Sample, SampleError

GUIDELINE_START = "\n\nGuidelines:"


@register_converter("verltool")
class VerlToolParquet(Converter):
    def load(self, path: Path) -> list[Row]:
        return read_parquet(path)

    def to_sample(self, row: dict[str, Any], video_root: Path) -> Sample:
        info = require(row, "extra_info")
        if not info.get("is_video"):
            raise SkipRow("image rows, not videos (extra_info.is_video is false)")
        media = [str(require(item, "image")) for item in require(row, "images")]
        user = [m for m in require(row, "prompt") if m.get("role") == "user"]
        if not user:
            raise SampleError("field 'prompt' has no user message")
        text = str(require(user[0], "content"))
        text = text.replace("<image>", "").replace("<video>", "").split(GUIDELINE_START)[0]
        question, options = split_inline_options(text)
        truths = require(require(row, "reward_model"), "ground_truth")
        truths = [truths] if isinstance(truths, str) else [str(t) for t in truths]
        if not truths:
            raise SampleError("field 'reward_model.ground_truth' is empty")
        answer = truths[0]
        if options:
            answer = choice_answer(answer, options, "reward_model.ground_truth")
        extra = {"split": info.get("split"), "index": info.get("index")}
        if len(truths) > 1:
            extra["ground_truths"] = truths
        return Sample(
            id=str(info.get("qid") or f"{info.get('split')}_{require(info, 'index')}"),
            videos=[video_path(video_root, m) for m in media],
            question=question,
            answer=answer,
            answer_type=answer_type_of(answer, options),
            options=options,
            source=str(row.get("data_source") or "verltool"),
            extra=extra,
        )
