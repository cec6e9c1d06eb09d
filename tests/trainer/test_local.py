"""The local trainer end to end on CPU: the warm-started tiny Qwen2.5-VL plays a real env
server in process, and each step goes rollout -> advantage -> loss -> optimizer step -> log."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from vagen.cli import main
from vagen.rollout.backends.hf import MODEL_INPUTS
from vagen.trainer.batch import training_batch
from vagen.trainer.local import LocalTrainer
from vagen.trainer.logger import read_metrics
from vagen.trainer.policy import PARTS, ValueHead
from vagen.trainer.rewards import apply_shaping
from vagen.trainer.trajectory_log import ViewConfig

VISION_TOWER = PARTS["tune_mm_vision"]
MERGER = PARTS["tune_mm_mlp"]
LANGUAGE_MODEL = PARTS["tune_mm_llm"]


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _changed(before: dict[str, torch.Tensor], model: torch.nn.Module,
             prefixes: tuple[str, ...]) -> dict[str, bool]:
    """name -> whether the parameter moved, for parameters whose name (peft's `base_model.
    model.` prefix aside) starts with one of `prefixes`."""
    out = {}
    for name, param in model.named_parameters():
        bare = name.removeprefix("base_model.model.")
        if bare.startswith(prefixes):
            out[name] = not torch.equal(before[name], param.detach())
    assert out, f"no parameter starts with {prefixes}"
    return out


def _fixed_batch(trainer: LocalTrainer) -> dict[str, torch.Tensor]:
    """One rollout turned into a training batch with reference log-probs and advantages."""
    trajectories = trainer.play(0)
    assert len({t.reward for t in trajectories}) > 1, "warm policy should earn mixed rewards"
    batch, row_traj = training_batch(trajectories, trainer.policy.codec,
                                     trainer.policy.rope_index)
    trainer.add_reference_and_values(batch)
    trainer.add_advantages(batch, row_traj, trajectories)
    return batch


def test_grpo_step_moves_language_model_and_merger_but_not_frozen_vision_tower(
        make_config: Callable) -> None:
    trainer = LocalTrainer(make_config())  # tune_mm_vision defaults to false
    try:
        model = trainer.policy.model
        before = _snapshot(model)
        metrics = trainer.train_step()
    finally:
        trainer.close()
    assert metrics["reward/std"] > 0  # the group's samples differ, so advantages are not 0
    assert metrics["actor/grad_norm"] > 0 and metrics["actor/skipped_step"] == 0
    assert trainer.step == 1
    assert all(_changed(before, model, LANGUAGE_MODEL).values())
    assert any(_changed(before, model, MERGER).values())
    assert not any(_changed(before, model, VISION_TOWER).values())
    assert not any(p.requires_grad for n, p in model.named_parameters()
                   if n.startswith(VISION_TOWER))


def test_the_vision_feature_cache_leaves_a_step_as_it_was(make_config: Callable) -> None:
    # Same samples, rewards, loss and weights with the frozen tower's features cached (the
    # default) as without; only the tower's work shrinks. kl_coef adds the reference pass.
    runs = []
    for cache in ("model.vision_cache_mb=0", "model.vision_cache_mb=64"):
        trainer = LocalTrainer(make_config(cache, "algo.loss.kl_coef=0.01"))
        try:
            runs.append((trainer.train_step(), _snapshot(trainer.policy.model)))
        finally:
            trainer.close()
    (plain, plain_weights), (cached, cached_weights) = runs
    assert "perf/vision_patches" not in plain and cached["perf/vision_patches"] > 0
    for key in ("reward/mean", "rollout/turns", "actor/pg_loss", "actor/kl_loss",
                "actor/grad_norm"):
        assert cached[key] == pytest.approx(plain[key], rel=1e-5, abs=1e-6), key
    for name, weight in plain_weights.items():
        torch.testing.assert_close(cached_weights[name], weight, atol=1e-5, rtol=1e-5)


def test_video_mtr_shaping_replaces_the_env_rewards_on_the_tokens(
        make_config: Callable) -> None:
    # weights that make each turn's shaped reward hand-checkable: 0.25 per well-formed turn,
    # 2.0 for a correct answer, nothing else
    trainer = LocalTrainer(make_config(
        "envs.group=retrieve", "rewards=video_mtr", "shaping.format_reward=0.25",
        "shaping.answer_reward=2.0", "shaping.turn_penalty=0", "shaping.iou_reward=0",
        "shaping.exploration=false"))
    try:
        trajectories = trainer.play(0)
        metrics = apply_shaping(trajectories, trainer.config.shaping)
        batch, row_traj = training_batch(trajectories, trainer.policy.codec,
                                         trainer.policy.rope_index)
        step_metrics = trainer.train_step()
    finally:
        trainer.close()
    assert set(metrics) == {"shaping/retrieve_ratio", "shaping/exploration_bonus"}
    for index, trajectory in enumerate(trajectories):
        expected = [0.25 * turn.info["valid_action"]
                    + 2.0 * (turn.info["action_type"] == "answer" and turn.info["correct"])
                    for turn in trajectory.turns]
        assert [turn.reward for turn in trajectory.turns] == pytest.approx(expected)
        rows = [row for row, owner in enumerate(row_traj) if owner == index]
        assert float(batch["token_rewards"][rows].sum()) == pytest.approx(sum(expected))
    assert any(turn.reward > 0 for t in trajectories for turn in t.turns)  # not all invalid
    assert {"shaping/retrieve_ratio", "shaping/exploration_bonus"} <= set(step_metrics)


def test_shaping_discount_is_refused_where_estimators_discount(make_config: Callable) -> None:
    with pytest.raises(ValueError, match="high_level_gamma"):
        make_config("rewards=video_mtr", "shaping.turn_discount=0.95")
    with pytest.raises(ValueError, match="rewards is 'shaped'"):
        make_config("rewards=shaped")


def test_updates_on_a_fixed_batch_lower_the_loss(make_config: Callable) -> None:
    trainer = LocalTrainer(make_config())
    try:
        batch = _fixed_batch(trainer)
        assert batch["advantages"].abs().sum() > 0
        losses = [trainer.update(batch)["actor/pg_loss"] for _ in range(4)]
    finally:
        trainer.close()
    # Same tokens, same old log-probs, same advantages: each step raises the ratio of
    # positive-advantage tokens and lowers the others', so the surrogate loss falls.
    assert losses == sorted(losses, reverse=True) and losses[-1] < losses[0] - 1e-3


def test_zero_advantages_leave_the_weights_alone(make_config: Callable) -> None:
    # GRPO compares samples of one prompt: identical rewards teach nothing, and no step
    # may move the weights then (AdamW on zero gradients, no weight decay).
    trainer = LocalTrainer(make_config())
    try:
        batch = _fixed_batch(trainer)
        batch["advantages"].zero_()
        before = _snapshot(trainer.policy.model)
        metrics = trainer.update(batch)
    finally:
        trainer.close()
    assert metrics["actor/pg_loss"] == 0.0 and metrics["actor/grad_norm"] == 0.0
    model = trainer.policy.model
    assert not any(_changed(before, model, LANGUAGE_MODEL + MERGER).values())


def test_micro_batches_accumulate_to_the_full_batch_gradient(make_config: Callable) -> None:
    # One row per micro-batch (each with only its own images) must give the same loss and
    # gradient norm as the whole batch at once.
    results = []
    for size in (8, 1):
        trainer = LocalTrainer(make_config(f"optim.micro_batch_size={size}"))
        try:
            results.append(trainer.update(_fixed_batch(trainer)))
        finally:
            trainer.close()
    whole, split = results
    for key in ("actor/pg_loss", "actor/grad_norm"):
        assert split[key] == pytest.approx(whole[key], rel=1e-4, abs=1e-6)


def test_lora_trains_only_the_adapter_and_switched_on_parts(make_config: Callable,
                                                             tmp_path: Path) -> None:
    from transformers import AutoModelForImageTextToText

    config = make_config("model.lora_rank=4", "algo.loss.kl_coef=0.1")
    trainer = LocalTrainer(config)
    policy = trainer.policy
    model = policy.model
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    # tune_mm_mlp stays on: the merger trains as a copy beside the adapter
    merger_copy = ".visual.merger.modules_to_save."
    assert trainable and all("lora_" in n or merger_copy in n for n in trainable)
    assert any(merger_copy in n for n in trainable)
    before = _snapshot(model)
    try:
        batch = _fixed_batch(trainer)
        trainer.update(batch)
    finally:
        trainer.close()
    moved = {n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert moved and moved <= trainable
    assert any("lora_B" in n for n in moved)

    # The reference is the adapter switched off: the model as loaded, not the policy.
    inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
    original = AutoModelForImageTextToText.from_pretrained(config.model.path).eval()
    with torch.no_grad():
        policy_logits = model(**inputs).logits
        with policy.reference() as ref:
            ref_logits = (model if ref is None else ref)(**inputs).logits
        original_logits = original(**inputs).logits
    assert not torch.allclose(policy_logits, ref_logits, atol=1e-5)
    torch.testing.assert_close(ref_logits, original_logits)

    # The saved model has the adapter merged in and loads like the original checkpoint.
    policy.save(tmp_path / "merged")
    merged = AutoModelForImageTextToText.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(**inputs).logits, policy_logits, atol=1e-4,
                                   rtol=1e-4)


# ---------------------------------------------------------------- PPO, logs and resume

PPO_YAML = """\
model: {{path: {model}, device: cpu}}
envs: {{config: {envs}, group: retrieve}}  # 2 turns, 12 tokens a turn (the group's)
algo:
  mode: ppo
  adv_estimator: masked_gae
  n: 2
  loss: {{kl_coef: 0.05, entropy_coef: 0.01}}
optim: {{lr: 1.0e-3}}
prompts_per_step: 2
save_every: 1
"""
# Differ between runs by design (time), or are not per-step losses.
NOT_COMPARED = ("perf/",)


@pytest.fixture(scope="module")
def ppo_yaml(warm_model_path: Path, env_config_path: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ppo") / "ppo.yaml"
    path.write_text(PPO_YAML.format(model=warm_model_path, envs=env_config_path))
    return path


@pytest.fixture(scope="module")
def uninterrupted(ppo_yaml: Path) -> tuple[LocalTrainer, list[dict]]:
    """Two PPO steps in one run; the trainer (closed) and its metrics.jsonl rows."""
    from vagen.config import load_config
    from vagen.trainer.local import TrainConfig

    out = ppo_yaml.parent / "uninterrupted"
    trainer = LocalTrainer(load_config(TrainConfig, ppo_yaml, ["steps=2", f"out_dir={out}"]))
    final = trainer.train()
    assert final == out / "final" and (final / "config.json").exists()
    return trainer, read_metrics(out / "metrics.jsonl")


def test_ppo_builds_a_value_head_that_trains(uninterrupted) -> None:
    trainer, metrics = uninterrupted
    head = trainer.policy.value_head
    assert isinstance(head, ValueHead)
    assert any(p is head.linear.weight for p in trainer.policy.parameters())
    assert head.linear.weight.abs().sum() > 0  # zero-initialised, moved by the critic loss
    for row in metrics:
        assert row["critic/vf_loss"] > 0
        assert "critic/vf_clipfrac" in row and "critic/vpred_mean" in row


def test_metrics_jsonl_has_one_line_per_step_with_what_users_plot(uninterrupted) -> None:
    _, metrics = uninterrupted
    assert [row["step"] for row in metrics] == [1, 2]
    for row in metrics:
        assert {"reward/choice", "reward/format"} <= set(row)  # reward parts
        assert 0.0 <= row["rollout/accuracy"] <= 1.0
        assert 1.0 <= row["rollout/turns"] <= 2.0
        assert row["rollout/frames_seen"] >= 3  # the 3 opening frames at least
        assert row["actor/kl_loss"] >= 0.0  # low_var_kl is non-negative
        assert row["actor/entropy"] > 0
        assert row["actor/grad_norm"] > 0 and row["actor/skipped_step"] == 0
        assert row["actor/loss"] is not None  # finite (the log writes NaN/inf as null)
        assert row["perf/tokens_per_s"] > 0
        assert row["reward/mean"] == pytest.approx(
            row["reward/choice"] * 1.0 + row["reward/format"] * 0.5)
    # The second step's reference KL is positive: step 1 moved the policy off the reference.
    assert metrics[1]["actor/kl_loss"] > 0


def test_resume_auto_continues_exactly_like_an_uninterrupted_run(
        uninterrupted, ppo_yaml: Path) -> None:
    _, expected = uninterrupted
    out = ppo_yaml.parent / "resumed"
    args = ["train", "--config", str(ppo_yaml), f"out_dir={out}"]
    assert main([*args, "steps=1"]) == 0  # `vagen train --config ... key=value`
    assert [row["step"] for row in read_metrics(out / "metrics.jsonl")] == [1]
    assert (out / "checkpoints" / "step_000001" / "trainer_state.pt").exists()
    shutil.rmtree(out / "final")

    assert main([*args, "steps=2"]) == 0  # resume=auto is the default
    resumed = read_metrics(out / "metrics.jsonl")
    assert [row["step"] for row in resumed] == [1, 2]
    for got, want in zip(resumed, expected, strict=True):
        compared = {k: v for k, v in want.items() if not k.startswith(NOT_COMPARED)}
        assert {k: got[k] for k in compared} == compared
    # Step 2's metrics only see the restored weights; the weights after it also need the
    # restored optimizer moments.
    got, want = (_checkpoint(run / "checkpoints" / "step_000002")
                 for run in (out, ppo_yaml.parent / "uninterrupted"))
    assert got.keys() == want.keys()
    for key, tensor in want.items():
        assert torch.equal(got[key], tensor), key
    # the kept trajectories are those of the uninterrupted run, step 1's once
    kept = [(row["step"], row["id"], row["steps"][0]["response"])
            for row in read_metrics(out / "trajectories.jsonl")]
    assert kept == [(row["step"], row["id"], row["steps"][0]["response"]) for row in
                    read_metrics(ppo_yaml.parent / "uninterrupted" / "trajectories.jsonl")]


def test_kept_trajectories_show_in_the_viewer_by_step(uninterrupted, ppo_yaml: Path) -> None:
    from tests.view.test_build import page_data
    from vagen.view import build_view

    run = ppo_yaml.parent / "uninterrupted"
    kept = read_metrics(run / "trajectories.jsonl")
    per_step = ViewConfig().per_step
    assert [row["step"] for row in kept] == [1] * per_step + [2] * per_step
    assert all(row["opening"]["times"] and row["videos"] for row in kept)
    episodes = page_data(build_view(run))["episodes"]
    assert [e["step"] for e in episodes] == [1] * per_step + [2] * per_step
    assert all(len(e["views"][0]) == 3 for e in episodes)  # the group's 3 opening frames


def _checkpoint(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a trainer checkpoint (model, value head, optimizer state) by path."""
    state = torch.load(folder / "trainer_state.pt", weights_only=False)
    tensors = {f"model/{k}": v for k, v in state["model"].items()}
    tensors.update({f"value_head/{k}": v for k, v in state["value_head"].items()})
    for index, moments in state["optimizer"]["state"].items():
        tensors.update({f"optimizer/{index}/{k}": v for k, v in moments.items()})
    return tensors


def test_a_prompt_whose_video_is_broken_is_replaced_and_counted(train_overrides,
                                                                env_config_path, tmp_path):
    """The group's fifth sample names a video that is not there: the steps that draw it
    play another prompt instead, count it, and the run finishes."""
    import yaml

    from vagen.config import load_config
    from vagen.data import load_samples, save_samples
    from vagen.trainer.local import TrainConfig

    groups = yaml.safe_load(env_config_path.read_text())
    single = next(g for g in groups if g["name"] == "single")
    data = Path(single["data"])
    samples = [replace(s, videos=[str(data.parent / v) for v in s.videos])
               for s in load_samples(data)]
    broken = replace(samples[0], id="broken", videos=[str(tmp_path / "gone.mp4")])
    mixed = save_samples([*samples, broken], tmp_path / "mixed.jsonl")
    path = tmp_path / "env_config.yaml"
    path.write_text(yaml.safe_dump([{**single, "data": str(mixed), "n": 5}]))
    config = load_config(TrainConfig, None, train_overrides(
        f"envs.config={path}", "steps=3", "prompts_per_step=2"))
    trainer = LocalTrainer(config)
    trainer.train()
    rows = read_metrics(Path(config.out_dir) / "metrics.jsonl")
    assert [row["step"] for row in rows] == [1, 2, 3]
    assert sum(row["rollout/failed_prompts"] for row in rows) == 1
    assert list(trainer.envs.broken) == [4]
