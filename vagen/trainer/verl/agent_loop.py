"""verl's agent loop for vagen envs: one trajectory plays one env episode on the env server.

verl 0.9.1 runs one `AgentLoopBase.run` per trajectory (many at once on an event loop) and
expects a single prompt + response, where the response interleaves the policy's tokens
(`response_mask` 1) with env tokens (0). Ids come from `vagen.rollout.tokens` (the same
chat rendering as the local trainer), frames go to the rollout server as images, and the
env server is called through the sync `EnvClient` on a worker thread so the event loop keeps
generating other trajectories meanwhile.

Turns and tokens per turn come from the row's env group (`ContextPolicy`, as in eval), and
the whole history stays in the context: verl trains one row per trajectory and that row
must be a prefix-growing sequence, so the group's window must keep every turn. Each turn's
env reward is kept on the turn's last policy token (`VideoAgentLoopWorker` writes them
into verl's `rm_scores`), so `grpo_turn` and `bi_level_gae` see per-turn rewards; the
trajectory's sum is its score."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any
from uuid import uuid4

import numpy as np
import ray
import torch
from PIL import Image
from verl.experimental.agent_loop.agent_loop import (
    AgentLoopBase,
    AgentLoopManager,
    AgentLoopOutput,
    AgentLoopWorker,
    register,
)
from verl.utils.profiler import simple_timer

from vagen.config import check_keys
from vagen.env.base import ContextPolicy, StepInfo, StepResult
from vagen.env.video_qa.config import VideoQAConfig
from vagen.rollout.backends.base import SamplingParams
from vagen.rollout.images import PatchSpec
from vagen.rollout.manager import Shown, TurnRecord
from vagen.rollout.tokens import ChatCodec, TrajectoryTokens
from vagen.server.app import TOKEN_ENV_VAR
from vagen.server.client import EnvClient, EnvServerError
from vagen.server.wire import DEFAULT_CODEC
from vagen.trainer.verl.frames import frames_for_transport
from vagen.trainer.verl.rows import Episode
from vagen.trainer.verl.shaping import TURN_INFOS, turn_info
from vagen.trainer.verl.view import VIEW_FIELD, episode_material

AGENT_NAME = "vagen_env"
TOKEN_REWARDS = "vagen_token_rewards"  # extra field: per-response-token rewards
FAILED = "vagen_failed"  # extra field: why the trajectory failed ("" when it did not)
FAILED_METRIC = "rollout/failed_trajectories"
logger = logging.getLogger(__name__)


class TrajectoryFailed(RuntimeError):
    """A trajectory that cannot be played (an env server error, an over-long first
    observation): it is dropped from the step, not fatal to it."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _default(cls: type, name: str) -> Any:
    """A dataclass field's default, so our defaults live in one place."""
    spec = {f.name: f for f in fields(cls)}[name]
    return spec.default_factory() if callable(spec.default_factory) else spec.default


@dataclass
class VerlAgentConfig:
    """`vagen.agent` in the verl config: where the env servers are and how a turn is played.
    Defaults come from the local rollout's dataclasses."""

    env_servers: list[str] = field(default_factory=lambda: ["http://127.0.0.1:5000"], metadata={
        "help": "env server URLs (`vagen server`); env ids are spread over them"})
    server_token: str | None = field(default=None, metadata={
        "help": f"bearer token of the env servers (the recipes fill it from ${TOKEN_ENV_VAR} "
                "where training starts)"})
    codec: str = field(default=DEFAULT_CODEC, metadata={"help": "wire codec for frames"})
    stop: list[str] = field(default_factory=lambda: list(_default(SamplingParams, "stop")),
                            metadata={"help": "a turn ends after any of these strings"})
    max_failed_share: float = field(default=0.1, metadata={
        "help": "share of a step's trajectories that may fail (env errors, over-long first "
                "observations; dropped from the loss) before the step stops training"})

    def __post_init__(self) -> None:
        if isinstance(self.env_servers, str):
            self.env_servers = [self.env_servers]
        self.env_servers = list(self.env_servers)
        self.stop = list(self.stop)
        if not self.env_servers:
            raise ValueError("vagen.agent.env_servers is empty; give the URL of at least one "
                             "`vagen server`, e.g. [http://127.0.0.1:5000]")
        if not 0.0 <= self.max_failed_share <= 1.0:
            raise ValueError("vagen.agent.max_failed_share must be in [0, 1], got "
                             f"{self.max_failed_share}")

    @classmethod
    def from_dict(cls, values: Any) -> VerlAgentConfig:
        """From the `vagen.agent` section; unknown keys are errors that list the valid ones."""
        values = dict(values or {})
        check_keys(cls, sorted(values), where="vagen.agent")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Played:
    """A finished trajectory, as verl's `AgentLoopOutput` wants it."""

    prompt_ids: list[int]
    response_ids: list[int]
    response_mask: list[int]
    response_logprobs: list[float] | None
    token_rewards: list[float]
    images: list[Image.Image]
    turn_scores: list[float]
    turn_infos: list[dict[str, Any]]
    last_info: dict[str, Any]
    view: str = ""  # the episode for the trainer's trajectory log (view.py)


