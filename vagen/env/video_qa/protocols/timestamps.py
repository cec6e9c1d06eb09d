"""`timestamps`: `<frames>t1,t2,...</frames>` decodes frames at exactly those seconds."""

from __future__ import annotations

from vagen.env.video_qa.protocols.reading import ActionError, check_time, seconds, video_parts
from vagen.env.video_qa.protocols.spec import (
    FrameRequest,
    Protocol,
    ProtocolText,
    RequestPart,
    VideoLayout,
    register_protocol,
)


def parse_timestamps(body: str, layout: VideoLayout, units: str,
                     lenient: bool = False) -> tuple[FrameRequest, ...]:
    """`t1,t2,...` in seconds (`12.5`, `12.5s`, `1:05`); `video 2: t1,t2; video 1: t3`."""
    requests = []
    for video, text in video_parts(body, layout):
        tokens = [t for t in text.split(",") if t.strip()]
        if not tokens:
            raise ActionError("no times given; write e.g. <frames>12.5,14,15.5</frames>")
        times = tuple(check_time(seconds(t), video, layout) for t in tokens)
        requests.append(FrameRequest("exact_times", times, video, "seconds"))
    return tuple(requests)


def write_timestamps(part: RequestPart) -> str:
    """The times of the pool frames a retrieval of the span would show, to be decoded."""
    return part.video_prefix() + ",".join(f"{t:.3f}" for t in part.times)


TIMESTAMPS = register_protocol(Protocol(
    name="timestamps", action_type="frames", tag="frames", parse_body=parse_timestamps,
    write_part=write_timestamps,
    text=ProtocolText(
        how="ask for frames at exact times: <frames>t1,t2,...</frames> in seconds "
            "(at most {frames_per_turn} per turn).",
        short="<frames>t1,t2,...</frames>",
        example="<frames>24.5,25.5,26.5,27.5,28.5,29.5,30.5,31.5</frames>",
        video_example="<frames>video 1: 24.5,26.5,28.5,30.5</frames>", verb="Ask for frames")))
