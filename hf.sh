# Source me:  source hf.sh [--offline]
# Points the Hugging Face cache at $VAGEN_HF_HOME (default ~/.cache/vagen/hf) and, with
# --offline (or VAGEN_HF_OFFLINE=1), forbids hub downloads so that only local paths load.
_vagen_offline=${VAGEN_HF_OFFLINE:-0}
for _a in "$@"; do
  case "$_a" in
    --offline) _vagen_offline=1 ;;
    --online) _vagen_offline=0 ;;
    *) echo "hf.sh: unknown option '$_a' (use --offline or --online)" >&2 ;;
  esac
done
export HF_HOME="${VAGEN_HF_HOME:-$HOME/.cache/vagen/hf}"
mkdir -p "$HF_HOME"
echo "[hf.sh] HF_HOME=$HF_HOME"
if [ "$_vagen_offline" = 1 ]; then
  export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
  echo "[hf.sh] HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1"
else
  unset HF_HUB_OFFLINE TRANSFORMERS_OFFLINE HF_DATASETS_OFFLINE
  echo "[hf.sh] online (hub downloads allowed)"
fi
unset _vagen_offline _a
