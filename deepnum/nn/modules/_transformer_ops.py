"""Fused ops for the transformer's dense layers: y = act(x Wᵀ + b) as one Function.

``linear`` built from separate ops runs a matmul, an out-of-place bias add (a new (N·L, out) array)
and, in the feed-forward block, a separate activation (another array, another pass); their backward
adds the reshape/sum_to nodes of the broadcast. Here the product is one GEMM over the flattened rows,
the bias is added in place and the activation applied in place:

    forward:  Z = X Wᵀ + b,  Y = act(Z)
    backward: G = dY ∘ act'(Z);  dX = G W,  dW = Gᵀ X,  db = Σ_rows G

(the weight gradient is a single (out, rows) @ (rows, in) GEMM). act is None, 'relu' (backward keeps
only the boolean mask Z > 0) or 'gelu' (exact GELU, float32: the bias add, GELU and its slope
act'(Z) = Φ(Z) + Z·φ(Z) are computed block by block in cache by ``gelu_float32_``, and only the
slope is kept: Z itself is never stored, as the ViT's MLP block needs). The backward is written with
Tensor ops, so double backward works (the ReLU mask is a constant: its second derivative is 0; for
GELU, a double backward recomputes Z with differentiable ops).
"""
from __future__ import annotations

import numpy as np

from deepnum.autograd.autocast_state import Autocast
from deepnum.autograd.function import Function
from deepnum.autograd.grad_mode import _GradMode, is_grad_enabled
from deepnum.backend import get_array_module
from deepnum.functional._activation_smooth import _pdf, _Reuse, gelu_float32_
from deepnum.functional._erf import ndtr
from deepnum.functional._half import gemm
from deepnum.functional.activation import gelu, relu
from deepnum.functional.array import reshape
from deepnum.functional.linalg import matmul
from deepnum.functional.reduction import sum as _sum
from deepnum.nn.modules.linear import linear
from deepnum.tensor import Tensor

__all__ = ["fused_linear"]

ACTIVATIONS = (None, "relu", "gelu")


class FusedLinear(Function):
    """Y = act(X Wᵀ + b) over the last dim of X (see the module docstring); act in ``ACTIVATIONS``
    ('gelu' only for float32: ``fused_linear`` routes other dtypes to the separate ops)."""

    def __init__(self, activation: str | None):
        self.activation = activation
        self.mask = self.slope = None

    def __call__(self, *inputs: Tensor) -> Tensor:
        self.save = _GradMode.enabled and any(t._requires_grad for t in inputs)
        return super().__call__(*inputs)

    def forward(self, x, w, b=None):
        rows = x.reshape(-1, x.shape[-1])
        y = gemm(rows, w.T)
        if self.activation == "gelu":
            self.slope = get_array_module(y).empty_like(y) if self.save else None
            gelu_float32_(y, self.slope, b)
        else:
            if b is not None:
                y += b
            if self.activation == "relu":
                xp = get_array_module(y)
                self.mask = y > 0
                xp.maximum(y, 0, out=y)
        return y.reshape(*x.shape[:-1], w.shape[0])

    def backward(self, gy):
        x, w = self.inputs[:2]
        needs = self.needs_input_grad
        g = reshape(gy, -1, gy.shape[-1])
        if self.mask is not None:
            g = g * Tensor._make(self.mask.reshape(g.shape).astype(g.dtype))
        elif self.activation == "gelu":
            g = self._gelu_grad(g)
        gx = reshape(matmul(g, w), *x.shape) if needs[0] else None
        gw = matmul(g.mT, reshape(x, -1, x.shape[-1])) if needs[1] else None
        if len(needs) == 2:
            return gx, gw
        return gx, gw, (_sum(g, 0) if needs[2] else None)

    def _gelu_grad(self, g: Tensor) -> Tensor:
        """dY ∘ GELU'(Z): the slope kept by forward, or (double backward) GELU'(Z) of a Z recomputed
        with differentiable ops, GELU'(z) = Φ(z) + z·φ(z)."""
        if not is_grad_enabled():
            return Tensor._make(g.data * self.slope)
        x, w = self.inputs[:2]
        z = linear(reshape(x, -1, x.shape[-1]), w, self.inputs[2] if len(self.inputs) > 2 else None)
        cdf = _Reuse(ndtr(z.data), lambda z, _: _pdf(z))(z)
        return g * (cdf + z * _pdf(z))


def fused_linear(x: Tensor, weight: Tensor, bias: Tensor | None = None, activation: str | None = None) -> Tensor:
    """act(x Wᵀ + b) for x (..., in), W (out, in), b (out,) or None; ``activation`` in
    ``ACTIVATIONS``. Widths are not validated (callers check them); mixed dtypes (and GELU outside
    float32) take the unfused path, which follows the type promotion of the separate ops."""
    if Autocast.enabled:
        x, weight, bias = Autocast.cast("linear", x, weight, bias)
    same = x.dtype == weight.dtype and (bias is None or bias.dtype == weight.dtype)
    if not same or x.ndim < 2 or (activation == "gelu" and x.dtype != np.float32):
        y = linear(x, weight, bias)
        return {None: lambda y: y, "relu": relu, "gelu": gelu}[activation](y)
    fn = FusedLinear(activation)
    return fn(x, weight) if bias is None else fn(x, weight, bias)
