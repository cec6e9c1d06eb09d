"""`retrieve` (Video-MTR): `<retrieve>start,end</retrieve>` returns frames from that range of
pool indices (or seconds, `retrieve_units: seconds`); they replace the frames seen before, so
the group's window applies."""

from __future__ import annotations

from vagen.env.video_qa.protocols.reading import (
    ActionError,
    check_index,
    check_time,
    number,
    ordered,
    seconds,
    video_parts,
)
from vagen.env.video_qa.protocols.spec import (
    FrameRequest,
    Protocol,
    ProtocolText,
    RequestPart,
    VideoLayout,
    register_protocol,
)


def parse_retrieve(body: str, layout: VideoLayout, units: str,
                   lenient: bool = False) -> tuple[FrameRequest, ...]:
    """`s,e` (pool indices, or seconds with units='seconds'); `video 2: s,e; video 1: s,e`."""
    requests = []
    for video, text in video_parts(body, layout):
        bounds = text.split(",")
        if len(bounds) != 2:
            raise ActionError(f"could not read '{text.strip()[:40]}' as start,end; write e.g. "
                              "<retrieve>12,20</retrieve>")
        if units == "seconds":
            start, end = (check_time(seconds(b), video, layout) for b in bounds)
        else:
            start, end = (check_index(number(b, "frame index"), video, layout) for b in bounds)
        requests.append(FrameRequest("span", ordered(start, end, text, lenient), video, units))
    return tuple(requests)


def write_retrieve(part: RequestPart) -> str:
    body = (f"{part.start_s:.2f},{part.end_s:.2f}" if part.units == "seconds"
            else f"{part.first},{part.last}")
    return part.video_prefix() + body


RETRIEVE = register_protocol(Protocol(
    name="retrieve", action_type="retrieve", tag="retrieve", parse_body=parse_retrieve,
    write_part=write_retrieve, windowed=True,
    text=ProtocolText(
        how="retrieve frames: <retrieve>start,end</retrieve> with {units_name} start <= end "
            "returns up to {frames_per_turn} frames from that range; they replace the frames "
            "you saw before.",
        short="<retrieve>start,end</retrieve>",
        example="<retrieve>{span}</retrieve>",
        video_example="<retrieve>video 1: {span}</retrieve>", verb="Retrieve")))
