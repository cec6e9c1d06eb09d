"""The verl run's per-trajectory budgets, computed from the env groups it trains on: how many
images vLLM must accept per prompt, and whether the prompt and response lengths hold the
frames and the policy's turns. Checked before Ray starts, naming the keys to change."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, open_dict

from vagen.env import load_env_groups
from vagen.env.video_qa.config import VideoQAConfig
from vagen.video.pool import PoolConfig

LIMIT_KEY = "actor_rollout_ref.rollout.engine_kwargs.vllm.limit_mm_per_prompt"


def pixels_per_token_side(model_path: str) -> int:
    """The side in pixels of one image token: the processor's patch size x merge size (28
    for Qwen2.5-VL, 32 for Qwen3-VL); the frame pool's default grid when the model is not
    local."""
    config = Path(model_path).expanduser() / "preprocessor_config.json"
    if not config.is_file():
        return PoolConfig.image_factor
    values = json.loads(config.read_text())
    return int(values.get("patch_size", 14)) * int(values.get("merge_size", 2))


def fit_to_env_groups(config: DictConfig) -> None:
    """Set `limit_mm_per_prompt.image` to the most frames an episode of `vagen.env_config`'s
    groups shows, and check that `data.max_prompt_length` holds the opening frames and
    `data.max_response_length` the later frames plus every turn's tokens; a ValueError names
    both sides otherwise."""
    path = config.vagen.env_config
    groups = [VideoQAConfig.from_dict(group) for group in load_env_groups(path).values()]
    side = pixels_per_token_side(str(config.actor_rollout_ref.model.path))
    images = 0
    for group in groups:
        context = group.context()
        frames = group.initial_frames + (context.max_turns - 1) * group.frames_per_turn
        images = max(images, frames)
        frame_tokens = max(1, group.max_pixels // (side * side))
        opening = group.initial_frames * frame_tokens
        if opening > config.data.max_prompt_length:
            raise ValueError(
                f"data.max_prompt_length={config.data.max_prompt_length} cannot hold env group "
                f"'{group.name}''s opening frames: initial_frames={group.initial_frames} x "
                f"{frame_tokens} tokens (max_pixels={group.max_pixels}) = {opening}")
        later = ((context.max_turns - 1) * group.frames_per_turn * frame_tokens
                 + context.max_turns * context.max_new_tokens)
        if later > config.data.max_response_length:
            raise ValueError(
                f"data.max_response_length={config.data.max_response_length} cannot hold env "
                f"group '{group.name}''s later turns: (max_turns-1)={context.max_turns - 1} x "
                f"frames_per_turn={group.frames_per_turn} x {frame_tokens} frame tokens + "
                f"max_turns={context.max_turns} x max_new_tokens={context.max_new_tokens} = "
                f"{later} tokens before any text; raise it or lower those group keys")
    limits = config.actor_rollout_ref.rollout.engine_kwargs.vllm.get("limit_mm_per_prompt")
    asked = (limits or {}).get("image")
    if asked is not None and asked < images:
        raise ValueError(f"{LIMIT_KEY}.image={asked} is below the {images} frames an episode "
                         f"of {path} shows (initial_frames + (max_turns-1) x frames_per_turn); "
                         "leave it unset: it is computed from the env groups")
    with open_dict(config):
        config.actor_rollout_ref.rollout.engine_kwargs.vllm.limit_mm_per_prompt = {
            "image": asked or images}
