"""The quick start's `report.md` and `report.json`: the held-out table against the data's
single-turn ceiling, what GRPO added, where SFT clicked, the training curves, example
episodes as text and the time of each stage."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vagen.trainer.logger import read_metrics

CLICK_WINDOW = 50  # steps of the moving mean the SFT loss is read through
EXAMPLES = 3


def headline(evals: Mapping[str, Mapping[str, Any]]) -> dict[str, float | None]:
    """The numbers a run is judged by: held-out multi-turn accuracy of the SFT and final
    models, the single-turn baselines, the gap and what GRPO added."""
    def overall(key: str, metric: str = "accuracy") -> float | None:
        value = evals.get(key, {}).get("overall", {}).get(metric)
        return None if value is None else float(value)

    numbers = {"sft_multi": overall("sft/multi"), "final_multi": overall("grpo/multi"),
               "single8": overall("grpo/single8"), "single16": overall("grpo/single16"),
               "frames_viewed": overall("grpo/multi", "frames_viewed"),
               "evidence_seen": overall("grpo/multi", "evidence_seen"),
               "sft_evidence_seen": overall("sft/multi", "evidence_seen")}
    invalid = overall("grpo/multi", "invalid_action_rate")
    numbers["format_valid"] = None if invalid is None else 1 - invalid
    numbers["gap"] = _minus(numbers["final_multi"], numbers["single8"])
    numbers["grpo_delta"] = _minus(numbers["final_multi"], numbers["sft_multi"])
    return numbers


def click_step(rows: list[dict[str, Any]], key: str = "sft/loss",
               window: int = CLICK_WINDOW) -> int | None:
    """The step where the moving mean of the SFT loss fell fastest over `window` steps, past
    the first fall from the random start: where the copying circuits formed (a plateau, then
    a drop)."""
    values = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
    if len(values) < 4 * window:
        return None
    means = [sum(v for _, v in values[i - window:i]) / window
             for i in range(window, len(values) + 1)]
    # drops over `window` steps, skipping the first fall from the random start
    drops = {i: means[i - window] - means[i] for i in range(2 * window, len(means))}
    best = max(drops, key=drops.__getitem__)
    return int(values[best + window - 1][0])


def write_report(out: Path, evals: Mapping[str, Mapping[str, Any]],
                 timings: Mapping[str, float], config: Mapping[str, Any] | None = None,
                 views: Mapping[str, Path] | None = None) -> Path:
    """`report.md` (with PNG curves) and `report.json` in `out`; returns the markdown path."""
    sft = read_metrics(out / "sft" / "metrics.jsonl")
    grpo = read_metrics(out / "grpo" / "metrics.jsonl")
    numbers = headline(evals)
    numbers["sft_click_step"] = click_step(sft)
    ceiling = _ceiling(out)
    plots = [
        plot(sft, ["sft/loss"], out / "sft_loss.png", "SFT warm start: loss", log=True),
        plot(sft, ["sft/token_accuracy"], out / "sft_accuracy.png", "SFT: token accuracy"),
        plot(grpo, ["reward/mean", "reward/choice", "reward/format", "reward/format_penalty"],
             out / "grpo_reward.png", "GRPO: reward and its parts"),
        plot(grpo, ["rollout/accuracy", "rollout/request_rate", "rollout/invalid_action_rate"],
             out / "grpo_accuracy.png", "GRPO: accuracy, retrieval and invalid actions"),
        plot(grpo, ["rollout/turns", "rollout/frames_seen"], out / "grpo_turns.png",
             "GRPO: turns and frames seen per trajectory"),
    ]
    lines = ["# vagen quick start", "",
             "A tiny random-initialised Qwen2.5-VL on synthetic colour questions: a shape is on "
             "screen 4-6 s of a ~60 s video and turns another colour for 1-2 s. Multi-turn: 16 "
             "uniform frames (labelled by pool index), one `<retrieve>s,e</retrieve>` of up to 8 "
             "frames, then the answer. Single-turn: 8 or 16 uniform frames, then the answer.",
             "", *_table(evals, ceiling), "", *_summary_lines(numbers, ceiling, grpo),
             "", "## Training curves", ""]
    lines += [f"![{p.stem}]({p.name})" for p in plots if p is not None]
    if views:
        lines += ["", "## See what the agent looked at", "",
                  *(f"- [{title}]({page.relative_to(out)}): every episode's timeline, the "
                    "frames shown at each turn, the spans asked for, the policy's text and "
                    "rewards" for title, page in views.items())]
    lines += ["", "## Example episodes (final model, multi-turn, held out)", ""]
    lines += _examples(out)
    lines += ["", "## Time (s)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {name} | {seconds:.0f} |" for name, seconds in timings.items()]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    (out / "report.json").write_text(json.dumps(
        {"config": dict(config or {}), "headline": numbers, "ceiling": ceiling, "eval": evals,
         "timings": dict(timings)}, indent=1, default=str) + "\n")
    return path


def _table(evals: Mapping[str, Mapping[str, Any]], ceiling: Mapping[str, float]) -> list[str]:
    lines = ["## Held-out results (greedy)", "",
             "| model | eval | accuracy | data ceiling | evidence seen | format-valid turns | "
             "mean turns | frames seen | temporal IoU | reward |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    ceilings = {"single8": ceiling.get("uniform_8"), "single16": ceiling.get("uniform_16")}
    for key, summary in evals.items():
        model, mode = key.split("/")
        o = summary.get("overall", summary)
        invalid = o.get("invalid_action_rate")
        lines.append(f"| {model} | {mode} | {_fmt(o.get('accuracy'))} | "
                     f"{_fmt(ceilings.get(mode))} | {_fmt(o.get('evidence_seen'))} | "
                     f"{_fmt(None if invalid is None else 1 - invalid)} | "
                     f"{_fmt(o.get('mean_turns'))} | {_fmt(o.get('frames_viewed'))} | "
                     f"{_fmt(o.get('temporal_iou'))} | {_fmt(o.get('mean_reward'))} |")
    lines += ["", "Data ceiling: the share a perfect reader of those uniform frames gets right "
                  "(they show the change, else a guess among the 4 options), from "
                  "`data/test/summary.json`; a retrieval can see every change."]
    return lines


def _summary_lines(numbers: Mapping[str, Any], ceiling: Mapping[str, float],
                   grpo: list[dict[str, Any]]) -> list[str]:
    lines = [f"- Multi-turn accuracy: SFT {_fmt(numbers['sft_multi'])} -> GRPO "
             f"{_fmt(numbers['final_multi'])} ({_signed(numbers['grpo_delta'])}); "
             f"evidence seen {_fmt(numbers['sft_evidence_seen'])} -> "
             f"{_fmt(numbers['evidence_seen'])}.",
             f"- Gap to single-turn with 8 uniform frames: {_signed(numbers['gap'])} "
             f"(single-turn-8 {_fmt(numbers['single8'])}, its data ceiling "
             f"{_fmt(ceiling.get('uniform_8'))})."]
    if numbers.get("sft_click_step") is not None:
        lines.append(f"- SFT loss fell fastest around step {numbers['sft_click_step']} (the "
                     f"{CLICK_WINDOW}-step mean): where localisation clicked.")
    if grpo:
        quarter = max(1, len(grpo) // 4)
        early, late = (_mean_of(rows, "reward/mean") for rows in (grpo[:quarter],
                                                                   grpo[-quarter:]))
        lines.append(f"- GRPO training reward (sampled, mean of {quarter} steps): {_fmt(early)} "
                     f"over steps 1-{quarter} -> {_fmt(late)} over steps "
                     f"{len(grpo) - quarter + 1}-{len(grpo)}.")
    return lines


def _ceiling(out: Path) -> dict[str, float]:
    path = out / "data" / "test" / "summary.json"
    return json.loads(path.read_text()).get("ceiling", {}) if path.exists() else {}


def _examples(out: Path) -> list[str]:
    """The first held-out episodes of the final model as text: the question, the opening
    frames that showed the shape, each turn's text and whether it was right."""
    from vagen.data.sample import load_samples
    from vagen.eval.results import read_results

    results = read_results(out / "eval" / "grpo-multi" / "results.jsonl")[:EXAMPLES]
    samples_file = out / "data" / "test" / "samples.jsonl"
    if not results or not samples_file.exists():
        return ["(no multi-turn results)"]
    samples = {s.id: s for s in load_samples(samples_file)}
    lines = []
    for result in results:
        sample = samples[result["sample_id"]]
        carrier, change = _labels(sample)
        lines += [f"**{sample.question}** ({', '.join(sample.options or [])}; truth: "
                  f"{sample.answer}, {'right' if result['correct'] else 'wrong'})", "",
                  f"- opening frames showing the shape: {carrier}; pool frames showing the "
                  f"colour change: {change}"]
        lines += [f"- turn {turn}: `{text}`" for turn, text
                  in enumerate(result["responses"], start=1)]
        lines.append("")
    return lines


def _labels(sample: Any, opening: int = 16) -> tuple[str, str]:
    """Pool labels of the uniform opening frames inside the carrier's span, and of the pool
    frames inside the relevant spans (what a good request covers)."""
    from vagen.env.video_qa import VideoQAConfig
    from vagen.video.sampling import pool_times, uniform_indices

    durations = sample.extra.get("durations_s") or [sample.duration_s]
    pool = pool_times(durations[0], VideoQAConfig.pool_fps, VideoQAConfig.pool_max_frames)
    start, end = sample.extra["carrier_spans"][0][:2]
    carrier = [i for i in uniform_indices(len(pool), opening) if start <= pool[i] <= end]
    change = [i for i, t in enumerate(pool)
              if any(s[0] <= t <= s[1] for s in sample.relevant_spans or [])]
    return ", ".join(map(str, carrier)) or "none", ", ".join(map(str, change)) or "none"


def plot(rows: list[dict[str, Any]], keys: list[str], path: Path, title: str,
         log: bool = False) -> Path | None:
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
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _mean_of(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return sum(values) / len(values) if values else None


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f} points"


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3f}"
