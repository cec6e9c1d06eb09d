"""`vagen quickstart`: the main job end to end on the embedded default, on CPU.

Synthetic colour questions -> the env server on 127.0.0.1 -> a tiny random Qwen2.5-VL ->
SFT warm start on oracle trajectories -> GRPO against the env server -> evaluation of the
single-turn baselines (8 and 16 uniform frames) and multi-turn retrieval on held-out
questions -> `report.md` with plots. Every stage skips work that is already done, so a
second run resumes."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vagen.config import load_config
from vagen.server.launch import server_subprocess
from vagen.trainer.logger import read_metrics

ENV_CONFIG = "scripts/quickstart/env_config.yaml"
SYNTH_ARGS = ["--kinds", "color", "--min-duration-s", "56", "--max-duration-s", "64",
              "--min-detail-s", "2", "--max-detail-s", "3", "--max-carrier-s", "12",
              "--distractors", "0"]
# The quick start's eval settings mirror its env groups (scripts/quickstart/env_config.yaml).
EVAL_SET = ["max_pixels=3136", "max_turns=2", "initial_frames=16", "frames_per_turn=8",
            "prompt_example=false"]


@dataclass
class QuickstartConfig:
    out: str = field(default="runs/quickstart", metadata={"help": "run folder"})
    train_samples: int = field(default=300, metadata={"help": "synthetic training questions"})
    test_samples: int = field(default=100, metadata={"help": "held-out questions"})
    sft_steps: int = field(default=200, metadata={"help": "SFT warm-start steps"})
    sft_episodes: int = field(default=200, metadata={"help": "oracle episodes to imitate"})
    grpo_steps: int = field(default=16, metadata={"help": "GRPO steps after SFT"})
    seed: int = field(default=0, metadata={"help": "data and training seed"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vagen quickstart", description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", help="key=value, e.g. sft_steps=100")
    config = load_config(QuickstartConfig, None, parser.parse_args(argv).overrides)
    out = Path(config.out)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def stage(name: str, fn, *args):
        t0 = time.perf_counter()
        print(f"\n== {name}", flush=True)
        result = fn(*args)
        timings[name] = time.perf_counter() - t0
        return result

    stage("data", make_data, out, config)
    model = stage("tiny model", make_model, out)
    with server_subprocess(ENV_CONFIG, workers=2, log=out / "server.log") as url:
        print(f"env server at {url}")
        sft_model = stage("sft", run_sft, out, config, model)
        rl_model = stage("grpo", run_grpo, out, config, sft_model, url)
        evals = stage("eval", run_evals, out, {"sft": sft_model, "grpo": rl_model}, url)
    timings["total"] = time.perf_counter() - started
    report = write_report(out, evals, timings)
    print(f"\nvagen quickstart: report in {report} ({timings['total'] / 60:.1f} min)")
    return 0


def make_data(out: Path, config: QuickstartConfig) -> None:
    from vagen.video.synthetic import main as synth

    for split, n, seed in (("train", config.train_samples, config.seed),
                           ("test", config.test_samples, config.seed + 1)):
        folder = out / "data" / split
        if (folder / "samples.jsonl").exists():
            print(f"{folder} exists")
            continue
        synth(["--out", str(folder), "--n", str(n), "--seed", str(seed), *SYNTH_ARGS])


def make_model(out: Path) -> Path:
    from vagen.testing import tiny_model_dir

    path = tiny_model_dir(out / "models")
    print(f"tiny Qwen2.5-VL in {path}")
    return path


def run_sft(out: Path, config: QuickstartConfig, model: Path) -> Path:
    from vagen.trainer.sft import SFTConfig, train_sft

    final = out / "sft" / "final"
    if final.exists():
        print(f"{final} exists")
        return final
    return train_sft(load_config(SFTConfig, None, [
        f"model.path={model}", f"env_config={ENV_CONFIG}", "groups=[retrieve-train,single-train]",
        f"episodes={config.sft_episodes}", f"steps={config.sft_steps}", "batch_size=8",
        "lr=2e-3", f"seed={config.seed}", f"out_dir={out / 'sft'}"]))


def run_grpo(out: Path, config: QuickstartConfig, model: Path, url: str) -> Path:
    from vagen.trainer.local import LocalTrainer, TrainConfig

    final = out / "grpo" / "final"
    if final.exists():
        print(f"{final} exists")
        return final
    return LocalTrainer(load_config(TrainConfig, "scripts/configs/local_grpo.yaml", [
        f"model.path={model}", f"envs.urls=[{url}]", f"steps={config.grpo_steps}",
        f"seed={config.seed}", f"out_dir={out / 'grpo'}", "save_every=8"])).train()


def run_evals(out: Path, models: dict[str, Path], url: str) -> dict[str, dict[str, Any]]:
    """Held-out accuracy of each model: multi-turn retrieval, and the single-turn baselines
    with 8 and 16 uniform frames."""
    from vagen.eval.evaluate import EvalConfig, run

    data = str(out / "data" / "test" / "samples.jsonl")
    settings = {"multi": {"mode": "multi"}, "single8": {"mode": "single", "frames": 8},
                "single16": {"mode": "single", "frames": 16}}
    summaries = {}
    for name, model in models.items():
        for mode, extra in settings.items():
            if name == "sft" and mode == "single16":
                continue
            print(f"-- eval {name} {mode}")
            summaries[f"{name}/{mode}"] = run(EvalConfig(
                model=str(model), data=data, out=str(out / "eval" / f"{name}-{mode}"),
                protocol="retrieve", set=EVAL_SET, max_new_tokens=64, batch_size=16,
                server=url, **extra))
    return summaries


def write_report(out: Path, evals: dict[str, dict[str, Any]], timings: dict[str, float]) -> Path:
    """`report.md` with the eval table and training curves as PNGs."""
    sft = read_metrics(out / "sft" / "metrics.jsonl")
    grpo = read_metrics(out / "grpo" / "metrics.jsonl")
    plots = [
        plot(sft, ["sft/loss"], out / "sft_loss.png", "SFT warm start: loss"),
        plot(sft, ["sft/token_accuracy"], out / "sft_accuracy.png", "SFT: token accuracy"),
        plot(grpo, ["reward/mean", "reward/choice", "reward/format", "reward/format_penalty"],
             out / "grpo_reward.png", "GRPO: reward and its parts"),
        plot(grpo, ["rollout/accuracy", "rollout/request_rate", "rollout/invalid_action_rate"],
             out / "grpo_accuracy.png", "GRPO: accuracy, retrieval and invalid actions"),
        plot(grpo, ["rollout/turns", "rollout/frames_seen"], out / "grpo_turns.png",
             "GRPO: turns and frames seen per trajectory"),
    ]
    lines = ["# vagen quick start", "",
             "Tiny random-initialised Qwen2.5-VL (~0.7 M parameters, 56x56 frames) on "
             "synthetic colour questions: a shape is visible 8-12 s of a ~60 s video and "
             "turns another colour for 2-3 s. Multi-turn: 16 uniform frames, then one "
             "`<retrieve>` of up to 8 frames, then the answer.", "",
             "## Held-out accuracy", "",
             "| model | eval | accuracy | reward | format-valid turns | mean turns | frames seen "
             "| temporal IoU |",
             "|---|---|---|---|---|---|---|---|"]
    for key, summary in evals.items():
        overall = summary.get("overall", summary)
        lines.append(f"| {key.split('/')[0]} | {key.split('/')[1]} | "
                     f"{_fmt(overall.get('accuracy'))} | {_fmt(overall.get('mean_reward'))} | "
                     f"{_fmt(1 - (overall.get('invalid_action_rate') or 0))} | "
                     f"{_fmt(overall.get('mean_turns'))} | {_fmt(overall.get('frames_viewed'))} | "
                     f"{_fmt(overall.get('temporal_iou'))} |")
    before, after = (evals.get(f"{m}/multi", {}).get("overall", {}) for m in ("sft", "grpo"))
    if before and after:
        lines += ["", f"Held-out multi-turn reward (greedy): SFT {_fmt(before.get('mean_reward'))}"
                      f" -> GRPO {_fmt(after.get('mean_reward'))}; accuracy "
                      f"{_fmt(before.get('accuracy'))} -> {_fmt(after.get('accuracy'))}."]
    if grpo:
        quarter = max(1, len(grpo) // 4)
        early, late = (_mean_of(rows, "reward/mean") for rows in (grpo[:quarter],
                                                                   grpo[-quarter:]))
        lines += ["", f"GRPO training reward (sampled, mean of {quarter} steps): "
                      f"{_fmt(early)} over steps 1-{quarter} -> {_fmt(late)} over steps "
                      f"{len(grpo) - quarter + 1}-{len(grpo)}."]
    lines += ["", "## Training curves", ""]
    lines += [f"![{p.stem}]({p.name})" for p in plots if p is not None]
    lines += ["", "## Time (s)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {name} | {seconds:.0f} |" for name, seconds in timings.items()]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    (out / "report.json").write_text(json.dumps({"eval": evals, "timings": timings}, indent=1,
                                                default=str))
    return path


def _mean_of(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return sum(values) / len(values) if values else None


def plot(rows: list[dict[str, Any]], keys: list[str], path: Path, title: str) -> Path | None:
    """Metric curves against the step (missing keys are left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [k for k in keys if any(r.get(k) is not None for r in rows)]
    if not present:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key in present:
        points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        ax.plot(*zip(*points, strict=True), label=key, marker="." if len(points) < 40 else None)
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3f}"
