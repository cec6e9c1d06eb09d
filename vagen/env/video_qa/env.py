"""VideoQAEnv: question answering over a video's frame pool, in one of the four action
protocols (docs/architecture.md, Contracts: Env protocol).

An episode plays the sample `seed % len(samples)`. Turn 1 shows uniform frames; each later
turn shows the frames the previous action asked for. An answer ends the episode
(`terminated`) and earns `combine(config.rewards)`; using up `max_turns` without one ends it
`truncated`. Model text never raises: a malformed action is a penalised turn."""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vagen.data.sample import Sample, SampleError, load_samples, option_index, option_letter
from vagen.env.base import ContextPolicy, EpisodeStateError, Observation, StepInfo, StepResult
from vagen.env.registry import register_env
from vagen.env.video_qa import prompts
from vagen.env.video_qa.config import ConfigError, VideoQAConfig
from vagen.env.video_qa.frames import (
    ShownFrame,
    request_frames,
    requested_spans,
    uniform_frames,
    visual_tokens,
)
from vagen.env.video_qa.oracle import (
    Span,
    brief_think_request,
    evidence_spans,
    missed_span,
    narration,
    oracle_answer,
    oracle_think_request,
    request_text,
    shown_span,
    snapped_span,
)
from vagen.env.video_qa.protocols import Action, VideoLayout, get_protocol, parse_action
from vagen.rewards import combine, get_reward
from vagen.rewards.choice import option_key
from vagen.rewards.grounding import evidence_seen, frame_set_iou
from vagen.rewards.parsing import first_number
from vagen.video.pool import FramePool, get_pool
from vagen.video.pool_processes import prefetch_pools

# The largest samples file an env group may name (its rows are held in memory).
MAX_SAMPLES_BYTES = 1 << 30

LAST_TURN_ERROR = "this was your last turn, so it had to be an answer"


@dataclass
class _Episode:
    sample: Sample
    pools: list[FramePool]
    layout: VideoLayout
    spans: list[Span]
    seed: int = 0
    turn: int = 0
    requested: bool = False
    done: bool = False
    seen_times: list[float] = field(default_factory=list)
    seen_video_ids: list[int] = field(default_factory=list)
    seen_indices: list[set[int]] = field(default_factory=list)
    relevant: set[tuple[int, int]] = field(default_factory=set)  # (video, pool index)
    initial_iou: float = 0.0
    visual_tokens: int = 0
    requested_spans: list[list[float]] = field(default_factory=list)  # this turn's

    def frames_iou(self, frames: list[ShownFrame]) -> float:
        """IoU of `frames` with the pool frames inside the relevant spans (Video-MTR's
        frame IoU); a frame decoded at an exact time counts as its nearest pool frame."""
        keys = [(f.video, f.index if f.index is not None
                 else self.pools[f.video].at_times([f.time_s])[0]) for f in frames]
        return frame_set_iou(keys, self.relevant)

    def record(self, frames: list[ShownFrame]) -> None:
        for frame in frames:
            self.seen_times.append(frame.time_s)
            self.seen_video_ids.append(frame.video)
            if frame.index is not None:
                self.seen_indices[frame.video].add(frame.index)


