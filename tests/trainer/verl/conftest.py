"""Fixtures for the verl seams on CPU (verl itself needs GPUs, vLLM and Ray to train): the tiny
Qwen2.5-VL saved like a checkpoint, a real env server on 127.0.0.1 playing a real MP4, the
composed verl config, and a scripted stand-in for verl's LLM server client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vagen.data import Sample, save_samples
from vagen.server.app import BackgroundServer
from vagen.server.service import EnvService
from vagen.testing import make_test_video

# A 10 s video at 1 frame per second in the pool; 56x56 frames are 4 image tokens each.
ENV_CONFIG = {"name": "verl-test", "env": "video_qa", "protocol": "retrieve", "max_turns": 3,
              "window": 3, "max_new_tokens": 64,
              "initial_frames": 4, "frames_per_turn": 3, "pool_fps": 1.0,
              "max_pixels": 56 * 56, "rewards": {"choice": 1.0, "format": 0.1}}


@pytest.fixture(scope="session")
def model_dir(tiny_model_path: Path) -> Path:
    return tiny_model_path


@pytest.fixture(scope="session")
def processor(model_dir: Path) -> Any:
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(model_dir)


@pytest.fixture(scope="session")
def env_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The env group a row plays (as `vagen data create` stores it in the row)."""
    root = tmp_path_factory.mktemp("verl-env")
    make_test_video(root / "videos" / "a.mp4", duration_s=10.0, fps=2.0, size=(64, 64))
    sample = Sample(id="s0", videos=["videos/a.mp4"], question="What colour did it turn?",
                    options=["red", "yellow", "blue"], answer="B", answer_type="choice",
                    relevant_spans=[[2.0, 5.0]], duration_s=10.0, source="test")
    return {**ENV_CONFIG, "data": str(save_samples([sample], root / "samples.jsonl"))}


@pytest.fixture(scope="session")
def env_server() -> Iterator[BackgroundServer]:
    """A real env server (waitress, 127.0.0.1, free port); rows carry their env config."""
    server = BackgroundServer(EnvService(workers=2), threads=4)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def env_row(env_config: dict[str, Any]):
    """A dataset row as verl hands it to the agent loop: `env_row(seed=0)`."""

    def build(seed: int = 0) -> dict[str, Any]:
        return {"env": "video_qa", "env_group": "verl-test", "seed": seed,
                "config": json.dumps(env_config), "data_source": "vagen/verl-test",
                "raw_prompt": [{"role": "user", "content": "What colour did it turn?"}],
                "reward_model": {"ground_truth": "B"}, "extra_info": {"index": seed},
                "index": seed}

    return build


@pytest.fixture(scope="session")
def verl_config(model_dir: Path, env_server: BackgroundServer):
    """video_ppo composed over verl's config, pointed at the tiny model and the test server,
    with lengths that fit the tiny frames."""
    from vagen.trainer.verl.main import compose_config

    return compose_config("video_ppo", [
        f"actor_rollout_ref.model.path={model_dir}",
        f"vagen.agent.env_servers=[{env_server.url}]",
        "data.max_prompt_length=2048", "data.max_response_length=512",
        "actor_rollout_ref.rollout.agent.num_workers=1"])
