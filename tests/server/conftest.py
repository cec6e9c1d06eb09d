"""Fixtures for the server tests: a small real env ("test_frames", frames decoded from a real
MP4), an `EnvService`, and real waitress servers on 127.0.0.1 at free ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from frames_env import VIDEO_FRAMES  # importing it registers "test_frames"

from vagen.server.app import BackgroundServer, create_app
from vagen.server.service import EnvService
from vagen.video.encode import write_mp4


@pytest.fixture(scope="session")
def video_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 frames of 64x48 whose colour encodes the frame index."""
    frames = [np.full((48, 64, 3), (20 * i, 255 - 20 * i, 128), np.uint8)
              for i in range(VIDEO_FRAMES)]
    return write_mp4(tmp_path_factory.mktemp("video") / "bars.mp4", frames, fps=4)



@pytest.fixture
def groups(video_path: Path) -> dict[str, dict[str, Any]]:
    return {"frames": {"name": "frames", "env": "test_frames", "video": str(video_path)}}


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
    started: list[tuple[BackgroundServer, EnvService]] = []

    def start(token: str | None = None, workers: int = 2) -> BackgroundServer:
        service = EnvService(groups, workers=workers)
        server = BackgroundServer(create_app(service, token), threads=4)
        server.service = service
        started.append((server, service))
        return server

    try:
        yield start
    finally:
        for server, service in started:
            try:
                server.stop()
            finally:
                service.shutdown()


@pytest.fixture
def server(serve: Callable[..., BackgroundServer]) -> BackgroundServer:
    return serve()
