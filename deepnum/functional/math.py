"""Elementwise math: arithmetic with broadcasting, powers, exponentials, trigonometry, clamp, where.

Each op is a ``Function`` whose ``backward`` is the derivative from calculus; broadcasting in the
forward pass becomes a sum over the broadcast axes in the backward pass (``sum_to``).
"""
from __future__ import annotations

from typing import Any

from deepnum.autograd.autocast_state import Autocast
from deepnum.autograd.function import Function
from deepnum.backend import get_array_module
from deepnum.functional._operands import promote, raw
from deepnum.functional.array import sum_to
from deepnum.functional.compare import Piecewise, constant, floor, sign
from deepnum.tensor import Tensor

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "log1p", "sqrt", "rsqrt", "abs",
    "sin", "cos", "tanh", "clamp", "clip", "maximum", "minimum", "where", "reciprocal", "square",
    "floor_divide", "remainder",
]


class _Binary(Function):
    """Two broadcast inputs; subclasses give the local derivatives, this class sums them to shape."""

    def forward(self, a: Any, b: Any) -> Any:
        self.shapes = (a.shape, b.shape)
        return self.compute(a, b)

    def backward(self, gy: Tensor) -> tuple[Tensor | None, Tensor | None]:
        ga, gb = self.local_grads(gy)
        shape_a, shape_b = self.shapes
        return (sum_to(ga, shape_a) if ga is not None else None,
                sum_to(gb, shape_b) if gb is not None else None)


class Add(_Binary):
    """y = a + b; dy/da = dy/db = 1."""

    saves_inputs = False

    def compute(self, a, b):
        return a + b

    def local_grads(self, gy):
        return gy, gy


class Sub(_Binary):
    """y = a - b."""

    saves_inputs = False

    def compute(self, a, b):
        return a - b

    def local_grads(self, gy):
        return gy, (-gy if self.needs_input_grad[1] else None)


class Mul(_Binary):
    """y = a·b; dy/da = b, dy/db = a."""

    def compute(self, a, b):
        return a * b

    def local_grads(self, gy):
        a, b = self.inputs
        return (gy * b if self.needs_input_grad[0] else None,
                gy * a if self.needs_input_grad[1] else None)


class Div(_Binary):
    """y = a / b; dy/da = 1/b, dy/db = -a/b²."""

    def compute(self, a, b):
        return a / b

    def local_grads(self, gy):
        a, b = self.inputs
        ga = gy / b
        return (ga if self.needs_input_grad[0] else None,
                -ga * a / b if self.needs_input_grad[1] else None)


class Pow(_Binary):
    """y = a^b; dy/da = b·a^(b-1), dy/db = y·ln a."""

    def compute(self, a, b):
        return a ** b

    def local_grads(self, gy):
        a, b = self.inputs
        ga = gy * b * a ** (b - 1) if self.needs_input_grad[0] else None
        gb = None
        if self.needs_input_grad[1]:
            positive = Tensor._make(raw(a) > 0)
            gb = gy * self.output() * log(where(positive, a, 1.0))
        return ga, gb


class PowScalar(Function):
    """y = x^c for a constant c; dy/dx = c·x^(c-1)."""

    def __init__(self, exponent: float):
        self.exponent = exponent

    def forward(self, x):
        return x * x if self.exponent == 2 else x ** self.exponent

    def backward(self, gy):
        (x,) = self.inputs
        c = self.exponent
        if c == 0:  # x^0 = 1 everywhere: zero gradient, also at x = 0 (not 0 * 0^-1)
            return gy * 0
        if c == 2:
            return gy * 2.0 * x
        return gy * c * x ** (c - 1)


class Maximum(_Binary):
    """y = max(a, b); where a == b the gradient is shared half and half, as in PyTorch."""

    def compute(self, a, b):
        return get_array_module(a).maximum(a, b)

    def local_grads(self, gy):
        a, b = (t.data for t in self.inputs)
        share = Tensor._make(((a > b) + 0.5 * (a == b)).astype(gy.dtype))
        return gy * share, gy * (1 - share)


class Minimum(_Binary):
    """y = min(a, b); ties shared as in ``Maximum``."""

    def compute(self, a, b):
        return get_array_module(a).minimum(a, b)

    def local_grads(self, gy):
        a, b = (t.data for t in self.inputs)
        share = Tensor._make(((a < b) + 0.5 * (a == b)).astype(gy.dtype))
        return gy * share, gy * (1 - share)


