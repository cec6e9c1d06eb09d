"""`compute_score`, verl's custom reward function, on hand-computed examples and loaded the way
verl loads it from our composed config."""

from __future__ import annotations

import numpy as np
import pytest

from vagen.trainer.verl.reward import compute_score

OPTIONS = ["red", "yellow", "blue"]
GOOD = "<think>It turned yellow.</think><answer>B</answer>"


def test_default_weights_are_the_env_defaults():
    # choice 1.0 x 1.0 + format 0.1 x 1.0 (think, answer, think first)
    assert compute_score("vagen/x", GOOD, "B", {"options": OPTIONS}) == pytest.approx(
        {"score": 1.1, "choice": 1.0, "format": 1.0})
    # wrong letter: choice 0; format 0.3 (an answer tag only) x 0.1
    assert compute_score("vagen/x", "<answer>A</answer>", "B", {"options": OPTIONS}) == \
        pytest.approx({"score": 0.03, "choice": 0.0, "format": 0.3})


def test_weights_come_from_the_row():
    assert compute_score("x", "EF is 55%", "EF is 60%", {"rewards": {"numeric": 1.0}}) == \
        pytest.approx({"score": 0.964, "numeric": 0.964}, abs=1e-3)
    # an env row's config carries the group's weights; the option text matches its letter
    info = {"options": OPTIONS, "config": {"rewards": {"choice": 2.0}}}
    assert compute_score("x", "<answer>yellow</answer>", "B", info) == {"score": 2.0,
                                                                         "choice": 1.0}


def test_parquet_values_and_several_ground_truths():
    """pyarrow hands lists over as numpy arrays; verl-tool rows may list several truths."""
    info = {"options": np.array(OPTIONS, dtype=object)}
    assert compute_score("x", GOOD, np.array(["A", "B"], dtype=object), info)["score"] == \
        pytest.approx(1.1)
    assert compute_score("x", GOOD, np.array(["A", "C"], dtype=object), info)["score"] == \
        pytest.approx(0.1)


def test_bad_weights_fail_naming_the_field():
    with pytest.raises(ValueError, match="extra_info.rewards must be a mapping"):
        compute_score("x", GOOD, "B", {"rewards": [1.0]})
    with pytest.raises(KeyError, match="unknown reward 'choise'"):
        compute_score("x", GOOD, "B", {"rewards": {"choise": 1.0}})


def test_verl_loads_it_from_the_composed_config(verl_config):
    from verl.trainer.ppo.reward import get_custom_reward_fn

    score = get_custom_reward_fn(verl_config)
    assert score(data_source="vagen/x", solution_str=GOOD, ground_truth="B",
                 extra_info={"options": OPTIONS})["score"] == pytest.approx(1.1)
