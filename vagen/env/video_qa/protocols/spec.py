"""What one action protocol is: the tag the policy writes, how its body is read, what the
prompt says about it, how the oracle writes a request, and which tags a tokenizer must hold
as single tokens. One `Protocol` per protocol, registered once; the env, prompts, oracle,
rollout stop strings, batch metrics and the tiny tokenizer all read it from here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from vagen.registry import Registry

THINK_TAG = "think"
ANSWER_TAG = "answer"


@dataclass(frozen=True)
class VideoLayout:
    """What a parser needs to check a request: per video, its pool size and duration."""

    pool_sizes: tuple[int, ...]
    durations: tuple[float, ...]

    @property
    def num_videos(self) -> int:
        return len(self.pool_sizes)


@dataclass(frozen=True)
class FrameRequest:
    """Frames the policy asked for. `kind`: span (values = start, end in `unit`), indices
    (pool indices), times (nearest pool frames), exact_times (decoded at those seconds),
    next (the next unseen frames). `video` (from 0) None means every video."""

    kind: str
    values: tuple[float, ...] = ()
    video: int | None = None
    unit: str = "index"


@dataclass(frozen=True)
class Action:
    """`type`: answer, invalid, or the `action_type` of the protocol that asked for frames."""

    type: str
    answer: str | None = None
    requests: tuple[FrameRequest, ...] = ()
    error: str = ""

    @property
    def valid(self) -> bool:
        return self.type != "invalid"


@dataclass(frozen=True)
class ProtocolText:
    """How a protocol is explained to the policy; fields are formatted with the group's
    `frames_per_turn`, `units_name` and `span` (see prompts.system_prompt)."""

    how: str = field(metadata={"help": "the rule, one sentence or two"})
    short: str = field(metadata={"help": "the syntax, for the per-turn reminder"})
    example: str = field(metadata={
        "help": "a request for frames 24-31 (24-31.5 s) of a 60 s, 60-frame video"})
    video_example: str = field(metadata={"help": "the same for video 1 of several"})
    verb: str = field(metadata={"help": "the compact style's turn text: '<verb> or answer.'"})


@dataclass(frozen=True)
class RequestPart:
    """One span the oracle asks for, in every form a protocol may write it."""

    video: int = field(metadata={"help": "the span's video, from 0"})
    multi: bool = field(metadata={"help": "the sample has several videos: name the video"})
    first: int = field(metadata={"help": "pool index of the first frame to ask for"})
    last: int = field(metadata={"help": "pool index of the last frame to ask for"})
    start_s: float = field(metadata={"help": "the span's start in seconds"})
    end_s: float = field(metadata={"help": "the span's end in seconds"})
    times: tuple[float, ...] = field(metadata={
        "help": "seconds of the pool frames a retrieval of the span returns"})
    units: str = field(metadata={"help": "the group's retrieve_units: index | seconds"})

    def video_prefix(self, separator: str = ":") -> str:
        """`video 2: ` naming the video (from 1, as the policy does); empty for one video."""
        return f"video {self.video + 1}{separator} " if self.multi else ""


BodyParser = Callable[[str, VideoLayout, str, bool], tuple[FrameRequest, ...]]
PartWriter = Callable[[RequestPart], str]


@dataclass(frozen=True)
class Protocol:
    """One way of asking for frames. A protocol without `tag` only answers (one turn)."""

    name: str = field(metadata={"help": "the env config's `protocol` value"})
    action_type: str = field(metadata={
        "help": "the info's action_type of a turn that asks for frames (answer otherwise)"})
    tag: str | None = field(default=None, metadata={
        "help": "the request tag, <tag>...</tag>; None: the protocol only answers"})
    parse_body: BodyParser | None = field(default=None, metadata={
        "help": "(body, layout, units, lenient) -> FrameRequests; raises ActionError"})
    write_part: PartWriter | None = field(default=None, metadata={
        "help": "one `;`-separated part of the oracle's request body"})
    text: ProtocolText | None = field(default=None, metadata={"help": "what the prompt says"})
    response_tag: str | None = field(default=None, metadata={
        "help": "tag wrapping the frames a request returns (None: bare frame lines)"})
    other_tags: tuple[str, ...] = field(default=(), metadata={
        "help": "further tags the policy may write (e.g. summary notes)"})
    windowed: bool = field(default=False, metadata={
        "help": "fetched frames replace earlier ones, so the group's window applies"})

    def __post_init__(self) -> None:
        parts = {"parse_body": self.parse_body, "write_part": self.write_part,
                 "text": self.text}
        if self.tag is not None:
            missing = [name for name, value in parts.items() if value is None]
            if missing:
                raise ValueError(f"protocol '{self.name}' has tag '{self.tag}' but no "
                                 f"{', '.join(missing)}")
        elif any(value is not None for value in parts.values()) or self.windowed:
            raise ValueError(f"protocol '{self.name}' has no tag, so it only answers; drop "
                             "parse_body, write_part, text and windowed")

    @property
    def asks(self) -> bool:
        """Whether the policy may ask for frames (else every episode is one answer turn)."""
        return self.tag is not None

    def request(self, parts: Sequence[RequestPart]) -> str:
        """The oracle's request for `parts`, one `;`-separated part each."""
        body = "; ".join(self.write_part(part) for part in parts)
        return f"<{self.tag}>{body}</{self.tag}>"

    def tags(self) -> tuple[str, ...]:
        """The tags this protocol adds to think and answer, request tag first."""
        extra = (*self.other_tags, *([self.response_tag] if self.response_tag else []))
        return (*([self.tag] if self.tag else []), *extra)


_PROTOCOLS: Registry[Protocol] = Registry("protocol")


def register_protocol(protocol: Protocol) -> Protocol:
    """Register `protocol` under its name; a name registered before is a ValueError."""
    return _PROTOCOLS.add(protocol.name, protocol)


def get_protocol(name: str) -> Protocol:
    """The protocol `name`; an unknown name is a KeyError listing the registered ones."""
    return _PROTOCOLS.get(name)


def protocol_names() -> list[str]:
    return _PROTOCOLS.names()


def protocols() -> list[Protocol]:
    """Every registered protocol, built-in ones first, in registration order."""
    return [protocol for _, protocol in _PROTOCOLS.items()]


def stop_strings() -> tuple[str, ...]:
    """Strings after which a turn ends: the closing answer tag and each request tag's."""
    return (f"</{ANSWER_TAG}>", *(f"</{p.tag}>" for p in protocols() if p.asks))


def request_actions() -> tuple[str, ...]:
    """The action types of turns that ask for frames."""
    return tuple(dict.fromkeys(p.action_type for p in protocols() if p.asks))


def action_tags() -> tuple[str, ...]:
    """Every tag a policy writes, opening and closing (`<think>`, `</think>`, ...): think and
    answer, the request tags, then the other tags, each once."""
    requests = [p.tag for p in protocols() if p.asks]
    others = [tag for p in protocols() for tag in p.tags() if tag not in requests]
    names = dict.fromkeys([THINK_TAG, ANSWER_TAG, *requests, *others])
    return tuple(f"<{slash}{name}>" for name in names for slash in ("", "/"))
