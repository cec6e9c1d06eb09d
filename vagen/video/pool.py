"""The frame pool of a video: the frames an env can show, decoded once per process.

A pool holds the frames at `vagen.video.sampling.pool_times` (`pool_fps`, at most
`pool_max_frames` spread evenly), resized to qwen-vl-utils' `smart_resize` size, and maps
between pool indices and seconds. `get_pool` serves pools from one process-wide LRU cache
with a byte budget, so every env of a server shares one decode per video; the frames of a
cached pool are read-only because many envs hold them at once. A cold pool is built in the
calling thread unless `set_pool_builder` says otherwise (`vagen.video.pool_processes` builds
them in worker processes)."""

from __future__ import annotations

import math
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import astuple, dataclass, field

import numpy as np

from vagen.video.decode import (
    VideoError,
    VideoInfo,
    decode_at_times,
    decode_video,
    resolve_backends,
)
from vagen.video.sampling import pool_times, uniform_indices

CACHE_BYTES_ENV = "VAGEN_POOL_CACHE_BYTES"
# qwen-vl-utils refuses frames more elongated than this (height / width or width / height).
MAX_ASPECT_RATIO = 200
DEFAULT_CACHE_BYTES = 2 * 1024**3
# Time tolerance of `in_span`: a span written from a pool time printed with float noise
# still contains that frame.
SPAN_TOLERANCE_S = 1e-6


@dataclass(frozen=True)
class PoolConfig:
    """How a video becomes a frame pool. Every field is part of the cache key."""

    pool_fps: float = field(default=1.0, metadata={
        "help": "pool frames per second of video (before the pool_max_frames cap)"})
    pool_max_frames: int = field(default=64, metadata={
        "help": "most frames in a pool; longer videos get this many, spread evenly"})
    max_pixels: int = field(default=448 * 448, metadata={
        "help": "most pixels per frame after smart_resize (qwen-vl-utils)"})
    min_pixels: int = field(default=28 * 28, metadata={
        "help": "fewest pixels per frame after smart_resize (qwen-vl-utils)"})
    image_factor: int = field(default=28, metadata={
        "help": "frame sides are multiples of this: patch size x spatial merge "
                "(28 for Qwen2/2.5-VL, 32 for Qwen3-VL)"})
    backend: str = field(default="auto", metadata={
        "help": "video decoder: auto (PyAV, decord fallback), pyav, decord or torchcodec; "
                "auto honours VAGEN_VIDEO_BACKEND"})

    def __post_init__(self):
        if not (isinstance(self.pool_fps, int | float) and self.pool_fps > 0):
            raise ValueError(f"PoolConfig.pool_fps must be > 0, got {self.pool_fps!r}")
        for key in ("pool_max_frames", "min_pixels", "image_factor"):
            value = getattr(self, key)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"PoolConfig.{key} must be an integer >= 1, got {value!r}")
        if not isinstance(self.max_pixels, int) or self.max_pixels < self.min_pixels:
            raise ValueError(f"PoolConfig.max_pixels ({self.max_pixels!r}) must be an integer "
                             f">= min_pixels ({self.min_pixels}): raise max_pixels or lower "
                             f"min_pixels")
        if self.max_pixels < self.image_factor**2:
            raise ValueError(f"PoolConfig.max_pixels ({self.max_pixels}) must be >= "
                             f"image_factor**2 ({self.image_factor**2}), the smallest frame")
        try:
            resolve_backends(self.backend)
        except ValueError as err:
            raise ValueError(f"PoolConfig.backend: {err}") from None


