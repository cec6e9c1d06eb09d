"""The vision tower's attention in a few batched calls instead of one call per image.

Qwen2-VL and Qwen2.5-VL (and Qwen3-VL, whose tower has the same code, untested here) run
their vision tower over all images of a batch packed into one sequence, with each image (or
attention window) a block of it. With SDPA or eager attention, transformers cuts that
sequence into its blocks and runs one attention call per block: a turn of 24 frames is 24
small calls per layer. Transformers hands the packed sequence with its block
boundaries (`cu_seq_lens_q`) only to an attention implementation whose name holds "flash",
so `packed_vision_attention` is registered under such a name: it stacks each run of
equally long blocks into one batch and runs one SDPA call over it, with the same result as
the per-block calls (tests check it). Real flash attention, on a GPU, already takes the
packed sequence and is left alone."""

from __future__ import annotations

from itertools import groupby
from typing import Any

import torch

from vagen.rollout.vision_features import vision_model

# Registered with transformers' AttentionInterface; "flash" in the name is what makes
# transformers pass the packed sequence and its boundaries (see the module docstring).
PACKED_ATTENTION = "vagen_flash_packed_sdpa"
# The attention implementation this replaces in the vision tower (eager, which users pick
# to inspect attention, computes softmax differently and is left alone).
PER_BLOCK = "sdpa"


def packed_vision_attention(module: Any, query: torch.Tensor, key: torch.Tensor,
                            value: torch.Tensor, attention_mask: torch.Tensor | None = None,
                            scaling: float | None = None, dropout: float = 0.0,
                            cu_seq_lens_q: torch.Tensor | None = None, **kwargs: Any,
                            ) -> tuple[torch.Tensor, None]:
    """Non-causal attention within each block of the packed `(1, heads, tokens, dim)`
    query/key/value (blocks bounded by `cu_seq_lens_q`; one block when it is None):
    `(1, tokens, heads, dim)`, one SDPA call per run of equally long blocks."""
    tokens = query.shape[2]
    bounds = [0, tokens] if cu_seq_lens_q is None else cu_seq_lens_q.tolist()
    lengths = [end - start for start, end in zip(bounds, bounds[1:], strict=False)]
    outputs = []
    start = 0
    for length, run in groupby(lengths):
        blocks = len(list(run))
        end = start + blocks * length
        q, k, v = (t[0, :, start:end].reshape(t.shape[1], blocks, length, t.shape[3])
                   .transpose(0, 1) for t in (query, key, value))
        out = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, dropout_p=dropout, scale=scaling)  # (blocks, heads, length, dim)
        outputs.append(out.transpose(1, 2).reshape(1, blocks * length, *out.shape[1::2]))
        start = end
    return torch.cat(outputs, dim=1), None


def pack_vision_attention(model: Any) -> bool:
    """Switch `model`'s vision tower to `packed_vision_attention` when it runs SDPA (a
    Qwen-VL tower); returns whether it did. The choice lives on the loaded model only:
    checkpoints it saves keep their own attention setting."""
    from transformers import AttentionInterface

    try:
        config = vision_model(model).visual.config
    except ValueError:  # no vision tower
        return False
    if getattr(config, "_attn_implementation", None) != PER_BLOCK:
        return False
    AttentionInterface.register(PACKED_ATTENTION, packed_vision_attention)  # idempotent
    config._attn_implementation = PACKED_ATTENTION
    return True
