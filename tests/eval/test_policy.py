"""Loading the policy by backend name, and the errors that say what to change."""

from __future__ import annotations

import importlib.util

import pytest

from vagen.eval.policy import (
    PolicyError,
    list_policy_backends,
    load_policy,
    register_policy_backend,
)
from vagen.rollout.vision_attention import PACKED_ATTENTION


def test_backends_are_registered_by_name_and_duplicates_rejected():
    assert list_policy_backends() == ["hf", "vllm"]
    with pytest.raises(ValueError, match="'hf' is already registered"):
        register_policy_backend("hf")(lambda path, device: None)


def test_unknown_backend_device_or_folder_say_what_to_use(tmp_path):
    with pytest.raises(PolicyError, match="unknown backend 'sglang'; choose from: hf, vllm"):
        load_policy("sglang", tmp_path, "cpu")
    with pytest.raises(PolicyError, match="unknown device 'tpu'; choose from: cpu, cuda"):
        load_policy("hf", tmp_path, "tpu")
    with pytest.raises(PolicyError, match="not a local checkpoint folder .* never downloads"):
        load_policy("hf", "Qwen/Qwen2.5-VL-7B-Instruct", "cpu")


def test_vllm_needs_a_gpu(model_path):
    with pytest.raises(PolicyError, match="--backend vllm runs on GPUs only"):
        load_policy("vllm", model_path, "cpu")


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_without_the_package_says_how_to_install_it(model_path):
    with pytest.raises(PolicyError, match=r"needs the vllm package, .*install.sh --gpu"):
        load_policy("vllm", model_path, "cuda")


def test_hf_policy_loads_the_checkpoint_with_its_chat_codec(model_path):
    policy, codec = load_policy("hf", model_path, "cpu")
    assert policy.codec is codec
    assert next(policy.model.parameters()).device.type == "cpu"
    assert not policy.model.training
    # the vision tower's attention runs one call per run of equally sized frames
    assert policy.model.config.vision_config._attn_implementation == PACKED_ATTENTION
