"""SFT warm start on the env's oracle trajectories: the expert asks for the relevant frames,
then answers after a `<think>` that narrates the evidence. Trajectories are built with the
same chat codec as RL rollouts, so SFT trains exactly the token layout RL will sample.

    vagen train sft --config x.yaml model.path=/ckpt steps=300
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from vagen.config import parse_config_args
from vagen.env.groups import load_env_groups
from vagen.env.registry import make_env
from vagen.rollout.backends.hf import policy_logits
from vagen.rollout.tokens import ChatCodec, Segment, TrajectoryTokens, collate_segments
from vagen.trainer.logger import LogConfig, StepLogger
from vagen.trainer.losses import step_if_finite
from vagen.trainer.policy import ModelConfig, Policy

LR_SCHEDULES = ("constant", "linear")


@dataclass
class SFTConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    env_config: str = field(default="env_config.yaml", metadata={"help": "env groups file"})
    groups: list[str] = field(default_factory=lambda: ["retrieve-train"], metadata={
        "help": "env groups whose oracle trajectories to imitate, mixed evenly; a group listed "
                "twice weighs twice and reuses its episodes"})
    episodes: int = field(default=0, metadata={"help": "episodes per group (0: the group's n)"})
    steps: int = field(default=300, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=16, metadata={"help": "trajectories per step"})
    decode_workers: int = field(default=1, metadata={
        "help": "processes decoding the oracle episodes' videos before they are replayed "
                "(envs that can prefetch; 1: decode while replaying)"})
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate (peak)"})
    warmup_steps: int = field(default=0, metadata={
        "help": "steps of linear warm-up from 0 to lr"})
    lr_schedule: str = field(default="constant", metadata={
        "help": "after warm-up: constant | linear (decays towards 0 at the last step)"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping"})
    seed: int = field(default=0, metadata={"help": "shuffling and init seed"})
    out_dir: str = field(default="runs/sft", metadata={"help": "logs and the final model"})
    log: LogConfig = field(default_factory=LogConfig)

    def __post_init__(self) -> None:
        if not self.groups:
            raise ValueError("groups is empty; name at least one env group, e.g. "
                             "[retrieve-train]")
        if self.steps < 1 or self.batch_size < 1 or self.decode_workers < 1 or self.lr <= 0:
            raise ValueError("steps, batch_size and decode_workers must be >= 1 and lr > 0")
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"warmup_steps is {self.warmup_steps}; it must be in [0, steps)")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule is {self.lr_schedule!r}; use one of "
                             f"{', '.join(LR_SCHEDULES)}")


def lr_factor(step: int, config: SFTConfig) -> float:
    """The learning rate of optimizer step `step` (from 1) as a share of `config.lr`."""
    if step <= config.warmup_steps:
        return step / config.warmup_steps
    if config.lr_schedule == "linear":
        return max(0.0, (config.steps - step + 1) / (config.steps - config.warmup_steps))
    return 1.0


def oracle_segments(codec: ChatCodec, env_config: str, groups: list[str], episodes: int,
                    decode_workers: int = 1) -> list[Segment]:
    """Play each group's envs with `oracle_action()` and keep the token segments (loss on
    the expert's text, as if the policy had sampled it)."""
    all_groups = load_env_groups(env_config)
    played: dict[str, list[Segment]] = {}
    for name in dict.fromkeys(groups):
        if name not in all_groups:
            raise KeyError(f"env group '{name}' is not in {env_config}; groups: "
                           f"{', '.join(sorted(all_groups))}")
        group = all_groups[name]
        env = make_env(group["env"], group)
        count = episodes or int(group.get("n", 64))
        first = int(group.get("seed", 0))
        played[name] = []
        try:
            if decode_workers > 1 and hasattr(env, "prefetch"):
                env.prefetch(range(first, first + count), decode_workers)
            for seed in tqdm(range(first, first + count), desc=f"oracle {name}", unit="ep"):
                played[name] += _play_oracle(env, codec, seed)
        finally:
            env.close()
    return [segment for name in groups for segment in played[name]]


def _play_oracle(env, codec: ChatCodec, seed: int) -> list[Segment]:
    """One oracle episode in the group's context (its window, as the policy will play)."""
    tokens = TrajectoryTokens(codec, env.system_prompt(), env.context().window)
    obs = env.reset(seed)
    tokens.add_observation(obs.text, obs.frames)
    turn = 0
    while True:
        # an env may say an oracle action is not to be imitated (an answer given blind)
        trained = env.oracle_demonstrates() if hasattr(env, "oracle_demonstrates") else True
        ids = codec.encode(env.oracle_action())
        result = env.step(codec.tokenizer.decode(ids))
        tokens.add_response(ids, [0.0] * len(ids), turn, trained)
        if result.done:
            return tokens.segments
        tokens.add_observation(result.obs.text, result.obs.frames)
        turn += 1


def train_sft(config: SFTConfig) -> Path:
    """Imitate oracle trajectories; returns the folder of the final model."""
    torch.manual_seed(config.seed)
    policy = Policy(config.model)
    segments = oracle_segments(policy.codec, config.env_config, config.groups, config.episodes,
                               config.decode_workers)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda done: lr_factor(done + 1, config))
    out_dir = Path(config.out_dir)
    logger = StepLogger(out_dir, config.log, asdict(config))
    generator = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(len(segments), generator=generator).tolist()
    try:
        for step in tqdm(range(1, config.steps + 1), desc="sft", unit="step"):
            start = ((step - 1) * config.batch_size) % len(segments)
            picked = [segments[order[(start + i) % len(order)]] for i in range(config.batch_size)]
            loss, accuracy = _sft_loss(policy, picked)
            loss.backward()
            lr = optimizer.param_groups[0]["lr"]
            _, grad_norm = step_if_finite(optimizer, policy.parameters(), config.max_grad_norm)
            schedule.step()
            logger.log(step, {"sft/loss": loss.item(), "sft/token_accuracy": accuracy,
                              "sft/grad_norm": grad_norm, "sft/lr": lr})
    finally:
        logger.close()
    final = out_dir / "final"
    policy.save(final)
    return final


def _sft_loss(policy: Policy, segments: list[Segment]) -> tuple[torch.Tensor, float]:
    """Mean cross-entropy over the expert's tokens, and the share predicted exactly."""
    batch = collate_segments(segments, policy.codec, policy.rope_index)
    batch = {k: v.to(policy.device) for k, v in batch.items()}
    logits = policy_logits(policy.model, batch, temperature=0, vision=policy.vision)[0][:, 1:]
    target = batch["input_ids"][:, 1:]
    mask = batch["loss_mask"][:, 1:]
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
    loss = (nll * mask).sum() / mask.sum().clamp(min=1)
    hits = ((logits.argmax(-1) == target).float() * mask).sum() / mask.sum().clamp(min=1)
    return loss, hits.item()


def main(argv: list[str] | None = None) -> int:
    """`vagen train sft --config x.yaml key=value ...`"""
    final = train_sft(parse_config_args(argv, "vagen train sft", __doc__.split("\n\n")[0],
                                        SFTConfig))
    print(f"vagen train sft: final model in {final}")
    return 0
