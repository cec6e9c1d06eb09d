import numpy as np
import pytest

from tests.env.conftest import green_of, second_of
from vagen.env import make_env
from vagen.env.base import IMAGE_PLACEHOLDER, StepInfo
from vagen.env.video_qa.env import LAST_TURN_ERROR

ONE_VIDEO, TWO_VIDEOS = 0, 1  # seeds: reset(seed) plays sample seed % 2
MULTI_TURN = ["retrieve", "query", "timestamps"]
FULL_REWARD = 1.0 * 1.0 + 0.1 * 1.0  # choice 1.0, format 1.0 (think before answer)


def check_frames_match_labels(obs):
    """Every frame shows the second its label and timestamp name (red channel)."""
    assert obs.text.count(IMAGE_PLACEHOLDER) == len(obs.frames) == len(obs.timestamps)
    for frame, time_s, video in zip(obs.frames, obs.timestamps, obs.video_ids, strict=True):
        assert frame.dtype == np.uint8 and frame.shape == (56, 56, 3)  # smart_resize of 64x64
        assert second_of(frame) == int(time_s)
        assert green_of(frame) == pytest.approx(40 if video == 0 else 200, abs=6)


@pytest.mark.parametrize("protocol", MULTI_TURN)
def test_oracle_retrieves_the_span_then_answers(env_config, protocol):
    env = make_env("video_qa", env_config(protocol))
    obs = env.reset(ONE_VIDEO)
    assert obs.timestamps == [2.5, 7.5, 12.5, 17.5]  # 4 uniform pool frames of 20
    assert "Frame 12 at 12.5s: <image>" in obs.text and "You have 3 turns left" in obs.text
    check_frames_match_labels(obs)

    request = env.step(env.oracle_action())
    assert request.info["valid_action"] and request.info["action_type"] != "answer"
    assert not request.done and request.reward == 0.0
    assert request.obs.timestamps == [12.5, 13.5, 14.5]  # the span [12, 15]
    # Video-MTR's frame IoU with the relevant pool frames 12-14: opening frames share one
    assert request.info["initial_iou"] == pytest.approx(1 / 6)
    assert request.info["frames_iou"] == pytest.approx(1.0)
    check_frames_match_labels(request.obs)
    assert "You have 2 turns left" in request.obs.text

    answer = env.step(env.oracle_action())
    assert answer.terminated and not answer.truncated
    assert answer.reward == pytest.approx(FULL_REWARD)
    assert answer.info["reward_parts"] == {"choice": 1.0, "format": 1.0}
    assert answer.info | {"seen_times": None} == answer.info | {
        "valid_action": True, "action_type": "answer", "turn": 2, "frames_seen": 7,
        "answer": "B", "correct": True, "seen_times": None}
    assert answer.info["seen_times"] == [2.5, 7.5, 12.5, 17.5, 12.5, 13.5, 14.5]
    assert answer.info["seen_video_ids"] == [0] * 7
    assert answer.info["frames_iou"] is None  # an answer fetches nothing


def test_single_protocol_answers_at_once_from_uniform_frames(env_config):
    env = make_env("video_qa", env_config("single"))
    obs = env.reset(ONE_VIDEO)
    assert "you must answer now" in obs.text and "<retrieve>" not in env.system_prompt()
    result = env.step(env.oracle_action())
    assert result.terminated and result.info["turn"] == 1 and result.info["frames_seen"] == 4
    assert result.reward == pytest.approx(FULL_REWARD)


def test_query_returns_frames_as_a_response_and_next_batches_are_unseen(env_config):
    env = make_env("video_qa", env_config("query"))
    env.reset(ONE_VIDEO)  # shows pool frames 2, 7, 12, 17
    first = env.step("<think>look on</think><query>anything else?</query>")
    assert first.obs.text.startswith("<response>The frames you asked for:\nFrame 3 at 3.5s")
    assert "</response>\nYou have 2 turns left" in first.obs.text
    assert first.obs.timestamps == [3.5, 10.5, 16.5]  # spread over the 16 unseen frames
    second = env.step("<query>more</query>")
    assert not {3.5, 10.5, 16.5, 2.5, 7.5, 12.5, 17.5} & set(second.obs.timestamps)
    assert "This is your last turn: you must answer now" in second.obs.text
    check_frames_match_labels(second.obs)


