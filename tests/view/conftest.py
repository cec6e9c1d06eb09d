"""A small real eval run of the tiny model (three synthetic samples, multi mode, greedy),
whose results.jsonl the viewer tests build pages from."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.eval.conftest import SETTINGS, SYNTH
from vagen.data.synthetic import SAMPLES_FILE, generate_dataset


@pytest.fixture(scope="session")
def eval_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path) -> Path:
    """The eval folder (results.jsonl, summary, view/) of the tiny model on 3 samples."""
    from vagen.eval.evaluate import EvalConfig, run

    root = tmp_path_factory.mktemp("view-data")
    generate_dataset(root, 3, seed=1, config=SYNTH)
    out = tmp_path_factory.mktemp("view-eval") / "multi"
    run(EvalConfig(model=str(tiny_model_path), data=str(root / SAMPLES_FILE), out=str(out),
                   set=[*SETTINGS, "max_turns=3"], batch_size=3, cpu_threads=1,
                   temperature=1.0, seed=3))
    return out
