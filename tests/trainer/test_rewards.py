import pytest

from vagen.rewards.shaping import TrajectoryRecord, TurnRecord
from vagen.trainer.rewards import shaping_record

ANSWER = TurnRecord(valid_format=True)
INVALID = TurnRecord(valid_format=False)


def info(action_type="retrieve", valid=True, frames_iou=None, correct=False):
    return {"valid_action": valid, "action_type": action_type, "correct": correct,
            "frames_iou": frames_iou, "initial_iou": 0.2, "turn": 1, "frames_seen": 16,
            "answer": None}


def test_record_from_env_infos():
    record = shaping_record([info(frames_iou=0.5), info(valid=False),
                             info("answer", correct=True)])
    assert record == TrajectoryRecord(
        turns=[TurnRecord(valid_format=True, fetched=True, frames_iou=0.5), INVALID, ANSWER],
        correct=True, answer_turn=3, initial_iou=0.2)
    # a request that returned no frames fetched nothing; an unanswered episode has no answer
    unanswered = shaping_record([info(), info("invalid", valid=False)])
    assert unanswered.answer_turn is None and not unanswered.correct
    assert not unanswered.retrieves


def test_record_needs_the_envs_retrieval_ious():
    without = {**info("answer"), "initial_iou": None}
    with pytest.raises(ValueError, match="needs the retrieval IoUs frames_iou and initial_iou"):
        shaping_record([without])
    with pytest.raises(ValueError, match=r"step info lacks \['turn'\]"):
        shaping_record([{key: v for key, v in info().items() if key != "turn"}])
    with pytest.raises(ValueError, match="no turns"):
        shaping_record([])
