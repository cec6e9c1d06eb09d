"""Multi-turn rollouts of the tiny model against a real env server on 127.0.0.1: turn counts,
terminated/truncated, per-turn rewards on the right tokens, requested frames appended as the
next user turn, and a trajectory whose re-scored log-probs equal the recorded ones."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from tests.rollout.conftest import ANSWER, GROUP, TOKENS_PER_FRAME
from vagen.env.registry import make_env
from vagen.rollout.backends.base import Generation, PromptInput, SamplingParams
from vagen.rollout.backends.hf import HFBackend, token_logprobs
from vagen.rollout.manager import RolloutConfig, RolloutManager, Trajectory
from vagen.rollout.tokens import OMITTED_FRAME, Segment, collate_segments

RETRIEVE = "<think>look</think><retrieve>4,7</retrieve>"
ANSWER_TEXT = f"<think>it turned</think><answer>{ANSWER}</answer>"
FORMAT_PENALTY = -0.1
ANSWER_REWARD = 1.0 + 0.1 * 1.0  # choice 1.0 + format weight 0.1 x a well-formed answer


class ForcedBackend:
    """Writes given replies (one per turn, the same for every prompt), with the log-probs the
    real tiny model gives them: the random model never writes a valid action by itself."""

    def __init__(self, model: Any, codec: Any, replies: list[str]) -> None:
        self.model = model
        self.codec = codec
        self.replies = replies
        self.calls = 0

    def generate(self, prompts: list[PromptInput], sampling: SamplingParams) -> list[Generation]:
        text = self.replies[self.calls]
        self.calls += 1
        ids = self.codec.encode(text)
        segments = []
        for prompt_ids, images in prompts:
            segment = Segment()
            segment.extend_context(prompt_ids, images)
            segment.extend_response(ids, [0.0] * len(ids), 0)
            segments.append(segment)
        batch = collate_segments(segments, self.codec, self.model.model.get_rope_index)
        with torch.no_grad():
            logp, _ = token_logprobs(self.model, batch, sampling.temperature,
                                     self.codec.suppressed_ids)
        mask = batch["loss_mask"].bool()
        return [Generation(ids, logp[row][mask[row]].tolist(), text)
                for row in range(len(prompts))]


def make_envs(client: Any, n: int) -> list[str]:
    env_ids = [f"env-{i}" for i in range(n)]
    client.create({env_id: {"group": "qa"} for env_id in env_ids})
    return env_ids


def trained_tokens(trajectory: Trajectory) -> int:
    return sum(sum(s.loss_mask) for s in trajectory.tokens.segments)


def rescoring_error(model: Any, codec: Any, trajectories: list[Trajectory]) -> float:
    segments = [s for t in trajectories for s in t.tokens.segments]
    batch = collate_segments(segments, codec, rope_index=model.model.get_rope_index)
    with torch.no_grad():
        logp, _ = token_logprobs(model, batch, 1.0, codec.suppressed_ids)
    mask = batch["loss_mask"].bool()
    return float((logp[mask] - batch["old_logprobs"][mask]).abs().max())


def test_two_turn_rollout_of_the_tiny_model_against_an_env_server(model, codec, env_client):
    env_ids = make_envs(env_client, 3)
    config = RolloutConfig(max_turns=3, window=2,
                           sampling=SamplingParams(max_new_tokens=6, temperature=1.0, seed=0))
    manager = RolloutManager(HFBackend(model, codec), codec, env_client, config)
    trajectories = manager.run(env_ids, seeds=[0, 1, 2])
    assert [t.env_id for t in trajectories] == env_ids
    assert [t.group for t in trajectories] == [0, 1, 2]
    for trajectory in trajectories:
        # random text is no action: two penalised turns, then the env's turn limit
        assert len(trajectory.turns) == GROUP["max_turns"]
        assert (trajectory.terminated, trajectory.truncated) == (False, True)
        assert [t.info["turn"] for t in trajectory.turns] == [1, 2]
        assert [t.info["valid_action"] for t in trajectory.turns] == [False, False]
        assert [t.reward for t in trajectory.turns] == [FORMAT_PENALTY] * 2
        assert trajectory.reward == pytest.approx(2 * FORMAT_PENALTY)
        assert all(1 <= t.num_tokens <= 6 for t in trajectory.turns)
        assert trained_tokens(trajectory) == sum(t.num_tokens for t in trajectory.turns)
        # the env's answer to turn 1 (text only: nothing was asked for) is turn 2's prompt
        roles = [m.role for m in trajectory.tokens.messages]
        assert roles == ["system", "user", "assistant", "user", "assistant"]
        assert trajectory.tokens.messages[3].text.startswith("Invalid action")
        assert trajectory.tokens.messages[3].images == []
        segment = trajectory.tokens.current
        assert len(segment.images) == GROUP["initial_frames"]
        rewards = [r for r in segment.rewards if r]
        assert rewards == pytest.approx([FORMAT_PENALTY] * 2)
    assert rescoring_error(model, codec, trajectories) < 1e-4


def test_requested_frames_are_appended_as_the_next_user_turn(model, codec, env_client,
                                                             samples_path):
    env_ids = make_envs(env_client, 2)
    manager = RolloutManager(ForcedBackend(model, codec, [RETRIEVE, ANSWER_TEXT]), codec,
                             env_client, RolloutConfig(max_turns=3, window=2))
    trajectories = manager.run(env_ids, seeds=[0, 0], groups=[7, 7])
    local = make_env("video_qa", {**GROUP, "data": str(samples_path)})
    local.reset(0)
    asked_for = local.step(RETRIEVE).obs
    for trajectory in trajectories:
        assert trajectory.group == 7
        assert len(trajectory.turns) == 2
        assert (trajectory.terminated, trajectory.truncated) == (True, False)
        first, second = trajectory.turns
        assert (first.info["action_type"], first.reward) == ("retrieve", 0.0)
        assert (second.info["answer"], second.info["correct"]) == (ANSWER, True)
        assert second.reward == pytest.approx(ANSWER_REWARD)
        assert second.info["frames_seen"] == GROUP["initial_frames"] + GROUP["frames_per_turn"]
        # turn 2's user message carries exactly the frames the env returned for the request
        message = trajectory.tokens.messages[3]
        assert message.text == asked_for.text
        expected = codec.process_images(asked_for.frames)
        assert len(message.images) == len(expected) == GROUP["frames_per_turn"]
        for got, want in zip(message.images, expected, strict=True):
            assert torch.equal(got.pixel_values, want.pixel_values)
        segment = trajectory.tokens.current
        n_frames = GROUP["initial_frames"] + GROUP["frames_per_turn"]
        assert len(segment.images) == n_frames
        assert segment.input_ids.count(codec.image_token_id) == n_frames * TOKENS_PER_FRAME
        rewards = [r for r in segment.rewards if r]
        assert rewards == pytest.approx([ANSWER_REWARD])
    assert rescoring_error(model, codec, trajectories) < 1e-4


def test_a_window_of_one_trains_turn_two_in_a_segment_without_the_opening_frames(
        model, codec, env_client):
    env_ids = make_envs(env_client, 1)
    manager = RolloutManager(ForcedBackend(model, codec, [RETRIEVE, ANSWER_TEXT]), codec,
                             env_client, RolloutConfig(max_turns=2, window=1))
    (trajectory,) = manager.run(env_ids, seeds=[0])
    first, second = trajectory.tokens.segments
    assert len(first.images) == GROUP["initial_frames"]
    assert len(second.images) == GROUP["frames_per_turn"]
    omitted = codec.encode(OMITTED_FRAME)
    notes = sum(1 for i in range(len(second.input_ids))
                if second.input_ids[i:i + len(omitted)] == omitted)
    assert notes == GROUP["initial_frames"]
    assert sum(first.loss_mask) == trajectory.turns[0].num_tokens
    assert sum(second.loss_mask) == trajectory.turns[1].num_tokens
    assert [r for r in first.rewards if r] == []  # the retrieve turn earned 0
    assert [r for r in second.rewards if r] == pytest.approx([ANSWER_REWARD])
    assert rescoring_error(model, codec, [trajectory]) < 1e-4


def test_the_rollout_turn_limit_truncates_before_the_env_does(model, codec, env_client):
    env_ids = make_envs(env_client, 1)
    manager = RolloutManager(ForcedBackend(model, codec, [RETRIEVE]), codec, env_client,
                             RolloutConfig(max_turns=1))
    (trajectory,) = manager.run(env_ids, seeds=[0])
    assert len(trajectory.turns) == 1
    assert (trajectory.terminated, trajectory.truncated) == (False, True)
    # no observation is appended after the last turn: nothing would answer it
    assert [m.role for m in trajectory.tokens.messages] == ["system", "user", "assistant"]
    assert trajectory.tokens.current.input_ids[-2:] == [codec.im_end_id, *codec.encode("\n")]


def test_bad_arguments_name_what_to_change(model, codec, env_client):
    manager = RolloutManager(HFBackend(model, codec), codec, env_client)
    with pytest.raises(ValueError, match="2 env ids but 1 seeds"):
        manager.run(["a", "b"], seeds=[0])
    with pytest.raises(ValueError, match="rollout.max_turns must be >= 1"):
        RolloutConfig(max_turns=0)
    assert RolloutConfig(sampling={"temperature": 0.5}).sampling == SamplingParams(
        temperature=0.5)
    with pytest.raises(ValueError, match="top_p must be in"):
        SamplingParams(top_p=0.0)
