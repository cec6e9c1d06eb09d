import pytest

from vagen.rewards import get_reward

numeric = get_reward("numeric")


@pytest.mark.parametrize("ground_truth, response, score", [
    ("EF is 60%", "EF is 60%", 1.0),
    ("EF is 60%", "EF is 55%", 0.964),
    ("EF is 30%", "EF is 30%", 1.0),
    ("EF is 60%", "No number", 0.0),
    ("Good quality", "Excellent", 0.5),
])
def test_numeric_issue_examples(ground_truth, response, score):
    assert numeric(response, ground_truth) == pytest.approx(score, abs=1e-3)


# s = 1 - (err/25)^2, m = 1 + 0.5 min(1, |gt-50|/30) when err <= 1, score min(1, 0.1 + 0.9 s m)
@pytest.mark.parametrize("ground_truth, response, score", [
    ("EF is 60%", "EF is 55%", 0.1 + 0.9 * 0.96),
    ("50", "50.5", 0.1 + 0.9 * (1 - 0.02 ** 2)),        # m = 1 at gt = 50: 0.99964
    ("80", "81.5", 0.1 + 0.9 * (1 - 0.06 ** 2)),        # err > 1: m = 1
    ("50", "100", 0.1),                                  # s = 0: a far number keeps 0.1
    ("1,200 steps", "<answer>1,210</answer>", 0.1 + 0.9 * 0.84),   # err 10: 0.856
    ("-3.5", "3.5", 0.1 + 0.9 * (1 - (7 / 25) ** 2)),   # the sign is read: 0.92944
    ("-3.5", "-3.5", 1.0),
    ("EF is 65.4%", "65.4", 1.0),
    ("Good quality", "EF is 60%", 0.5),                  # no GT number wins over the rest
])
def test_numeric_hand_computed(ground_truth, response, score):
    assert numeric(response, ground_truth) == pytest.approx(score)


def test_numeric_reads_the_answer_not_the_thinking():
    response = "<think>at first I thought 10</think><answer>EF is 55%</answer>"
    assert numeric(response, "EF is 60%") == pytest.approx(0.964)


def test_numeric_ground_truth_may_be_a_number():
    assert numeric("<answer>7</answer>", 7) == 1.0
