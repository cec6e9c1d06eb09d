"""A user's env in its own package (tests/fixtures/user_env, outside vagen) is found through
its `vagen.envs` entry point and plays in the env server, the local trainer and eval with no
edit to vagen."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vagen.data import Sample, save_samples
from vagen.env import check_env, list_envs, make_env
from vagen.testing import make_test_video

USER_ENV = Path(__file__).resolve().parents[1] / "fixtures" / "user_env"
GROUP = {"name": "glance", "env": "glance", "protocol": "single", "max_turns": 1,
         "initial_frames": 2, "pool_max_frames": 8, "max_pixels": 56 * 56,
         "max_new_tokens": 8, "n": 2}


@pytest.fixture
def user_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's package importable, as `pip install` would make it."""
    monkeypatch.syspath_prepend(str(USER_ENV))


@pytest.fixture(scope="module")
def samples_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("glance")
    make_test_video(root / "a.mp4", duration_s=4.0, fps=2)
    samples = [Sample(id=f"q{i}", videos=["a.mp4"], question="What colour is it?",
                      options=["red", "blue"], answer=answer, source="user")
               for i, answer in enumerate("AB")]
    return save_samples(samples, root / "samples.jsonl")


@pytest.fixture(scope="module")
def env_config(samples_path: Path) -> Path:
    path = samples_path.parent / "env_config.yaml"
    path.write_text(yaml.safe_dump([{**GROUP, "data": str(samples_path)}]))
    return path


def test_an_entry_point_env_is_listed_built_and_keeps_the_contracts(user_env, samples_path):
    assert "glance" in list_envs()
    env = make_env("glance", {**GROUP, "data": str(samples_path)})
    assert type(env).__module__ == "glance_env"
    check_env(env)
    env.reset(1)
    result = env.step("<answer>B</answer>")
    assert (result.reward, result.info["correct"], result.info["sample_id"]) == (1.0, True, "q1")


def test_an_unknown_env_lists_the_registered_ones(user_env):
    with pytest.raises(KeyError, match="unknown env 'glimpse'; registered: .*glance"):
        make_env("glimpse", {})


def test_vagen_server_plays_it_from_its_config(env_config: Path):
    """A real `vagen server` process that only has the user's package on its path."""
    from vagen.server.client import EnvClient

    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(USER_ENV), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-m", "vagen", "server", "--config",
                                str(env_config), "--port", "0"], env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("vagen server: listening on http://127.0.0.1:"), line
        with EnvClient(line.split()[4]) as client:
            client.create({"e": {"group": "glance"}})
            obs = client.reset({"e": 0})["e"]
            assert len(obs.frames) == 2 and obs.text.count("<image>") == 2
            result = client.step({"e": "<answer>A</answer>"})["e"]
            assert result.terminated and result.info["correct"] and result.reward == 1.0
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_local_trainer_trains_on_it(user_env, env_config: Path, tiny_model_path: Path,
                                        tmp_path: Path):
    from vagen.config import load_config
    from vagen.trainer.local import LocalTrainer, TrainConfig
    from vagen.trainer.logger import read_metrics

    config = load_config(TrainConfig, None, [
        f"model.path={tiny_model_path}", "model.device=cpu", f"envs.config={env_config}",
        "envs.group=glance", "prompts_per_step=2", "algo.n=2", "steps=1", "save_every=0",
        f"out_dir={tmp_path / 'run'}"])
    LocalTrainer(config).train()
    [row] = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert row["step"] == 1 and row["rollout/turns"] == 1.0
    assert row["rollout/frames_seen"] == 2.0


def test_eval_scores_a_checkpoint_on_it(user_env, samples_path: Path, tiny_model_path: Path,
                                        tmp_path: Path):
    from vagen.eval.evaluate import EvalConfig, run
    from vagen.eval.results import read_results

    settings = [f"{key}={value}" for key, value in GROUP.items() if key not in ("name", "n")]
    make_env("glance", {**GROUP, "data": str(samples_path)})
    built = sys.modules["glance_env"].GlanceEnv.built
    summary = run(EvalConfig(model=str(tiny_model_path), data=str(samples_path),
                             out=str(tmp_path / "eval"), protocol="single", set=settings,
                             batch_size=2, cpu_threads=1))
    results = read_results(tmp_path / "eval" / "results.jsonl")
    assert sorted(r["id"].split("/")[1] for r in results) == ["0", "1"]
    assert {r["frames_viewed"] for r in results} == {2}
    assert summary["overall"]["n"] == 2
    assert sys.modules["glance_env"].GlanceEnv.built > built  # the server built the user's env
