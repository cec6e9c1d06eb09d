"""Where pool frames sit in time. Pure index/time arithmetic shared by the frame pool, the
synthetic data generator (to compute what uniform frames can see) and the envs."""

from __future__ import annotations

import math

import numpy as np


def pool_times(duration_s: float, pool_fps: float = 1.0, pool_max_frames: int = 64) -> np.ndarray:
    """Timestamps (seconds) of the pool frames of a video.

    `n = min(pool_max_frames, ceil(duration_s * pool_fps))` frames (at least 1), each at the
    centre of one of `n` equal bins of the video: `(i + 0.5) * duration_s / n`. A 60 s video
    at 1 fps gives 0.5, 1.5, ..., 59.5; a 180 s video capped at 64 frames is spread evenly."""
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    if pool_fps <= 0 or pool_max_frames < 1:
        raise ValueError(f"pool_fps must be > 0 and pool_max_frames >= 1, got "
                         f"{pool_fps} and {pool_max_frames}")
    n = max(1, min(int(pool_max_frames), math.ceil(duration_s * pool_fps - 1e-9)))
    return (np.arange(n) + 0.5) * (duration_s / n)


def uniform_indices(n: int, k: int) -> list[int]:
    """`k` indices spread evenly over `range(n)` (bin centres); all of them when `k >= n`."""
    if n <= 0 or k <= 0:
        return []
    if k >= n:
        return list(range(n))
    return [int((i + 0.5) * n / k) for i in range(k)]


def frame_indices(times_s, fps: float, num_frames: int) -> np.ndarray:
    """Index of the frame on screen at each time: frame `i` covers `[i / fps, (i + 1) / fps)`.

    Times before the start or past the end clamp to the first or last frame, so a time read
    from model text never indexes out of the video; a non-finite time is a caller bug."""
    times = np.asarray(times_s, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(times)):
        raise ValueError(f"times must be finite seconds, got {times[~np.isfinite(times)][:3]}")
    if fps <= 0 or num_frames < 1:
        raise ValueError(f"fps must be > 0 and num_frames >= 1, got {fps} and {num_frames}")
    # The epsilon keeps 0.29 s * 100 fps (28.999999999999996) on frame 29.
    return np.clip(np.floor(times * fps + 1e-6), 0, num_frames - 1).astype(np.int64)
