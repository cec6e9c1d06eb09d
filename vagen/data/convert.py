"""`vagen data convert --from FORMAT IN OUT`: benchmark annotations -> the sample schema.

Each format is a `Converter` in its own module, registered by name. This module owns what
they share, so that every format behaves the same: the row loop with its progress bar,
errors that name the file, row and field, the video-file check, skips with their counts,
and the CLI."""

from __future__ import annotations

import argparse
import importlib
import sys
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vagen.config import add_flags, flag_values
from vagen.data.sample import Sample, SampleError, save_samples
from vagen.registry import Registry

Row = tuple[str, dict[str, Any]]  # (where the row is, e.g. "line 3"; its raw fields)

# Modules under vagen.data whose import registers the built-in formats.
BUILTIN_MODULES = ("nextqa", "nextgqa", "videomme", "mlvu", "longvideobench", "lvbench",
                   "egoschema", "llava_json", "verltool", "videomtr")


class SkipRow(Exception):
    """Raised by `Converter.to_sample` for a row that is no video question (e.g. an image
    row of a mixed data set); such rows are counted by reason, not converted."""


class Converter(ABC):
    """One annotation format. A fresh instance converts one input, so `load` may keep
    companion files (id maps, span files, answer keys) on `self` for `to_sample`."""

    @abstractmethod
    def load(self, path: Path) -> list[Row]:
        """Read the annotation file (or folder) at `path` into rows."""

    @abstractmethod
    def to_sample(self, row: dict[str, Any], video_root: Path) -> Sample:
        """One row -> Sample; raises SampleError naming the field, or SkipRow."""


def _load_builtin_converters() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(f"vagen.data.{module}")


_CONVERTERS: Registry[type[Converter]] = Registry("format", _load_builtin_converters)


def register_converter(name: str) -> Callable[[type[Converter]], type[Converter]]:
    """Class decorator: `@register_converter("nextqa")`."""
    return _CONVERTERS.register(name)


def get_converter(name: str) -> Converter:
    return _CONVERTERS.get(name)()


def list_converters() -> list[str]:
    return _CONVERTERS.names()


@dataclass
class ConvertOptions:
    """How rows become samples; each field is a `vagen data convert` flag (`add_flags`)."""

    video_root: str | None = field(default=None, metadata={
        "help": "folder the benchmark's video names are resolved against "
                "(default: the input's folder)"})
    check_videos: bool = field(default=True, metadata={
        "help": "check that every video file exists (--no-check-videos: convert the "
                "annotations before the videos are downloaded)"})
    skip_missing: bool = field(default=False, metadata={
        "help": "skip rows whose video files are missing instead of failing; prints the count"})
    answered_only: bool = field(default=False, metadata={
        "help": "drop rows without a public answer (EgoSchema, LongVideoBench test) instead "
                "of keeping them with answer ''"})
    source: str | None = field(default=None, metadata={
        "help": "set every sample's `source` (default: the benchmark's name)"})

    def __post_init__(self) -> None:
        if self.skip_missing and not self.check_videos:
            raise ValueError("skip_missing needs check_videos: drop --no-check-videos "
                             "or --skip-missing")


@dataclass
class Conversion:
    """What `convert` made: the samples and what it left out, by reason."""

    samples: list[Sample]
    skipped: Counter[str] = field(default_factory=Counter)
    unanswered: int = 0  # kept samples whose answer is not public (answer "")
    no_duration: int = 0  # kept samples whose duration neither annotation nor video gave


def fill_duration(sample: Sample, probed: dict[str, float | None]) -> None:
    """Set a sample's missing `duration_s` from its videos (probed once per path), when all
    of them are there and readable (NExT-QA's CSV, for one, has no durations)."""
    from vagen.video.decode import VideoError, probe_video

    if sample.duration_s is not None:
        return
    for video in sample.videos:
        if video not in probed:
            try:
                probed[video] = probe_video(video).duration_s
            except VideoError:  # missing, empty, a folder or undecodable
                probed[video] = None
    durations = [probed[video] for video in sample.videos]
    if durations and all(d is not None for d in durations):
        sample.duration_s = float(sum(durations))


def convert(fmt: str, path: str | Path, options: ConvertOptions | None = None) -> Conversion:
    """Convert the annotations at `path` in format `fmt`; errors name file, row and field."""
    options = options or ConvertOptions()
    path = Path(path)
    converter = get_converter(fmt)
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    video_root = Path(options.video_root or (path if path.is_dir() else path.parent))
    result = Conversion(samples=[])
    first_seen: dict[str, str] = {}
    probed: dict[str, float | None] = {}
    for where, row in tqdm(converter.load(path), desc=f"convert {fmt}", unit="row"):
        try:
            sample = converter.to_sample(row, video_root)
        except SkipRow as skip:
            result.skipped[str(skip)] += 1
            continue
        except (ValueError, TypeError) as err:
            raise SampleError(f"{path}: {where}: {err}") from err
        if not sample.answer and options.answered_only:
            result.skipped["no public answer"] += 1
            continue
        missing = ([v for v in sample.videos if not Path(v).is_file()]
                   if options.check_videos else [])
        if missing and options.skip_missing:
            result.skipped["video file missing"] += 1
            continue
        if missing:
            raise SampleError(f"{path}: {where}: video file not found: {missing[0]} (set "
                              "--video-root, or pass --skip-missing or --no-check-videos)")
        if sample.id in first_seen:
            raise SampleError(f"{path}: {where}: id '{sample.id}' repeats the id of "
                              f"{first_seen[sample.id]}; ids must be unique")
        first_seen[sample.id] = where
        sample.source = options.source or sample.source
        fill_duration(sample, probed)
        result.no_duration += sample.duration_s is None
        result.unanswered += not sample.answer
        result.samples.append(sample)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vagen data convert",
        description="Convert a benchmark's annotation file into the vagen sample schema "
                    "(JSONL, or parquet when OUT ends in .parquet). See data/README.md.")
    parser.add_argument("--from", dest="fmt", required=True, metavar="FORMAT",
                        help=f"annotation format: {', '.join(list_converters())}")
    parser.add_argument("input", type=Path, metavar="IN", help="annotation file (or folder)")
    parser.add_argument("output", type=Path, metavar="OUT", help="samples file to write")
    add_flags(parser, ConvertOptions)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    prog = "vagen data convert"
    try:
        options = ConvertOptions(**flag_values(args, ConvertOptions))
        result = convert(args.fmt, args.input, options)
    except KeyError as err:
        print(f"{prog}: {err.args[0]}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    for reason, count in sorted(result.skipped.items()):
        print(f"skipped {count} rows: {reason}")
    if result.unanswered:
        print(f"{result.unanswered} samples have no public answer (answer ''); "
              "--answered-only drops them")
    if result.no_duration:
        print(f"{result.no_duration} samples have no duration_s (neither the annotations nor "
              "a readable video gave one): eval's duration buckets and seconds-based "
              "requests lack it")
    if not result.samples:
        print(f"{prog}: error: no samples left to write from {args.input}", file=sys.stderr)
        return 1
    save_samples(result.samples, args.output)
    print(f"wrote {len(result.samples)} samples to {args.output}")
    return 0
