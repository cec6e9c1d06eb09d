"""Frames -> the vision tower's pixel values, once per distinct frame, in one tensor
operation per frame size.

The frame pool already resizes every frame onto the model's patch grid (`smart_resize`),
so the Qwen-VL image processor's resize is a no-op for them that still costs ~3x the rest.
`ImageProcessing` normalises and patchifies such frames itself (bit for bit the processor's
`pixel_values`), hands anything else to the processor, and keeps each frame's result under
its content key, so the 16 opening frames that all samples of a GRPO group share, and the
frames every later turn shows again, are processed once and held once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xxhash

from vagen.rollout.lru import BytesLRU

# Bytes of processed images kept for reuse: a 448x448 frame is 4.8 MB of float32 pixel
# values, so about 200 such frames (a step's shared opening frames many times over).
DEFAULT_KEPT_BYTES = 1024**3


@dataclass
class ProcessedImage:
    """One frame after the image processor: `(n_patches, patch_dim)` pixel values and its
    `(3,)` grid; it becomes `grid.prod() // merge_size**2` image tokens. `frame` is the
    `(H, W, 3)` uint8 input, for engines that run the processor themselves (vLLM); `key`
    names the frame's content, so caches downstream (the vision features) know it again."""

    pixel_values: torch.Tensor
    grid_thw: torch.Tensor
    num_tokens: int
    frame: np.ndarray | None = None
    key: int = 0


@dataclass(frozen=True)
class PatchSpec:
    """What the Qwen-VL image processor does to a frame on its grid, and which frame sizes
    it keeps (`min_pixels`..`max_pixels`, sides multiples of patch x merge)."""

    patch_size: int
    temporal_patch_size: int
    merge_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    rescale: float
    min_pixels: int = 0
    max_pixels: int = 0

    @classmethod
    def of(cls, image_processor: Any) -> PatchSpec:
        size = getattr(image_processor, "size", None)
        return cls(int(image_processor.patch_size), int(image_processor.temporal_patch_size),
                   int(image_processor.merge_size), tuple(image_processor.image_mean),
                   tuple(image_processor.image_std), float(image_processor.rescale_factor),
                   int(_size_field(size, "shortest_edge", "min_pixels")),
                   int(_size_field(size, "longest_edge", "max_pixels")))

    def keeps(self, height: int, width: int) -> bool:
        """Whether the processor leaves a frame of this size as it is."""
        factor = self.patch_size * self.merge_size
        return (height % factor == 0 and width % factor == 0
                and self.min_pixels <= height * width <= self.max_pixels)


def _size_field(size: Any, *names: str) -> int:
    for name in names:
        value = size.get(name) if isinstance(size, dict) else getattr(size, name, None)
        if value is not None:
            return value
    return 0


def patchify(frames: list[np.ndarray], spec: PatchSpec) -> torch.Tensor:
    """`pixel_values` of uint8 `(H, W, 3)` frames whose sides are multiples of
    patch x merge: `(sum of patches, 3 x temporal x patch x patch)`, rows in the processor's
    order (merge blocks, then patches inside them)."""
    return torch.cat(patchify_each(frames, spec))