class Remainder(_Binary):
    """y = a - b·floor(a/b) (Python's sign convention, as ``torch.remainder``)."""

    def compute(self, a, b):
        return get_array_module(a).remainder(a, b)

    def local_grads(self, gy):
        a, b = self.inputs
        return gy, (-gy * floor(a / b) if self.needs_input_grad[1] else None)


class Where(Function):
    """y = a where cond else b; the gradient goes to the branch that was chosen."""

    saves_inputs = False

    def __init__(self, condition: Any):
        self.condition = condition

    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return get_array_module(a).where(self.condition, a, b)

    def backward(self, gy):
        zero = Tensor._make(get_array_module(gy.data).zeros((), dtype=gy.dtype))
        chosen = Tensor._make(self.condition)
        return (sum_to(where(chosen, gy, zero), self.shapes[0]),
                sum_to(where(chosen, zero, gy), self.shapes[1]))


def add(input: Any, other: Any, alpha: float = 1) -> Tensor:
    """input + alpha·other, broadcasting."""
    if alpha != 1:
        other = mul(other, alpha)
    return Add()(*promote(input, other))


def sub(input: Any, other: Any, alpha: float = 1) -> Tensor:
    if alpha != 1:
        other = mul(other, alpha)
    return Sub()(*promote(input, other))


def mul(input: Any, other: Any) -> Tensor:
    return Mul()(*promote(input, other))


def div(input: Any, other: Any, rounding_mode: str | None = None) -> Tensor:
    """True division (integers give floats); ``rounding_mode='floor'``/``'trunc'`` as in PyTorch."""
    if rounding_mode in ("floor", "trunc"):
        a, b = promote(input, other)
        return Piecewise("div", _floor_divide if rounding_mode == "floor" else _trunc_divide)(a, b)
    if rounding_mode is not None:
        raise ValueError(f"div: rounding_mode must be None, 'floor' or 'trunc', got {rounding_mode!r}")
    return Div()(*promote(input, other, floating=True))


def pow(input: Any, exponent: Any) -> Tensor:
    """input ** exponent; a Python-number exponent is a constant."""
    if isinstance(input, Tensor) and not isinstance(exponent, Tensor) and not hasattr(exponent, "dtype"):
        (x,) = promote(input, exponent)[:1]
        return PowScalar(exponent)(x)
    return Pow()(*promote(input, exponent))


def maximum(input: Any, other: Any) -> Tensor:
    return Maximum()(*promote(input, other))


def minimum(input: Any, other: Any) -> Tensor:
    return Minimum()(*promote(input, other))


def remainder(input: Any, other: Any) -> Tensor:
    return Remainder()(*promote(input, other))


def floor_divide(input: Any, other: Any) -> Tensor:
    """floor(input / other); piecewise constant, so it has no gradient."""
    a, b = promote(input, other)
    return constant(_floor_divide(a.data, b.data))


def _floor_divide(a: Any, b: Any) -> Any:
    return get_array_module(a).floor_divide(a, b)


def _trunc_divide(a: Any, b: Any) -> Any:
    """a / b rounded toward zero; exact for integers (no detour through floats)."""
    xp = get_array_module(a)
    if a.dtype.kind in "fc":
        return xp.trunc(a / b)
    q = xp.floor_divide(a, b)
    return q + ((q < 0) & (q * b != a)).astype(q.dtype)


def where(condition: Any, input: Any, other: Any) -> Tensor:
    """Elementwise choice ``condition ? input : other``, broadcasting all three."""
    a, b = promote(input, other)
    cond = raw(condition)
    if not hasattr(cond, "dtype") or cond.dtype.kind != "b":
        cond = get_array_module(a.data).asarray(cond).astype(bool)
    return Where(cond)(a, b)


class _Unary(Function):
    """One input; ``derivative(x)`` returns dy/dx as a Tensor expression (so it is differentiable too)."""

    def forward(self, x):
        return self.compute(get_array_module(x), x)

    def backward(self, gy):
        return gy * self.derivative(self.inputs[0])


class Neg(_Unary):
    saves_inputs = False

    def compute(self, xp, x):
        return -x

    def backward(self, gy):
        return -gy


class Exp(_Unary):
    """d/dx e^x = e^x (the output itself)."""

    def compute(self, xp, x):
        return xp.exp(x)

    def derivative(self, x):
        return self.output()


