"""Which episodes an evaluation plays: rows of (env group, config, seed), read from an env
parquet (`vagen data create`) or built from a samples file (one group over all its samples),
with the evaluation mode applied to each config."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vagen.env.video_qa import VideoQAConfig

MODES = ("multi", "single")
SAMPLE_SUFFIXES = (".jsonl", ".json")


class RowsError(ValueError):
    """An evaluation data file that cannot be played; the message names the file and field."""


@dataclass
class EvalRow:
    """One episode: env group `config` reset with `seed`. `id` = "group/seed" is the key
    results are resumed by."""

    id: str
    group: str
    config: dict[str, Any]
    seed: int


def load_rows(path: str | Path, mode: str = "multi", frames: int | None = None,
              protocol: str = "retrieve", split: str = "test",
              overrides: dict[str, Any] | None = None,
              groups: list[str] | None = None) -> list[EvalRow]:
    """Rows of an env parquet (only `groups` when given), or of a samples file (.jsonl/.json,
    or a parquet of samples) played as one group with `protocol` and `split`. `overrides`
    replace keys of every group config (e.g. `max_pixels`). `mode="single"` then turns every
    group into the one-turn baseline with `frames` uniform frames (default: the group's
    `initial_frames`)."""
    path = Path(path)
    if not path.exists():
        raise RowsError(f"evaluation data not found: {path}")
    if path.suffix in SAMPLE_SUFFIXES or (path.suffix == ".parquet" and _holds_samples(path)):
        rows = _rows_from_samples(path, protocol, split)
    elif path.suffix == ".parquet":
        rows = _rows_from_env_parquet(path)
    else:
        raise RowsError(f"{path}: use an env parquet (vagen data create) or a samples file "
                        f"(.jsonl, .json, .parquet)")
    if groups:
        known = list(dict.fromkeys(row.group for row in rows))
        unknown = [name for name in groups if name not in known]
        if unknown:
            raise RowsError(f"{path}: no env group '{unknown[0]}'; groups: {', '.join(known)}")
        rows = [row for row in rows if row.group in groups]
    seen: set[str] = set()
    for row in rows:
        if row.id in seen:
            raise RowsError(f"{path}: episode '{row.id}' (group/seed) appears twice; results "
                            "are keyed by it, so give each group distinct seeds")
        seen.add(row.id)
        row.config = apply_mode({**row.config, **(overrides or {})}, mode, frames)
    return rows


def data_folders(path: str | Path) -> list[str]:
    """Folders of the samples files the rows of `path` play: what an env server must let
    eval's configs name (`vagen server --data-root`)."""
    path = Path(path)
    if path.suffix in SAMPLE_SUFFIXES or (path.suffix == ".parquet" and _holds_samples(path)):
        files = [path]
    else:
        files = [Path(row.config["data"]) for row in _rows_from_env_parquet(path)]
    return sorted({str(file.resolve().parent) for file in files})


def apply_mode(config: dict[str, Any], mode: str, frames: int | None = None) -> dict[str, Any]:
    """The group config to play in `mode`, checked by `VideoQAConfig` (errors name the key).
    multi: the group's own protocol; single: protocol single, one turn, `frames` frames."""
    if mode not in MODES:
        raise RowsError(f"mode '{mode}': use one of {', '.join(MODES)}")
    config = dict(config)
    if mode == "single":
        config.update(protocol="single", max_turns=1)
        if frames is not None:
            config["initial_frames"] = frames
    elif frames is not None:
        raise RowsError("--frames sets the baseline's uniform frames; use it with --mode single "
                        "(multi mode shows the group's initial_frames)")
    return VideoQAConfig.from_dict(config).to_dict()


def shard_rows(rows: list[EvalRow], shards: int) -> list[list[EvalRow]]:
    """Round-robin split for data-parallel workers: row i goes to shard i % shards, so every
    worker gets a share of each group (and of long and short videos)."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    return [rows[k::shards] for k in range(shards)]


def _holds_samples(path: Path) -> bool:
    import pyarrow.parquet as pq

    return "question" in pq.read_schema(path).names


def _rows_from_samples(path: Path, protocol: str, split: str) -> list[EvalRow]:
    from vagen.env.video_qa import load_env_samples

    config = VideoQAConfig(name=path.parent.name or path.stem, protocol=protocol,
                           data=str(path.resolve()), split=split, seed=0,
                           max_turns=1 if protocol == "single" else VideoQAConfig.max_turns)
    config.n = len(load_env_samples(config))
    return [EvalRow(f"{config.name}/{seed}", config.name, config.to_dict(), seed)
            for seed in range(config.n)]


def _rows_from_env_parquet(path: Path) -> list[EvalRow]:
    import pandas as pd

    frame = pd.read_parquet(path)
    missing = [c for c in ("config", "seed") if c not in frame.columns]
    if missing:
        raise RowsError(f"{path}: column '{missing[0]}' is missing; an env parquet has one row "
                        "per episode with its group config and seed (vagen data create)")
    rows = []
    for i, record in enumerate(frame.to_dict(orient="records")):
        config = record["config"]
        if isinstance(config, str):
            config = json.loads(config)
        if not isinstance(config, dict) or not config.get("name"):
            raise RowsError(f"{path}: row {i}: field 'config' must be a group config with a "
                            "'name'")
        config = {**config, "data": str(Path(config.get("data", VideoQAConfig.data)).resolve())}
        rows.append(EvalRow(f"{config['name']}/{int(record['seed'])}", config["name"], config,
                            int(record["seed"])))
    return rows


if __name__ == "__main__":  # `python -m vagen.eval.rows DATA`: the folders, one a line
    import sys

    print("\n".join(data_folders(sys.argv[1])))
