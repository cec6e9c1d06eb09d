"""The one numpy/pyarrow -> plain Python converter (wire, sample loader, verl rows)."""

import math

import numpy as np
import pyarrow as pa
import pytest

from vagen.plain import Unplain, plain


def test_numpy_pyarrow_and_tuples_become_plain_python():
    value = {1: np.float32(0.5), "a": np.arange(3), "t": (np.int64(2), [np.bool_(True)]),
             "nan": float("nan"), "inf": np.float64(math.inf), "arrow": pa.array([1, None])}
    assert plain(value) == {"1": 0.5, "a": [0, 1, 2], "t": [2, [True]], "nan": None,
                            "inf": None, "arrow": [1, None]}
    assert type(plain(np.int64(3))) is int and type(plain(np.float32(1.5))) is float


def test_strict_refuses_what_is_not_data_and_lenient_keeps_it():
    thing = object()
    with pytest.raises(Unplain, match="object"):
        plain({"x": [thing]}, strict=True)
    assert plain({"x": [thing]}) == {"x": [thing]}
