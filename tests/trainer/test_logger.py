"""The per-step log: one JSON line per step that plotting scripts can read back, non-finite
values as null (not NaN, which is not JSON), lines past a resumed step dropped, and the same
scalars in TensorBoard when asked."""

from __future__ import annotations

import json
from pathlib import Path

from vagen.trainer.logger import LogConfig, StepLogger, read_metrics


def test_each_step_is_one_strict_json_line(tmp_path: Path) -> None:
    logger = StepLogger(tmp_path / "run")
    logger.log(1, {"reward/mean": 0.5, "actor/kl_loss": float("nan")})
    logger.log(2, {"reward/mean": 0.75, "actor/grad_norm": float("inf")})
    logger.close()
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line, parse_constant=lambda c: 1 / 0) for line in lines]  # no NaN
    assert rows == [{"step": 1, "reward/mean": 0.5, "actor/kl_loss": None},
                    {"step": 2, "reward/mean": 0.75, "actor/grad_norm": None}]
    assert read_metrics(tmp_path / "run" / "metrics.jsonl") == rows


def test_a_resumed_run_rewrites_the_steps_after_its_checkpoint(tmp_path: Path) -> None:
    logger = StepLogger(tmp_path)
    for step in (1, 2, 3):
        logger.log(step, {"reward/mean": float(step)})
    logger.close()
    resumed = StepLogger(tmp_path)
    resumed.truncate_after(1)  # the checkpoint was at step 1; steps 2-3 are played again
    resumed.log(2, {"reward/mean": 20.0})
    resumed.close()
    assert [(r["step"], r["reward/mean"]) for r in read_metrics(tmp_path / "metrics.jsonl")] == [
        (1, 1.0), (2, 20.0)]


def test_tensorboard_gets_the_finite_scalars(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = StepLogger(tmp_path, LogConfig(tensorboard=True))
    logger.log(1, {"reward/mean": 0.5, "actor/kl_loss": float("nan")})
    logger.log(2, {"reward/mean": 0.25})
    logger.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert events.Tags()["scalars"] == ["reward/mean"]
    assert [(e.step, e.value) for e in events.Scalars("reward/mean")] == [(1, 0.5), (2, 0.25)]
