"""The local trainer: one process, a Hugging Face Qwen-VL policy on CPU or one GPU, the env
server over HTTP. Each step reads top to bottom: rollout -> reward -> advantage -> loss ->
optimizer step -> log.

    vagen train --config configs/local_grpo.yaml model.path=/ckpt steps=50
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vagen.config import parse_config_args
from vagen.rewards.shaping import ShapingConfig
from vagen.rollout.backends.base import SamplingParams
from vagen.rollout.backends.hf import HFBackend, gather_logprobs, policy_logits, token_logprobs
from vagen.rollout.manager import RolloutConfig, RolloutManager, Trajectory
from vagen.trainer.advantages import AdvantageConfig
from vagen.trainer.algos import get_advantage_estimator, needs_values
from vagen.trainer.batch import TrajectoryView, rollout_metrics, training_batch
from vagen.trainer.checkpoint import CheckpointManager
from vagen.trainer.envs import EnvsConfig, TrainEnvs
from vagen.trainer.logger import LogConfig, StepLogger
from vagen.trainer.losses import PolicyLossConfig, actor_loss, step_if_finite, value_loss
from vagen.trainer.policy import ModelConfig, Policy
from vagen.trainer.rewards import apply_shaping, check_reward_source
from vagen.trainer.trajectory_log import TrajectoryLog, ViewConfig

MODES = ("grpo", "ppo")


@dataclass
class AlgoConfig:
    """GRPO (n samples per prompt, group-normalised, no critic) or PPO (value head + GAE)."""

    mode: str = field(default="grpo", metadata={"help": "grpo | ppo"})
    adv_estimator: str = field(default="grpo", metadata={
        "help": "registered estimator: grpo | grpo_turn | masked_gae | bi_level_gae"})
    n: int = field(default=4, metadata={"help": "samples per prompt (GRPO group size)"})
    advantage: AdvantageConfig = field(default_factory=AdvantageConfig)
    loss: PolicyLossConfig = field(default_factory=PolicyLossConfig)
    value_coef: float = field(default=0.5, metadata={"help": "PPO: weight of the critic loss"})
    cliprange_value: float = field(default=0.5, metadata={"help": "PPO: value clip range"})

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"algo.mode is {self.mode!r}; use one of {', '.join(MODES)}")
        try:
            get_advantage_estimator(self.adv_estimator)
        except KeyError as error:
            raise ValueError(f"algo.adv_estimator: {error.args[0]}") from None
        if self.mode == "grpo" and self.n < 2:
            raise ValueError(f"algo.n is {self.n}: GRPO compares samples of one prompt, so a "
                             "group of one learns nothing; set algo.n >= 2")
        gae = needs_values(self.adv_estimator)
        if gae != (self.mode == "ppo"):
            raise ValueError(f"algo.adv_estimator {self.adv_estimator!r} does not fit "
                             f"algo.mode {self.mode!r}: GAE estimators need ppo's critic, "
                             "grpo/grpo_turn need mode grpo")


@dataclass
class OptimConfig:
    lr: float = field(default=1e-5, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "clip gradients to this norm"})
    micro_batch_size: int = field(default=8, metadata={
        "help": "rows per forward/backward; gradients accumulate over the step's batch"})
    ppo_epochs: int = field(default=1, metadata={"help": "passes over each rollout batch"})

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.micro_batch_size < 1 or self.ppo_epochs < 1:
            raise ValueError("optim.lr must be > 0, optim.micro_batch_size and "
                             "optim.ppo_epochs >= 1")


@dataclass
class TrainConfig:
    """Everything a local RL run needs; every key can be set from YAML or `key=value`."""

    model: ModelConfig = field(default_factory=ModelConfig)
    envs: EnvsConfig = field(default_factory=EnvsConfig)
    sampling: SamplingParams = field(default_factory=SamplingParams, metadata={
        "help": "how turns are sampled; turns, window and tokens per turn come from the env "
                "group (envs.group), as in eval"})
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    rewards: str = field(default="env", metadata={
        "help": "env: each turn's env reward | video_mtr: Video-MTR shaping of the batch "
                "(weights under shaping)"})
    shaping: ShapingConfig = field(default_factory=ShapingConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    log: LogConfig = field(default_factory=LogConfig)
    view: ViewConfig = field(default_factory=ViewConfig, metadata={
        "help": "trajectories kept in trajectories.jsonl for `vagen view`"})
    steps: int = field(default=100, metadata={"help": "optimizer steps"})
    prompts_per_step: int = field(default=8, metadata={"help": "prompts per step; each is "
                                                               "played algo.n times"})
    seed: int = field(default=0, metadata={"help": "seeds prompt order, sampling and init"})
    out_dir: str = field(default="runs/train", metadata={"help": "logs and checkpoints"})
    save_every: int = field(default=50, metadata={"help": "checkpoint every k steps (0: only "
                                                          "at the end)"})
    keep_checkpoints: int = field(default=2, metadata={"help": "newest checkpoints kept"})
    resume: str = field(default="auto", metadata={
        "help": "auto (latest checkpoint in out_dir, if any) | none | a checkpoint folder"})

    def __post_init__(self) -> None:
        if self.steps < 1 or self.prompts_per_step < 1:
            raise ValueError("steps and prompts_per_step must be >= 1")
        check_reward_source(self.rewards, self.shaping)
        if self.sampling.max_new_tokens != SamplingParams().max_new_tokens:
            raise ValueError("sampling.max_new_tokens: tokens per turn come from the env group; "
                             "set max_new_tokens in the group of envs.config instead")


class LocalTrainer:
    """Owns the policy, the optimizer, the envs and the run folder."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.out_dir = Path(config.out_dir)
        _seed_everything(config.seed)
        ppo = config.algo.mode == "ppo"
        self.policy = Policy(config.model, with_value_head=ppo,
                             with_reference=config.algo.loss.kl_coef > 0)
        self.optimizer = torch.optim.AdamW(self.policy.parameters(), lr=config.optim.lr,
                                           weight_decay=config.optim.weight_decay)
        self.envs = TrainEnvs(config.envs, config.prompts_per_step * config.algo.n, config.seed)
        self.rollout = RolloutManager(HFBackend(self.policy.model, self.policy.codec,
                                                self.policy.vision),
                                      self.policy.codec, self.envs.client,
                                      RolloutConfig.from_context(self.envs.context,
                                                                 config.sampling))
        self.checkpoints = CheckpointManager(self.out_dir / "checkpoints", config.keep_checkpoints)
        self.logger = StepLogger(self.out_dir, config.log, asdict(config))
        self.step = self.checkpoints.restore(config.resume, self.policy, self.optimizer)
        self.logger.truncate_after(self.step)
        self.trajectory_log = TrajectoryLog(self.out_dir, config.view, self.step)

    def train(self) -> Path:
        """Run to `config.steps`; returns the folder of the final model."""
        try:
            for _ in tqdm(range(self.step, self.config.steps), desc="train", unit="step",
                          initial=self.step, total=self.config.steps):
                metrics = self.train_step()
                self.logger.log(self.step, metrics)
                every = self.config.save_every
                if every and self.step % every == 0 and self.step < self.config.steps:
                    self.checkpoints.save(self.step, self.policy, self.optimizer)
            self.checkpoints.save(self.step, self.policy, self.optimizer)
            final = self.out_dir / "final"
            self.policy.save(final)
            return final
        finally:
            self.close()

    def train_step(self) -> dict[str, float]:
        """One step: rollout -> advantage -> loss -> optimizer step. Returns its metrics."""
        started = time.perf_counter()
        vision = self.policy.vision
        encoded = vision.encoded_patches if vision else 0
        torch.manual_seed(self.config.seed * 100_003 + self.step)
        trajectories = self.play(self.step)
        shaping = (apply_shaping(trajectories, self.config.shaping)
                   if self.config.rewards == "video_mtr" else {})
        self.trajectory_log.record(self.step + 1, trajectories,
                                   [self.envs.group] * len(trajectories))
        batch, row_traj = training_batch(trajectories, self.policy.codec, self.policy.rope_index)
        batch = {k: v.to(self.policy.device) for k, v in batch.items()}
        self.add_reference_and_values(batch)
        self.add_advantages(batch, row_traj, trajectories)
        update = self.update(batch)
        self.step += 1
        elapsed = time.perf_counter() - started
        tokens = float(batch["attention_mask"].sum())
        cached = {"perf/vision_patches": float(vision.encoded_patches - encoded)} if vision else {}
        return {**rollout_metrics(trajectories), **shaping, **update, "perf/step_s": elapsed,
                "perf/tokens_per_s": tokens / elapsed, **cached,
                "rollout/failed_prompts": float(self.failed_prompts)}

    def play(self, step: int) -> list[Trajectory]:
        """The step's prompts, each played `algo.n` times (one GRPO group per prompt). A
        prompt its env server cannot play (a missing or corrupt video: an error answer) is
        replaced by another (`TrainEnvs.replace`) and counted in `rollout/failed_prompts`."""
        from vagen.server.client import EnvServerError

        seeds = self.envs.prompt_seeds(step, self.config.prompts_per_step)
        n = self.config.algo.n
        self.failed_prompts = 0
        while True:
            expanded = [s for s in seeds for _ in range(n)]
            try:
                return self.rollout.run(self.envs.env_ids, expanded,
                                        [g for g in range(len(seeds)) for _ in range(n)])
            except EnvServerError as err:
                failed = err.answered(self.envs.env_ids)
                bad = {seed: failed[env_id]
                       for env_id, seed in zip(self.envs.env_ids, expanded, strict=True)
                       if env_id in failed}
                if not bad:  # no answer at all: the server is down; resume when it is back
                    raise
                self.failed_prompts += len(bad)
                seeds = self.envs.replace(seeds, bad, step)

    @torch.no_grad()
    def add_reference_and_values(self, batch: dict[str, torch.Tensor]) -> None:
        temperature = self.config.sampling.temperature
        if self.config.algo.loss.kl_coef > 0:
            with self.policy.reference() as ref:
                model = self.policy.model if ref is None else ref
                ref_logprobs = torch.cat([
                    token_logprobs(model, mb, temperature, self.policy.codec.suppressed_ids,
                                   vision=self.policy.vision)[0]
                    for mb in self._micro_batches(batch)])
                batch["ref_logprobs"] = _on_policy_tokens(ref_logprobs, batch["loss_mask"])
        if self.policy.value_head is not None:
            batch["values"] = torch.cat([self._forward(mb)[2] for mb in self._micro_batches(batch)])

    def add_advantages(self, batch: dict[str, torch.Tensor], row_traj: list[int],
                       trajectories: list[Trajectory]) -> None:
        """Advantages on each trajectory's policy tokens (across its segments), scattered
        back onto the rows."""
        view = TrajectoryView.build(batch["loss_mask"].cpu(), row_traj, len(trajectories))
        values = batch.get("values")
        estimator = get_advantage_estimator(self.config.algo.adv_estimator)
        advantages, returns = estimator(
            view.gather(batch["token_rewards"].cpu()), view.mask,
            turn_ids=torch.where(view.mask.bool(), view.gather(batch["turn_ids"].cpu()), -1),
            values=None if values is None else view.gather(values.cpu()),
            group_ids=[t.group for t in trajectories], config=self.config.algo.advantage)
        shape = batch["loss_mask"].shape
        batch["advantages"] = view.scatter(advantages, shape).to(self.policy.device)
        batch["returns"] = view.scatter(returns, shape).to(self.policy.device)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """`ppo_epochs` passes of micro-batches accumulated into one optimizer step each."""
        denominator = batch["loss_mask"].sum().clamp(min=1)
        metrics: dict[str, list[float]] = {}
        for _ in range(self.config.optim.ppo_epochs):
            for mb in self._micro_batches(batch):
                loss, mb_metrics = self._loss(mb, denominator)
                loss.backward()
                for key, value in mb_metrics.items():
                    metrics.setdefault(key, []).append(value)
            stepped, grad_norm = step_if_finite(self.optimizer, self.policy.parameters(),
                                                self.config.optim.max_grad_norm)
            metrics.setdefault("actor/grad_norm", []).append(grad_norm)
            metrics.setdefault("actor/skipped_step", []).append(float(not stepped))
        summed = ("actor/loss", "actor/pg_loss", "actor/kl_loss", "critic/vf_loss")
        return {k: float(np.sum(v) if k in summed else np.mean(v)) for k, v in metrics.items()}

    def _loss(self, mb: dict[str, torch.Tensor],
              denominator: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        logits, logprobs, vpreds = self._forward(mb)
        loss, metrics = actor_loss(mb["old_logprobs"], logprobs, mb["advantages"],
                                   mb["loss_mask"], self.config.algo.loss,
                                   ref_log_prob=mb.get("ref_logprobs"), logits=logits,
                                   denominator=denominator)
        if vpreds is not None:
            vloss, vmetrics = value_loss(vpreds, mb["values"], mb["returns"], mb["loss_mask"],
                                         self.config.algo.cliprange_value,
                                         denominator=denominator)
            loss = loss + self.config.algo.value_coef * vloss
            metrics.update(vmetrics)
        return loss, metrics

    def _forward(self, mb: dict[str, torch.Tensor]):
        """Sampling-distribution logits `(bs, L, V)` aligned with tokens, the policy tokens'
        log-probs, and values (PPO)."""
        logits, out = policy_logits(self.policy.model, mb, self.config.sampling.temperature,
                                    self.policy.codec.suppressed_ids,
                                    output_hidden_states=self.policy.value_head is not None,
                                    vision=self.policy.vision)
        logprobs = _on_policy_tokens(gather_logprobs(logits, mb["input_ids"]), mb["loss_mask"])
        values = None
        if self.policy.value_head is not None:
            values = self.policy.value_head(out.hidden_states[-1])
        return logits, logprobs, values

    def _micro_batches(self, batch: dict[str, torch.Tensor]):
        """Row slices of the batch, with the images that belong to those rows."""
        size = self.config.optim.micro_batch_size
        rows = batch["input_ids"].shape[0]
        image_tokens = self.policy.codec.image_token_id
        merge = self.policy.codec.merge_size ** 2
        per_row = (batch["input_ids"] == image_tokens).sum(1).tolist()
        grid = batch.get("image_grid_thw")
        tokens_per_image = [] if grid is None else (grid.prod(-1) // merge).tolist()
        patches_per_image = [] if grid is None else grid.prod(-1).tolist()
        image, patch = 0, 0
        for start in range(0, rows, size):
            end = min(rows, start + size)
            first_image, first_patch, need = image, patch, sum(per_row[start:end])
            while need > 0:
                need -= tokens_per_image[image]
                patch += patches_per_image[image]
                image += 1
            mb = {k: v[start:end] for k, v in batch.items()
                  if k not in ("pixel_values", "image_grid_thw", "image_keys", "position_ids")}
            if "position_ids" in batch:
                mb["position_ids"] = batch["position_ids"][:, start:end]
            if image > first_image:
                mb["pixel_values"] = batch["pixel_values"][first_patch:patch]
                mb["image_grid_thw"] = grid[first_image:image]
                mb["image_keys"] = batch["image_keys"][first_image:image]
            yield mb

    def close(self) -> None:
        self.envs.close()
        self.logger.close()


def _on_policy_tokens(logprobs: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Log-probs zeroed off the policy's tokens: context vision tokens are suppressed ids
    with log-prob -inf, and -inf - -inf in the KL would turn the logged losses into NaN."""
    return logprobs.masked_fill(loss_mask == 0, 0.0)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def main(argv: list[str] | None = None) -> int:
    """`vagen train [rl] --config x.yaml key=value ...`"""
    config = parse_config_args(argv, "vagen train", __doc__.split("\n\n")[0], TrainConfig)
    final = LocalTrainer(config).train()
    print(f"vagen train: final model in {final}")
    return 0
