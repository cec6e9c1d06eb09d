"""The one sample schema every converter writes and every env reads (docs/architecture.md,
Contracts: Sample). Rows are JSONL, JSON (a list) or parquet; bad rows fail with the file, row and
field named."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from vagen.plain import plain

ANSWER_TYPES = ("choice", "number", "text", "actions")


class SampleError(ValueError):
    """A sample row that does not follow the schema; the message names file, row and field."""



# (upper bound in seconds, label); a duration falls in the first bucket whose bound exceeds it.
DURATION_BUCKETS: tuple[tuple[float, str], ...] = (
    (60.0, "<1 min"), (180.0, "1-3 min"), (600.0, "3-10 min"), (math.inf, ">10 min"))
UNKNOWN_DURATION = "unknown"


def duration_bucket(duration_s: float | None) -> str:
    """"<1 min" | "1-3 min" | "3-10 min" | ">10 min", or "unknown" without a duration."""
    if duration_s is None:
        return UNKNOWN_DURATION
    return next(label for bound, label in DURATION_BUCKETS if duration_s < bound)


def option_letter(index: int) -> str:
    """The letter that names option `index` (0 -> A): the one home of option lettering."""
    return chr(ord("A") + index)


def option_index(letter: str) -> int:
    """The option `letter` names (A -> 0)."""
    return ord(letter.upper()) - ord("A")


@dataclass
class Sample:
    """One question about one or more videos.

    `relevant_spans` are `[start_s, end_s]` in seconds of the first video, or
    `[start_s, end_s, video_index]` for multi-video samples. `options` are the choice texts
    (without letters); a choice `answer` is the option letter ("A", "B", ...).
    `extra` keeps source-specific fields a converter wants to carry along."""

    id: str
    videos: list[str]
    question: str
    answer: str
    answer_type: str = "choice"
    options: list[str] | None = None
    relevant_spans: list[list[float]] | None = None
    duration_s: float | None = None
    source: str = ""
    category: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise SampleError("field 'id' must be a non-empty string")
        if isinstance(self.videos, str):
            raise SampleError(f"sample {self.id}: field 'videos' must be a list of paths")
        if not self.videos or not all(isinstance(v, str) and v for v in self.videos):
            raise SampleError(f"sample {self.id}: field 'videos' must be a non-empty list of paths")
        if self.answer_type not in ANSWER_TYPES:
            raise SampleError(f"sample {self.id}: field 'answer_type' is {self.answer_type!r}; "
                              f"use one of {', '.join(ANSWER_TYPES)}")
        if self.answer_type == "choice" and not self.options:
            raise SampleError(f"sample {self.id}: field 'options' is required for choice answers")
        if not isinstance(self.question, str) or not self.question.strip():
            raise SampleError(f"sample {self.id}: field 'question' must be a non-empty string")
        self.answer = str(self.answer)
        for span in self.relevant_spans or []:
            if len(span) not in (2, 3) or float(span[0]) > float(span[1]):
                raise SampleError(f"sample {self.id}: field 'relevant_spans' has {span!r}; "
                                  "each span is [start_s, end_s] or [start_s, end_s, video_index] "
                                  "with start <= end")

    @property
    def choice_letters(self) -> list[str]:
        return [option_letter(i) for i in range(len(self.options or []))]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Sample:
        known = {f.name for f in fields(cls)}
        missing = [name for name in ("id", "videos", "question", "answer") if name not in row]
        if missing:
            raise SampleError(f"missing field '{missing[0]}'")
        kwargs = {k: plain(v) for k, v in row.items() if k in known}
        extra = {k: plain(v) for k, v in row.items() if k not in known}
        kwargs["id"] = str(kwargs["id"])
        stored = kwargs.get("extra") or {}
        if isinstance(stored, str):  # parquet keeps `extra` as a JSON string
            stored = json.loads(stored)
        kwargs["extra"] = {**stored, **extra}
        return cls(**kwargs)


def load_samples(path: str | Path) -> list[Sample]:
    """Read samples from `.jsonl`, `.json` (a list of rows) or `.parquet`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"samples file not found: {path}")
    if path.suffix == ".parquet":
        import pandas as pd

        rows = pd.read_parquet(path).to_dict(orient="records")
    elif path.suffix == ".json":
        rows = json.loads(path.read_text())
    else:
        rows = []
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise SampleError(f"{path}: line {lineno} is not JSON ({err})") from err
    samples = []
    for i, row in enumerate(rows):
        try:
            samples.append(Sample.from_dict(row))
        except (SampleError, TypeError) as err:
            raise SampleError(f"{path}: row {i}: {err}") from err
    return samples


def save_samples(samples: list[Sample], path: str | Path) -> Path:
    """Write samples as JSONL (or parquet when the path ends in `.parquet`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        import pandas as pd

        rows = [s.to_dict() for s in samples]
        for row in rows:
            row["extra"] = json.dumps(row["extra"])
        pd.DataFrame(rows).to_parquet(path, index=False)
    else:
        with path.open("w") as f:
            for s in samples:
                f.write(json.dumps(s.to_dict()) + "\n")
    return path
