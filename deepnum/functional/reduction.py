"""Reductions over dimensions: sum, mean, var/std, max/min, logsumexp, cumsum, prod, norm, all/any.

The backward of a reduction broadcasts the gradient back over the reduced dimensions
(re-inserting them first when ``keepdim=False``), then weights it by the local derivative.
"""
from __future__ import annotations

import builtins
from collections import namedtuple
from typing import Any

import numpy as np

from deepnum.autograd.autocast_state import Autocast
from deepnum.autograd.function import Function
from deepnum.backend import get_array_module, int64
from deepnum.functional._operands import promote, raw
from deepnum.functional.array import broadcast_to, reshape
from deepnum.functional.math import exp, maximum, minimum, where
from deepnum.tensor import Tensor

__all__ = [
    "sum", "mean", "var", "std", "max", "min", "amax", "amin", "argmax", "argmin", "logsumexp",
    "cumsum", "prod", "all", "any",
]

# The named tuples that max(input, dim) and min(input, dim) return, as torch.return_types.max/min.
MaxResult = namedtuple("max", ("values", "indices"))
MinResult = namedtuple("min", ("values", "indices"))


def normalize_dims(dim: Any, ndim: int, empty_means_all: bool = True) -> tuple[int, ...]:
    """``dim`` (None, an int, or a sequence) as a sorted tuple of non-negative axes. None, and an
    empty sequence unless ``empty_means_all=False``, mean every dimension, as in PyTorch."""
    if dim is None:
        return tuple(range(ndim))
    dims = tuple(dim) if isinstance(dim, tuple | list) else (dim,)
    if not dims and empty_means_all:
        return tuple(range(ndim))
    if ndim == 0:
        if builtins.any(d not in (0, -1) for d in dims):
            raise IndexError(f"dimension {dim} is out of range for a 0-d tensor")
        return ()
    for d in dims:
        if not -ndim <= d < ndim:
            raise IndexError(f"dimension {d} is out of range for a tensor of {ndim} dimensions")
    return tuple(sorted({d % ndim for d in dims}))


def reduce_axes(op: str, dim: Any, x: Any, empty_means_all: bool = True) -> tuple[int, ...]:
    """``normalize_dims`` with errors that name the op and the input shape."""
    try:
        return normalize_dims(dim, x.ndim, empty_means_all)
    except IndexError as err:
        raise IndexError(f"{op}(): argument 'dim': {err} (input shape {tuple(x.shape)})") from None


def _one_dim(op: str, dim: Any, x: Any) -> tuple[int, ...]:
    """A single int ``dim`` (as a one-element or, for 0-d inputs, empty axes tuple)."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"{op}(): argument 'dim' must be an int, got {dim!r}")
    return reduce_axes(op, dim, x)


def _count(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    """How many elements each reduced slice holds."""
    return int(np.prod([shape[a] for a in axes]))


def _out_shape(shape: tuple[int, ...], axes: tuple[int, ...], keepdim: bool) -> tuple[int, ...]:
    if keepdim:
        return tuple(1 if i in axes else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def _check_nonempty(op: str, shape: tuple[int, ...], axes: tuple[int, ...]) -> None:
    """max/min-like reductions have no identity, so an empty slice is an error (as in PyTorch)."""
    for a in axes:
        if shape[a] == 0:
            raise IndexError(f"{op}(): expected reduction dim {a} to have non-zero size, got input shape {shape}")


def require_floating(op: str, x: Tensor) -> None:
    if x.dtype.kind not in "fc":
        raise RuntimeError(f"{op}(): expected a floating point input, got {x.dtype} of shape {tuple(x.shape)}")


def _integers_to_int64(input: Any, dtype: Any) -> Tensor:
    """The input as a Tensor of ``dtype``; without one, integer and bool inputs accumulate in int64
    (sum, prod, cumsum), as PyTorch."""
    (x,) = promote(input)
    if dtype is not None:
        return x.to(dtype)
    return x.to("int64") if x.dtype.kind in "biu" else x


_const = Tensor._make  # an array as a Tensor outside the graph (masks, indices)


def expand_reduced(gy: Tensor, in_shape: tuple[int, ...], axes: tuple[int, ...], keepdim: bool) -> Tensor:
    """Broadcast a reduction's gradient back to the input shape."""
    if not keepdim and axes:
        gy = reshape(gy, _out_shape(in_shape, axes, True))
    return broadcast_to(gy, in_shape)


