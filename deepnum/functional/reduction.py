"""Reductions over dimensions: sum, mean, var/std, max/min, logsumexp, cumsum, prod.

The backward of a reduction broadcasts the gradient back over the reduced dimensions
(re-inserting them first when ``keepdim=False``).
"""
from __future__ import annotations

from typing import Any

from deepnum.autograd.function import Function
from deepnum.functional._operands import promote
from deepnum.functional.array import broadcast_to, reshape
from deepnum.tensor import Tensor

__all__ = ["sum", "mean"]


def normalize_dims(dim: Any, ndim: int) -> tuple[int, ...]:
    """``dim`` (None, an int, or a sequence) as a sorted tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = dim if isinstance(dim, tuple | list) else (dim,)
    if ndim == 0:
        if any(d not in (0, -1) for d in dims):
            raise IndexError(f"dimension {dim} is out of range for a 0-d tensor")
        return ()
    for d in dims:
        if not -ndim <= d < ndim:
            raise IndexError(f"dimension {d} is out of range for a tensor of {ndim} dimensions")
    return tuple(sorted({d % ndim for d in dims}))


def expand_reduced(gy: Tensor, in_shape: tuple[int, ...], axes: tuple[int, ...], keepdim: bool) -> Tensor:
    """Broadcast a reduction's gradient back to the input shape."""
    if not keepdim and axes:
        kept = tuple(1 if i in axes else s for i, s in enumerate(in_shape))
        gy = reshape(gy, kept)
    return broadcast_to(gy, in_shape)


class Sum(Function):
    """y = Σ x over ``axes``; every input element gets the gradient of its sum."""

    def __init__(self, axes: tuple[int, ...], keepdim: bool):
        self.axes, self.keepdim = axes, keepdim

    def forward(self, x):
        self.in_shape = x.shape
        return x.sum(axis=self.axes, keepdims=self.keepdim)

    def backward(self, gy):
        return expand_reduced(gy, self.in_shape, self.axes, self.keepdim)


def sum(input: Tensor, dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Tensor:
    """Sum over ``dim`` (all dimensions when None). Integer and bool inputs sum to int64, as PyTorch."""
    (x,) = promote(input)
    if dtype is not None:
        x = x.to(dtype)
    elif x.dtype.kind in "biu":
        x = x.to("int64")
    return Sum(normalize_dims(dim, x.ndim), keepdim)(x)


def mean(input: Tensor, dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Tensor:
    """Arithmetic mean over ``dim``; needs a floating dtype, as in PyTorch."""
    (x,) = promote(input)
    if dtype is not None:
        x = x.to(dtype)
    if x.dtype.kind not in "fc":
        raise RuntimeError(f"mean(): could not infer output dtype; input dtype must be floating, got {x.dtype}")
    axes = normalize_dims(dim, x.ndim)
    count = 1
    for a in axes:
        count *= x.shape[a]
    return Sum(axes, keepdim)(x) / count if count else Sum(axes, keepdim)(x) * float("nan")
