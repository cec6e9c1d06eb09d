"""Action-set reward (as 003): 1.0 for the exact list, else the IoU of the two sets of
actions. A list is comma- or semicolon-separated; items compare case- and
space-insensitively ("Pick up; open door" has the actions "pick up" and "open door")."""

from __future__ import annotations

import re
from typing import Any

from vagen.rewards.grounding import set_iou
from vagen.rewards.parsing import answer_text, normalize_text
from vagen.rewards.registry import register_reward

_SEPARATORS = re.compile(r"[,;]")


def parse_actions(text: str) -> list[str]:
    """The normalized, non-empty items of a comma/semicolon separated list, in order."""
    return [item for item in map(normalize_text, _SEPARATORS.split(text)) if item]


@register_reward("action_set")
def action_set_reward(response: str, ground_truth: Any, info: dict | None = None) -> float:
    """1.0 when the answer lists the ground-truth actions in order, else the IoU of the sets;
    0.0 when the ground truth lists no action."""
    expected = parse_actions(str(ground_truth))
    if not expected:
        return 0.0
    predicted = parse_actions(answer_text(response))
    if predicted == expected:
        return 1.0
    return set_iou(predicted, expected)
