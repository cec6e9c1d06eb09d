"""The results of a run on disk: `results.jsonl`, one line per played episode written as it
finishes (so a killed run loses at most the batch in flight), and `run.json`, the settings
that decide the numbers, so that a resumed run never mixes results of other settings."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

RESULTS_FILE = "results.jsonl"
RUN_FILE = "run.json"


class ResultsError(ValueError):
    """An output folder that cannot be resumed; the message says what to do."""


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """The results in `path` (none when it does not exist). A last line cut short by a kill
    is dropped from the file, so that its episode is played again; any other unreadable line
    is an error naming it."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text().split("\n")
    results = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            results.append(json.loads(line))
        except json.JSONDecodeError as err:
            if lineno == len(lines):  # no newline after it: the write was interrupted
                path.write_text("".join(f"{kept}\n" for kept in lines[:-1] if kept.strip()))
                break
            raise ResultsError(f"{path}: line {lineno} is not JSON ({err}); remove the line "
                               "to resume") from err
    return results


class ResultsWriter:
    """Appends results to `results.jsonl`, one flushed line each."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None

    def __enter__(self) -> ResultsWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def write(self, result: Mapping[str, Any]) -> None:
        if self._file is None:
            raise RuntimeError("ResultsWriter.write outside its `with` block")
        self._file.write(json.dumps(result) + "\n")
        self._file.flush()


def check_run(out_dir: str | Path, run: Mapping[str, Any]) -> None:
    """Record `run` in `out_dir/run.json`, or check it equals the one recorded there."""
    path = Path(out_dir) / RUN_FILE
    if path.exists():
        recorded = json.loads(path.read_text())
        changed = [k for k in sorted(set(recorded) | set(run)) if recorded.get(k) != run.get(k)]
        if changed:
            key = changed[0]
            raise ResultsError(f"{out_dir} holds results of another run ({key}: "
                               f"{recorded.get(key)!r}, now {run.get(key)!r}); use another "
                               "--out, or delete the folder to start over")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(run), indent=2) + "\n")
