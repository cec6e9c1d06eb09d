"""The quick start's report: what a user reads after `bash scripts/quickstart.sh`."""

from __future__ import annotations

import json
from pathlib import Path

from vagen.quickstart import write_report


def _metrics(path: Path, rows: list[dict]) -> None:
    path.mkdir(parents=True)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_report_tables_held_out_reward_and_smooths_the_training_reward(tmp_path: Path) -> None:
    _metrics(tmp_path / "sft", [{"step": s, "sft/loss": 2.0 / s, "sft/token_accuracy": 0.1 * s}
                                for s in range(1, 5)])
    rewards = [0.0, 0.2, 0.1, 0.3, 0.5, 0.4, 0.6, 0.8]  # quarters: steps 1-2 and 7-8
    _metrics(tmp_path / "grpo", [{"step": s, "reward/mean": r, "rollout/accuracy": r / 2,
                                  "rollout/turns": 2.0} for s, r in enumerate(rewards, 1)])
    evals = {"sft/multi": {"overall": {"accuracy": 0.19, "mean_reward": 0.31,
                                       "invalid_action_rate": 0.25, "mean_turns": 2.0,
                                       "frames_viewed": 24.0, "temporal_iou": 0.04}},
             "grpo/multi": {"overall": {"accuracy": 0.27, "mean_reward": 0.35}}}
    report = write_report(tmp_path, evals, {"sft": 10.0, "total": 12.0})
    text = report.read_text()
    assert "| sft | multi | 0.190 | 0.310 | 0.750 | 2.000 | 24.000 | 0.040 |" in text
    assert ("Held-out multi-turn reward (greedy): SFT 0.310 -> GRPO 0.350; accuracy 0.190 -> "
            "0.270.") in text
    assert "0.100 over steps 1-2 -> 0.700 over steps 7-8" in text
    for png in ("sft_loss", "grpo_reward", "grpo_accuracy", "grpo_turns"):
        assert f"![{png}]({png}.png)" in text and (tmp_path / f"{png}.png").exists()
    assert "| sft | 10 |" in text
