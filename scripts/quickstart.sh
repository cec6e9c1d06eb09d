#!/usr/bin/env bash
# The main job on the embedded default, on CPU. For now: synthetic data and its summary.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY=${PYTHON:-python3}
"$PY" -c "import vagen, torch, transformers, av" 2>/dev/null || bash install.sh
OUT=${OUT:-runs/quickstart}
"$PY" -m vagen data synth --out "$OUT/data" --n "${N:-50}" --seed "${SEED:-0}"
