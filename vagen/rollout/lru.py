"""A least-recently-used store bounded by bytes, for the per-frame caches of the rollout
(processed images, vision features): one home for their eviction rule."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

V = TypeVar("V")


class BytesLRU(Generic[V]):
    """Values by key. `use(keys)` returns them and marks them used; then the least recently
    used are dropped until the values' bytes are within `budget_bytes` (the newest always
    stays, so a value larger than the budget is still served)."""

    def __init__(self, budget_bytes: int, nbytes: Callable[[V], int]) -> None:
        self.budget_bytes = budget_bytes
        self._nbytes = nbytes
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._bytes = 0

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def put(self, key: Hashable, value: V) -> None:
        self._items[key] = value
        self._bytes += self._nbytes(value)

    def use(self, keys: Iterable[Hashable]) -> list[V]:
        values = []
        for key in keys:
            self._items.move_to_end(key)
            values.append(self._items[key])
        while self._bytes > self.budget_bytes and len(self._items) > 1:
            self._bytes -= self._nbytes(self._items.popitem(last=False)[1])
        return values
