import random

import pytest

from vagen.env.video_qa.protocols import (
    Action,
    FrameRequest,
    Protocol,
    VideoLayout,
    action_tags,
    get_protocol,
    parse_action,
    register_protocol,
    request_actions,
    stop_strings,
)

ONE = VideoLayout(pool_sizes=(20,), durations=(20.0,))
TWO = VideoLayout(pool_sizes=(20, 10), durations=(20.0, 10.0))


def requests(protocol, text, layout=ONE, units="index"):
    action = parse_action(protocol, text, layout, units)
    assert action.valid, action.error
    return list(action.requests)


@pytest.mark.parametrize("protocol", ["retrieve", "query", "timestamps", "single"])
def test_answer_is_read_in_every_protocol(protocol):
    action = parse_action(protocol, "<think>red, then yellow</think><answer> B </answer>", ONE)
    assert action == Action("answer", answer="B")


def test_retrieve_reads_pool_indices_or_seconds():
    assert requests("retrieve", "<think>x</think><retrieve>12, 15</retrieve>") == [
        FrameRequest("span", (12, 15), None, "index")]
    assert requests("retrieve", "<retrieve>3.5,7.25s</retrieve>", units="seconds") == [
        FrameRequest("span", (3.5, 7.25), None, "seconds")]
    assert requests("retrieve", "<retrieve>0:03,0:07.5</retrieve>", units="seconds") == [
        FrameRequest("span", (3.0, 7.5), None, "seconds")]


def test_retrieve_names_videos_from_one():
    assert requests("retrieve", "<retrieve>video 2: 3,6; video 1: 10,19</retrieve>", TWO) == [
        FrameRequest("span", (3, 6), 1, "index"), FrameRequest("span", (10, 19), 0, "index")]


def test_timestamps_reads_exact_times():
    assert requests("timestamps", "<frames>12.5, 13s,0:14</frames>") == [
        FrameRequest("exact_times", (12.5, 13.0, 14.0), None, "seconds")]
    assert requests("timestamps", "<frames>video 2: 1, 9.5</frames>", TWO) == [
        FrameRequest("exact_times", (1.0, 9.5), 1, "seconds")]


@pytest.mark.parametrize("query, expected", [
    ("show me frames 3-5", [FrameRequest("span", (3, 5), None, "index")]),
    ("frame 2, 4 and 7 please", [FrameRequest("indices", (2, 4, 7), None)]),
    ("what happens between 10 and 12.5 seconds",
     [FrameRequest("span", (10.0, 12.5), None, "seconds")]),
    ("look at 1:05", []),  # 65 s is past the 20 s video: see the bad-query test
    ("the moment at 12.5s and at 0:03",
     [FrameRequest("times", (12.5,), None, "seconds"),
      FrameRequest("times", (3.0,), None, "seconds")]),
    ("where is the red square?", [FrameRequest("next")]),
    ("2-3 people walk in", [FrameRequest("next")]),
])
def test_query_honours_explicit_frames_and_times(query, expected):
    action = parse_action("query", f"<query>{query}</query>", ONE)
    if expected:
        assert list(action.requests) == expected
    else:
        assert action.type == "invalid" and "20.0s" in action.error


def test_query_video_applies_to_what_follows():
    assert requests("query", "<query>video 2 frames 1-3, then video 1 at 4s</query>", TWO) == [
        FrameRequest("span", (1, 3), 1, "index"), FrameRequest("times", (4.0,), 0, "seconds")]
    assert requests("query", "<query>anything new in video 2?</query>", TWO) == [
        FrameRequest("next", (), 1)]


def test_query_may_carry_a_summary():
    text = "<summary>red square at 12 s</summary><think>x</think><query>frames 12-14</query>"
    assert requests("query", text) == [FrameRequest("span", (12, 14), None, "index")]


@pytest.mark.parametrize("protocol, text, error", [
    ("retrieve", "I think it is B", "no action found"),
    ("retrieve", "<think>x</think><retrieve>3,5", "not closed"),
    ("retrieve", "<answer>B", "not closed"),
    ("retrieve", "<retrieve>3,25</retrieve>", "numbered 0-19"),
    ("retrieve", "<retrieve>-1,4</retrieve>", "numbered 0-19"),
    ("retrieve", "<retrieve>9,3</retrieve>", "reversed"),
    ("retrieve", "<retrieve>1,99999999999999999999999</retrieve>", "too large"),
    ("retrieve", "<retrieve>1,1e400</retrieve>", "as a number"),
    ("retrieve", "<retrieve>3.5,6</retrieve>", "whole number"),
    ("retrieve", "<retrieve>3</retrieve>", "start,end"),
    ("retrieve", "<retrieve>a,b</retrieve>", "as a number"),
    ("retrieve", "<retrieve></retrieve>", "empty"),
    ("retrieve", "<retrieve>video 3: 1,2</retrieve>", "videos are numbered 1-1"),
    ("retrieve", "<retrieve>1,2</retrieve><retrieve>3,4</retrieve>", "one <retrieve>"),
    ("retrieve", "<retrieve>1,2</retrieve><answer>B</answer>", "not both"),
    ("retrieve", "<answer>  </answer>", "answer is empty"),
    ("retrieve", "<answer>A</answer><answer>B</answer>", "one <answer>"),
    ("timestamps", "<frames>12, 25</frames>", "lasts 20.0s"),
    ("timestamps", "<frames>12, nan</frames>", "as a number"),
    ("timestamps", "<frames> , </frames>", "no times"),
    ("query", "<query>frames 30-40</query>", "numbered 0-19"),
    ("query", "<query>frames 9-3</query>", "reversed"),
    ("query", "<query>video 7 frames 1-2</query>", "videos are numbered"),
    ("single", "<retrieve>1,2</retrieve>", "no action found; end your turn with <answer>"),
])
def test_malformed_actions_are_invalid_with_a_reason(protocol, text, error):
    action = parse_action(protocol, text, ONE)
    assert action.type == "invalid" and not action.valid
    assert error in action.error


