"""Activation functions: the non-linearities between layers (without them a deep net collapses
into one linear map), plus softmax and log-softmax over a dimension.

The piecewise-linear ones (ReLU, leaky ReLU, hardtanh/ReLU6, hardsigmoid, hardswish) live here; the
smooth ones (sigmoid, softplus, ELU, GELU, SiLU, Mish) in ``_activation_smooth.py``.

``inplace=True`` (PyTorch's flag) writes the result into the input where the input is outside the
autograd graph (it needs no gradient, or grad mode is off), as in PyTorch. On a tensor that is part
of a graph deepnum cannot modify values in place, so the result is then returned as a new tensor
and the input keeps its values; ``x = F.relu(x, inplace=True)`` behaves the same either way.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

from deepnum.autograd.autocast_state import Autocast
from deepnum.autograd.function import Function
from deepnum.autograd.grad_mode import is_grad_enabled
from deepnum.backend import get_array_module
from deepnum.functional._activation_smooth import ELU, GELU, GELUTanh, Mish, Sigmoid, SiLU, Softplus
from deepnum.functional._operands import promote
from deepnum.functional.math import exp, tanh  # noqa: F401  (tanh: torch.nn.functional.tanh)
from deepnum.functional.reduction import sum
from deepnum.tensor import Tensor

__all__ = [
    "relu", "relu_", "sigmoid", "softmax", "log_softmax", "leaky_relu", "elu", "gelu", "silu", "mish",
    "hardtanh", "relu6", "hardsigmoid", "hardswish", "softplus",
]


def maximum0(x: Any, out: Any = None) -> Any:
    """max(x, 0) into ``out`` (a new array in x's memory layout by default). NumPy's ``maximum``
    against a scalar runs a slow loop (0.6 ms per 2M float32 here); against a zero row broadcast
    down the rows of the array's memory-order 2-D view it runs vectorised (0.19 ms)."""
    xp = get_array_module(x)
    out = xp.empty_like(x) if out is None else out
    order = sorted(range(x.ndim), key=lambda i: -abs(x.strides[i]))  # the axes in memory order
    xm, om = x.transpose(order), out.transpose(order)
    width = math.gcd(x.size, 4096)
    if x.dtype.kind != "f" or width < 256 or not (xm.flags.c_contiguous and om.flags.c_contiguous):
        return xp.maximum(x, 0, out=out)
    xp.maximum(xm.reshape(-1, width), xp.zeros(width, dtype=x.dtype), out=om.reshape(-1, width))
    return out


def times_positive(g: Any, y: Any) -> Any:
    """g·[y > 0] as a new array (ReLU's backward, with the mask read off its output y): the mask is
    written as 0.0/1.0 floats, then multiplied in place, 30% faster than multiplying by a boolean
    array (NumPy casts it element by element inside the product)."""
    xp = get_array_module(g)
    out = xp.greater(y, 0, out=xp.empty_like(y, dtype=g.dtype), casting="unsafe")  # in y's memory layout
    out *= g
    return out


class ReLU(Function):
    """y = max(x, 0); dy/dx = 1 where x > 0, else 0 (Nair & Hinton 2010). The mask is read off the
    output in backward (nothing else is saved)."""

    saves_inputs = False

    def forward(self, x):
        return maximum0(x) if x.dtype.kind == "f" else get_array_module(x).maximum(x, 0)

    def backward(self, gy):
        y = self.output().data
        if is_grad_enabled():
            return gy * Tensor._make(y > 0).to(gy.dtype)
        return Tensor._make(times_positive(gy.data, y))


class LeakyReLU(Function):
    """y = x for x > 0, else s·x with a small slope s (Maas et al. 2013), computed as
    max(x, 0) + s·min(x, 0) (exact, and several times faster than a masked select); dy/dx = 1 or s
    (s at 0, as PyTorch): a constant per element."""

    saves_inputs = False

    def __init__(self, negative_slope: float):
        self.negative_slope = negative_slope

    def forward(self, x):
        xp = get_array_module(x)
        self.positive = x > 0
        y = xp.minimum(x, 0)
        y *= self.negative_slope
        y += xp.maximum(x, 0)
        return y

    def backward(self, gy):
        m = self.positive.astype(gy.dtype)
        slope = (1 - m) * self.negative_slope  # 1·m + s·(1 - m), exact for m ∈ {0, 1}
        slope += m
        return gy * Tensor._make(slope)


class Hardtanh(Function):
    """y = clamp(x, min_val, max_val); dy/dx = 1 strictly inside (min_val, max_val), else 0 (PyTorch's
    rule, also at the bounds). ReLU6 (Krizhevsky 2010; MobileNets) is hardtanh(x, 0, 6)."""

    saves_inputs = False

    def __init__(self, min_val: float, max_val: float):
        self.min_val, self.max_val = min_val, max_val

    def forward(self, x):
        self.inside = (x > self.min_val) & (x < self.max_val)
        return get_array_module(x).clip(x, self.min_val, self.max_val).astype(x.dtype, copy=False)

    def backward(self, gy):
        return gy * Tensor._make(self.inside.astype(gy.dtype))


class Hardsigmoid(Function):
    """y = clamp(x + 3, 0, 6)/6, a piecewise-linear sigmoid (Howard et al. 2019, MobileNetV3);
    dy/dx = 1/6 for -3 < x < 3, else 0."""

    saves_inputs = False

    def forward(self, x):
        self.inside = (x > -3) & (x < 3)
        y = get_array_module(x).clip(x + 3, 0, 6)
        y /= 6
        return y

    def backward(self, gy):
        return gy * Tensor._make(self.inside.astype(gy.dtype) / 6)


class Hardswish(Function):
    """y = x·clamp(x + 3, 0, 6)/6 (Howard et al. 2019, MobileNetV3: swish with a hard sigmoid);
    dy/dx = 0 for x ≤ -3, x/3 + 1/2 for -3 < x < 3, 1 for x ≥ 3 (PyTorch's choice at the kinks);
    d²y/dx² = 1/3 between -3 and 3."""

    def forward(self, x):
        y = get_array_module(x).clip(x + 3, 0, 6)
        y *= x
        y /= 6
        return y

    def backward(self, gy):
        (x,) = self.inputs
        xd = x.data
        middle = ((xd > -3) & (xd < 3)).astype(xd.dtype)
        offset = middle * 0.5 + (xd >= 3)
        return gy * (x * Tensor._make(middle / 3) + Tensor._make(offset.astype(xd.dtype, copy=False)))


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


def _finish(input: Tensor, result: Tensor, inplace: bool) -> Tensor:
    """Write ``result`` into ``input`` for ``inplace=True`` where that is allowed (see the module
    docstring); otherwise return ``result``."""
    if not inplace or (is_grad_enabled() and input.requires_grad) or result.dtype != input.dtype:
        return result
    return input.copy_(result)


def _floating(input: Any) -> Tensor:
    (x,) = promote(input, floating=True)
    return x


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0) elementwise."""
    if inplace and not (is_grad_enabled() and input.requires_grad) and input.dtype.kind == "f":
        input._inplace("relu_")  # version bump and the checks of an in-place op
        maximum0(input.data, out=input.data)
        return input
    return _finish(input, ReLU()(input), inplace)


def relu_(input: Tensor) -> Tensor:
    """``relu(input, inplace=True)``."""
    return relu(input, inplace=True)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x for x > 0, else negative_slope·x."""
    return _finish(input, LeakyReLU(negative_slope)(_floating(input)), inplace)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """clamp(x, min_val, max_val), with zero gradient at and beyond the bounds."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val cannot be greater than max_val, got min_val={min_val}, "
                         f"max_val={max_val}")
    return _finish(input, Hardtanh(min_val, max_val)(input), inplace)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6) = hardtanh(x, 0, 6)."""
    return hardtanh(input, 0.0, 6.0, inplace)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """clamp(x + 3, 0, 6)/6."""
    return _finish(input, Hardsigmoid()(_floating(input)), inplace)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """x·clamp(x + 3, 0, 6)/6."""
    return _finish(input, Hardswish()(_floating(input)), inplace)


