"""Per-step logs users can plot: one JSON line per step, TensorBoard and wandb optional."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class LogConfig:
    tensorboard: bool = field(default=False, metadata={"help": "also write TensorBoard events"})
    wandb: bool = field(default=False, metadata={"help": "also log to wandb (if installed)"})
    project: str = field(default="vagen", metadata={"help": "wandb project"})


class StepLogger:
    """Appends `{"step": k, ...metrics}` to `metrics.jsonl` in the run folder."""

    def __init__(self, out_dir: Path, config: LogConfig | None = None,
                 run_config: dict[str, Any] | None = None) -> None:
        config = config or LogConfig()
        out_dir.mkdir(parents=True, exist_ok=True)
        self.path = out_dir / "metrics.jsonl"
        self._tb = None
        self._wandb = None
        if config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(out_dir / "tensorboard"))
        if config.wandb:
            import wandb

            self._wandb = wandb.init(project=config.project, dir=str(out_dir), config=run_config)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        clean = {k: _finite(v) for k, v in metrics.items()}
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **clean}) + "\n")
        if self._tb is not None:
            for key, value in clean.items():
                if value is not None:
                    self._tb.add_scalar(key, value, step)
        if self._wandb is not None:
            self._wandb.log(clean, step=step)

    def truncate_after(self, step: int) -> None:
        """Drop lines past `step` (a resumed run rewrites them)."""
        truncate_after(self.path, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def truncate_after(path: Path, step: int) -> None:
    """Drop the lines of a `{"step": k, ...}` JSONL file past `step`."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
