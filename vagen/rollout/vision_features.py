"""The frozen vision tower's features of each distinct frame, computed once.

With the vision tower frozen (`tune_mm_vision: false`, the default) its output for a frame
is the same in every pass over it: each turn's `generate` (which sees the earlier turns'
frames again), the reference and value passes and every micro-batch of the update, for
each of the GRPO group's samples that share the frame. `VisionFeatures` keeps the tower's
output before the merger under the frame's content key (`ProcessedImage.key`) and, while
it is `serving` a forward, stands in for the model's `get_image_features`: the frames it
has not seen run through the tower in one call, and the merger, which may train
(`tune_mm_mlp`), runs on every frame with its gradients as before."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from itertools import accumulate
from typing import Any

import torch

from vagen.rollout.lru import BytesLRU

# Models whose vision tower ends in a merger of `merge_size**2` neighbouring patches, the
# last step of the tower, so the features before it are the tower's frozen part.
SUPPORTED_MODELS = ("qwen2_vl", "qwen2_5_vl")
DEFAULT_KEPT_MB = 2048


class _Units(torch.nn.Module):
    """Stands in for the merger while the tower runs: hands back each merge unit's patch
    features side by side, `(units, merge_size**2 * width)`, which the tower then puts in
    frame order as it does the merger's output."""

    def __init__(self, unit: int) -> None:
        super().__init__()
        self.unit = unit

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden.reshape(-1, hidden.shape[-1] * self.unit)


def vision_model(model: Any) -> Any:
    """The module holding the vision tower (`visual`) and `get_image_features`, inside
    `model` however it is wrapped (peft, a `*ForConditionalGeneration`)."""
    for module in model.modules():
        if "visual" in module._modules and hasattr(module, "get_image_features"):
            return module
    raise ValueError(f"{type(model).__name__} has no vision tower (`visual`)")


class VisionFeatures:
    """Pre-merger vision features by frame key, least recently used dropped past
    `kept_mb`. `encoded_patches` / `encoded_images` count what ran through the tower,
    `reused_images` what did not have to."""

    def __init__(self, kept_mb: int = DEFAULT_KEPT_MB) -> None:
        if kept_mb < 1:
            raise ValueError(f"VisionFeatures needs kept_mb >= 1, got {kept_mb}")
        self.features: BytesLRU[torch.Tensor] = BytesLRU(kept_mb * 1024**2, _nbytes)
        self.encoded_patches = 0
        self.encoded_images = 0
        self.reused_images = 0

    @staticmethod
    def supports(model: Any) -> bool:
        """Whether `model`'s tower can be split before its merger (Qwen2-VL, Qwen2.5-VL;
        Qwen3-VL's tower also feeds its language model from inner layers, so it cannot)."""
        config = getattr(model, "config", None)
        return getattr(config, "model_type", None) in SUPPORTED_MODELS

    @contextmanager
    def serving(self, model: Any, image_keys: torch.Tensor | None) -> Iterator[None]:
        """Within the block, `model`'s forward takes its image features from here;
        `image_keys` are the keys of the batch's images, in the order of its pixel values
        (None: no images, nothing changes)."""
        if image_keys is None:
            yield
            return
        inner = vision_model(model)
        inner.get_image_features = partial(self._image_features, inner.visual,
                                           image_keys.tolist())
        try:
            yield
        finally:
            del inner.get_image_features

    def _image_features(self, visual: Any, keys: list[int], pixel_values: torch.Tensor,
                        image_grid_thw: torch.Tensor, **kwargs: Any) -> Any:
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        unit = visual.spatial_merge_size ** 2
        patches = image_grid_thw.prod(-1).tolist()
        if len(keys) != len(patches):
            raise ValueError(f"{len(keys)} image keys for {len(patches)} images")
        starts = list(accumulate(patches, initial=0))
        new: dict[int, int] = {}
        for index, key in enumerate(keys):
            if key not in self.features and key not in new:
                new[key] = index
        self.reused_images += len(keys) - len(new)
        if new:
            self._encode(visual, new, pixel_values, image_grid_thw, starts, unit, kwargs)
        features = torch.cat(self.features.use(keys))
        embeds = visual.merger(features.reshape(-1, features.shape[-1] // unit))
        return BaseModelOutputWithPooling(
            pooler_output=torch.split(embeds, [count // unit for count in patches]))

    def _encode(self, visual: Any, new: dict[int, int], pixel_values: torch.Tensor,
                grids: torch.Tensor, starts: list[int], unit: int, kwargs: dict) -> None:
        """One pass of the tower over the new frames; their features are kept."""
        indices = list(new.values())
        rows = torch.cat([pixel_values[starts[i]:starts[i + 1]] for i in indices])
        merger = visual.merger
        visual.merger = _Units(unit)
        try:
            with torch.no_grad():
                out = visual(rows.type(visual.dtype), grid_thw=grids[indices], **kwargs)
        finally:
            visual.merger = merger
        sizes = [(starts[i + 1] - starts[i]) // unit for i in indices]
        for key, part in zip(new, torch.split(out.pooler_output, sizes), strict=True):
            self.features.put(key, part)
        self.encoded_images += len(indices)
        self.encoded_patches += sum(sizes) * unit


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()
