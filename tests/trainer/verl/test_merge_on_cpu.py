"""Evaluating a verl checkpoint: one written by verl's own `FSDPCheckpointManager` (FSDP2 on
one CPU rank, gloo) is merged once by verl's model merger (run_eval.sh scoring one:
tests/eval/test_run_eval.py)."""

from __future__ import annotations

import subprocess

import pytest
import torch

from vagen.trainer.verl.merge import MERGED, hf_model_dir, verl_actor_dir


def test_a_verl_checkpoint_is_merged_once_into_a_hugging_face_folder(verl_checkpoint,
                                                                     model_dir, monkeypatch):
    from transformers import Qwen2_5_VLForConditionalGeneration

    assert verl_actor_dir(verl_checkpoint) == verl_checkpoint / "actor"
    assert verl_actor_dir(model_dir) is None and hf_model_dir(model_dir) == model_dir
    merged = hf_model_dir(verl_checkpoint)
    assert merged == verl_checkpoint / "actor" / MERGED
    loaded = Qwen2_5_VLForConditionalGeneration.from_pretrained(merged, dtype=torch.float32)
    original = dict(Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir)
                    .named_parameters())
    for name, weight in loaded.named_parameters():  # verl's merger writes bfloat16
        torch.testing.assert_close(weight, 2 * original[name], atol=0.02, rtol=0.01)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("merged again"))
    assert hf_model_dir(verl_checkpoint / "actor") == merged
