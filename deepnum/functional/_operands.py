"""Turning op arguments (Tensors, arrays, Python numbers) into Tensors of one dtype and device."""
from __future__ import annotations

from typing import Any

import numpy as np

from deepnum.backend import get_array_module, get_default_dtype, result_type
from deepnum.tensor import Tensor


def raw(x: Any) -> Any:
    """The array behind a Tensor; anything else unchanged."""
    return x.data if isinstance(x, Tensor) else x


def as_tensor(x: Any, dtype: np.dtype, like: Any) -> Tensor:
    """``x`` as a Tensor of ``dtype`` on ``like``'s device: Tensors are cast (differentiably),
    numbers and arrays become constants."""
    if isinstance(x, Tensor):
        if x.data.dtype == dtype:
            return x
        from deepnum.functional.array import cast

        return cast(x, dtype)
    return Tensor._make(get_array_module(like).asarray(x, dtype=dtype))


def promote(*args: Any, floating: bool = False) -> list[Tensor]:
    """All arguments as Tensors of their promoted dtype (PyTorch's rules, ``backend.result_type``);
    ``floating=True`` lifts integer results to the default float dtype (true division, sqrt...)."""
    if all(isinstance(a, Tensor) for a in args):
        first = args[0].data.dtype
        if all(a.data.dtype == first for a in args) and (not floating or first.kind in "fc"):
            return list(args)
    arrays = [raw(a) for a in args]
    dtype = result_type(*arrays)
    if floating and dtype.kind not in "fc":
        dtype = get_default_dtype()
    like = next((a for a in arrays if hasattr(a, "dtype") and not isinstance(a, np.generic)), None)
    return [as_tensor(a, dtype, like) for a in args]
