"""The vision tower's attention in one call per run of equally sized blocks: the tower's
output and its gradients equal the per-image attention's, a turn of same-sized frames is one
attention call per layer, and checkpoints saved from a packed model keep their own setting."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from vagen.rollout.vision_attention import PACKED_ATTENTION, pack_vision_attention

# 6 frames of 56x56 (one attention window each), a 112x84 one (windows of two sizes) and
# 3 of 28x28: runs of blocks of several lengths, as a trajectory's turns give them.
SIZES = [(56, 56)] * 6 + [(112, 84)] + [(28, 28)] * 3


def tower_inputs(model: Any, sizes: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Random pixel values and the grid of frames of `sizes` (height, width)."""
    vision = model.config.vision_config
    grids = torch.tensor([[1, h // vision.patch_size, w // vision.patch_size] for h, w in sizes])
    width = vision.in_channels * vision.temporal_patch_size * vision.patch_size ** 2
    generator = torch.Generator().manual_seed(0)
    return torch.randn(int(grids.prod(-1).sum()), width, generator=generator), grids


def tower_output(model: Any, pixels: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
    return torch.cat(model.get_image_features(pixels, grids).pooler_output)


@pytest.fixture
def packed(model) -> Any:
    packed_model = copy.deepcopy(model)
    assert pack_vision_attention(packed_model)
    return packed_model


def test_packed_attention_gives_the_per_image_attention_output(model, packed) -> None:
    pixels, grids = tower_inputs(model, SIZES)
    with torch.no_grad():
        expected = tower_output(model, pixels, grids)
        got = tower_output(packed, pixels, grids)
    assert model.config.vision_config._attn_implementation == "sdpa"
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_trained_tower_gets_the_same_gradients(model, packed) -> None:
    """`tune_mm_vision: true`: the packed calls carry the same gradients to every block."""
    pixels, grids = tower_inputs(model, SIZES)
    weights = torch.randn(tower_output(model, pixels, grids).shape,
                          generator=torch.Generator().manual_seed(1))
    grads = []
    for m in (model, packed):
        m.zero_grad(set_to_none=True)
        (tower_output(m, pixels, grids) * weights).sum().backward()
        grads.append({n: p.grad for n, p in m.model.visual.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-5, rtol=1e-5, msg=name)


def test_a_turn_of_same_sized_frames_is_one_attention_call_per_layer(model, packed,
                                                                     monkeypatch) -> None:
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def counted(*args, **kwargs):
        calls.append(1)
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counted)
    pixels, grids = tower_inputs(model, [(56, 56)] * 24)
    counts = []
    with torch.no_grad():
        for m in (model, packed):
            calls.clear()
            tower_output(m, pixels, grids)
            counts.append(len(calls))
    depth = model.config.vision_config.depth
    assert counts == [24 * depth, depth]


def test_saved_checkpoints_keep_their_own_attention(packed, tmp_path: Path) -> None:
    from transformers import AutoModelForImageTextToText

    packed.save_pretrained(tmp_path)
    assert PACKED_ATTENTION not in (tmp_path / "config.json").read_text()
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "qwen2_5_vl"
    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path)
    assert loaded.config.vision_config._attn_implementation == "sdpa"


def test_eager_attention_is_left_alone(tiny_model_path: Path) -> None:
    """Eager attention (what users pick to look at attention weights) is not replaced."""
    from transformers import AutoModelForImageTextToText

    eager = AutoModelForImageTextToText.from_pretrained(tiny_model_path,
                                                        attn_implementation="eager")
    assert not pack_vision_attention(eager)
    assert eager.config.vision_config._attn_implementation == "eager"
