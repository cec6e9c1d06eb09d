"""`query` (verl-tool's video_qar): free text in `<query>...</query>` naming frames or
times; the frames come back inside `<response>...</response>`, and the policy may keep notes
in `<summary>...</summary>`."""

from __future__ import annotations

import re

from vagen.env.video_qa.protocols.reading import (
    CLOCK,
    check_index,
    check_time,
    number,
    ordered,
    seconds,
    video_number,
)
from vagen.env.video_qa.protocols.spec import (
    FrameRequest,
    Protocol,
    ProtocolText,
    RequestPart,
    VideoLayout,
    register_protocol,
)

_UNIT = r"(?:seconds|secs|sec|s)\b"
_TIME_VALUE = rf"(?:{CLOCK}|\d+(?:\.\d+)?)"
# A number starts only where a run of digits starts (the look-behind), so a long run of
# digits is tried once, not from each of its digits: parsing stays linear in the text.
_START = r"(?<![\d.:])"
_QUERY_TOKENS = re.compile(
    r"(?P<video>\bvideo\s*#?\s*(?P<v>\d+))"
    r"|(?P<frange>\bframes?\s*#?\s*(?P<fa>\d+)\s*(?:-|–|to|through)\s*(?P<fb>\d+))"
    r"|(?P<flist>\bframes?\s*#?\s*(?P<fl>\d+(?:\s*(?:,|and)\s*\d+)*))"
    rf"|(?P<trange>{_START}(?P<ta>{_TIME_VALUE})\s*(?:{_UNIT})?\s*(?:-|–|to|and)\s*"
    rf"(?P<tb>{_TIME_VALUE})\s*(?P<tu>{_UNIT})?)"
    rf"|(?P<time>{_START}(?:(?P<tc>{CLOCK})|(?P<tn>\d+(?:\.\d+)?)\s*{_UNIT}))",
    flags=re.IGNORECASE)


def parse_query(body: str, layout: VideoLayout, units: str,
                lenient: bool = False) -> tuple[FrameRequest, ...]:
    """Free text. Honoured: `video N`, `frames A-B`, `frame A, B`, `10-20s`, `at 12.5s`,
    `1:05`; without any of them the request is the next unseen frames."""
    requests: list[FrameRequest] = []
    video: int | None = None
    for m in _QUERY_TOKENS.finditer(body):
        if m.group("video"):
            video = video_number(m.group("v"), layout)
        elif m.group("frange"):
            start, end = (check_index(number(m.group(g), "frame index"), video, layout)
                          for g in ("fa", "fb"))
            requests.append(FrameRequest("span", ordered(start, end, m.group(0), lenient),
                                         video, "index"))
        elif m.group("flist"):
            indices = tuple(check_index(number(n, "frame index"), video, layout)
                            for n in re.findall(r"\d+", m.group("fl")))
            requests.append(FrameRequest("indices", indices, video))
        elif m.group("trange"):
            if not (m.group("tu") or ":" in m.group("ta") + m.group("tb")):
                continue  # two bare numbers ("2-3 people") are not times
            start, end = (check_time(seconds(m.group(g)), video, layout) for g in ("ta", "tb"))
            requests.append(FrameRequest("span", ordered(start, end, m.group(0), lenient),
                                         video, "seconds"))
        else:
            token = m.group("tc") or m.group("tn")
            requests.append(FrameRequest("times", (check_time(seconds(token), video, layout),),
                                         video, "seconds"))
    return tuple(requests) or (FrameRequest("next", (), video),)


def write_query(part: RequestPart) -> str:
    return f"{part.video_prefix(separator='')}frames {part.first}-{part.last}"


QUERY = register_protocol(Protocol(
    name="query", action_type="query", tag="query", parse_body=parse_query,
    write_part=write_query, response_tag="response", other_tags=("summary",),
    text=ProtocolText(
        how="ask for frames: <query>...</query>. Name frames (\"frames 20-35\", \"frame 12, "
            "14\") or times (\"at 12.5s\", \"20-30s\"); without them you get the next "
            "{frames_per_turn} frames you have not seen. Frames come back inside "
            "<response>...</response>. You may keep notes in <summary>...</summary>.",
        short="<query>...</query>",
        example="<query>frames 24-31</query>",
        video_example="<query>video 1 frames 24-31</query>", verb="Query")))
