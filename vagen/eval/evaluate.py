"""`vagen eval`: score a checkpoint on a benchmark through the env server.

Each row of the data (an env parquet from `vagen data create`, or a samples file played as
one group) is one episode: the policy plays it against an env on the server (`--server`, or
one started in this process), in `multi` mode with the group's protocol or in `single` mode
as the one-turn baseline with uniform frames and no requests. Each finished episode is
appended to OUT/results.jsonl at once; a rerun with the same OUT skips the episodes already
there. At the end OUT/summary.json, summary.md and by_*.png report accuracy, numeric reward,
turns, frames viewed, temporal IoU and invalid actions per env group, source (benchmark),
category and video duration.

With `--gpus N` the rows are split over N worker processes, one per GPU, each with its own
engine (`--backend vllm` for speed, `hf` for transformers)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vagen.config import ConfigKeyError, add_flags, flag_values, parse_overrides
from vagen.env.video_qa.lookup import SampleLookup
from vagen.eval.metrics import frame_widths, score_episode, summarize
from vagen.eval.policy import (
    DEVICES,
    PolicyError,
    check_policy,
    list_policy_backends,
    load_policy,
)
from vagen.eval.report import markdown, write_report
from vagen.eval.results import (
    RESULTS_FILE,
    ResultsError,
    ResultsWriter,
    check_run,
    read_results,
)
from vagen.eval.rows import (
    MODES,
    EvalRow,
    RowsError,
    load_rows,
    shard_rows,
)
from vagen.eval.workers import WorkerError, run_workers

Emit = Callable[[dict[str, Any]], None]


def set_overrides(items: list[str]) -> dict[str, Any]:
    """`--set KEY=VALUE ...` as the env group keys they replace."""
    return parse_overrides(items, "--set", "--set max_pixels=3136")


class EvalError(RuntimeError):
    """The evaluation cannot go on; the message says why and what to do."""


@dataclass
class EvalConfig:
    """Settings of one evaluation; every field is also a `vagen eval` flag."""

    model: str = field(default="", metadata={
        "help": "local checkpoint folder (model, tokenizer and processor)", "required": True})
    data: str = field(default="", metadata={
        "help": "env parquet (vagen data create) or samples file (.jsonl/.json/.parquet)",
        "required": True})
    out: str = field(default="runs/eval", metadata={
        "help": "output folder; rerunning with the same folder resumes"})
    groups: str = field(default="", metadata={
        "help": "comma-separated env groups of the data to play (default: all)"})
    mode: str = field(default="multi", metadata={
        "help": "multi: the group's protocol; single: one turn with uniform frames",
        "choices": MODES})
    frames: int | None = field(default=None, metadata={
        "help": "single mode: uniform frames shown (default: the group's initial_frames)"})
    protocol: str = field(default="retrieve", metadata={
        "help": "protocol a samples file is played with in multi mode"})
    split: str = field(default="test", metadata={
        "help": "split a samples file plays when its samples carry extra.split"})
    set: list[str] = field(default_factory=list, metadata={
        "help": "KEY=VALUE env group settings replacing the data's (e.g. max_pixels=50176 "
                "pool_max_frames=32)", "metavar": "KEY=VALUE"})
    backend: str = field(default="hf", metadata={
        "help": "policy engine", "choices": tuple(list_policy_backends())})
    device: str = field(default="cpu", metadata={"help": "where the policy runs",
                                                 "choices": DEVICES})
    gpus: int = field(default=1, metadata={
        "help": "data-parallel workers, one per GPU (with --device cpu: CPU processes)"})
    cpu_threads: int | None = field(default=None, metadata={
        "help": "--device cpu: torch threads per worker (default: torch's choice with one "
                "worker, the cores split evenly with several)"})
    batch_size: int = field(default=8, metadata={"help": "episodes played at once per worker"})
    temperature: float = field(default=0.0, metadata={"help": "0 is greedy"})
    seed: int = field(default=0, metadata={"help": "sampling seed (temperature > 0)"})
    limit: int | None = field(default=None, metadata={"help": "play only the first N rows"})
    server: str = field(default="", metadata={
        "help": "env server URL (default: start one in this process)"})
    env_workers: int = field(default=4, metadata={
        "help": "threads stepping envs in the in-process server"})
    max_failed_share: float = field(default=0.05, metadata={
        "help": "share of episodes that may fail (a video or row the env cannot play: "
                "recorded as failed, left out of accuracy) before the run exits non-zero"})
    retry_failed: bool = field(default=False, metadata={
        "help": "play again the episodes a previous run in OUT recorded as failed"})
    max_visual_tokens: int | None = field(default=None, metadata={
        "help": "cap each episode's image tokens: the env returns the frames that fit and "
                "then refuses requests with a message to the policy (the group key "
                "max_visual_tokens, as --set max_visual_tokens=N)"})
    view: bool = field(default=True, metadata={
        "help": "write the trajectory viewer, OUT/view/index.html (--no-view: skip it)"})

    def __post_init__(self) -> None:
        for key in ("gpus", "batch_size", "env_workers"):
            if getattr(self, key) < 1:
                raise ValueError(f"--{key.replace('_', '-')} must be >= 1, got "
                                 f"{getattr(self, key)}")
        for key in ("frames", "limit", "cpu_threads", "max_visual_tokens"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"--{key.replace('_', '-')} must be >= 1, got "
                                 f"{getattr(self, key)}")
        if self.temperature < 0:
            raise ValueError(f"--temperature must be >= 0, got {self.temperature}")

    def settings(self) -> dict[str, Any]:
        """The env group keys this run replaces: `--set`, then `--max-visual-tokens`."""
        settings = set_overrides(self.set)
        if self.max_visual_tokens is not None:
            settings["max_visual_tokens"] = self.max_visual_tokens
        return settings

    def group_names(self) -> list[str]:
        return [name.strip() for name in self.groups.split(",") if name.strip()]

    def identity(self) -> dict[str, Any]:
        """The settings the numbers depend on (a resumed run must keep them)."""
        return {"model": str(Path(self.model).expanduser().resolve()),
                "data": str(Path(self.data).resolve()), "mode": self.mode,
                "frames": self.frames, "protocol": self.protocol, "split": self.split,
                "set": self.settings(), "temperature": self.temperature,
                "seed": self.seed}


def run(config: EvalConfig) -> dict[str, Any]:
    """Play the rows not yet in OUT/results.jsonl, then write the summary and plots."""
    rows = load_rows(config.data, config.mode, config.frames, config.protocol, config.split,
                     config.settings(), config.group_names())
    rows = rows[:config.limit]
    check_policy(config.backend, config.model, config.device)
    out = Path(config.out)
    check_run(out, config.identity())
    results_path = out / RESULTS_FILE
    done = {r["id"] for r in read_results(results_path)
            if not (config.retry_failed and r.get("failed"))}
    pending = [row for row in rows if row.id not in done]
    if pending:
        _play_pending(config, pending, results_path, len(rows))
    wanted = {row.id for row in rows}
    results: dict[str, dict[str, Any]] = {}
    for result in read_results(results_path):  # a retried episode's later line wins
        if result["id"] in wanted and (result["id"] not in results
                                       or results[result["id"]].get("failed")):
            results[result["id"]] = result
    summary = summarize(results.values())
    write_report(out, summary, config.identity())
    if config.view:
        write_view(out)
    failed = summary["failed_episodes"]
    if failed["n"] > config.max_failed_share * len(rows):
        raise EvalError(f"{failed['n']} of {len(rows)} episodes failed ("
                        + ", ".join(f"{k}: {n}" for k, n in failed["by_reason"].items())
                        + f"), more than --max-failed-share {config.max_failed_share}: samples "
                        + ", ".join(failed["samples"][:20])
                        + f"; results and summary are in {out} (--retry-failed plays them "
                          "again)")
    return summary


def write_view(out: Path) -> Path | None:
    """The trajectory viewer of `out`. Results stay as they are when it cannot be written
    (a video that lives only where a remote env server runs): the reason is printed."""
    from vagen.video.decode import VideoError
    from vagen.view import build_view

    try:
        return build_view(out)
    except (OSError, ValueError, VideoError) as err:
        print(f"vagen eval: the trajectory viewer was not written: {err}", file=sys.stderr)
        return None


def _play_pending(config: EvalConfig, pending: list[EvalRow], results_path: Path,
                  total: int) -> None:
    """Play `pending` in this process or over `config.gpus` workers, appending results."""
    with env_server(config.server, config.env_workers) as url, \
            ResultsWriter(results_path) as writer, \
            _progress(total, total - len(pending)) as progress:
        def emit(result: dict[str, Any]) -> None:
            writer.write(result)
            progress(result)

        if config.gpus == 1:
            play_shard(config, pending, url, emit)
        else:
            shards = [shard for shard in shard_rows(pending, config.gpus) if shard]
            run_workers(play_shard, config, shards, url, emit, config.device, config.cpu_threads)


def play_shard(config: EvalConfig, rows: list[EvalRow], server_url: str, emit: Emit) -> None:
    """Load the policy and play `rows` in batches against the server at `server_url`."""
    from vagen.server.client import EnvClient

    if config.device == "cpu" and config.cpu_threads:
        import torch

        torch.set_num_threads(config.cpu_threads)
    policy, codec = load_policy(config.backend, config.model, config.device)
    with EnvClient(server_url) as client:
        play_rows(rows, policy, codec, client, config, emit)


def play_rows(rows: list[EvalRow], policy: Any, codec: Any, client: Any, config: EvalConfig,
              emit: Emit) -> None:
    """Play rows in batches of one group config each, reusing the batch's envs."""
    from vagen.env.video_qa.config import VideoQAConfig
    from vagen.rollout.backends.base import SamplingParams
    from vagen.rollout.manager import RolloutConfig, RolloutManager

    sampling = SamplingParams(temperature=config.temperature,
                              seed=config.seed if config.temperature > 0 else None)
    lookup = SampleLookup()
    slots = EnvSlots(client)
    for batch in batches(rows, config.batch_size):
        group = batch[0].config
        # turns, window and tokens per turn: the group's, as in training
        rollout = RolloutConfig.from_context(VideoQAConfig.from_dict(group).context(), sampling)
        manager = RolloutManager(policy, codec, client, rollout)
        play_batch(manager, slots, batch, lookup, emit)


