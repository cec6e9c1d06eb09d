import pytest

from vagen.data import Sample
from vagen.env.video_qa import VideoQAConfig
from vagen.env.video_qa.prompts import frame_line, question_text, system_prompt, turn_text


@pytest.mark.parametrize("protocol, example", [
    ("retrieve", "<retrieve>24,31</retrieve>"),
    ("query", "<query>frames 24-31</query>"),
    ("timestamps", "<frames>24.5,25.5,26.5,27.5,28.5,29.5,30.5,31.5</frames>"),
])
def test_system_prompt_explains_the_protocol_with_one_worked_example(protocol, example):
    prompt = system_prompt(VideoQAConfig(protocol=protocol, max_turns=4, frames_per_turn=6))
    assert prompt.count(example) == 1
    assert "You have 4 turns; the last one must be an answer." in prompt
    assert "up to 6 frames" in prompt or "next 6 frames" in prompt or "at most 6" in prompt
    assert prompt.rstrip().endswith("<answer>B</answer>")


def test_retrieve_in_seconds_says_so():
    prompt = system_prompt(VideoQAConfig(retrieve_units="seconds"))
    assert "with times in seconds start <= end" in prompt and "<retrieve>24,31.5" in prompt


def test_single_prompt_only_answers():
    prompt = system_prompt(VideoQAConfig(protocol="single", max_turns=1))
    assert "<answer>X</answer>" in prompt and "turns" not in prompt
    assert "<retrieve>" not in prompt and "<query>" not in prompt and "<frames>" not in prompt


def test_observation_texts():
    sample = Sample(id="s", videos=["a.mp4"], question=" What now? ", options=["x", "y"],
                    answer="A")
    assert question_text(sample) == "Question: What now?\nOptions:\nA. x\nB. y"
    assert frame_line(0, 12, 12.5, 1) == "Frame 12 at 12.5s: <image>"
    assert frame_line(2, 3, 3.5, 3) == "Video 3 frame 3 at 3.5s: <image>"
    assert frame_line(0, None, 3.25, 1) == "Frame at 3.25s: <image>"
    assert turn_text("query", 2) == ("You have 2 turns left: answer with <answer>...</answer> "
                                     "or ask for frames with <query>...</query>.")
    assert turn_text("query", 1) == turn_text("single", 1) == (
        "This is your last turn: you must answer now with <answer>...</answer>.")


def test_compact_style_is_one_line_of_rules_and_short_turn_texts():
    config = VideoQAConfig(prompt_style="compact", frame_labels="index", max_turns=2)
    assert system_prompt(config) == ("Think in <think>...</think>, then answer with "
                                     "<answer>...</answer> or ask for frames with "
                                     "<retrieve>start,end</retrieve>.")
    single = system_prompt(VideoQAConfig(protocol="single", max_turns=1, prompt_style="compact"))
    assert "\n" not in single and "<retrieve>" not in single
    sample = Sample(id="s", videos=["a.mp4"], question="What now?", options=["x", "y"],
                    answer="A")
    assert question_text(sample, "compact") == "What now?\nA. x B. y"
    assert frame_line(0, 12, 12.5, 1, labels="index") == "12 <image>"
    assert frame_line(1, 3, 3.5, 2, labels="index") == "v2 3 <image>"
    assert frame_line(0, None, 3.25, 1, labels="index") == "3.25s <image>"
    assert turn_text("retrieve", 2, "compact") == "Retrieve or answer."
    assert turn_text("retrieve", 1, "compact") == "Answer."
