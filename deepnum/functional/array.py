"""Shape and storage ops: reshape, broadcast, transpose, cast. Most are views in NumPy, and their
backward is the inverse rearrangement of the gradient (reshape back, transpose back, sum over the
axes that broadcasting repeated)."""
from __future__ import annotations

from typing import Any

import numpy as np

from deepnum import backend
from deepnum.autograd.function import Function
from deepnum.backend import get_array_module
from deepnum.tensor import Tensor

__all__ = [
    "reshape", "flatten", "squeeze", "unsqueeze", "transpose", "permute", "expand", "broadcast_to",
    "sum_to", "cast", "to_device", "clone",
]


def _shape_arg(shape: tuple) -> tuple[int, ...]:
    """Accept ``f(2, 3)`` and ``f((2, 3))`` alike, as PyTorch does."""
    if len(shape) == 1 and isinstance(shape[0], tuple | list):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


class Reshape(Function):
    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return reshape(gy, self.in_shape)


def reshape(input: Tensor, *shape: Any) -> Tensor:
    """The same elements in a new shape (one dimension may be -1)."""
    shape = _shape_arg(shape)
    if shape == input.shape:
        return input
    size = int(np.prod(shape)) if -1 not in shape else None
    if size is not None and size != input.data.size:
        raise RuntimeError(f"reshape: shape {shape} is invalid for input of shape {tuple(input.shape)}")
    return Reshape(shape)(input)


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dimensions start_dim..end_dim into one."""
    if input.ndim == 0:
        return reshape(input, 1)
    start, end = start_dim % input.ndim, end_dim % input.ndim
    shape = input.shape
    return reshape(input, shape[:start] + (-1,) + shape[end + 1:])


def squeeze(input: Tensor, dim: int | tuple[int, ...] | None = None) -> Tensor:
    """Drop size-1 dimensions (only those in ``dim`` when given; others are left alone, as PyTorch)."""
    if dim is None:
        dims = {i for i, s in enumerate(input.shape) if s == 1}
    else:
        dims = {d % max(input.ndim, 1) for d in (dim if isinstance(dim, tuple | list) else (dim,))}
        dims = {d for d in dims if d < input.ndim and input.shape[d] == 1}
    return reshape(input, tuple(s for i, s in enumerate(input.shape) if i not in dims))


def unsqueeze(input: Tensor, dim: int) -> Tensor:
    """Insert a size-1 dimension at ``dim`` (negative counts from the end of the result)."""
    d = dim % (input.ndim + 1)
    return reshape(input, input.shape[:d] + (1,) + input.shape[d:])


class Permute(Function):
    def __init__(self, axes: tuple[int, ...]):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        return permute(gy, tuple(np.argsort(self.axes).tolist()))


def permute(input: Tensor, *dims: Any) -> Tensor:
    """Reorder dimensions (a view)."""
    axes = tuple(d % max(input.ndim, 1) for d in _shape_arg(dims))
    if sorted(axes) != list(range(input.ndim)):
        raise RuntimeError(f"permute: dims {dims} are not a permutation of {input.ndim} dimensions")
    if axes == tuple(range(input.ndim)):
        return input
    return Permute(axes)(input)


def transpose(input: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap two dimensions."""
    axes = list(range(input.ndim))
    d0, d1 = dim0 % max(input.ndim, 1), dim1 % max(input.ndim, 1)
    axes[d0], axes[d1] = axes[d1], axes[d0]
    return permute(input, tuple(axes))


class BroadcastTo(Function):
    """Repeat along size-1 (or missing leading) axes; the gradient sums them back."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return get_array_module(x).broadcast_to(x, self.shape)

    def backward(self, gy):
        return sum_to(gy, self.in_shape)


class SumTo(Function):
    """Sum a broadcast gradient back to ``shape``: the adjoint of broadcasting."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        lead = x.ndim - len(self.shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, s in enumerate(self.shape) if s == 1 and x.shape[lead + i] != 1)
        y = x.sum(axis=axes, keepdims=True) if axes else x
        return y.reshape(self.shape) if lead else y

    def backward(self, gy):
        return broadcast_to(gy, self.in_shape)


def broadcast_to(input: Tensor, shape: Any) -> Tensor:
    shape = tuple(shape)
    if tuple(input.shape) == shape:
        return input
    return BroadcastTo(shape)(input)


def expand(input: Tensor, *sizes: Any) -> Tensor:
    """Broadcast to ``sizes``; -1 keeps a dimension's size."""
    sizes = _shape_arg(sizes)
    lead = len(sizes) - input.ndim
    shape = tuple(input.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    return broadcast_to(input, shape)


def sum_to(input: Tensor, shape: tuple[int, ...]) -> Tensor:
    shape = tuple(shape)
    if tuple(input.shape) == shape:
        return input
    return SumTo(shape)(input)


class Cast(Function):
    """Change dtype; the gradient is cast back."""

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return cast(gy, self.in_dtype)


def cast(input: Tensor, dtype: Any) -> Tensor:
    dtype = backend.as_dtype(dtype)
    return input if input.dtype == dtype else Cast(dtype)(input)


class ToDevice(Function):
    def __init__(self, device: str):
        self.device = device

    def forward(self, x):
        self.in_device = backend.device_of(x)
        return backend.to_device(x, self.device)

    def backward(self, gy):
        return to_device(gy, self.in_device)


def to_device(input: Tensor, device: str) -> Tensor:
    return input if input.device == device else ToDevice(device)(input)


class Clone(Function):
    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        return gy


def clone(input: Tensor) -> Tensor:
    """A copy that stays in the graph."""
    return Clone()(input)
