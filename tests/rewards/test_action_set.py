import pytest

from vagen.rewards import get_reward
from vagen.rewards.action_set import parse_actions

action_set = get_reward("action_set")
GT = "pick up cup, open door"


@pytest.mark.parametrize("response, score", [
    ("pick up cup, open door", 1.0),
    ("<answer>Pick  up CUP ;open door.</answer>", 1.0),
    ("open door; pick up cup", 1.0),              # same set, other order
    ("pick up cup, open door, jump", 2 / 3),
    ("<think>x</think><answer>pick up cup; walk</answer>", 1 / 3),
    ("run", 0.0),
    ("", 0.0),
])
def test_action_set_reward(response, score):
    assert action_set(response, GT) == pytest.approx(score)


def test_action_set_empty_ground_truth_scores_zero():
    assert action_set("", " , ;") == 0.0


def test_parse_actions():
    assert parse_actions(" A, b ;; C. ") == ["a", "b", "c"]
