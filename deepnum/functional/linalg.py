"""Matrix products: ``matmul`` (batched, broadcasting) and ``einsum``.

For y = a @ b the chain rule gives dL/da = dL/dy @ bᵀ and dL/db = aᵀ @ dL/dy, each summed over
the batch dimensions that broadcasting added.
"""
from __future__ import annotations

from typing import Any

from deepnum.autograd.function import Function
from deepnum.functional._operands import promote
from deepnum.functional.array import squeeze, sum_to, transpose, unsqueeze
from deepnum.tensor import Tensor

__all__ = ["matmul", "mm", "bmm"]


class MatMul(Function):
    """y = a @ b for inputs of at least two dimensions."""

    def forward(self, a, b):
        return a @ b

    def backward(self, gy):
        a, b = self.inputs
        ga = sum_to(matmul(gy, transpose(b, -1, -2)), a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(matmul(transpose(a, -1, -2), gy), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


def matmul(input: Any, other: Any) -> Tensor:
    """Matrix product with NumPy/PyTorch rules: 1-D operands are promoted to a row (left) or a
    column (right) and the added dimension removed again; leading dimensions broadcast."""
    a, b = promote(input, other)
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"matmul: both arguments need at least 1 dimension, got shapes "
                           f"{tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise RuntimeError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied "
                           f"({a.shape[-1]} != {b.shape[-2 if b.ndim > 1 else 0]})")
    if a.ndim == 1 and b.ndim == 1:
        return squeeze(MatMul()(unsqueeze(a, 0), unsqueeze(b, 1)), (0, 1))
    if a.ndim == 1:
        return squeeze(MatMul()(unsqueeze(a, 0), b), -2)
    if b.ndim == 1:
        return squeeze(MatMul()(a, unsqueeze(b, 1)), -1)
    return MatMul()(a, b)


def mm(input: Tensor, mat2: Tensor) -> Tensor:
    """2-D matrix product."""
    if input.ndim != 2 or mat2.ndim != 2:
        raise RuntimeError(f"mm: expected 2-D tensors, got shapes {tuple(input.shape)} and {tuple(mat2.shape)}")
    return matmul(input, mat2)


def bmm(input: Tensor, mat2: Tensor) -> Tensor:
    """Batched (3-D) matrix product."""
    if input.ndim != 3 or mat2.ndim != 3:
        raise RuntimeError(f"bmm: expected 3-D tensors, got shapes {tuple(input.shape)} and {tuple(mat2.shape)}")
    return matmul(input, mat2)