def test_query_honours_explicit_times(env_config):
    env = make_env("video_qa", env_config("query"))
    env.reset(ONE_VIDEO)
    result = env.step("<query>what is at 4s and at 0:09?</query>")
    assert result.obs.timestamps == [3.5, 8.5]  # nearest pool frames (earlier on a tie)


def test_timestamps_decodes_the_exact_times(env_config):
    env = make_env("video_qa", env_config("timestamps"))
    env.reset(ONE_VIDEO)
    result = env.step("<frames>3.2, 17.9, 0:05, 6, 7</frames>")  # 5 asked, 3 per turn
    assert result.obs.timestamps == [3.2, 17.9, 5.0]
    assert "Frame at 3.20s: <image>" in result.obs.text
    check_frames_match_labels(result.obs)


def test_retrieve_in_seconds(env_config):
    env = make_env("video_qa", env_config("retrieve", retrieve_units="seconds"))
    env.reset(ONE_VIDEO)
    assert env.step("<retrieve>12,15</retrieve>").obs.timestamps == [12.5, 13.5, 14.5]
    # a span between two pool frames gets the nearest one
    assert env.step("<retrieve>3.1,3.2</retrieve>").obs.timestamps == [3.5]


def test_multi_video_splits_the_budget_and_labels_videos(env_config):
    env = make_env("video_qa", env_config("retrieve"))
    obs = env.reset(TWO_VIDEOS)
    assert obs.video_ids == [0, 0, 1, 1] and obs.timestamps == [5.5, 15.5, 2.5, 7.5]
    assert "There are 2 videos: video 1 lasts 20.0s (frames 0-19), video 2 lasts 10.0s " \
           "(frames 0-9)." in obs.text
    assert "Video 2 frame 7 at 7.5s: <image>" in obs.text
    check_frames_match_labels(obs)
    both = env.step("<retrieve>2,5</retrieve>")  # 3 frames: 2 from video 1, 1 from video 2
    assert list(zip(both.obs.video_ids, both.obs.timestamps, strict=True)) == [
        (0, 3.5), (0, 5.5), (1, 4.5)]
    check_frames_match_labels(both.obs)
    one = env.step("<retrieve>video 2: 0,9</retrieve>")
    assert list(zip(one.obs.video_ids, one.obs.timestamps, strict=True)) == [
        (1, 1.5), (1, 5.5), (1, 8.5)]
    assert "Video 2 frame 5 at 5.5s: <image>" in one.obs.text


@pytest.mark.parametrize("protocol", [*MULTI_TURN, "single"])
def test_oracle_answers_multi_video_questions(env_config, protocol):
    env = make_env("video_qa", env_config(protocol))
    env.reset(TWO_VIDEOS)
    shown = []
    while True:
        result = env.step(env.oracle_action())
        shown += list(zip(result.obs.video_ids, result.obs.timestamps, strict=True))
        if result.done:
            break
    assert result.terminated and result.info["correct"] and result.info["answer"] == "3"
    if protocol != "single":
        assert shown == [(1, 3.5), (1, 4.5), (1, 5.5)]  # the span [3, 6] of video 2


