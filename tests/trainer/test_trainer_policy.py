"""The trainable policy: which parts train (`tune_mm_*`), LoRA, the reference policy for KL,
PPO's value head, and saving a folder that loads like the original checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vagen.rollout.backends.hf import MODEL_INPUTS
from vagen.rollout.tokens import TrajectoryTokens, collate_segments
from vagen.rollout.vision_attention import PACKED_ATTENTION
from vagen.trainer.checkpoint import CheckpointManager
from vagen.trainer.policy import PARTS, ModelConfig, Policy

ALL_PARTS = tuple(prefix for prefixes in PARTS.values() for prefix in prefixes)


def _policy(path: Path, value_head: bool = False, **config) -> Policy:
    return Policy(ModelConfig(path=str(path), device="cpu", **config),
                  with_value_head=value_head)


def _inputs(policy: Policy) -> dict[str, torch.Tensor]:
    """One row: a user turn with a 56x56 frame (4 image tokens) and an answer."""
    tokens = TrajectoryTokens(policy.codec, "Answer the question.")
    tokens.add_observation("Look: <image>", [np.full((56, 56, 3), 90, np.uint8)])
    ids = policy.codec.encode("<think>red</think><answer>A</answer>")
    tokens.add_response(ids, [0.0] * len(ids), 0)
    batch = collate_segments(tokens.segments, policy.codec, policy.rope_index)
    return {k: batch[k] for k in MODEL_INPUTS if k in batch}


def _logits(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def _perturb(params) -> None:
    with torch.no_grad():
        for param in params:
            param.add_(0.05 * torch.randn_like(param))


def test_parts_cover_every_parameter(tiny_model_path: Path) -> None:
    # A part no switch names would silently never train.
    policy = _policy(tiny_model_path)
    assert all(n.startswith(ALL_PARTS) for n, _ in policy.model.named_parameters())


@pytest.mark.parametrize("switches", [
    {"tune_mm_llm": True, "tune_mm_vision": False, "tune_mm_mlp": True},  # the default
    {"tune_mm_llm": False, "tune_mm_vision": True, "tune_mm_mlp": False},
    {"tune_mm_llm": False, "tune_mm_vision": False, "tune_mm_mlp": True},
])
def test_tune_switches_choose_the_trainable_parts(tiny_model_path: Path,
                                                  switches: dict[str, bool]) -> None:
    policy = _policy(tiny_model_path, **switches)
    on = tuple(p for key, prefixes in PARTS.items() if switches[key] for p in prefixes)
    params = dict(policy.model.named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    assert trainable == {n for n in params if n.startswith(on)}
    for prefix in on:
        assert any(n.startswith(prefix) for n in trainable), prefix
    assert {id(p) for p in policy.parameters()} == {id(params[n]) for n in trainable}


def test_nothing_to_train_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="tune_mm_llm, tune_mm_vision and tune_mm_mlp are all"):
        ModelConfig(tune_mm_llm=False, tune_mm_vision=False, tune_mm_mlp=False)


def test_missing_checkpoint_folder_names_model_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model.path .*nope.* is not a folder"):
        Policy(ModelConfig(path=str(tmp_path / "nope")))


def test_full_finetuning_reference_is_a_frozen_copy(tiny_model_path: Path) -> None:
    policy = Policy(ModelConfig(path=str(tiny_model_path), device="cpu"), with_reference=True)
    inputs = _inputs(policy)
    with policy.reference() as ref:
        assert ref is not policy.model
        for model in (ref, policy.model):  # both encode frames with packed attention
            assert model.config.vision_config._attn_implementation == PACKED_ATTENTION
        assert not any(p.requires_grad for p in ref.parameters())
        torch.testing.assert_close(_logits(ref, inputs), _logits(policy.model, inputs))
        _perturb(policy.parameters())  # as an optimizer step would
        assert not torch.allclose(_logits(ref, inputs), _logits(policy.model, inputs))
    without = _policy(tiny_model_path)
    with pytest.raises(RuntimeError, match="no reference policy"):
        without.reference()


def test_lora_reference_is_the_loaded_model_and_save_merges_the_adapter(
        tiny_model_path: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    # Vision tower and merger switched on beside the adapter: they train as copies.
    policy = _policy(tiny_model_path, lora_rank=4, tune_mm_vision=True)
    trainable = [n for n, p in policy.model.named_parameters() if p.requires_grad]
    assert all("lora_" in n or ".modules_to_save." in n for n in trainable)
    assert any(".visual.blocks.0.modules_to_save." in n for n in trainable)
    assert any(".visual.merger.modules_to_save." in n for n in trainable)
    assert not any(p.requires_grad for n, p in policy.model.named_parameters()
                   if "language_model" in n and "lora_" not in n)

    inputs = _inputs(policy)
    original = _logits(AutoModelForImageTextToText.from_pretrained(tiny_model_path), inputs)
    torch.testing.assert_close(_logits(policy.model, inputs), original)  # lora_B starts at 0
    _perturb(policy.parameters())
    trained = _logits(policy.model, inputs)
    assert not torch.allclose(trained, original, atol=1e-4)
    with policy.reference() as ref:
        assert ref is None  # the policy itself, adapter and copies switched off
        torch.testing.assert_close(_logits(policy.model, inputs), original)
    torch.testing.assert_close(_logits(policy.model, inputs), trained)  # switched back on

    policy.save(tmp_path / "merged")
    merged = AutoModelForImageTextToText.from_pretrained(tmp_path / "merged")
    torch.testing.assert_close(_logits(merged, inputs), trained, atol=1e-4, rtol=1e-4)
    processor = AutoProcessor.from_pretrained(tmp_path / "merged")
    assert processor.tokenizer.get_vocab() == policy.processor.tokenizer.get_vocab()


def test_cached_vision_features_serve_the_lora_policy_and_its_reference(
        tiny_model_path: Path) -> None:
    """The merger trains as a peft copy beside the adapter; the cached tower features feed
    the trained merger for the policy and the loaded one for the reference."""
    from vagen.rollout.backends.hf import policy_logits

    policy = _policy(tiny_model_path, lora_rank=4)
    assert policy.vision is not None
    batch = {**_inputs(policy), "image_keys": torch.tensor([7])}
    _perturb(policy.parameters())

    def both() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad(), policy.reference():
            ref = policy_logits(policy.model, batch, vision=policy.vision)[0]
        with torch.no_grad():
            return policy_logits(policy.model, batch, vision=policy.vision)[0], ref

    cached, cached_ref = both()
    vision, policy.vision = policy.vision, None
    plain, plain_ref = both()
    torch.testing.assert_close(cached, plain, atol=1e-5, rtol=0)
    torch.testing.assert_close(cached_ref, plain_ref, atol=1e-5, rtol=0)
    assert not torch.allclose(plain.nan_to_num(), plain_ref.nan_to_num(), atol=1e-4)
    assert vision.encoded_images == 1 and vision.reused_images == 1


def test_a_trained_vision_tower_is_never_cached(tiny_model_path: Path) -> None:
    assert _policy(tiny_model_path, tune_mm_vision=True).vision is None
    assert _policy(tiny_model_path, vision_cache_mb=0).vision is None
    with pytest.raises(ValueError, match="vision_cache_mb"):
        ModelConfig(path="x", vision_cache_mb=-1)


def test_rope_index_is_the_models_own_under_lora(tiny_model_path: Path) -> None:
    plain = _policy(tiny_model_path)
    lora = _policy(tiny_model_path, lora_rank=4)
    inputs = _inputs(plain)
    assert torch.equal(_inputs(lora)["position_ids"], inputs["position_ids"])
    # The 4 image tokens of a 2x2 grid share a time step and span 2 rows x 2 columns.
    positions = inputs["position_ids"][:, 0]
    image = inputs["input_ids"][0] == plain.codec.image_token_id
    assert image.sum() == 4
    t, h, w = (positions[axis, image] - positions[axis, image].min() for axis in range(3))
    assert (t.tolist(), h.tolist(), w.tolist()) == ([0, 0, 0, 0], [0, 0, 1, 1], [0, 1, 0, 1])


def test_value_head_starts_at_zero_and_trains_with_the_policy(tiny_model_path: Path) -> None:
    policy = _policy(tiny_model_path, value_head=True)
    inputs = _inputs(policy)
    with torch.no_grad():
        hidden = policy.model(**inputs, output_hidden_states=True).hidden_states[-1]
        values = policy.value_head(hidden)
    assert values.shape == inputs["input_ids"].shape
    assert torch.equal(values, torch.zeros_like(values))
    head = {id(p) for p in policy.value_head.parameters()}
    assert head <= {id(p) for p in policy.parameters()}


def test_checkpoint_restores_a_lora_policy_and_its_optimizer(tiny_model_path: Path,
                                                             tmp_path: Path) -> None:
    policy = _policy(tiny_model_path, lora_rank=4)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-2)
    inputs = _inputs(policy)
    policy.model(**inputs).logits.float().pow(2).mean().backward()
    optimizer.step()
    manager = CheckpointManager(tmp_path / "checkpoints", keep=1)
    manager.save(3, policy, optimizer)
    saved = _logits(policy.model, inputs)
    state = {k: v.clone() for k, v in optimizer.state_dict()["state"][0].items()}

    _perturb(policy.parameters())
    optimizer.state.clear()
    assert manager.restore("auto", policy, optimizer) == 3
    torch.testing.assert_close(_logits(policy.model, inputs), saved, rtol=0, atol=0)
    for key, value in optimizer.state_dict()["state"][0].items():
        assert torch.equal(value, state[key]), key

    manager.save(4, policy, optimizer)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step_000004"]  # keep=1
    assert manager.restore("none", policy, optimizer) == 0
    with pytest.raises(FileNotFoundError, match="no trainer_state.pt in .*step_000003"):
        manager.restore(str(tmp_path / "checkpoints" / "step_000003"), policy, optimizer)
