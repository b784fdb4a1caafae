"""Indexing and gathering: ``x[idx]`` with ints, slices, None, Ellipsis, integer and boolean arrays.

The backward of reading elements is writing the gradient back to where they came from. With
integer-array indices an element can be read several times, so the write must *add*
(``np.add.at``), never assign; plain assignment would keep only the last copy's gradient.
"""
from __future__ import annotations

from typing import Any

from deepnum.autograd.function import Function
from deepnum.backend import get_array_module
from deepnum.tensor import Tensor

__all__ = ["getitem", "unwrap_index"]


def unwrap_index(index: Any) -> Any:
    """Replace Tensors inside an index by their arrays (lists become integer/bool arrays)."""
    if isinstance(index, tuple):
        return tuple(unwrap_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        import numpy as np

        return np.asarray(index)
    return index


def _has_array(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(hasattr(p, "dtype") and getattr(p, "ndim", 0) > 0 for p in parts)


class GetItem(Function):
    def __init__(self, index: Any):
        self.index = index

    def forward(self, x):
        self.in_shape = x.shape
        return x[self.index]

    def backward(self, gy):
        return GetItemGrad(self.index, self.in_shape)(gy)


class GetItemGrad(Function):
    """Scatter-add the gradient of ``x[index]`` into zeros of x's shape; its own backward is
    ``getitem`` again (the two are adjoint linear maps)."""

    def __init__(self, index: Any, shape: tuple[int, ...]):
        self.index, self.shape = index, shape

    def forward(self, gy):
        xp = get_array_module(gy)
        gx = xp.zeros(self.shape, dtype=gy.dtype)
        if _has_array(self.index):
            xp.add.at(gx, self.index, gy)
        else:
            gx[self.index] = gy
        return gx

    def backward(self, ggx):
        return getitem(ggx, self.index)


def getitem(input: Tensor, index: Any) -> Tensor:
    """``input[index]`` (basic indexing gives a view of the data, advanced indexing a copy)."""
    index = unwrap_index(index)
    try:
        return GetItem(index)(input)
    except IndexError as err:
        shape = tuple(input.shape)
        raise IndexError(f"index {index!r} is out of bounds for a tensor of shape {shape}: {err}") from None
