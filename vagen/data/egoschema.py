"""EgoSchema (egoschema/EgoSchema: `questions.json`, `subset_answers.json`,
`uid_to_ego4d.json`; videos `<q_uid>.mp4`, 3-minute clips).

questions.json: [{q_uid, google_drive_id, question, "option 0" .. "option 4"}]. Answers are
public only for the 500-question subset (`subset_answers.json`, {q_uid: option index});
other questions get answer '' (`--answered-only` drops them). `uid_to_ego4d.json`, when
present, gives each clip's place in its Ego4D video and so its duration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vagen.data.convert import Converter, Row, register_converter
from vagen.data.parse import companion, read_json, read_json_list, require, video_path
from vagen.data.sample import Sample, SampleError, option_letter

NUM_OPTIONS = 5
ANSWERS = "subset_answers.json"
EGO4D_SPANS = "uid_to_ego4d.json"


@register_converter("egoschema")
class EgoSchema(Converter):
    def load(self, path: Path) -> list[Row]:
        answers, spans = companion(path, ANSWERS, False), companion(path, EGO4D_SPANS, False)
        self.answers: dict[str, int] = read_json(answers) if answers else {}
        self.ego4d: dict[str, dict[str, Any]] = read_json(spans) if spans else {}
        return read_json_list(path)

    def to_sample(self, row: dict[str, Any], video_root: Path) -> Sample:
        uid = str(require(row, "q_uid"))
        options = [str(require(row, f"option {i}")) for i in range(NUM_OPTIONS)]
        answer = ""
        if uid in self.answers:
            index = self.answers[uid]
            if not isinstance(index, int) or not 0 <= index < NUM_OPTIONS:
                raise SampleError(f"{ANSWERS} gives {index!r} for {uid}; expected 0..4")
            answer = option_letter(index)
        clip = self.ego4d.get(uid)
        duration = (float(require(clip, "ending_sec")) - float(require(clip, "starting_sec"))
                    if clip else None)
        return Sample(
            id=uid,
            videos=[video_path(video_root, f"{uid}.mp4")],
            question=str(require(row, "question")),
            answer=answer,
            options=options,
            duration_s=duration,
            source="egoschema",
            extra={"google_drive_id": row.get("google_drive_id"), "ego4d": clip},
        )
