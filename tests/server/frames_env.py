"""A small real env for the server tests ("test_frames"): frames decoded from a real MP4.
Importing this module registers it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import av

from vagen.env.base import Observation, StepResult
from vagen.env.registry import register_env

CRASH_ACTION = "<crash/>"  # makes the test env raise, to check per-env error isolation
VIDEO_FRAMES = 12  # frames in the conftest video


class FramesEnv:
    """Show `per_turn` frames of a video from a seed-chosen start; `<more/>` shows the next
    ones, `<answer>k</answer>` ends the episode (correct when k is the start frame)."""

    def __init__(self, config: dict[str, Any]):
        with av.open(config["video"]) as container:
            self.frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        self.per_turn = int(config.get("per_turn", 2))
        self.max_turns = int(config.get("max_turns", 3))
        self.closed = 0

    def system_prompt(self) -> str:
        return "Answer <answer>k</answer> with the first frame's index, or ask <more/>."

    def reset(self, seed: int) -> Observation:
        self.start, self.turn = seed % len(self.frames), 0
        return self._observation(self.start)

    def step(self, action_text: str) -> StepResult:
        if action_text == CRASH_ACTION:
            raise RuntimeError("the test env crashes on purpose")
        self.turn += 1
        answer = re.fullmatch(r"<answer>(\d+)</answer>", action_text.strip())
        valid = bool(answer) or action_text.strip() == "<more/>"
        correct = bool(answer) and int(answer.group(1)) == self.start
        truncated = not answer and self.turn >= self.max_turns
        reward = float(correct) if valid else -0.1
        info = {"valid_action": valid, "turn": self.turn,
                "frames_seen": self.per_turn * (self.turn + 1),
                "answer": answer.group(1) if answer else None, "correct": correct}
        obs = self._observation(self.start + self.turn * self.per_turn)
        return StepResult(obs, reward, bool(answer), truncated, info)

    def close(self) -> None:
        self.closed += 1

    def _observation(self, first: int) -> Observation:
        picks = [(first + i) % len(self.frames) for i in range(self.per_turn)]
        return Observation(text=f"turn {self.turn}: " + " ".join("<image>" for _ in picks),
                           frames=[self.frames[i] for i in picks],
                           timestamps=[i / 4.0 for i in picks])


register_env("test_frames")(FramesEnv)


def start_server_process(workdir: Path, video: Path, *args: str
                         ) -> tuple[subprocess.Popen, str]:
    """`vagen server --config <a "frames" group> --port 0 *args` in a subprocess that
    registers "test_frames" first; returns the process and its URL."""
    config = workdir / "env_config.yaml"
    config.write_text(f"- {{name: frames, env: test_frames, video: {video}}}\n")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import tests.server.frames_env; "
            "from vagen.cli import main; sys.exit(main(sys.argv[2:]))")
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen([sys.executable, "-c", code, str(root), "server", "--config",
                                str(config), "--port", "0", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    if not line.startswith("vagen server: listening on http://127.0.0.1:"):
        process.kill()
        raise AssertionError(f"vagen server did not start: {line!r}")
    return process, line.split()[4]
