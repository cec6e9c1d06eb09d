"""Frames travel through Ray as frames: a row's `pixel_values` pickle as its uint8 frames and
are rebuilt (rescale, normalise, patchify) in the process that unpickles them.

verl keeps each row's processor output (`multi_modal_inputs`) and ships it from the agent
loop workers to the trainer and on to the actor workers: float32 `pixel_values` are ~8x the
bytes of the uint8 frames they come from (3 bytes a pixel vs 4 x 2 temporal copies x 3).
`FramePixels` is the same float tensor for every torch op, but pickles as the frames; the
rebuild equals the Qwen-VL image processor's output for frames already on its grid (the
frame pool resizes them there), which is the only case it is used for."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vagen.rollout.images import PatchSpec, patchify


def on_grid(frames: list[np.ndarray], grids: torch.Tensor, spec: PatchSpec) -> bool:
    """Whether the processor kept each frame's size (its grid is the frame's patches)."""
    if len(frames) != len(grids):
        return False
    return all(tuple(grid.tolist()) == (1, f.shape[0] // spec.patch_size,
                                        f.shape[1] // spec.patch_size)
               and f.shape[0] % spec.patch_size == 0 and f.shape[1] % spec.patch_size == 0
               for f, grid in zip(frames, grids, strict=True))


class FramePixels(torch.Tensor):
    """Float `pixel_values` that pickle as their uint8 frames (see the module's docstring);
    torch ops on it return plain tensors."""

    __torch_function__ = torch._C._disabled_torch_function_impl
    _frames: list[np.ndarray]
    _spec: PatchSpec

    @classmethod
    def wrap(cls, pixel_values: torch.Tensor, frames: list[np.ndarray],
             spec: PatchSpec) -> FramePixels:
        tensor = pixel_values.as_subclass(cls)
        tensor._frames = [np.ascontiguousarray(f, dtype=np.uint8) for f in frames]
        tensor._spec = spec
        return tensor

    def __reduce_ex__(self, protocol: int):
        return _rebuild, (self._frames, self._spec)

    def __deepcopy__(self, memo: dict) -> FramePixels:
        return FramePixels.wrap(self.clone(), [f.copy() for f in self._frames], self._spec)


def _rebuild(frames: list[np.ndarray], spec: PatchSpec) -> FramePixels:
    return FramePixels.wrap(patchify(frames, spec), frames, spec)


def frames_for_transport(inputs: dict[str, Any], images: list[Any],
                         spec: PatchSpec) -> dict[str, Any]:
    """`inputs` (a row's multi_modal_inputs) with `pixel_values` as `FramePixels` when its
    images are on the processor's grid; unchanged otherwise."""
    pixels, grids = inputs.get("pixel_values"), inputs.get("image_grid_thw")
    if pixels is None or grids is None or not images:
        return inputs
    frames = [np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
              for image in images]
    if not on_grid(frames, grids, spec):
        return inputs
    return {**inputs, "pixel_values": FramePixels.wrap(pixels, frames, spec)}
