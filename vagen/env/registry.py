"""Envs by name. `register_env` rejects duplicates; unknown names list the valid ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vagen.env.base import Env
from vagen.registry import Registry

EnvFactory = Callable[[dict[str, Any]], Env]


def _load_builtin_envs() -> None:
    # Importing the package registers its envs; import errors propagate (never swallowed).
    import vagen.env.video_qa  # noqa: F401


_ENVS: Registry[EnvFactory] = Registry("env", _load_builtin_envs)


def register_env(name: str) -> Callable[[EnvFactory], EnvFactory]:
    """Decorator: `@register_env("video_qa")` on a factory `config dict -> Env`."""
    return _ENVS.register(name)


def make_env(name: str, config: dict[str, Any] | None = None) -> Env:
    """Build a registered env from its config dict."""
    return _ENVS.get(name)(dict(config or {}))


def list_envs() -> list[str]:
    return _ENVS.names()
