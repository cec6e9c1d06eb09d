"""Which frames a turn shows: the uniform opening frames and the frames a request asks for,
with the frame budget split across requests and videos. Pool frames come from the cached
`FramePool`s; only the timestamps protocol decodes (at the exact times asked for)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vagen.env.video_qa.protocols import FrameRequest
from vagen.video.pool import FramePool
from vagen.video.sampling import uniform_indices


@dataclass(frozen=True)
class ShownFrame:
    """One frame of an observation; `index` is its pool index, None when decoded at an exact
    time."""

    video: int
    index: int | None
    time_s: float
    image: np.ndarray


def split_budget(total: int, parts: int) -> list[int]:
    """`total` frames over `parts` as evenly as possible, earlier parts first: 8 over 3 ->
    [3, 3, 2]."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def pool_frames(pools: Sequence[FramePool], video: int, indices: Sequence[int]) -> list[ShownFrame]:
    pool = pools[video]
    return [ShownFrame(video, int(i), float(pool.timestamps[i]), pool.frames[i]) for i in indices]


def uniform_frames(pools: Sequence[FramePool], total: int) -> list[ShownFrame]:
    """`total` frames spread over every video, at least one per video (so none goes unseen)."""
    shares = split_budget(total, len(pools))
    return [frame for video, k in enumerate(shares)
            for frame in pool_frames(pools, video, pools[video].uniform(max(1, k)))]


def request_frames(pools: Sequence[FramePool], requests: Sequence[FrameRequest], budget: int,
                   seen: Sequence[set[int]]) -> list[ShownFrame]:
    """Frames for `requests`, at most `budget` in all; `seen[v]` holds the pool indices of
    video v shown so far (the `next` request skips them)."""
    frames: list[ShownFrame] = []
    for request, share in zip(requests, split_budget(budget, len(requests)), strict=True):
        videos = range(len(pools)) if request.video is None else [request.video]
        for video, k in zip(videos, split_budget(share, len(videos)), strict=True):
            if k > 0:
                frames += _frames_for(pools, video, request, k, seen[video])
    return frames


def _frames_for(pools: Sequence[FramePool], video: int, request: FrameRequest, k: int,
                seen: set[int]) -> list[ShownFrame]:
    pool = pools[video]
    if request.kind == "exact_times":
        return _decoded_frames(pool, video, request.values[:k])
    if request.kind == "span" and request.unit == "seconds":
        start, end = request.values
        indices = pool.in_span(start, end, k) or pool.at_times([(start + end) / 2])
    elif request.kind == "span":
        indices = pool.in_indices(int(request.values[0]), int(request.values[1]), k)
    elif request.kind == "indices":
        indices = list(dict.fromkeys(int(i) for i in request.values))[:k]
    elif request.kind == "times":
        indices = list(dict.fromkeys(pool.at_times(list(request.values))))[:k]
    else:
        indices = next_unseen(len(pool), seen, k)
    return pool_frames(pools, video, indices)


def next_unseen(pool_size: int, seen: set[int], k: int) -> list[int]:
    """`k` frames spread over the pool frames not shown yet (coarse to fine); once every frame
    was shown, spread over the whole pool again."""
    unseen = [i for i in range(pool_size) if i not in seen] or list(range(pool_size))
    return [unseen[i] for i in uniform_indices(len(unseen), k)]


def _decoded_frames(pool: FramePool, video: int, times: Sequence[float]) -> list[ShownFrame]:
    from vagen.video.decode import decode_at_times

    height, width = pool.frames.shape[1:3]
    images = decode_at_times(pool.path, list(times), pool.config.backend)
    return [ShownFrame(video, None, float(t), _resize(image, height, width))
            for t, image in zip(times, images, strict=True)]


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Decoded frames take the pool's frame size, so every frame of an episode matches."""
    if image.shape[:2] == (height, width):
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((width, height), Image.BICUBIC))


def requested_spans(pools: Sequence[FramePool], requests: Sequence[FrameRequest]
                    ) -> list[list[float]]:
    """`[start_s, end_s, video]` of what each request names, per video it applies to (a time
    or a frame is a span of zero width; `next` names nothing): for the viewer's timeline."""
    spans = []
    for request in requests:
        for video in range(len(pools)) if request.video is None else [request.video]:
            times = pools[video].timestamps
            if request.kind == "span":
                start, end = (request.values if request.unit == "seconds"
                              else (times[int(request.values[0])], times[int(request.values[1])]))
                spans.append([float(start), float(end), video])
            elif request.kind != "next":
                points = (request.values if request.kind != "indices"
                          else [times[int(i)] for i in request.values])
                spans += [[float(t), float(t), video] for t in points]
    return spans


def visual_tokens(frames: Sequence[ShownFrame], image_factor: int) -> int:
    """Image tokens of `frames` for a Qwen-VL model: one per `image_factor`-pixel square
    (patch x merge), as frames come on the model's grid."""
    return sum(f.image.shape[0] * f.image.shape[1] // image_factor**2 for f in frames)
