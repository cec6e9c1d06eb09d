from dataclasses import fields

import pytest

from vagen.rewards.shaping import (
    ShapingConfig,
    TrajectoryRecord,
    TurnRecord,
    discounted_returns,
    exploration_bonus,
    retrieve_ratio,
    shape_batch,
    turn_rewards,
)

CFG = ShapingConfig()


def fetch(iou: float) -> TurnRecord:
    return TurnRecord(valid_format=True, fetched=True, frames_iou=iou)


ANSWER = TurnRecord(valid_format=True)
INVALID = TurnRecord(valid_format=False)


def traj(turns, correct=False, answered=True, initial_iou=0.1):
    return TrajectoryRecord(turns=turns, correct=correct, initial_iou=initial_iou,
                            answer_turn=len(turns) if answered else None)


def test_correct_answer_at_turn_t_earns_one_minus_tenth_per_turn():
    assert turn_rewards(traj([ANSWER], correct=True), CFG) == pytest.approx([1.1])
    assert turn_rewards(traj([fetch(0.1), ANSWER], correct=True), CFG) == pytest.approx(
        [0.1, 0.1 + 0.9])
    assert turn_rewards(traj([fetch(0.1)] * 2 + [ANSWER], correct=True), CFG) == pytest.approx(
        [0.1, 0.1, 0.1 + 0.8])


def test_format_reward_is_kept_when_the_answer_is_wrong():
    assert turn_rewards(traj([fetch(0.1), INVALID, ANSWER]), CFG) == pytest.approx(
        [0.1, 0.0, 0.1])
    assert turn_rewards(traj([fetch(0.1)] * 3, answered=False), CFG) == pytest.approx(
        [0.1, 0.1, 0.1])


def test_iou_gain_is_paid_only_with_a_correct_answer_when_gated():
    turns = [fetch(0.5), fetch(0.3), ANSWER]        # 0.1 -> 0.5 gains, 0.5 -> 0.3 loses
    assert turn_rewards(traj(turns, correct=True), CFG) == pytest.approx([0.6, 0.1, 0.9])
    assert turn_rewards(traj(turns, correct=False), CFG) == pytest.approx([0.1, 0.1, 0.1])


def test_iou_gain_is_paid_always_when_the_gate_is_off():
    ungated = ShapingConfig(gate_on_correct=False)
    turns = [fetch(0.5), fetch(0.3), ANSWER]
    assert turn_rewards(traj(turns, correct=False), ungated) == pytest.approx([0.6, 0.1, 0.1])
    assert turn_rewards(traj(turns, correct=True), ungated) == pytest.approx([0.6, 0.1, 0.9])
    unanswered = traj([fetch(0.5)] * 3, answered=False)
    assert turn_rewards(unanswered, ungated) == pytest.approx([0.6, 0.1, 0.1])


def test_iou_is_compared_with_the_previous_fetch_and_epsilon():
    assert turn_rewards(traj([fetch(0.4), fetch(0.6), ANSWER], correct=True, initial_iou=0.0),
                        CFG) == pytest.approx([0.6, 0.6, 0.9])
    # a turn that fetched nothing keeps the previous IoU as the one to beat
    assert turn_rewards(traj([fetch(0.4), INVALID, fetch(0.3), ANSWER], correct=True,
                             initial_iou=0.0), CFG) == pytest.approx([0.6, 0.0, 0.1, 0.8])
    assert turn_rewards(traj([fetch(0.5005), ANSWER], correct=True, initial_iou=0.5),
                        CFG) == pytest.approx([0.1, 1.0])
    assert turn_rewards(traj([fetch(0.502), ANSWER], correct=True, initial_iou=0.5),
                        CFG) == pytest.approx([0.6, 1.0])


def test_late_correct_answer_is_floored_at_zero():
    turns = [fetch(0.1)] * 11 + [ANSWER]             # 1.0 - 0.1 * 11 < 0
    assert turn_rewards(traj(turns, correct=True), CFG)[-1] == pytest.approx(0.1)


def batch(retrieving: int, others: int) -> list[TrajectoryRecord]:
    return ([traj([fetch(0.1), ANSWER]) for _ in range(retrieving)]
            + [traj([ANSWER]) for _ in range(others)])


