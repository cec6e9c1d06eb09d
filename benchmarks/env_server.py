"""Env server benchmark (issue 4, item 6): ratios measured side by side in one run.

1. codec: a loopback HTTP step of E envs x F frames at SxS, our default codec (msgpack raw)
   vs VAGEN's base64-PNG JSON (goal >= 10x faster);
2. http: a batched video_qa step through the server (--workers 1) vs the same steps in
   process (goal <= 1.3x the in-process time);
3. retrieve: a retrieve turn served from the cached frame pool vs a cold qwen-vl-utils
   `fetch_video` of the same span (goal >= 100x faster);
4. pool: building a pool cold vs `fetch_video` of the same video at the pool's rate
   (goal <= 0.7x its time);
5. workers: cold resets per second of a server with --workers 2 vs 1 (goal >= 1.7x); the
   same with --decoders 0 (the worker threads decode) shows what the decoding processes
   add.

Servers run as subprocesses (`python benchmarks/env_server.py server ...` = `vagen server`
plus a benchmark env that returns fixed frames). The default run takes about two minutes
on two CPU cores; --envs, --frames, --size, --samples and --video-size scale it up.

    python benchmarks/env_server.py [--envs 64 --frames 8 --size 448 --repeats 3]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm import tqdm

from vagen.data.sample import load_samples
from vagen.data.synthetic import SynthConfig, generate_dataset
from vagen.env.base import Observation, StepResult
from vagen.env.registry import make_env, register_env
from vagen.server.client import EnvClient
from vagen.server.launch import server_subprocess
from vagen.video.pool import PoolConfig, build_pool, get_pool

CACHE_OFF = {"VAGEN_POOL_CACHE_BYTES": "0"}


@register_env("bench_frames")
class FixedFramesEnv:
    """Every step returns the same `frames` textured SxS frames, so a step costs nothing
    and the wire is all that is measured."""

    def __init__(self, config: dict[str, Any]):
        rng = np.random.default_rng(int(config.get("seed", 0)))
        size, count = int(config["size"]), int(config["frames"])
        ramp = np.linspace(0, 200, size)
        base = (ramp[:, None, None] + ramp[None, :, None] * np.array([0.3, 0.6, 0.9])) / 2 + 40
        # camera-like texture (PNG would flatter itself on flat colour): one noise field,
        # shifted per frame
        noise = rng.integers(-10, 11, (size, size, 3), dtype=np.int16)
        self.frames = [np.clip(base + np.roll(noise, 7 * i, axis=1), 0, 255).astype(np.uint8)
                       for i in range(count)]
        self.text = " ".join(["<image>"] * count)

    def system_prompt(self) -> str:
        return "benchmark"

    def reset(self, seed: int) -> Observation:
        return Observation("ready")  # frames come with steps: only steps are timed

    def step(self, action_text: str) -> StepResult:
        info = {"valid_action": True, "turn": 1, "frames_seen": len(self.frames),
                "answer": None, "correct": False}
        obs = Observation(self.text, self.frames, [float(i) for i in range(len(self.frames))])
        return StepResult(obs, 0.0, False, False, info)

    def close(self) -> None:
        pass


def server_process(config: Path, workers: int, env: dict[str, str] | None = None,
                   flags: tuple[str, ...] = ()):
    """A `vagen server` subprocess with the benchmark env registered (this file run as `server`);
    a context manager yielding its URL."""
    return server_subprocess(config, workers, launcher=[sys.executable, __file__], env=env,
                             flags=flags)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def report(name: str, ours: float, theirs: float, what: str, goal: str) -> str:
    """One printed line: both times and the ratio, faster-is-better as `theirs / ours`."""
    line = (f"{name:<9} {what}: {ours:.3f} s vs {theirs:.3f} s -> {theirs / ours:.1f}x "
            f"faster ({ours / theirs:.2f}x the time; goal {goal})")
    print(line, flush=True)
    return line


def bench_codecs(args: argparse.Namespace, config: Path) -> str:
    env_ids = [f"frames-{i}" for i in range(args.envs)]
    with server_process(config, workers=2) as url:
        times = {}
        for codec, repeats in (("msgpack", args.repeats), ("png-base64", 1)):
            with EnvClient(url, codec=codec, timeout_s=1800) as client:
                client.create({e: {"env": "bench_frames", "config": {
                    "size": args.size, "frames": args.frames, "seed": i}}
                    for i, e in enumerate(env_ids)})
                client.reset(dict.fromkeys(env_ids, 0))
                step = {e: "go" for e in env_ids}
                times[codec] = min(timed(lambda c=client, s=step: c.step(s))
                                   for _ in tqdm(range(repeats), desc=f"codec {codec}",
                                                 leave=False))
    return report("codec", times["msgpack"], times["png-base64"],
                  f"HTTP step round trip, {args.envs} envs x {args.frames} frames "
                  f"{args.size}x{args.size}, msgpack vs png-base64", ">= 10x")


def _oracle_round(envs: dict[str, Any], seeds: dict[str, int], client: EnvClient
                  ) -> tuple[float, float]:
    """Reset both sides (not timed), then time the first oracle step in process and over
    HTTP, in alternating order."""
    client.reset(seeds)
    for env_id, env in envs.items():
        env.reset(seeds[env_id])
    actions = {env_id: env.oracle_action() for env_id, env in envs.items()}
    local = timed(lambda: [env.step(actions[env_id]) for env_id, env in envs.items()])
    remote = timed(lambda: client.step(actions))
    return local, remote


def bench_http_step(args: argparse.Namespace, config: Path, group: dict[str, Any]) -> str:
    seeds = {f"qa-{i}": i for i in range(args.envs)}
    envs = {env_id: make_env("video_qa", group) for env_id in seeds}
    with server_process(config, workers=1) as url, EnvClient(url) as client:
        client.create(dict.fromkeys(seeds, {"group": group["name"]}))
        _oracle_round(envs, seeds, client)  # warm the pools and imports on both sides
        rounds = [_oracle_round(envs, seeds, client)
                  for _ in tqdm(range(args.repeats * 3), desc="http step", leave=False)]
    local = statistics.median(r[0] for r in rounds)
    remote = statistics.median(r[1] for r in rounds)
    return report("http", remote, local, f"video_qa retrieve step of {args.envs} envs, "
                  "HTTP (1 worker) vs in process", "<= 1.3x the time")


def bench_retrieve(args: argparse.Namespace, group: dict[str, Any],
                   videos: dict[str, list[str]]) -> str:
    from qwen_vl_utils import fetch_video

    env = make_env("video_qa", group)
    pool_config = _pool_config(group)
    ours, theirs = [], []
    for seed in tqdm(range(args.samples), desc="retrieve", leave=False):
        env.reset(seed)
        action = env.oracle_action()
        paths = videos[env.sample_for_seed(seed).id]
        match = re.search(r"<retrieve>(\d+),(\d+)</retrieve>", action)
        if len(paths) != 1 or match is None:
            continue  # multi-video samples, and ones the first frames already answer
        times = get_pool(paths[0], pool_config).timestamps  # cached by the reset
        half = 0.5 / group["pool_fps"]  # the span of pool frames s..e in seconds
        start, end = float(times[int(match[1])]) - half, float(times[int(match[2])]) + half
        ours.append(timed(lambda a=action: env.step(a)))
        theirs.append(timed(lambda p=paths[0], s=start, e=end: fetch_video(
            {"video": p, "video_start": s, "video_end": e, "fps": group["pool_fps"],
             "min_frames": 2, "max_frames": group["frames_per_turn"],
             "max_pixels": group["max_pixels"]})))
    return report("retrieve", sum(ours), sum(theirs),
                  f"{len(ours)} retrieve turns from the cached pool vs cold fetch_video of "
                  "the same spans", ">= 100x")


def bench_cold_pool(args: argparse.Namespace, group: dict[str, Any],
                    videos: dict[str, list[str]]) -> str:
    from qwen_vl_utils import fetch_video

    config = _pool_config(group)
    paths = sorted({path for paths in videos.values() for path in paths})[:args.pool_videos]
    ours, theirs = [], []
    for i, path in enumerate(tqdm(paths, desc="cold pool", leave=False)):
        pair = [lambda p=path: ours.append(timed(lambda: build_pool(p, config))),
                lambda p=path: theirs.append(timed(lambda: fetch_video(
                    {"video": p, "fps": config.pool_fps, "max_frames": config.pool_max_frames,
                     "max_pixels": config.max_pixels})))]
        for run in pair[::1 if i % 2 else -1]:  # alternate who reads the file first
            run()
    return report("pool", sum(ours), sum(theirs),
                  f"cold pools of {len(paths)} videos vs fetch_video at the pool's rate",
                  "<= 0.7x the time")


def bench_workers(args: argparse.Namespace, config: Path, group: dict[str, Any]) -> str:
    """All servers up at once, their batches timed in turns, so load on the machine hits
    them alike; the pool cache is off so every reset decodes its videos. An untimed first
    round starts each server's decoding processes."""
    seeds = {f"qa-{i}": i for i in range(args.samples)}
    servers = {"1": (1, ()), "2": (2, ()), "2 threads": (2, ("--decoders", "0"))}
    with ExitStack() as stack:
        clients = {name: stack.enter_context(EnvClient(stack.enter_context(
            server_process(config, workers, CACHE_OFF, flags)))) for name, (workers, flags)
            in servers.items()}
        for client in clients.values():
            client.create(dict.fromkeys(seeds, {"group": group["name"]}))
            client.reset(seeds)
        times: dict[str, list[float]] = {name: [] for name in clients}
        for _ in tqdm(range(args.repeats), desc="resets by workers", leave=False):
            for name, client in clients.items():
                times[name].append(timed(lambda c=client: c.reset(seeds)))
    best = {name: min(values) for name, values in times.items()}
    report("workers", best["2 threads"], best["1"], f"{len(seeds)} cold resets (pool cache "
           "off), --workers 2 --decoders 0 vs --workers 1", "none: threads alone")
    return report("workers", best["2"], best["1"],
                  f"{len(seeds)} cold resets (pool cache off), --workers 2 vs 1", ">= 1.7x")


