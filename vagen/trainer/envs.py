"""The trainer's envs: one env per trajectory slot on the env server(s) (or on a server it
starts on 127.0.0.1 itself), and which prompt (seed) each step plays."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vagen.env.groups import load_env_groups
from vagen.env.video_qa.config import VideoQAConfig
from vagen.server.app import BackgroundServer
from vagen.server.client import EnvClient
from vagen.server.service import EnvService, EnvSpec


@dataclass
class EnvsConfig:
    config: str = field(default="env_config.yaml", metadata={"help": "env groups file"})
    group: str = field(default="retrieve-train", metadata={"help": "env group to train on"})
    urls: list[str] = field(default_factory=list, metadata={
        "help": "env servers to use (sharded); empty: start one in this process on 127.0.0.1"})
    token: str | None = field(default=None, metadata={"help": "bearer token of the servers"})
    workers: int = field(default=2, metadata={"help": "env threads of the in-process server"})


class TrainEnvs:
    """`count` envs of one group, created once and reset every step."""

    def __init__(self, config: EnvsConfig, count: int, seed: int, prefix: str = "train") -> None:
        groups = load_env_groups(config.config)
        if config.group not in groups:
            raise KeyError(f"envs.group '{config.group}' is not in {config.config}; groups: "
                           f"{', '.join(sorted(groups))}")
        group = groups[config.group]
        self.context = VideoQAConfig.from_dict(group).context()
        self.num_prompts = int(group.get("n", VideoQAConfig.n))
        self.first_seed = int(group.get("seed", VideoQAConfig.seed))
        self.seed = seed
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
        every epoch, the same for a resumed run."""
        seeds = []
        for index in range(step * k, (step + 1) * k):
            epoch, position = divmod(index, self.num_prompts)
            order = np.random.default_rng([self.seed, epoch]).permutation(self.num_prompts)
            seeds.append(self.first_seed + int(order[position]))
        return seeds

    def close(self) -> None:
        try:
            self.client.close(self.env_ids)
            self.client.shutdown()
        finally:
            if self._server is not None:
                self._server.stop()
