"""LLaVA-style video JSON, as Qwen2.5-VL fine-tuning and GRPO recipes use it.

[{id, video: "videos/x.mp4" or a list of paths, conversations: [{from: "human", value:
"<video>\\nquestion"}, {from: "gpt", value: "<answer>...</answer>"}], meta: {frame_cnts,
min_frames, max_frames, dynamic_sample}}]. Video paths are relative to the video root;
`meta` is kept in `extra["meta"]`. Answer types: lettered options written in the question
("A. x" lines) make a choice; an answer of numbered actions ("(2) ... (5) ...", picked
from a numbered list in the question) is an action set, written "(2) ...; (5) ..." (the
list form the action_set reward splits); a number is numeric; else text."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vagen.data.convert import Converter, Row, register_converter
from vagen.data.parse import (
    answer_type_of,
    choice_answer,
    read_json_list,
    require,
    split_inline_options,
    strip_answer_tags,
    video_path,
)
from vagen.data.sample import Sample, SampleError

_ACTION_START = re.compile(r"\s*(?=\(\d+\))")  # before each "(n)" of an answer


@register_converter("llava_json")
class LlavaJson(Converter):
    def load(self, path: Path) -> list[Row]:
        return read_json_list(path)

    def to_sample(self, row: dict[str, Any], video_root: Path) -> Sample:
        videos = require(row, "video")
        videos = [videos] if isinstance(videos, str) else list(videos)
        prompt = _turn(row, "human").replace("<video>", "").strip()
        answer = strip_answer_tags(_turn(row, "gpt"))
        question, options = split_inline_options(prompt)
        if options:
            answer, answer_type = choice_answer(answer, options, "conversations[gpt]"), "choice"
        elif _ACTION_START.match(answer):  # the answer starts with "(n)"
            question, answer_type = prompt, "actions"
            answer = "; ".join(a for a in _ACTION_START.split(answer) if a)
        else:
            question, answer_type = prompt, answer_type_of(answer, None)
        extra = {"meta": row["meta"]} if "meta" in row else {}
        return Sample(
            id=str(require(row, "id")),
            videos=[video_path(video_root, str(v)) for v in videos],
            question=question,
            answer=answer,
            answer_type=answer_type,
            options=options,
            source="llava_json",
            extra=extra,
        )


def _turn(row: dict[str, Any], speaker: str) -> str:
    """The first `speaker` turn's text ("human" or "gpt")."""
    for turn in require(row, "conversations"):
        if turn.get("from") == speaker:
            return str(require(turn, "value"))
    raise SampleError(f"field 'conversations' has no '{speaker}' turn")