@pytest.mark.parametrize("text", [
    "", "garbage", "<answer>B", "<think>x</think><retrieve>3,5", "<retrieve>3,99</retrieve>",
    "<retrieve>9,3</retrieve>", "<retrieve>1," + "9" * 500 + "</retrieve>",
    "<answer></answer>", "<retrieve>1,2</retrieve><answer>B</answer>", "\x00" * 10_000,
])
def test_bad_actions_are_penalised_turns(env_config, text):
    env = make_env("video_qa", env_config("retrieve"))
    env.reset(ONE_VIDEO)
    result = env.step(text)
    assert result.reward == -0.1 and result.info["reward_parts"] == {"format_penalty": -0.1}
    assert not result.done and result.obs.frames == []
    assert set(StepInfo.required()) <= set(result.info)
    assert result.info | {"error": ""} == result.info | {
        "valid_action": False, "action_type": "invalid", "turn": 1, "frames_seen": 4,
        "answer": None, "correct": False, "error": ""}
    assert result.obs.text.startswith(f"Invalid action: {result.info['error']}.\n")
    assert "You have 2 turns left" in result.obs.text
    assert env.step(env.oracle_action()).info["valid_action"]  # the episode goes on


def test_invalid_reward_can_be_the_format_reward_of_the_text(env_config):
    env = make_env("video_qa", env_config("retrieve", invalid_reward="format"))
    env.reset(ONE_VIDEO)
    result = env.step("<think>hmm</think><retrieve>3</retrieve>")  # think earns 0.3
    assert result.info["reward_parts"] == {"format": 0.3}
    assert result.reward == pytest.approx(0.1 * 0.3)


def test_turn_limit_truncates(env_config):
    env = make_env("video_qa", env_config("retrieve"))
    env.reset(ONE_VIDEO)
    assert not env.step("no").done
    assert "This is your last turn" in env.step("still no").obs.text
    last = env.step("<retrieve>1,2</retrieve>")  # a request where an answer was due
    assert last.truncated and not last.terminated and last.info["turn"] == 3
    assert last.info["error"] == LAST_TURN_ERROR and last.reward == -0.1
    assert "The turn limit is reached." in last.obs.text
    with pytest.raises(RuntimeError, match="episode is over"):
        env.step("<answer>B</answer>")


def test_wrong_answers_score_only_format(env_config):
    env = make_env("video_qa", env_config("retrieve"))
    env.reset(ONE_VIDEO)
    result = env.step("<answer>yellow!</answer>")  # no think; "yellow!" names no option
    assert result.terminated and not result.info["correct"]
    assert result.info["reward_parts"] == {"choice": 0.0, "format": 0.3}
    env.reset(ONE_VIDEO)
    assert env.step("<answer>yellow</answer>").info["correct"]  # the option's text counts


@pytest.mark.parametrize("answer, correct", [("3", True), ("3.0 times", True), ("4", False),
                                             ("three", False)])
def test_numbers_are_correct_only_when_equal(env_config, answer, correct):
    env = make_env("video_qa", env_config("retrieve"))
    env.reset(TWO_VIDEOS)
    assert env.step(f"<answer>{answer}</answer>").info["correct"] is correct


def test_grounding_reward_sees_what_was_shown(env_config):
    env = make_env("video_qa", env_config("retrieve", rewards={"grounding": 1.0}))
    env.reset(ONE_VIDEO)
    env.step(env.oracle_action())
    result = env.step(env.oracle_action())
    # distinct frames seen: 2.5 7.5 12.5 17.5 13.5 14.5; inside [12, 15]: 3 of 6
    assert result.reward == pytest.approx(0.5)


def test_same_seed_same_episode(env_config):
    a, b = (make_env("video_qa", env_config("query")) for _ in range(2))
    for seed in (ONE_VIDEO, TWO_VIDEOS + 2):  # seeds wrap around the samples
        obs_a, obs_b = a.reset(seed), b.reset(seed)
        assert obs_a.text == obs_b.text and obs_a.timestamps == obs_b.timestamps
        assert all(np.array_equal(x, y) for x, y in zip(obs_a.frames, obs_b.frames, strict=True))
        step_a, step_b = a.step("<query>next</query>"), b.step("<query>next</query>")
        assert step_a.obs.timestamps == step_b.obs.timestamps
    assert a.sample_for_seed(3).id == "two-videos"


