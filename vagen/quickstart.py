"""`vagen quickstart`: the main job end to end on the embedded default, on CPU.

Synthetic colour questions -> the env server on 127.0.0.1 -> a tiny random Qwen2.5-VL ->
SFT warm start on oracle trajectories -> GRPO against the env server -> evaluation of the
single-turn baselines (8 and 16 uniform frames) and multi-turn retrieval on held-out
questions -> `report.md` with plots. Every stage skips work that is already done, so a
second run resumes. Runs from any folder: `out` is relative to the current one, the configs
are read from this checkout's `scripts/`."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vagen.config import load_config, parse_config_args
from vagen.quickstart_report import write_report

ROOT = Path(__file__).resolve().parents[1]
ENV_TEMPLATE = ROOT / "scripts" / "quickstart" / "env_config.yaml"
GRPO_CONFIG = ROOT / "scripts" / "configs" / "local_grpo.yaml"
TINY_MODEL = {"number_tokens": True}  # the default tiny model, labels 10-99 one token each
# The synthetic data: one ~60 s video a question; a 4-6 s carrier shape turns another
# colour for 1-2 s, so 8 uniform frames rarely see the change and the opening frames'
# labels around the carrier locate it.
SYNTH = {"kinds": ["color"], "min_duration_s": 56, "max_duration_s": 64, "min_carrier_s": 4,
         "max_carrier_s": 6, "min_detail_s": 1.0, "max_detail_s": 2.0, "distractors": 0}
EVALS = {"multi": "retrieve-test", "single8": "single-test", "single16": "single16-test"}
VIEWED_EVAL = ("grpo", "multi")  # the eval whose trajectories the viewer shows
# The SFT model is evaluated multi-turn only; the baselines are the final model's.
ALL_EVALS = ("sft/multi", *(f"grpo/{mode}" for mode in EVALS))
GROUP_OWN_KEYS = ("name", "data", "split", "n", "seed", "protocol")


@dataclass
class QuickstartConfig:
    out: str = field(default="runs/quickstart", metadata={
        "help": "run folder (relative to the current folder)"})
    seed: int = field(default=0, metadata={"help": "data and training seed"})
    train_samples: int = field(default=2000, metadata={"help": "synthetic training questions"})
    test_samples: int = field(default=200, metadata={"help": "held-out questions"})
    sft_steps: int = field(default=1400, metadata={"help": "SFT warm-start steps"})
    sft_batch_size: int = field(default=16, metadata={"help": "SFT sequences per step"})
    sft_lr: float = field(default=3e-3, metadata={"help": "SFT peak learning rate"})
    sft_warmup_steps: int = field(default=50, metadata={
        "help": "SFT warm-up steps (then linear decay)"})
    sft_groups: list[str] = field(
        default_factory=lambda: ["retrieve-train", "retrieve-train", "single-train"],
        metadata={"help": "SFT mix: env groups whose oracle episodes to imitate (a group "
                          "listed twice weighs twice)"})
    grpo_steps: int = field(default=40, metadata={"help": "GRPO steps after SFT"})
    evals: list[str] = field(default_factory=lambda: list(ALL_EVALS), metadata={
        "help": "held-out evals to run, model/mode (the report leaves out the others; "
                "grpo/multi is the run's result and always runs)"})
    threads: int = field(default=2, metadata={
        "help": "torch threads of the training process (the env server idles during SFT)"})
    workers: int = field(default=2, metadata={
        "help": "processes writing the synthetic videos and decoding them for SFT"})

    def __post_init__(self) -> None:
        for key in ("train_samples", "test_samples", "sft_steps", "sft_batch_size",
                    "grpo_steps", "threads", "workers"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        unknown = [name for name in self.evals if name not in ALL_EVALS]
        if unknown or "/".join(VIEWED_EVAL) not in self.evals:
            raise ValueError(f"evals is {self.evals}; use some of {', '.join(ALL_EVALS)}, "
                             f"{'/'.join(VIEWED_EVAL)} among them")


def main(argv: list[str] | None = None) -> int:
    run(parse_config_args(argv, "vagen quickstart", __doc__.split("\n\n")[0],
                          QuickstartConfig))
    return 0


def run(config: QuickstartConfig) -> Path:
    """Every stage of the quick start into `config.out`; returns the report's path. Runs
    with `config.threads` torch threads, restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _run_stages(config)
    finally:
        torch.set_num_threads(threads)


def _run_stages(config: QuickstartConfig) -> Path:
    from vagen.server.launch import server_subprocess

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def stage(name: str, fn, *args):
        t0 = time.perf_counter()
        print(f"\n== {name}", flush=True)
        result = fn(*args)
        timings[name] = time.perf_counter() - t0
        return result

    env_config = stage("data", make_data, out, config)
    model = stage("tiny model", make_model, out)
    with server_subprocess(env_config, workers=2, log=out / "server.log") as url:
        print(f"env server at {url}")
        sft_model = stage("sft", run_sft, out, config, model, env_config)
        rl_model = stage("grpo", run_grpo, out, config, sft_model, env_config, url)
        evals = stage("eval", run_evals, out, env_config,
                      {"sft": sft_model, "grpo": rl_model}, url, config.evals)
    views = stage("view", build_views, out)
    timings["total"] = time.perf_counter() - started
    report = write_report(out, evals, timings, asdict(config), views)
    print(f"\nvagen quickstart: report in {report} ({timings['total'] / 60:.1f} min)")
    for title, page in views.items():
        print(f"trajectory viewer ({title}): {page}")
    return report


