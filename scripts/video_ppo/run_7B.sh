#!/usr/bin/env bash
# Multi-turn PPO of Qwen2.5-VL-7B-Instruct on 8 GPUs with verl 0.9.1, Video-MTR's recipe:
# 16 prompts per step, actor lr 1e-6, critic lr 1e-5, KL 0.001, prompt 4096 tokens, 512
# tokens per turn, temperature 0.7, 500 steps (vagen/trainer/verl/config/video_ppo.yaml).
#
#   MODEL_PATH=/models/Qwen2.5-VL-7B-Instruct bash scripts/video_ppo/run_7B.sh [--dry-run] [key=value ...]
#
# It converts the data (video-data-qv-nextgqa.yaml) and writes the verl parquet
# (env_config.yaml) when they are missing, starts NUM_ENV_SERVERS env servers, waits for
# their /health, trains, and stops the servers on exit. key=value pairs are Hydra overrides
# of the training config. --dry-run prints the commands and the resolved config and starts
# nothing (no GPU needed).
#
# Multi-node: start a Ray cluster (`ray start --head` here, `ray start --address=...` on
# the others), then run this script on the head with RAY_ADDRESS=auto NNODES=<nodes>
# VAGEN_SERVER_TOKEN=<secret>: the env servers then listen on all interfaces (the token
# guards them) and the agent loops on every node reach them at this node's address. URLs and
# token travel in the training config (vagen.agent), so nothing needs exporting on the other
# nodes; verl prints its config into train.log, so keep that log private.
#
# Environment: MODEL_PATH (required), CONFIG_NAME (video_ppo | video_grpo), N_GPUS (8),
# NNODES (1), NUM_ENV_SERVERS (2), ENV_PORT (first port, 5000), ENV_WORKERS (8 threads per
# server), ENV_CONFIG, DATA_CONFIG, DATA_DIR (data/video_ppo), VIDEO_ROOT, HEALTH_TIMEOUT_S
# (600), LOG_DIR (logs/video_ppo).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
cd "$ROOT"

CONFIG_NAME="${CONFIG_NAME:-video_ppo}"
N_GPUS="${N_GPUS:-8}"
NNODES="${NNODES:-1}"
NUM_ENV_SERVERS="${NUM_ENV_SERVERS:-2}"
ENV_PORT="${ENV_PORT:-5000}"
ENV_WORKERS="${ENV_WORKERS:-8}"
ENV_CONFIG="${ENV_CONFIG:-$SCRIPT_DIR/env_config.yaml}"
DATA_CONFIG="${DATA_CONFIG:-$SCRIPT_DIR/video-data-qv-nextgqa.yaml}"
DATA_DIR="${DATA_DIR:-data/video_ppo}"
HEALTH_TIMEOUT_S="${HEALTH_TIMEOUT_S:-600}"
LOG_DIR="${LOG_DIR:-logs/video_ppo}"
PYTHON="${PYTHON:-python}"

DRY_RUN=0
USER_OVERRIDES=()
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        -h|--help) sed -n '2,26p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) USER_OVERRIDES+=("$arg") ;;
    esac
done

if [[ -z "${MODEL_PATH:-}" ]]; then
    if [[ $DRY_RUN == 0 ]]; then
        echo "run_7B.sh: set MODEL_PATH to a local Qwen2.5-VL-7B-Instruct folder" >&2
        exit 2
    fi
    MODEL_PATH="/path/to/Qwen2.5-VL-7B-Instruct"
    echo "run_7B.sh: MODEL_PATH is not set; the dry run shows $MODEL_PATH" >&2
fi

# Where the env servers listen and where the agent loops find them.
ENV_HOST=127.0.0.1
ADVERTISE_HOST=127.0.0.1
SERVER_ARGS=()
if [[ -n "${RAY_ADDRESS:-}" && "$NNODES" -gt 1 ]]; then
    if [[ -z "${VAGEN_SERVER_TOKEN:-}" ]]; then
        echo "run_7B.sh: multi-node runs expose the env servers to the other nodes; set" \
             "VAGEN_SERVER_TOKEN to a secret every request must carry" >&2
        exit 2
    fi
    ENV_HOST=0.0.0.0
    ADVERTISE_HOST="${ADVERTISE_HOST_OVERRIDE:-$(hostname -I | awk '{print $1}')}"
    SERVER_ARGS=(--token "$VAGEN_SERVER_TOKEN")
