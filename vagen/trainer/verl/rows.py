"""What verl hands over from a dataset row: the fields come through pyarrow and numpy, and an
env row (`vagen data create`, format `vagen`) names the env episode it plays."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from vagen.plain import plain


@dataclass
class Episode:
    """Which env episode a row plays: an env spec for the server (`EnvSpec` fields) and a
    seed."""

    spec: dict[str, Any]
    seed: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Episode:
        """From the columns `vagen data create` writes: `env` (registered env name),
        `config` (the group's full config, JSON or a mapping), `seed`, and `env_group` (the
        group's name, enough on its own when the env server was started with that group)."""
        seed = plain(row.get("seed"))
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"row column 'seed' must be an integer, got {seed!r}; write env "
                             "rows with `vagen data create --config env_config.yaml`")
        config = row.get("config") or {}
        if isinstance(config, str):
            try:
                config = json.loads(config)
            except ValueError as err:
                raise ValueError(f"row column 'config' is not valid JSON: {err}") from None
        if not isinstance(config, dict):
            raise ValueError(f"row column 'config' must be a mapping, got {config!r}")
        spec: dict[str, Any] = {"config": plain(config)}
        if row.get("env"):
            spec["env"] = str(row["env"])
        elif row.get("env_group"):
            spec["group"] = str(row["env_group"])
        else:
            raise ValueError("row needs column 'env' (a registered env name, with 'config') "
                             "or 'env_group' (an env group of the server's env_config.yaml)")
        return cls(spec, seed)