@register(AGENT_NAME)
class VideoEnvAgentLoop(AgentLoopBase):
    """Plays a row's env episode: reset, then generate / step until the env says done, the
    turn cap, or the response budget (`rollout.response_length`) is used up."""

    _next_server = itertools.count()  # round-robin over env servers, per process

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("tools", None)  # verl hands every agent loop its tool list; ours has none
        super().__init__(*args, **kwargs)
        self.agent_config = VerlAgentConfig.from_dict(self.config.get("vagen", {}).get("agent"))
        self.codec = ChatCodec(self.processor)
        self.prompt_length = int(self.rollout_config.prompt_length)
        self.response_length = int(self.rollout_config.response_length)

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        episode = Episode.from_row(kwargs)
        client = self.env_client(self.agent_config)
        env_id = f"verl-{uuid4().hex}"
        metrics: dict[str, float] = {}
        try:
            played = await self._play_episode(episode, env_id, client, sampling_params,
                                              metrics)
        except TrajectoryFailed as failure:
            logger.warning("trajectory dropped (%s): %s", env_id, failure)
            return self._failed_output(failure.reason, metrics)
        finally:
            try:
                await asyncio.to_thread(client.close, [env_id])
            except EnvServerError as err:
                logger.warning("env %s not closed: %s", env_id, err)
            finally:
                client.shutdown()
        return self._output(played, metrics)

    async def _play_episode(self, episode: Episode, env_id: str, client: EnvClient,
                            sampling_params: dict[str, Any], metrics: dict[str, float]) -> Played:
        """Create, reset and play one episode; env server errors end it as failed."""
        context = episode_context(episode)
        try:
            with simple_timer("tool_calls", metrics):
                await asyncio.to_thread(client.create, {env_id: episode.spec})
                obs = (await asyncio.to_thread(client.reset, {env_id: episode.seed}))[env_id]
            tokens = TrajectoryTokens(self.codec, client.system_prompt(env_id), window=None)
            tokens.add_observation(obs.text, obs.frames)
            shown, turns = [Shown.of(obs)], []
            played = await self._play(tokens, _to_pil(obs.frames), env_id, client, context,
                                      sampling_params, metrics, (shown, turns))
        except EnvServerError as err:
            raise TrajectoryFailed("env_error", str(err)) from err
        played.view = episode_material(episode.spec["config"], episode.seed, turns, shown)
        return played

    @classmethod
    def env_client(cls, config: VerlAgentConfig) -> EnvClient:
        """A client of its own for one trajectory (an `EnvClient`'s bookkeeping is not made
        for concurrent threads), on the next env server in turn."""
        url = config.env_servers[next(cls._next_server) % len(config.env_servers)]
        return EnvClient(url, token=config.server_token, codec=config.codec)

    async def _play(self, tokens: TrajectoryTokens, first_images: list[Image.Image], env_id: str,
                    client: EnvClient, context: ContextPolicy, sampling_params: dict[str, Any],
                    metrics: dict[str, float],
                    record: tuple[list[Shown], list[TurnRecord]]) -> Played:
        """Generate and step until done; `record` gets what each turn showed and did."""
        prompt_len = len(tokens.current.input_ids)
        if prompt_len > self.prompt_length:
            raise TrajectoryFailed(
                "prompt_too_long",
                f"env {env_id}: the first observation is {prompt_len} tokens but "
                f"rollout.prompt_length (data.max_prompt_length) is {self.prompt_length}; "
                "raise it or show fewer/smaller frames (initial_frames, max_pixels)")
        images: list[Image.Image] = []
        pending = first_images  # frames of the latest observation, sent with the next turn
        turn_scores: list[float] = []
        turn_infos: list[dict[str, Any]] = []
        last_info: dict[str, Any] = {}
        have_logprobs = True
        request_id = uuid4().hex
        for turn in range(1, context.max_turns + 1):
            ids, _ = tokens.generation_input()
            budget = self.response_length - (len(ids) - prompt_len)
            if budget < 1:
                break
            images += pending
            pending = []
            params = {**sampling_params, "stop": self.agent_config.stop,
                      "max_tokens": min(context.max_new_tokens, budget)}
            with simple_timer("generate_sequences", metrics):
                output = await self.server_manager.generate(
                    request_id=request_id, prompt_ids=list(ids), sampling_params=params,
                    image_data=list(images) or None)
            if not output.token_ids:
                break
            have_logprobs = have_logprobs and output.log_probs is not None
            logprobs = output.log_probs if output.log_probs is not None else (
                [0.0] * len(output.token_ids))
            tokens.add_response(list(output.token_ids), list(logprobs), turn)
            action = self.tokenizer.decode(output.token_ids, skip_special_tokens=True)
            with simple_timer("tool_calls", metrics):
                results = await asyncio.to_thread(client.step, {env_id: action})
            result: StepResult = results[env_id]
            tokens.set_turn_reward(turn, result.reward)
            turn_scores.append(float(result.reward))
            turn_infos.append(turn_info(result.info))
            record[0].append(Shown.of(result.obs))
            record[1].append(TurnRecord(action, len(output.token_ids), float(result.reward),
                                        result.info))
            last_info = result.info
            if result.done:
                break
            if turn < context.max_turns:
                tokens.add_observation(result.obs.text, result.obs.frames)
                pending = _to_pil(result.obs.frames)
        return self._played(tokens, prompt_len, images, turn_scores, turn_infos, last_info,
                            have_logprobs)

    @staticmethod
    def _played(tokens: TrajectoryTokens, prompt_len: int, images: list[Image.Image],
                turn_scores: list[float], turn_infos: list[dict[str, Any]],
                last_info: dict[str, Any], have_logprobs: bool) -> Played:
        """Cut the sequence after the last policy token: what follows (the closing of the last
        turn, an observation no turn answered) is neither trained on nor scored, and verl puts
        the trajectory's score on the last response token."""
        segment = tokens.current
        policy = [i for i, m in enumerate(segment.loss_mask) if m]
        end = policy[-1] + 1 if policy else prompt_len
        return Played(
            prompt_ids=segment.input_ids[:prompt_len],
            response_ids=segment.input_ids[prompt_len:end],
            response_mask=segment.loss_mask[prompt_len:end],
            response_logprobs=segment.logprobs[prompt_len:end] if have_logprobs else None,
            token_rewards=segment.rewards[prompt_len:end],
            images=images, turn_scores=turn_scores, turn_infos=turn_infos, last_info=last_info)

    def _failed_output(self, reason: str, metrics: dict[str, float]) -> AgentLoopOutput:
        """A one-token stand-in for a dropped trajectory: nothing of it is trained on
        (response mask 0), it scores 0, and `FAILED` says why."""
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        played = Played(prompt_ids=[pad], response_ids=[pad], response_mask=[0],
                        response_logprobs=[0.0] if self.rollout_config.calculate_log_probs
                        else None,
                        token_rewards=[0.0], images=[], turn_scores=[], turn_infos=[],
                        last_info={})
        return self._output(played, metrics, failed=reason)

    def _output(self, played: Played, metrics: dict[str, float],
                failed: str = "") -> AgentLoopOutput:
        step = StepInfo.of(played.last_info) if played.last_info else None
        turns = len(played.turn_scores)
        return AgentLoopOutput(
            prompt_ids=played.prompt_ids,
            response_ids=played.response_ids,
            response_mask=played.response_mask,
            response_logprobs=played.response_logprobs,
            multi_modal_data={"images": played.images} if played.images else {},
            reward_score=sum(played.turn_scores),
            # verl counts chat messages: each policy turn answers one user/env message.
            num_turns=2 * turns,
            metrics=metrics,
            extra_fields={
                "turn_scores": played.turn_scores,
                TOKEN_REWARDS: played.token_rewards,
                TURN_INFOS: played.turn_infos,  # for vagen.rewards: video_mtr
                VIEW_FIELD: played.view,  # for trajectories.jsonl (vagen view)
                FAILED: failed,
                "reward_extra_info": {
                    "acc": float(step is not None and step.correct),
                    "turns": float(turns),
                    "frames_seen": float(step.frames_seen if step else 0),
                    "visual_tokens": float((step.visual_tokens or 0) if step else 0),
                    "answered": float(step is not None and step.action_type == "answer"),
                    "failed": float(bool(failed)),
                },
            },
        )


