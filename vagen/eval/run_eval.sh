#!/usr/bin/env bash
# Score a checkpoint: start an env server on a free 127.0.0.1 port, wait for /health, run
# `vagen eval` against it, and stop the server on exit (also on Ctrl-C or an error).
#
#   bash vagen/eval/run_eval.sh --model CKPT [--data test.parquet]      # 4 GPUs, vLLM
#   bash vagen/eval/run_eval.sh --device cpu                            # tiny model, synthetic
#
# On cpu without --model it scores the quick start's final model with the quick start's env
# groups when runs/quickstart (or $VAGEN_QUICKSTART_OUT) holds one, else the untrained tiny
# model.
#
# Options (anything else goes to `vagen eval`, e.g. --mode single --frames 16 --groups g1,g2):
#   --model DIR      checkpoint folder: a Hugging Face one, or verl's global_step_N (merged
#                    once with verl's model merger into global_step_N/actor/huggingface_merged)
#                    (default on cpu: the quick start's final model, else the tiny test model)
#   --data FILE      env parquet or samples file (default: the synthetic test split, written
#                    to OUT/data by `vagen data create` from --config)
#   --config FILE    env config for the default data (default: ./env_config.yaml, else the
#                    one in this checkout); its data paths are relative to the current folder
#   --n N            default data: episodes per env group (default: all; 10 on cpu)
#   --out DIR        results folder; rerun with it to resume (default: runs/eval/<device>-<mode>)
#   --device D       cuda (default) or cpu
#   --gpus N         data-parallel workers, one per GPU (default 4; 1 on cpu)
#   --backend B      vllm (default on cuda) or hf (default on cpu)
#   --env-workers N  threads stepping envs in the server (default 8)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY=${PYTHON:-python3}

MODEL="" DATA="" CONFIG="" N="" OUT="" DEVICE=cuda GPUS="" BACKEND="" ENV_WORKERS=8 MODE=multi
PASS=()
need_value() { [ "$#" -ge 2 ] || { echo "run_eval.sh: $1 needs a value" >&2; exit 2; }; }
while [ "$#" -gt 0 ]; do
  case "$1" in
    --model|--data|--config|--n|--out|--device|--gpus|--backend|--env-workers) need_value "$@" ;;
  esac
  case "$1" in
    --model) MODEL=$2; shift 2 ;;
    --data) DATA=$2; shift 2 ;;
    --config) CONFIG=$2; shift 2 ;;
    --n) N=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --device) DEVICE=$2; shift 2 ;;
    --gpus) GPUS=$2; shift 2 ;;
    --backend) BACKEND=$2; shift 2 ;;
    --env-workers) ENV_WORKERS=$2; shift 2 ;;
    --mode) need_value "$@"; MODE=$2; PASS+=("$1" "$2"); shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' \
                 "${BASH_SOURCE[0]}"; exit 0 ;;
    *) PASS+=("$1"); shift ;;
  esac
done

case "$DEVICE" in
  cuda) GPUS=${GPUS:-4}; BACKEND=${BACKEND:-vllm}; DEFAULTS=() ;;
  # Tokens per turn come from the env group (the quick start's: 32). The untrained tiny
  # model never stops on its own, so its demo on other groups is cut to 32 too.
  cpu) GPUS=${GPUS:-1}; BACKEND=${BACKEND:-hf}; N=${N:-10}
       DEFAULTS=(--set max_new_tokens=32) ;;
  *) echo "run_eval.sh: --device must be cuda or cpu, got '$DEVICE'" >&2; exit 2 ;;
esac
OUT=${OUT:-runs/eval/$DEVICE-$MODE}

if [ -z "$MODEL" ]; then
  if [ "$DEVICE" != cpu ]; then
    echo "run_eval.sh: give --model CHECKPOINT_DIR (only --device cpu defaults to the tiny model)" >&2
    exit 2
  fi
  QUICKSTART=${VAGEN_QUICKSTART_OUT:-runs/quickstart}
  if [ -d "$QUICKSTART/grpo/final" ] && [ -f "$QUICKSTART/env_config.yaml" ]; then
    MODEL="$QUICKSTART/grpo/final"
    if [ -z "$DATA" ] && [ -z "$CONFIG" ]; then CONFIG="$QUICKSTART/env_config.yaml"; fi
    echo "[run_eval] model: the quick start's final model at $MODEL"
  else
    MODEL=$("$PY" -c "from vagen.testing.tiny_model import tiny_model_dir; print(tiny_model_dir())")
    echo "[run_eval] model: untrained tiny test model at $MODEL (run scripts/quickstart.sh to train one)"
  fi
fi
mkdir -p "$OUT"
# A verl checkpoint becomes its merged Hugging Face folder; any other folder stays as given.
MODEL=$("$PY" -m vagen.trainer.verl.merge "$MODEL")

if [ -z "$DATA" ]; then
  if [ -z "$CONFIG" ]; then
    CONFIG=env_config.yaml
    [ -f "$CONFIG" ] || CONFIG="$HERE/../../env_config.yaml"
  fi
  [ -f "$CONFIG" ] || { echo "run_eval.sh: env config '$CONFIG' not found; give --config or --data" >&2; exit 2; }
  echo "[run_eval] data: test split of $CONFIG${N:+ ($N episodes per group)} -> $OUT/data"
  "$PY" -m vagen data create --config "$CONFIG" --out "$OUT/data" ${N:+"n=$N"}
  DATA="$OUT/data/test.parquet"
fi

PORT=$("$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
URL="http://127.0.0.1:$PORT"
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    echo "[run_eval] env server stopped"
  fi
}
trap stop_server EXIT
trap 'exit 130' INT TERM

# The server reads only the samples files the rows name (their folders are its data roots).
ROOTS=()
while IFS= read -r folder; do ROOTS+=(--data-root "$folder"); done \
  < <("$PY" -m vagen.eval.rows "$DATA")
"$PY" -m vagen server --host 127.0.0.1 --port "$PORT" --workers "$ENV_WORKERS" \
  ${ROOTS[@]+"${ROOTS[@]}"} >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
echo "[run_eval] env server at $URL (pid $SERVER_PID, log $OUT/server.log)"
"$PY" -m vagen server wait "$URL" --pid "$SERVER_PID" --log "$OUT/server.log" --timeout 120 || {
  tail -n 20 "$OUT/server.log" >&2
  exit 1
}

"$PY" -m vagen eval --model "$MODEL" --data "$DATA" --out "$OUT" --server "$URL" \
  --device "$DEVICE" --backend "$BACKEND" --gpus "$GPUS" \
  ${DEFAULTS[@]+"${DEFAULTS[@]}"} ${PASS[@]+"${PASS[@]}"}
