"""Small real MP4s whose frames say which frame they are, so decode and sampling tests can
check exactly which frame (and so which time) they got back.

Frame `i` (shown from `i / fps` seconds) is one flat colour whose red, green and blue levels
are the units, tens and hundreds digits of `i`, 25 levels apart: far more than the few
levels H.264 changes a flat frame by, and unchanged by resizing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from vagen.video.encode import write_mp4

_LEVELS = 10
_STEP = 25
_OFFSET = 12
MAX_FRAMES = _LEVELS ** 3


def frame_colour(index: int) -> tuple[int, int, int]:
    """The RGB colour of frame `index` (0 <= index < MAX_FRAMES)."""
    if not 0 <= index < MAX_FRAMES:
        raise ValueError(f"frame index {index} outside 0..{MAX_FRAMES - 1}")
    digits = (index % _LEVELS, index // _LEVELS % _LEVELS, index // _LEVELS ** 2)
    return tuple(_OFFSET + _STEP * d for d in digits)


def frame_index(frame: np.ndarray) -> int:
    """The index a decoded frame (H, W, 3), or one RGB colour (3,), was written with: its
    mean colour rounded to the nearest level."""
    rgb = np.asarray(frame, dtype=np.float64).reshape(-1, 3).mean(axis=0)
    digits = np.clip(np.rint((rgb - _OFFSET) / _STEP), 0, _LEVELS - 1).astype(int)
    return int(digits[0] + _LEVELS * digits[1] + _LEVELS ** 2 * digits[2])


def make_test_video(path: str | Path, duration_s: float = 6.0, fps: float = 4.0,
                    size: tuple[int, int] = (64, 64)) -> Path:
    """Write frames of `size = (width, height)` (even numbers) at `fps` as H.264 MP4, one
    for every `i / fps < duration_s` (so each time in `[0, duration_s)` shows a frame); frame
    `i` has colour `frame_colour(i)`."""
    num_frames = math.ceil(duration_s * fps - 1e-9)
    if not 1 <= num_frames <= MAX_FRAMES:
        raise ValueError(f"duration_s * fps = {duration_s} * {fps} gives {num_frames} frames; "
                         f"make_test_video writes 1..{MAX_FRAMES}")
    width, height = size
    frames = (np.full((height, width, 3), frame_colour(i), dtype=np.uint8)
              for i in range(num_frames))
    return write_mp4(path, frames, fps=fps)
