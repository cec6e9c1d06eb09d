"""Envs by name. `register_env` rejects duplicates; unknown names list the valid ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vagen.env.base import Env

EnvFactory = Callable[[dict[str, Any]], Env]
_ENVS: dict[str, EnvFactory] = {}


def register_env(name: str) -> Callable[[EnvFactory], EnvFactory]:
    """Decorator: `@register_env("video_qa")` on a factory `config dict -> Env`."""

    def decorator(factory: EnvFactory) -> EnvFactory:
        if name in _ENVS:
            raise ValueError(f"env '{name}' is already registered")
        _ENVS[name] = factory
        return factory

    return decorator


def make_env(name: str, config: dict[str, Any] | None = None) -> Env:
    """Build a registered env from its config dict."""
    _load_builtin_envs()
    if name not in _ENVS:
        raise KeyError(f"unknown env '{name}'; registered envs: {', '.join(sorted(_ENVS))}")
    return _ENVS[name](dict(config or {}))


def list_envs() -> list[str]:
    _load_builtin_envs()
    return sorted(_ENVS)


def _load_builtin_envs() -> None:
    # Importing the package registers its envs; import errors propagate (never swallowed).
    import vagen.env.video_qa  # noqa: F401
