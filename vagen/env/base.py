"""The env protocol (after Gymnasium's core): tiny, text in, frames out.

An env never raises on model text: a malformed action is a turn with
`info["valid_action"] = False` and the format penalty."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

import numpy as np

IMAGE_PLACEHOLDER = "<image>"


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


def _reported(help_text: str, default: Any = None) -> Any:
    """An optional StepInfo field: its default means the env does not report it."""
    if isinstance(default, list | dict):
        return field(default_factory=type(default), metadata={"help": help_text})
    return field(default=default, metadata={"help": help_text})


@dataclass
class StepInfo:
    """What an env reports after each step. `StepResult.info` holds `StepInfo(...).to_dict()`
    (the form it travels in over HTTP and in trajectories); readers - reward shaping, batch
    metrics, eval, verl's agent loop - take it back with `StepInfo.of(info)` and read it by
    attribute. The first five fields are required; the others keep their defaults when an
    env does not report them, and what needs one (Video-MTR shaping needs `initial_iou`)
    says so. Keys of the env's own travel along in `extra`."""

    valid_action: bool = field(metadata={"help": "the action parsed (False: a format penalty)"})
    turn: int = field(metadata={"help": "policy turns played so far, this one included"})
    frames_seen: int = field(metadata={"help": "frames the episode has shown so far"})
    answer: str | None = field(metadata={"help": "the answer given this turn (None: none)"})
    correct: bool = field(metadata={"help": "the answer is right"})
    action_type: str | None = _reported(
        "answer | invalid | the protocol's request type (retrieve, query, frames)")
    error: str = _reported("why the action was invalid, as told to the policy", "")
    reward_parts: dict[str, float] = _reported("reward name -> its weighted value this turn",
                                               {})
    seen_times: list[float] = _reported("seconds of every frame shown so far", [])
    seen_video_ids: list[int] = _reported("the video (from 0) of each of seen_times", [])
    sample_id: str | None = _reported("id of the sample the episode plays")
    frames_iou: float | None = _reported(
        "IoU of the frames this turn fetched with the relevant frames (None: it fetched none)")
    initial_iou: float | None = _reported(
        "the same IoU for the opening frames (None: retrieval is not reported)")
    requested: list[list[float]] = _reported(
        "[start_s, end_s, video] of each span (or time: start = end) this turn asked for", [])
    visual_tokens: int | None = _reported(
        "image tokens of every frame shown so far (the episode's visual budget spent)")
    extra: dict[str, Any] = _reported("further keys of the env's own", {})

    @classmethod
    def required(cls) -> tuple[str, ...]:
        """The keys every step's info carries."""
        return tuple(f.name for f in fields(cls)
                     if f.default is MISSING and f.default_factory is MISSING)

    @classmethod
    def of(cls, info: Mapping[str, Any]) -> StepInfo:
        """`info` read back; a missing required key is a ValueError naming it."""
        missing = [key for key in cls.required() if key not in info]
        if missing:
            raise ValueError(f"step info lacks {missing}; every env step reports "
                             f"{', '.join(cls.required())} (vagen.env.base.StepInfo)")
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{key: value for key, value in info.items() if key in known},
                   extra={key: value for key, value in info.items() if key not in known})

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        return {**values.pop("extra"), **values}


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
