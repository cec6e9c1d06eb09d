"""Fixtures for the local-trainer tests: the tiny Qwen2.5-VL, four choice questions about two
short real MP4s, an env config with a `single` (answer-only) and a 2-turn `retrieve` group,
and a policy warm-started by a short SFT run on oracle answers.

The SFT warm start is what makes GRPO testable: a random model never writes a valid action,
so every sample of a prompt earns the same reward and GRPO's advantages are all zero. After
~16 SFT steps on `<think>it turned red</think><answer>A</answer>`-style oracle answers the
policy writes valid answers with varying letters, so the rewards within a group differ."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from vagen.data import Sample, save_samples
from vagen.testing import make_test_video

OPTIONS = ["red", "yellow", "blue"]
# (video, answer, relevant span start); every span lasts 3 s.
QUESTIONS = [("a", "A", 2.0), ("b", "B", 4.0), ("a", "C", 1.0), ("b", "B", 5.0)]
DURATIONS = {"a": 8.0, "b": 10.0}
GROUP = {"env": "video_qa", "n": len(QUESTIONS), "initial_frames": 3, "frames_per_turn": 2,
         "pool_max_frames": 10, "max_pixels": 56 * 56, "invalid_reward": "format",
         "max_new_tokens": 12,
         "rewards": {"choice": 1.0, "format": 0.5}}
SFT_STEPS = 16


@pytest.fixture(scope="session")
def env_config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """env_config.yaml with groups `single` (one answer turn) and `retrieve` (2 turns); 56x56
    frames (4 image tokens), 3 opening frames, 2 per request. Invalid actions earn their
    weighted format reward, so a half-right answer scores between a wrong and a right one."""
    import yaml

    root = tmp_path_factory.mktemp("trainer-data")
    for name, duration in DURATIONS.items():
        make_test_video(root / "videos" / f"{name}.mp4", duration_s=duration, fps=2)
    samples = [Sample(id=f"q{i}", videos=[f"videos/{video}.mp4"],
                      question="What colour did it turn?", options=OPTIONS, answer=answer,
                      relevant_spans=[[start, start + 3.0]], duration_s=DURATIONS[video],
                      source="test",
                      extra={"evidence": f"it turned {OPTIONS['ABC'.index(answer)]}"})
               for i, (video, answer, start) in enumerate(QUESTIONS)]
    data = str(save_samples(samples, root / "samples.jsonl"))
    groups = [{**GROUP, "name": "single", "protocol": "single", "max_turns": 1, "data": data},
              {**GROUP, "name": "retrieve", "protocol": "retrieve", "max_turns": 2,
               "data": data}]
    path = root / "env_config.yaml"
    path.write_text(yaml.safe_dump(groups))
    return path


@pytest.fixture(scope="session")
def sft_run(tiny_model_path: Path, env_config_path: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`vagen train sft` on the `single` group's oracle answers; returns its run folder
    (`metrics.jsonl`, `final/`)."""
    from vagen.cli import main

    out = tmp_path_factory.mktemp("sft")
    rc = main(["train", "sft", f"model.path={tiny_model_path}", "model.device=cpu",
               f"env_config={env_config_path}", "groups=[single]", f"steps={SFT_STEPS}",
               "batch_size=4", "lr=1e-2", f"out_dir={out}"])
    assert rc == 0
    return out


@pytest.fixture(scope="session")
def sft_steps() -> int:
    return SFT_STEPS


@pytest.fixture(scope="session")
def warm_model_path(sft_run: Path) -> Path:
    return sft_run / "final"


@pytest.fixture
def train_overrides(warm_model_path: Path, env_config_path: Path,
                    tmp_path: Path) -> Callable[..., list[str]]:
    """`key=value` overrides of a fast GRPO run on the warm policy (2 prompts x 2 samples,
    12 new tokens a turn as the groups say, one step, no checkpoints but the final one); extra
    overrides win."""

    def build(*extra: str) -> list[str]:
        return [f"model.path={warm_model_path}", "model.device=cpu",
                f"envs.config={env_config_path}", "envs.group=single", "prompts_per_step=2",
                "algo.n=2",
                "optim.lr=1e-3", "steps=1", "save_every=0", f"out_dir={tmp_path / 'run'}",
                *extra]

    return build


@pytest.fixture
def make_config(train_overrides: Callable[..., list[str]]) -> Callable[..., object]:
    """`make_config("algo.mode=ppo", ...)` -> a validated TrainConfig."""
    from vagen.config import load_config
    from vagen.trainer.local import TrainConfig

    def build(*extra: str) -> TrainConfig:
        return load_config(TrainConfig, None, train_overrides(*extra))

    return build
