"""Frames as they travel through Ray: only frames on the processor's grid travel as frames,
and they come back as the processor's pixel_values (patchify's equality with the processor
is tested in tests/rollout/test_images.py)."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import torch
from PIL import Image

from vagen.rollout.images import PatchSpec
from vagen.trainer.verl.frames import FramePixels, frames_for_transport


def frames(*sizes: tuple[int, int]) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


def test_only_frames_the_processor_kept_travel_as_frames(processor):
    spec = PatchSpec.of(processor.image_processor)
    big = frames((448, 448))  # above the tiny processor's max_pixels: it resizes
    images = [Image.fromarray(f) for f in big]
    inputs = dict(processor.image_processor(images=images, return_tensors="pt"))
    assert frames_for_transport(inputs, images, spec) is inputs
    small = [Image.fromarray(f) for f in frames((56, 84))]
    inputs = dict(processor.image_processor(images=small, return_tensors="pt"))
    moved = frames_for_transport(inputs, small, spec)["pixel_values"]
    assert isinstance(moved, FramePixels)
    assert isinstance(copy.deepcopy(moved), FramePixels)  # DataProto.select(deepcopy=True)
    assert isinstance(pickle.loads(pickle.dumps(copy.deepcopy(moved))), FramePixels)
    torch.testing.assert_close(torch.Tensor(copy.deepcopy(moved).clone()),
                               inputs["pixel_values"])
