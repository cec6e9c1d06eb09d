"""Reading the policy's text as an action under a protocol, and the numbers, times and video
prefixes the protocols' body parsers share. Parsing never raises: any problem becomes an
`invalid` action whose `error` tells the model what to write instead."""

from __future__ import annotations

import re

from vagen.env.video_qa.protocols.spec import (
    ANSWER_TAG,
    Action,
    Protocol,
    VideoLayout,
    get_protocol,
)

MAX_NUMBER_CHARS = 12  # longer numbers are refused before conversion (no giant ints)

NUMBER = r"[-+]?\d+(?:\.\d+)?"
CLOCK = r"\d+:\d+(?:\.\d+)?"
_VIDEO_PREFIX = re.compile(r"^\s*videos?\s*#?\s*(\S+?)\s*:(.*)$", flags=re.IGNORECASE | re.DOTALL)


class ActionError(ValueError):
    """Raised inside body parsers; becomes an invalid Action carrying the message."""


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
    answers = _blocks(text, ANSWER_TAG)
    requests = _blocks(text, proto.tag) if proto.asks else []
    request_hint = f" or <{proto.tag}>...</{proto.tag}>" if proto.asks else ""
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


def number(token: str, what: str) -> float:
    """`token` as a number, or an ActionError naming `what` it should have been."""
    token = token.strip()
    if len(token) > MAX_NUMBER_CHARS:
        raise ActionError(f"{what} '{token[:20]}...' is too large")
    if not re.fullmatch(NUMBER, token):
        raise ActionError(f"could not read {what} '{token[:40]}' as a number")
    return float(token)


def seconds(token: str) -> float:
    """`12.5`, `12.5s`, `1:05` (minutes:seconds) -> seconds."""
    token = re.sub(r"\s*(?:seconds|secs|sec|s)$", "", token.strip().lower())
    if re.fullmatch(CLOCK, token):
        minutes, secs = token.split(":")
        return number(minutes, "minutes") * 60 + number(secs, "seconds")
    return number(token, "time")


def video_number(token: str, layout: VideoLayout) -> int:
    """Videos are named from 1 in text (as people and the data's options name them); the
    returned index counts from 0, as relevant_spans and seen_video_ids do."""
    value = number(token, "video number")
    if value != int(value) or not 1 <= value <= layout.num_videos:
        raise ActionError(f"video {token} does not exist; videos are numbered "
                          f"1-{layout.num_videos}")
    return int(value) - 1


def video_parts(body: str, layout: VideoLayout) -> list[tuple[int | None, str]]:
    """`video 2: ...; video 1: ...` -> [(1, '...'), (0, '...')]; no prefix -> (None, body)."""
    parts = []
    for part in body.split(";"):
        if not part.strip():
            continue
        prefixed = _VIDEO_PREFIX.match(part)
        if prefixed:
            parts.append((video_number(prefixed.group(1), layout), prefixed.group(2)))
        else:
            parts.append((None, part))
    if not parts:
        raise ActionError("the request is empty")
    return parts


def _videos(video: int | None, layout: VideoLayout) -> range | list[int]:
    return range(layout.num_videos) if video is None else [video]


def check_index(value: float, video: int | None, layout: VideoLayout) -> int:
    """`value` as a pool index of `video` (of every video when None), or an ActionError."""
    if value != int(value):
        raise ActionError(f"frame index {value:g} is not a whole number")
    for v in _videos(video, layout):
        last = layout.pool_sizes[v] - 1
        if not 0 <= value <= last:
            where = f" of video {v + 1}" if layout.num_videos > 1 else ""
            raise ActionError(f"frame index {value:g} is out of range; frames{where} are "
                              f"numbered 0-{last}")
    return int(value)


def check_time(value: float, video: int | None, layout: VideoLayout) -> float:
    """`value` as seconds within `video` (within every video when None), or an ActionError."""
    for v in _videos(video, layout):
        duration = layout.durations[v]
        if not 0 <= value <= duration:
            where = f"video {v + 1}" if layout.num_videos > 1 else "the video"
            raise ActionError(f"time {value:g}s is out of range; {where} lasts "
                              f"{duration:.1f}s")
    return value


def ordered(start: float, end: float, text: str, lenient: bool) -> tuple[float, float]:
    """(start, end); a reversed range is swapped when `lenient`, else an error."""
    if start <= end:
        return start, end
    if lenient:
        return end, start
    raise ActionError(f"the range '{text.strip()[:40]}' is reversed; write the start first")
