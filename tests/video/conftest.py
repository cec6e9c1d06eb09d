"""Real tiny MP4s (64x64, 4 fps) whose colour encodes the frame index, so a test can read
back which frame a decoder returned: the lower half has red = 10 * (i % 25) and
green = 10 * (i // 25). Helpers are fixtures (`make_video`, `frame_ids`) because test
folders without `__init__.py` cannot safely import each other's conftest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vagen.video import clear_pool_cache
from vagen.video.decode import BACKEND_ENV
from vagen.video.encode import write_mp4
from vagen.video.pool import CACHE_BYTES_ENV

SIZE = 64
FPS = 4.0


def coded_frames(num_frames: int, keyframe_every: int | None = None, shift: int = 0):
    """Frames whose lower half encodes `i + shift`. With `keyframe_every`, the upper half
    flips between black and white every that many frames: x264 cuts a scene, and so puts a
    keyframe, at each flip, which makes the decoders seek."""
    for i in range(num_frames):
        frame = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
        code = i + shift
        frame[SIZE // 2:] = (10 * (code % 25), 10 * (code // 25), 128)
        if keyframe_every and (i // keyframe_every) % 2:
            frame[:SIZE // 2] = 255
        yield frame


def _frame_ids(frames: np.ndarray) -> list[int]:
    """The frame index each decoded (possibly resized) frame encodes."""
    height, width = frames.shape[1:3]
    patch = frames[:, height * 5 // 8: height * 15 // 16, width // 8: width * 7 // 8]
    red, green = patch[..., 0].mean(axis=(1, 2)), patch[..., 1].mean(axis=(1, 2))
    return (np.round(red / 10) + 25 * np.round(green / 10)).astype(int).tolist()


def _make_video(path: Path, duration_s: float, keyframe_every: int | None = None,
               shift: int = 0) -> Path:
    """A 64x64 H.264 MP4 at 4 fps (crf 10, so flat colours survive within +-3)."""
    return write_mp4(path, coded_frames(int(duration_s * FPS), keyframe_every, shift), fps=FPS,
                     crf=10)


@pytest.fixture(scope="session")
def make_video():
    """`make_video(path, duration_s, keyframe_every=None, shift=0) -> path`."""
    return _make_video


@pytest.fixture(scope="session")
def frame_ids():
    """`frame_ids(frames) -> list[int]`: the frame index each decoded frame encodes."""
    return _frame_ids


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Path:
    """6 s, 24 frames."""
    return _make_video(tmp_path_factory.mktemp("videos") / "clip.mp4", 6)


@pytest.fixture(scope="session")
def ten_s_clip(tmp_path_factory) -> Path:
    """10 s, 40 frames: a pool at 1 fps has 10 frames at 0.5, 1.5, ..., 9.5 s."""
    return _make_video(tmp_path_factory.mktemp("videos") / "ten.mp4", 10)


@pytest.fixture(scope="session")
def cut_clip(tmp_path_factory) -> Path:
    """30 s, 120 frames, a keyframe every 10 frames."""
    return _make_video(tmp_path_factory.mktemp("videos") / "cuts.mp4", 30, keyframe_every=10)


@pytest.fixture(autouse=True)
def fresh_video_state(monkeypatch):
    """Each test starts with an empty pool cache and no backend or budget from the shell."""
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    monkeypatch.delenv(CACHE_BYTES_ENV, raising=False)
    clear_pool_cache()
    yield
    monkeypatch.undo()  # a test's bad VAGEN_POOL_CACHE_BYTES must not break the clean-up
    clear_pool_cache()