def patchify_each(frames: list[np.ndarray], spec: PatchSpec) -> list[torch.Tensor]:
    """`patchify`, one tensor per frame. Frames of one size go through together: their
    uint8 pixels are put in patch order first (a byte each), then each takes its value from
    a 3 x 256 table of the processor's arithmetic (`(v - 255 mean) / (255 std)` in float32),
    so the values equal the processor's bit for bit at a fraction of its cost."""
    if not frames:
        raise ValueError("patchify needs at least one frame")
    table = _normalised_values(spec)
    p, t, m = spec.patch_size, spec.temporal_patch_size, spec.merge_size
    by_size: dict[tuple[int, ...], list[int]] = {}
    for index, frame in enumerate(frames):
        by_size.setdefault(frame.shape, []).append(index)
    out: list[torch.Tensor | None] = [None] * len(frames)
    channels = np.arange(3).reshape(3, 1, 1)
    for (height, width, _), indices in by_size.items():
        n, h, w = len(indices), height // p, width // p
        pixels = np.stack([frames[i] for i in indices]).reshape(n, h // m, m, p, w // m, m, p, 3)
        # [frame, grid_h/merge, grid_w/merge, merge, merge, channel, patch, patch]
        ordered = np.ascontiguousarray(pixels.transpose(0, 1, 4, 2, 5, 7, 3, 6))
        values = table[channels, ordered]
        patches = np.empty((n, h // m, w // m, m, m, 3, t, p, p), np.float32)
        for copy in range(t):  # one frame fills the temporal patch
            patches[..., copy, :, :] = values
        flat = torch.from_numpy(patches.reshape(n, h * w, 3 * t * p * p))
        for row, index in enumerate(indices):
            out[index] = flat[row]
    return out


def _normalised_values(spec: PatchSpec) -> np.ndarray:
    """`(3, 256)` float32: each channel's normalised value of each byte, computed as the
    processor computes it (rescale fused into mean and std)."""
    mean = torch.tensor(spec.mean) * (1.0 / spec.rescale)
    std = torch.tensor(spec.std) * (1.0 / spec.rescale)
    return ((torch.arange(256, dtype=torch.float32).view(1, 256) - mean.view(3, 1))
            / std.view(3, 1)).numpy()


def frame_key(frame: np.ndarray) -> int:
    """A 63-bit name of a frame's content (size and pixels): equal frames, equal keys, so
    the same pool frame shown to many samples is one entry in every cache."""
    digest = xxhash.xxh3_64(str(frame.shape).encode())
    digest.update(np.ascontiguousarray(frame).data)  # ~60x faster than blake2b
    return digest.intdigest() >> 1


class ImageProcessing:
    """A processor's `pixel_values` per frame, once per distinct frame: frames on the
    processor's grid are patchified here, others go through the processor. Results are kept
    by key, the least recently used dropped past `kept_bytes` (a trajectory holding one keeps
    it alive anyway); `processed` and `reused` count frames, for benchmarks and tests."""

    def __init__(self, image_processor: Any, kept_bytes: int = DEFAULT_KEPT_BYTES) -> None:
        self.image_processor = image_processor
        self.spec = PatchSpec.of(image_processor)
        self._kept: BytesLRU[ProcessedImage] = BytesLRU(
            kept_bytes, lambda image: image.pixel_values.nbytes)
        self.processed = 0
        self.reused = 0

    def __call__(self, frames: list[np.ndarray]) -> list[ProcessedImage]:
        keys = [frame_key(frame) for frame in frames]
        new = {key: frame for key, frame in zip(keys, frames, strict=True)
               if key not in self._kept}
        self.reused += len(frames) - len(new)
        if new:
            self.processed += len(new)
            for image in self._process(list(new), list(new.values())):
                self._kept.put(image.key, image)
        return self._kept.use(keys)

    def _process(self, keys: list[int], frames: list[np.ndarray]) -> list[ProcessedImage]:
        merge = self.spec.merge_size ** 2
        kept = [self.spec.keeps(*frame.shape[:2]) for frame in frames]
        on_grid = [i for i, keep in enumerate(kept) if keep]
        others = [i for i, keep in enumerate(kept) if not keep]
        results: list[ProcessedImage | None] = [None] * len(frames)
        for indices, pixels, grids in (self._patchified(frames, on_grid),
                                       self._by_processor(frames, others)):
            if not indices:
                continue
            for index, values, grid in zip(indices, pixels, grids, strict=True):
                results[index] = ProcessedImage(values, grid, int(grid.prod()) // merge,
                                                frames[index], keys[index])
        return results

    def _patchified(self, frames: list[np.ndarray], indices: list[int]):
        if not indices:
            return [], None, None
        chosen = [frames[i] for i in indices]
        p = self.spec.patch_size
        grids = torch.tensor([[1, f.shape[0] // p, f.shape[1] // p] for f in chosen])
        return indices, patchify_each(chosen, self.spec), grids

    def _by_processor(self, frames: list[np.ndarray], indices: list[int]):
        if not indices:
            return [], None, None
        # wire-decoded frames are read-only views
        chosen = [frames[i] if frames[i].flags.writeable else frames[i].copy() for i in indices]
        batch = self.image_processor(images=chosen, return_tensors="pt")
        grids = batch["image_grid_thw"]
        return indices, torch.split(batch["pixel_values"], grids.prod(-1).tolist()), grids
