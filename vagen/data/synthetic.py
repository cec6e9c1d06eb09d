"""Synthetic grounded video QA: the embedded data set of the quick start and the tests.

Each video has a plain background and a large *carrier* shape on screen for 8-20 s (16
uniform frames usually see it, so a policy can locate it) holding short *details* (the shape
turns another colour, or a small dot appears, for 1-3 s) that uniform frames usually miss
and a retrieval of the right span catches. Details are placed around frames of the default
frame pool (`pool_times(duration, pool_fps, pool_max_frames)`) so that every detail covers
at least one pool frame, with at least one video frame (1/fps) of clearance from every pool
time on the wrong side of a bound, whatever rounding a decoder uses to map a time to a frame.

Kinds (registered by name, used in turn): color, order (choice); count, when (number);
which_video (choice, "video 1" is `videos[0]`), video_count (number) over 2-6 videos.
`relevant_spans` are the detail spans the answer needs ([s, e], or [s, e, video] for
multi-video kinds). `extra` holds `kind`, `carrier_span` (the carrier of the first relevant
span) and `carrier_spans`, `durations_s` (per video; `duration_s` is their sum), `evidence`
(the evidence in words, for a narrating <think>), `evidence_brief` (the colours alone,
"white red", for a brief one) and `plans` (everything drawn).

Files: `out_dir/samples.jsonl` and `out_dir/videos/*.mp4`. Video paths in the samples are
relative to the folder of `samples.jsonl` (`videos/<id>-v<k>.mp4`) unless `absolute_paths`
is set; readers resolve them against that folder."""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vagen.config import add_flags, flag_values
from vagen.data.sample import Sample, option_letter, save_samples
from vagen.registry import Registry
from vagen.video.sampling import pool_times, uniform_indices
from vagen.video.synthetic_render import PALETTE, SHAPES, Detail, Track, VideoPlan, write_video

SAMPLES_FILE = "samples.jsonl"
COLORS = tuple(PALETTE)
EDGE_S = 1.0  # the carrier shows its own colour at least this long before/after its details
GAP_S = 2  # seconds of background between two tracks


@dataclass
class Question:
    """What a kind builds: the videos to draw and the grounded question about them. Spans
    are `[start_s, end_s]`, or `[start_s, end_s, video_index]` for multi-video questions."""

    plans: list[VideoPlan]
    text: str
    answer: str
    answer_type: str
    options: list[str] | None
    relevant_spans: list[list[float]]
    carrier_spans: list[list[float]]
    evidence: str
    evidence_brief: str


@dataclass(frozen=True)
class KindSpec:
    build: Callable[[np.random.Generator, SynthConfig], Question]
    counts_events: bool  # answering needs every event and a clean frame between two of them


KINDS: Registry[KindSpec] = Registry("question kind")  # in registration order


def register_kind(name: str, counts_events: bool = False):
    """Register a question builder `(rng, config) -> Question` under `name`."""

    def wrap(build):
        KINDS.add(name, KindSpec(build, counts_events))
        return build

    return wrap


