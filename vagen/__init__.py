"""vagen: multi-turn RL for vision-language models on long-video QA."""

__version__ = "0.1.0"
