#!/usr/bin/env bash
# Multi-turn GRPO of Qwen2.5-VL-7B-Instruct on 8 GPUs: run_7B.sh with the video_grpo config
# (no critic; `grpo_turn` advantages over 8 rollouts per prompt; KL 0.001 as a loss).
#
#   MODEL_PATH=/models/Qwen2.5-VL-7B-Instruct bash scripts/video_ppo/run_7B_grpo.sh [--dry-run] [key=value ...]
set -euo pipefail
CONFIG_NAME=video_grpo exec bash "$(dirname "${BASH_SOURCE[0]}")/run_7B.sh" "$@"