fi
PORTS=()
URLS=()
for ((i = 0; i < NUM_ENV_SERVERS; i++)); do
    PORTS+=($((ENV_PORT + i)))
    URLS+=("http://$ADVERTISE_HOST:$((ENV_PORT + i))")
done
SERVER_LIST="[$(IFS=,; echo "${URLS[*]}")]"

# The data conversions of DATA_CONFIG, one "from<TAB>input<TAB>output" line each.
conversions() {
    "$PYTHON" - "$DATA_CONFIG" <<'EOF'
import sys
import yaml
config = yaml.safe_load(open(sys.argv[1]))
for item in config.get("convert", []):
    print("\t".join(str(item[key]) for key in ("from", "input", "output")))
EOF
}
VIDEO_ROOT="${VIDEO_ROOT:-$("$PYTHON" -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1])).get('video_root', ''))" "$DATA_CONFIG")}"

TRAIN=("$PYTHON" -m vagen.trainer.verl.main --config-name "$CONFIG_NAME")
OVERRIDES=("actor_rollout_ref.model.path=$MODEL_PATH"
       "data.train_files=$DATA_DIR/train.parquet"
       "data.val_files=$DATA_DIR/test.parquet"
       "vagen.agent.env_servers=$SERVER_LIST"
       "vagen.env_config=$ENV_CONFIG"
       "trainer.n_gpus_per_node=$N_GPUS"
       "trainer.nnodes=$NNODES"
       ${USER_OVERRIDES[@]+"${USER_OVERRIDES[@]}"})

if [[ $DRY_RUN == 1 ]]; then
    echo "# data (each when its output is missing)"
    while IFS=$'\t' read -r fmt input output; do
        echo "vagen data convert --from $fmt $input $output --video-root $VIDEO_ROOT"
    done < <(conversions)
    echo "vagen data create --config $ENV_CONFIG --out $DATA_DIR"
    echo "# env servers (then wait for GET /health)"
    for port in "${PORTS[@]}"; do
        echo "vagen server --config $ENV_CONFIG --host $ENV_HOST --port $port" \
             "--workers $ENV_WORKERS${SERVER_ARGS[*]:+ --token ***}"
    done
    echo "# training${RAY_ADDRESS:+ (Ray cluster at $RAY_ADDRESS)}"
    printf '%q ' "${TRAIN[@]}" "${OVERRIDES[@]}"
    echo
    echo "# resolved config"
    exec "${TRAIN[@]}" --dry-run "${OVERRIDES[@]}"
fi

mkdir -p "$LOG_DIR"
while IFS=$'\t' read -r fmt input output; do
    if [[ ! -f "$output" ]]; then
        vagen data convert --from "$fmt" "$input" "$output" --video-root "$VIDEO_ROOT"
    fi
done < <(conversions)
if [[ ! -f "$DATA_DIR/train.parquet" || ! -f "$DATA_DIR/test.parquet" ]]; then
    vagen data create --config "$ENV_CONFIG" --out "$DATA_DIR"
fi

SERVER_PIDS=()
stop_servers() {
    for pid in ${SERVER_PIDS[@]+"${SERVER_PIDS[@]}"}; do
        kill "$pid" 2>/dev/null || true
    done
    wait ${SERVER_PIDS[@]+"${SERVER_PIDS[@]}"} 2>/dev/null || true
}
trap stop_servers EXIT
for port in "${PORTS[@]}"; do
    vagen server --config "$ENV_CONFIG" --host "$ENV_HOST" --port "$port" \
        --workers "$ENV_WORKERS" ${SERVER_ARGS[@]+"${SERVER_ARGS[@]}"} \
        > "$LOG_DIR/env_server_$port.log" 2>&1 &
    SERVER_PIDS+=($!)
done
for i in "${!PORTS[@]}"; do
    port=${PORTS[$i]}
    "$PYTHON" -m vagen server wait "http://127.0.0.1:$port" --pid "${SERVER_PIDS[$i]}" \
        --log "$LOG_DIR/env_server_$port.log" --timeout "$HEALTH_TIMEOUT_S" || exit 1
done

"${TRAIN[@]}" "${OVERRIDES[@]}" 2>&1 | tee "$LOG_DIR/train.log"
