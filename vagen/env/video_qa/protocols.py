"""Reading the policy's text as an action, one parser per protocol. Parsing never raises:
any problem becomes an `invalid` action whose `error` tells the model what to write
instead."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from vagen.registry import Registry

MAX_NUMBER_CHARS = 12  # longer numbers are refused before conversion (no giant ints)


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
    """`type`: answer | retrieve | query | frames | invalid."""

    type: str
    answer: str | None = None
    requests: tuple[FrameRequest, ...] = ()
    error: str = ""

    @property
    def valid(self) -> bool:
        return self.type != "invalid"


class ActionError(ValueError):
    """Raised inside body parsers; becomes an invalid Action carrying the message."""


BodyParser = Callable[[str, VideoLayout, str, bool], tuple[FrameRequest, ...]]


@dataclass(frozen=True)
class Protocol:
    name: str
    tag: str | None  # request tag, None when the protocol only answers
    action_type: str
    parse_body: BodyParser | None


_PROTOCOLS: Registry[Protocol] = Registry("protocol")


def register_protocol(name: str, tag: str | None, action_type: str
                      ) -> Callable[[BodyParser | None], BodyParser | None]:
    """Decorator on a body parser `(body, layout, units, lenient) -> requests`; duplicates
    rejected. `lenient`: read a reversed range as its start and end swapped."""

    def decorator(parse_body: BodyParser | None) -> BodyParser | None:
        _PROTOCOLS.add(name, Protocol(name, tag, action_type, parse_body))
        return parse_body

    return decorator


def get_protocol(name: str) -> Protocol:
    return _PROTOCOLS.get(name)


def parse_action(protocol: str, text: str, layout: VideoLayout, units: str = "index",
                 lenient: bool = False) -> Action:
    """The action in `text` under `protocol`; malformed text gives `Action("invalid", ...)`.
    `lenient` reads a reversed range (`<retrieve>25,17</retrieve>`) as 17-25."""
    proto = get_protocol(protocol)
    try:
        return _parse_envelope(proto, text if isinstance(text, str) else "", layout, units,
                               lenient)
    except ActionError as err:
        return Action("invalid", error=str(err))


def _blocks(text: str, tag: str) -> list[str]:
    """The bodies of `<tag>...</tag>` blocks, each opening matched with the next closing, in
    one pass (a regex scan from every opening tag is quadratic on text full of them)."""
    opening, closing = f"<{tag}>", f"</{tag}>"
    opened = text.count(opening)
    bodies, position = [], 0
    while (start := text.find(opening, position)) >= 0:
        end = text.find(closing, start + len(opening))
        if end < 0:
            break
        bodies.append(text[start + len(opening):end])
        position = end + len(closing)
    if opened > len(bodies):
        raise ActionError(f"the <{tag}> tag is not closed; end it with </{tag}>")
    if len(bodies) > 1:
        raise ActionError(f"write one <{tag}>...</{tag}> block per turn, not {len(bodies)}")
    return bodies


def _parse_envelope(proto: Protocol, text: str, layout: VideoLayout, units: str,
                    lenient: bool) -> Action:
    answers = _blocks(text, "answer")
    requests = _blocks(text, proto.tag) if proto.tag else []
    request_hint = f" or <{proto.tag}>...</{proto.tag}>" if proto.tag else ""
    if answers and requests:
        raise ActionError(f"write either <answer>...</answer>{request_hint} in a turn, not both")
    if answers:
        answer = answers[0].strip()
        if not answer:
            raise ActionError("the answer is empty; write the option letter or value inside "
                              "<answer>...</answer>")
        return Action("answer", answer=answer)
    if requests:
        return Action(proto.action_type,
                      requests=proto.parse_body(requests[0], layout, units, lenient))
    raise ActionError(f"no action found; end your turn with <answer>...</answer>{request_hint}")


# ---- numbers, times and video prefixes shared by the body parsers

_NUMBER = r"[-+]?\d+(?:\.\d+)?"
_CLOCK = r"\d+:\d+(?:\.\d+)?"
_VIDEO_PREFIX = re.compile(r"^\s*videos?\s*#?\s*(\S+?)\s*:(.*)$", flags=re.IGNORECASE | re.DOTALL)


def _number(token: str, what: str) -> float:
    token = token.strip()
    if len(token) > MAX_NUMBER_CHARS:
        raise ActionError(f"{what} '{token[:20]}...' is too large")
    if not re.fullmatch(_NUMBER, token):
        raise ActionError(f"could not read {what} '{token[:40]}' as a number")
    return float(token)


def _seconds(token: str) -> float:
    """`12.5`, `12.5s`, `1:05` (minutes:seconds) -> seconds."""
    token = re.sub(r"\s*(?:seconds|secs|sec|s)$", "", token.strip().lower())
    if re.fullmatch(_CLOCK, token):
        minutes, seconds = token.split(":")
        return _number(minutes, "minutes") * 60 + _number(seconds, "seconds")
    return _number(token, "time")


def _video(token: str, layout: VideoLayout) -> int:
    """Videos are named from 1 in text (as people and the data's options name them); the
    returned index counts from 0, as relevant_spans and seen_video_ids do."""
    value = _number(token, "video number")
    if value != int(value) or not 1 <= value <= layout.num_videos:
        raise ActionError(f"video {token} does not exist; videos are numbered "
                          f"1-{layout.num_videos}")
    return int(value) - 1


def _parts(body: str, layout: VideoLayout) -> list[tuple[int | None, str]]:
    """`video 1: ...; video 0: ...` -> [(1, '...'), (0, '...')]; no prefix -> (None, body)."""
    parts = []
    for part in body.split(";"):
        if not part.strip():
            continue
        prefixed = _VIDEO_PREFIX.match(part)
        if prefixed:
            parts.append((_video(prefixed.group(1), layout), prefixed.group(2)))
        else:
            parts.append((None, part))
    if not parts:
        raise ActionError("the request is empty")
    return parts


def _videos(video: int | None, layout: VideoLayout) -> range | list[int]:
    return range(layout.num_videos) if video is None else [video]


def _check_index(value: float, video: int | None, layout: VideoLayout) -> int:
    if value != int(value):
        raise ActionError(f"frame index {value:g} is not a whole number")
    for v in _videos(video, layout):
        last = layout.pool_sizes[v] - 1
        if not 0 <= value <= last:
            where = f" of video {v + 1}" if layout.num_videos > 1 else ""
            raise ActionError(f"frame index {value:g} is out of range; frames{where} are "
                              f"numbered 0-{last}")
    return int(value)


def _check_time(value: float, video: int | None, layout: VideoLayout) -> float:
    for v in _videos(video, layout):
        duration = layout.durations[v]
        if not 0 <= value <= duration:
            where = f"video {v + 1}" if layout.num_videos > 1 else "the video"
            raise ActionError(f"time {value:g}s is out of range; {where} lasts "
                              f"{duration:.1f}s")
    return value


def _ordered(start: float, end: float, text: str, lenient: bool) -> tuple[float, float]:
    """(start, end); a reversed range is swapped when `lenient`, else an error."""
    if start <= end:
        return start, end
    if lenient:
        return end, start
    raise ActionError(f"the range '{text.strip()[:40]}' is reversed; write the start first")


# ---- the protocols

register_protocol("single", tag=None, action_type="answer")(None)


@register_protocol("retrieve", tag="retrieve", action_type="retrieve")
def parse_retrieve(body: str, layout: VideoLayout, units: str,
                   lenient: bool = False) -> tuple[FrameRequest, ...]:
    """`s,e` (pool indices, or seconds with units='seconds'); `video 1: s,e; video 0: s,e`."""
    requests = []
    for video, text in _parts(body, layout):
        bounds = text.split(",")
        if len(bounds) != 2:
            raise ActionError(f"could not read '{text.strip()[:40]}' as start,end; write e.g. "
                              "<retrieve>12,20</retrieve>")
        if units == "seconds":
            start, end = (_check_time(_seconds(b), video, layout) for b in bounds)
        else:
            start, end = (_check_index(_number(b, "frame index"), video, layout) for b in bounds)
        requests.append(FrameRequest("span", _ordered(start, end, text, lenient), video, units))
    return tuple(requests)


@register_protocol("timestamps", tag="frames", action_type="frames")
def parse_timestamps(body: str, layout: VideoLayout, units: str,
                     lenient: bool = False) -> tuple[FrameRequest, ...]:
    """`t1,t2,...` in seconds (`12.5`, `12.5s`, `1:05`); `video 1: t1,t2; video 0: t3`."""
    requests = []
    for video, text in _parts(body, layout):
        tokens = [t for t in text.split(",") if t.strip()]
        if not tokens:
            raise ActionError("no times given; write e.g. <frames>12.5,14,15.5</frames>")
        times = tuple(_check_time(_seconds(t), video, layout) for t in tokens)
        requests.append(FrameRequest("exact_times", times, video, "seconds"))
    return tuple(requests)


_UNIT = r"(?:seconds|secs|sec|s)\b"
_TIME_VALUE = rf"(?:{_CLOCK}|\d+(?:\.\d+)?)"
# A number starts only where a run of digits starts (the look-behind), so a long run of
# digits is tried once, not from each of its digits: parsing stays linear in the text.
_START = r"(?<![\d.:])"
_QUERY_TOKENS = re.compile(
    r"(?P<video>\bvideo\s*#?\s*(?P<v>\d+))"
    r"|(?P<frange>\bframes?\s*#?\s*(?P<fa>\d+)\s*(?:-|–|to|through)\s*(?P<fb>\d+))"
    r"|(?P<flist>\bframes?\s*#?\s*(?P<fl>\d+(?:\s*(?:,|and)\s*\d+)*))"
    rf"|(?P<trange>{_START}(?P<ta>{_TIME_VALUE})\s*(?:{_UNIT})?\s*(?:-|–|to|and)\s*"
    rf"(?P<tb>{_TIME_VALUE})\s*(?P<tu>{_UNIT})?)"
    rf"|(?P<time>{_START}(?:(?P<tc>{_CLOCK})|(?P<tn>\d+(?:\.\d+)?)\s*{_UNIT}))",
    flags=re.IGNORECASE)


@register_protocol("query", tag="query", action_type="query")
def parse_query(body: str, layout: VideoLayout, units: str,
                lenient: bool = False) -> tuple[FrameRequest, ...]:
    """Free text. Honoured: `video N`, `frames A-B`, `frame A, B`, `10-20s`, `at 12.5s`,
    `1:05`; without any of them the request is the next unseen frames."""
    requests: list[FrameRequest] = []
    video: int | None = None
    for m in _QUERY_TOKENS.finditer(body):
        if m.group("video"):
            video = _video(m.group("v"), layout)
        elif m.group("frange"):
            start, end = (_check_index(_number(m.group(g), "frame index"), video, layout)
                          for g in ("fa", "fb"))
            requests.append(FrameRequest("span", _ordered(start, end, m.group(0), lenient),
                                         video, "index"))
        elif m.group("flist"):
            indices = tuple(_check_index(_number(n, "frame index"), video, layout)
                            for n in re.findall(r"\d+", m.group("fl")))
            requests.append(FrameRequest("indices", indices, video))
        elif m.group("trange"):
            if not (m.group("tu") or ":" in m.group("ta") + m.group("tb")):
                continue  # two bare numbers ("2-3 people") are not times
            start, end = (_check_time(_seconds(m.group(g)), video, layout) for g in ("ta", "tb"))
            requests.append(FrameRequest("span", _ordered(start, end, m.group(0), lenient),
                                         video, "seconds"))
        else:
            token = m.group("tc") or m.group("tn")
            requests.append(FrameRequest("times", (_check_time(_seconds(token), video, layout),),
                                         video, "seconds"))
    return tuple(requests) or (FrameRequest("next", (), video),)
