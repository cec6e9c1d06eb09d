"""One env group of `env_config.yaml` (docs/architecture.md, Contracts: Env config): the only
source of the video QA env's defaults. Errors name the group and the key and say what to
change."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from vagen.config import check_keys
from vagen.env.base import ContextPolicy
from vagen.env.video_qa.protocols import get_protocol, protocols
from vagen.video.pool import PoolConfig

RETRIEVE_UNITS = ("index", "seconds")
INVALID_REWARDS = ("penalty", "format")
ORACLE_SPANS = ("relevant", "carrier", "shown")
PROMPT_STYLES = ("full", "compact")
FRAME_LABELS = ("full", "index")
ORACLE_THINKS = ("narrate", "brief")
ORACLE_ANSWERS = ("letter", "text")
ORACLE_UNSEEN = ("truth", "guess", "skip")


# The most bytes one video's frame pool may hold (pool_max_frames x max_pixels x 3).
POOL_BYTES_MOST = 2 * 2**30


class ConfigError(ValueError):
    """An env config value that cannot work; the message names the key."""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _pool_key(name: str, most: float | None = None) -> Any:
    """A field that is PoolConfig's `name`: its default and help come from there."""
    pool = {f.name: f for f in fields(PoolConfig)}[name]
    return _help(pool.default, pool.metadata["help"], most=most)


def _help(default: Any, text: str, most: float | None = None, **kw: Any) -> Any:
    """A field with its help text; `most` bounds a size-like key (checked, and said in the
    help), so no config - YAML, CLI or one sent over HTTP - can ask for unbounded memory."""
    metadata = {"help": text if most is None else f"{text}; at most {_number(most)}",
                "most": most}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata, **kw)
    return field(default=default, metadata=metadata, **kw)


