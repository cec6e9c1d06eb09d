"""Rollout benchmark (issue 5): batched vs one-by-one multi-turn generation, side by side.

The same policy plays the same trajectories (env ids and seeds) twice through
`RolloutManager` against real `video_qa` envs behind a `vagen server` subprocess on
127.0.0.1 (its own process, as in training, so it never holds this one's GIL): once all
at once (one `generate` and one env call per turn for the whole batch), once one trajectory
after another. It prints the generated tokens per second of each and their ratio
(goal >= 4x). The tiny random Qwen2.5-VL never answers, so every trajectory plays all
`--turns` turns. The defaults are the quick start's rollout (scripts/configs/local_grpo.yaml,
scripts/quickstart/env_config.yaml): 16 trajectories of 2 turns, 16 opening frames and 8 per
request at 56x56, no worked example in the system prompt, all frames kept, up to 64 new
tokens a turn. The default run takes about 70 s on two CPU cores.

    python benchmarks/rollout.py [--envs 16 --turns 2 --max-new-tokens 64 --threads 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from vagen.data.synthetic import SAMPLES_FILE, SynthConfig, generate_dataset
from vagen.rollout.backends.base import SamplingParams
from vagen.rollout.backends.hf import HFBackend
from vagen.rollout.manager import RolloutConfig, RolloutManager, Trajectory
from vagen.rollout.tokens import ChatCodec
from vagen.server.client import EnvClient
from vagen.server.launch import server_subprocess
from vagen.testing import tiny_model_dir

SYNTH = SynthConfig(kinds=["color", "count"], min_duration_s=20, max_duration_s=30,
                    min_carrier_s=6, max_carrier_s=12, fps=2, size=64)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/rollout.py",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="checkpoint folder (default: the tiny Qwen2.5-VL, "
                                        "built once into ~/.cache/vagen)")
    parser.add_argument("--envs", type=int, default=16, help="trajectories per mode")
    parser.add_argument("--turns", type=int, default=2, help="env max_turns")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="tokens per turn at most")
    parser.add_argument("--frames", type=int, default=16, help="opening frames per episode")
    parser.add_argument("--frames-per-turn", type=int, default=8, help="frames per request")
    parser.add_argument("--samples", type=int, default=4, help="synthetic questions")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (the tiny model runs fastest on one; 0: torch's "
                             "own choice)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic data seed")
    args = parser.parse_args(argv)
    for key in ("envs", "turns", "max_new_tokens", "frames", "frames_per_turn", "samples"):
        if getattr(args, key) < (2 if key == "turns" else 1):
            parser.error(f"--{key.replace('_', '-')} is too small")
    return args


def env_group(samples: Path, args: argparse.Namespace) -> dict:
    return {"name": "bench", "env": "video_qa", "protocol": "retrieve", "data": str(samples),
            "max_turns": args.turns, "initial_frames": args.frames,
            "frames_per_turn": args.frames_per_turn, "max_pixels": 56 * 56,
            "prompt_example": False}


def tokens_of(trajectories: list[Trajectory]) -> tuple[int, int]:
    """(generated tokens, turns) over `trajectories`."""
    turns = [turn for t in trajectories for turn in t.turns]
    return sum(turn.num_tokens for turn in turns), len(turns)


def play(manager: RolloutManager, env_ids: list[str], seeds: list[int], batched: bool
         ) -> tuple[list[Trajectory], float]:
    start = time.perf_counter()
    if batched:
        trajectories = manager.run(env_ids, seeds)
    else:
        trajectories = [trajectory for env_id, seed in tqdm(
            list(zip(env_ids, seeds, strict=True)), desc="one-by-one", leave=False)
            for trajectory in manager.run([env_id], [seed])]
    return trajectories, time.perf_counter() - start


def report(name: str, trajectories: list[Trajectory], seconds: float) -> float:
    tokens, turns = tokens_of(trajectories)
    rate = tokens / seconds
    print(f"{name:<11} {len(trajectories)} trajectories, {turns} turns, {tokens} tokens in "
          f"{seconds:.2f} s -> {rate:.1f} tokens/s", flush=True)
    return rate


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model_path = Path(args.model) if args.model else tiny_model_dir()
    model = AutoModelForImageTextToText.from_pretrained(model_path).eval()
    codec = ChatCodec(AutoProcessor.from_pretrained(model_path))
    # no sampling seed: a fixed one re-seeds every generate call, so one-by-one trajectories
    # of the same question would all draw the same tokens
    sampling = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=1.0)
    config = RolloutConfig(max_turns=args.turns, window=None, sampling=sampling)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"rollout benchmark: {model_path.name} ({params:.1f} M parameters), {args.envs} "
          f"trajectories x up to {args.turns} turns, <= {args.max_new_tokens} new tokens a "
          f"turn, {args.frames} opening frames, torch threads {torch.get_num_threads()}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="vagen-bench-rollout-") as tmp:
        generate_dataset(tmp, args.samples, seed=args.seed, config=SYNTH)
        config_path = Path(tmp) / "env_config.yaml"
        config_path.write_text(yaml.safe_dump([env_group(Path(tmp) / SAMPLES_FILE, args)]))
        with server_subprocess(config_path) as url, EnvClient(url) as client:
            env_ids = [f"bench-{i}" for i in range(args.envs)]
            client.create(dict.fromkeys(env_ids, {"group": "bench"}))
            seeds = list(range(args.envs))
            client.reset(dict(zip(env_ids, seeds, strict=True)))  # warm the frame pools
            manager = RolloutManager(HFBackend(model, codec), codec, client, config)
            manager.run(env_ids[:1], seeds[:1])  # warm the model
            batched = report("batched", *play(manager, env_ids, seeds, batched=True))
            single = report("one-by-one", *play(manager, env_ids, seeds, batched=False))
    print(f"ratio: batched generates {batched / single:.1f}x the tokens/s of one-by-one "
          f"(goal >= 4x)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
