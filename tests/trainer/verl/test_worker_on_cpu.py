"""verl's own agent-loop worker around our agent loop, on CPU: rows in as verl's dataset hands
them over, a `DataProto` out as verl's trainer receives it (padding, masks, multi-modal
inputs, rewards). The vLLM server is the scripted stand-in (none runs on CPU); the envs run
on a real server."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import torch

from tests.trainer.verl.scripted_llm import ANSWER, RETRIEVE, ScriptedServerManager

SCRIPT = ["I am not sure yet.", RETRIEVE, ANSWER]
ENV_REWARDS = [-0.1, 0.0, 1.1]  # invalid action, retrieve, correct answer with format


def object_column(values: list) -> np.ndarray:
    """A 1-D object array, as verl keeps non-tensor columns (lists stay elements)."""
    column = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        column[i] = value
    return column


def turn_ends(mask_row: torch.Tensor) -> list[int]:
    mask = [*mask_row.tolist(), 0]
    return [i for i in range(len(mask) - 1) if mask[i] and not mask[i + 1]]


def turn_starts(mask_row: torch.Tensor) -> list[int]:
    mask = [0, *mask_row.tolist()]
    return [i for i in range(len(mask) - 1) if mask[i + 1] and not mask[i]]


@pytest.fixture(scope="module")
def batch_out(verl_config, processor, env_config):
    from verl.protocol import DataProto

    from vagen.trainer.verl.agent_loop import VideoAgentLoopWorker

    rows = [{"env": "video_qa", "env_group": "verl-test", "seed": seed, "config": env_config,
             "data_source": "vagen/verl-test", "raw_prompt": [{"role": "user", "content": "q"}],
             "reward_model": {"ground_truth": "B"}, "extra_info": {"index": seed},
             "index": seed} for seed in (0, 1)]
    non_tensor = {key: object_column([row[key] for row in rows]) for key in rows[0]}
    worker = VideoAgentLoopWorker(verl_config, ScriptedServerManager(processor.tokenizer, SCRIPT))
    return asyncio.run(worker.generate_sequences(DataProto(non_tensor_batch=non_tensor)))


def test_rewards_stay_on_the_turns_that_earned_them(batch_out):
    mask = batch_out.batch["response_mask"]
    scores = batch_out.batch["rm_scores"]
    for row in range(2):
        ends = turn_ends(mask[row])
        assert len(ends) == 3
        assert scores[row, ends].tolist() == pytest.approx(ENV_REWARDS)
        assert float(scores[row].sum()) == pytest.approx(sum(ENV_REWARDS))
    assert "vagen_token_rewards" not in batch_out.non_tensor_batch
    assert batch_out.non_tensor_batch["__num_turns__"].tolist() == [6, 6]
    assert batch_out.non_tensor_batch["acc"].tolist() == [1.0, 1.0]


def test_image_features_match_the_image_tokens(batch_out, processor, verl_config):
    image_token = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    merge = processor.image_processor.merge_size
    prompt_length = verl_config.actor_rollout_ref.rollout.prompt_length
    assert batch_out.batch["prompts"].shape == (2, prompt_length)
    for row, inputs in enumerate(batch_out.non_tensor_batch["multi_modal_inputs"]):
        grid = inputs["image_grid_thw"]
        assert grid.shape[0] == 7  # 4 opening frames + 3 retrieved
        tokens = int((batch_out.batch["input_ids"][row] == image_token).sum())
        assert tokens == int(grid.prod(-1).sum()) // merge**2
        assert inputs["pixel_values"].shape[0] == int(grid.prod(-1).sum())


def test_grpo_turn_runs_on_the_batch_through_verls_registry(batch_out):
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    from vagen.trainer.verl.advantages import register_estimators

    register_estimators()
    scores = batch_out.batch["rm_scores"]
    mask = batch_out.batch["response_mask"]
    advantages, returns = get_adv_estimator_fn("grpo_turn")(
        token_level_rewards=scores, response_mask=mask, config={"high_level_gamma": 1.0},
        index=np.array(["u", "u"], dtype=object))
    # Identical trajectories of one group: every turn's return equals the group mean.
    assert torch.count_nonzero(advantages) == 0
    # Each turn's return sums the rewards from that turn on: -0.1 + 0 + 1.1, 0 + 1.1, 1.1.
    assert returns[0, turn_starts(mask[0])].tolist() == pytest.approx([1.0, 1.1, 1.1])
    assert torch.all(returns[mask == 0] == 0)


def test_video_mtr_shaping_runs_on_the_batch_verls_worker_built(batch_out):
    from vagen.rewards.shaping import ShapingConfig
    from vagen.trainer.verl.advantages import compute_advantage

    data = batch_out.select(batch_keys=["rm_scores", "response_mask"], deepcopy=True)
    data.batch["token_level_rewards"] = data.batch.pop("rm_scores")
    data.non_tensor_batch["uid"] = np.array(["u", "u"], dtype=object)
    out = compute_advantage(data, "grpo", config={}, shaping=ShapingConfig(exploration=False))
    mask = out.batch["response_mask"]
    for row in range(2):
        # invalid turn 0; a valid fetch 0.1 (+0.5 for raising the frame IoU: the answer is
        # right); the right answer at turn 3: 0.1 + 1.0 - 0.2
        ends = turn_ends(mask[row])
        assert out.batch["token_level_rewards"][row, ends].tolist() == pytest.approx(
            [0.0, 0.6, 0.9])


def worker_output(config, processor, rows):
    from verl.protocol import DataProto

    from vagen.trainer.verl.agent_loop import VideoAgentLoopWorker

    non_tensor = {key: object_column([row[key] for row in rows]) for key in rows[0]}
    worker = VideoAgentLoopWorker(config, ScriptedServerManager(processor.tokenizer, SCRIPT))
    return asyncio.run(worker.generate_sequences(DataProto(non_tensor_batch=non_tensor)))


def test_a_broken_env_drops_its_trajectory_and_the_others_train(verl_config, processor,
                                                                env_config, env_row, tmp_path):
    from omegaconf import OmegaConf

    from vagen.trainer.verl.agent_loop import FAILED, VideoAgentLoopManager, failure_metrics

    broken = {**env_config, "data": str(tmp_path / "missing.jsonl")}
    rows = [env_row(seed) for seed in range(4)]
    rows[2]["config"] = json.dumps(broken)
    out = worker_output(verl_config, processor, rows)
    reasons = out.non_tensor_batch[FAILED].tolist()
    assert reasons == ["", "", "env_error", ""]
    mask = out.batch["response_mask"]
    assert int(mask[2].sum()) == 0 and float(out.batch["rm_scores"][2].abs().sum()) == 0
    for row in (0, 1, 3):  # the others played all three turns, rewards in place
        assert out.batch["rm_scores"][row, turn_ends(mask[row])].tolist() == pytest.approx(
            ENV_REWARDS)
    assert out.non_tensor_batch["failed"].tolist() == [0.0, 0.0, 1.0, 0.0]
    # The manager's step figures (built without Ray: it only reads the config): 1 of 4 is
    # more than the default 10%, so the step stops, naming the reason.
    manager = object.__new__(VideoAgentLoopManager)
    manager.config = verl_config
    with pytest.raises(RuntimeError, match=r"1 of 4 trajectories failed.*env_error: 1.*"
                                           r"max_failed_share=0.1"):
        manager._performance_metrics([out.meta_info["metrics"]], out)
    manager.config = OmegaConf.merge(verl_config, {"vagen": {"agent": {"max_failed_share": 0.25}}})
    timing = manager._performance_metrics([out.meta_info["metrics"]], out)
    assert timing["rollout/failed_trajectories"] == 1.0
    assert timing["rollout/failed_trajectories/env_error"] == 1.0
    assert failure_metrics(["", ""], 0.0) == {"rollout/failed_trajectories": 0.0}


def test_an_over_long_first_observation_drops_its_trajectory(model_dir, env_server, processor,
                                                             env_row):
    from vagen.trainer.verl.agent_loop import FAILED
    from vagen.trainer.verl.main import compose_config

    config = compose_config("video_ppo", [
        f"actor_rollout_ref.model.path={model_dir}", f"vagen.agent.env_servers=[{env_server.url}]",
        "data.max_prompt_length=16",
        "data.max_response_length=512", "actor_rollout_ref.rollout.agent.num_workers=1"])
    out = worker_output(config, processor, [env_row(0), env_row(1)])
    assert out.non_tensor_batch[FAILED].tolist() == ["prompt_too_long"] * 2
    assert int(out.batch["response_mask"].sum()) == 0


def test_frames_travel_as_frames_and_arrive_as_the_processors_pixel_values(batch_out,
                                                                           processor):
    """A row's pixel_values pickle (as Ray ships them) as its uint8 frames, >= 4x fewer bytes,
    and unpickle into the image processor's pixel_values."""
    import pickle

    from vagen.trainer.verl.frames import FramePixels

    for inputs in batch_out.non_tensor_batch["multi_modal_inputs"]:
        pixels = inputs["pixel_values"]
        assert isinstance(pixels, FramePixels)
        plain = {**inputs, "pixel_values": torch.Tensor(pixels.clone())}
        assert len(pickle.dumps(plain)) >= 4 * len(pickle.dumps(inputs))
        arrived = pickle.loads(pickle.dumps(inputs))["pixel_values"]
        from PIL import Image

        expected = processor.image_processor(
            images=[Image.fromarray(f) for f in pixels._frames], return_tensors="pt")
        torch.testing.assert_close(torch.Tensor(arrived.clone()), expected["pixel_values"],
                                   atol=1e-6, rtol=0)
        assert type(arrived * 1) is torch.Tensor  # the model sees a plain tensor
