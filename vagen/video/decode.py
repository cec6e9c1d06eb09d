"""Decoding the frames of a video at given times, and only those frames.

Backends are registered by name (`decord`, `pyav`, and `torchcodec` if installed). `auto`
tries PyAV first and falls back to decord when PyAV fails on a file; an explicit name, or
`VAGEN_VIDEO_BACKEND`, forces one backend with no fallback. PyAV comes first because it
gives the same frames for less CPU (decord runs its own decoding thread beside the caller:
~1.4 cores per decode) and scales across processes (`benchmarks/env_server.py`). Every
backend maps a time to the frame on screen at that time
(`vagen.video.sampling.frame_indices`) and seeks to the keyframe before a wanted frame
only when that skips decoding, so a sparse pool of a long video costs far less than
decoding it whole."""

from __future__ import annotations

import bisect
import logging
import os
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vagen.registry import Registry
from vagen.video.sampling import frame_indices

logger = logging.getLogger(__name__)

BACKEND_ENV = "VAGEN_VIDEO_BACKEND"
AUTO_ORDER = ("pyav", "decord")


class VideoError(Exception):
    """A video that cannot be read: missing, empty, corrupt or without a video stream.
    The message always starts with the path."""


@dataclass(frozen=True)
class VideoInfo:
    """What a backend reports about a video. `duration_s = num_frames / fps`, so frame `i`
    covers `[i / fps, (i + 1) / fps)` and the last frame ends at `duration_s`."""

    path: str
    fps: float
    num_frames: int
    duration_s: float
    width: int
    height: int


@dataclass(frozen=True)
class DecodedFrames:
    """Frames decoded for a list of times, with the video they came from.
    `indices[j]` is the video frame shown at `times_s[j]`; `frames[j]` is that frame."""

    info: VideoInfo
    times_s: np.ndarray  # (k,) seconds, as asked
    indices: np.ndarray  # (k,) int64 video frame indices
    frames: np.ndarray  # (k, H, W, 3) uint8 RGB


class FrameReader(Protocol):
    """One open video. `read(indices)` gets sorted, unique frame indices in range."""

    info: VideoInfo

    def read(self, indices: list[int]) -> np.ndarray: ...

    def close(self) -> None: ...


_BACKENDS: Registry[Callable[[str], FrameReader]] = Registry("video backend")


def register_backend(name: str):
    """Register a reader class (called with an existing path) under `name`."""

    def decorator(opener: Callable[[str], FrameReader]):
        if name == "auto":
            raise ValueError(f"video backend 'auto' is reserved (it tries "
                             f"{', '.join(AUTO_ORDER)} in turn); pick another name")
        return _BACKENDS.add(name, opener)

    return decorator


def backend_names() -> list[str]:
    """Names accepted by `backend=` and `VAGEN_VIDEO_BACKEND`, in registration order."""
    return ["auto", *_BACKENDS]


def resolve_backends(backend: str = "auto") -> tuple[str, ...]:
    """Backends to try, in order. An explicit name wins over `VAGEN_VIDEO_BACKEND`, which
    wins over `auto` (PyAV, then decord)."""
    choice, source = backend, "backend"
    if backend == "auto" and os.environ.get(BACKEND_ENV, "").strip():
        choice, source = os.environ[BACKEND_ENV].strip().lower(), BACKEND_ENV
    if choice == "auto":
        return AUTO_ORDER
    if choice not in _BACKENDS:
        raise ValueError(f"unknown video backend {choice!r} (from {source}); "
                         f"choose from: {', '.join(backend_names())}")
    return (choice,)


def probe_video(path: str | os.PathLike, backend: str = "auto") -> VideoInfo:
    """Frame rate, frame count, duration and size of a video, decoding at most one frame."""
    return decode_video(path, [], backend).info


def decode_at_times(path: str | os.PathLike, times_s: Sequence[float],
                    backend: str = "auto") -> np.ndarray:
    """The frames on screen at `times_s` (seconds; clamped to the video), (k, H, W, 3) uint8."""
    return decode_video(path, times_s, backend).frames


TimesSpec = Sequence[float] | Callable[[VideoInfo], Sequence[float]]


def decode_video(path: str | os.PathLike, times_s: TimesSpec,
                 backend: str = "auto") -> DecodedFrames:
    """Open `path` once and decode the frames at `times_s`, which may be a function of the
    video's `VideoInfo` (the frame pool's times depend on the duration). Each wanted frame is
    decoded once even when several times fall on it."""
    path = _existing_file(path)
    errors: list[str] = []
    for name in resolve_backends(backend):
        try:
            reader = _BACKENDS.get(name)(path)
        except Exception as err:  # any backend failure moves on to the next backend
            errors.append(f"{name}: {_describe(err)}")
            continue
        with closing(reader):
            info = reader.info
            times = np.asarray(times_s(info) if callable(times_s) else times_s, dtype=np.float64)
            indices = frame_indices(times, info.fps, info.num_frames)
            wanted, position = np.unique(indices, return_inverse=True)
            try:
                frames = _read_checked(reader, wanted.tolist())
            except Exception as err:
                errors.append(f"{name}: {_describe(err)}")
                continue
        if errors:
            logger.warning("%s: decoded with %s after %s", path, name, "; ".join(errors))
        return DecodedFrames(info, times.reshape(-1), indices, frames[position.reshape(-1)])
    raise VideoError(f"{path}: cannot decode ({'; '.join(errors)})")