def test_out_of_range_is_checked_per_video():
    action = parse_action("retrieve", "<retrieve>5,12</retrieve>", TWO)  # video 2 has 10 frames
    assert action.type == "invalid" and "frames of video 2 are numbered 0-9" in action.error
    assert requests("retrieve", "<retrieve>video 1: 5,12</retrieve>", TWO) == [
        FrameRequest("span", (5, 12), 0, "index")]


def test_fuzzed_text_never_raises():
    rng = random.Random(0)
    pieces = ["<answer>", "</answer>", "<retrieve>", "</retrieve>", "<query>", "</query>",
              "<frames>", "</frames>", "video", " 2", ":", ",", ";", "-", "frames", "1:05",
              "12.5s", "9" * 30, "-3", "B", "\n", "é", "\x00", "<think>", "</think>", " "]
    for _ in range(1000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        for protocol in ("retrieve", "query", "timestamps", "single"):
            action = parse_action(protocol, text, TWO, rng.choice(["index", "seconds"]))
            assert action.valid or action.error
    assert parse_action("query", None, ONE).type == "invalid"  # not even a string
    assert parse_action("retrieve", "<retrieve>" + "1," * 100_000 + "</retrieve>", ONE).error


def test_protocol_registry_rejects_duplicates_and_names_the_valid_ones():
    with pytest.raises(ValueError, match="already registered"):
        register_protocol(Protocol(name="retrieve", action_type="answer"))
    with pytest.raises(KeyError, match="unknown protocol .*: query, retrieve, single, timestamps"):
        get_protocol("grab")


@pytest.mark.parametrize("protocol, text", [("retrieve", "<retrieve>9,3</retrieve>"),
                                            ("query", "<query>frames 9-3</query>")])
def test_lenient_spans_read_a_reversed_range_as_its_ends_swapped(protocol, text):
    assert "reversed" in parse_action(protocol, text, ONE).error
    action = parse_action(protocol, text, ONE, lenient=True)
    assert action.valid and action.requests[0].values == (3, 9)


def _parse_seconds(protocol: str, text: str) -> float:
    """The best of 5 parses, the garbage collector off: the least disturbed by other load."""
    import gc
    import time

    best = float("inf")
    gc.disable()
    try:
        for _ in range(5):
            started = time.perf_counter()
            parse_action(protocol, text, ONE)
            best = min(best, time.perf_counter() - started)
    finally:
        gc.enable()
    return best


@pytest.mark.parametrize("protocol, unit", [
    ("query", "1"), ("query", "1 "), ("query", "12.5s-"), ("retrieve", "1"),
    ("timestamps", "1,"), ("query", "<answer>"), ("retrieve", "<retrieve>"),
    ("query", "<query><query>"), ("query", "é1")])
def test_parsing_time_grows_linearly_with_the_action(protocol, unit):
    """4x the text takes about 4x the time (a scan from every digit or opening tag would
    take 16x; the bound, 10x, leaves room for a loaded machine); measured against the same
    parser, so no wall-clock bound."""
    tag = get_protocol(protocol).tag or "answer"

    def action(repeats: int) -> str:
        return f"<{tag}>{unit * repeats}</{tag}>"

    small = _parse_seconds(protocol, action(4000 // len(unit)))
    large = _parse_seconds(protocol, action(16000 // len(unit)))
    assert large < 10 * max(small, 1e-4), (small, large)


@pytest.mark.parametrize("protocol, unit", [
    ("query", "1"), ("query", "é1"), ("query", "<query><query>"), ("retrieve", "1,"),
    ("retrieve", "<retrieve>"), ("timestamps", "1,"), ("single", "<answer>")])
def test_the_largest_accepted_action_parses_in_its_budget(protocol, unit):
    """The server takes actions up to 65,536 characters (ServerLimits.max_action_chars), so
    that length times linear parsing is each action's budget: the largest one of digits,
    tags, nested tags or unicode costs at most 50,000 normal actions (~2,000x its length;
    a quadratic parse would cost millions)."""
    from vagen.server.app import ServerLimits

    tag = get_protocol(protocol).tag or "answer"
    room = ServerLimits().max_action_chars - len(f"<{tag}></{tag}>")
    largest = f"<{tag}>{unit * (room // len(unit))}</{tag}>"
    assert len(largest) <= ServerLimits().max_action_chars
    normal = f"<think>look</think><{tag}>1,5</{tag}>"
    assert _parse_seconds(protocol, largest) < 50_000 * max(_parse_seconds(protocol, normal),
                                                            1e-6)


def test_a_protocol_that_asks_must_say_how_and_one_that_answers_must_not():
    with pytest.raises(ValueError, match="has tag 'clip' but no parse_body, write_part, text"):
        Protocol(name="clip", action_type="clip", tag="clip")
    with pytest.raises(ValueError, match="only answers; drop"):
        Protocol(name="answer-only", action_type="answer", windowed=True)


def test_stop_strings_metrics_and_tokens_come_from_the_registered_protocols():
    assert stop_strings() == ("</answer>", "</retrieve>", "</query>", "</frames>")
    assert request_actions() == ("retrieve", "query", "frames")
    assert action_tags()[:4] == ("<think>", "</think>", "<answer>", "</answer>")
    assert {"<summary>", "</response>"} <= set(action_tags())
    assert len(action_tags()) == len(set(action_tags()))
