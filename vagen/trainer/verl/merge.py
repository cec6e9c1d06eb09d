"""verl checkpoints to Hugging Face folders, so `vagen eval` scores what verl trained.

verl saves `global_step_N/actor/` as one FSDP shard per rank (`model_world_size_W_rank_R.pt`,
`fsdp_config.json`) plus `huggingface/` with the config and tokenizer only. verl's own model
merger (`python -m verl.model_merger merge --backend fsdp`) joins the shards into a
`save_pretrained` folder; it runs once per checkpoint and its result is kept next to the
shards (`actor/huggingface_merged/`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

MERGED = "huggingface_merged"


def verl_actor_dir(path: str | Path) -> Path | None:
    """The FSDP actor folder of a verl checkpoint (`global_step_N` or its `actor/`), or
    None when `path` is not one."""
    path = Path(path).expanduser()
    for candidate in (path / "actor", path):
        if (candidate / "fsdp_config.json").is_file() and any(
                candidate.glob("model_world_size_*_rank_*.pt")):
            return candidate
    return None


def hf_model_dir(path: str | Path) -> Path:
    """`path` itself when it is not a verl checkpoint; else its merged Hugging Face folder,
    merging with verl's model merger the first time (an interrupted merge is redone)."""
    actor = verl_actor_dir(path)
    if actor is None:
        return Path(path).expanduser()
    merged = actor / MERGED
    if (merged / "config.json").is_file():
        return merged
    partial = actor / f"{MERGED}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    print(f"[merge] {actor}: joining verl's FSDP shards into {merged} (once)", file=sys.stderr)
    done = subprocess.run(
        [sys.executable, "-m", "verl.model_merger", "merge", "--backend", "fsdp",
         "--local_dir", str(actor), "--target_dir", str(partial)],
        capture_output=True, text=True)
    if done.returncode != 0 or not (partial / "config.json").is_file():
        raise RuntimeError(f"verl's model merger could not merge {actor} (exit "
                           f"{done.returncode}):\n{done.stderr[-2000:]}")
    partial.rename(merged)
    return merged


def main(argv: list[str] | None = None) -> int:
    """`python -m vagen.trainer.verl.merge PATH`: print the Hugging Face folder of PATH (a
    verl checkpoint is merged first; any other folder prints as given)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m vagen.trainer.verl.merge",
                                     description=main.__doc__.split("\n")[0])
    parser.add_argument("path", help="a verl global_step_N folder (or its actor/), or an HF one")
    args = parser.parse_args(argv)
    try:
        print(hf_model_dir(args.path))
    except RuntimeError as err:
        parser.exit(1, f"{parser.prog}: {err}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
