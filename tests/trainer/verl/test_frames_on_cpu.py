"""Frames as they travel through Ray: our normalise + patchify equals the Qwen-VL image
processor's pixel_values (tiny and 7B-shaped settings), and only frames on the processor's
grid travel as frames."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

from vagen.trainer.verl.frames import FramePixels, PatchSpec, frames_for_transport, patchify

SEVEN_B = Qwen2VLImageProcessor(size={"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 1280})


def frames(*sizes: tuple[int, int]) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


@pytest.mark.parametrize("which, sizes", [
    ("tiny", [(28, 28), (56, 56), (112, 84)]),
    ("7b", [(448, 224), (252, 448), (56, 56)]),
])
def test_patchify_equals_the_image_processor(which, sizes, processor):
    image_processor = processor.image_processor if which == "tiny" else SEVEN_B
    shown = frames(*sizes)
    expected = image_processor(images=[Image.fromarray(f) for f in shown], return_tensors="pt")
    ours = patchify(shown, PatchSpec.of(image_processor))
    torch.testing.assert_close(ours, expected["pixel_values"], atol=1e-6, rtol=0)


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
