"""Real tiny MP4s and a samples file for the env tests. Each video's red channel encodes the
second on screen (`RED_PER_SECOND * floor(t)`), so a test can tell which moment a frame
shows; the green channel tells the videos apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vagen.data import Sample, save_samples
from vagen.video.encode import write_mp4

FPS = 2
SIZE = 64
RED_PER_SECOND = 12
DURATIONS = {"a": 20, "b": 10}  # seconds; pools at 1 fps hold 20 and 10 frames
GREEN = {"a": 40, "b": 200}

# Small budgets keep the tests fast and the counts hand-checkable.
BASE_CONFIG = {"initial_frames": 4, "frames_per_turn": 3, "pool_fps": 1.0,
               "max_pixels": SIZE * SIZE, "rewards": {"choice": 1.0, "format": 0.1}}


def second_of(frame: np.ndarray) -> int:
    """The second a test frame shows, read back from its red channel."""
    return int(round(float(frame[..., 0].mean()) / RED_PER_SECOND))


def green_of(frame: np.ndarray) -> float:
    return float(frame[..., 1].mean())


def _frames(name: str) -> list[np.ndarray]:
    frames = []
    for i in range(DURATIONS[name] * FPS):
        frame = np.zeros((SIZE, SIZE, 3), np.uint8)
        frame[..., 0] = RED_PER_SECOND * (i // FPS)
        frame[..., 1] = GREEN[name]
        frames.append(frame)
    return frames


def make_samples() -> list[Sample]:
    return [
        Sample(id="one-video", videos=["videos/a.mp4"], question="What colour did it turn?",
               options=["red", "yellow", "blue"], answer="B", answer_type="choice",
               relevant_spans=[[12.0, 15.0]], duration_s=20.0, source="test",
               extra={"evidence": "It was red and turned yellow at 13 s."}),
        Sample(id="two-videos", videos=["videos/a.mp4", "videos/b.mp4"],
               question="How many times did it blink in the second video?", answer="3",
               answer_type="number", relevant_spans=[[3.0, 6.0, 1]], source="test"),
    ]


@pytest.fixture(scope="session")
def samples_path(tmp_path_factory) -> Path:
    """`samples.jsonl` with video paths relative to its folder (as the synthetic data)."""
    root = tmp_path_factory.mktemp("env-data")
    for name in DURATIONS:
        write_mp4(root / "videos" / f"{name}.mp4", _frames(name), fps=FPS)
    return save_samples(make_samples(), root / "samples.jsonl")


@pytest.fixture
def env_config(samples_path):
    """A config dict for `make_env("video_qa", ...)`: `env_config(protocol, **overrides)`."""

    def build(protocol: str = "retrieve", **overrides) -> dict:
        config = {**BASE_CONFIG, "name": f"test-{protocol}", "protocol": protocol,
                  "data": str(samples_path), "max_turns": 1 if protocol == "single" else 3}
        return {**config, **overrides}

    return build
