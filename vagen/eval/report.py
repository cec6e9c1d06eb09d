"""Evaluation report files: `summary.json` (the numbers), `summary.md` (the same as markdown
tables) and one PNG per breakdown (env group, source, category, duration bucket). Plots use
matplotlib's object API (`Figure`, Agg canvas), so no display or pyplot state is needed."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vagen.eval.metrics import BREAKDOWNS

SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
# column title, metric key, format
COLUMNS = (("n", "n", "{:d}"), ("accuracy", "accuracy", "{:.1%}"),
           ("numeric reward", "numeric_reward", "{:.3f}"), ("reward", "mean_reward", "{:.3f}"),
           ("turns", "mean_turns", "{:.2f}"),
           ("frames viewed", "frames_viewed", "{:.1f}"),
           ("frames p90", "frames_viewed_p90", "{:.1f}"),
           ("visual tokens", "visual_tokens", "{:.0f}"),
           ("tokens p90", "visual_tokens_p90", "{:.0f}"),
           ("temporal IoU", "temporal_iou", "{:.3f}"),
           ("evidence seen", "evidence_seen", "{:.1%}"),
           ("invalid actions", "invalid_action_rate", "{:.1%}"))
# metric key, axis title, upper limit (None: fit)
PLOTTED = (("accuracy", "accuracy", 1.0), ("temporal_iou", "temporal IoU", 1.0),
           ("frames_viewed", "frames viewed", None), ("mean_turns", "turns", None))
MISSING = "–"
BUDGET_PNG = "accuracy_vs_frames.png"


def write_report(out_dir: str | Path, summary: Mapping[str, Any],
                 run: Mapping[str, Any] | None = None) -> list[Path]:
    """Write summary.json, summary.md and `by_<breakdown>.png`; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / SUMMARY_JSON
    json_path.write_text(json.dumps({"run": dict(run or {}), **summary}, indent=2) + "\n")
    md_path = out_dir / SUMMARY_MD
    md_path.write_text(markdown(summary, run))
    plots = [plot_breakdown(summary[name], out_dir / f"{name}.png", title)
             for title, name in BREAKDOWNS.items() if summary.get(name)]
    if summary.get("by_group"):
        plots.append(plot_budget(summary["by_group"], out_dir / BUDGET_PNG))
    return [json_path, md_path, *plots]


def markdown(summary: Mapping[str, Any], run: Mapping[str, Any] | None = None) -> str:
    """The summary as markdown: the run's settings, then one table per breakdown."""
    lines = ["# Evaluation summary", ""]
    if run:
        lines += [f"- {key}: `{value}`" for key, value in run.items()] + [""]
    lines += ["## Overall", "", *table({"all": summary["overall"]}, "")]
    for title, name in BREAKDOWNS.items():
        if summary.get(name):
            lines += ["", f"## By {title}", "", *table(summary[name], title)]
    failed = summary.get("failed_episodes") or {}
    if failed.get("n"):
        reasons = ", ".join(f"{reason}: {n}" for reason, n in failed["by_reason"].items())
        lines += ["", "## Failed episodes", "",
                  f"{failed['n']} episodes could not be played and are left out of the tables "
                  f"above ({reasons}); results.jsonl holds each error."]
    return "\n".join(lines) + "\n"


def table(groups: Mapping[str, Mapping[str, Any]], label: str) -> list[str]:
    """Markdown table rows: one per group, one column per metric ("–" where undefined)."""
    header = [label or "samples", *(title for title, _, _ in COLUMNS)]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for group, metrics in groups.items():
        cells = [fmt.format(metrics[key]) if metrics.get(key) is not None else MISSING
                 for _, key, fmt in COLUMNS]
        rows.append("| " + " | ".join([group, *cells]) + " |")
    return rows


def plot_breakdown(groups: Mapping[str, Mapping[str, Any]], path: Path, title: str) -> Path:
    """Bar charts of accuracy, temporal IoU, frames viewed and turns per group."""
    from matplotlib.figure import Figure

    labels = list(groups)
    width = max(8.0, 0.5 * len(labels) + 4)
    figure = Figure(figsize=(width, 7), layout="constrained")
    figure.suptitle(f"Evaluation by {title}")
    for axes, (key, axis_title, top) in zip(figure.subplots(2, 2).flat, PLOTTED, strict=True):
        values = [groups[label].get(key) for label in labels]
        bars = axes.bar(range(len(labels)), [0.0 if v is None else v for v in values],
                        color=["lightgray" if v is None else "tab:blue" for v in values])
        axes.bar_label(bars, [MISSING if v is None else f"{v:.2f}" for v in values],
                       fontsize=7)
        ticks = [f"{label}\n(n={groups[label]['n']})" for label in labels]
        axes.set_xticks(range(len(labels)), ticks, rotation=30 if len(labels) > 3 else 0,
                        ha="right" if len(labels) > 3 else "center", fontsize=8)
        axes.set_title(axis_title)
        if top is not None:
            axes.set_ylim(0, top)
    figure.savefig(path, dpi=100)
    return path


def plot_budget(groups: Mapping[str, Mapping[str, Any]], path: Path) -> Path:
    """Accuracy against frames viewed per env group (a single-turn baseline of N uniform
    frames, a multi-turn group): runs compare at equal visual budget. A bar from the mean
    to the p90 of frames viewed shows how the budget spreads over episodes."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 5), layout="constrained")
    axes = figure.subplots()
    for label, metrics in groups.items():
        frames, accuracy = metrics.get("frames_viewed"), metrics.get("accuracy")
        if frames is None or accuracy is None:
            continue
        p90 = metrics.get("frames_viewed_p90") or frames
        axes.errorbar([frames], [accuracy], xerr=[[0.0], [p90 - frames]], fmt="o", capsize=3)
        axes.annotate(f"{label} (n={metrics['n']})", (frames, accuracy),
                      textcoords="offset points", xytext=(6, 6), fontsize=8)
    axes.set_xlabel("frames viewed per episode (mean; bar to p90)")
    axes.set_ylabel("accuracy")
    axes.set_ylim(0, 1.05)
    axes.set_xlim(left=0)
    axes.set_title("Accuracy against visual budget, by env group")
    figure.savefig(path, dpi=100)
    return path