def _require_count(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
        raise ValueError(f"k must be an integer >= 0 (how many frames), got {k!r}")


def _require_range(start, end, start_name: str, end_name: str) -> None:
    for name, value in ((start_name, start), (end_name, end)):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
    if start > end:
        raise ValueError(f"{start_name} ({start}) > {end_name} ({end}): a span runs forward; "
                         f"swap them")


@dataclass(frozen=True, eq=False)
class FramePool:
    """The pool frames of one video and their times. Indices are pool indices (0..N-1)."""

    path: str
    frames: np.ndarray  # (N, H, W, 3) uint8, read-only
    timestamps: np.ndarray  # (N,) seconds, increasing
    duration_s: float
    info: VideoInfo  # the source video
    config: PoolConfig

    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def nbytes(self) -> int:
        return self.frames.nbytes + self.timestamps.nbytes

    def uniform(self, k: int) -> list[int]:
        """`k` indices spread evenly over the pool (all of them when `k >= len(self)`)."""
        _require_count(k)
        return uniform_indices(len(self), k)

    def in_span(self, start_s: float, end_s: float, k: int) -> list[int]:
        """At most `k` indices, spread evenly, of the frames with time in `[start_s, end_s]`.
        Parts of the span outside the video hold no frames; a span holding none gives []."""
        _require_count(k)
        _require_range(start_s, end_s, "start_s", "end_s")
        inside = np.flatnonzero((self.timestamps >= start_s - SPAN_TOLERANCE_S)
                                & (self.timestamps <= end_s + SPAN_TOLERANCE_S))
        return [int(inside[i]) for i in uniform_indices(len(inside), k)]

    def in_indices(self, start_idx: int, end_idx: int, k: int) -> list[int]:
        """At most `k` indices, spread evenly, in `[start_idx, end_idx]` (both included),
        clipped to the pool."""
        _require_count(k)
        _require_range(start_idx, end_idx, "start_idx", "end_idx")
        low, high = max(int(start_idx), 0), min(int(end_idx), len(self) - 1)
        if low > high:
            return []
        return [low + i for i in uniform_indices(high - low + 1, k)]

    def at_times(self, times_s: Sequence[float]) -> list[int]:
        """The nearest pool index to each time (the earlier one on a tie)."""
        times = np.asarray(times_s, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(times)):
            raise ValueError(f"times must be finite seconds, got {list(times_s)!r}")
        after = np.clip(np.searchsorted(self.timestamps, times), 0, len(self) - 1)
        before = np.clip(after - 1, 0, len(self) - 1)
        later_is_nearer = (np.abs(self.timestamps[after] - times)
                           < np.abs(times - self.timestamps[before]))
        return np.where(later_is_nearer, after, before).tolist()

    def times_of(self, indices: Sequence[int]) -> list[float]:
        """Seconds of pool indices; an index outside the pool raises IndexError naming it."""
        for index in indices:
            if not 0 <= index < len(self):
                raise IndexError(f"pool index {index} out of range for {len(self)} frames "
                                 f"of {self.path}")
        return [float(self.timestamps[i]) for i in indices]

    def decode_exact(self, times_s: Sequence[float]) -> np.ndarray:
        """Frames at exactly `times_s` (not the nearest pool frames), decoded now with the
        pool's backend and resized to the pool's frame size, so they mix with pool frames."""
        height, width = self.frames.shape[1:3]
        return _resize(decode_at_times(self.path, times_s, self.config.backend), height, width)


def build_pool(path: str | os.PathLike, config: PoolConfig | None = None) -> FramePool:
    """Decode and resize the pool of `path`, bypassing the cache (use `get_pool`)."""
    config = config or PoolConfig()
    decoded = decode_video(
        path, lambda info: pool_times(info.duration_s, config.pool_fps, config.pool_max_frames),
        config.backend)
    frames = _resize(decoded.frames, *_frame_size(decoded.info, config))
    return read_only(FramePool(decoded.info.path, frames, decoded.times_s.copy(),
                                decoded.info.duration_s, decoded.info, config))


PoolBuilder = Callable[[str, PoolConfig], FramePool]
_builder: PoolBuilder = build_pool


def set_pool_builder(builder: PoolBuilder | None) -> None:
    """How `get_pool` builds a cold pool from now on, process-wide: `build_pool` in the
    calling thread (None), or e.g. `PoolProcesses.build` (worker processes)."""
    global _builder
    _builder = builder or build_pool


def smart_resize(height: int, width: int, factor: int, min_pixels: int,
                 max_pixels: int) -> tuple[int, int]:
    """The (height, width) a Qwen-VL processor wants for a frame: each side the multiple of
    `factor` nearest to it, then both scaled by one factor (aspect kept) until the pixels lie
    within [min_pixels, max_pixels]. The rule of qwen-vl-utils' `smart_resize` (a test
    compares the two), here so that decoding needs no torch (qwen-vl-utils imports it: 4 s
    more at the start of every server and decoding process)."""
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(f"absolute aspect ratio must be smaller than {MAX_ASPECT_RATIO}, "
                         f"got {max(height, width) / min(height, width)}")
    new_height = max(factor, round(height / factor) * factor)
    new_width = max(factor, round(width / factor) * factor)
    if new_height * new_width > max_pixels:
        scale = math.sqrt(height * width / max_pixels)
        new_height = math.floor(height / scale / factor) * factor
        new_width = math.floor(width / scale / factor) * factor
    elif new_height * new_width < min_pixels:
        scale = math.sqrt(min_pixels / (height * width))
        new_height = math.ceil(height * scale / factor) * factor
        new_width = math.ceil(width * scale / factor) * factor
    return new_height, new_width


def _frame_size(info: VideoInfo, config: PoolConfig) -> tuple[int, int]:
    """`smart_resize` of the video's frames under `config`; an unusable shape is the video's
    fault (VideoError)."""
    try:
        return smart_resize(info.height, info.width, config.image_factor, config.min_pixels,
                            config.max_pixels)
    except ValueError as err:
        raise VideoError(f"{info.path}: {err}") from None


def _resize(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic (antialiased, PIL) resize of (k, H, W, 3) frames; a no-op at the same size."""
    from PIL import Image

    if (height, width) == frames.shape[1:3]:
        return frames
    if len(frames) == 0:
        return np.zeros((0, height, width, 3), dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(frame).resize((width, height), Image.BICUBIC))
                     for frame in frames])


class PoolCache:
    """A thread-safe LRU of frame pools bounded by bytes. Concurrent requests for the same
    cold key share one build; `hits` counts requests served without building (including
    those that waited for another thread's build), `misses` counts builds."""

    def __init__(self, budget_bytes: int):
        self.budget_bytes = int(budget_bytes)
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, FramePool] = OrderedDict()
        self._building: dict[Hashable, Future] = {}
        self._bytes = self.hits = self.misses = 0

    def get(self, key: tuple, build: Callable[[], FramePool]) -> FramePool:
        """The cached value of `key` (a tuple whose first item names the file), building it
        once on a miss. A build error reaches every waiting caller and is not cached."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return self._entries[key]
            pending = self._building.get(key)
            if pending is None:
                pending = self._building[key] = Future()
                self.misses += 1
                owner = True
            else:
                self.hits += 1
                owner = False
        if not owner:
            return pending.result()
        try:
            pool = build()
        except BaseException as err:
            with self._lock:
                del self._building[key]
            pending.set_exception(err)
            raise
        with self._lock:
            del self._building[key]
            self._store(key, pool)
        pending.set_result(pool)
        return pool

    def contains(self, key: tuple) -> bool:
        with self._lock:
            return key in self._entries

    def _store(self, key: tuple, pool: FramePool) -> None:
        """Insert under the lock: drop stale versions of the same file, then evict least
        recently used pools until the new one fits. A pool over the whole budget is served
        but not kept."""
        for old in [k for k in self._entries if k[0] == key[0] and k[1:3] != key[1:3]]:
            self._bytes -= self._entries.pop(old).nbytes
        if pool.nbytes > self.budget_bytes:
            return
        while self._entries and self._bytes + pool.nbytes > self.budget_bytes:
            self._bytes -= self._entries.popitem(last=False)[1].nbytes
        self._entries[key] = pool
        self._bytes += pool.nbytes

    def stats(self) -> dict:
        with self._lock:
            return {"entries": len(self._entries), "bytes": self._bytes,
                    "budget_bytes": self.budget_bytes, "hits": self.hits,
                    "misses": self.misses}


def cache_budget_from_env() -> int:
    """`VAGEN_POOL_CACHE_BYTES` as bytes: an integer or a number with K, M or G (powers of
    1024), e.g. `512M`; 2 GiB when unset."""
    text = os.environ.get(CACHE_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_CACHE_BYTES
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?", text, flags=re.IGNORECASE)
    if match is None:
        raise ValueError(f"{CACHE_BYTES_ENV}={text!r} is not a size; use bytes or e.g. 512M, 2G")
    scale = 1024 ** " kmg".index(match.group(2).lower() or " ")
    return int(float(match.group(1)) * scale)


_cache: PoolCache | None = None
_cache_lock = threading.Lock()


def _shared_cache() -> PoolCache:
    global _cache
    with _cache_lock:
        if _cache is None:
            _cache = PoolCache(cache_budget_from_env())
        return _cache


def is_cached(path: str | os.PathLike, config: PoolConfig | None = None) -> bool:
    """Whether `get_pool(path, config)` would be served without a build (False for a
    missing file, which `get_pool` reports)."""
    try:
        key = _cache_key(os.path.abspath(os.fspath(path)), config or PoolConfig())
    except VideoError:
        return False
    return _shared_cache().contains(key)


def _cache_key(path: str, config: PoolConfig) -> tuple:
    """Absolute path, mtime, size and every `PoolConfig` field, so an edited file is decoded
    again; the resolved backends join it, as VAGEN_VIDEO_BACKEND may change what `auto`
    means."""
    try:
        stat = os.stat(path)
    except OSError:
        raise VideoError(f"{path}: no such video file") from None
    return (path, stat.st_mtime_ns, stat.st_size, astuple(config),
            resolve_backends(config.backend))


def get_pool(path: str | os.PathLike, config: PoolConfig | None = None,
             builder: PoolBuilder | None = None) -> FramePool:
    """The frame pool of `path` from the process-wide cache (see `_cache_key`), built on a
    miss by `builder` (default: the process-wide one, see `set_pool_builder`). Threads
    asking for the same cold video share one decode."""
    config = config or PoolConfig()
    path = os.path.abspath(os.fspath(path))
    build = builder or _builder
    return _shared_cache().get(_cache_key(path, config), lambda: build(path, config))


def read_only(pool: FramePool) -> FramePool:
    """`pool` with its arrays read-only: cached frames are shared by every caller (set again
    on a pool from another process, since pickling drops the flag)."""
    pool.frames.setflags(write=False)
    pool.timestamps.setflags(write=False)
    return pool


def pool_cache_stats() -> dict:
    """`{"entries", "bytes", "budget_bytes", "hits", "misses"}` of the shared cache."""
    return _shared_cache().stats()


def clear_pool_cache(budget_bytes: int | None = None) -> None:
    """Empty the shared cache and zero its counters; the budget becomes `budget_bytes`, or
    `VAGEN_POOL_CACHE_BYTES` when None (tests use a tiny budget)."""
    global _cache
    with _cache_lock:
        _cache = PoolCache(cache_budget_from_env() if budget_bytes is None else budget_bytes)