def test_lifecycle_errors_and_close(env_config):
    env = make_env("video_qa", env_config("retrieve"))
    with pytest.raises(RuntimeError, match=r"call reset\(seed\) first"):
        env.step("<answer>B</answer>")
    with pytest.raises(RuntimeError, match=r"call reset\(seed\) first"):
        env.oracle_action()
    env.reset(ONE_VIDEO)
    env.close()
    env.close()
    assert env.reset(ONE_VIDEO).timestamps == [2.5, 7.5, 12.5, 17.5]


@pytest.mark.parametrize("group, expected", [
    ({"protocol": "retrieve", "max_turns": 3, "window": 2}, (3, 2, 512)),
    ({"protocol": "retrieve", "max_turns": 3, "window": 3, "max_new_tokens": 64}, (3, None, 64)),
    ({"protocol": "query", "max_turns": 3, "window": 1}, (3, None, 512)),
    ({"protocol": "single", "max_turns": 1}, (1, None, 512)),
])
def test_the_context_policy_every_player_reads(env_config, group, expected):
    """Only the retrieve protocol drops old frames, and a window as long as the episode
    drops none: what the trainers and eval play by."""
    protocol = group.pop("protocol")
    context = make_env("video_qa", env_config(protocol, **group)).context()
    assert (context.max_turns, context.window, context.max_new_tokens) == expected


def test_text_that_is_not_a_string_is_a_malformed_turn(env_config):
    env = make_env("video_qa", env_config("retrieve", invalid_reward="format"))
    env.reset(ONE_VIDEO)
    result = env.step(None)
    assert not result.info["valid_action"] and result.reward == 0.0


@pytest.fixture
def carrier_config(samples_path, tmp_path, env_config):
    """One 20 s video whose carrier shape is on screen 11-16 s and changes colour 13-15 s:
    the 4 opening frames (pool 2, 7, 12, 17) see the carrier at 12 but not the change."""
    from vagen.data import Sample, save_samples

    sample = Sample(id="carrier", videos=[str(samples_path.parent / "videos" / "a.mp4")],
                    question="What colour did the red square turn?",
                    options=["green", "yellow", "blue"], answer="B", answer_type="choice",
                    relevant_spans=[[13.0, 15.0]],
                    extra={"carrier_spans": [[11.0, 16.0]], "evidence_brief": "red yellow"})
    path = save_samples([sample], tmp_path / "carrier.jsonl")
    return lambda **overrides: env_config("retrieve", data=str(path), max_turns=2,
                                          frames_per_turn=11, **overrides)


def play_oracle(env, seed=0):
    env.reset(seed)
    actions = []
    while True:
        actions.append(env.oracle_action())
        result = env.step(actions[-1])
        if result.done:
            return actions, result


def test_brief_oracle_copies_the_shown_labels_and_answers_with_the_option_text(carrier_config):
    env = make_env("video_qa", carrier_config(oracle_spans="shown", oracle_think="brief",
                                              oracle_answer="text", frame_labels="index"))
    actions, result = play_oracle(env)
    # the labels around the one opening frame that shows the carrier (12): 7 and 17
    assert actions == ["<think>12</think><retrieve>7,17</retrieve>",
                       "<think>red yellow</think><answer>yellow</answer>"]
    assert result.info["correct"] and result.info["reward_parts"]["choice"] == 1.0


def test_imperfect_oracle_misses_the_carrier_and_then_guesses_honestly(carrier_config):
    env = make_env("video_qa", carrier_config(oracle_spans="shown", oracle_think="brief",
                                              oracle_answer="text", oracle_miss=1.0,
                                              oracle_unseen="guess"))
    actions, result = play_oracle(env)
    # as wide as 7-17, before it (the video ends first), on shown labels: 2-7
    assert actions[0] == "<think>12</think><retrieve>2,7</retrieve>"
    assert actions[1].startswith("<think>not seen</think><answer>")
    guess = actions[1].split("<answer>")[1].split("</answer>")[0]
    assert guess in ("green", "yellow", "blue")
    assert play_oracle(env)[0] == actions  # the guess is fixed by the seed
    # by default the same miss still answers the truth (a dishonest expert)
    env = make_env("video_qa", carrier_config(oracle_spans="shown", oracle_miss=1.0))
    assert play_oracle(env)[1].info["correct"]


