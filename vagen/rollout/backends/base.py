"""What the rollout manager needs from a policy: batched generation over token ids + images,
returning the sampled ids with their sampling log-probs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from vagen.env.video_qa.protocols import stop_strings
from vagen.rollout.images import ProcessedImage


@dataclass
class SamplingParams:
    """How to sample one turn. `temperature=0` is greedy. Training must score with the same
    temperature, so log-probs are those of `softmax(logits / temperature)`."""

    max_new_tokens: int = field(default=128, metadata={"help": "tokens per turn at most"})
    temperature: float = field(default=1.0, metadata={"help": "0 for greedy"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling; 1.0 keeps log-probs "
                                                        "exact for PPO"})
    stop: tuple[str, ...] = field(default_factory=stop_strings, metadata={
        "help": "a turn ends after any of these strings (default: the registered protocols' "
                "closing tags)"})
    seed: int | None = field(default=None, metadata={
        "help": "seed of each generate call: the same prompts draw the same tokens, and the "
                "caller's torch RNG is left as it was (None: draw from that RNG)"})

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass
class Generation:
    """One sampled turn: ids up to and including the stop, their log-probs, decoded text."""

    ids: list[int]
    logprobs: list[float]
    text: str


PromptInput = tuple[list[int], list[ProcessedImage]]


class PolicyBackend(Protocol):
    def generate(self, prompts: list[PromptInput], sampling: SamplingParams) -> list[Generation]:
        """Sample one turn for every prompt at once."""
        ...