class VideoQAEnv:
    """One env of a group; `reset`/`step`/`system_prompt`/`close` as `vagen.env.base.Env`."""

    def __init__(self, config: VideoQAConfig) -> None:
        self.config = config
        self.samples = load_env_samples(config)
        self.reward = combine(config.rewards)
        self.pool_config = config.pool_config()
        self._episode: _Episode | None = None

    def context(self) -> ContextPolicy:
        """The group's context policy (turns, window, tokens per turn) every player uses;
        the env itself returns each turn's frames only."""
        return self.config.context()

    def sample_for_seed(self, seed: int) -> Sample:
        return self.samples[seed % len(self.samples)]

    def prefetch(self, seeds: Iterable[int], workers: int) -> int:
        """Decode the videos of the episodes `seeds` will play in `workers` processes ahead
        of time (SFT replays thousands); returns how many pools were decoded."""
        paths = [path for seed in seeds for path in self.sample_for_seed(seed).videos]
        return prefetch_pools(paths, self.pool_config, workers)

    def system_prompt(self) -> str:
        return prompts.system_prompt(self.config)

    def reset(self, seed: int) -> Observation:
        sample = self.sample_for_seed(seed)
        pools = [get_pool(path, self.pool_config) for path in sample.videos]
        layout = VideoLayout(tuple(len(p) for p in pools), tuple(p.duration_s for p in pools))
        self._episode = episode = _Episode(sample, pools, layout, evidence_spans(sample, pools),
                                           seed=seed, seen_indices=[set() for _ in pools])
        episode.relevant = relevant_frames(sample, pools)
        frames = uniform_frames(pools, self.config.initial_frames)
        episode.initial_iou = episode.frames_iou(frames)
        text = prompts.opening_text(self.config, sample, layout, self._frame_lines(frames))
        return self._observe(episode, text, frames)

    def step(self, action_text: str) -> StepResult:
        episode = self._active_episode()
        episode.turn += 1
        action_text = action_text if isinstance(action_text, str) else ""
        action = parse_action(self.config.protocol, action_text, episode.layout,
                              self.config.retrieve_units, self.config.lenient_spans)
        if action.valid and action.type != "answer" and episode.turn >= self.config.max_turns:
            action = Action("invalid", error=LAST_TURN_ERROR)
        if action.type == "answer":
            return self._answer(episode, action, action_text)
        if not action.valid:
            return self._invalid(episode, action, action_text)
        return self._request(episode, action, action_text)

    def oracle_action(self) -> str:
        """What an expert writes now: ask once for the relevant spans (or what the opening
        frames locate, with `oracle_spans: carrier | shown`), then answer. The `oracle_*`
        keys of the config make it brief, answer with option texts, or an imperfect expert
        (`oracle_miss`) that answers honestly (`oracle_unseen`)."""
        episode = self._active_episode()
        spans = self._oracle_request_spans(episode)
        return self._oracle_request(episode, spans) if spans else self._oracle_answer(episode)

    def oracle_demonstrates(self) -> bool:
        """Whether SFT should learn the oracle's next action: not an answer it gives without
        having seen the evidence, with `oracle_unseen: skip`."""
        episode = self._active_episode()
        answering = not self._oracle_request_spans(episode)
        return not (self.config.oracle_unseen == "skip" and answering
                    and not self._saw_evidence(episode))

    def _oracle_request_spans(self, episode: _Episode) -> list[Span]:
        """The spans the oracle asks for now; none when its next action is the answer."""
        if (episode.requested or not get_protocol(self.config.protocol).asks
                or episode.turn + 1 >= self.config.max_turns):
            return []
        return self._oracle_spans(episode)

    def _oracle_spans(self, episode: _Episode) -> list[Span]:
        spans = episode.spans
        carriers = episode.sample.extra.get("carrier_spans")
        if self.config.oracle_spans != "relevant" and carriers:
            locate = located_span if self.config.oracle_spans == "carrier" else shown_span
            spans = [locate(span, episode.pools[span[2]], episode.seen_indices[span[2]])
                     for span in evidence_spans(episode.sample, episode.pools, carriers)]
        if _draw(episode.seed, "miss") < self.config.oracle_miss:
            spans = [missed_span(span, episode.pools[span[2]].duration_s) for span in spans]
            if self.config.oracle_spans == "shown":
                spans = [snapped_span(span, episode.pools[span[2]], episode.seen_indices[span[2]])
                         for span in spans]
        return spans

    def _oracle_request(self, episode: _Episode, spans: list[Span]) -> str:
        num_videos = episode.layout.num_videos
        if self.config.oracle_think == "brief":
            think = brief_think_request(self._carrier_labels(episode))
        else:
            think = oracle_think_request(spans, num_videos)
        return think + request_text(self.config.protocol, spans, episode.pools,
                                    self.config.frames_per_turn, self.config.retrieve_units,
                                    exact=self.config.oracle_spans == "shown")

    def _carrier_labels(self, episode: _Episode) -> list[str]:
        """Labels (as the policy read them) of the frames shown so far that show a carrier."""
        num_videos = episode.layout.num_videos
        labels = []
        for start, end, video in evidence_spans(episode.sample, episode.pools,
                                                episode.sample.extra.get("carrier_spans")):
            pool = episode.pools[video]
            labels += [(f"v{video + 1} " if num_videos > 1 else "") + str(i)
                       for i in sorted(episode.seen_indices[video])
                       if start <= pool.timestamps[i] <= end]
        return labels

    def _oracle_answer(self, episode: _Episode) -> str:
        sample = episode.sample
        answer = sample.answer
        if (self.config.oracle_unseen == "guess" and sample.options
                and not self._saw_evidence(episode)):
            answer, rationale = _pick_option(sample, episode.seed), "not seen"
        else:
            rationale = narration(sample, episode.spans, episode.layout.num_videos,
                                  brief=self.config.oracle_think == "brief")
        if self.config.oracle_answer == "text" and sample.options:
            key = option_key(answer, sample.options)
            answer = sample.options[option_index(key)] if key else answer
        return oracle_answer(rationale, answer)

    def _saw_evidence(self, episode: _Episode) -> bool:
        """Whether every relevant span holds a frame that was shown (eval's evidence_seen)."""
        return evidence_seen(episode.seen_times, episode.seen_video_ids,
                             episode.sample.relevant_spans or [])

    def close(self) -> None:
        """Drop the episode; pools stay in the process-wide cache. Safe to call twice."""
        self._episode = None

    def _active_episode(self) -> _Episode:
        if self._episode is None:
            raise EpisodeStateError("no episode: call reset(seed) first (after close, reset "
                                    "again)")
        if self._episode.done:
            raise EpisodeStateError("the episode is over; call reset(seed) for a new one")
        return self._episode

    def _frame_lines(self, frames: list[ShownFrame]) -> list[str]:
        num_videos = self._episode.layout.num_videos
        return [prompts.frame_line(f.video, f.index, f.time_s, num_videos,
                                   self.config.frame_labels) for f in frames]

    def _observe(self, episode: _Episode, text: str, frames: list[ShownFrame]) -> Observation:
        episode.record(frames)
        episode.visual_tokens += self._tokens(frames)
        return Observation(text=text, frames=[f.image for f in frames],
                           timestamps=[f.time_s for f in frames],
                           video_ids=[f.video for f in frames])

    def _tokens(self, frames: list[ShownFrame]) -> int:
        return visual_tokens(frames, self.pool_config.image_factor)

    def _request(self, episode: _Episode, action: Action, text: str) -> StepResult:
        frames = request_frames(episode.pools, action.requests, self.config.frames_per_turn,
                                episode.seen_indices)
        cap = self.config.max_visual_tokens
        if cap:
            fitting = [f for i, f in enumerate(frames)
                       if episode.visual_tokens + self._tokens(frames[:i + 1]) <= cap]
            if frames and not fitting:
                return self._invalid(episode, Action("invalid", error=(
                    f"the visual budget of {cap} image tokens is spent "
                    f"({episode.visual_tokens} used); answer with <answer>...</answer>")), text)
            frames = fitting
        episode.requested = True
        episode.requested_spans = requested_spans(episode.pools, action.requests)
        text = prompts.fetched_text(self.config, self._frame_lines(frames),
                                    self.config.max_turns - episode.turn)
        obs = self._observe(episode, text, frames)
        return StepResult(obs, 0.0, False, False, self._info(
            episode, action, {}, False, episode.frames_iou(frames) if frames else None))

    def _answer(self, episode: _Episode, action: Action, text: str) -> StepResult:
        episode.done = True
        sample = episode.sample
        parts = self.reward.parts(text, sample.answer, self._reward_info(episode))
        correct = is_correct(action.answer, sample)
        return StepResult(Observation(text=""), self.reward.total(parts), True, False,
                          self._info(episode, action, parts, correct))

    def _invalid(self, episode: _Episode, action: Action, text: str) -> StepResult:
        truncated = episode.turn >= self.config.max_turns
        episode.done = truncated
        if self.config.invalid_reward == "format":
            parts = {"format": get_reward("format")(text, episode.sample.answer)}
            reward = self.config.rewards["format"] * parts["format"]
        else:
            parts = {"format_penalty": self.config.format_penalty}
            reward = self.config.format_penalty
        closing = ("The turn limit is reached." if truncated else
                   prompts.turn_text(self.config.protocol, self.config.max_turns - episode.turn,
                                     self.config.prompt_style))
        obs = Observation(text=prompts.invalid_text(action.error) + "\n" + closing)
        return StepResult(obs, reward, False, truncated,
                          self._info(episode, action, parts, False))

    def _reward_info(self, episode: _Episode) -> dict[str, Any]:
        sample = episode.sample
        return {"options": sample.options, "answer_type": sample.answer_type,
                "relevant_spans": sample.relevant_spans, "seen_times": list(episode.seen_times),
                "seen_video_ids": list(episode.seen_video_ids)}

    def _info(self, episode: _Episode, action: Action, parts: dict[str, float],
              correct: bool, frames_iou: float | None = None) -> dict[str, Any]:
        """`frames_iou`: the IoU of the frames this turn fetched with the relevant frames
        (None when it fetched none); `initial_iou`: the same for the opening frames. Reward
        shaping (Video-MTR) reads both."""
        return StepInfo(
            valid_action=action.valid, action_type=action.type, turn=episode.turn,
            frames_seen=len(episode.seen_times), answer=action.answer, correct=correct,
            error=action.error, reward_parts=parts, seen_times=list(episode.seen_times),
            seen_video_ids=list(episode.seen_video_ids), sample_id=episode.sample.id,
            frames_iou=frames_iou, initial_iou=episode.initial_iou,
            requested=episode.requested_spans if action.valid and action.type != "answer"
            else [], visual_tokens=episode.visual_tokens).to_dict()


