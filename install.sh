#!/usr/bin/env bash
# Install vagen and its pinned stack into the current Python (a venv is recommended).
#   bash install.sh          CPU profile: torch (only when no usable torch is present),
#                            transformers 5.9.0, verl 0.9.1 (for its CPU-tested seams), vagen
#   bash install.sh --gpu    adds vllm 0.24.0 with torch 2.11 (verl's [vllm] extra) and
#                            flash-attn 2.8.3 (verl's [flash-attn-cu130torch211] extra)
#   --dry-run                print the pip commands, one a line, and install nothing
# Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PROFILE=cpu
DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --gpu) PROFILE=gpu ;;
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option '$arg' (use --gpu, --dry-run or nothing)" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-python3}
PIP=("$PY" -m pip install --disable-pip-version-check -q)
# pip install "$@", or only its line with --dry-run.
pip_install() {
  if [ "$DRY_RUN" = 1 ]; then
    echo "pip install $*"
  else
    "${PIP[@]}" "$@"
  fi
}
VERL_PINS=("verl==0.9.1" "transformers==5.9.0" cachetools uvicorn fastapi)

has_usable_torch() {
  "$PY" - <<'PY' 2>/dev/null
import torch, torchvision  # noqa: F401  (the Qwen-VL video processor needs torchvision)
torch.zeros(1) + 1
PY
}

# [install] lines go to stderr, so --dry-run's stdout is the pip commands alone.
say() { echo "[install] $*" >&2; }

if [ "$PROFILE" = gpu ]; then
  # verl's FSDP engine and its critic loader ask for flash_attention_2, and its Qwen-VL
  # attention patch packs sequences with flash-attn's varlen kernels: the recipes need it.
  say "GPU profile: vllm==0.24.0 + verl[vllm,flash-attn-cu130torch211]==0.9.1 (torch 2.11)"
  pip_install "vllm==0.24.0" "verl[vllm]==0.9.1" "${VERL_PINS[@]:1}"
  # After torch: flash-attn's build reads the installed torch.
  pip_install --no-build-isolation "verl[flash-attn-cu130torch211]==0.9.1"
elif has_usable_torch; then
  say "using the installed torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
  say "installing torch==2.14.1 torchvision==0.29.1"
  pip_install "torch==2.14.1" "torchvision==0.29.1"
fi

say "vagen (editable) with transformers==5.9.0 and verl==0.9.1"
pip_install -e ".[test]" "${VERL_PINS[@]}"
if [ "$DRY_RUN" = 1 ]; then
  echo "pip install decord  # when it is not importable; the fallback decoder"
  exit 0
fi
if ! "$PY" -c "import decord" 2>/dev/null; then
  # decord (auto's fallback when PyAV fails on a file) has no wheels for every platform.
  pip_install decord || say "decord unavailable here; PyAV alone will decode videos"
fi
"$PY" -c "import vagen, transformers, torch; print(f'[install] ok: vagen {vagen.__version__}, transformers {transformers.__version__}, torch {torch.__version__}')"
