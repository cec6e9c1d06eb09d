"""Plain Python from what numpy, pyarrow and parquet hand over: the one converter the wire,
the sample loader and verl's rows share."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

_SCALARS = (str, int, type(None))  # bool is an int


class Unplain(TypeError):
    """A value `plain(strict=True)` cannot turn into numbers, strings, lists or dicts."""


def plain(value: Any, strict: bool = False) -> Any:
    """numpy scalars and arrays, pyarrow values and tuples to plain Python, recursively:
    mapping keys become strings and non-finite floats None (JSON has neither NaN nor a null
    parquet cell). Anything else is kept as it is, or with `strict` raises `Unplain`."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): plain(v, strict) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v, strict) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays, pyarrow arrays
        return plain(value.tolist(), strict)
    if strict:
        raise Unplain(type(value).__name__)
    return value