def relevant_frames(sample: Sample, pools: list[FramePool]) -> set[tuple[int, int]]:
    """(video, pool index) of every pool frame inside a relevant span."""
    frames = set()
    for span in sample.relevant_spans or []:
        video = int(span[2]) if len(span) == 3 else 0
        pool = pools[video]
        frames.update((video, i) for i in pool.in_span(float(span[0]), float(span[1]), len(pool)))
    return frames


def located_span(carrier: Span, pool: FramePool, seen: set[int], margin: int = 2) -> Span:
    """What an expert who only saw the opening frames would ask for: the seen frames that
    show the carrier, widened by `margin` pool frames each side (the carrier's own span when
    no seen frame shows it)."""
    start, end, video = carrier
    inside = [i for i in sorted(seen) if start <= pool.timestamps[i] <= end]
    if not inside:
        return carrier
    lo, hi = max(0, inside[0] - margin), min(len(pool) - 1, inside[-1] + margin)
    return float(pool.timestamps[lo]), float(pool.timestamps[hi]), video


def _draw(seed: int, purpose: str) -> float:
    """A number in [0, 1) fixed by the episode seed, one stream per purpose."""
    return float(np.random.default_rng([seed, zlib.crc32(purpose.encode())]).random())


def _pick_option(sample: Sample, seed: int) -> str:
    """A guess among the sample's options (its letter), fixed by the episode seed."""
    count = len(sample.options or [])
    return option_letter(min(count - 1, int(_draw(seed, "guess") * count)))