@dataclass
class SynthConfig:
    """How the synthetic data set is drawn. Every field is also a `vagen data synth` flag."""

    kinds: list[str] = field(default_factory=lambda: list(KINDS), metadata={
        "help": "question kinds, used in turn (repeat a kind to weight it): "
                "color order count when which_video video_count"})
    min_duration_s: int = field(default=30, metadata={"help": "shortest video (s)"})
    max_duration_s: int = field(default=180, metadata={"help": "longest video (s)"})
    fps: int = field(default=4, metadata={"help": "video frames per second"})
    size: int = field(default=64, metadata={"help": "frame width and height (even)"})
    min_carrier_s: int = field(default=8, metadata={"help": "shortest carrier shape (s)"})
    max_carrier_s: int = field(default=20, metadata={"help": "longest carrier shape (s)"})
    min_detail_s: float = field(default=1.0, metadata={"help": "shortest detail (s)"})
    max_detail_s: float = field(default=3.0, metadata={"help": "longest detail (s)"})
    min_videos: int = field(default=2, metadata={"help": "fewest videos of a multi-video sample"})
    max_videos: int = field(default=6, metadata={"help": "most videos of a multi-video sample"})
    max_count: int = field(default=3, metadata={"help": "most dots of a 'count' question"})
    distractors: int = field(default=1, metadata={
        "help": "other shapes per video (never the asked one, no details)"})
    pool_fps: float = field(default=1.0, metadata={"help": "frame pool the details align to"})
    pool_max_frames: int = field(default=64, metadata={"help": "frame pool size cap"})
    retrieve_frames: int = field(default=8, metadata={
        "help": "frames of one retrieval; the events of one question fit in this many pool "
                "frames"})
    absolute_paths: bool = field(default=False, metadata={
        "help": "write absolute video paths (default: relative to the samples file)"})

    def __post_init__(self) -> None:
        self.kinds = list(self.kinds)
        unknown = [k for k in self.kinds if k not in KINDS]
        if not self.kinds or unknown:
            raise ValueError(f"kinds: unknown {unknown or 'empty list'}; use some of "
                             f"{', '.join(KINDS)}")
        if not 1 <= self.min_carrier_s <= self.max_carrier_s:
            raise ValueError("min_carrier_s/max_carrier_s: need 1 <= min_carrier_s <= "
                             "max_carrier_s")
        if not self.max_carrier_s + 2 <= self.min_duration_s <= self.max_duration_s:
            raise ValueError("min_duration_s/max_duration_s: need max_carrier_s + 2 <= "
                             "min_duration_s <= max_duration_s")
        if not 0 < self.min_detail_s <= self.max_detail_s <= self.min_carrier_s - 2 * EDGE_S:
            raise ValueError(f"min_detail_s/max_detail_s: need 0 < min_detail_s <= max_detail_s"
                             f" <= min_carrier_s - {2 * EDGE_S:g}")
        if self.size < 32 or self.size % 2:
            raise ValueError(f"size: {self.size} must be even and >= 32")
        if self.fps < 2 * self.pool_fps:
            raise ValueError(f"fps: {self.fps} must be >= 2 * pool_fps so details fit between "
                             "pool frames")
        if not 2 <= self.min_videos <= self.max_videos:
            raise ValueError("min_videos/max_videos: need 2 <= min_videos <= max_videos")
        if not 1 <= self.max_count <= (self.retrieve_frames + 1) // 2:
            raise ValueError(f"max_count: {self.max_count} must be in [1, (retrieve_frames + 1)"
                             f" // 2 = {(self.retrieve_frames + 1) // 2}]")
        if self.distractors < 0:
            raise ValueError("distractors: must be >= 0")


# ---------------------------------------------------------------- placing tracks and details

def _pick(rng: np.random.Generator, items: Sequence):
    return items[int(rng.integers(len(items)))]


def _shuffled(rng: np.random.Generator, items: Sequence) -> list:
    return [items[i] for i in rng.permutation(len(items))]


def _video(rng: np.random.Generator, cfg: SynthConfig, shape: str, color: str,
           details: list[tuple[str, str]]) -> VideoPlan:
    """A video whose first track is the carrier holding `details` ((kind, colour), in time
    order), plus `cfg.distractors` other shapes."""
    for _ in range(200):
        duration = int(rng.integers(cfg.min_duration_s, cfg.max_duration_s + 1))
        length = int(rng.integers(cfg.min_carrier_s, cfg.max_carrier_s + 1))
        start = int(rng.integers(1, duration - length))
        pool = pool_times(duration, cfg.pool_fps, cfg.pool_max_frames)
        spans = _place_spans(rng, cfg, pool, start + EDGE_S, start + length - EDGE_S,
                             len(details))
        if spans is None:
            continue
        carrier = Track(shape, color, start, start + length,
                        [Detail(kind, c, s, e)
                         for (kind, c), (s, e) in zip(details, spans, strict=True)])
        tracks = [carrier, *_distractors(rng, cfg, duration, carrier)]
        return VideoPlan(duration, cfg.fps, cfg.size, tracks)
    raise RuntimeError(f"could not place {len(details)} details in a carrier; widen "
                       "max_carrier_s or max_detail_s")


