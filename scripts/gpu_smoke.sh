#!/usr/bin/env bash
# The largest part of the training path one GPU runs without vLLM or a Ray cluster:
# synthetic videos, a real env server (`vagen server`, /health), multi-turn rollouts of the
# policy on CUDA (HF backend) against it, `grpo_turn` advantages (the estimator
# video_grpo.yaml registers into verl) and optimizer steps on CUDA (`vagen train`).
# If verl is installed, it also composes and checks the verl configs against the model
# (`run_7B.sh --dry-run`), which reads the model's config as verl's trainer would.
#
#   bash scripts/gpu_smoke.sh                      # the tiny Qwen2.5-VL, built offline
#   MODEL_PATH=/models/Qwen2.5-VL-3B-Instruct LORA_RANK=16 bash scripts/gpu_smoke.sh
#
# Environment: MODEL_PATH (default: the tiny model), DEVICE (cuda; cpu to try the script
# without a GPU), STEPS (2), PROMPTS (4 per step, each played 4 times), LORA_RANK (0),
# DTYPE (float32 for the tiny model, else bfloat16), OUT (runs/gpu_smoke), PORT (5050).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python}"
DEVICE="${DEVICE:-cuda}"
STEPS="${STEPS:-2}"
PROMPTS="${PROMPTS:-4}"
LORA_RANK="${LORA_RANK:-0}"
OUT="${OUT:-runs/gpu_smoke}"
PORT="${PORT:-5050}"
started=$SECONDS

if [[ "$DEVICE" == cuda* ]]; then
    "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
        echo "gpu_smoke.sh: torch sees no CUDA device (DEVICE=cpu runs it on the CPU)" >&2
        exit 2
    }
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
"$PYTHON" -c "import torch, transformers; print(f'torch {torch.__version__}, transformers ' \
    f'{transformers.__version__}, cuda {torch.version.cuda}')"

if [[ -z "${MODEL_PATH:-}" ]]; then
    MODEL_PATH="$("$PYTHON" -c "from vagen.testing import tiny_model_dir; print(tiny_model_dir())")"
    DTYPE="${DTYPE:-float32}"
fi
DTYPE="${DTYPE:-bfloat16}"
echo "model: $MODEL_PATH ($DTYPE, lora_rank $LORA_RANK) on $DEVICE"

mkdir -p "$OUT"
if [[ ! -f "$OUT/data/samples.jsonl" ]]; then
    "$PYTHON" -m vagen data synth --out "$OUT/data" --n 32 --seed 0 --size 64
fi
cat > "$OUT/env_config.yaml" <<EOF
# written by scripts/gpu_smoke.sh: 2-turn retrieve episodes over its synthetic videos
env_groups:
  - {name: smoke-train, env: video_qa, protocol: retrieve, data: $OUT/data/samples.jsonl,
     split: train, n: 32, max_turns: 2, initial_frames: 8, frames_per_turn: 4,
     max_new_tokens: 48, max_pixels: 3136, prompt_example: false,
     rewards: {choice: 1.0, format: 0.2}}
EOF

"$PYTHON" -m vagen server --config "$OUT/env_config.yaml" --port "$PORT" --workers 4 \
    > "$OUT/env_server.log" 2>&1 &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null || true; wait $SERVER_PID 2>/dev/null || true' EXIT
"$PYTHON" -m vagen server wait "http://127.0.0.1:$PORT" --pid "$SERVER_PID" \
    --log "$OUT/env_server.log" --timeout 120

rm -rf "$OUT/train"
"$PYTHON" -m vagen train --config scripts/configs/local_grpo.yaml \
    "model.path=$MODEL_PATH" "model.device=$DEVICE" "model.dtype=$DTYPE" \
    "model.lora_rank=$LORA_RANK" "envs.config=$OUT/env_config.yaml" "envs.group=smoke-train" \
    "envs.urls=[http://127.0.0.1:$PORT]" "algo.adv_estimator=grpo_turn" "algo.n=4" \
    "prompts_per_step=$PROMPTS" "steps=$STEPS" "save_every=0" "out_dir=$OUT/train" \
    "algo.loss.entropy_coef=0.01"  # a gradient even when every reward ties (untrained model)

"$PYTHON" - "$OUT/train/metrics.jsonl" <<'EOF'
import json, math, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
keys = ["step", "reward/mean", "rollout/accuracy", "rollout/turns", "rollout/frames_seen",
        "actor/loss", "actor/grad_norm",
        "actor/skipped_step", "perf/step_s", "perf/tokens_per_s"]
for row in rows:
    print("  ".join(f"{k}={row[k]:.4g}" if isinstance(row.get(k), float) else f"{k}={row.get(k)}"
                    for k in keys if k in row))
bad = [k for row in rows for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
if bad:
    sys.exit(f"gpu_smoke.sh: non-finite metrics: {sorted(set(bad))}")
if not all(row["actor/grad_norm"] > 0 and row["actor/skipped_step"] == 0 for row in rows):
    sys.exit("gpu_smoke.sh: a step had no gradient or was skipped")
print(f"{len(rows)} training steps logged; all metrics finite, every step updated the model")
EOF
if [[ "$DEVICE" == cuda* ]]; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader || true
fi

if "$PYTHON" -c "import verl" 2>/dev/null; then
    MODEL_PATH="$MODEL_PATH" bash scripts/video_ppo/run_7B.sh --dry-run > "$OUT/verl_dry_run.txt"
    echo "verl: video_ppo composed and validated against $MODEL_PATH ($OUT/verl_dry_run.txt)"
else
    echo "verl: not installed here; its seams are covered by tests/trainer/verl on CPU"
fi
echo "gpu_smoke.sh: done in $((SECONDS - started)) s"
