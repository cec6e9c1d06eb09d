"""One registry class for everything looked up by name (rewards, envs, codecs, protocols,
RL algorithms, ...), after verl's `trainer/ppo/core_algos.py`: register by decorator,
duplicates rejected, unknown names answered with the list of valid ones. Kept in one place
so every registry words its errors the same way."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

V = TypeVar("V")


class Registry(Generic[V]):
    """Values of one `kind` by name, in registration order.

    `loader`, when given, runs before every lookup; it imports the modules whose
    registrations are built in, so a registry is complete without its users importing them
    (import errors propagate). Call sites that store something other than the decorated
    object (a wrapper, an instance) build it and hand it to `add`."""

    def __init__(self, kind: str, loader: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self._loader = loader
        self._values: dict[str, V] = {}

    def register(self, name: str) -> Callable[[V], V]:
        """Decorator: `@REGISTRY.register("grpo")` stores the decorated object as is."""

        def decorator(value: V) -> V:
            return self.add(name, value)

        return decorator

    def add(self, name: str, value: V) -> V:
        """Store `value` under `name`; a name registered before is a ValueError."""
        if name in self._values:
            owner = getattr(self._values[name], "__qualname__", None)
            by = f" (by {owner})" if owner else ""
            raise ValueError(f"{self.kind} '{name}' is already registered{by}; "
                             "pick another name")
        self._values[name] = value
        return value

    def get(self, name: str) -> V:
        """The value under `name`; an unknown name is a KeyError listing the valid ones."""
        self._load()
        if name not in self._values:
            raise KeyError(f"unknown {self.kind} '{name}'; registered: {', '.join(self.names())}")
        return self._values[name]

    def names(self) -> list[str]:
        """Registered names, sorted (for messages and `--help`)."""
        self._load()
        return sorted(self._values)

    def items(self) -> list[tuple[str, V]]:
        """(name, value) pairs in registration order."""
        self._load()
        return list(self._values.items())

    def copy(self) -> Registry[V]:
        """An independent registry with the same entries, e.g. for a test that registers."""
        clone: Registry[V] = Registry(self.kind, self._loader)
        clone._values = dict(self._values)
        return clone

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        """Names in registration order."""
        self._load()
        return iter(list(self._values))

    def __len__(self) -> int:
        self._load()
        return len(self._values)

    def _load(self) -> None:
        if self._loader is not None:
            self._loader()
