"""SFT warm start (`vagen train sft`): it imitates the env's oracle trajectories, its loss
falls, and the final model is a checkpoint that loads like the one it started from."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vagen.config import ConfigKeyError, load_config
from vagen.rollout.backends.hf import token_logprobs
from vagen.rollout.tokens import ChatCodec, collate_segments
from vagen.trainer.logger import read_metrics
from vagen.trainer.sft import SFTConfig, lr_factor, oracle_segments, train_sft


def _oracle_nll(model_path: Path, env_config: Path) -> float:
    """Mean negative log-likelihood of the `single` group's oracle answers under a model
    loaded from `model_path` with the Auto classes, as a user would load it."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(model_path).eval()
    processor = AutoProcessor.from_pretrained(model_path)
    codec = ChatCodec(processor)
    segments = oracle_segments(codec, str(env_config), ["single"], episodes=0)
    batch = collate_segments(segments, codec, model.model.get_rope_index)
    with torch.no_grad():
        logprobs, _ = token_logprobs(model, batch)
    mask = batch["loss_mask"]
    return float(-(logprobs * mask).sum() / mask.sum())


def test_sft_loss_falls_and_token_accuracy_rises(sft_run: Path, sft_steps: int) -> None:
    metrics = read_metrics(sft_run / "metrics.jsonl")
    assert [m["step"] for m in metrics] == list(range(1, sft_steps + 1))
    first, last = metrics[0], metrics[-1]
    assert last["sft/loss"] < first["sft/loss"] / 3
    assert last["sft/token_accuracy"] > first["sft/token_accuracy"] + 0.3
    assert all(m["sft/grad_norm"] > 0 for m in metrics)


def test_sft_final_model_loads_and_holds_the_trained_weights(
        sft_run: Path, tiny_model_path: Path, env_config_path: Path) -> None:
    # The oracle answers' likelihood under the saved model is far above the start's: the
    # folder holds the trained weights (and the processor), loadable with the Auto classes.
    before = _oracle_nll(tiny_model_path, env_config_path)
    after = _oracle_nll(sft_run / "final", env_config_path)
    assert after < before / 3


def test_oracle_segments_train_only_the_expert_text(tiny_model_path: Path,
                                                    env_config_path: Path) -> None:
    from transformers import AutoProcessor

    codec = ChatCodec(AutoProcessor.from_pretrained(tiny_model_path))
    segments = oracle_segments(codec, str(env_config_path), ["single"], episodes=2)
    assert len(segments) == 2  # one answer turn each, one row each
    trained = [codec.tokenizer.decode([i for i, m in zip(s.input_ids, s.loss_mask, strict=True)
                                       if m]) for s in segments]
    # seeds 0 and 1 play samples q0 (red, A) and q1 (yellow, B)
    assert trained == ["<think>it turned red</think><answer>A</answer>",
                       "<think>it turned yellow</think><answer>B</answer>"]


def test_unknown_env_group_is_named(tiny_model_path: Path, env_config_path: Path,
                                    tmp_path: Path) -> None:
    config = load_config(SFTConfig, None, [f"model.path={tiny_model_path}", "model.device=cpu",
                                           f"env_config={env_config_path}", "groups=[nope]",
                                           "steps=1", f"out_dir={tmp_path}"])
    with pytest.raises(KeyError, match="env group 'nope'.*groups: retrieve, single"):
        train_sft(config)


def test_a_group_listed_twice_weighs_twice_and_reuses_its_episodes(
        tiny_model_path: Path, env_config_path: Path) -> None:
    from transformers import AutoProcessor

    codec = ChatCodec(AutoProcessor.from_pretrained(tiny_model_path))
    segments = oracle_segments(codec, str(env_config_path), ["single", "single", "retrieve"],
                               episodes=2)
    assert len(segments) == 2 + 2 + 2
    assert segments[0] is segments[2] and segments[1] is segments[3]  # played once
    assert segments[4].input_ids != segments[0].input_ids


def test_warmup_then_linear_decay() -> None:
    config = SFTConfig(steps=10, warmup_steps=2, lr_schedule="linear")
    factors = [lr_factor(step, config) for step in range(1, 11)]
    assert factors[:2] == [0.5, 1.0]
    assert factors[2:] == sorted(factors[2:], reverse=True) and 0 < factors[-1] <= 0.125
    assert {lr_factor(step, SFTConfig(steps=10)) for step in range(1, 11)} == {1.0}


def test_the_logged_learning_rate_follows_the_schedule(tiny_model_path: Path,
                                                       env_config_path: Path,
                                                       tmp_path: Path) -> None:
    train_sft(load_config(SFTConfig, None, [
        f"model.path={tiny_model_path}", "model.device=cpu", f"env_config={env_config_path}",
        "groups=[single]", "steps=4", "batch_size=2", "lr=1e-3", "warmup_steps=2",
        "lr_schedule=linear", f"out_dir={tmp_path}"]))
    lrs = [m["sft/lr"] for m in read_metrics(tmp_path / "metrics.jsonl")]
    assert lrs == pytest.approx([5e-4, 1e-3, 1e-3, 5e-4])


@pytest.mark.parametrize("override, key", [("groups=[]", "groups"), ("lr=0", "lr"),
                                           ("batch_size=x", "batch_size"),
                                           ("warmup_steps=300", "warmup_steps"),
                                           ("lr_schedule=cosine", "lr_schedule")])
def test_bad_sft_config_names_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigKeyError, match=key):
        load_config(SFTConfig, None, [override])
