"""Frames become pixel values once: our patchify equals the Qwen-VL image processor's
output (tiny and 7B-shaped settings), frames off the grid still go through the processor,
and a frame shown again is not processed again."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

from vagen.rollout.images import ImageProcessing, PatchSpec, frame_key, patchify

SEVEN_B = Qwen2VLImageProcessor(size={"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 1280})


def frames(*sizes: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


@pytest.mark.parametrize("which, sizes", [
    ("tiny", [(28, 28), (56, 56), (112, 84), (56, 56)]),
    ("7b", [(448, 224), (252, 448), (56, 56), (448, 224)]),
])
def test_patchify_equals_the_image_processor(which, sizes, processor):
    image_processor = processor.image_processor if which == "tiny" else SEVEN_B
    shown = frames(*sizes)
    expected = image_processor(images=shown, return_tensors="pt")
    ours = patchify(shown, PatchSpec.of(image_processor))
    torch.testing.assert_close(ours, expected["pixel_values"], atol=1e-6, rtol=0)


@pytest.mark.parametrize("which", ["tiny", "7b"])
def test_processed_frames_equal_the_processor_on_and_off_its_grid(which, processor):
    image_processor = processor.image_processor if which == "tiny" else SEVEN_B
    # 30x50 and 100x100 are off the grid, 448x448 is past the tiny processor's max_pixels:
    # the processor resizes those, and so must we.
    shown = frames((56, 56), (30, 50), (448, 448), (100, 100), (28, 56))
    expected = image_processor(images=shown, return_tensors="pt")
    images = ImageProcessing(image_processor)(shown)
    torch.testing.assert_close(torch.cat([im.pixel_values for im in images]),
                               expected["pixel_values"], atol=1e-6, rtol=0)
    assert torch.equal(torch.stack([im.grid_thw for im in images]), expected["image_grid_thw"])
    merge = image_processor.merge_size ** 2
    assert [im.num_tokens for im in images] == (
        expected["image_grid_thw"].prod(-1) // merge).tolist()


def test_a_frame_seen_again_is_not_processed_again(processor):
    processing = ImageProcessing(processor.image_processor)
    opening = frames((56, 56), (56, 56), (56, 84))
    first = processing(opening)
    # a GRPO group: every sample gets the same opening frames, as fresh (read-only) copies
    again = [f.copy() for f in opening]
    for frame in again:
        frame.flags.writeable = False
    second = processing(again)
    assert processing.processed == 3 and processing.reused == 3
    assert all(a.pixel_values is b.pixel_values for a, b in zip(first, second, strict=True))
    assert len({im.key for im in first}) == 3


def test_kept_images_stay_within_their_byte_budget(processor):
    one = ImageProcessing(processor.image_processor)([frames((56, 56))[0]])[0]
    processing = ImageProcessing(processor.image_processor, kept_bytes=2 * one.pixel_values.nbytes)
    shown = frames((56, 56), (56, 56), (56, 56), seed=1)
    processing(shown)
    processing(shown[2:])  # the newest is still kept
    assert processing.reused == 1
    processing(shown[:1])  # the oldest was dropped
    assert processing.processed == 4


def test_the_key_of_a_frame_is_its_size_and_pixels():
    frame = frames((56, 56))[0]
    assert frame_key(frame) == frame_key(frame.copy())
    assert frame_key(frame) != frame_key(frame.reshape(28, 112, 3))
    changed = frame.copy()
    changed[0, 0, 0] ^= 1
    assert frame_key(frame) != frame_key(changed)
    assert 0 <= frame_key(frame) < 2**63
