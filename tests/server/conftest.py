"""Fixtures for the server tests: env groups over real MP4s (the small "test_frames" env, and
`video_qa` in every protocol on synthetic data), an `EnvService`, and real waitress servers
on 127.0.0.1 at free ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.server.frames_env import VIDEO_FRAMES  # importing it registers "test_frames"
from vagen.data.synthetic import SynthConfig, generate_dataset
from vagen.env.video_qa.protocols import BUILT_IN
from vagen.server.app import BackgroundServer
from vagen.server.service import EnvService
from vagen.video.encode import write_mp4

SYNTHETIC_SAMPLES = 6  # one per question kind, two of them multi-video


@pytest.fixture(scope="session")
def video_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 frames of 64x48 whose colour encodes the frame index."""
    frames = [np.full((48, 64, 3), (20 * i, 255 - 20 * i, 128), np.uint8)
              for i in range(VIDEO_FRAMES)]
    return write_mp4(tmp_path_factory.mktemp("video") / "bars.mp4", frames, fps=4)



@pytest.fixture(scope="session")
def synthetic_samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic grounded QA on short 64x64 videos (22-30 s at 2 fps)."""
    config = SynthConfig(min_duration_s=22, max_duration_s=30, fps=2, max_videos=2,
                         max_carrier_s=12)
    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(root, n=SYNTHETIC_SAMPLES, seed=0, config=config)
    return root / "samples.jsonl"


@pytest.fixture
def groups(video_path: Path, synthetic_samples: Path) -> dict[str, dict[str, Any]]:
    """"frames" (the test env) and "qa-<protocol>" (video_qa) for each protocol."""
    qa = {f"qa-{protocol}": {"name": f"qa-{protocol}", "env": "video_qa", "protocol": protocol,
                             "data": str(synthetic_samples), "initial_frames": 8,
                             "frames_per_turn": 4, "max_pixels": 56 * 56,
                             "max_turns": 1 if protocol == "single" else 3}
          for protocol in BUILT_IN}
    return {"frames": {"name": "frames", "env": "test_frames", "video": str(video_path)}, **qa}


@pytest.fixture
def service(groups: dict[str, dict[str, Any]]) -> Iterator[EnvService]:
    service = EnvService(groups, workers=2)
    try:
        yield service
    finally:
        service.shutdown()


@pytest.fixture
def serve(groups: dict[str, dict[str, Any]]) -> Iterator[Callable[..., BackgroundServer]]:
    """Start real servers: `serve(token=None, workers=2)` -> a running `BackgroundServer`
    (its service at `.service`); all are stopped and their envs closed at teardown."""
    started: list[BackgroundServer] = []

    def start(token: str | None = None, workers: int = 2) -> BackgroundServer:
        started.append(BackgroundServer(EnvService(groups, workers=workers), token, threads=4))
        return started[-1]

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def server(serve: Callable[..., BackgroundServer]) -> BackgroundServer:
    return serve()
