"""Numeric reward (as 002): a smooth score of the first number of the answer against the
first number of the ground truth, with extra credit near-exact values far from 50 (the
ejection-fraction ranges the formula was made for).

    gt without a number -> 0.5;  prediction without a number -> 0.0;  else
    min(1, 0.1 + 0.9 * s * m),  s = max(0, 1 - (err / SCALE)^2),
    m = 1 + 0.5 * min(1, |gt - 50| / 30) when err <= TOLERANCE, else 1.

"EF is 60%" vs "EF is 55%" -> 0.964. A far-off number still earns 0.1, and an error
within TOLERANCE always earns 1.0 (so for small counts an off-by-one scores 1.0: judge
correctness of counts elsewhere)."""

from __future__ import annotations

from typing import Any

from vagen.rewards.parsing import answer_text, first_number
from vagen.rewards.registry import register_reward

SCALE = 25.0
TOLERANCE = 1.0
NO_GT_NUMBER_SCORE = 0.5


@register_reward("numeric")
def numeric_reward(response: str, ground_truth: Any, info: dict | None = None) -> float:
    """Score the first number of the answer (`<answer>` content or the bare response)."""
    gt = first_number(str(ground_truth))
    if gt is None:
        return NO_GT_NUMBER_SCORE
    pred = first_number(answer_text(response))
    if pred is None:
        return 0.0
    err = abs(pred - gt)
    s = max(0.0, 1.0 - (err / SCALE) ** 2)
    m = 1.0 + 0.5 * min(1.0, abs(gt - 50.0) / 30.0) if err <= TOLERANCE else 1.0
    return min(1.0, 0.1 + 0.9 * s * m)