def episode_context(episode: Episode) -> ContextPolicy:
    """The context policy of the row's env group (turns, tokens per turn), from the group
    config the row carries, as eval reads it. verl trains one prefix-growing row per
    trajectory, so a window that drops old frames cannot be trained here."""
    if "env" not in episode.spec:
        raise ValueError("the row names only an env group (env_group); the agent loop plays "
                         "by the group's max_turns, window and max_new_tokens, so write rows "
                         "with their config: vagen data create --config env_config.yaml")
    config = VideoQAConfig.from_dict(episode.spec["config"])
    context = config.context()
    if context.window is not None:
        raise ValueError(f"env group '{config.name}': window {config.window} < max_turns "
                         f"{config.max_turns} drops old frames, but verl trains every turn in "
                         f"one sequence; set window: {config.max_turns} so eval sees the "
                         "context training saw")
    return context


class VideoAgentLoopWorker(AgentLoopWorker):
    """verl's agent loop worker, except that each trajectory's rewards stay on the turns that
    earned them (verl puts a trajectory's score on its last token only), and its
    `pixel_values` travel on through Ray as uint8 frames (`frames.FramePixels`)."""

    def _postprocess(self, inputs: list, input_non_tensor_batch: dict | None = None,
                     validate: bool = False):
        spec = PatchSpec.of(self.processor.image_processor) if self.processor else None
        for item in inputs:
            images = (item.multi_modal_data or {}).get("images")
            if spec is not None and item.multi_modal_inputs and images:
                item.multi_modal_inputs = frames_for_transport(item.multi_modal_inputs, images,
                                                               spec)
        output = super()._postprocess(inputs, input_non_tensor_batch, validate)
        token_rewards = output.non_tensor_batch.pop(TOKEN_REWARDS, None)
        if token_rewards is not None and "rm_scores" in output.batch.keys():
            place_token_rewards(output.batch["rm_scores"], list(token_rewards))
        return output


