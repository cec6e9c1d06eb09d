"""Reading an `env_config.yaml` into its env groups: the one definition of which envs a
server hosts, a dataset is built from, a trainer plays and an evaluation runs
(docs/architecture.md, Contracts: Env config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_env_groups(path: str | Path) -> dict[str, dict[str, Any]]:
    """Env groups of an `env_config.yaml` by name: a YAML list of groups, or a mapping whose
    `env_groups` key holds that list. Each group needs a unique `name` and an `env`."""
    from omegaconf import OmegaConf

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"env config not found: {path}")
    data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    groups = data.get("env_groups") if isinstance(data, dict) else data
    if not isinstance(groups, list):
        raise ValueError(f"{path}: expected a list of env groups (or 'env_groups: [...]')")
    by_name: dict[str, dict[str, Any]] = {}
    for i, group in enumerate(groups):
        if not isinstance(group, dict) or not group.get("name") or not group.get("env"):
            raise ValueError(f"{path}: env group {i} needs 'name' and 'env' keys")
        if group["name"] in by_name:
            raise ValueError(f"{path}: env group name '{group['name']}' appears twice")
        by_name[group["name"]] = group
    return by_name
