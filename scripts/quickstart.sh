#!/usr/bin/env bash
# The main job on the embedded default, on CPU: installs what is missing, builds synthetic
# videos, starts the env server, SFT + GRPO trains a tiny Qwen2.5-VL, evaluates single-turn
# vs multi-turn on held-out questions and writes runs/quickstart/report.md with plots.
# Arguments are key=value overrides of vagen/quickstart.py's QuickstartConfig
# (e.g. sft_steps=100 out=runs/qs2). A second run resumes what is done.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY=${PYTHON:-python3}
# The tiny model's matrices are small: one BLAS thread per process (trainer, env server)
# beats threads fighting over 2 cores. Set OMP_NUM_THREADS to override.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
"$PY" -c "import vagen, torch, transformers, av, flask" 2>/dev/null || bash install.sh
exec "$PY" -m vagen quickstart "$@"
