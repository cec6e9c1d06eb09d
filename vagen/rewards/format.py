"""Format reward (as 003): +0.3 for a `<think>...</think>`, +0.3 for an
`<answer>...</answer>`, +0.4 when the (first) think closes before the (first) answer opens."""

from __future__ import annotations

from typing import Any

from vagen.rewards.parsing import find_tag
from vagen.rewards.registry import register_reward

THINK_REWARD = 0.3
ANSWER_REWARD = 0.3
ORDER_REWARD = 0.4


@register_reward("format")
def format_reward(response: str, ground_truth: Any = None, info: dict | None = None) -> float:
    """`<think>a</think><answer>b</answer>` -> 1.0; `<answer>b</answer><think>a</think>`
    -> 0.6; `<answer>b</answer>` -> 0.3. The ground truth is not used."""
    think = find_tag(response, "think")
    answer = find_tag(response, "answer")
    score = 0.0
    if think:
        score += THINK_REWARD
    if answer:
        score += ANSWER_REWARD
    if think and answer and think.end() <= answer.start():
        score += ORDER_REWARD
    return score
