"""What verl hands over from a dataset row: the fields come through pyarrow and numpy, and an
env row names the env episode it plays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    """Arrays to lists and numpy scalars to Python, recursively (what JSON and the reward
    functions expect)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass
class Episode:
    """Which env episode a row plays: an env spec for the server (`EnvSpec` fields) and a
    seed."""

    spec: dict[str, Any]
    seed: int

    @classmethod
    def from_row(cls, extra_info: Any) -> Episode:
        """From a row's `extra_info`: `seed` and `group` (an env group of the server's
        env_config.yaml) and/or `env` (a registered env name), plus an optional `config`
        overriding the group's keys."""
        info = plain(dict(extra_info or {}))
        seed = info.get("seed")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"row field extra_info.seed must be an integer, got {seed!r}; "
                             "write env rows with `vagen data create`")
        spec: dict[str, Any] = {key: info[key] for key in ("env", "group") if info.get(key)}
        if not spec:
            raise ValueError("row field extra_info needs 'group' (an env group of the server's "
                             "env_config.yaml) or 'env' (a registered env name)")
        config = info.get("config") or {}
        if not isinstance(config, dict):
            raise ValueError(f"row field extra_info.config must be a mapping, got {config!r}")
        spec["config"] = config
        return cls(spec, seed)
