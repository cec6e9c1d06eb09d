"""The env protocol (after Gymnasium's core): tiny, text in, frames out.

An env never raises on model text: a malformed action is a turn with
`info["valid_action"] = False` and the format penalty."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

IMAGE_PLACEHOLDER = "<image>"
# Keys every StepResult.info carries (docs/architecture.md, Contracts: Env protocol).
REQUIRED_INFO_KEYS = ("valid_action", "turn", "frames_seen", "answer", "correct")


class EpisodeStateError(RuntimeError):
    """A call that does not fit the episode's state (a step before reset or after the
    end): the caller's mistake, not the env's."""


@dataclass(frozen=True)
class ContextPolicy:
    """What a policy sees and may write in an episode of one env group: the local trainer,
    the SFT warm start, verl's agent loop and eval all play by it, so a checkpoint is
    evaluated in the context it was trained in."""

    max_turns: int = field(metadata={"help": "policy turns at most (the env may end sooner)"})
    window: int | None = field(metadata={
        "help": "user turns whose frames stay in the context (None: all)"})
    max_new_tokens: int = field(metadata={"help": "tokens the policy may write per turn"})


@dataclass
class Observation:
    """What the policy sees next: `text` holds one `<image>` per frame, in order.

    `frames` are uint8 arrays (H, W, 3); `timestamps` are seconds in their video;
    `video_ids` says which of the sample's videos each frame comes from."""

    text: str
    frames: list[np.ndarray] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    video_ids: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.video_ids:
            self.video_ids = [0] * len(self.frames)


@dataclass
class StepResult:
    """Outcome of one action. `terminated`: the episode ended by an answer;
    `truncated`: it ended by the turn limit without one."""

    obs: Observation
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


@runtime_checkable
class Env(Protocol):
    """What the server, the rollout manager and the trainers rely on."""

    def reset(self, seed: int) -> Observation: ...

    def step(self, action_text: str) -> StepResult: ...

    def system_prompt(self) -> str: ...

    def close(self) -> None: ...
