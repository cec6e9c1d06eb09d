import pytest

from vagen.rewards import combine, get_reward, list_rewards, register_reward, registry

GOOD = "<think>the square turned red</think><answer>B</answer>"
OPTIONS = {"options": ["blue", "red", "green"]}


def test_builtin_rewards_are_registered():
    assert list_rewards() == ["action_set", "choice", "format", "grounding", "numeric"]


def test_duplicate_name_is_rejected():
    with pytest.raises(ValueError, match="'format' is already registered"):
        register_reward("format")(lambda response, ground_truth, info=None: 0.0)


def test_unknown_name_lists_valid_ones():
    with pytest.raises(KeyError, match="unknown reward 'acc'.*action_set, choice, format"):
        get_reward("acc")


def test_registered_reward_is_callable_by_name(monkeypatch):
    monkeypatch.setattr(registry, "_REWARDS", registry._REWARDS.copy())

    @register_reward("length")
    def length(response, ground_truth, info=None):
        return len(response) / 10

    assert get_reward("length")("abcde", None) == 0.5
    assert "length" in list_rewards()


def test_combine_sums_weighted_parts():
    reward = combine({"format": 0.2, "choice": 1.0})
    assert reward.parts(GOOD, "B", OPTIONS) == {"format": 1.0, "choice": 1.0}
    assert reward(GOOD, "B", OPTIONS) == pytest.approx(1.2)
    wrong = "<answer>A</answer>"
    assert reward.parts(wrong, "B", OPTIONS) == {"format": 0.3, "choice": 0.0}
    assert reward(wrong, "B", OPTIONS) == pytest.approx(0.06)
    assert reward.total({"format": 0.5, "choice": 1.0}) == pytest.approx(1.1)


def test_combine_rejects_bad_weights():
    with pytest.raises(KeyError, match="unknown reward 'acc'; registered: action_set"):
        combine({"acc": 1.0})
    with pytest.raises(ValueError, match="rewards.choice: weight must be a finite number"):
        combine({"choice": "1"})
    with pytest.raises(ValueError, match="rewards.choice"):
        combine({"choice": float("nan")})
    with pytest.raises(ValueError, match="at least one"):
        combine({})


def test_debug_log_writes_one_line_per_scoring(debug_log):
    assert get_reward("numeric")("EF is 55%", "EF is 60%") == pytest.approx(0.964)
    (line,) = debug_log()
    assert line["reward"] == "numeric"
    assert line["score"] == pytest.approx(0.964)
    assert line["response"] == "EF is 55%"
    assert line["ground_truth"] == "EF is 60%"
    assert line["info"] is None
    combine({"format": 1.0, "choice": 1.0})(GOOD, "B", OPTIONS)
    lines = debug_log()
    assert [entry["reward"] for entry in lines] == ["numeric", "format", "choice"]
    assert lines[2]["info"] == OPTIONS


def test_debug_log_covers_every_registered_reward(debug_log, monkeypatch):
    monkeypatch.setattr(registry, "_REWARDS", registry._REWARDS.copy())

    @register_reward("constant")
    def constant(response, ground_truth, info=None):
        return 0.25

    constant("x", "y", {"turn": 2})
    (line,) = debug_log()
    assert set(line) == {"time", "reward", "score", "response", "ground_truth", "info"}
    assert (line["reward"], line["score"], line["info"]) == ("constant", 0.25, {"turn": 2})


def test_no_log_without_debug_mode(tmp_path, monkeypatch):
    path = tmp_path / "rewards.jsonl"
    monkeypatch.setenv("LOG_PATH", str(path))
    get_reward("format")(GOOD, None)
    monkeypatch.setenv("DEBUG_MODE", "false")
    get_reward("format")(GOOD, None)
    assert not path.exists()


def test_debug_mode_without_log_path_says_what_to_set(monkeypatch):
    monkeypatch.setenv("DEBUG_MODE", "true")
    with pytest.raises(ValueError, match="LOG_PATH"):
        get_reward("format")(GOOD, None)
