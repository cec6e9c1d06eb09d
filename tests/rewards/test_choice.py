import pytest

from vagen.rewards import get_reward
from vagen.rewards.choice import option_key

choice = get_reward("choice")
OPTIONS = {"options": ["blue", "red", "green", "yellow"]}


@pytest.mark.parametrize("response", [
    "B", "b", "B.", "b.", "(B)", "(b) red", "B) red", "B. red", "B: red",
    "<answer>B</answer>", "<answer> (B) </answer>",
    "<think>A or B? the square turned red</think><answer>B</answer>",
    "red", "Red.", "<answer>  RED </answer>",
])
def test_choice_accepts_letter_forms_and_option_text(response):
    assert choice(response, "B", OPTIONS) == 1.0


@pytest.mark.parametrize("response", [
    "A", "(C)", "blue", "A red square",   # "A " is a word, not a letter
    "E",                                   # past the last option
    "The answer is B",                     # not one of the accepted forms
    "<answer>B</answer> no wait <answer>C</answer>",   # the last answer counts
    "", "<answer></answer>",
])
def test_choice_rejects_other_options_and_prose(response):
    assert choice(response, "B", OPTIONS) == 0.0


@pytest.mark.parametrize("ground_truth", ["B", "(B)", "B. red", "red"])
def test_choice_ground_truth_forms(ground_truth):
    assert choice("<answer>B</answer>", ground_truth, OPTIONS) == 1.0
    assert choice("<answer>A</answer>", ground_truth, OPTIONS) == 0.0


def test_choice_without_options_compares_letters_or_text():
    assert choice("(C)", "C") == 1.0
    assert choice("<answer>Yes.</answer>", "yes") == 1.0
    assert choice("<answer>no</answer>", "yes") == 0.0


def test_choice_ground_truth_naming_no_option_is_an_error():
    with pytest.raises(ValueError, match="names no option"):
        choice("A", "purple", OPTIONS)
    with pytest.raises(ValueError, match="names no option"):
        choice("A", "F", OPTIONS)


def test_option_key():
    assert option_key("d) yellow", OPTIONS["options"]) is None   # lower-case "d)" is not a letter
    assert option_key("Yellow", OPTIONS["options"]) == "D"
    assert option_key("Z", None) == "Z"
