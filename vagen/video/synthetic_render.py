"""Drawing the synthetic videos: a plain background, large shapes that stay on screen for a
while (tracks) and short details on them (the shape turns another colour, or a small dot
appears). Kept apart from the question logic in `synthetic.py` so that a plan can be drawn,
tested pixel by pixel and encoded without knowing what will be asked about it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vagen.video.encode import write_mp4

# Few, far-apart colours so that a tiny model at 56x56 tells them apart after H.264.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 230),
    "yellow": (240, 220, 40),
    "white": (245, 245, 245),
}
BACKGROUND = (70, 70, 70)
SHAPES = ("square", "circle", "triangle")
DETAIL_KINDS = ("turn", "mark")  # the shape turns `color`, or a dot of `color` appears on it


@dataclass
class Detail:
    """A short event on a track over frames `[start_s, end_s)`."""

    kind: str
    color: str
    start_s: float
    end_s: float


@dataclass
class Track:
    """A large shape on screen over frames `[start_s, end_s)`, with its details."""

    shape: str
    color: str
    start_s: float
    end_s: float
    details: list[Detail] = field(default_factory=list)


@dataclass
class VideoPlan:
    """Everything drawn in one video; tracks never overlap in time. `fps` frames per second,
    `duration_s * fps` frames of `size x size` pixels; span bounds are multiples of 1/fps."""

    duration_s: int
    fps: int
    size: int
    tracks: list[Track]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> VideoPlan:
        tracks = [Track(**{**t, "details": [Detail(**d) for d in t["details"]]})
                  for t in row["tracks"]]
        return cls(duration_s=row["duration_s"], fps=row["fps"], size=row["size"], tracks=tracks)


def shape_mask(shape: str, size: int) -> np.ndarray:
    """Boolean (size, size) mask of a large centred shape (about 60% of the frame)."""
    y, x = np.mgrid[0:size, 0:size] + 0.5
    c = size / 2
    if shape == "square":
        return (np.abs(x - c) <= 0.3 * size) & (np.abs(y - c) <= 0.3 * size)
    if shape == "circle":
        return (x - c) ** 2 + (y - c) ** 2 <= (0.32 * size) ** 2
    if shape == "triangle":  # apex up, base at the bottom
        top, bottom, half = 0.18 * size, 0.82 * size, 0.34 * size
        return (y >= top) & (y <= bottom) & (np.abs(x - c) <= half * (y - top) / (bottom - top))
    raise ValueError(f"unknown shape {shape!r}; use one of {', '.join(SHAPES)}")


def mark_mask(shape: str, size: int) -> np.ndarray:
    """Boolean mask of the small dot: a square of side ~size/6 at the shape's centroid."""
    ys, xs = np.nonzero(shape_mask(shape, size))
    cy, cx = int(round(ys.mean())), int(round(xs.mean()))
    half = max(2, size // 12)
    mask = np.zeros((size, size), dtype=bool)
    mask[cy - half:cy + half, cx - half:cx + half] = True
    return mask


def frame_state(plan: VideoPlan, index: int) -> tuple[str, str, str | None] | None:
    """(shape, fill colour, dot colour or None) on frame `index`, or None for background."""
    for track in plan.tracks:
        if _frame(track.start_s, plan.fps) <= index < _frame(track.end_s, plan.fps):
            fill, dot = track.color, None
            for d in track.details:
                if _frame(d.start_s, plan.fps) <= index < _frame(d.end_s, plan.fps):
                    if d.kind == "turn":
                        fill = d.color
                    else:
                        dot = d.color
            return track.shape, fill, dot
    return None


def render_frames(plan: VideoPlan) -> Iterator[np.ndarray]:
    """Yield the plan's frames (size, size, 3) uint8; each distinct state is drawn once."""
    drawn: dict[tuple | None, np.ndarray] = {}
    for index in range(plan.duration_s * plan.fps):
        state = frame_state(plan, index)
        if state not in drawn:
            drawn[state] = _draw(state, plan.size)
        yield drawn[state]


def write_video(plan: VideoPlan, path: str | Path) -> Path:
    """Encode the plan as an H.264 MP4 at `plan.fps`."""
    return write_mp4(path, render_frames(plan), fps=plan.fps)


def _draw(state: tuple[str, str, str | None] | None, size: int) -> np.ndarray:
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = BACKGROUND
    if state is not None:
        shape, fill, dot = state
        image[shape_mask(shape, size)] = PALETTE[fill]
        if dot is not None:
            image[mark_mask(shape, size)] = PALETTE[dot]
    return image


def _frame(time_s: float, fps: int) -> int:
    return int(round(time_s * fps))
