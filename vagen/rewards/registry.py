"""Rewards by name, after verl's core_algos: `@register_reward("name")` on a pure function
`(response, ground_truth, info=None) -> float`; duplicates are rejected and unknown names
list the valid ones. Every call goes through one wrapper, which is where the
`DEBUG_MODE=true LOG_PATH=file` JSON line per scoring is written (not in each function)."""

from __future__ import annotations

import functools
import json
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from vagen.registry import Registry

RewardFn = Callable[..., float]
_REWARDS: Registry[RewardFn] = Registry("reward")
_LOG_LOCK = threading.Lock()  # env servers score from several threads


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
    """Decorator: `@register_reward("choice")`. Returns the logged wrapper, so direct calls
    and `get_reward` calls behave the same."""

    def decorator(fn: RewardFn) -> RewardFn:
        return _REWARDS.add(name, _with_debug_log(name, fn))

    return decorator


def get_reward(name: str) -> RewardFn:
    """The registered reward `name`: `fn(response: str, ground_truth, info=None) -> float`."""
    return _REWARDS.get(name)


def list_rewards() -> list[str]:
    return _REWARDS.names()


class CombinedReward:
    """A weighted sum of registered rewards with the same signature as one reward.

    `parts(...)` gives each reward's unweighted score (what logs and env infos report);
    `total(parts)` weighs them, so a caller that needs both scores each reward once."""

    def __init__(self, weights: Mapping[str, float]) -> None:
        if not weights:
            raise ValueError("rewards: give at least one {name: weight}, e.g. {'choice': 1.0}")
        for name, weight in weights.items():
            get_reward(name)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                    or not math.isfinite(weight):
                raise ValueError(f"rewards.{name}: weight must be a finite number, got {weight!r}")
        self.weights = {name: float(w) for name, w in weights.items()}

    def parts(self, response: str, ground_truth: Any, info: dict | None = None) -> dict[str, float]:
        return {name: get_reward(name)(response, ground_truth, info) for name in self.weights}

    def total(self, parts: Mapping[str, float]) -> float:
        return sum(self.weights[name] * parts[name] for name in self.weights)

    def __call__(self, response: str, ground_truth: Any, info: dict | None = None) -> float:
        return self.total(self.parts(response, ground_truth, info))

    def __repr__(self) -> str:
        return f"CombinedReward({self.weights})"


def combine(weights: Mapping[str, float]) -> CombinedReward:
    """One reward that sums `weight * reward(name)` over `weights` (the env config's
    `rewards: {name: weight}`)."""
    return CombinedReward(weights)


def debug_log_path() -> str | None:
    """Where scorings are logged: LOG_PATH when DEBUG_MODE is true, else None."""
    if os.environ.get("DEBUG_MODE", "").strip().lower() not in ("true", "1", "yes"):
        return None
    path = os.environ.get("LOG_PATH", "").strip()
    if not path:
        raise ValueError("DEBUG_MODE=true needs LOG_PATH=<file> to append the reward log to")
    return path


def _with_debug_log(name: str, fn: RewardFn) -> RewardFn:
    @functools.wraps(fn)
    def scored(response: str, ground_truth: Any, info: dict | None = None) -> float:
        score = float(fn(response, ground_truth, info))
        path = debug_log_path()
        if path is not None:
            line = json.dumps({"time": time.time(), "reward": name, "score": score,
                               "response": response, "ground_truth": ground_truth,
                               "info": info}, default=str)
            with _LOG_LOCK, open(path, "a") as f:
                f.write(line + "\n")
        return score

    return scored