def _existing_file(path: str | os.PathLike) -> str:
    path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(path):
        raise VideoError(f"{path}: no such video file")
    if os.path.getsize(path) == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    return path


def _describe(err: Exception) -> str:
    text = str(err).strip().splitlines()
    hint = f" (install it or set {BACKEND_ENV})" if isinstance(err, ImportError) else ""
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300] + hint


def _read_checked(reader: FrameReader, indices: list[int]) -> np.ndarray:
    """Backends must agree on the output layout; a short batch is a decoding failure."""
    info = reader.info
    if not indices:
        return np.zeros((0, info.height, info.width, 3), dtype=np.uint8)
    frames = reader.read(indices)
    if frames.dtype != np.uint8 or frames.shape[0] != len(indices) \
            or frames.shape[1:] != (info.height, info.width, 3):
        raise VideoError(f"{info.path}: expected {len(indices)} RGB uint8 frames of "
                         f"{info.width}x{info.height}, got {frames.dtype} {frames.shape}")
    return frames


def _info(path: str, fps: float, num_frames: int, width: int, height: int) -> VideoInfo:
    if num_frames < 1 or not fps or fps <= 0 or width < 1 or height < 1:
        raise VideoError(f"{path}: no decodable video frames "
                         f"({num_frames} frames at {fps} fps, {width}x{height})")
    fps = float(fps)
    return VideoInfo(path, fps, int(num_frames), num_frames / fps, int(width), int(height))


@register_backend("decord")
class DecordReader:
    """decord's `get_batch` seeks to a keyframe only when that skips frames. It decodes in a
    thread of its own (so it releases the GIL, but takes ~1.4 cores per decode)."""

    def __init__(self, path: str):
        import decord

        # One thread: no slower on small videos here, and servers decode in parallel.
        self._reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
        height, width = self._reader[0].shape[:2]
        self.info = _info(path, self._reader.get_avg_fps(), len(self._reader), width, height)

    def read(self, indices: list[int]) -> np.ndarray:
        return self._reader.get_batch(indices).asnumpy()

    def close(self) -> None:
        self._reader = None


@register_backend("pyav")
class PyAVReader:
    """PyAV with decord's seek rule: a first pass over the packets (no decoding) finds each
    frame's pts and the keyframes; decoding then seeks only when the keyframe before the
    next wanted frame lies past the last decoded frame. Every call runs on the calling
    thread: frames convert to RGB with one swscale thread, as ffmpeg's automatic slice
    threads cost more than they save on pool-sized frames (11,855 thread switches and
    twice the time for 48 small pools)."""

    def __init__(self, path: str):
        import av

        self._container = av.open(path)
        try:
            if not self._container.streams.video:
                raise VideoError(f"{path}: no video stream")
            self._stream = self._container.streams.video[0]
            self._stream.codec_context.thread_count = 1  # as decord: servers decode in parallel
            packets = [(p.pts, p.is_keyframe) for p in self._container.demux(self._stream)
                       if p.pts is not None]
            self._pts = sorted(pts for pts, _ in packets)
            self._keyframes = sorted(pts for pts, key in packets if key)
            rate = self._stream.average_rate or self._stream.guessed_rate
            context = self._stream.codec_context
            self.info = _info(path, float(rate or 0), len(self._pts), context.width,
                              context.height)
        except BaseException:
            self._container.close()
            raise

    def read(self, indices: list[int]) -> np.ndarray:
        frames, decoder, last_pts = [], None, None
        for index in indices:
            target = self._pts[index]
            keyframe = self._keyframes[max(0, bisect.bisect_right(self._keyframes, target) - 1)]
            if decoder is None or keyframe > last_pts:
                self._container.seek(keyframe, stream=self._stream, backward=True)
                decoder = self._container.decode(self._stream)
            for frame in decoder:
                last_pts = frame.pts
                if frame.pts is None or frame.pts >= target:
                    frames.append(frame.to_ndarray(format="rgb24", threads=1))
                    break
            else:
                raise VideoError(f"{self.info.path}: frame {index} (pts {target}) not decoded")
        return np.stack(frames)

    def close(self) -> None:
        self._container.close()


@register_backend("torchcodec")
class TorchCodecReader:
    """torchcodec's exact-seek decoder; optional, usable when torchcodec imports."""

    def __init__(self, path: str):
        from torchcodec.decoders import VideoDecoder

        self._decoder = VideoDecoder(path, dimension_order="NHWC", seek_mode="exact")
        meta = self._decoder.metadata
        self.info = _info(path, meta.average_fps or 0, meta.num_frames or 0, meta.width,
                          meta.height)

    def read(self, indices: list[int]) -> np.ndarray:
        return self._decoder.get_frames_at(indices=indices).data.numpy()

    def close(self) -> None:
        self._decoder = None
