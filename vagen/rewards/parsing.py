"""Reading model text: tags, the answer, numbers. One place, so every reward agrees on what
"the answer" is. Nothing here raises on model text."""

from __future__ import annotations

import re

# A number: optional sign (only when the minus is not glued to a word, as in "COVID-19"),
# thousands groups ("1,200") or plain digits, an optional decimal part; or ".5".
_NUMBER = re.compile(r"(?:(?<!\w)-)?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)")
_SPACES = re.compile(r"\s+")


def find_tag(text: str, tag: str) -> re.Match[str] | None:
    """The first complete `<tag>...</tag>` in `text` (content may span lines)."""
    return re.search(rf"<{tag}>(.*?)</{tag}>", text, re.DOTALL)


def answer_text(response: str) -> str:
    """The content of the last `<answer>...</answer>`, or the whole response when it has
    none (a bare answer, as single-turn baselines and evaluation prompts produce)."""
    answers = re.findall(r"<answer>(.*?)</answer>", response, re.DOTALL)
    return (answers[-1] if answers else response).strip()


def first_number(text: str) -> float | None:
    """The first number in `text`: "EF is 65.4%" -> 65.4, "1,200" -> 1200.0, "-3.5" -> -3.5;
    None when there is none."""
    match = _NUMBER.search(text)
    return float(match.group().replace(",", "")) if match else None


def normalize_text(text: str) -> str:
    """Lower case, single spaces, no surrounding spaces or trailing full stop: the form in
    which two phrasings of the same option or action compare equal."""
    return _SPACES.sub(" ", text).strip().rstrip(".").strip().lower()