def play_batch(manager: Any, slots: EnvSlots, batch: list[EvalRow], lookup: SampleLookup,
               emit: Emit) -> None:
    """Play one batch; an episode its env server answered with an error (a video or row it
    cannot play) is emitted as failed and the rest of the batch is played again. A server
    that does not answer at all stops the run (it resumes where it stopped)."""
    from vagen.server.client import EnvServerError

    env_ids = slots.take(batch[0].config, len(batch))
    try:
        trajectories = manager.run(env_ids, [row.seed for row in batch])
    except EnvServerError as err:
        failed = err.answered(env_ids)
        if not failed:
            raise
        rest = []
        for env_id, row in zip(env_ids, batch, strict=True):
            if env_id in failed:
                emit(failed_result(row, lookup, failed[env_id]))
            else:
                rest.append(row)
        if rest:
            play_batch(manager, slots, rest, lookup, emit)
        return
    for row, trajectory in zip(batch, trajectories, strict=True):
        emit(episode_result(row, trajectory, lookup))


def batches(rows: list[EvalRow], size: int) -> Iterator[list[EvalRow]]:
    """Rows in chunks of at most `size` sharing one group config (first-seen order)."""
    by_config: dict[str, list[EvalRow]] = {}
    for row in rows:
        by_config.setdefault(json.dumps(row.config, sort_keys=True), []).append(row)
    for group in by_config.values():
        for start in range(0, len(group), size):
            yield group[start:start + size]


