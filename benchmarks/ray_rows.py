"""Bytes a verl row's multi-modal inputs take through Ray (issue 12, item 7), side by side in
one run: float32 `pixel_values` as the image processor makes them vs `FramePixels`, which
pickle as the uint8 frames and are rebuilt where they are unpickled (goal >= 4x fewer).

The default is a Video-MTR episode on Qwen2.5-VL-7B's processor settings: 16 opening + 2 x 8
retrieved frames at 448 x 224 (128 image tokens each). No model is loaded.

    python benchmarks/ray_rows.py [--frames 32 --height 448 --width 224]
"""

from __future__ import annotations

import argparse
import pickle
import time

import numpy as np
from PIL import Image
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

from vagen.rollout.images import PatchSpec
from vagen.trainer.verl.frames import frames_for_transport

# Qwen2.5-VL-7B-Instruct's preprocessor_config.json: min and max pixels.
SEVEN_B = {"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 1280}


def main() -> None:
    parser = argparse.ArgumentParser(prog="benchmarks/ray_rows.py", description=__doc__)
    parser.add_argument("--frames", type=int, default=32, help="frames in the row")
    parser.add_argument("--height", type=int, default=448, help="frame height (multiple of 28)")
    parser.add_argument("--width", type=int, default=224, help="frame width (multiple of 28)")
    args = parser.parse_args()
    processor = Qwen2VLImageProcessor(size=SEVEN_B)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (args.height, args.width, 3), np.uint8))
              for _ in range(args.frames)]
    inputs = dict(processor(images=images, return_tensors="pt"))
    travelling = frames_for_transport(inputs, images, PatchSpec.of(processor))
    before, after = pickle.dumps(inputs), pickle.dumps(travelling)
    started = time.perf_counter()
    arrived = pickle.loads(after)
    rebuild_s = time.perf_counter() - started
    error = float((arrived["pixel_values"] - inputs["pixel_values"]).abs().max())
    print(f"row: {args.frames} frames of {args.height}x{args.width}, pixel_values "
          f"{tuple(inputs['pixel_values'].shape)}")
    print(f"bytes per row  float32 pixel_values {len(before) / 1e6:8.2f} MB   uint8 frames "
          f"{len(after) / 1e6:8.2f} MB   ratio {len(before) / len(after):.1f}x (goal >= 4x)")
    print(f"rebuild on arrival {rebuild_s * 1000:.0f} ms, max |difference| {error:.1e}")


if __name__ == "__main__":
    main()
