"""Train-step benchmark (issue 16): what processing each frame once and encoding it once
saves in a local GRPO step, side by side in one process.

Two configs, each one GRPO step of the local trainer (rollout against a real in-process env
server, advantages, update) on the tiny random Qwen2.5-VL:
  (a) quick start: 28x28 frames, 16 opening frames + 8 asked for, n = 8, 4 prompts;
  (b) vision-heavy: 448x448 frames, 16 + 8 + 8 frames, n = 8, 1 prompt.
A random model never asks for frames, so the policy's generation runs as usual (its cost
is paid) and its text is then replaced by a scripted request of 16 pool frames, another
for each sample of the group (`<retrieve>3,18</retrieve>`, ...), and last an answer, with
sampling log-prob 0: the step's shape is a trained policy's, its learning signal is not.
Each step plays prompts no earlier step played. The synthetic videos' flat frames repeat
(and equal frames are one cache entry), so each video is rewritten with a distinct
textured frame at every time, as a camera's frames would be. Printed, with the issue's
goals:
  - vision-tower patches encoded per step, feature cache off vs on (a count);
  - image processing per 1,000 frames: the HF image processor per turn (as before) vs
    `ImageProcessing` (patchify of frames on the grid, each distinct frame once);
  - whole GRPO step time, cache off vs on (median of `--repeats` steps after a warm-up);
  - bytes held per trajectory row (uint8 frames + pixel values), each image its own copy
    (as before) vs shared by content key;
  - vision-tower time per 1,000 frames over the step's training rows (one tower call a
    row), attention one call per image (transformers' SDPA, as before) vs packed (one
    call per run of equally sized images).

    python benchmarks/train_step.py [--repeats 3 --only b]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from vagen.config import from_dict
from vagen.data.synthetic import SAMPLES_FILE, SynthConfig, generate_dataset
from vagen.rollout.backends.base import Generation, PromptInput, SamplingParams
from vagen.rollout.images import ImageProcessing
from vagen.rollout.vision_attention import PACKED_ATTENTION, PER_BLOCK
from vagen.rollout.vision_features import DEFAULT_KEPT_MB, vision_model
from vagen.testing import tiny_model_dir
from vagen.trainer.local import LocalTrainer, TrainConfig
from vagen.video.encode import write_mp4

POOL_FRAMES = 40  # 40 s videos, a pool frame a second


@dataclass(frozen=True)
class Setup:
    """One benchmarked config."""

    name: str
    size: int  # frame side (px): video size and the pool's and processor's max_pixels side
    frames: tuple[int, ...]  # opening frames, then frames per request
    n: int
    prompts: int
    max_new_tokens: int
    micro_batch_size: int


SETUPS = {
    "a": Setup("(a) quick start", 28, (16, 8), 8, 4, 32, 16),
    "b": Setup("(b) vision-heavy", 448, (16, 8, 8), 8, 1, 16, 4),
}


class ScriptedRequests:
    """The real backend generates (and pays for it); its text becomes the scripted action
    of the turn, so every trajectory asks for frames like a trained policy."""

    def __init__(self, backend, codec, turns: int) -> None:
        self.backend = backend
        self.codec = codec
        self.turns = turns
        self.calls = 0

    def generate(self, prompts: list[PromptInput], sampling: SamplingParams) -> list[Generation]:
        self.backend.generate(prompts, sampling)
        turn = self.calls % self.turns
        self.calls += 1
        return [self._generation(self._action(turn, row)) for row in range(len(prompts))]

    def _action(self, turn: int, row: int) -> str:
        if turn == self.turns - 1:
            return "<answer>A</answer>"
        start = (3 * row + 11 * turn) % (POOL_FRAMES - 16)
        return f"<retrieve>{start},{start + 15}</retrieve>"

    def _generation(self, text: str) -> Generation:
        ids = self.codec.encode(text) + [self.codec.im_end_id]
        return Generation(ids, [0.0] * len(ids), text)


class TowerCount:
    """Patches that run through the vision tower (a forward pre-hook on it)."""

    def __init__(self, model) -> None:
        self.patches = 0
        vision_model(model).visual.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module, args, kwargs) -> None:
        self.patches += int(kwargs["grid_thw"].prod(-1).sum())


def prepare(setup: Setup, root: Path, steps: int) -> tuple[Path, Path]:
    """The setup's data set (a new prompt for each prompt of `steps` steps), env config and
    tiny model."""
    synth = SynthConfig(kinds=["color"], min_duration_s=POOL_FRAMES,
                        max_duration_s=POOL_FRAMES, fps=2,
                        size=max(64, setup.size), pool_fps=1.0,
                        retrieve_frames=setup.frames[1])
    data = root / setup.name.split()[0].strip("()")
    samples = generate_dataset(data, n=setup.prompts * steps, seed=0, config=synth)
    rng = np.random.default_rng(0)
    for sample in samples:
        for video in sample.videos:
            write_mp4(data / video, textured_frames(rng, synth), fps=synth.fps)
    pixels = setup.size * setup.size
    group = {"name": "bench", "env": "video_qa", "protocol": "retrieve",
             "data": str(data / SAMPLES_FILE), "n": setup.prompts * steps,
             "max_turns": len(setup.frames), "initial_frames": setup.frames[0],
             "frames_per_turn": max(setup.frames[1:]), "window": len(setup.frames),
             "max_pixels": pixels, "min_pixels": min(pixels, 28 * 28),
             "max_new_tokens": setup.max_new_tokens, "prompt_style": "compact",
             "frame_labels": "index", "lenient_spans": True,
             "rewards": {"choice": 1.0, "format": 0.2}}
    env_config = data / "env_config.yaml"
    env_config.write_text(yaml.safe_dump({"env_groups": [group]}))
    model = tiny_model_dir(max_pixels=max(pixels, 112 * 112))
    return env_config, model


def textured_frames(rng: np.random.Generator, synth: SynthConfig) -> list[np.ndarray]:
    """A video's worth of distinct frames: coarse random texture, new at every frame."""
    cells = synth.size // 8
    return [np.kron(rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8),
                    np.ones((8, 8, 1), np.uint8))
            for _ in range(synth.max_duration_s * synth.fps)]