class EnvSlots:
    """Env ids on the server per group config: created on first need, reused (reset with
    new seeds) by later batches, closed when the client closes."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.prefix = f"eval-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._ids: dict[str, list[str]] = {}

    def take(self, config: dict[str, Any], count: int) -> list[str]:
        from vagen.server.service import EnvSpec

        key = json.dumps(config, sort_keys=True)
        index = list(self._ids).index(key) if key in self._ids else len(self._ids)
        ids = self._ids.setdefault(key, [])
        new = [f"{self.prefix}-g{index}-{k}" for k in range(len(ids), count)]
        if new:
            self.client.create({env_id: EnvSpec(env=config["env"], config=config)
                                for env_id in new})
            ids.extend(new)
        return ids[:count]


def episode_result(row: EvalRow, trajectory: Any, lookup: SampleLookup) -> dict[str, Any]:
    """One line of results.jsonl: the row, its sample's labels, the metrics and responses,
    and what the trajectory viewer shows (`episode_view`)."""
    from vagen.env.video_qa.config import VideoQAConfig
    from vagen.rollout.records import episode_view

    sample = lookup.sample(row.config, row.seed)
    infos = [turn.info for turn in trajectory.turns]
    played = infos[-1].get("sample_id") if infos else None
    if played not in (None, sample.id):
        raise EvalError(f"episode {row.id}: the server played sample '{played}' but this "
                        f"process maps it to '{sample.id}'; do both read the same "
                        f"{row.config['data']}?")
    durations = lookup.durations(sample)
    widths = frame_widths(durations, row.config["pool_fps"], row.config["pool_max_frames"])
    responses = [turn.response for turn in trajectory.turns]
    return {"id": row.id, "group": row.group, "seed": row.seed, "sample_id": sample.id,
            "protocol": row.config["protocol"], "source": sample.source,
            "category": sample.category,
            "duration_s": sample.duration_s if sample.duration_s is not None else sum(durations),
            "answer_type": sample.answer_type, "answer": sample.answer,
            **score_episode(sample, responses, infos, widths),
            "reward": trajectory.reward, "terminated": trajectory.terminated,
            "responses": responses,
            **episode_view(trajectory, sample, durations,
                           VideoQAConfig.from_dict(row.config).pool_config())}


# What a failed episode's error says -> its reason in the summary (first match).
FAILURE_REASONS = (("no such video file", "missing video"), ("empty file", "empty video"),
                   ("cannot decode", "undecodable video"), ("no video stream",
                                                            "undecodable video"),
                   ("no decodable video frames", "undecodable video"),
                   ("SampleError", "bad sample"))


def failure_reason(message: str) -> str:
    """A short reason for a failed episode's error message."""
    for phrase, reason in FAILURE_REASONS:
        if phrase in message:
            return reason
    return "env error"