def _place_spans(rng: np.random.Generator, cfg: SynthConfig, pool: np.ndarray, lo: float,
                 hi: float, n: int) -> list[tuple[float, float]] | None:
    """`n` detail spans in [lo, hi], in time order, each covering a run of pool frames, a
    clean pool frame between two, all within `cfg.retrieve_frames` pool frames. None when
    this draw does not fit (the caller draws again)."""
    inside = np.flatnonzero((pool >= lo) & (pool <= hi))
    spacing = pool[1] - pool[0] if len(pool) > 1 else hi - lo
    max_run = max(1, min(3, int((cfg.max_detail_s - 1 / cfg.fps) / spacing) + 1))
    runs = rng.integers(1, max_run + 1, size=n)
    gaps = rng.integers(1, 3, size=n - 1)
    total = int(runs.sum() + gaps.sum())
    if total > len(inside) or total > cfg.retrieve_frames:
        return None
    first = int(inside[0] + rng.integers(len(inside) - total + 1))
    spans = []
    for j, run in enumerate(runs):
        last = first + int(run) - 1
        span = _span_around(rng, cfg, pool, first, last, lo, hi)
        if span is None:
            return None
        spans.append(span)
        if j < n - 1:
            first = last + 1 + int(gaps[j])
    return spans


def _span_around(rng: np.random.Generator, cfg: SynthConfig, pool: np.ndarray, first: int,
                 last: int, lo: float, hi: float) -> tuple[float, float] | None:
    """A span [s, e] on the 1/fps grid holding pool frames first..last with one video frame
    of clearance: s <= pool[first], pool[last] <= e - 1/fps, pool[first-1] <= s - 1/fps and
    e < pool[last+1]; so frames at those times show (or do not show) the detail whether a
    decoder floors, rounds or ceils time * fps."""
    fps, tol = cfg.fps, 1e-6
    s_lo = lo * fps if first == 0 else max(lo * fps, pool[first - 1] * fps + 1)
    s_hi = pool[first] * fps
    e_lo = pool[last] * fps + 1
    e_hi = math.floor(hi * fps + tol)
    if last + 1 < len(pool):  # strictly before the next pool frame
        e_hi = min(e_hi, math.ceil(pool[last + 1] * fps - tol) - 1)
    d_lo, d_hi = math.ceil(cfg.min_detail_s * fps - tol), math.floor(cfg.max_detail_s * fps + tol)
    pairs = [(s, e) for s in range(math.ceil(s_lo - tol), math.floor(s_hi + tol) + 1)
             for e in range(max(math.ceil(e_lo - tol), s + d_lo), min(e_hi, s + d_hi) + 1)]
    if not pairs:
        return None
    s, e = pairs[int(rng.integers(len(pairs)))]
    return s / fps, e / fps


def _distractors(rng: np.random.Generator, cfg: SynthConfig, duration: int,
                 carrier: Track) -> list[Track]:
    """Other shapes (never the carrier's shape) in free time, GAP_S apart from other tracks."""
    tracks: list[Track] = []
    others = [s for s in SHAPES if s != carrier.shape]
    for _ in range(cfg.distractors):
        length = int(rng.integers(cfg.min_carrier_s, cfg.max_carrier_s + 1))
        busy = [(t.start_s, t.end_s) for t in (carrier, *tracks)]
        starts = [s for s in range(1, duration - length)
                  if all(s + length + GAP_S <= b0 or s >= b1 + GAP_S for b0, b1 in busy)]
        if not starts:
            break
        start = _pick(rng, starts)
        tracks.append(Track(_pick(rng, others), _pick(rng, COLORS), start, start + length))
    return tracks


# ---------------------------------------------------------------- question kinds

def _span(start: float, end: float, video: int | None) -> list[float]:
    return [start, end] if video is None else [start, end, video]


def _spans(plan: VideoPlan, video: int | None = None) -> tuple[list, list]:
    """(detail spans, [carrier span]) of a plan's carrier."""
    carrier = plan.tracks[0]
    return ([_span(d.start_s, d.end_s, video) for d in carrier.details],
            [_span(carrier.start_s, carrier.end_s, video)])


def _narrate(plan: VideoPlan) -> str:
    """The evidence in words, for a narrating <think> (what made the tiny model learn)."""
    c = plan.tracks[0]
    # What changed comes first, right after the shape: the token a small model must predict
    # sits next to the evidence it reads, not behind a run of timestamps.
    parts = []
    for d in c.details:
        what = (f"the {c.color} {c.shape} turns {d.color}" if d.kind == "turn"
                else f"a {d.color} dot appears on the {c.color} {c.shape}")
        parts.append(f"{what} from {d.start_s:g} s to {d.end_s:g} s")
    parts.append(f"the {c.shape} is visible from {c.start_s:g} s to {c.end_s:g} s")
    return "; ".join(parts) + "."