def test_skip_marks_only_answers_given_without_the_evidence_as_not_demonstrated(
        carrier_config):
    env = make_env("video_qa", carrier_config(oracle_spans="shown", oracle_miss=1.0,
                                              oracle_unseen="skip"))
    env.reset(0)
    assert env.oracle_demonstrates()  # the (missing) request is still imitated
    env.step(env.oracle_action())
    assert not env.oracle_demonstrates()
    assert env.oracle_action().endswith("<answer>B</answer>")  # the truth, not to learn
    env = make_env("video_qa", carrier_config(oracle_spans="shown", oracle_unseen="skip"))
    env.reset(0)
    env.step(env.oracle_action())
    assert env.oracle_demonstrates()  # the right request saw the change


def test_oracle_miss_picks_episodes_by_seed(carrier_config):
    env = make_env("video_qa", carrier_config(oracle_spans="shown", oracle_miss=0.5))
    requests = {play_oracle(env, seed)[0][0] for seed in range(40)}
    assert requests == {"<think>The frames I have do not settle the question; the evidence is "
                        "from 7.5s to 17.5s. I will look at those frames.</think>"
                        "<retrieve>7,17</retrieve>",
                        "<think>The frames I have do not settle the question; the evidence is "
                        "from 2.5s to 7.5s. I will look at those frames.</think>"
                        "<retrieve>2,7</retrieve>"}


@pytest.mark.parametrize("key, value", [("prompt_style", "tiny"), ("frame_labels", "time"),
                                        ("oracle_think", "long"), ("oracle_answer", "word"),
                                        ("oracle_spans", "all"), ("oracle_miss", 1.5)])
def test_task_options_refuse_unknown_values_naming_the_key(env_config, key, value):
    from vagen.env.video_qa import ConfigError

    with pytest.raises(ConfigError, match=f"key '{key}'"):
        make_env("video_qa", env_config("retrieve", **{key: value}))


def test_prefetch_decodes_each_video_of_the_episodes_once_ahead(env_config):
    from vagen.video import clear_pool_cache, pool_cache_stats

    clear_pool_cache()
    env = make_env("video_qa", env_config("retrieve"))
    assert env.prefetch(range(4), workers=2) == 2  # samples 0 and 1 use videos a and b
    env.reset(TWO_VIDEOS)
    assert pool_cache_stats()["misses"] == 2 and pool_cache_stats()["hits"] == 2


def test_a_request_reports_the_spans_it_named_and_the_tokens_seen(env_config):
    env = make_env("video_qa", env_config("retrieve"))
    env.reset(ONE_VIDEO)
    request = env.step("<retrieve>12,14</retrieve>")
    assert request.info["requested"] == [[12.5, 14.5, 0]]  # pool frames 12 and 14
    assert request.info["visual_tokens"] == 7 * 4  # 7 frames of 56x56: 2x2 tokens each
    answer = env.step("<answer>B</answer>")
    assert answer.info["requested"] == [] and answer.info["visual_tokens"] == 28


def test_the_visual_budget_returns_what_fits_then_refuses_with_a_message(env_config):
    env = make_env("video_qa", {**env_config("retrieve"), "max_visual_tokens": 24})
    env.reset(ONE_VIDEO)  # 4 opening frames: 16 tokens
    first = env.step("<retrieve>10,16</retrieve>")
    assert first.info["valid_action"] and len(first.obs.frames) == 2  # 16 + 2 x 4 = 24
    refused = env.step("<retrieve>0,5</retrieve>")
    assert not refused.info["valid_action"] and not refused.obs.frames
    assert "visual budget of 24 image tokens is spent (24 used)" in refused.info["error"]
    assert "visual budget of 24 image tokens" in refused.obs.text