@pytest.mark.parametrize("retrieving, others, ratio, bonus", [
    (0, 10, 0.0, 1.0),
    (1, 10, 1 / 11, 1.0),     # under 10%
    (1, 9, 0.1, 0.5),         # 10% is not under 10%
    (4, 6, 0.4, 0.5),
    (5, 5, 0.5, 0.0),         # 50% is not under 50%
    (10, 0, 1.0, 0.0),
])
def test_exploration_bonus_thresholds(retrieving, others, ratio, bonus):
    trajs = batch(retrieving, others)
    assert retrieve_ratio(trajs) == pytest.approx(ratio)
    assert exploration_bonus(retrieve_ratio(trajs), CFG) == bonus
    shaped = shape_batch(trajs, CFG)
    assert shaped.metrics == {"shaping/retrieve_ratio": pytest.approx(ratio),
                              "shaping/exploration_bonus": bonus}
    for rewards in shaped.turn_rewards[:retrieving]:
        assert rewards == pytest.approx([0.1 + bonus, 0.1])
    for rewards in shaped.turn_rewards[retrieving:]:
        assert rewards == pytest.approx([0.1])


def test_exploration_bonus_can_be_switched_off():
    shaped = shape_batch(batch(1, 10), ShapingConfig(exploration=False))
    assert shaped.metrics["shaping/exploration_bonus"] == 0.0
    assert shaped.turn_rewards[0] == pytest.approx([0.1, 0.1])


def test_retrieve_ratio_ignores_trajectories_without_a_valid_turn():
    trajs = [traj([fetch(0.1), ANSWER])] + [traj([INVALID]) for _ in range(9)]
    assert retrieve_ratio(trajs) == 1.0
    assert retrieve_ratio([traj([INVALID])]) == 0.0
    assert retrieve_ratio([]) == 0.0


def test_bonus_goes_to_every_fetch_turn_and_returns_are_discounted():
    # 1 retrieving trajectory of 11: bonus 1.0 on each of its two fetches; IoU does not rise
    trajs = [traj([fetch(0.2), fetch(0.2), ANSWER], correct=True, initial_iou=0.2)]
    trajs += [traj([ANSWER]) for _ in range(10)]
    shaped = shape_batch(trajs, ShapingConfig(turn_discount=0.95))
    assert shaped.turn_rewards[0] == pytest.approx([1.1, 1.1, 0.9])
    # G3 = 0.9, G2 = 1.1 + 0.95 * 0.9, G1 = 1.1 + 0.95 * G2
    assert shaped.turn_returns[0] == pytest.approx([1.1 + 0.95 * 1.955, 1.955, 0.9])
    assert shape_batch(trajs).turn_returns[0] == pytest.approx([3.1, 2.0, 0.9])


def test_discounted_returns():
    assert discounted_returns([], 0.9) == []
    assert discounted_returns([1.0, 0.0, 2.0], 0.5) == pytest.approx([1.5, 1.0, 2.0])


def test_config_checks_name_the_key():
    with pytest.raises(ValueError, match="shaping.rare_ratio .* shaping.low_ratio"):
        ShapingConfig(rare_ratio=0.6, low_ratio=0.5)
    with pytest.raises(ValueError, match="shaping.turn_discount"):
        ShapingConfig(turn_discount=0.0)
    with pytest.raises(ValueError, match="shaping.turn_discount"):
        ShapingConfig(turn_discount=1.5)
    with pytest.raises(ValueError, match="shaping.iou_epsilon"):
        ShapingConfig(iou_epsilon=-0.1)


def test_config_fields_have_help():
    for cls in (ShapingConfig, TurnRecord, TrajectoryRecord):
        for f in fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"


def test_trajectory_record_checks():
    with pytest.raises(ValueError, match="answer_turn is 1 but the trajectory has 2 turns"):
        TrajectoryRecord(turns=[fetch(0.1), ANSWER], correct=True, answer_turn=1)
    with pytest.raises(ValueError, match="correct=True needs answer_turn"):
        TrajectoryRecord(turns=[ANSWER], correct=True)