def _narrate_all(plans: list[VideoPlan]) -> str:
    return " ".join(f"Video {v + 1}: {_narrate(p)}" for v, p in enumerate(plans))


def _brief(plan: VideoPlan) -> str:
    """The evidence in as few words as a tiny model can copy: the carrier's colour, then
    each detail's ("white red"; "white dot blue" for a dot)."""
    c = plan.tracks[0]
    return " ".join([c.color, *(d.color if d.kind == "turn" else f"dot {d.color}"
                                for d in c.details)])


def _brief_all(plans: list[VideoPlan]) -> str:
    return "; ".join(f"v{v + 1} {_brief(p)}" for v, p in enumerate(plans))


def _carrier_look(rng: np.random.Generator) -> tuple[str, str, list[str]]:
    shape, color = _pick(rng, SHAPES), _pick(rng, COLORS)
    return shape, color, [c for c in COLORS if c != color]


def _single(plan: VideoPlan, text: str, answer: str, answer_type: str,
            options: list[str] | None = None) -> Question:
    spans, carrier = _spans(plan)
    return Question([plan], text, answer, answer_type, options, spans, carrier, _narrate(plan),
                    _brief(plan))


@register_kind("color")
def _color(rng: np.random.Generator, cfg: SynthConfig) -> Question:
    shape, base, others = _carrier_look(rng)
    turn = _pick(rng, others)
    plan = _video(rng, cfg, shape, base, [("turn", turn)])
    options = _shuffled(rng, others)
    return _single(plan, f"What colour did the {base} {shape} turn?",
                   option_letter(options.index(turn)), "choice", options)


@register_kind("order")
def _order(rng: np.random.Generator, cfg: SynthConfig) -> Question:
    shape, base, others = _carrier_look(rng)
    turn, dot = _shuffled(rng, others)[:2]
    events = _shuffled(rng, [("turn", turn), ("mark", dot)])
    plan = _video(rng, cfg, shape, base, events)
    said = {"turn": f"the {shape} turned {turn}", "mark": f"a {dot} dot appeared on the {shape}"}
    options = _shuffled(rng, list(said.values()))
    return _single(plan, f"Which happened first to the {base} {shape}?",
                   option_letter(options.index(said[events[0][0]])), "choice", options)


@register_kind("count", counts_events=True)
def _count(rng: np.random.Generator, cfg: SynthConfig) -> Question:
    shape, base, others = _carrier_look(rng)
    dot, times = _pick(rng, others), int(rng.integers(1, cfg.max_count + 1))
    plan = _video(rng, cfg, shape, base, [("mark", dot)] * times)
    return _single(plan, f"How many times did a {dot} dot appear on the {base} {shape}?",
                   str(times), "number")


@register_kind("when")
def _when(rng: np.random.Generator, cfg: SynthConfig) -> Question:
    shape, base, others = _carrier_look(rng)
    turn = _pick(rng, others)
    plan = _video(rng, cfg, shape, base, [("turn", turn)])
    start = plan.tracks[0].details[0].start_s
    return _single(plan, f"At which second did the {base} {shape} turn {turn}?",
                   str(math.floor(start + 0.5)), "number")


def _multi(plans: list[VideoPlan], videos: Sequence[int], text: str, answer: str,
           answer_type: str, options: list[str] | None = None) -> Question:
    """A multi-video question whose evidence lies in the carriers of `videos`."""
    spans: list = []
    carriers: list = []
    for v in videos:
        detail, carrier = _spans(plans[v], v)
        spans += detail
        carriers += carrier
    return Question(plans, text, answer, answer_type, options, spans, carriers,
                    _narrate_all(plans), _brief_all(plans))


@register_kind("which_video")
def _which_video(rng: np.random.Generator, cfg: SynthConfig) -> Question:
    shape, base, others = _carrier_look(rng)
    n = int(rng.integers(cfg.min_videos, cfg.max_videos + 1))
    target, asked = int(rng.integers(n)), _pick(rng, others)
    rest = [c for c in others if c != asked]
    plans = [_video(rng, cfg, shape, base, [("turn", asked if v == target else _pick(rng, rest))])
             for v in range(n)]
    return _multi(plans, [target], f"In which video did the {base} {shape} turn {asked}?",
                  option_letter(target), "choice", [f"video {v + 1}" for v in range(n)])


