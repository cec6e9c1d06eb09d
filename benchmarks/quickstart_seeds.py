"""The quick start over several seeds (data and training seeds together), one after the
other, each as its own `vagen quickstart` process; prints per seed and mean/range what the
README quotes, with the targets next to them.

    python benchmarks/quickstart_seeds.py                   # seeds 0 1 2 in runs/quickstart-seeds
    python benchmarks/quickstart_seeds.py --seeds 3 4 --out /tmp/qs sft_steps=1200

Extra `key=value` arguments go to every quick start. A seed whose report exists is not run
again (delete its folder to rerun it)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

COLUMNS = (  # report.json headline key, column title, scale (100: percent)
    ("sft_multi", "multi SFT", 100), ("final_multi", "multi final", 100),
    ("single8", "single-8", 100), ("single16", "single-16", 100), ("gap", "gap", 100),
    ("grpo_delta", "GRPO delta", 100), ("evidence_seen", "evidence seen", 100),
    ("frames_viewed", "frames", 1), ("format_valid", "format-valid", 1),
    ("minutes", "minutes", 1))
TARGETS = ("targets: multi final >= 90 on average and >= 85 every seed; format-valid >= 0.98; "
           "gap >= 45 points; GRPO delta >= 15 points; minutes <= 12")


def run_seed(seed: int, out: Path, extra: list[str]) -> dict:
    """The headline of one quick start (run now unless its report exists)."""
    folder = out / f"seed{seed}"
    report = folder / "report.json"
    if not report.exists():
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        subprocess.run([sys.executable, "-m", "vagen", "quickstart", f"out={folder}",
                        f"seed={seed}", *extra], check=True, env=env)
    data = json.loads(report.read_text())
    return {**data["headline"], "minutes": data["timings"]["total"] / 60}


def table(rows: dict[int, dict]) -> str:
    """Per seed, then the mean and the range of each column."""
    def cell(value: float | None, scale: int) -> str:
        return "-" if value is None else f"{value * scale:.1f}" if scale == 100 else f"{value:.2f}"

    lines = ["| seed | " + " | ".join(title for _, title, _ in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for seed, row in rows.items():
        lines.append(f"| {seed} | " + " | ".join(cell(row.get(k), s) for k, _, s in COLUMNS)
                     + " |")
    for name, reduce in (("mean", lambda v: sum(v) / len(v)),
                         ("range", lambda v: (min(v), max(v)))):
        cells = []
        for key, _, scale in COLUMNS:
            values = [row[key] for row in rows.values() if row.get(key) is not None]
            if not values:
                cells.append("-")
            elif name == "mean":
                cells.append(cell(reduce(values), scale))
            else:
                low, high = reduce(values)
                cells.append(f"{cell(low, scale)}-{cell(high, scale)}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart-seeds"))
    parser.add_argument("overrides", nargs="*", help="key=value for every quick start")
    args = parser.parse_args(argv)
    rows = {seed: run_seed(seed, args.out, args.overrides) for seed in args.seeds}
    print("\nvagen quick start over seeds " + " ".join(map(str, args.seeds))
          + " (accuracies and gaps in percent, held out, greedy)")
    print(table(rows))
    print(TARGETS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
