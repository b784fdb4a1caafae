"""Comparisons, rounding and logic: piecewise-constant ops. Their derivative is zero wherever it
exists, so rounding ops pass a zero gradient (as PyTorch) and comparisons return bool tensors,
which carry no gradient at all."""
from __future__ import annotations

from typing import Any

from deepnum.autograd.function import Function
from deepnum.backend import get_array_module
from deepnum.functional._operands import promote, raw
from deepnum.tensor import Tensor

__all__ = [
    "sign", "floor", "ceil", "round", "eq", "ne", "lt", "le", "gt", "ge",
    "logical_not", "logical_and", "logical_or", "isnan", "isinf", "isfinite",
]


def constant(array: Any) -> Tensor:
    """A result with no gradient (comparisons, rounding, signs)."""
    return Tensor._make(array)


def _no_grad_unary(name: str, doc: str):
    def op(input: Any) -> Tensor:
        x = raw(input)
        return constant(getattr(get_array_module(x), name)(x))

    op.__name__, op.__doc__ = name, doc
    return op


class Piecewise(Function):
    """A piecewise-constant op (sign, floor, ceil, round, rounded division): its derivative is 0
    wherever it exists, so every input gets a zero gradient, as in PyTorch."""

    saves_inputs = False

    def __init__(self, name: str, fn: Any):
        self.op_name, self.fn = name, fn

    @property
    def name(self) -> str:
        return self.op_name

    def forward(self, *arrays):
        self.shapes = tuple(a.shape for a in arrays)
        return self.fn(*arrays)

    def backward(self, gy):
        xp = get_array_module(gy.data)
        grads = tuple(Tensor._make(xp.zeros(shape, dtype=gy.dtype)) if need else None
                      for shape, need in zip(self.shapes, self.needs_input_grad))
        return grads if len(grads) > 1 else grads[0]


def _piecewise_unary(name: str, doc: str):
    def op(input: Any) -> Tensor:
        (x,) = promote(input)
        return Piecewise(name, getattr(get_array_module(x.data), name))(x)

    op.__name__, op.__doc__ = name, doc
    return op


sign = _piecewise_unary("sign", "-1, 0 or +1 elementwise; zero gradient.")
floor = _piecewise_unary("floor", "Round down; zero gradient.")
ceil = _piecewise_unary("ceil", "Round up; zero gradient.")
isnan = _no_grad_unary("isnan", "True where NaN.")
isinf = _no_grad_unary("isinf", "True where ±inf.")
isfinite = _no_grad_unary("isfinite", "True where finite.")
logical_not = _no_grad_unary("logical_not", "Elementwise not.")


def round(input: Any, decimals: int = 0) -> Tensor:
    """Round half to even (as PyTorch); zero gradient."""
    (x,) = promote(input)
    return Piecewise("round", lambda a: get_array_module(a).round(a, decimals))(x)


def _compare(name: str):
    def op(input: Any, other: Any) -> Tensor:
        a, b = promote(input, other)
        return constant(getattr(get_array_module(a.data), name)(a.data, b.data))

    op.__name__ = name
    op.__doc__ = f"Elementwise ``{name}`` with broadcasting; a bool tensor."
    return op


eq = _compare("equal")
ne = _compare("not_equal")
lt = _compare("less")
le = _compare("less_equal")
gt = _compare("greater")
ge = _compare("greater_equal")
logical_and = _compare("logical_and")
logical_or = _compare("logical_or")
