"""From trajectories to the update: the per-trajectory view the advantage estimators run on
(exact across the segments a history window cuts a trajectory into) and the rollout metrics
of the log, on hand-built examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vagen.env.base import StepInfo
from vagen.rollout.manager import Trajectory, TurnRecord
from vagen.rollout.tokens import ChatCodec, TrajectoryTokens
from vagen.trainer.advantages import AdvantageConfig
from vagen.trainer.algos import get_advantage_estimator
from vagen.trainer.batch import TrajectoryView, rollout_metrics, training_batch

# Rows 0 and 2 are two segments of trajectory 0, row 1 is trajectory 1.
LOSS_MASK = torch.tensor([[0, 1, 1, 0, 0, 0],
                          [0, 0, 1, 1, 1, 0],
                          [0, 0, 0, 0, 1, 1]], dtype=torch.float32)
ROW_TRAJ = [0, 1, 0]


def _view() -> TrajectoryView:
    return TrajectoryView.build(LOSS_MASK, ROW_TRAJ, n_traj=2)


def test_view_gathers_each_trajectorys_policy_tokens_in_order_across_segments() -> None:
    view = _view()
    assert view.rows.tolist() == [[0, 0, 2, 2], [1, 1, 1, -1]]
    assert view.cols.tolist() == [[1, 2, 4, 5], [2, 3, 4, 0]]
    assert view.mask.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    values = torch.arange(18, dtype=torch.float32).view(3, 6)  # value = 6 * row + col
    assert view.gather(values).tolist() == [[1, 2, 16, 17], [8, 9, 10, 0]]


def test_view_scatter_and_gather_round_trip() -> None:
    view = _view()
    rows = torch.randn(3, 6)
    assert torch.equal(view.scatter(view.gather(rows), LOSS_MASK.shape), rows * LOSS_MASK)
    per_traj = torch.randn(2, 4) * view.mask
    assert torch.equal(view.gather(view.scatter(per_traj, LOSS_MASK.shape)), per_traj)


def test_grpo_through_the_view_scores_a_split_trajectory_as_one() -> None:
    # Trajectory 0 earns 0 at turn 0 (segment 1) and 1 at turn 1 (segment 2); trajectory 1
    # earns 0.5 in its one turn. Scores 1.0 and 0.5 in one group: mean 0.75, unbiased std
    # 0.3536, so the advantages are +-0.7071. Row by row, segment 1 would score 0 instead.
    rewards = torch.zeros(3, 6)
    rewards[0, 2], rewards[2, 5], rewards[1, 4] = 0.0, 1.0, 0.5
    view = _view()
    advantages, _ = get_advantage_estimator("grpo")(
        view.gather(rewards), view.mask, group_ids=[0, 0], config=AdvantageConfig())
    out = view.scatter(advantages, LOSS_MASK.shape)
    a = 0.25 / (np.sqrt(0.125) + 1e-6)  # eps 1e-6 on the std
    expected = torch.tensor([[0, a, a, 0, 0, 0],
                             [0, 0, -a, -a, -a, 0],
                             [0, 0, 0, 0, a, a]], dtype=torch.float32)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def codec(tiny_model_path: Path) -> ChatCodec:
    from transformers import AutoProcessor

    return ChatCodec(AutoProcessor.from_pretrained(tiny_model_path))


def _frame(value: int) -> np.ndarray:
    return np.full((56, 56, 3), value, np.uint8)  # 4 image tokens


def _trajectory(codec: ChatCodec, group: int, responses: list[str],
                rewards: list[float]) -> Trajectory:
    """A trajectory played with a window of one image turn: each turn after the first
    starts a new segment."""
    tokens = TrajectoryTokens(codec, "Answer the question.", window=1)
    trajectory = Trajectory(f"env-{group}", seed=group, group=group, tokens=tokens)
    for turn, (text, reward) in enumerate(zip(responses, rewards, strict=True)):
        tokens.add_observation(f"Turn {turn}: <image>", [_frame(40 * turn)])
        ids = codec.encode(text)
        tokens.add_response(ids, [-0.5] * len(ids), turn)
        tokens.set_turn_reward(turn, reward)
    return trajectory


def test_training_batch_rows_are_segments_and_the_view_rejoins_them(codec: ChatCodec) -> None:
    retrieve, answer = "<retrieve>1,3</retrieve>", "<answer>B</answer>"
    single = "<answer>A</answer>"
    two_turns = _trajectory(codec, 0, [retrieve, answer], [0.0, 1.0])
    one_turn = _trajectory(codec, 1, [single], [0.2])
    assert len(two_turns.tokens.segments) == 2

    batch, row_traj = training_batch([two_turns, one_turn], codec, rope_index=None)
    assert row_traj == [0, 0, 1]
    assert batch["input_ids"].shape[0] == 3
    assert batch["image_grid_thw"].shape[0] == 3  # segment 2 keeps only the new frame
    view = TrajectoryView.build(batch["loss_mask"], row_traj, 2)
    policy_ids = view.gather(batch["input_ids"])
    assert codec.tokenizer.decode(policy_ids[0][view.mask[0].bool()]) == retrieve + answer
    assert codec.tokenizer.decode(policy_ids[1][view.mask[1].bool()]) == single
    rewards = view.gather(batch["token_rewards"])
    n_retrieve, n_answer = len(codec.encode(retrieve)), len(codec.encode(answer))
    assert rewards[0].nonzero().flatten().tolist() == [n_retrieve + n_answer - 1]
    assert rewards[0].sum() == 1.0 and rewards[1].sum() == pytest.approx(0.2)
    turns = view.gather(batch["turn_ids"])[0, :n_retrieve + n_answer]
    assert turns.tolist() == [0] * n_retrieve + [1] * n_answer


def _turn(tokens: int, reward: float, **info) -> TurnRecord:
    """A turn whose info is a StepInfo dict: `info` on top of an unanswered first turn."""
    return TurnRecord("", tokens, reward, StepInfo(
        **{"valid_action": True, "turn": 1, "frames_seen": 0, "answer": None,
           "correct": False, **info}).to_dict())


def test_rollout_metrics_are_means_over_trajectories() -> None:
    answered = Trajectory("a", 0, 0, tokens=None, terminated=True, turns=[
        _turn(10, 0.0, valid_action=True, action_type="retrieve", frames_seen=5,
              reward_parts={}),
        _turn(6, 1.2, valid_action=True, action_type="answer", correct=True, frames_seen=7,
              reward_parts={"choice": 1.0, "format": 0.2}),
    ])
    invalid = Trajectory("b", 1, 0, tokens=None, truncated=True, turns=[
        _turn(4, -0.1, valid_action=False, action_type="invalid", correct=False,
              frames_seen=3, reward_parts={"format_penalty": -0.1}),
    ])
    metrics = rollout_metrics([answered, invalid])
    assert metrics == pytest.approx({
        "reward/mean": 0.55, "reward/std": 0.65, "rollout/accuracy": 0.5,
        "rollout/answered": 0.5, "rollout/turns": 1.5, "rollout/frames_seen": 5.0,
        "rollout/frames_seen_p90": 6.6,
        "rollout/invalid_action_rate": 1 / 3, "rollout/request_rate": 0.5,
        "rollout/response_tokens": 20 / 3, "reward/choice": 0.5, "reward/format": 0.1,
        "reward/format_penalty": -0.05})
