"""The env agent loop at its verl seams: a scripted stand-in for the vLLM server manager (none
runs on CPU) and a real env server on 127.0.0.1 playing a real MP4. Expected values come from
replaying the same actions on the same env in process."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from omegaconf import OmegaConf

from tests.trainer.verl.scripted_llm import ANSWER, RETRIEVE, ScriptedServerManager
from vagen.env.registry import make_env
from vagen.env.video_qa.protocols import stop_strings

INVALID = "I am not sure yet."
SCRIPT = [INVALID, RETRIEVE, ANSWER]


def make_loop(config, server_manager, processor):
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from vagen.trainer.verl.agent_loop import VideoEnvAgentLoop

    return VideoEnvAgentLoop(trainer_config=DictConfigWrap(config), server_manager=server_manager,
                             tokenizer=processor.tokenizer, processor=processor,
                             dataset_cls=RLHFDataset, data_config=DictConfigWrap(config.data))


def replay(env_config: dict, actions: list[str]):
    """The same episode in process: the initial observation and each step's result."""
    env = make_env("video_qa", env_config)
    first = env.reset(0)
    return first, [env.step(action) for action in actions]


def runs(mask: list[int]) -> list[tuple[int, int]]:
    """(start, end) of each run of 1s."""
    spans, start = [], None
    for i, m in enumerate([*mask, 0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            spans.append((start, i))
            start = None
    return spans


def image_runs(ids: list[int], image_token_id: int) -> int:
    return sum(1 for i, t in enumerate(ids) if t == image_token_id and (
        i == 0 or ids[i - 1] != image_token_id))


@pytest.fixture
def played(verl_config, processor, env_row, env_server):
    server = ScriptedServerManager(processor.tokenizer, SCRIPT)
    loop = make_loop(verl_config, server, processor)
    output = asyncio.run(loop.run({"temperature": 1.0, "top_p": 1.0, "logprobs": True},
                                  **env_row(seed=0)))
    return output, server


def test_policy_tokens_are_the_sampled_ids_and_env_tokens_are_masked(played, processor):
    output, server = played
    tokenizer = processor.tokenizer
    turns = runs(output.response_mask)
    assert len(turns) == 3
    for (start, end), action in zip(turns, SCRIPT, strict=True):
        assert output.response_ids[start:end] == tokenizer.encode(action, add_special_tokens=False)
    # Each request's prompt is everything before that turn's sampled ids.
    sequence = output.prompt_ids + output.response_ids
    assert server.requests[0]["prompt_ids"] == output.prompt_ids
    for request, (start, _) in zip(server.requests, turns, strict=True):
        assert request["prompt_ids"] == sequence[:len(output.prompt_ids) + start]
    # The response ends on the policy's last token; log-probs are the sampled ones.
    assert output.response_mask[-1] == 1
    logprobs = np.array(output.response_logprobs)
    mask = np.array(output.response_mask, dtype=bool)
    assert np.all(logprobs[mask] == -0.5) and np.all(logprobs[~mask] == 0.0)


def test_env_frames_are_sent_as_images_in_token_order(played, processor, env_config):
    output, server = played
    first, results = replay(env_config, SCRIPT)
    frames = first.frames + results[1].obs.frames  # the invalid turn returned no frames
    assert len(first.frames) == 4 and len(results[1].obs.frames) == 3
    images = output.multi_modal_data["images"]
    assert [np.asarray(image).tolist() for image in images] == [f.tolist() for f in frames]
    image_token = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert image_runs(output.prompt_ids + output.response_ids, image_token) == len(frames)
    assert [len(r["images"]) for r in server.requests] == [4, 4, 7]


def test_turn_rewards_num_turns_and_sampling_params(played, env_config, env_server):
    output, server = played
    _, results = replay(env_config, SCRIPT)
    expected = [r.reward for r in results]
    assert expected == [pytest.approx(-0.1), 0.0, pytest.approx(1.1)]
    assert output.extra_fields["turn_scores"] == pytest.approx(expected)
    assert output.reward_score == pytest.approx(sum(expected))
    assert output.num_turns == 6
    token_rewards = output.extra_fields["vagen_token_rewards"]
    ends = [end - 1 for _, end in runs(output.response_mask)]
    assert [token_rewards[i] for i in ends] == pytest.approx(expected)
    assert sum(token_rewards) == pytest.approx(sum(expected))
    assert output.extra_fields["reward_extra_info"]["acc"] == 1.0
    assert output.extra_fields["reward_extra_info"]["visual_tokens"] > 0
    # what Video-MTR shaping reads, per turn: the invalid turn, the fetch, the answer
    infos = output.extra_fields["vagen_turn_infos"]
    assert [(i["valid_action"], i["action_type"], i["correct"]) for i in infos] == [
        (False, "invalid", False), (True, "retrieve", False), (True, "answer", True)]
    assert infos[0]["frames_iou"] is None and infos[1]["frames_iou"] > 0
    assert len({i["initial_iou"] for i in infos}) == 1
    for request in server.requests:
        params = request["sampling_params"]
        assert params["stop"] == list(stop_strings()) and params["temperature"] == 1.0
        assert params["max_tokens"] == 64
    assert len(env_server.service) == 0  # the episode's env was closed


def test_a_trajectory_stops_when_the_response_budget_is_spent(verl_config, processor, env_row,
                                                               env_server):
    config = OmegaConf.merge(verl_config, {"data": {"max_response_length": 40}})
    server = ScriptedServerManager(processor.tokenizer, SCRIPT)
    output = asyncio.run(make_loop(config, server, processor).run({}, **env_row(seed=0)))
    invalid_ids = processor.tokenizer.encode(INVALID, add_special_tokens=False)
    # The env's answer to turn 1 does not fit in 40 tokens: no second turn, nothing after it.
    assert len(server.requests) == 1
    assert output.response_ids == invalid_ids and output.response_mask == [1] * len(invalid_ids)
    assert len(output.multi_modal_data["images"]) == 4
    assert output.extra_fields["turn_scores"] == pytest.approx([-0.1])
    assert len(env_server.service) == 0


def test_a_row_without_an_env_fails_naming_the_column(verl_config, processor, env_row):
    row = {**env_row(seed=0), "seed": "zero"}
    loop = make_loop(verl_config, ScriptedServerManager(processor.tokenizer, SCRIPT), processor)
    with pytest.raises(ValueError, match="row column 'seed'"):
        asyncio.run(loop.run({}, **row))
    row = {**env_row(seed=0), "config": json.dumps([1, 2])}
    with pytest.raises(ValueError, match="row column 'config' must be a mapping"):
        asyncio.run(loop.run({}, **row))


def test_trajectories_take_turns_over_the_env_servers(verl_config, processor, env_row,
                                                      env_server, caplog):
    """With a dead server listed next to the live one, one of two concurrent trajectories
    lands on each: the one on the dead server is dropped as failed (its URL in the
    warning), the other plays through."""
    from vagen.trainer.verl.agent_loop import FAILED

    dead = "http://127.0.0.1:9"
    config = OmegaConf.merge(verl_config,
                             {"vagen": {"agent": {"env_servers": [dead, env_server.url]}}})
    server = ScriptedServerManager(processor.tokenizer, SCRIPT)
    loop = make_loop(config, server, processor)

    async def both():
        return await asyncio.gather(*(loop.run({}, **env_row(seed=s)) for s in (0, 1)))

    with caplog.at_level("WARNING", logger="vagen.trainer.verl.agent_loop"):
        outputs = asyncio.run(both())
    assert sorted(o.extra_fields[FAILED] for o in outputs) == ["", "env_error"]
    assert dead in caplog.text
    failed = next(o for o in outputs if o.extra_fields[FAILED])
    assert failed.response_mask == [0] and failed.reward_score == 0
    played = next(o for o in outputs if not o.extra_fields[FAILED])
    assert played.extra_fields["turn_scores"] == pytest.approx([-0.1, 0.0, 1.1])
    assert len(env_server.service) == 0


def test_a_worker_on_another_node_needs_only_the_config(model_dir, env_row, tmp_path,
                                                        monkeypatch):
    """The token is read where training starts (VAGEN_SERVER_TOKEN, resolved into the
    config by main.py) and the agent loop runs in a fresh interpreter whose environment is
    empty, as on a node whose shell never saw it: it plays through a token-guarded server."""
    import os
    import pickle
    import subprocess
    import sys
    from pathlib import Path

    from vagen.server.app import BackgroundServer
    from vagen.server.service import EnvService
    from vagen.trainer.verl.main import compose_config

    server = BackgroundServer(EnvService(workers=1), token="s3cret", threads=2)
    try:
        monkeypatch.setenv("VAGEN_SERVER_TOKEN", "s3cret")
        config = compose_config("video_ppo", [
            f"actor_rollout_ref.model.path={model_dir}", f"vagen.agent.env_servers=[{server.url}]",
            "data.max_prompt_length=2048",
            "data.max_response_length=512"])
        OmegaConf.resolve(config)  # as main.py does, on the node that starts training
        monkeypatch.delenv("VAGEN_SERVER_TOKEN")
        (tmp_path / "job.pkl").write_bytes(pickle.dumps((config, env_row(0))))
        script = f"""
import asyncio, os, pickle, sys
from transformers import AutoProcessor
from tests.trainer.verl.scripted_llm import ScriptedServerManager
from tests.trainer.verl.test_agent_loop_on_cpu import SCRIPT, make_loop
assert "VAGEN_SERVER_TOKEN" not in os.environ
config, row = pickle.loads(open({str(tmp_path / "job.pkl")!r}, "rb").read())
processor = AutoProcessor.from_pretrained({str(model_dir)!r})
loop = make_loop(config, ScriptedServerManager(processor.tokenizer, SCRIPT), processor)
out = asyncio.run(loop.run({{}}, **row))
print("FAILED=" + repr(out.extra_fields["vagen_failed"]), out.extra_fields["turn_scores"])
"""
        env = {"PATH": os.environ["PATH"], "OMP_NUM_THREADS": "1"}
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              timeout=300, env=env, cwd=Path(__file__).parents[3])
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    assert "FAILED=''" in done.stdout and "[-0.1, 0.0, 1.1]" in done.stdout


def test_the_dry_run_does_not_print_the_token(monkeypatch, capsys, model_dir):
    from vagen.trainer.verl.main import main

    monkeypatch.setenv("MODEL_PATH", str(model_dir))
    monkeypatch.setenv("VAGEN_SERVER_TOKEN", "s3cret")
    assert main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out and "server_token: '***'" in out
