"""run_eval.sh: writes the env data, starts `vagen server` on a free port, evaluates through
it and stops it, from a folder holding only an env config (as a fresh checkout would)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from tests.eval.conftest import SYNTH

SCRIPT = Path(__file__).resolve().parents[2] / "vagen" / "eval" / "run_eval.sh"
GROUP = {"env": "video_qa", "data": "data/synth/samples.jsonl", "split": "test", "n": 3,
         "initial_frames": 4, "frames_per_turn": 2, "pool_max_frames": 16, "max_pixels": 3136,
         "min_pixels": 784}


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=600)


def _env_config() -> dict:
    synthetic = {"out": "data/synth", "n": 3, "seed": 0, "kinds": SYNTH.kinds,
                 "min_duration_s": SYNTH.min_duration_s, "max_duration_s": SYNTH.max_duration_s,
                 "min_carrier_s": SYNTH.min_carrier_s, "max_carrier_s": SYNTH.max_carrier_s,
                 "fps": SYNTH.fps, "size": SYNTH.size}
    return {"synthetic": [synthetic], "env_groups": [
        {**GROUP, "name": "retrieve-test", "protocol": "retrieve", "max_turns": 2},
        {**GROUP, "name": "single-test", "protocol": "single", "max_turns": 1}]}


@pytest.mark.slow
def test_cpu_run_serves_evaluates_and_stops_the_server(tmp_path, verl_checkpoint):
    """Scored from a checkpoint in verl's layout: run_eval.sh merges it (verl's model
    merger, once per checkpoint) and evaluates the merged folder."""
    from vagen.trainer.verl.merge import MERGED

    step = verl_checkpoint
    (tmp_path / "env_config.yaml").write_text(yaml.safe_dump(_env_config()))
    done = _run(["--device", "cpu", "--model", str(step), "--n", "2", "--out", "out",
                 "--set", "max_new_tokens=8", "--cpu-threads", "1"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["model"] == str(step / "actor" / MERGED)
    assert {g: m["n"] for g, m in summary["by_group"].items()} == {"retrieve-test": 2,
                                                                   "single-test": 2}
    assert summary["by_group"]["single-test"]["mean_turns"] == 1.0
    assert summary["run"]["data"] == str(out / "data" / "test.parquet")
    assert len((out / "results.jsonl").read_text().splitlines()) == 4
    assert all((out / f"{name}.png").exists() for name in ("by_group", "by_duration"))
    url = re.search(r"env server at (http://127\.0\.0\.1:\d+)", done.stdout).group(1)
    assert "[run_eval] env server stopped" in done.stdout
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/health", timeout=2)


def test_bad_options_fail_before_anything_starts(tmp_path):
    done = _run(["--device", "tpu"], tmp_path)
    assert (done.returncode, done.stderr.strip()) == (
        2, "run_eval.sh: --device must be cuda or cpu, got 'tpu'")
    done = _run([], tmp_path)  # GPUs need a real checkpoint
    assert done.returncode == 2
    assert "give --model CHECKPOINT_DIR" in done.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_cpu_default_is_the_quick_starts_final_model_on_its_env_groups(tmp_path, model_path):
    quickstart = tmp_path / "runs" / "quickstart"
    (quickstart / "grpo").mkdir(parents=True)
    (quickstart / "grpo" / "final").symlink_to(model_path)
    (quickstart / "env_config.yaml").write_text(yaml.safe_dump(_env_config()))
    (tmp_path / "env_config.yaml").write_text("not: the one to use\n")
    done = _run(["--device", "cpu", "--n", "1", "--out", "out", "--set", "max_new_tokens=8",
                 "--cpu-threads", "1"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[run_eval] model: the quick start's final model at runs/quickstart/grpo/final" in (
        done.stdout)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["run"]["model"] == str(model_path.resolve())
    assert set(summary["by_group"]) == {"retrieve-test", "single-test"}
