import pytest

from vagen.rewards.parsing import answer_text, find_tag, first_number, normalize_text


@pytest.mark.parametrize("text, number", [
    ("EF is 65.4%", 65.4),
    ("about 1,200 frames", 1200.0),
    ("-3.5", -3.5),
    ("change of -3.5 points", -3.5),
    ("COVID-19", 19.0),      # a hyphen glued to a word is not a sign
    ("1,2 and 3", 1.0),      # "1,2" is not a thousands group
    ("at .5 s", 0.5),
    ("EF60%", 60.0),
    ("No number", None),
    ("", None),
])
def test_first_number(text, number):
    assert first_number(text) == number


def test_answer_text_takes_last_answer_or_bare_response():
    assert answer_text("<think>A?</think><answer> B </answer>") == "B"
    assert answer_text("<answer>A</answer> no, <answer>C</answer>") == "C"
    assert answer_text("  B) red \n") == "B) red"
    assert answer_text("<answer>unclosed") == "<answer>unclosed"


def test_find_tag_spans_lines_and_needs_closing_tag():
    match = find_tag("x<think>line 1\nline 2</think>y", "think")
    assert match.group(1) == "line 1\nline 2"
    assert find_tag("<think>open only", "think") is None


def test_normalize_text():
    assert normalize_text("  Open   the\nDoor. ") == "open the door"
