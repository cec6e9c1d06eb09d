"""Multiple-choice reward: 1.0 when the answer names the ground-truth option, else 0.0.

The answer (the `<answer>` content, or the bare response) may name an option by letter
("B", "b", "B.", "(B)", "B) red", "B: red") or, when `info["options"]` lists the option
texts, by its text ("red", "Red."). The ground truth goes through the same reading, so a
letter, "(B)" or the option text all work as ground truth."""

from __future__ import annotations

import re
from typing import Any

from vagen.data.sample import option_index, option_letter
from vagen.rewards.parsing import answer_text, normalize_text
from vagen.rewards.registry import register_reward

# "(B)..." or "B." / "B)" / "B:" followed by anything, or a lone letter ("b", "b.") in
# either case. A capital followed by a space ("A red square") is a word, not a letter.
_LETTER = re.compile(r"\(([A-Za-z])\)|([A-Z])[.):]|([A-Za-z])\.?$")


def option_key(text: str, options: list[str] | None) -> str | None:
    """What `text` picks: an option letter ("B"), or without options its normalized text;
    None when it names no option (a letter past the last option, or an unknown text)."""
    text = text.strip()
    match = _LETTER.match(text)
    if match:
        letter = next(group for group in match.groups() if group).upper()
        if options is None or option_index(letter) < len(options):
            return letter
        return None
    normalized = normalize_text(text)
    if options is None:
        return normalized or None
    for i, option in enumerate(options):
        if normalize_text(str(option)) == normalized:
            return option_letter(i)
    return None


@register_reward("choice")
def choice_reward(response: str, ground_truth: Any, info: dict | None = None) -> float:
    """1.0 when the response picks the ground-truth option, else 0.0."""
    options = (info or {}).get("options")
    expected = option_key(str(ground_truth), options)
    if expected is None:
        raise ValueError(f"choice ground truth {ground_truth!r} names no option of {options!r}")
    return 1.0 if option_key(answer_text(response), options) == expected else 0.0
