"""Envs by name: vagen's own (registered by `register_env` on import) and those other
packages declare under the `vagen.envs` entry-point group (`name = "package.module:Factory"`
in their pyproject), so a user's env plays in the server, the trainers and eval without an
edit to vagen. `register_env` rejects duplicates; unknown names list the valid ones."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from vagen.env.base import Env
from vagen.registry import Registry

EnvFactory = Callable[[dict[str, Any]], Env]
ENTRY_POINT_GROUP = "vagen.envs"


def _load_builtin_envs() -> None:
    # Importing the package registers its envs; import errors propagate (never swallowed).
    import vagen.env.video_qa  # noqa: F401


_ENVS: Registry[EnvFactory] = Registry("env", _load_builtin_envs)


def register_env(name: str) -> Callable[[EnvFactory], EnvFactory]:
    """Decorator: `@register_env("video_qa")` on a factory `config dict -> Env`."""
    return _ENVS.register(name)


def load_env_entry_points() -> None:
    """Register the installed packages' `vagen.envs` entry points not registered yet (a name
    vagen or an earlier import registered keeps its env). Run when a name is not found, so
    the scan costs nothing on the server's hot path."""
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name not in _ENVS:
            _ENVS.add(point.name, point.load())


def make_env(name: str, config: dict[str, Any] | None = None) -> Env:
    """Build a registered env from its config dict."""
    if name not in _ENVS:
        load_env_entry_points()
    return _ENVS.get(name)(dict(config or {}))


def list_envs() -> list[str]:
    load_env_entry_points()
    return _ENVS.names()
