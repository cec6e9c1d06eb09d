"""The PPO critic of the 7B recipe, built the way verl builds it: `load_valuehead_model` on
the actor's checkpoint (here the tiny Qwen2.5-VL), in a process where only `import verl`
ran, as in a Ray worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

PROMPT = ("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"
          "<|vision_start|><|image_pad|><|vision_end|>What colour?<|im_end|>\n"
          "<|im_start|>assistant\n<answer>red</answer><|im_end|>")


def load_critic(model_dir: Path):
    """The critic as verl's FSDP engine loads it (num_labels and dropouts as it sets them)."""
    from transformers import AutoConfig
    from verl.utils.model import load_valuehead_model

    config = AutoConfig.from_pretrained(model_dir)
    config.num_labels = 1
    config.classifier_dropout = 0.0
    return load_valuehead_model(local_path=str(model_dir), torch_dtype=torch.float32,
                                model_config=config, trust_remote_code=False)


@pytest.fixture(scope="module")
def inputs(processor) -> dict[str, torch.Tensor]:
    """Two rows (the second left-padded shorter), each with two 56x56 frames."""
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 255, (56, 56, 3), dtype=np.uint8))
              for _ in range(4)]
    short = PROMPT.replace("<answer>red</answer>", "")
    processor.tokenizer.padding_side = "left"
    return dict(processor(text=[PROMPT, short], images=frames, padding=True,
                          return_tensors="pt"))


def test_verl_builds_a_qwen25_vl_critic_with_a_value_per_token(model_dir, inputs):
    from transformers import Qwen2_5_VLForConditionalGeneration

    critic = load_critic(model_dir)
    assert type(critic).__name__ == "Qwen2_5_VLForTokenClassification"
    actor = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir)
    actor_weights = dict(actor.named_parameters())
    for name, weight in critic.named_parameters():
        if not name.startswith("score."):  # the backbone is the actor's checkpoint
            assert torch.equal(weight, actor_weights[name]), name

    values = critic(**inputs).logits.squeeze(-1)
    assert values.shape == inputs["input_ids"].shape
    values[inputs["attention_mask"].bool()].sum().backward()
    grads = {name: weight.grad for name, weight in critic.named_parameters()}
    for name in ("score.weight", "model.language_model.layers.0.mlp.up_proj.weight",
                 "model.visual.blocks.0.mlp.up_proj.weight"):
        assert grads[name] is not None and grads[name].abs().sum() > 0, name


def test_a_saved_critic_reloads_in_a_fresh_process_that_only_imported_verl(
        model_dir, inputs, tmp_path):
    critic = load_critic(model_dir)
    with torch.no_grad():
        critic.score.weight.normal_()
        expected = critic(**inputs).logits
    critic.save_pretrained(tmp_path / "critic")
    torch.save(dict(inputs), tmp_path / "inputs.pt")
    # A new interpreter, as a Ray worker starts: vagen's critic is registered by verl's
    # plugin entry point, not by anything this test imported.
    script = f"""
import torch, verl
from transformers import AutoModelForTokenClassification
critic = AutoModelForTokenClassification.from_pretrained({str(tmp_path / "critic")!r})
with torch.no_grad():
    values = critic(**torch.load({str(tmp_path / "inputs.pt")!r})).logits
torch.save(values, {str(tmp_path / "values.pt")!r})
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    assert torch.allclose(torch.load(tmp_path / "values.pt"), expected, atol=1e-5)


def test_a_qwen3_vl_checkpoint_gets_a_critic_too(tmp_path):
    from transformers import AutoModelForTokenClassification, Qwen3VLConfig

    import vagen.trainer.verl.critic  # noqa: F401  (verl's plugin import, done directly)

    config = Qwen3VLConfig(
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
                     "vocab_size": 128, "rope_scaling": {"rope_type": "default",
                                                         "mrope_section": [2, 3, 3]}},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "depth": 1,
                       "num_heads": 2, "out_hidden_size": 32, "deepstack_visual_indexes": []},
        num_labels=1)
    critic = AutoModelForTokenClassification.from_config(config)
    ids = torch.randint(0, 100, (2, 5))
    assert critic(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.shape == (2, 5, 1)