@register_env("video_qa")
def make_video_qa_env(config: dict[str, Any]) -> VideoQAEnv:
    return VideoQAEnv(VideoQAConfig.from_dict(config))


def is_correct(answer: str | None, sample: Sample) -> bool:
    """Exact correctness (for accuracy): the chosen option, the same number, the same actions.
    Stricter than the shaped rewards (numeric gives 1.0 within a tolerance)."""
    if not answer:
        return False
    if sample.answer_type == "number":
        predicted, expected = first_number(answer), first_number(sample.answer)
        return predicted is not None and predicted == expected
    reward = "action_set" if sample.answer_type == "actions" else "choice"
    return get_reward(reward)(answer, sample.answer, {"options": sample.options}) == 1.0


def _check_playable(sample: Sample, path: Path) -> None:
    """Data errors surface when the env is made, not at the answer turn of some episode."""
    if sample.answer_type == "choice" and option_key(sample.answer, sample.options) is None:
        raise SampleError(f"{path}: sample {sample.id}: field 'answer' {sample.answer!r} names "
                          f"none of its {len(sample.options or [])} options (unanswered rows: "
                          "convert with --answered-only)")
    for span in sample.relevant_spans or []:
        if len(span) == 3 and not 0 <= int(span[2]) < len(sample.videos):
            raise SampleError(f"{path}: sample {sample.id}: field 'relevant_spans' has {span!r}, "
                              f"but video indices run 0-{len(sample.videos) - 1}")


def load_env_samples(config: VideoQAConfig) -> list[Sample]:
    """The group's samples; relative video paths resolve against the samples file's folder,
    and samples that carry `extra.split` play only in that split."""
    path = Path(config.data)
    if not path.exists():
        raise ConfigError(f"env group '{config.name}': key 'data' names {path}, which does not "
                          "exist; make synthetic data with `vagen data synth` or fix the path")
    # a FIFO or device would block or never end, a folder is no samples file
    if not path.is_file():
        raise ConfigError(f"env group '{config.name}': key 'data' names {path}, which is not a "
                          "regular file")
    if path.stat().st_size > MAX_SAMPLES_BYTES:
        raise ConfigError(f"env group '{config.name}': key 'data' names {path}, larger than "
                          f"{MAX_SAMPLES_BYTES >> 20} MiB; split it into groups")
    samples = [dataclasses.replace(s, videos=[str(path.parent / v) if not Path(v).is_absolute()
                                              else v for v in s.videos])
               for s in load_samples(path)]
    for sample in samples:
        _check_playable(sample, path)
    splits = {s.extra["split"] for s in samples if "split" in s.extra}
    if splits:
        samples = [s for s in samples if s.extra.get("split") == config.split]
    if not samples:
        raise ConfigError(f"env group '{config.name}': key 'split' is '{config.split}' but "
                          f"{path} has no samples for it (splits: {sorted(splits) or 'none'})")
    return samples