def _pool_config(group: dict[str, Any]) -> PoolConfig:
    return PoolConfig(pool_fps=group["pool_fps"], pool_max_frames=group["pool_max_frames"],
                      max_pixels=group["max_pixels"])


def prepare(args: argparse.Namespace, root: Path
            ) -> tuple[Path, dict[str, Any], dict[str, list[str]]]:
    """Synthetic data, the retrieve group the video_qa parts use (defaults of the env
    config), its env config file, and each sample's video paths."""
    data = Path(args.data) if args.data else root / "synthetic"
    if not (data / "samples.jsonl").exists():
        generate_dataset(data, n=args.samples, seed=0,
                         config=SynthConfig(size=args.video_size), progress=True)
    group = {"name": "bench-retrieve", "env": "video_qa", "protocol": "retrieve",
             "data": str(data / "samples.jsonl")}
    group = {**group, **{k: v for k, v in make_env("video_qa", group).config.to_dict().items()
                         if k in ("pool_fps", "pool_max_frames", "max_pixels",
                                  "frames_per_turn")}}
    config = root / "env_config.yaml"
    config.write_text(yaml.safe_dump([group]))
    videos = {sample.id: [str(data / path) for path in sample.videos]
              for sample in load_samples(data / "samples.jsonl")}
    return config, group, videos


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["server"]:  # the benchmark env server (see server_process)
        from vagen.server.app import main as serve

        return serve(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", type=int, default=64, help="envs per batch")
    parser.add_argument("--frames", type=int, default=8, help="frames per env (codec part)")
    parser.add_argument("--size", type=int, default=448, help="frame side (codec part)")
    parser.add_argument("--samples", type=int, default=24,
                        help="synthetic samples (videos) for the video parts")
    parser.add_argument("--video-size", type=int, default=64,
                        help="synthetic video side (the project's data use 64)")
    parser.add_argument("--pool-videos", type=int, default=8,
                        help="videos whose pools are built cold (pool part)")
    parser.add_argument("--data", help="an existing synthetic data folder to reuse")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions")
    parser.add_argument("--only", nargs="*", choices=["codec", "http", "retrieve", "pool",
                                                      "workers"], help="run only these parts")
    args = parser.parse_args(argv)
    parts = args.only or ["codec", "http", "retrieve", "pool", "workers"]
    with tempfile.TemporaryDirectory() as tmp:
        config, group, videos = prepare(args, Path(tmp))
        get_pool(next(iter(videos.values()))[0])  # import torch (qwen-vl-utils) before any timing
        runs = {"codec": lambda: bench_codecs(args, config),
                "http": lambda: bench_http_step(args, config, group),
                "retrieve": lambda: bench_retrieve(args, group, videos),
                "pool": lambda: bench_cold_pool(args, group, videos),
                "workers": lambda: bench_workers(args, config, group)}
        lines = []
        for part in parts:
            started = time.perf_counter()
            lines.append(runs[part]())
            print(f"{'':<9} ({part} part: {time.perf_counter() - started:.0f} s)", flush=True)
    print("\nsummary (ours vs theirs):", *lines, sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
