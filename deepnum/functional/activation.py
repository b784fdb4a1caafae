"""Activation functions: the non-linearities between layers (without them a deep net collapses
into one linear map), plus softmax and log-softmax over a dimension."""
from __future__ import annotations

from typing import Any

from deepnum.autograd.function import Function
from deepnum.backend import get_array_module
from deepnum.functional._operands import promote
from deepnum.functional.math import exp
from deepnum.functional.reduction import sum
from deepnum.tensor import Tensor

__all__ = ["relu", "sigmoid", "softmax", "log_softmax"]


class ReLU(Function):
    """y = max(x, 0); dy/dx = 1 where x > 0, else 0 (Nair & Hinton 2010)."""

    saves_inputs = False

    def forward(self, x):
        return get_array_module(x).maximum(x, 0)

    def backward(self, gy):
        return gy * Tensor._make(self.output().data > 0).to(gy.dtype)


class Sigmoid(Function):
    """y = 1/(1 + e^(-x)), computed as (1 + tanh(x/2))/2, which never overflows; dy/dx = y(1 - y)."""

    saves_inputs = False

    def forward(self, x):
        return get_array_module(x).tanh(x * 0.5) * 0.5 + 0.5

    def backward(self, gy):
        y = self.output()
        return gy * y * (1 - y)


class Softmax(Function):
    """y_i = e^(x_i - max x) / Σ_j e^(x_j - max x); dL/dx = y·(g - Σ g·y)."""

    saves_inputs = False

    def __init__(self, dim: int):
        self.dim = dim

    def forward(self, x):
        xp = get_array_module(x)
        if x.size == 0:  # no maximum to subtract: nothing to normalize
            return x.copy()
        e = xp.exp(x - x.max(axis=self.dim, keepdims=True))
        e /= e.sum(axis=self.dim, keepdims=True)
        return e

    def backward(self, gy):
        y = self.output()
        gx = y * gy
        return gx - y * sum(gx, self.dim, keepdim=True)


class LogSoftmax(Function):
    """y = x - logsumexp(x); dL/dx = g - softmax(x)·Σ g."""

    saves_inputs = False

    def __init__(self, dim: int):
        self.dim = dim

    def forward(self, x):
        xp = get_array_module(x)
        if x.size == 0:
            return x.copy()
        shifted = x - x.max(axis=self.dim, keepdims=True)
        return shifted - xp.log(xp.exp(shifted).sum(axis=self.dim, keepdims=True))

    def backward(self, gy):
        return gy - exp(self.output()) * sum(gy, self.dim, keepdim=True)


def relu(input: Tensor) -> Tensor:
    return ReLU()(input)


def sigmoid(input: Tensor) -> Tensor:
    (x,) = promote(input, floating=True)
    return Sigmoid()(x)


def _dim(dim: Any, x: Tensor, name: str) -> int:
    if dim is None:
        raise TypeError(f"{name}: pass dim explicitly (implicit dim is deprecated in PyTorch)")
    if x.ndim == 0:
        return 0
    if not -x.ndim <= dim < x.ndim:
        raise IndexError(f"{name}: dim {dim} is out of range for shape {tuple(x.shape)}")
    return dim % x.ndim


def softmax(input: Tensor, dim: int | None = None, dtype: Any = None) -> Tensor:
    (x,) = promote(input, floating=True)
    if dtype is not None:
        x = x.to(dtype)
    if x.ndim == 0:
        return Softmax(None)(x)
    return Softmax(_dim(dim, x, "softmax"))(x)


def log_softmax(input: Tensor, dim: int | None = None, dtype: Any = None) -> Tensor:
    (x,) = promote(input, floating=True)
    if dtype is not None:
        x = x.to(dtype)
    if x.ndim == 0:
        return LogSoftmax(None)(x)
    return LogSoftmax(_dim(dim, x, "log_softmax"))(x)
