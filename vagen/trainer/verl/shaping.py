"""Video-MTR reward shaping in verl (`vagen.rewards: video_mtr`, weights under
`vagen.shaping`): the agent loop keeps what shaping needs from each turn's env info, and
`compute_advantage` (in the trainer process, which sees the whole batch, as the batch-level
exploration bonus needs) moves each turn's reward from the env's to the shaped one on the
turn's last policy token. Other terms verl added to `token_level_rewards` (a KL penalty)
stay."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from vagen.config import from_dict
from vagen.env.base import StepInfo
from vagen.rewards.shaping import ShapingConfig, shape_batch
from vagen.trainer.rewards import check_reward_source, shaping_record

TURN_INFOS = "vagen_turn_infos"  # extra field: per turn, the env info keys shaping reads
INFO_KEYS = (*StepInfo.required(), "action_type", "frames_iou", "initial_iou")


def turn_info(info: Mapping[str, Any]) -> dict[str, Any]:
    """The part of one step's env info that shaping reads."""
    return {key: info[key] for key in INFO_KEYS if key in info}


def shaping_config(vagen: Mapping[str, Any] | None) -> ShapingConfig | None:
    """The `vagen` config section -> the shaping to apply (None: the env's rewards)."""
    vagen = vagen or {}
    shaping = from_dict(ShapingConfig, dict(vagen.get("shaping") or {}), "vagen.shaping.")
    source = vagen.get("rewards", "env")
    check_reward_source(source, shaping, prefix="vagen.")
    return shaping if source == "video_mtr" else None


def shaped_token_rewards(token_level_rewards: torch.Tensor, response_mask: torch.Tensor,
                         turn_infos: Sequence[Sequence[Mapping[str, Any]]],
                         turn_scores: Sequence[Sequence[float]],
                         config: ShapingConfig) -> torch.Tensor:
    """`token_level_rewards` with each turn's env reward (`turn_scores`) replaced by its
    shaped reward on the turn's last policy token; turns are the runs of `response_mask`."""
    shaped = shape_batch([shaping_record(infos) for infos in turn_infos], config)
    out = token_level_rewards.clone()
    mask = response_mask.bool()
    after = torch.nn.functional.pad(mask[:, 1:], (0, 1), value=False)
    ends = mask & ~after
    for row, (new, old) in enumerate(zip(shaped.turn_rewards, turn_scores, strict=True)):
        positions = ends[row].nonzero().flatten().tolist()
        if not len(positions) == len(new) == len(old):
            raise ValueError(f"row {row}: {len(positions)} turns in response_mask but "
                             f"{len(old)} turn scores and {len(new)} turn infos")
        for position, reward, env_reward in zip(positions, new, old, strict=True):
            out[row, position] += reward - float(env_reward)
    return out
