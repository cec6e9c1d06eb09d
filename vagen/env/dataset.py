"""`vagen data create --config env_config.yaml --out DIR`: the train/test parquet of env
episodes, one row per (env group, config, seed), in the split each group names.

Formats (registered by name):
- `vagen` (default): what the rollout and the verl agent loop need to rebuild the episode
  (`env`, `config` as JSON, `seed`) plus verl's usual columns (`data_source`, `prompt`,
  `reward_model`, `extra_info.index`).
- `verltool`: the verl-tool video parquet (Pixel-Reasoner layout, reused by the video_qar
  recipe): `prompt` chat messages with one `<image>` per video, `images` (the videos),
  `reward_model.ground_truth`, and in `extra_info` the pool frames as JPEG files
  (`frame_paths`), the frames each turn shows (`turn_frames`, 1-based: the uniform opening
  frames, then the env's next unseen batches) and `relevant_spans`.

Missing synthetic data named in the config's `synthetic:` list is generated first."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vagen.config import add_flags, flag_values, parse_overrides
from vagen.env.base import IMAGE_PLACEHOLDER
from vagen.env.groups import load_env_groups
from vagen.env.registry import make_env
from vagen.env.video_qa import VideoQAEnv, prompts
from vagen.env.video_qa.frames import ShownFrame, request_frames, uniform_frames
from vagen.env.video_qa.protocols import FrameRequest
from vagen.registry import Registry
from vagen.video.pool import FramePool, get_pool

GUIDELINES = "\n\nGuidelines: "  # where verl-tool's user text moves from question to rules


@dataclass(frozen=True)
class EpisodeRow:
    """One (env group, seed) episode and where its files go."""

    group: str
    env: VideoQAEnv
    seed: int
    index: int  # row number within its split
    out: Path


RowWriter = Callable[[EpisodeRow], dict[str, Any]]
_FORMATS: Registry[RowWriter] = Registry("dataset format")


def register_format(name: str) -> Callable[[RowWriter], RowWriter]:
    """Decorator on `EpisodeRow -> parquet row`; duplicates are rejected."""
    return _FORMATS.register(name)


def list_formats() -> list[str]:
    return _FORMATS.names()


@register_format("vagen")
def env_row(row: EpisodeRow) -> dict[str, Any]:
    env, sample = row.env, row.env.sample_for_seed(row.seed)
    return {"data_source": f"vagen/{row.group}", "env_group": row.group, "env": env.config.env,
            "config": json.dumps(env.config.to_dict(), sort_keys=True), "seed": row.seed,
            "split": env.config.split, "sample_id": sample.id,
            "prompt": [{"role": "system", "content": env.system_prompt()},
                       {"role": "user", "content": prompts.question_text(sample)}],
            "reward_model": {"style": "rule", "ground_truth": sample.answer},
            "extra_info": {"index": row.index, "split": env.config.split}}


@register_format("verltool")
def verltool_row(row: EpisodeRow) -> dict[str, Any]:
    env, sample = row.env, row.env.sample_for_seed(row.seed)
    pools = [get_pool(path, env.pool_config) for path in sample.videos]
    frame_paths, frames = _write_pool_frames(pools, _frames_dir(row, sample.id))
    position = {(f.video, f.index): i + 1 for i, f in enumerate(frames)}
    videos = [str(Path(v).resolve()) for v in sample.videos]
    question = "\n".join([sample.question.strip(), *(
        f"{letter}. {option}" for letter, option
        in zip(sample.choice_letters, sample.options or [], strict=True))])
    user = (IMAGE_PLACEHOLDER * len(videos) + question + GUIDELINES
            + prompts.turn_text(env.config.protocol, env.config.max_turns))
    return {"data_source": f"vagen/{row.group}",
            "prompt": [{"role": "system", "content": env.system_prompt()},
                       {"role": "user", "content": user}],
            "images": [{"image": v} for v in videos],
            "ability": "video_reasoning",
            "reward_model": {"style": "rule", "ground_truth": sample.answer},
            "extra_info": {
                "split": env.config.split, "index": row.index, "qid": sample.id,
                "is_video": True, "images": videos, "frame_paths": frame_paths,
                "frame_times": [f.time_s for f in frames],
                "frame_video_ids": [f.video for f in frames],
                "turn_frames": [[position[(f.video, f.index)] for f in turn]
                                for turn in turn_batches(env, pools)],
                "frames_per_query": env.config.frames_per_turn,
                "relevant_spans": sample.relevant_spans or [],
                "env_group": row.group, "seed": row.seed}}


def turn_batches(env: VideoQAEnv, pools: list[FramePool]) -> list[list[ShownFrame]]:
    """The frames of each turn when every request asks for the next unseen frames: the
    uniform opening frames, then one batch per later turn."""
    seen: list[set[int]] = [set() for _ in pools]
    batches = [uniform_frames(pools, env.config.initial_frames)]
    for _ in range(env.config.max_turns - 1):
        for frame in batches[-1]:
            seen[frame.video].add(frame.index)
        batches.append(request_frames(pools, [FrameRequest("next")],
                                      env.config.frames_per_turn, seen))
    return batches


def _frames_dir(row: EpisodeRow, sample_id: str) -> Path:
    """One folder per sample and pool config (groups may resize differently)."""
    tag = hashlib.sha1(repr(astuple(row.env.pool_config)).encode()).hexdigest()[:8]
    return row.out / "frames" / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', sample_id)}-{tag}"


def _write_pool_frames(pools: list[FramePool], folder: Path) -> tuple[list[str], list[ShownFrame]]:
    """Every pool frame of every video as JPEG (written once), in video then time order."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths, frames = [], []
    for video, pool in enumerate(pools):
        for index, image in enumerate(pool.frames):
            path = folder / f"v{video}_{index:03d}.jpg"
            if not path.exists():
                Image.fromarray(image).save(path, quality=90)
            paths.append(str(path.resolve()))
            frames.append(ShownFrame(video, index, float(pool.timestamps[index]), image))
    return paths, frames


