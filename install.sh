#!/usr/bin/env bash
# Install vagen and its pinned stack into the current Python (a venv is recommended).
#   bash install.sh          CPU profile: torch (only when no usable torch is present),
#                            transformers 5.9.0, verl 0.9.1 (for its CPU-tested seams), vagen
#   bash install.sh --gpu    adds vllm 0.24.0 with torch 2.11 as verl's [vllm] extra pins
# Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PROFILE=cpu
for arg in "$@"; do
  case "$arg" in
    --gpu) PROFILE=gpu ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option '$arg' (use --gpu or nothing)" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-python3}
PIP=("$PY" -m pip install --disable-pip-version-check -q)
VERL_PINS=("verl==0.9.1" "transformers==5.9.0" cachetools uvicorn fastapi)

has_usable_torch() {
  "$PY" - <<'PY' 2>/dev/null
import torch, torchvision  # noqa: F401  (the Qwen-VL video processor needs torchvision)
torch.zeros(1) + 1
PY
}

if [ "$PROFILE" = gpu ]; then
  echo "[install] GPU profile: vllm==0.24.0 + verl[vllm]==0.9.1 (torch 2.11)"
  "${PIP[@]}" "vllm==0.24.0" "verl[vllm]==0.9.1" "${VERL_PINS[@]:1}"
elif has_usable_torch; then
  echo "[install] using the installed torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
  echo "[install] installing torch==2.14.1 torchvision==0.29.1"
  "${PIP[@]}" "torch==2.14.1" "torchvision==0.29.1"
fi

echo "[install] vagen (editable) with transformers==5.9.0 and verl==0.9.1"
"${PIP[@]}" -e ".[test]" "${VERL_PINS[@]}"
if ! "$PY" -c "import decord" 2>/dev/null; then
  # decord has no wheels for every platform; PyAV is the automatic fallback.
  "${PIP[@]}" decord || echo "[install] decord unavailable here; PyAV will decode videos"
fi
"$PY" -c "import vagen, transformers, torch; print(f'[install] ok: vagen {vagen.__version__}, transformers {transformers.__version__}, torch {torch.__version__}')"