class Sum(Function):
    """y = Σ x over ``axes``; every input element gets the gradient of its sum."""

    saves_inputs = False

    def __init__(self, axes: tuple[int, ...], keepdim: bool):
        self.axes, self.keepdim = axes, keepdim

    def forward(self, x):
        self.in_shape = x.shape
        return x.sum(axis=self.axes, keepdims=self.keepdim)

    def backward(self, gy):
        return expand_reduced(gy, self.in_shape, self.axes, self.keepdim)


def sum(input: Tensor, dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Tensor:
    """Sum over ``dim`` (all dimensions when None). Integer and bool inputs sum to int64, as PyTorch."""
    x = _integers_to_int64(input, dtype)
    if Autocast.enabled and dtype is None:
        (x,) = Autocast.cast("sum", x)
    return Sum(reduce_axes("sum", dim, x), keepdim)(x)


def mean(input: Tensor, dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Tensor:
    """Arithmetic mean over ``dim``; needs a floating dtype, as in PyTorch."""
    (x,) = promote(input)
    if dtype is not None:
        x = x.to(dtype)
    if x.dtype.kind not in "fc":
        raise RuntimeError(f"mean(): could not infer output dtype; input dtype must be floating, got {x.dtype}")
    axes = reduce_axes("mean", dim, x)
    count = _count(x.shape, axes)
    return Sum(axes, keepdim)(x) / count if count else Sum(axes, keepdim)(x) * float("nan")


# ----------------------------------------------------------------------------- variance, std
class Var(Function):
    """s² = Σ(x - x̄)² / max(0, N - correction) (Bessel's correction for correction=1);
    ds²/dx = 2(x - x̄)/(N - correction)."""

    def __init__(self, axes: tuple[int, ...], keepdim: bool, correction: float):
        self.axes, self.keepdim, self.correction = axes, keepdim, correction

    def forward(self, x):
        xp = get_array_module(x)
        self.in_shape = x.shape
        n = _count(x.shape, self.axes)
        self.dof = builtins.max(0, n - self.correction)
        if n == 0:
            return xp.full(_out_shape(x.shape, self.axes, self.keepdim), float("nan"), dtype=x.dtype)
        d = x - x.mean(axis=self.axes, keepdims=True)
        ss = (d * d).sum(axis=self.axes, keepdims=self.keepdim)
        if self.dof == 0:  # torch: 0/0 = nan, positive/0 = inf
            return xp.where(ss > 0, float("inf"), float("nan")).astype(x.dtype)
        return ss / x.dtype.type(self.dof)

    def centered_grad(self, gx: Tensor) -> Tensor:
        """(x - x̄)·gx/dof·2: the variance's backward for an input-shaped incoming gradient."""
        x = self.inputs[0]
        scale = 2.0 / self.dof if self.dof else float("inf")
        return gx * (x - mean(x, self.axes, keepdim=True)) * scale

    def backward(self, gy):
        return self.centered_grad(expand_reduced(gy, self.in_shape, self.axes, self.keepdim))


class Std(Var):
    """s = √var; ds/dx = (x - x̄)/(s·(N - correction)), taken as 0 where s = 0 (as PyTorch)."""

    def forward(self, x):
        return get_array_module(x).sqrt(super().forward(x))

    def backward(self, gy):
        s = self.output()
        zero = _const(s.data == 0)
        gs = where(zero, 0.0, gy / (2 * where(zero, 1.0, s)))
        return self.centered_grad(expand_reduced(gs, self.in_shape, self.axes, self.keepdim))


def _var_args(op: str, input: Tensor, dim: Any, unbiased: Any, correction: Any) -> tuple[Tensor, Any, float]:
    """Resolve PyTorch's two var/std signatures: ``(dim, *, correction)`` and the legacy
    ``(dim, unbiased, keepdim)`` / ``(unbiased)`` forms."""
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise RuntimeError(f"{op}(): pass either 'unbiased' or 'correction', not both")
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    (x,) = promote(input)
    require_floating(op, x)
    return x, dim, correction


def var(input: Tensor, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: float | None = None) -> Tensor:
    """Variance over ``dim`` with ``correction`` (default 1: the unbiased estimate)."""
    x, dim, correction = _var_args("var", input, dim, unbiased, correction)
    return Var(reduce_axes("var", dim, x), keepdim, correction)(x)


def std(input: Tensor, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: float | None = None) -> Tensor:
    """Standard deviation √var over ``dim`` (same arguments as ``var``)."""
    x, dim, correction = _var_args("std", input, dim, unbiased, correction)
    return Std(reduce_axes("std", dim, x), keepdim, correction)(x)


# ----------------------------------------------------------------------------- max, min, argmax
class Extreme(Function):
    """y = max (or min) over ``axes``; the gradient is shared evenly by the elements that tie for
    the extreme: dx = g·[x = y]/#ties (PyTorch's amax/amin and full max()/min())."""

    def __init__(self, axes: tuple[int, ...], keepdim: bool, largest: bool):
        self.axes, self.keepdim, self.largest = axes, keepdim, largest

    def forward(self, x):
        self.in_shape = x.shape
        y = (x.max if self.largest else x.min)(axis=self.axes, keepdims=self.keepdim)
        self.y = y
        return y

    def backward(self, gy):
        x = self.inputs[0].data
        xp = get_array_module(x)
        y = self.y if self.keepdim else xp.expand_dims(self.y, self.axes)
        hit = (x == y) | (xp.isnan(x) & xp.isnan(y))
        share = hit / hit.sum(axis=self.axes, keepdims=True)
        return expand_reduced(gy, self.in_shape, self.axes, self.keepdim) * _const(share.astype(gy.dtype))


class ExtremeAlong(Function):
    """(values, indices) of the max (or min) along one dim; the gradient goes to the selected index
    only (the first of tied elements), as ``torch.max(x, dim)``."""

    saves_inputs = False

    def __init__(self, axes: tuple[int, ...], keepdim: bool, largest: bool):
        self.axes, self.keepdim, self.largest = axes, keepdim, largest

    def forward(self, x):
        xp = get_array_module(x)
        self.in_shape = x.shape
        if not self.axes:  # a 0-d input: the element itself, index 0
            self.index = xp.zeros((), dtype=int64)
            return x.copy(), self.index
        axis = self.axes[0]
        index = (xp.argmax if self.largest else xp.argmin)(x, axis=axis, keepdims=True)
        self.index = index
        values = xp.take_along_axis(x, index, axis=axis)
        if not self.keepdim:
            values, index = values.squeeze(axis), index.squeeze(axis)
        return values, index.astype(int64)

    def backward(self, gy, gi):
        g = expand_reduced(gy, self.in_shape, self.axes, self.keepdim)
        if not self.axes:
            return g
        xp = get_array_module(self.index)
        axis = self.axes[0]
        positions = xp.arange(self.in_shape[axis]).reshape((-1,) + (1,) * (len(self.in_shape) - axis - 1))
        return g * _const((positions == self.index).astype(gy.dtype))


def _extreme(op: str, largest: bool, input: Any, dim: Any, keepdim: bool, other: Any) -> Any:
    if other is not None or isinstance(dim, Tensor):
        other = dim if other is None else other
        return maximum(input, other) if largest else minimum(input, other)
    (x,) = promote(input)
    if dim is None:
        if x.data.size == 0:
            raise RuntimeError(f"{op}(): expected reduction dim to be specified for an empty input of shape "
                               f"{tuple(x.shape)}; pass the 'dim' argument")
        return Extreme(tuple(range(x.ndim)), False, largest)(x)
    axes = _one_dim(op, dim, x)
    _check_nonempty(op, tuple(x.shape), axes)
    values, indices = ExtremeAlong(axes, keepdim, largest)(x)
    return (MaxResult if largest else MinResult)(values, indices)


def max(input: Tensor, dim: Any = None, keepdim: bool = False, *, other: Tensor | None = None) -> Any:
    """``max(x)``: the largest element (ties share the gradient); ``max(x, dim, keepdim)``: the named
    tuple (values, indices) along ``dim``; ``max(x, other_tensor)``: ``maximum``."""
    return _extreme("max", True, input, dim, keepdim, other)


def min(input: Tensor, dim: Any = None, keepdim: bool = False, *, other: Tensor | None = None) -> Any:
    """``min(x)``, ``min(x, dim, keepdim)`` -> (values, indices), or ``min(x, other) = minimum``."""
    return _extreme("min", False, input, dim, keepdim, other)


def _amax(op: str, largest: bool, input: Tensor, dim: Any, keepdim: bool) -> Tensor:
    (x,) = promote(input)
    axes = reduce_axes(op, dim, x)
    _check_nonempty(op, tuple(x.shape), axes)
    return Extreme(axes, keepdim, largest)(x)


def amax(input: Tensor, dim: Any = (), keepdim: bool = False) -> Tensor:
    """Maximum over ``dim`` (an int or a tuple; () means all); tied maxima share the gradient evenly."""
    return _amax("amax", True, input, dim, keepdim)


def amin(input: Tensor, dim: Any = (), keepdim: bool = False) -> Tensor:
    """Minimum over ``dim`` (an int or a tuple; () means all); tied minima share the gradient evenly."""
    return _amax("amin", False, input, dim, keepdim)


def _arg_extreme(op: str, largest: bool, input: Tensor, dim: Any, keepdim: bool) -> Tensor:
    x = raw(input)
    xp = get_array_module(x)
    find = xp.argmax if largest else xp.argmin
    if dim is None:
        if x.size == 0:
            raise RuntimeError(f"{op}(): expected reduction dim to be specified for an empty input of shape "
                               f"{tuple(x.shape)}")
        index = xp.asarray(find(x.reshape(-1)), dtype=int64)
        return _const(index.reshape((1,) * x.ndim if keepdim else ()))
    axes = _one_dim(op, dim, x)
    if not axes:
        return _const(xp.zeros((), dtype=int64))
    _check_nonempty(op, tuple(x.shape), axes)
    return _const(find(x, axis=axes[0], keepdims=keepdim).astype(int64))


def argmax(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index (int64) of the largest element along ``dim``, or in the flattened input; no gradient."""
    return _arg_extreme("argmax", True, input, dim, keepdim)


def argmin(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index (int64) of the smallest element along ``dim``, or in the flattened input; no gradient."""
    return _arg_extreme("argmin", False, input, dim, keepdim)


# ----------------------------------------------------------------------------- logsumexp, cumsum
class LogSumExp(Function):
    """y = m + log Σ exp(x - m) with m = max x (so exp never overflows); dy/dx = exp(x - y) = softmax(x)."""

    def __init__(self, axes: tuple[int, ...], keepdim: bool):
        self.axes, self.keepdim = axes, keepdim

    def forward(self, x):
        xp = get_array_module(x)
        self.in_shape = x.shape
        out_shape = _out_shape(x.shape, self.axes, self.keepdim)
        if _count(x.shape, self.axes) == 0:
            return xp.full(out_shape, -float("inf"), dtype=x.dtype)
        m = x.max(axis=self.axes, keepdims=True)
        m = xp.where(xp.isinf(m), xp.zeros((), dtype=x.dtype), m)  # all -inf (or +inf) slices: no shift
        with np.errstate(divide="ignore"):  # log 0 = -inf for an all -inf slice, as PyTorch
            y = xp.log(xp.exp(x - m).sum(axis=self.axes, keepdims=True)) + m
        return y.reshape(out_shape)

    def backward(self, gy):
        x, y = self.inputs[0], self.output()
        expand = (self.in_shape, self.axes, self.keepdim)
        return expand_reduced(gy, *expand) * exp(x - expand_reduced(y, *expand))


def logsumexp(input: Tensor, dim: Any, keepdim: bool = False) -> Tensor:
    """log Σ exp(x) over ``dim`` (an int or a tuple), computed stably; integers give the default float."""
    (x,) = promote(input, floating=True)
    if Autocast.enabled:
        (x,) = Autocast.cast("logsumexp", x)
    return LogSumExp(reduce_axes("logsumexp", dim, x), keepdim)(x)


class CumSum(Function):
    """y_i = Σ_{j≤i} x_j along one dim (``reverse``: Σ_{j≥i}). The two are each other's adjoint, so the
    backward of a cumulative sum is the reversed cumulative sum of the gradient and vice versa."""

    saves_inputs = False

    def __init__(self, axes: tuple[int, ...], reverse: bool = False):
        self.axes, self.reverse = axes, reverse

    def forward(self, x):
        if not self.axes:
            return x.copy()
        xp, axis = get_array_module(x), self.axes[0]
        if self.reverse:
            return xp.flip(xp.cumsum(xp.flip(x, axis), axis=axis), axis)
        return xp.cumsum(x, axis=axis)

    def backward(self, gy):
        return CumSum(self.axes, not self.reverse)(gy)


def cumsum(input: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
    """Running sum along ``dim``; integer and bool inputs accumulate in int64, as PyTorch."""
    x = _integers_to_int64(input, dtype)
    if Autocast.enabled and dtype is None:
        (x,) = Autocast.cast("cumsum", x)
    return CumSum(_one_dim("cumsum", dim, x))(x)


# ----------------------------------------------------------------------------- prod
class Prod(Function):
    """y = Π x over ``axes``; dy/dx_i = Π_{j≠i} x_j, which is y/x_i when the slice has no zero."""

    def __init__(self, axes: tuple[int, ...], keepdim: bool):
        self.axes, self.keepdim = axes, keepdim

    def forward(self, x):
        self.in_shape = x.shape
        return x.prod(axis=self.axes, keepdims=self.keepdim)

    def backward(self, gy):
        x = self.inputs[0]
        expand = (self.in_shape, self.axes, self.keepdim)
        zero = x.data == 0
        if not zero.any():
            return expand_reduced(gy, *expand) * expand_reduced(self.output(), *expand) / x
        return expand_reduced(gy, *expand) * _product_of_others(x, zero, self.axes)


def _product_of_others(x: Tensor, zero: Any, axes: tuple[int, ...]) -> Tensor:
    """Π_{j≠i} x_j for slices that contain zeros, as P/x_i·F_i with P the product of the non-zero
    factors and F_i the product of the zeros other than x_i: 1 (no other zero), the other zero, or 0
    (two or more others). The zeros enter as tensors, so the second derivative is right as well."""
    count = zero.sum(axis=axes, keepdims=True)
    safe = where(_const(zero), 1.0, x)
    others = Prod(axes, True)(safe) / safe
    zeros_sum = Sum(axes, True)(x * _const(zero.astype(x.dtype)))  # value 0, derivative 1 at zeros
    one, other_zero, two = (count == 0) | ((count == 1) & zero), (count == 1) & ~zero, (count == 2) & zero
    return others * (_const(one.astype(x.dtype)) + zeros_sum * _const(other_zero.astype(x.dtype))
                     + (zeros_sum - x) * _const(two.astype(x.dtype)))


def prod(input: Tensor, dim: int | None = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """Product over ``dim`` (all elements when None); integer and bool inputs give int64, as PyTorch.
    Gradients are exact when factors are zero (one zero or several)."""
    x = _integers_to_int64(input, dtype)
    if Autocast.enabled and dtype is None:
        (x,) = Autocast.cast("prod", x)
    axes = tuple(range(x.ndim)) if dim is None else _one_dim("prod", dim, x)
    return Prod(axes, keepdim and dim is not None)(x)


# ----------------------------------------------------------------------------- all, any
def _logical(op: str, input: Any, dim: Any, keepdim: bool) -> Tensor:
    x = raw(input)
    xp = get_array_module(x)
    axes = reduce_axes(op, dim, x, empty_means_all=False)
    out = getattr(xp, op)(x, axis=axes, keepdims=keepdim)
    return _const(xp.asarray(out, dtype=x.dtype if x.dtype == xp.uint8 else bool))


def all(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """True where every element along ``dim`` (all when None) is non-zero; bool (uint8 for uint8)."""
    return _logical("all", input, dim, keepdim)


def any(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """True where some element along ``dim`` (all when None) is non-zero; bool (uint8 for uint8)."""
    return _logical("any", input, dim, keepdim)
