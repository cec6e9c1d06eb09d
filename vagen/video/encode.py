"""Writing MP4 files with PyAV: the synthetic data set and the tests make real videos."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np


def write_mp4(path: str | Path, frames: Iterable[np.ndarray], fps: float = 4.0,
              crf: int = 23) -> Path:
    """Encode uint8 frames (H, W, 3), H and W even, as H.264 (yuv420p) MP4 at `fps`."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = None
        for frame in frames:
            if stream is None:
                height, width = frame.shape[:2]
                if height % 2 or width % 2:
                    raise ValueError(f"{path}: frame size {width}x{height} must be even for H.264")
                stream = container.add_stream("libx264", rate=_fraction(fps))
                stream.width, stream.height = width, height
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf), "preset": "veryfast"}
            av_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame, dtype=np.uint8),
                                                  format="rgb24")
            for packet in stream.encode(av_frame):
                container.mux(packet)
        if stream is None:
            raise ValueError(f"{path}: no frames to write")
        for packet in stream.encode():
            container.mux(packet)
    return path


def _fraction(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1000)