class VideoAgentLoopManager(AgentLoopManager):
    """`actor_rollout_ref.rollout.agent.agent_loop_manager_class` for `VideoAgentLoopWorker`:
    counts the step's dropped trajectories (logged as `timing_s/rollout/failed_trajectories`,
    verl logs the manager's figures under timing_s) and stops the step past
    `vagen.agent.max_failed_share`."""

    agent_loop_workers_class = ray.remote(VideoAgentLoopWorker)

    def _performance_metrics(self, metrics: list, output) -> dict[str, float]:
        timing = super()._performance_metrics(metrics, output)
        share = VerlAgentConfig.from_dict(self.config.get("vagen", {}).get("agent")
                                          ).max_failed_share
        timing.update(failure_metrics(list(output.non_tensor_batch.get(FAILED, [])), share))
        return timing


def failure_metrics(reasons: list[str | None], max_share: float) -> dict[str, float]:
    """How many of a step's trajectories failed, in all and per reason; raises when more
    than `max_share` of them did (the env servers are likely down: stop, then resume)."""
    failed = [reason for reason in reasons if reason]
    counts = {f"{FAILED_METRIC}/{reason}": float(n)
              for reason, n in sorted(Counter(failed).items())}
    if reasons and len(failed) > max_share * len(reasons):
        raise RuntimeError(
            f"{len(failed)} of {len(reasons)} trajectories failed this step ("
            + ", ".join(f"{key.rsplit('/', 1)[1]}: {int(n)}" for key, n in counts.items())
            + f"), more than vagen.agent.max_failed_share={max_share}; see the agent loop "
              "warnings and the env server logs")
    return {FAILED_METRIC: float(len(failed)), **counts}


def place_token_rewards(rm_scores: torch.Tensor, token_rewards: list[list[float] | None]) -> None:
    """Overwrite rows of verl's `(bs, response_length)` `rm_scores` with per-token rewards
    (rows with None, e.g. from other agent loops, keep verl's placement)."""
    for row, rewards in enumerate(token_rewards):
        if rewards is None:
            continue
        if len(rewards) > rm_scores.shape[1]:
            raise ValueError(f"row {row}: {len(rewards)} token rewards for a response of "
                             f"{rm_scores.shape[1]} tokens")
        rm_scores[row] = 0.0
        rm_scores[row, :len(rewards)] = torch.as_tensor(rewards, dtype=rm_scores.dtype)


def _to_pil(frames: list[np.ndarray]) -> list[Image.Image]:
    return [Image.fromarray(np.ascontiguousarray(frame)) for frame in frames]

