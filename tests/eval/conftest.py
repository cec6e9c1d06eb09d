"""Fixtures for the eval tests: three synthetic grounded QA samples on short 32x32 MP4s, the
tiny Qwen2.5-VL saved like a checkpoint, and env settings small enough for seconds-long
episodes (4 opening frames, 2 per request, 2 turns, 56x56 frames)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vagen.data.synthetic import SAMPLES_FILE, SynthConfig, generate_dataset

NUM_SAMPLES = 3
# Env group settings every eval test plays with (`vagen eval --set ...`).
SETTINGS = ["initial_frames=4", "frames_per_turn=2", "max_turns=2", "pool_max_frames=16",
            "max_pixels=3136", "min_pixels=784", "max_new_tokens=8"]
SYNTH = SynthConfig(kinds=["color", "count"], min_duration_s=12, max_duration_s=16,
                    min_carrier_s=6, max_carrier_s=8, fps=2, size=32)


@pytest.fixture(scope="session")
def samples_path(tmp_path_factory) -> Path:
    """samples.jsonl (video paths relative to it) of color (choice) and count (number)
    questions with relevant spans."""
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, NUM_SAMPLES, seed=0, config=SYNTH)
    return root / SAMPLES_FILE


@pytest.fixture(scope="session")
def model_path(tiny_model_path: Path) -> Path:
    return tiny_model_path


def _result(id_, source, category, duration, correct, numeric, turns, frames, iou, invalid):
    return {"id": id_, "group": "multi" if turns > 1 else "single", "source": source,
            "category": category, "duration_s": duration, "correct": correct,
            "numeric_reward": numeric, "turns": turns, "frames_viewed": frames,
            "temporal_iou": iou, "invalid_actions": invalid,
            "reward": 0.1 + float(correct)}  # the episode's env reward: format + choice


@pytest.fixture
def results() -> list[dict]:
    """Four hand-made result rows: two sources, three categories, four duration buckets."""
    return [
        _result("a", "A", "x", 30.0, True, None, 1, 8, 0.5, 0),
        _result("b", "A", "y", 100.0, False, 0.964, 3, 12, None, 1),
        _result("c", "B", "x", 700.0, True, 1.0, 2, 10, 0.25, 0),
        _result("d", "B", "x", None, False, None, 2, 4, 0.0, 2),
    ]
