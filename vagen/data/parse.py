"""Parsing helpers the benchmark converters share: reading annotation files, required
fields, option letters and answer types. Errors are `SampleError`s naming the field; the
converter loop adds the file and row."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Any

from vagen.data.sample import SampleError, option_letter

_MISSING = object()
# "A. text", "A) text", "(A) text", "A: text"
_LETTERED = re.compile(r"^\s*\(?([A-Z])[).:]\s*(.*)$", re.S)
_NUMBER = re.compile(r"^[-+]?(\d{1,3}(,\d{3})+|\d+)?(\.\d+)?%?$")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.S)


def require(row: dict[str, Any], key: str) -> Any:
    """`row[key]`, or a SampleError naming the field when it is absent or null."""
    value = row.get(key, _MISSING)
    if value is _MISSING or value is None:
        raise SampleError(f"missing field '{key}'")
    return value


def as_int(row: dict[str, Any], key: str) -> int:
    """A required integer field (CSV cells are strings)."""
    value = require(row, key)
    try:
        return int(value)
    except (TypeError, ValueError) as err:
        raise SampleError(f"field '{key}' is {value!r}, not an integer") from err


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise SampleError(f"{path} is not valid JSON ({err})") from err


def read_json_list(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """A JSON list of objects as (where, row) pairs: "row 0", "row 1", ..."""
    items = read_json(path)
    if not isinstance(items, list):
        raise SampleError(f"{path}: expected a JSON list of rows, got {type(items).__name__}")
    return [(f"row {i}", item) for i, item in enumerate(items)]


def read_jsonl(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """JSON Lines as (where, row) pairs with 1-based line numbers; blank lines skipped."""
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append((f"line {lineno}", json.loads(line)))
            except json.JSONDecodeError as err:
                raise SampleError(f"{path}: line {lineno} is not JSON ({err})") from err
    return rows


def read_csv(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """CSV with a header as (where, row) pairs; "line N" counts the header as line 1."""
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    with path.open(newline="", encoding="utf-8") as f:
        return [(f"line {i}", row) for i, row in enumerate(csv.DictReader(f), start=2)]


def read_parquet(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """Parquet rows as plain Python values (lists, dicts), as (where, row) pairs."""
    import pyarrow.parquet as pq

    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    return [(f"row {i}", row) for i, row in enumerate(pq.read_table(path).to_pylist())]


def companion(path: Path, name: str, required: bool = True) -> Path | None:
    """A file the benchmark ships next to its main annotation file (`path`)."""
    other = path.parent / name
    if other.is_file():
        return other
    if required:
        raise FileNotFoundError(f"{name} not found next to {path.name}: expected {other}")
    return None


def video_path(root: Path, relative: str) -> str:
    """Absolute, normalised path of a video named relative to the video root."""
    return os.path.abspath(os.path.join(root, relative))


def strip_option_letter(text: str, index: int) -> str:
    """"B. Candles." -> "Candles." when the letter is the one expected at `index`."""
    match = _LETTERED.match(str(text))
    if match and match.group(1) == option_letter(index):
        return match.group(2).strip()
    return str(text).strip()


def split_inline_options(text: str) -> tuple[str, list[str] | None]:
    """Options written into the question as lines "(A) x" / "A. x", from A on in order:
    returns (the text before them, the option texts), or (text, None) when there are fewer
    than two. Lines after the last option (instructions) are dropped."""
    lines = text.split("\n")
    for start in range(len(lines)):
        options = _lettered_run(lines[start:])
        if len(options) >= 2:
            return "\n".join(lines[:start]).strip(), options
    return text.strip(), None


def _lettered_run(lines: list[str]) -> list[str]:
    """Texts of the lines lettered A, B, C, ... in order, up to the first other line."""
    options: list[str] = []
    for line in lines:
        match = _LETTERED.match(line)
        if not match or match.group(1) != option_letter(len(options)):
            break
        options.append(match.group(2).strip())
    return options


def is_number(text: str) -> bool:
    """True for answers that are one number: "3", "-2.5", "1,200", "65.4%"."""
    text = str(text).strip()
    return bool(text) and any(c.isdigit() for c in text) and bool(_NUMBER.match(text))


def choice_answer(answer: Any, options: list[str], key: str) -> str:
    """The option letter for an answer given as a letter ("B", "(B)", "B. text") or as
    the text of one option; a SampleError naming `key` otherwise."""
    text = str(answer).strip()
    letters = [option_letter(i) for i in range(len(options))]
    if text.strip("().: ") in letters:
        return text.strip("().: ")
    match = _LETTERED.match(text)
    if match and match.group(1) in letters:
        if _same(match.group(2), options[letters.index(match.group(1))]):
            return match.group(1)
    for named, option in zip(letters, options, strict=True):
        if _same(text, option):
            return named
    raise SampleError(f"field '{key}' is {answer!r}: neither an option letter "
                      f"A-{letters[-1]} nor the text of one of the options")


def _same(a: str, b: str) -> bool:
    return a.strip().rstrip(".").casefold() == b.strip().rstrip(".").casefold()


def answer_type_of(answer: str, options: list[str] | None) -> str:
    """choice when there are options, number for a numeric answer, else text."""
    if options:
        return "choice"
    return "number" if is_number(answer) else "text"


def strip_answer_tags(text: str) -> str:
    """"<answer>B</answer>" -> "B"; text without tags is returned stripped."""
    match = _ANSWER_TAG.search(str(text))
    return (match.group(1) if match else str(text)).strip()


def clock_seconds(text: str) -> float:
    """"SS", "MM:SS" or "HH:MM:SS" (fractions allowed) -> seconds."""
    seconds = 0.0
    for part in text.strip().split(":"):
        seconds = seconds * 60 + float(part)
    return seconds
