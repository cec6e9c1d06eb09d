"""What the policy reads: the system prompt of each protocol (with one worked example) and the
texts of observations. Every frame appears as one `<image>` after its label.

`prompt_style: compact` (for tiny models) keeps only what a policy needs to act: a one-line
system prompt, the question with its options on one line, the labelled frames and a short
turn text; `frame_labels: index` labels a frame by its pool index alone."""

from __future__ import annotations

from vagen.data.sample import Sample
from vagen.env.base import IMAGE_PLACEHOLDER
from vagen.env.video_qa.config import VideoQAConfig
from vagen.env.video_qa.protocols import VideoLayout, get_protocol


def system_prompt(config: VideoQAConfig) -> str:
    """The rules of `config.protocol` and (with `config.prompt_example`) a worked example;
    one line in the compact style."""
    proto = get_protocol(config.protocol).text
    if config.prompt_style == "compact":
        ask = "" if proto is None else f" or ask for frames with {proto.short}"
        return f"Think in <think>...</think>, then answer with <answer>...</answer>{ask}."
    values = {"frames_per_turn": config.frames_per_turn,
              "units_name": "times in seconds" if config.retrieve_units == "seconds"
              else "frame indices",
              "span": "24,31.5" if config.retrieve_units == "seconds" else "24,31"}
    lines = ["You answer a question about a video by looking at its frames. Each frame is "
             "labelled with its index in the video's frame pool (numbered from 0) and its time "
             f"in seconds. First you see {config.initial_frames} frames spread over the video.",
             "",
             "Think inside <think>...</think>, then "
             + ("answer with <answer>X</answer>: the option letter, or the value asked for."
                if proto is None else
                "either\n- answer: <answer>X</answer> (the option letter, or the value asked "
                f"for), or\n- {proto.how.format(**values)}\n"
                f"You have {config.max_turns} turns; the last one must be an answer."),
             "With several videos (numbered from 1) each frame is labelled with its video and "
             "the frames are shared among the videos."
             + ("" if proto is None else " To look at one video, name it: "
                + proto.video_example.format(**values))]
    if not config.prompt_example:
        return "\n".join(lines)
    lines += ["", "Example, for a 60 s video:",
              "User: Question: What colour did the square turn?\nOptions:\nA. red\nB. yellow\n"
              "C. blue\nD. green\n[frames]"]
    if proto is not None:
        lines += ["Assistant: <think>The square is in the frames from 24 s to 31 s, but none "
                  "shows it change colour. I will look at those frames.</think>"
                  + proto.example.format(**values),
                  "User: [frames from 24 s to 31 s]"]
    lines.append("Assistant: <think>The square was red and turned yellow at 27 s.</think>"
                 "<answer>B</answer>")
    return "\n".join(lines)


def question_text(sample: Sample, style: str = "full") -> str:
    """The question and its lettered options: one option a line, or (compact) the question on
    one line and every option on the next."""
    options = [f"{letter}. {option}" for letter, option
               in zip(sample.choice_letters, sample.options or [], strict=True)]
    if style == "compact":
        return "\n".join([sample.question.strip(), *([" ".join(options)] if options else [])])
    text = f"Question: {sample.question.strip()}"
    if options:
        text += "\nOptions:\n" + "\n".join(options)
    return text


def opening_text(config: VideoQAConfig, sample: Sample, layout: VideoLayout,
                 frame_lines: list[str]) -> str:
    """The first observation: question, (full style) the videos' lengths, the opening frames
    and the turn text."""
    header = ([] if config.prompt_style == "compact"
              else [videos_text(layout), opening_header(layout)])
    return "\n".join([question_text(sample, config.prompt_style), *header, *frame_lines,
                      turn_text(config.protocol, config.max_turns, config.prompt_style)])


def fetched_text(config: VideoQAConfig, frame_lines: list[str], turns_left: int) -> str:
    """The observation after a request: the frames it returned and the turn text."""
    lines = frame_lines if config.prompt_style == "compact" else [
        "The frames you asked for:", *frame_lines]
    return "\n".join([frames_block(config.protocol, lines),
                      turn_text(config.protocol, turns_left, config.prompt_style)])


def videos_text(layout: VideoLayout) -> str:
    """Durations and pool index ranges, so the policy knows what it may ask for."""
    describe = [f"lasts {d:.1f}s (frames 0-{n - 1})"
                for n, d in zip(layout.pool_sizes, layout.durations, strict=True)]
    if layout.num_videos == 1:
        return f"The video {describe[0]}."
    return (f"There are {layout.num_videos} videos: "
            + ", ".join(f"video {v} {text}" for v, text in enumerate(describe, start=1)) + ".")


def opening_header(layout: VideoLayout) -> str:
    return ("Frames spread over the video:" if layout.num_videos == 1
            else "Frames spread over each video:")


def frame_line(video: int, index: int | None, time_s: float, num_videos: int,
               labels: str = "full") -> str:
    """`Frame 12 at 12.5s: <image>`; `Video 2 frame 12 ...` for video index 1 of several;
    frames decoded at exact times (no pool index) read `Frame at 12.50s`. With `labels` index:
    `12 <image>`, `v2 12 <image>`, `12.50s <image>`."""
    if labels == "index":
        label = str(index) if index is not None else f"{time_s:.2f}s"
        where = f"v{video + 1} " if num_videos > 1 else ""
        return f"{where}{label} {IMAGE_PLACEHOLDER}"
    frame = f"frame {index} at {time_s:.1f}s" if index is not None else f"frame at {time_s:.2f}s"
    label = f"Video {video + 1} {frame}" if num_videos > 1 else frame[0].upper() + frame[1:]
    return f"{label}: {IMAGE_PLACEHOLDER}"


def turn_text(protocol: str, turns_left: int, style: str = "full") -> str:
    """The reminder that closes every observation; the last turn says to answer now."""
    text = get_protocol(protocol).text
    last = turns_left <= 1 or text is None
    if style == "compact":
        return "Answer." if last else f"{text.verb} or answer."
    if last:
        return "This is your last turn: you must answer now with <answer>...</answer>."
    return (f"You have {turns_left} turns left: answer with <answer>...</answer> or ask for "
            f"frames with {text.short}.")


def invalid_text(error: str) -> str:
    return f"Invalid action: {error}."


def frames_block(protocol: str, lines: list[str]) -> str:
    """Lines of labelled `<image>`s, inside the protocol's response tag when it has one (query
    returns frames as a tool response, `<response>...</response>`, as verl-tool's video_qar)."""
    block = "\n".join(lines)
    tag = get_protocol(protocol).response_tag
    return f"<{tag}>{block}</{tag}>" if tag else block