@dataclass
class VideoQAConfig:
    """Settings of one env group; `from_dict` builds it from a YAML group."""

    name: str = _help("video_qa", "env group name; dataset rows and logs carry it")
    env: str = _help("video_qa", "registered env that plays this group")
    protocol: str = _help("retrieve", "how the policy asks for frames, a registered protocol: "
                                      + " | ".join(p.name for p in protocols()))
    data: str = _help("data/synthetic/samples.jsonl",
                      "samples file (.jsonl/.json/.parquet); relative video paths in it resolve "
                      "against its folder")
    split: str = _help("train", "dataset split the group's rows go to (train | test); samples "
                                "that carry extra.split only play in their own split")
    n: int = _help(64, "episodes (dataset rows) of this group; seeds seed .. seed+n-1")
    seed: int = _help(0, "first seed; reset(seed) plays sample seed % len(samples)")
    max_turns: int = _help(3, "turns per episode, the answer turn included", most=64)
    initial_frames: int = _help(16, "uniform frames shown at reset (split across videos)",
                                most=512)
    frames_per_turn: int = _help(8, "most frames one request returns (split across videos)",
                                 most=512)
    window: int = _help(2, "user turns whose frames stay in the context (retrieve protocol; "
                           ">= max_turns keeps them all, which verl's trainer needs); the local "
                           "trainer, verl's agent loop and eval all read it")
    max_new_tokens: int = _help(512, "tokens the policy may write per turn (Video-MTR: 512); "
                                     "training and evaluation both read it", most=32768)
    max_visual_tokens: int = _help(0, "most image tokens an episode may see (its frames x "
                                      "tokens per frame); a request past it returns the "
                                      "frames that fit, or is refused with a message to the "
                                      "policy; 0: no cap", most=10**7)
    retrieve_units: str = _help("index", "what <retrieve>s,e</retrieve> numbers are: index "
                                         "(pool frame indices, as Video-MTR) | seconds")
    # How a video becomes its frame pool: PoolConfig's keys, defaults and help.
    pool_fps: float = _pool_key("pool_fps", most=30)
    pool_max_frames: int = _pool_key("pool_max_frames", most=1024)
    max_pixels: int = _pool_key("max_pixels", most=28 * 28 * 1280)
    min_pixels: int = _pool_key("min_pixels")
    format_penalty: float = _help(-0.1, "reward of a malformed action turn "
                                        "(invalid_reward: penalty)")
    invalid_reward: str = _help("penalty", "what a malformed action earns: penalty "
                                           "(format_penalty) | format (the weighted format "
                                           "reward of its text)")
    prompt_example: bool = _help(True, "end the system prompt with a worked example (false "
                                       "saves ~200 tokens a turn, e.g. for tiny models)")
    prompt_style: str = _help("full", "full (the rules in words) | compact (a one-line system "
                                      "prompt, the question and options on two lines, the turn "
                                      "text 'Retrieve or answer.': ~260 instead of ~900 "
                                      "tokens an episode, for tiny models)")
    frame_labels: str = _help("full", "how a frame is labelled: full ('Frame 12 at 12.5s: "
                                      "<image>') | index (its pool index alone: '12 <image>')")
    lenient_spans: bool = _help(False, "read a reversed range (<retrieve>25,17</retrieve>, "
                                       "'frames 25-17') as 17-25 instead of refusing it as "
                                       "malformed")
    oracle_spans: str = _help("relevant", "what oracle_action() asks for: relevant (the "
                                          "annotated spans) | carrier (the opening frames "
                                          "that show extra.carrier_spans, widened by 2 "
                                          "frames: a learnable expert for SFT warm starts) | "
                                          "shown (from the opening frame just before the "
                                          "first one showing the carrier to the one just after "
                                          "the last: it copies labels it was shown)")
    oracle_think: str = _help("narrate", "the oracle's <think>: narrate (the evidence in words) | "
                                         "brief (a request lists the labels of the opening "
                                         "frames that show the carrier; an answer names what "
                                         "it saw, extra.evidence_brief, e.g. 'white red')")
    oracle_answer: str = _help("letter", "how the oracle answers a choice: letter (B) | text "
                                         "(the option's text, e.g. red)")
    oracle_miss: float = _help(0.0, "share of episodes (picked by seed) in which the oracle "
                                    "asks for a span as wide as the right one just past the "
                                    "carrier, missing the evidence: an imperfect expert that RL "
                                    "can improve on")
    oracle_unseen: str = _help("truth", "what the oracle answers when the frames shown missed "
                                        "the evidence: truth (as if it had seen it) | guess "
                                        "(honestly: <think>not seen</think> and an option "
                                        "picked by seed) | skip (the truth, but SFT does not "
                                        "learn that answer turn)")
    rewards: dict[str, float] = _help({"choice": 1.0, "format": 0.1},
                                      "reward name -> weight for the answer turn "
                                      "(vagen.rewards names)")

    def __post_init__(self) -> None:
        self._check_types()
        self._check_values()

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> VideoQAConfig:
        """Build from a YAML group; unknown keys are errors that list the valid ones."""
        check_keys(cls, values, where=f"env group '{values.get('name', 'video_qa')}'",
                   error=ConfigError)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _fail(self, key: str, problem: str) -> None:
        raise ConfigError(f"env group '{self.name}': key '{key}' {problem}")

    def _check_types(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            kind = {"str": str, "int": int, "float": float, "bool": bool,
                    "dict[str, float]": dict}[f.type]
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                setattr(self, f.name, float(value))
            elif isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
                self._fail(f.name, f"must be {kind.__name__}, got {value!r}")
        for reward, weight in self.rewards.items():
            if not isinstance(weight, int | float) or isinstance(weight, bool):
                self._fail("rewards", f"weight of '{reward}' must be a number, got {weight!r}")

    def pool_config(self) -> PoolConfig:
        """The frame pool of this group's videos (PoolConfig's keys of this config)."""
        return PoolConfig(**{f.name: getattr(self, f.name) for f in fields(PoolConfig)
                             if hasattr(self, f.name)})

    def context(self) -> ContextPolicy:
        """The group's context policy. Only a windowed protocol (retrieve) drops old frames,
        and a window of max_turns or more drops none (None)."""
        keeps_all = not get_protocol(self.protocol).windowed or self.window >= self.max_turns
        return ContextPolicy(max_turns=self.max_turns,
                             window=None if keeps_all else self.window,
                             max_new_tokens=self.max_new_tokens)

    def _check_values(self) -> None:
        for key, choices in (("protocol", [p.name for p in protocols()]),
                             ("retrieve_units", RETRIEVE_UNITS),
                             ("invalid_reward", INVALID_REWARDS),
                             ("oracle_spans", ORACLE_SPANS), ("prompt_style", PROMPT_STYLES),
                             ("frame_labels", FRAME_LABELS), ("oracle_think", ORACLE_THINKS),
                             ("oracle_answer", ORACLE_ANSWERS),
                             ("oracle_unseen", ORACLE_UNSEEN)):
            if getattr(self, key) not in choices:
                self._fail(key, f"is {getattr(self, key)!r}; use one of {', '.join(choices)}")
        for key in ("max_turns", "initial_frames", "frames_per_turn", "window",
                    "max_new_tokens", "pool_max_frames", "min_pixels"):
            if getattr(self, key) < 1:
                self._fail(key, f"must be >= 1, got {getattr(self, key)}")
        for key in ("n", "seed", "max_visual_tokens"):
            if getattr(self, key) < 0:
                self._fail(key, f"must be >= 0, got {getattr(self, key)}")
        for f in fields(self):
            most = f.metadata.get("most")
            if most is not None and getattr(self, f.name) > most:
                self._fail(f.name, f"is {getattr(self, f.name)}, more than its bound "
                                   f"{_number(most)} (a size that would hold too much memory)")
        pool_bytes = self.pool_max_frames * self.max_pixels * 3
        if pool_bytes > POOL_BYTES_MOST:
            self._fail("pool_max_frames", f"x max_pixels x 3 bytes is {pool_bytes / 2**30:.1f} "
                                          f"GiB a video pool, more than "
                                          f"{POOL_BYTES_MOST / 2**30:.0f} GiB; lower either")
        if not 0.0 <= self.oracle_miss <= 1.0:
            self._fail("oracle_miss", f"must be in [0, 1], got {self.oracle_miss}")
        if self.pool_fps <= 0:
            self._fail("pool_fps", f"must be > 0, got {self.pool_fps}")
        if not self.data:
            self._fail("data", "is empty; give the samples file, e.g. "
                               "data/synthetic/train/samples.jsonl")
        asks = get_protocol(self.protocol).asks
        if not asks and self.max_turns != 1:
            self._fail("max_turns", f"is {self.max_turns} but protocol '{self.protocol}' plays "
                                    "one turn; set max_turns: 1")
        if asks and self.max_turns < 2:
            self._fail("max_turns", f"is {self.max_turns} but protocol '{self.protocol}' needs "
                                    ">= 2 turns to ask for frames; use protocol: single for one")
        for key in ("initial_frames", "frames_per_turn"):
            if getattr(self, key) > self.pool_max_frames:
                self._fail(key, f"is {getattr(self, key)} but the pool holds at most "
                                f"pool_max_frames={self.pool_max_frames} frames; lower it or "
                                "raise pool_max_frames")
        if self.min_pixels > self.max_pixels:
            self._fail("min_pixels", f"is {self.min_pixels} > max_pixels={self.max_pixels}")
        self._check_rewards()

    def _check_rewards(self) -> None:
        from vagen.rewards import list_rewards

        if not self.rewards:
            self._fail("rewards", "is empty; give at least one reward, e.g. {choice: 1.0}")
        valid = list_rewards()
        for reward in self.rewards:
            if reward not in valid:
                self._fail("rewards", f"names unknown reward '{reward}'; valid: "
                                      f"{', '.join(valid)}")
        if self.invalid_reward == "format" and "format" not in self.rewards:
            self._fail("invalid_reward", "is 'format' but rewards has no 'format' weight; add "
                                         "one or use invalid_reward: penalty")
