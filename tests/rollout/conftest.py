"""Fixtures for the rollout tests: the tiny Qwen2.5-VL loaded like a checkpoint, its chat
codec, and a real env server on 127.0.0.1 playing `video_qa` over a small real MP4 (2 turns,
3 opening frames, 2 frames per request, 56x56 frames = 4 image tokens each)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vagen.data import Sample, save_samples
from vagen.rollout.tokens import ChatCodec
from vagen.server.app import BackgroundServer
from vagen.server.client import EnvClient
from vagen.server.service import EnvService
from vagen.testing import make_test_video

FRAME_SIZE = 56  # a 56x56 frame is a 2x2 grid of merged patches: 4 image tokens
TOKENS_PER_FRAME = 4
VIDEO_SECONDS = 12
GROUP = {"name": "qa", "env": "video_qa", "protocol": "retrieve", "max_turns": 2,
         "initial_frames": 3, "frames_per_turn": 2, "pool_fps": 1.0,
         "max_pixels": FRAME_SIZE * FRAME_SIZE, "min_pixels": 28 * 28,
         "rewards": {"choice": 1.0, "format": 0.1}}
ANSWER = "B"


def frame(value: int, height: int = FRAME_SIZE, width: int = FRAME_SIZE) -> np.ndarray:
    """A flat grey frame; `value` tells frames apart."""
    return np.full((height, width, 3), value, np.uint8)


@pytest.fixture(scope="session")
def processor(tiny_model_path: Path) -> Any:
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_path)


@pytest.fixture(scope="session")
def model(tiny_model_path: Path) -> Any:
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(tiny_model_path).eval()


@pytest.fixture(scope="session")
def codec(processor: Any) -> ChatCodec:
    return ChatCodec(processor)


@pytest.fixture(scope="session")
def samples_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One choice question about a 12 s, 2 fps, 64x64 video (pool: 12 frames at 1 fps)."""
    root = tmp_path_factory.mktemp("rollout-data")
    make_test_video(root / "videos" / "a.mp4", duration_s=VIDEO_SECONDS, fps=2)
    sample = Sample(id="q0", videos=["videos/a.mp4"], question="What colour did it turn?",
                    options=["red", "yellow", "blue"], answer=ANSWER, answer_type="choice",
                    relevant_spans=[[4.0, 7.0]], duration_s=float(VIDEO_SECONDS),
                    source="test")
    return save_samples([sample], root / "samples.jsonl")


@pytest.fixture(scope="module")
def env_server(samples_path: Path) -> Iterator[BackgroundServer]:
    """A real waitress server holding the "qa" group."""
    server = BackgroundServer(EnvService({"qa": {**GROUP, "data": str(samples_path)}}, workers=2),
                              threads=4)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def env_client(env_server: BackgroundServer) -> Iterator[EnvClient]:
    """A client of the env server; the envs it created are closed at teardown."""
    with EnvClient(env_server.url) as client:
        yield client
