import pytest

from vagen.rewards import get_reward

format_reward = get_reward("format")


@pytest.mark.parametrize("response, score", [
    ("<think>a</think><answer>b</answer>", 1.0),
    ("<answer>b</answer><think>a</think>", 0.6),
    ("<answer>b</answer>", 0.3),
    ("<think>a</think>", 0.3),
    ("<think>a</think>\n<retrieve>3,9</retrieve>", 0.3),
    ("<think>the square\nturned red</think> so <answer>B</answer>", 1.0),
    ("<think>a<answer>b</answer></think>", 0.6),   # the answer opens inside the think
    ("<think>a</think><answer>b", 0.3),            # unclosed answer does not count
    ("B", 0.0),
    ("", 0.0),
])
def test_format_reward(response, score):
    assert format_reward(response, None) == pytest.approx(score)
