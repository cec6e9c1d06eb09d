"""`scripts/video_ppo/run_7B.sh --dry-run` (and its GRPO variant) on a machine without a GPU:
the commands it would run and the resolved training config."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
SCRIPTS = ROOT / "scripts" / "video_ppo"


def dry_run(script: str, env: dict[str, str]) -> subprocess.Popen:
    base = {k: v for k, v in os.environ.items() if k not in ("MODEL_PATH", "RAY_ADDRESS")}
    return subprocess.Popen(["bash", str(SCRIPTS / script), "--dry-run", "trainer.save_freq=7"],
                            env={**base, **env}, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture(scope="module")
def runs(model_dir):
    """Both dry runs at once (each pays verl's import): PPO with the tiny model as
    MODEL_PATH, GRPO without MODEL_PATH and with three env servers on port 6000."""
    ppo = dry_run("run_7B.sh", {"MODEL_PATH": str(model_dir)})
    grpo = dry_run("run_7B_grpo.sh", {"NUM_ENV_SERVERS": "3", "ENV_PORT": "6000"})
    outputs = [p.communicate(timeout=600) for p in (ppo, grpo)]
    return [(p.returncode, *out) for p, out in zip((ppo, grpo), outputs, strict=True)]


def resolved_config(stdout: str) -> dict:
    return yaml.safe_load(stdout.split("# resolved config\n", 1)[1])


def test_ppo_dry_run_prints_the_commands_and_the_resolved_config(runs, model_dir):
    returncode, stdout, stderr = runs[0]
    assert returncode == 0, stderr
    assert "vagen data create --config" in stdout and "--out data/video_ppo" in stdout
    assert "vagen data convert --from videomtr" in stdout
    for port in (5000, 5001):
        assert f"vagen server --config {SCRIPTS / 'env_config.yaml'} --host 127.0.0.1 " \
               f"--port {port} --workers 8" in stdout
    config = resolved_config(stdout)
    assert config["actor_rollout_ref"]["model"]["path"] == str(model_dir)
    assert config["vagen"]["agent"]["env_servers"] == ["http://127.0.0.1:5000",
                                                       "http://127.0.0.1:5001"]
    assert config["algorithm"]["adv_estimator"] == "bi_level_gae"
    assert config["data"]["train_files"] == "data/video_ppo/train.parquet"
    assert config["trainer"]["save_freq"] == 7  # the command line's override
    assert "skipped" not in stderr  # verl's validate_config ran on the real model folder


def test_grpo_dry_run_without_model_path(runs):
    returncode, stdout, stderr = runs[1]
    assert returncode == 0, stderr
    assert "MODEL_PATH is not set" in stderr and "validate_config" in stderr
    config = resolved_config(stdout)
    assert config["algorithm"]["adv_estimator"] == "grpo_turn"
    assert config["vagen"]["agent"]["env_servers"] == [
        f"http://127.0.0.1:{port}" for port in (6000, 6001, 6002)]
    assert config["actor_rollout_ref"]["model"]["path"] == "/path/to/Qwen2.5-VL-7B-Instruct"


def test_a_real_run_needs_model_path():
    base = {k: v for k, v in os.environ.items() if k != "MODEL_PATH"}
    result = subprocess.run(["bash", str(SCRIPTS / "run_7B.sh")], env=base, cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "set MODEL_PATH" in result.stderr
