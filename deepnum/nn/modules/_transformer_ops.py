"""Fused ops for the transformer's dense layers: y = act(x Wᵀ + b) as one Function.

``linear`` built from separate ops runs a matmul, an out-of-place bias add (a new (N·L, out) array)
and, in the feed-forward block, a separate ReLU (another array, another pass); their backward adds
the reshape/sum_to nodes of the broadcast. Here the product is one GEMM over the flattened rows, the
bias is added in place and the ReLU applied in place, keeping only a boolean mask for backward:

    forward:  Z = X Wᵀ + b,  Y = max(Z, 0) (relu) or Z
    backward: G = dY ∘ [Z > 0] (relu) or dY;  dX = G W,  dW = Gᵀ X,  db = Σ_rows G

(the weight gradient is a single (out, rows) @ (rows, in) GEMM). The backward is written with
Tensor ops, so double backward works (the ReLU mask is a constant: its second derivative is 0).
"""
from __future__ import annotations

from deepnum.autograd.function import Function
from deepnum.backend import get_array_module
from deepnum.functional.activation import relu
from deepnum.functional.array import reshape
from deepnum.functional.linalg import matmul
from deepnum.functional.reduction import sum as _sum
from deepnum.nn.modules.linear import linear
from deepnum.tensor import Tensor

__all__ = ["fused_linear"]



class FusedLinear(Function):
    """Y = act(X Wᵀ + b) over the last dim of X (see the module docstring); act is None or 'relu'."""

    def __init__(self, activation: str | None):
        self.activation = activation
        self.mask = None

    def forward(self, x, w, b=None):
        rows = x.reshape(-1, x.shape[-1])
        y = rows @ w.T
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
        gx = reshape(matmul(g, w), *x.shape) if needs[0] else None
        gw = matmul(g.mT, reshape(x, -1, x.shape[-1])) if needs[1] else None
        if len(needs) == 2:
            return gx, gw
        return gx, gw, (_sum(g, 0) if needs[2] else None)


def fused_linear(x: Tensor, weight: Tensor, bias: Tensor | None = None, activation: str | None = None) -> Tensor:
    """act(x Wᵀ + b) for x (..., in), W (out, in), b (out,) or None; ``activation`` None or 'relu'.
    Widths are not validated (callers check them); mixed dtypes take the unfused path, which
    follows the type promotion of the separate ops."""
    if x.dtype != weight.dtype or (bias is not None and bias.dtype != weight.dtype) or x.ndim < 2:
        y = linear(x, weight, bias)
        return relu(y) if activation == "relu" else y
    fn = FusedLinear(activation)
    return fn(x, weight) if bias is None else fn(x, weight, bias)