@register_kind("video_count")
def _video_count(rng: np.random.Generator, cfg: SynthConfig) -> Question:
    shape, base, others = _carrier_look(rng)
    n = int(rng.integers(cfg.min_videos, cfg.max_videos + 1))
    asked, other = _shuffled(rng, others)[:2]
    turns = [asked if rng.random() < 0.5 else other for _ in range(n)]
    plans = [_video(rng, cfg, shape, base, [("turn", t)]) for t in turns]
    return _multi(plans, range(n), f"In how many of the videos did the {base} {shape} turn "
                  f"{asked}?", str(turns.count(asked)), "number")


# ---------------------------------------------------------------- writing the data set

def make_sample(cfg: SynthConfig, seed: int, index: int, out_dir: str | Path) -> Sample:
    """Sample `index` of the data set drawn with `seed`: its kind is `cfg.kinds[index % len]`,
    its randomness `default_rng([seed, index])`; writes its videos under `out_dir/videos`."""
    kind = cfg.kinds[index % len(cfg.kinds)]
    q = KINDS.get(kind).build(np.random.default_rng([seed, index]), cfg)
    sample_id = f"synth-{seed}-{index:05d}"
    out_dir = Path(out_dir)
    videos = []
    for v, plan in enumerate(q.plans):
        relative = Path("videos") / f"{sample_id}-v{v}.mp4"
        path = write_video(plan, out_dir / relative)
        videos.append(str(path.resolve()) if cfg.absolute_paths else relative.as_posix())
    durations = [p.duration_s for p in q.plans]
    return Sample(
        id=sample_id, videos=videos, question=q.text, answer=q.answer,
        answer_type=q.answer_type, options=q.options, relevant_spans=q.relevant_spans,
        duration_s=float(sum(durations)), source="synthetic", category=kind,
        extra={"kind": kind, "carrier_span": q.carrier_spans[0], "carrier_spans": q.carrier_spans,
               "durations_s": durations, "evidence": q.evidence,
               "evidence_brief": q.evidence_brief,
               "plans": [p.to_dict() for p in q.plans]})


def generate_dataset(out_dir: str | Path, n: int, seed: int = 0,
                     config: SynthConfig | None = None, progress: bool = False,
                     workers: int = 1) -> list[Sample]:
    """Write `n` samples to `out_dir/samples.jsonl` and their MP4s to `out_dir/videos/`,
    drawing and encoding them in `workers` processes. Same (n, seed, config) -> the same
    samples and the same video frames, whatever the number of workers."""
    from concurrent.futures import ProcessPoolExecutor
    from itertools import repeat
    from multiprocessing import get_context

    from tqdm import tqdm

    if n < 1:
        raise ValueError(f"n: {n} must be >= 1")
    if seed < 0:
        raise ValueError(f"seed: {seed} must be >= 0")
    if workers < 1:
        raise ValueError(f"workers: {workers} must be >= 1")
    cfg = config or SynthConfig()
    bar = {"total": n, "desc": "synth", "unit": "sample", "disable": not progress}
    if workers == 1:
        samples = [make_sample(cfg, seed, i, out_dir) for i in tqdm(range(n), **bar)]
    else:  # spawned, not forked: a caller's threads (torch, servers) must not be copied
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            samples = list(tqdm(pool.map(make_sample, repeat(cfg), repeat(seed), range(n),
                                         repeat(out_dir), chunksize=8), **bar))
    save_samples(samples, Path(out_dir) / SAMPLES_FILE)
    return samples


# ---------------------------------------------------------------- what a viewer can answer

def _durations(sample: Sample) -> list[float]:
    durations = sample.extra.get("durations_s")
    if durations is None and len(sample.videos) == 1 and sample.duration_s:
        durations = [sample.duration_s]
    if durations is None or len(durations) != len(sample.videos):
        raise ValueError(f"sample {sample.id}: needs extra.durations_s (one per video) or "
                         "duration_s for a single video")
    return [float(d) for d in durations]


def _by_video(spans: Sequence[Sequence[float]]) -> dict[int, list[tuple[float, float]]]:
    grouped: dict[int, list[tuple[float, float]]] = {}
    for span in spans:
        video = int(span[2]) if len(span) > 2 else 0
        grouped.setdefault(video, []).append((float(span[0]), float(span[1])))
    return {v: sorted(s) for v, s in sorted(grouped.items())}