def build_views(out: Path) -> dict[str, Path]:
    """The trajectory viewer of the final model's held-out multi-turn eval (written by
    that eval) and of the trajectories GRPO kept as it trained."""
    from vagen.view import build_view, view_page

    return {"final model, held out, multi-turn": view_page(out / "eval" / "-".join(VIEWED_EVAL)),
            "GRPO training, by step": build_view(out / "grpo")}


def make_data(out: Path, config: QuickstartConfig) -> Path:
    """Train and test samples, their summaries, and `out/env_config.yaml`: the template's
    groups with their data under `out` (so runs with another `out` never share data)."""
    from vagen.data.sample import load_samples
    from vagen.data.synthetic import SynthConfig, format_summary, generate_dataset, summarize

    synth = SynthConfig(**SYNTH)
    for split, n, seed in (("train", config.train_samples, config.seed),
                           ("test", config.test_samples, config.seed + 1)):
        folder = out / "data" / split
        samples_file = folder / "samples.jsonl"
        if samples_file.exists():
            print(f"{folder} exists")
            samples = load_samples(samples_file)
        else:
            samples = generate_dataset(folder, n, seed, synth, progress=True,
                                       workers=config.workers)
        summary = summarize(samples, synth.pool_fps, synth.pool_max_frames,
                            retrieve_frames=synth.retrieve_frames)
        (folder / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        print(f"{split}: {format_summary(summary)}")
    return write_env_config(out, config)


def write_env_config(out: Path, config: QuickstartConfig) -> Path:
    import yaml

    from vagen.env.groups import load_env_groups

    sizes = {"train": config.train_samples, "test": config.test_samples}
    groups = []
    for group in load_env_groups(ENV_TEMPLATE).values():
        data = (out / group["data"]).resolve()
        groups.append({**group, "data": str(data), "n": sizes[group["split"]]})
    path = out / "env_config.yaml"
    path.write_text(f"# Written by vagen quickstart from {ENV_TEMPLATE.relative_to(ROOT)}\n"
                    + yaml.safe_dump({"env_groups": groups}, sort_keys=False))
    return path


def make_model(out: Path) -> Path:
    from vagen.testing import tiny_model_dir

    path = tiny_model_dir(out / "models", **TINY_MODEL)
    print(f"tiny Qwen2.5-VL in {path}")
    return path


def run_sft(out: Path, config: QuickstartConfig, model: Path, env_config: Path) -> Path:
    from vagen.trainer.sft import SFTConfig, train_sft

    final = out / "sft" / "final"
    if final.exists():
        print(f"{final} exists")
        return final
    return train_sft(load_config(SFTConfig, None, [
        f"model.path={model}", f"env_config={env_config}",
        f"groups=[{','.join(config.sft_groups)}]", f"steps={config.sft_steps}",
        f"batch_size={config.sft_batch_size}", f"lr={config.sft_lr}",
        f"warmup_steps={config.sft_warmup_steps}", "lr_schedule=linear",
        f"seed={config.seed}", f"decode_workers={config.workers}", f"out_dir={out / 'sft'}"]))


def run_grpo(out: Path, config: QuickstartConfig, model: Path, env_config: Path,
             url: str) -> Path:
    from vagen.trainer.local import LocalTrainer, TrainConfig

    final = out / "grpo" / "final"
    if final.exists():
        print(f"{final} exists")
        return final
    return LocalTrainer(load_config(TrainConfig, GRPO_CONFIG, [
        f"model.path={model}", f"envs.config={env_config}", f"envs.urls=[{url}]",
        f"steps={config.grpo_steps}", f"seed={config.seed}", f"out_dir={out / 'grpo'}",
        f"save_every={max(1, config.grpo_steps // 2)}"])).train()


def eval_settings(env_config: Path, group: str) -> tuple[str, str, list[str]]:
    """The samples file, protocol and `vagen eval --set` values that play `group` as it is
    configured (read from the group, never copied)."""
    from vagen.env.groups import load_env_groups

    values = load_env_groups(env_config)[group]
    settings = [f"{key}={json.dumps(value)}" for key, value in values.items()
                if key not in GROUP_OWN_KEYS]
    return values["data"], values["protocol"], settings


def run_evals(out: Path, env_config: Path, models: dict[str, Path], url: str,
              wanted: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Held-out accuracy of each model: multi-turn retrieval, and the single-turn baselines
    with 8 and 16 uniform frames (the `wanted` ones of ALL_EVALS)."""
    from vagen.eval.evaluate import EvalConfig, run

    summaries = {}
    for name, model in models.items():
        for mode, group in EVALS.items():
            if f"{name}/{mode}" not in (wanted or ALL_EVALS):
                continue
            data, protocol, settings = eval_settings(env_config, group)
            print(f"-- eval {name} {mode}")
            summaries[f"{name}/{mode}"] = run(EvalConfig(
                model=str(model), data=data, out=str(out / "eval" / f"{name}-{mode}"),
                protocol=protocol, set=settings, batch_size=32,
                server=url, view=(name, mode) == VIEWED_EVAL))
    return summaries
