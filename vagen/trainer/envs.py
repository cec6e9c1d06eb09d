"""The trainer's envs: one env per trajectory slot on the env server(s) (or on a server it
starts on 127.0.0.1 itself), and which prompt (seed) each step plays."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from vagen.env.groups import load_env_groups
from vagen.env.video_qa.config import VideoQAConfig
from vagen.server.app import BackgroundServer
from vagen.server.client import EnvClient
from vagen.server.service import EnvService, EnvSpec

log = logging.getLogger(__name__)
# Prompts tried before envs.max_failed_share is checked (a share of a few is noise).
MIN_PROMPTS_FOR_SHARE = 100


@dataclass
class EnvsConfig:
    config: str = field(default="env_config.yaml", metadata={"help": "env groups file"})
    group: str = field(default="retrieve-train", metadata={"help": "env group to train on"})
    urls: list[str] = field(default_factory=list, metadata={
        "help": "env servers to use (sharded); empty: start one in this process on 127.0.0.1"})
    token: str | None = field(default=None, metadata={"help": "bearer token of the servers"})
    workers: int = field(default=2, metadata={"help": "env threads of the in-process server"})
    max_failed_share: float = field(default=0.05, metadata={
        "help": "share of the prompts tried that may fail (a video or row the env cannot "
                "play: replaced by another prompt) before the run stops; checked once "
                f"{MIN_PROMPTS_FOR_SHARE} prompts were tried"})


class TrainEnvs:
    """`count` envs of one group, created once and reset every step."""

    def __init__(self, config: EnvsConfig, count: int, seed: int, prefix: str = "train") -> None:
        groups = load_env_groups(config.config)
        if config.group not in groups:
            raise KeyError(f"envs.group '{config.group}' is not in {config.config}; groups: "
                           f"{', '.join(sorted(groups))}")
        self.group = group = VideoQAConfig.from_dict(groups[config.group])
        self.context = group.context()
        self.num_prompts = group.n
        self.first_seed = group.seed
        self.seed = seed
        self.max_failed_share = config.max_failed_share
        self.broken: dict[int, str] = {}  # seeds that cannot be played -> their error
        self.tried = 0  # prompts handed out, replacements included
        self._server = None
        urls = list(config.urls)
        if not urls:
            self._server = BackgroundServer(EnvService(groups, config.workers))
            urls = [self._server.url]
        self.client = EnvClient(urls, token=config.token)
        self.env_ids = [f"{prefix}-{i}" for i in range(count)]
        self.client.create({env_id: EnvSpec(group=config.group) for env_id in self.env_ids})

    def prompt_seeds(self, step: int, k: int) -> list[int]:
        """The env seeds of step `step`'s `k` prompts: a fresh shuffle of the group's rows
        every epoch, the same for a resumed run (prompts found broken are replaced)."""
        self.tried += k
        seeds = []
        for index in range(step * k, (step + 1) * k):
            epoch, position = divmod(index, self.num_prompts)
            order = np.random.default_rng([self.seed, epoch]).permutation(self.num_prompts)
            seeds.append(self.first_seed + int(order[position]))
        return self.replace(seeds, {}, step) if self.broken else seeds

    def replace(self, seeds: list[int], bad: dict[int, str], step: int) -> list[int]:
        """`seeds` with each seed of `bad` (seed -> its error) replaced by one of the
        group's other prompts, picked by (run seed, step, draw); the bad ones are never
        drawn again. Raises once more than `max_failed_share` of the prompts tried failed."""
        for seed, message in bad.items():
            log.warning("prompt %d cannot be played, replaced: %s", seed, message)
        self.broken.update(bad)
        self.tried += len(bad)
        if (self.tried >= MIN_PROMPTS_FOR_SHARE
                and len(self.broken) > self.max_failed_share * self.tried):
            raise RuntimeError(
                f"{len(self.broken)} of {self.tried} prompts tried could not be played, more "
                f"than envs.max_failed_share={self.max_failed_share}: seeds "
                f"{sorted(self.broken)[:20]}; first error: {next(iter(self.broken.values()))}")
        if len(self.broken) >= self.num_prompts:
            raise RuntimeError(f"none of the group's {self.num_prompts} prompts can be played; "
                               f"first error: {next(iter(self.broken.values()))}")
        rng = np.random.default_rng([self.seed, step, len(self.broken)])
        out = []
        for seed in seeds:
            while seed in self.broken:
                seed = self.first_seed + int(rng.integers(self.num_prompts))
            out.append(seed)
        return out

    def close(self) -> None:
        try:
            self.client.close(self.env_ids)
            self.client.shutdown()
        finally:
            if self._server is not None:
                self._server.stop()
