"""The video QA env: config, action protocols, prompts; importing it registers "video_qa"."""

from vagen.env.video_qa.config import ConfigError, VideoQAConfig
from vagen.env.video_qa.env import VideoQAEnv, is_correct, load_env_samples

__all__ = ["ConfigError", "VideoQAConfig", "VideoQAEnv", "is_correct",
           "load_env_samples"]