def sigmoid(input: Tensor) -> Tensor:
    """1/(1 + e^(-x))."""
    return Sigmoid()(_floating(input))


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + e^(βx))/β, and x where βx > threshold."""
    if beta == 0:
        raise ValueError("softplus: beta must be non-zero (the result is divided by it), got 0")
    return Softplus(beta, threshold)(_floating(input))


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x for x > 0, else alpha·(e^x - 1)."""
    return _finish(input, ELU(alpha)(_floating(input)), inplace)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x·Φ(x) (``approximate='none'``) or its tanh approximation (``approximate='tanh'``)."""
    if approximate == "none":
        return GELU()(_floating(input))
    if approximate == "tanh":
        return GELUTanh()(_floating(input))
    raise RuntimeError(f"gelu: approximate argument must be either none or tanh, got {approximate!r}")


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x·σ(x) (swish)."""
    return _finish(input, SiLU()(_floating(input)), inplace)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """x·tanh(softplus(x))."""
    return _finish(input, Mish()(_floating(input)), inplace)


def _dim(dim: Any, x: Tensor, name: str) -> int:
    if dim is None:  # PyTorch's deprecated implicit choice: 0 for 0-, 1- and 3-d inputs, else 1
        warnings.warn(f"Implicit dimension choice for {name} has been deprecated. "
                      "Change the call to include dim=X as an argument.", UserWarning, stacklevel=3)
        dim = 0 if x.ndim in (0, 1, 3) else 1
    if x.ndim == 0:
        return 0
    if not -x.ndim <= dim < x.ndim:
        raise IndexError(f"{name}: dim {dim} is out of range for shape {tuple(x.shape)}")
    return dim % x.ndim


def softmax(input: Tensor, dim: int | None = None, dtype: Any = None) -> Tensor:
    """e^x / Σ e^x along ``dim``."""
    x = _floating(input)
    if Autocast.enabled:
        (x,) = Autocast.cast("softmax", x)
    if dtype is not None:
        x = x.to(dtype)
    if x.ndim == 0:
        return Softmax(None)(x)
    return Softmax(_dim(dim, x, "softmax"))(x)


def log_softmax(input: Tensor, dim: int | None = None, dtype: Any = None) -> Tensor:
    """x - logsumexp(x) along ``dim``."""
    x = _floating(input)
    if Autocast.enabled:
        (x,) = Autocast.cast("log_softmax", x)
    if dtype is not None:
        x = x.to(dtype)
    if x.ndim == 0:
        return LogSoftmax(None)(x)
    return LogSoftmax(_dim(dim, x, "log_softmax"))(x)
