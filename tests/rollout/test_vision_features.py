"""The frozen vision tower runs once per distinct frame: with `VisionFeatures` serving the
forward, logits and the gradients of the merger and language model equal the plain
forward's, greedy generation is unchanged, and frames shown again (other samples, later
turns, later passes) are not encoded again."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from vagen.rollout.backends.base import SamplingParams
from vagen.rollout.backends.hf import HFBackend, policy_logits
from vagen.rollout.tokens import TrajectoryTokens, collate_segments
from vagen.rollout.vision_features import VisionFeatures
from vagen.trainer.policy import PARTS

FROZEN = PARTS["tune_mm_vision"]


def random_frames(*sizes: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


def group_segments(codec: Any, samples: int = 4) -> list:
    """A GRPO group: every sample opens on the same 3 frames, then asks for 2 more (one
    shared, one of its own) and a 112x84 frame."""
    opening = random_frames((56, 56), (56, 56), (56, 56))
    later = random_frames((56, 56), (56, 56), (56, 56), (112, 84), seed=1)
    segments = []
    for sample in range(samples):
        tokens = TrajectoryTokens(codec, "You watch videos.", window=None)
        tokens.add_observation("Look: <image><image><image>", opening)
        reply = codec.encode("<retrieve>2-5</retrieve>")
        tokens.add_response(reply, [0.0] * len(reply), 0)
        tokens.add_observation("More: <image><image>", [later[sample % 3], later[3]])
        answer = codec.encode("<answer>B</answer>")
        tokens.add_response(answer, [0.0] * len(answer), 1)
        segments += tokens.segments
    return segments


@pytest.fixture
def frozen_tower_model(model) -> Any:
    """The tiny model as the trainer holds it by default: tower frozen, merger and LM train."""
    trained = copy.deepcopy(model)
    for name, param in trained.named_parameters():
        param.requires_grad_(not name.startswith(FROZEN))
    return trained


def logits_and_grads(model: Any, batch: dict, vision: VisionFeatures | None):
    model.zero_grad(set_to_none=True)
    logits, _ = policy_logits(model, batch, 1.0, vision=vision)
    loss = (logits.log_softmax(-1)[..., :50] * batch["loss_mask"][..., None]).sum()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logits.detach(), grads


def test_cached_features_give_the_same_logits_and_gradients(frozen_tower_model, codec):
    model = frozen_tower_model
    batch = collate_segments(group_segments(codec), codec, model.model.get_rope_index)
    plain_logits, plain_grads = logits_and_grads(model, batch, None)
    vision = VisionFeatures()
    for _ in range(2):  # the first pass encodes, the second only reads the cache
        logits, grads = logits_and_grads(model, batch, vision)
        torch.testing.assert_close(logits, plain_logits, atol=1e-5, rtol=0)
        assert grads.keys() == plain_grads.keys()
        for name, grad in grads.items():
            torch.testing.assert_close(grad, plain_grads[name], atol=1e-5, rtol=1e-5)
    assert any(name.startswith(PARTS["tune_mm_mlp"]) for name in grads), "merger gets no grad"
    assert not any(name.startswith(FROZEN) for name in grads)


def test_each_distinct_frame_runs_through_the_tower_once(frozen_tower_model, codec):
    batch = collate_segments(group_segments(codec), codec)
    shown = len(batch["image_keys"])
    vision = VisionFeatures()
    with torch.no_grad():
        for _ in range(3):  # e.g. reference, values, update
            policy_logits(frozen_tower_model, batch, vision=vision)
    # 3 shared opening frames + 3 asked-for frames + the shared 112x84 one
    assert vision.encoded_images == 7 == len(set(batch["image_keys"].tolist()))
    assert vision.encoded_patches == 6 * 16 + 48
    assert vision.reused_images == 3 * shown - 7


def test_greedy_generation_is_the_same_with_cached_features(model, codec):
    segments = group_segments(codec, samples=2)
    prompts = [(s.input_ids, s.images) for s in segments]
    sampling = SamplingParams(temperature=0.0, max_new_tokens=6)
    plain = HFBackend(model, codec).generate(prompts, sampling)
    vision = VisionFeatures()
    backend = HFBackend(model, codec, vision)
    cached = backend.generate(prompts, sampling)
    assert [g.ids for g in cached] == [g.ids for g in plain]
    np.testing.assert_allclose([g.logprobs for g in cached], [g.logprobs for g in plain],
                               atol=1e-5)
    backend.generate(prompts, sampling)  # the next turn shows the same frames again
    # 2 samples x 5 frames a call, 6 of them distinct
    assert vision.encoded_images == 6 and vision.reused_images == 2 * 10 - 6


def test_kept_features_stay_within_their_budget(model, codec):
    batch = collate_segments(group_segments(codec, samples=1), codec)
    vision = VisionFeatures(kept_mb=1)
    vision.features.budget_bytes = 1  # smaller than one frame's features: only the newest is kept
    with torch.no_grad():
        policy_logits(model, batch, vision=vision)
        policy_logits(model, batch, vision=vision)
    assert vision.encoded_images == 2 * 5 - 1


def test_only_towers_that_end_in_the_merger_are_cached(model):
    assert VisionFeatures.supports(model)
    assert not VisionFeatures.supports(SimpleNamespace(config=SimpleNamespace(
        model_type="qwen3_vl")))
    with pytest.raises(ValueError, match="kept_mb >= 1"):
        VisionFeatures(kept_mb=0)
