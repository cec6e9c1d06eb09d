"""verl's custom reward function (`reward.custom_reward_function.path:
pkg://vagen.trainer.verl.reward`, name `compute_score`) on `vagen.rewards`.

Our env agent loop scores trajectories itself (the env server returns each turn's reward), so
verl calls this only for rows it plays without an env: single-turn rows such as the verl-tool
video parquet or the `single` protocol played by verl's `single_turn_agent`."""

from __future__ import annotations

from typing import Any

import numpy as np

from vagen.env.video_qa.config import VideoQAConfig
from vagen.plain import plain
from vagen.rewards import combine

# What a row's `extra_info` may carry for the reward functions.
INFO_KEYS = ("options", "answer_type", "relevant_spans", "seen_times", "seen_video_ids")


def compute_score(data_source: str, solution_str: str, ground_truth: Any,
                  extra_info: dict | None = None, **_verl_kwargs: Any) -> dict[str, float]:
    """Weighted sum of `vagen.rewards` for one response, with each reward's unweighted part.

    Weights: `extra_info.rewards` ({name: weight}), else the env config's
    (`extra_info.config.rewards`), else the env default. A list of ground truths (verl-tool
    rows) scores against each and keeps the best. verl may pass reward-model kwargs, which
    rule-based rewards do not use. Returns `{"score": total, <reward name>: part, ...}`;
    verl logs every key."""
    info = plain(dict(extra_info or {}))
    reward = combine(_weights(info))
    reward_info = {key: info[key] for key in INFO_KEYS if info.get(key) is not None}
    truths = plain(ground_truth)
    truths = truths if isinstance(truths, list) and truths else [truths]
    scored = [reward.parts(solution_str, str(truth), reward_info) for truth in truths]
    totals = [reward.total(parts) for parts in scored]
    best = int(np.argmax(totals))
    return {"score": totals[best], **scored[best]}


def _weights(info: dict[str, Any]) -> dict[str, float]:
    weights = info.get("rewards") or (info.get("config") or {}).get("rewards")
    if weights is None:
        return VideoQAConfig().rewards
    if not isinstance(weights, dict):
        raise ValueError(f"extra_info.rewards must be a mapping {{name: weight}}, got {weights!r}")
    return weights