def uniform_view(durations: Sequence[float], k: int, pool_fps: float = 1.0,
                 pool_max_frames: int = 64) -> list[np.ndarray]:
    """Times shown per video by `k` uniform pool frames (split evenly over the videos)."""
    per_video = max(1, k // len(durations))
    views = []
    for duration in durations:
        pool = pool_times(duration, pool_fps, pool_max_frames)
        views.append(pool[uniform_indices(len(pool), per_video)])
    return views


def span_view(durations: Sequence[float], spans: Sequence[Sequence[float]], k: int,
              pool_fps: float = 1.0, pool_max_frames: int = 64) -> list[np.ndarray]:
    """Times shown per video by one retrieval of `k` pool frames over the hull of `spans`
    (split evenly over the videos the spans touch), picked like `FramePool.in_span`."""
    grouped = _by_video(spans)
    per_video = max(1, k // max(1, len(grouped)))
    views = [np.empty(0) for _ in durations]
    for video, video_spans in grouped.items():
        pool = pool_times(durations[video], pool_fps, pool_max_frames)
        lo, hi = video_spans[0][0], max(e for _, e in video_spans)
        inside = np.flatnonzero((pool >= lo) & (pool <= hi))
        views[video] = pool[inside[uniform_indices(len(inside), per_video)]]
    return views


def sees_evidence(sample: Sample, views: Sequence[np.ndarray]) -> bool:
    """Whether frames at `views` (times per video) answer the sample: some frame inside
    every relevant span, and for counting kinds also a frame between two events."""
    kind = sample.extra.get("kind", "")
    spec = KINDS.get(kind) if kind in KINDS else None
    for video, spans in _by_video(sample.relevant_spans or []).items():
        times = np.asarray(views[video])
        if not all(((times >= s) & (times <= e)).any() for s, e in spans):
            return False
        if spec is not None and spec.counts_events:
            gaps = zip(spans, spans[1:], strict=False)
            if not all(((times > e0) & (times < s1)).any() for (_, e0), (s1, _) in gaps):
                return False
    return True


def summarize(samples: Sequence[Sample], pool_fps: float = 1.0, pool_max_frames: int = 64,
              uniform_frames: Sequence[int] = (8, 16), retrieve_frames: int = 8) -> dict:
    """Counts per kind, durations, and the share of questions answerable from uniform pool
    frames, from one retrieval over the carrier's span and from the oracle retrieval over
    the relevant spans. oracle minus uniform is the head-room of multi-turn RL."""
    if not samples:
        raise ValueError("summarize: no samples")
    rows: list[dict[str, Any]] = []
    for sample in samples:
        durations = _durations(sample)
        views = {f"uniform_{k}": uniform_view(durations, k, pool_fps, pool_max_frames)
                 for k in uniform_frames}
        carriers = sample.extra.get("carrier_spans")
        if carriers:
            views[f"carrier_{retrieve_frames}"] = span_view(
                durations, carriers, retrieve_frames, pool_fps, pool_max_frames)
        views[f"oracle_{retrieve_frames}"] = span_view(
            durations, sample.relevant_spans or [], retrieve_frames, pool_fps, pool_max_frames)
        row = {name: sees_evidence(sample, view) for name, view in views.items()}
        if carriers:
            seen = uniform_view(durations, max(uniform_frames), pool_fps, pool_max_frames)
            row["carrier_seen"] = all(((seen[v] >= s) & (seen[v] <= e)).any()
                                      for v, spans in _by_video(carriers).items()
                                      for s, e in spans)
        rows.append({"kind": sample.extra.get("kind", sample.category or "other"),
                     "durations": durations, "answer": sample.answer,
                     "chance": 1 / len(sample.options) if sample.options else 0.0, **row})
    return _tally(rows)


def _share(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if key in r]
    return round(sum(values) / len(values), 3) if values else None


def _tally(rows: list[dict]) -> dict:
    flags = [k for k in rows[0] if k not in ("kind", "durations", "answer", "chance")]
    durations = [d for r in rows for d in r["durations"]]
    per_sample = [len(r["durations"]) for r in rows]
    kinds = sorted({r["kind"] for r in rows}, key=lambda k: list(KINDS).index(k)
                   if k in KINDS else len(KINDS))
    by_kind = {k: [r for r in rows if r["kind"] == k] for k in kinds}
    return {
        "samples": len(rows),
        "videos": len(durations),
        "kinds": {k: len(v) for k, v in by_kind.items()},
        "duration_s": {"min": min(durations), "mean": round(float(np.mean(durations)), 1),
                       "max": max(durations)},
        "videos_per_sample": {"min": min(per_sample), "max": max(per_sample)},
        "answerable": {f: _share(rows, f) for f in flags},
        "ceiling": {f: round(float(np.mean([r[f] + (1 - r[f]) * r["chance"] for r in rows])), 3)
                    for f in flags if f.startswith("uniform_")},
        "answerable_by_kind": {k: {f: _share(v, f) for f in flags} for k, v in by_kind.items()},
        "answers_by_kind": {k: dict(sorted(Counter(r["answer"] for r in v).items()))
                            for k, v in by_kind.items()},
    }


def format_summary(summary: dict) -> str:
    """The summary as a small table: kinds as rows, views as columns."""
    d = summary["duration_s"]
    lines = [f"{summary['samples']} samples, {summary['videos']} videos "
             f"({summary['videos_per_sample']['min']}-{summary['videos_per_sample']['max']} "
             f"per sample), video duration min {d['min']:g} / mean {d['mean']:g} / max "
             f"{d['max']:g} s",
             "share answerable (carrier_seen: 16 uniform frames see the carrier):"]
    flags = list(summary["answerable"])
    lines.append(f"  {'kind':<12}{'n':>4}" + "".join(f"{f:>14}" for f in flags))
    table = {**summary["answerable_by_kind"], "all": summary["answerable"]}
    counts = {**summary["kinds"], "all": summary["samples"]}
    for kind, shares in table.items():
        cells = "".join(f"{'-' if shares[f] is None else f'{shares[f]:.2f}':>14}" for f in flags)
        lines.append(f"  {kind:<12}{counts[kind]:>4}{cells}")
    lines.append("answers: " + "; ".join(
        f"{k} " + (" ".join(f"{a}:{c}" for a, c in v.items()) if len(v) <= 8
                   else f"{len(v)} distinct")
        for k, v in summary["answers_by_kind"].items()))
    lines.append("single-turn accuracy ceiling (the frames show the evidence, else a guess "
                 "among the options): " + ", ".join(f"{f} {v:.2f}"
                                                   for f, v in summary["ceiling"].items()))
    lines.append(f"head-room of retrieval (oracle - 16 uniform): {_headroom(summary):.2f}")
    return "\n".join(lines)


def _headroom(summary: dict) -> float:
    shares = summary["answerable"]
    oracle = next(v for k, v in shares.items() if k.startswith("oracle_"))
    return oracle - shares.get("uniform_16", 0.0)


# ---------------------------------------------------------------- command line

def _parser() -> argparse.ArgumentParser:
    """Flags from SynthConfig's fields, so the dataclass stays the one source of defaults."""
    parser = argparse.ArgumentParser(prog="vagen data synth", description=(
        "Write synthetic grounded video QA: OUT/samples.jsonl and OUT/videos/*.mp4 (video "
        "paths relative to OUT), then print its summary."))
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n", type=int, default=50, help="number of samples (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="random seed >= 0 (default 0)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes drawing and encoding videos (default 1)")
    add_flags(parser, SynthConfig)
    return parser


def main(argv: list[str] | None = None) -> int:
    """`vagen data synth --out DIR --n N --seed S [--kinds ...]`."""
    args = _parser().parse_args(argv)
    try:
        config = SynthConfig(**flag_values(args, SynthConfig))
        if args.n < 1 or args.seed < 0 or args.workers < 1:
            raise ValueError(f"--n and --workers must be >= 1 and --seed >= 0 (got {args.n}, "
                             f"{args.workers}, {args.seed})")
    except ValueError as err:
        print(f"vagen data synth: error: {err}", file=sys.stderr)
        return 2
    samples = generate_dataset(args.out, args.n, args.seed, config, progress=True,
                               workers=args.workers)
    print(format_summary(summarize(samples, config.pool_fps, config.pool_max_frames,
                                   retrieve_frames=config.retrieve_frames)))
    print(f"wrote {len(samples)} samples to {Path(args.out) / SAMPLES_FILE}")
    return 0
