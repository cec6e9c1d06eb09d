"""Checkpoints that resume exactly: model weights, value head, optimizer, step and RNG
states. A resumed run's next step matches an uninterrupted run's (same seeds, same weights)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import torch

STATE_FILE = "trainer_state.pt"


class CheckpointManager:
    """`root/step_000010/trainer_state.pt`, keeping the newest `keep`."""

    def __init__(self, root: Path, keep: int = 2) -> None:
        self.root = Path(root)
        self.keep = max(1, keep)

    def latest(self) -> Path | None:
        done = sorted(p for p in self.root.glob("step_*") if (p / STATE_FILE).exists())
        return done[-1] if done else None

    def save(self, step: int, policy, optimizer: torch.optim.Optimizer) -> Path:
        folder = self.root / f"step_{step:06d}"
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        state = {
            "step": step,
            "model": {k: v for k, v in policy.model.state_dict().items()},
            "value_head": None if policy.value_head is None else policy.value_head.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": {"python": random.getstate(), "numpy": np.random.get_state(),
                    "torch": torch.get_rng_state()},
        }
        torch.save(state, tmp / STATE_FILE)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)  # a crash mid-save never leaves a half checkpoint behind
        for old in sorted(self.root.glob("step_*"))[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return folder

    def restore(self, resume: str, policy, optimizer: torch.optim.Optimizer) -> int:
        """Load per `resume` (auto | none | a folder); returns the step to continue from."""
        if resume == "none":
            return 0
        folder = self.latest() if resume == "auto" else Path(resume)
        if folder is None:
            return 0
        path = folder / STATE_FILE
        if not path.exists():
            raise FileNotFoundError(f"resume={resume!r}: no {STATE_FILE} in {folder}")
        state = torch.load(path, map_location=policy.device, weights_only=False)
        policy.model.load_state_dict(state["model"])
        if policy.value_head is not None and state["value_head"] is not None:
            policy.value_head.load_state_dict(state["value_head"])
        optimizer.load_state_dict(state["optimizer"])
        random.setstate(state["rng"]["python"])
        np.random.set_state(state["rng"]["numpy"])
        torch.set_rng_state(state["rng"]["torch"])
        print(f"resumed from {folder} (step {state['step']})")
        return int(state["step"])