class Log(_Unary):
    """d/dx ln x = 1/x."""

    def compute(self, xp, x):
        return xp.log(x)

    def backward(self, gy):
        return gy / self.inputs[0]


class Log1p(_Unary):
    """d/dx ln(1 + x) = 1/(1 + x)."""

    def compute(self, xp, x):
        return xp.log1p(x)

    def backward(self, gy):
        return gy / (self.inputs[0] + 1)


class Sqrt(_Unary):
    """d/dx √x = 1/(2√x)."""

    def compute(self, xp, x):
        return xp.sqrt(x)

    def backward(self, gy):
        return gy / (2 * self.output())


class Rsqrt(_Unary):
    """d/dx x^(-1/2) = -x^(-3/2)/2."""

    def compute(self, xp, x):
        return 1 / xp.sqrt(x)

    def derivative(self, x):
        y = self.output()
        return -0.5 * y * y * y


class Reciprocal(_Unary):
    """d/dx 1/x = -1/x²."""

    def compute(self, xp, x):
        return 1 / x

    def derivative(self, x):
        y = self.output()
        return -(y * y)


class Abs(_Unary):
    """d/dx |x| = sign(x) (0 at 0, as PyTorch)."""

    def compute(self, xp, x):
        return xp.abs(x)

    def derivative(self, x):
        return sign(x)


class Sin(_Unary):
    def compute(self, xp, x):
        return xp.sin(x)

    def derivative(self, x):
        return cos(x)


class Cos(_Unary):
    def compute(self, xp, x):
        return xp.cos(x)

    def derivative(self, x):
        return -sin(x)


class Tanh(_Unary):
    """d/dx tanh x = 1 - tanh² x."""

    def compute(self, xp, x):
        return xp.tanh(x)

    def derivative(self, x):
        y = self.output()
        return 1 - y * y


class Clamp(Function):
    """y = min(max(x, low), high), either bound may be absent. The gradient goes to the value picked,
    with PyTorch's tie rules: x where low ≤ x ≤ high, low where x < low < high, high where x > high
    or high < low (numbers as bounds are constant 0-d tensors)."""

    def __init__(self, has_low: bool, has_high: bool):
        self.has_low, self.has_high = has_low, has_high

    def _bounds(self, bounds: tuple) -> tuple[Any, Any]:
        return (bounds[0] if self.has_low else None), (bounds[-1] if self.has_high else None)

    def forward(self, x, *bounds):
        xp = get_array_module(x)
        self.shapes = (x.shape, *(b.shape for b in bounds))
        low, high = self._bounds(bounds)
        y = x if low is None else xp.maximum(x, low)
        return y if high is None else xp.minimum(y, high)

    def backward(self, gy):
        x, *bounds = (t.data for t in self.inputs)
        low, high = self._bounds(bounds)
        if low is None:
            masks = [x <= high]
        elif high is None:
            masks = [x >= low, x < low]
        else:
            masks = [(x >= low) & (x <= high), (x < low) & (low < high)]
        if high is not None:
            masks.append(x > high if low is None else (x > high) | (high < low))
        return tuple(sum_to(gy * Tensor._make(m.astype(gy.dtype)), shape) if need else None
                     for m, shape, need in zip(masks, self.shapes, self.needs_input_grad))


def _unary(cls: type, floating: bool = True):
    def op(input: Any) -> Tensor:
        (x,) = promote(input, floating=floating)
        if Autocast.enabled:
            (x,) = Autocast.cast(op.__name__, x)
        return cls()(x)

    op.__name__ = cls.__name__.lower()
    op.__doc__ = cls.__doc__
    return op


neg = _unary(Neg, floating=False)
exp = _unary(Exp)
log = _unary(Log)
log1p = _unary(Log1p)
sqrt = _unary(Sqrt)
rsqrt = _unary(Rsqrt)
reciprocal = _unary(Reciprocal)
abs = _unary(Abs, floating=False)
sin = _unary(Sin)
cos = _unary(Cos)
tanh = _unary(Tanh)


def square(input: Any) -> Tensor:
    return pow(input, 2)


def clamp(input: Any, min: Any = None, max: Any = None) -> Tensor:
    """Limit values to [min, max] (where min > max the result is max, as in PyTorch); Tensor bounds
    broadcast and get gradients. The result dtype is promoted with the bounds."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    x, *bounds = promote(input, *(b for b in (min, max) if b is not None))
    return Clamp(min is not None, max is not None)(x, *bounds)


clip = clamp
