"""Size and build time of the trajectory viewer (issue 15, item 4) for a 1,000-episode
eval of quick-start-like episodes (one ~60 s synthetic video each, 16 opening frames, one
retrieval of up to 8, an answer), against the goals (< 30 MB, seconds). Episodes are
played by the env's oracle (no model), so the records are those `vagen eval` writes.
Synthetic frames are flat colours: natural video frames make larger JPEGs.

    python benchmarks/view_size.py [--episodes 1000 --workers 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from vagen.data.synthetic import SAMPLES_FILE, SynthConfig, generate_dataset
from vagen.env.video_qa import VideoQAConfig, VideoQAEnv
from vagen.quickstart import SYNTH
from vagen.rollout.manager import Shown, Trajectory, TurnRecord
from vagen.rollout.records import episode_view
from vagen.view import build_view
from vagen.view.build import THUMB_SIDE

GOAL_MB = 30.0


def oracle_records(env: VideoQAEnv, episodes: int) -> list[dict]:
    """The results.jsonl lines of `episodes` oracle episodes."""
    records = []
    for seed in range(episodes):
        shown, turns = [Shown.of(env.reset(seed))], []
        while True:
            action = env.oracle_action()
            result = env.step(action)
            turns.append(TurnRecord(action, 0, result.reward, result.info))
            shown.append(Shown.of(result.obs))
            if result.done:
                break
        sample = env.sample_for_seed(seed)
        trajectory = Trajectory(f"e{seed}", seed, 0, None, turns, shown, result.terminated)
        records.append({"id": f"bench/{seed}", "group": "bench", "seed": seed,
                        "correct": result.info["correct"], "reward": trajectory.reward,
                        "turns": len(turns), "frames_viewed": result.info["frames_seen"],
                        "duration_s": sample.duration_s, "source": sample.source,
                        **episode_view(trajectory, sample, [sample.duration_s],
                                       env.pool_config)})
    return records


def main() -> None:
    parser = argparse.ArgumentParser(prog="benchmarks/view_size.py", description=__doc__)
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="processes writing videos")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vagen-view-bench-"))
    generate_dataset(root / "data", args.episodes, seed=0, config=SynthConfig(**SYNTH),
                     workers=args.workers)
    env = VideoQAEnv(VideoQAConfig(data=str(root / "data" / SAMPLES_FILE), max_turns=2))
    records = oracle_records(env, args.episodes)
    run = root / "eval"
    run.mkdir()
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    started = time.perf_counter()
    page = build_view(run)
    seconds = time.perf_counter() - started
    thumbs = list((page.parent / "thumbs").iterdir())
    size = page.stat().st_size + sum(t.stat().st_size for t in thumbs)
    frames = sum(r["frames_viewed"] for r in records)
    print(f"episodes: {len(records)}, frames shown: {frames}, thumbnails: {len(thumbs)}")
    print(f"view: {size / 1e6:.1f} MB (page {page.stat().st_size / 1e6:.1f} MB + thumbnails), "
          f"goal < {GOAL_MB:.0f} MB; built in {seconds:.1f} s (pools decoded on the way)")
    print(f"bytes per frame shown: {size / frames:.0f} (thumbnails of at most "
          f"{THUMB_SIDE} px, each distinct frame once)")
    print(f"(folder {root})")


if __name__ == "__main__":
    main()