def failed_result(row: EvalRow, lookup: SampleLookup, message: str) -> dict[str, Any]:
    """The results.jsonl line of an episode its env could not play."""
    try:
        sample = lookup.sample(row.config, row.seed)
    except (RowsError, ValueError, OSError):  # the row itself may be what is broken
        sample = None
    return {"id": row.id, "group": row.group, "seed": row.seed,
            "sample_id": sample.id if sample else None,
            "source": sample.source if sample else None,
            "failed": failure_reason(message), "error": message, "correct": False}


@contextmanager
def env_server(url: str, workers: int) -> Iterator[str]:
    """The server at `url`, checked to answer; or, without a URL, a real HTTP env server on a
    free 127.0.0.1 port in this process for the duration of the block."""
    from vagen.server.client import EnvClient, EnvServerError

    if url:
        with EnvClient(url, retries=1) as client:
            try:
                client.health()
            except EnvServerError as err:
                raise EvalError(f"no env server answers at {url} ({err}); start one with "
                                   "`vagen server --port PORT` or drop --server") from err
        yield url
        return
    from vagen.server.app import BackgroundServer
    from vagen.server.service import EnvService

    server = BackgroundServer(EnvService(None, workers), threads=workers + 4)
    try:
        yield server.url
    finally:
        server.stop()


@contextmanager
def _progress(total: int, done: int) -> Iterator[Emit]:
    """A tqdm bar over episodes with the running accuracy of this run's episodes."""
    from tqdm import tqdm

    seen = {"n": 0, "correct": 0, "failed": 0}
    with tqdm(total=total, initial=done, desc="eval", unit="episode") as bar:
        def update(result: dict[str, Any]) -> None:
            if result.get("failed"):
                seen["failed"] += 1
            else:
                seen["n"] += 1
                seen["correct"] += bool(result["correct"])
            bar.set_postfix(acc=f"{seen['correct'] / max(seen['n'], 1):.3f}",
                            failed=seen["failed"], refresh=False)
            bar.update(1)

        yield update


def _parser() -> argparse.ArgumentParser:
    """Flags from EvalConfig's fields, so the dataclass stays the one source of defaults."""
    parser = argparse.ArgumentParser(prog="vagen eval", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(parser, EvalConfig)
    return parser


def main(argv: list[str] | None = None) -> int:
    """`vagen eval --model DIR --data FILE [--out DIR] [--mode multi|single] ...`."""
    from vagen.env.video_qa import ConfigError
    from vagen.server.client import EnvServerError

    args = _parser().parse_args(argv)
    try:
        config = EvalConfig(**flag_values(args, EvalConfig))
        summary = run(config)
    except (ValueError, FileNotFoundError, EnvServerError, WorkerError, EvalError) as err:
        known = (RowsError, PolicyError, ResultsError, ConfigError, EvalError, ConfigKeyError)
        kind = "" if isinstance(err, known) else f"{type(err).__name__}: "
        print(f"vagen eval: error: {kind}{err}", file=sys.stderr)
        return 2
    print(markdown({"overall": summary["overall"]}))
    print(f"results, summary and plots in {config.out}")
    from vagen.view import view_page

    if config.view and view_page(config.out).exists():
        print(f"trajectory viewer: {view_page(config.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
