"""One 3-turn episode (retrieve, retrieve, answer) played with the same scripted responses by
the local trainer, verl's agent loop and `vagen eval`: each builds the same input ids for
the policy at every turn, because all three play by the env group's context policy (turns,
window, tokens per turn). The scripted responses stand in for sampling (a random tiny model
writes no valid action); the envs run on a real env server."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

import yaml

from tests.trainer.verl.scripted_llm import ANSWER, RETRIEVE, ScriptedServerManager
from tests.trainer.verl.test_agent_loop_on_cpu import make_loop
from vagen.rollout.backends.base import Generation

SCRIPT = [RETRIEVE, RETRIEVE, ANSWER]


class RecordingBackend:
    """A policy backend writing SCRIPT's turn for every prompt and recording the prompt ids
    and the sampling it was asked with."""

    def __init__(self, codec: Any) -> None:
        self.codec = codec
        self.prompts: list[list[int]] = []
        self.max_new_tokens: list[int] = []

    def generate(self, prompts, sampling) -> list[Generation]:
        text = SCRIPT[len(self.prompts)]
        self.prompts.append(list(prompts[0][0]))
        self.max_new_tokens.append(sampling.max_new_tokens)
        ids = self.codec.encode(text)
        return [Generation(ids=ids, logprobs=[0.0] * len(ids), text=text) for _ in prompts]


def verl_prompts(verl_config, processor, env_row) -> tuple[list[list[int]], list[int]]:
    server = ScriptedServerManager(processor.tokenizer, SCRIPT)
    asyncio.run(make_loop(verl_config, server, processor).run({}, **env_row(seed=0)))
    return ([r["prompt_ids"] for r in server.requests],
            [r["sampling_params"]["max_tokens"] for r in server.requests])


def local_trainer_prompts(model_dir, env_config, tmp_path):
    from vagen.trainer.envs import EnvsConfig
    from vagen.trainer.local import AlgoConfig, LocalTrainer, TrainConfig
    from vagen.trainer.policy import ModelConfig

    path = tmp_path / "env_config.yaml"
    path.write_text(yaml.safe_dump([{**env_config, "n": 1, "seed": 0}]))
    trainer = LocalTrainer(TrainConfig(
        model=ModelConfig(path=str(model_dir), device="cpu"),
        envs=EnvsConfig(config=str(path), group=env_config["name"]),  # its own env server
        algo=AlgoConfig(n=2), prompts_per_step=1, out_dir=str(tmp_path / "run")))
    try:
        backend = RecordingBackend(trainer.policy.codec)
        trainer.rollout.policy = backend  # the trainer's own rollout, scripted
        trainer.play(0)
    finally:
        trainer.envs.close()
    return backend


def eval_prompts(model_dir, env_config, env_server, processor, tmp_path):
    from vagen.env.video_qa.config import VideoQAConfig
    from vagen.eval.evaluate import EvalConfig, play_rows
    from vagen.eval.rows import EvalRow
    from vagen.rollout.tokens import ChatCodec
    from vagen.server.client import EnvClient

    backend = RecordingBackend(ChatCodec(processor))
    client = EnvClient(env_server.url)
    full = asdict(VideoQAConfig.from_dict(env_config))  # as eval rows carry their group
    try:
        play_rows([EvalRow(id="verl-test/0", group="verl-test", config=full, seed=0)],
                  backend, backend.codec, client,
                  EvalConfig(model=str(model_dir), out=str(tmp_path / "eval")), lambda _: None)
    finally:
        client.shutdown()
    return backend


def test_local_trainer_verl_and_eval_build_the_same_tokens(
        verl_config, processor, env_row, env_config, env_server, model_dir, tmp_path):
    verl_ids, verl_budgets = verl_prompts(verl_config, processor, env_row)
    local = local_trainer_prompts(model_dir, env_config, tmp_path)
    evaluated = eval_prompts(model_dir, env_config, env_server, processor, tmp_path)
    assert len(verl_ids) == 3
    assert local.prompts == verl_ids
    assert evaluated.prompts == verl_ids
    # each turn's budget is the group's max_new_tokens (verl also caps it by what is left)
    assert local.max_new_tokens == evaluated.max_new_tokens == [64, 64, 64]
    assert verl_budgets == [64, 64, 64]


def test_sft_imitates_the_tokens_the_policy_is_then_played_with(
        verl_config, processor, env_row, env_config, tmp_path):
    """SFT's oracle episode of seed 0, and verl's agent loop scripted with the oracle's own
    actions: every turn's prompt verl builds is a prefix of the sequence SFT trains on, and
    the whole episode is the same ids (the fourth player of the context policy)."""
    from vagen.env.registry import make_env
    from vagen.rollout.tokens import ChatCodec
    from vagen.trainer.sft import oracle_segments

    env = make_env("video_qa", env_config)
    env.reset(0)
    actions = []
    while True:
        actions.append(env.oracle_action())
        if env.step(actions[-1]).done:
            break
    env.close()
    path = tmp_path / "env_config.yaml"
    path.write_text(yaml.safe_dump([{**env_config, "n": 1, "seed": 0}]))
    (segment,) = oracle_segments(ChatCodec(processor), str(path), [env_config["name"]],
                                 episodes=1)
    server = ScriptedServerManager(processor.tokenizer, actions)
    out = asyncio.run(make_loop(verl_config, server, processor).run({}, **env_row(seed=0)))
    assert len(server.requests) == len(actions) >= 2
    for request in server.requests:
        assert segment.input_ids[:len(request["prompt_ids"])] == request["prompt_ids"]
    played = list(out.prompt_ids) + list(out.response_ids)
    assert segment.input_ids[:len(played)] == played
    assert [i for i, m in enumerate(segment.loss_mask) if m] == [
        len(out.prompt_ids) + i for i, m in enumerate(out.response_mask) if m]
