"""The multi-turn loop: generate for every active trajectory at once, send all actions to
the envs in one batched call, append the observations as new user turns, repeat."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from vagen.env.base import ContextPolicy, Observation, StepResult
from vagen.rollout.backends.base import PolicyBackend, SamplingParams
from vagen.rollout.tokens import ChatCodec, TrajectoryTokens


class BatchedEnvs(Protocol):
    """Batched env calls keyed by env id, as `vagen.server.client.EnvClient` makes them
    (one HTTP call per server per batch)."""

    def reset(self, seeds: Mapping[str, int]) -> dict[str, Observation]: ...

    def step(self, actions: Mapping[str, str]) -> dict[str, StepResult]: ...

    def system_prompt(self, env_id: str) -> str: ...


@dataclass
class RolloutConfig:
    """How trajectories are played."""

    max_turns: int = field(default=3, metadata={"help": "turns per trajectory at most "
                                                        "(the env may end sooner)"})
    window: int | None = field(default=2, metadata={
        "help": "user turns whose images stay in the context (None: all)"})
    sampling: SamplingParams = field(default_factory=SamplingParams)

    def __post_init__(self) -> None:
        if self.max_turns < 1:
            raise ValueError(f"rollout.max_turns must be >= 1, got {self.max_turns}")
        if isinstance(self.sampling, dict):
            self.sampling = SamplingParams(**self.sampling)

    @classmethod
    def from_context(cls, context: ContextPolicy, sampling: SamplingParams) -> RolloutConfig:
        """Play by an env group's context policy (turns, window, tokens per turn), sampling
        as `sampling` says otherwise."""
        return cls(max_turns=context.max_turns, window=context.window,
                   sampling=replace(sampling, max_new_tokens=context.max_new_tokens))


@dataclass
class Shown:
    """What one observation showed, without its pixels (for the trajectory viewer): its text
    and, per frame, its time and video."""

    text: str
    times: list[float]
    videos: list[int]

    @classmethod
    def of(cls, obs: Observation) -> Shown:
        return cls(obs.text, [float(t) for t in obs.timestamps],
                   [int(v) for v in obs.video_ids])


@dataclass
class TurnRecord:
    """One played turn: what the policy said and what the env made of it."""

    response: str
    num_tokens: int
    reward: float
    info: dict[str, Any]


@dataclass
class Trajectory:
    env_id: str
    seed: int
    group: int
    tokens: TrajectoryTokens
    turns: list[TurnRecord] = field(default_factory=list)
    shown: list[Shown] = field(default_factory=list)  # the opening, then each step's
    terminated: bool = False
    truncated: bool = False

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated

    @property
    def reward(self) -> float:
        return sum(t.reward for t in self.turns)

    @property
    def last_info(self) -> dict[str, Any]:
        return self.turns[-1].info if self.turns else {}


class RolloutManager:
    """Plays batches of trajectories of one policy against batched envs."""

    def __init__(self, policy: PolicyBackend, codec: ChatCodec, envs: BatchedEnvs,
                 config: RolloutConfig | None = None) -> None:
        self.policy = policy
        self.codec = codec
        self.envs = envs
        self.config = config or RolloutConfig()

    def run(self, env_ids: list[str], seeds: list[int],
            groups: list[int] | None = None) -> list[Trajectory]:
        """Reset `env_ids` with `seeds` and play until every trajectory is done or the turn
        limit; `groups` tags trajectories sharing a prompt (GRPO)."""
        if len(env_ids) != len(seeds):
            raise ValueError(f"{len(env_ids)} env ids but {len(seeds)} seeds")
        groups = list(range(len(env_ids))) if groups is None else groups
        observations = self.envs.reset(dict(zip(env_ids, seeds, strict=True)))
        trajectories = []
        for env_id, seed, group in zip(env_ids, seeds, groups, strict=True):
            tokens = TrajectoryTokens(self.codec, self.envs.system_prompt(env_id),
                                      self.config.window)
            obs = observations[env_id]
            tokens.add_observation(obs.text, obs.frames)
            trajectories.append(Trajectory(env_id, seed, group, tokens, shown=[Shown.of(obs)]))
        for turn in range(1, self.config.max_turns + 1):
            active = [t for t in trajectories if not t.done]
            if not active:
                break
            self._play_turn(active, turn)
        for trajectory in trajectories:
            trajectory.truncated = trajectory.truncated or not trajectory.done
        return trajectories

    def _play_turn(self, active: list[Trajectory], turn: int) -> None:
        generations = self.policy.generate([t.tokens.generation_input() for t in active],
                                           self.config.sampling)
        results = self.envs.step({t.env_id: g.text
                                  for t, g in zip(active, generations, strict=True)})
        for trajectory, generation in zip(active, generations, strict=True):
            result = results[trajectory.env_id]
            # Token turn ids count from 0 (the advantage estimators' convention).
            trajectory.tokens.add_response(generation.ids, generation.logprobs, turn - 1)
            trajectory.tokens.set_turn_reward(turn - 1, result.reward)
            trajectory.turns.append(TurnRecord(generation.text, len(generation.ids),
                                               result.reward, result.info))
            trajectory.shown.append(Shown.of(result.obs))
            trajectory.terminated, trajectory.truncated = result.terminated, result.truncated
            if not result.done and turn < self.config.max_turns:
                trajectory.tokens.add_observation(result.obs.text, result.obs.frames)