def trainer(setup: Setup, env_config: Path, model: Path, out: Path, cached: bool
            ) -> tuple[LocalTrainer, TowerCount]:
    config = from_dict(TrainConfig, {
        "model": {"path": str(model), "device": "cpu",
                  "vision_cache_mb": DEFAULT_KEPT_MB if cached else 0},
        "envs": {"config": str(env_config), "group": "bench"},
        "algo": {"n": setup.n}, "optim": {"micro_batch_size": setup.micro_batch_size},
        "steps": 1000, "prompts_per_step": setup.prompts, "save_every": 0,
        "out_dir": str(out), "resume": "none", "view": {"every": 0}})
    run = LocalTrainer(config)
    run.rollout.policy = ScriptedRequests(run.rollout.policy, run.policy.codec,
                                          len(setup.frames))
    return run, TowerCount(run.policy.model)


def timed_steps(run: LocalTrainer, count: TowerCount, repeats: int
                ) -> tuple[float, int, list]:
    """Median step time after a warm-up step, patches encoded in the last step, and the
    last step's trajectories."""
    kept: dict = {}
    play = run.play

    def keep(step: int):
        kept["trajectories"] = play(step)
        return kept["trajectories"]

    run.play = keep
    run.train_step()
    times = []
    for _ in range(repeats):
        before = count.patches
        started = time.perf_counter()
        run.train_step()
        times.append(time.perf_counter() - started)
        patches = count.patches - before
    return statistics.median(times), patches, kept["trajectories"]


def processing_ms(trajectories: list, image_processor) -> tuple[float, float, int]:
    """ms per 1,000 frames shown: each turn's frames through the HF processor (as before)
    vs `ImageProcessing` (each distinct frame once), over the step's turns in order."""
    turns = [[image.frame for image in segment_images(t)] for t in trajectories]
    shown = sum(len(frames) for frames in turns)
    started = time.perf_counter()
    for frames in turns:
        image_processor(images=frames, return_tensors="pt")
    hf = time.perf_counter() - started
    processing = ImageProcessing(image_processor)
    started = time.perf_counter()
    for frames in turns:
        processing(frames)
    ours = time.perf_counter() - started
    return hf / shown * 1e6, ours / shown * 1e6, shown