def ensure_synthetic_data(config_path: Path) -> None:
    """Generate each `synthetic:` entry ({out, n, seed, SynthConfig fields}) whose
    samples file is missing."""
    from omegaconf import OmegaConf

    from vagen.data.synthetic import SAMPLES_FILE, SynthConfig, generate_dataset

    entries = OmegaConf.to_container(OmegaConf.load(config_path)).get("synthetic") or []
    for i, entry in enumerate(entries):
        entry = dict(entry)
        try:
            out, n, seed = Path(entry.pop("out")), entry.pop("n"), entry.pop("seed", 0)
        except KeyError as err:
            raise ValueError(f"{config_path}: synthetic[{i}] needs key {err}") from None
        if not (out / SAMPLES_FILE).exists():
            print(f"writing synthetic data: {out} (n={n}, seed={seed})")
            generate_dataset(out, n, seed, SynthConfig(**entry), progress=True)


def create_dataset(config_path: str | Path, out: str | Path, fmt: str = "vagen",
                   groups: list[str] | None = None,
                   overrides: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write `out/<split>.parquet` for the chosen env groups; returns the files by split."""
    import pandas as pd

    if fmt not in _FORMATS:
        raise ValueError(f"unknown format '{fmt}'; formats: {', '.join(list_formats())}")
    config_path, out = Path(config_path), Path(out)
    env_groups = load_env_groups(config_path)
    for name in groups or []:
        if name not in env_groups:
            raise ValueError(f"unknown env group '{name}'; groups in {config_path}: "
                             f"{', '.join(env_groups)}")
    ensure_synthetic_data(config_path)
    rows: dict[str, list[dict[str, Any]]] = {}
    for name, group in env_groups.items():
        if groups and name not in groups:
            continue
        env = make_env(group["env"], {**group, **(overrides or {})})
        split = rows.setdefault(env.config.split, [])
        seeds = range(env.config.seed, env.config.seed + env.config.n)
        for seed in tqdm(seeds, desc=name, unit="row"):
            split.append(_FORMATS.get(fmt)(EpisodeRow(name, env, seed, len(split), out)))
        env.close()
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, split_rows in rows.items():
        written[split] = out / f"{split}.parquet"
        pd.DataFrame(split_rows).to_parquet(written[split], index=False)
    return written


@dataclass
class CreateConfig:
    """`vagen data create`'s settings; each field is a flag (`vagen.config.add_flags`)."""

    config: str = field(default="", metadata={"help": "env_config.yaml with env_groups",
                                              "required": True})
    out: str = field(default="", metadata={"help": "output folder", "required": True})
    format: str = field(default="vagen", metadata={
        "help": "row layout: vagen (env, config, seed) or verltool (verl-tool video parquet "
                "with frame files)", "choices": tuple(list_formats())})
    groups: str = field(default="", metadata={
        "help": "only these env groups, comma-separated (default: all)"})

    def group_names(self) -> list[str] | None:
        return [name for name in self.groups.split(",") if name] or None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vagen data create",
        description="Write OUT/<split>.parquet with one row per (env group, seed) of an env "
                    "config; missing synthetic data named in it is generated first.")
    add_flags(parser, CreateConfig)
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="set a key in every group, e.g. n=8 max_turns=4")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`vagen data create --config env_config.yaml --out DIR [--format F] [key=value ...]`."""

    args = _parser().parse_args(argv)
    create = CreateConfig(**flag_values(args, CreateConfig))
    try:
        overrides = parse_overrides(args.overrides, example="n=16")
        written = create_dataset(create.config, create.out, create.format,
                                 create.group_names(), overrides)
    except (ValueError, KeyError, FileNotFoundError) as err:
        print(f"vagen data create: error: {err}", file=sys.stderr)
        return 2
    for split, path in written.items():
        print(f"wrote {path} ({split})")
    return 0
