"""Fixtures every test package shares: one torch thread and one tiny model build."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from vagen.testing.tiny_model import tiny_model_dir


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The tiny model runs 5-20x faster on one thread than on several fighting over a busy
    2-core machine (next to env servers and decoders); restored at the end."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen2.5-VL, saved like a real checkpoint. Built next to pytest's per-run
    folders, so later runs reuse it (the folder name is a hash of its config)."""
    return tiny_model_dir(tmp_path_factory.getbasetemp().parent / "vagen-tiny-models")


@pytest.fixture(scope="session")
def verl_checkpoint(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model (weights doubled) saved in verl's FSDP checkpoint layout by verl's own
    checkpoint manager; eval and the merger tests share it (it is merged once)."""
    from tests.trainer.verl.checkpoints import write_verl_checkpoint

    return write_verl_checkpoint(tiny_model_path, tmp_path_factory.mktemp("verl-ckpt"))