def tower_ms(trajectories: list, model) -> tuple[float, float]:
    """ms per 1,000 frames for the vision tower over each training row's images (a row is
    what one forward encodes without the feature cache), per-image vs packed attention."""
    inner = vision_model(model)
    rows = [s.images for t in trajectories for s in t.tokens.segments
            if any(s.loss_mask) and s.images]
    inputs = [(torch.cat([image.pixel_values for image in images]),
               torch.stack([image.grid_thw for image in images])) for images in rows]
    frames = sum(len(images) for images in rows)
    attention = inner.visual.config._attn_implementation
    times = []
    try:
        for implementation in (PER_BLOCK, PACKED_ATTENTION):
            inner.visual.config._attn_implementation = implementation
            started = time.perf_counter()
            with torch.no_grad():
                for pixels, grids in inputs:
                    inner.get_image_features(pixels, grids)
            times.append((time.perf_counter() - started) / frames * 1e6)
    finally:
        inner.visual.config._attn_implementation = attention
    return times[0], times[1]


def segment_images(trajectory) -> list:
    return [image for segment in trajectory.tokens.segments for image in segment.images]


def row_bytes(trajectories: list) -> tuple[float, float]:
    """Mean bytes per training row: every image its own frame + pixel values (before) vs
    each distinct image once across the step (shared by key)."""
    rows = [s for t in trajectories for s in t.tokens.segments if any(s.loss_mask)]

    def size(image) -> int:
        return image.pixel_values.nbytes + image.frame.nbytes

    each = sum(size(image) for row in rows for image in row.images)
    distinct = {image.key: size(image) for row in rows for image in row.images}
    return each / len(rows), sum(distinct.values()) / len(rows)


def ratio(before: float, after: float) -> float:
    return before / after if after else float("inf")


def report(setup: Setup, repeats: int, root: Path) -> None:
    env_config, model = prepare(setup, root, repeats + 1)
    results = {}
    for cached in (False, True):
        run, count = trainer(setup, env_config, model, root / f"run-{setup.size}-{cached}",
                             cached)
        try:
            results[cached] = timed_steps(run, count, repeats)
            image_processor = run.policy.processor.image_processor
            policy_model = run.policy.model
        finally:
            run.close()
    (off_s, off_patches, trajectories), (on_s, on_patches, _) = results[False], results[True]
    hf_ms, ours_ms, shown = processing_ms(trajectories, image_processor)
    each, shared = row_bytes(trajectories)
    per_image_ms, packed_ms = tower_ms(trajectories, policy_model)
    frames = "+".join(map(str, setup.frames))
    print(f"\n{setup.name}: {setup.size}x{setup.size} frames, {frames} frames, "
          f"n = {setup.n}, {setup.prompts} prompt(s); median of {repeats} steps")
    print(f"  vision patches per step  off {off_patches:>9,}  on {on_patches:>9,}  "
          f"{ratio(off_patches, on_patches):5.1f}x fewer  (goal >= 3x for (b))")
    print(f"  processing ms/1000 frames  HF {hf_ms:8.1f}  ours {ours_ms:8.1f}  "
          f"{ratio(hf_ms, ours_ms):5.1f}x  (goal >= 5x; {shown} frames shown)")
    print(f"  GRPO step s             off {off_s:9.2f}  on {on_s:9.2f}  "
          f"{ratio(off_s, on_s):5.2f}x  (goal >= 1.5x for (b))")
    print(f"  MB held per row        each {each / 1e6:9.2f}  shared {shared / 1e6:6.2f}  "
          f"{ratio(each, shared):5.1f}x less")
    print(f"  tower ms/1000 frames  per image {per_image_ms:8.1f}  packed {packed_ms:8.1f}  "
          f"{ratio(per_image_ms, packed_ms):5.1f}x  (attention calls: one per frame size)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/train_step.py",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per mode")
    parser.add_argument("--only", choices=sorted(SETUPS), help="run one config")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    torch.set_num_threads(args.threads)
    np.random.seed(0)
    with tempfile.TemporaryDirectory(prefix="vagen-train-step-") as tmp:
        for key in [args.only] if args.only else sorted(SETUPS):
            report(SETUPS[key], args.repeats, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
