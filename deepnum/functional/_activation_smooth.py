"""The smooth activations (the Functions behind ``deepnum.functional.activation``'s public names):
sigmoid, softplus, ELU, GELU (exact and tanh), SiLU and Mish.

Each backward is written with Tensor ops, so second derivatives work. Where forward already computed
the expensive part of the derivative (Φ(x) for GELU, σ(2u) for its tanh form, σ(x) for SiLU,
tanh(softplus(x)) for Mish, e^x for ELU), ``_Reuse`` hands that array to backward as a Tensor that is
still differentiable with respect to x.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from deepnum.autograd.function import Function
from deepnum.autograd.grad_mode import _GradMode, is_grad_enabled
from deepnum.backend import get_array_module
from deepnum.functional._erf import ndtr
from deepnum.functional.math import exp, where
from deepnum.tensor import Tensor

_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_KAPPA = 0.044715  # the cubic coefficient of GELU's tanh approximation


def sigmoid_array(x: Any) -> Any:
    """σ(x) = 1/(1 + e^(-x)) on an array. Relatively accurate everywhere (also for very negative x,
    where (1 + tanh(x/2))/2 cancels); e^(-x) = inf for x ≪ 0 correctly gives 0."""
    xp = get_array_module(x)
    e = xp.negative(x, out=xp.empty_like(x))  # out=: an array also for 0-d input, so the rest is in place
    with np.errstate(over="ignore"):
        xp.exp(e, out=e)
    e += 1
    return xp.reciprocal(e, out=e)


def softplus_array(z: Any) -> Any:
    """log(1 + e^z) = max(z, 0) + log1p(e^(-|z|)), which never overflows."""
    xp = get_array_module(z)
    out = xp.abs(z, out=xp.empty_like(z))
    xp.negative(out, out=out)
    xp.exp(out, out=out)
    xp.log1p(out, out=out)
    out += xp.maximum(z, 0)
    return out


def sigmoid(x: Tensor) -> Tensor:
    return Sigmoid()(x)


class _Reuse(Function):
    """f(x) whose value the calling op already computed: forward returns ``value``, backward is
    gy·f'(x) with f' = ``derivative(x, f(x))`` written in Tensor ops. An op's backward uses it to reuse
    its forward's intermediate and still get the second derivative right."""

    def __init__(self, value: Any, derivative: Callable[[Tensor, Tensor], Tensor]):
        self.value, self.derivative = value, derivative

    def forward(self, x):
        return self.value

    def backward(self, gy):
        return gy * self.derivative(self.inputs[0], self.output())


class Sigmoid(Function):
    """y = σ(x) = 1/(1 + e^(-x)); dy/dx = y(1 - y), from the output."""

    saves_inputs = False

    def forward(self, x):
        return sigmoid_array(x)

    def backward(self, gy):
        y = self.output()
        return gy * y * (1 - y)


class Softplus(Function):
    """y = log(1 + e^(βx))/β, and y = x where βx > threshold (as PyTorch, for numerical stability);
    dy/dx = σ(βx) (1 above the threshold), d²y/dx² = β·σ(βx)(1 - σ(βx)) (Dugas et al. 2001)."""

    def __init__(self, beta: float, threshold: float):
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        xp = get_array_module(x)
        z = x * self.beta
        self.linear = z > self.threshold
        soft = softplus_array(z)
        soft /= self.beta
        return xp.where(self.linear, x, soft)

    def backward(self, gy):
        (x,) = self.inputs
        slope = sigmoid(x * self.beta)
        if self.linear.any():
            slope = where(Tensor._make(self.linear), 1.0, slope)
        return gy * slope


class ELU(Function):
    """y = x for x > 0, α(e^x - 1) otherwise (Clevert et al. 2015); dy/dx = 1 for x > 0, else α·e^x
    (α at 0, as PyTorch), d²y/dx² = α·e^x. Forward keeps e^min(x, 0) for the slope: y + α from the
    output would cancel to few digits for x ≪ 0 (float32: 1e-3 relative at x = -10)."""

    saves_inputs = False

    def __init__(self, alpha: float):
        self.alpha = alpha

    def forward(self, x):
        xp = get_array_module(x)
        self.positive = x > 0
        negative_part = xp.minimum(x, 0)
        self.exp = xp.exp(negative_part)
        y = xp.expm1(negative_part)  # expm1: exact near 0, and never overflows here
        y *= self.alpha
        y += xp.maximum(x, 0)  # x + 0 where x > 0, 0 + α(e^x - 1) elsewhere: exact
        return y

    def backward(self, gy):
        (x,) = self.inputs
        on = self.positive.astype(gy.dtype)
        off = 1 - on
        exp_neg = _Reuse(self.exp, lambda x, e: e * Tensor._make(off))(x)  # e^min(x, 0)
        return gy * (exp_neg * Tensor._make(off * self.alpha) + Tensor._make(on))


def _pdf(x: Tensor) -> Tensor:
    """φ(x) = e^(-x²/2)/√(2π), the standard normal density (Tensor ops)."""
    return exp(x * x * -0.5) * _INV_SQRT_2PI


# ----------------------------------------------------------------------------- GELU, float32 fast path
# ½·erfc(z)·e^(z²) as a polynomial in t = 1/(1 + z/2), z ≥ 0 (the form of Numerical Recipes' erfcc):
# coefficients of t⁹ … t⁰ from a weighted least-squares fit on 4000 Chebyshev nodes of z ∈ [0, 10],
# reweighted towards the largest relative error (Lawson's iteration); max relative error 3.2e-8 in
# float64, about 4e-7 once evaluated in float32 for |x| ≤ 5, growing as 3e-8·x² further out (the
# float32 rounding of x² in e^(-x²/2)); tests/test_activation.py checks it on a grid.
_HALF_ERFCX = (-0.027525832969, 0.13195249677, -0.22074090425, 0.11059804234, 0.0085368988154, 0.090625871324,
               0.12489646643, 0.14054926781, 0.14111068297, -3.0054180446e-06)
_T_SCALE = 0.5 * math.sqrt(0.5)  # t = 1/(1 + |x|/(2√2)): z = |x|/√2
_BIG_X = 30.0  # |x| is clamped here: Φ(-30) < 1e-197 is 0 in float32, and a² must not overflow
_BLOCK = 1 << 16  # elements per block: the block's four temporaries stay in cache between the passes


def gelu_float32_(z: Any, slope: Any = None, bias: Any = None) -> None:
    """In place on a C-contiguous float32 array z (..., D): z ← GELU(z + bias), and ``slope`` (z's
    shape) ← GELU'(z + bias) = Φ + x·φ when given, for backward. The float32 fast path of ``GELU`` and
    of the fused linear+GELU (``nn.modules._transformer_ops``).

    With a = |x| and h = Φ(-a) = ½·erfc(a/√2) = p(t)·e^(-a²/2) (p: the fit above), GELU(x) =
    max(x, 0) - a·h for either sign and Φ(x) = ½ + sign(x)·(½ - h): no branch, no mask, and h keeps
    its relative accuracy in the lower tail (unlike 1 + erf). The ~30 elementwise passes run block by
    block on cache-sized pieces: on whole arrays each pass would stream the array from memory, which
    made the Cody-based path 5× slower on a ViT's (N·T, 768) activations."""
    xp = get_array_module(z)
    rows = z.reshape(-1, z.shape[-1]) if z.ndim else z.reshape(1, 1)
    slopes = None if slope is None else slope.reshape(rows.shape)
    per = max(1, _BLOCK // max(rows.shape[1], 1)) if xp is np else max(rows.shape[0], 1)  # GPU: one block
    temps = [xp.empty(per * rows.shape[1], z.dtype) for _ in range(4)]
    for start in range(0, rows.shape[0], per):
        x = rows[start:start + per]
        a, t, h, e = (b[:x.size].reshape(x.shape) for b in temps)
        if bias is not None:
            x += bias
        xp.abs(x, out=a)
        xp.minimum(a, _BIG_X, out=a)
        xp.multiply(a, _T_SCALE, out=t)
        t += 1.0
        xp.reciprocal(t, out=t)
        xp.multiply(t, _HALF_ERFCX[0], out=h)
        for c in _HALF_ERFCX[1:-1]:
            h += c
            h *= t
        h += _HALF_ERFCX[-1]
        xp.multiply(a, a, out=e)
        e *= -0.5
        xp.exp(e, out=e)
        h *= e  # h = Φ(-a)
        if slopes is not None:
            s = slopes[start:start + per]
            xp.multiply(a, e, out=t)
            t *= _INV_SQRT_2PI
            xp.copysign(t, x, out=t)  # x·φ(x), with a clamped (inf·0 would be NaN)
            xp.subtract(0.5, h, out=s)
            xp.copysign(s, x, out=s)
            s += 0.5  # Φ(x)
            s += t
        a *= h
        xp.maximum(x, 0.0, out=x)
        x -= a


class GELU(Function):
    """y = x·Φ(x) with Φ the standard normal CDF, Φ(x) = erfc(-x/√2)/2 (Hendrycks & Gimpel 2016);
    dy/dx = Φ(x) + x·φ(x), d²y/dx² = (2 - x²)·φ(x). Φ from forward is reused by backward. float32
    takes ``gelu_float32_`` (blocked, a fitted erfc, relative error ~4e-7 for |x| ≤ 5), which also
    computes the slope dy/dx for backward when the input requires grad; a double backward
    recomputes Φ with Cody's erfc."""

    def __call__(self, x: Tensor) -> Tensor:
        self.save = _GradMode.enabled and x._requires_grad
        return super().__call__(x)

    def forward(self, x):
        self.cdf = self.slope = None
        if x.dtype == np.float32:
            y = x.copy()
            self.slope = get_array_module(y).empty_like(y) if self.save else None
            gelu_float32_(y, self.slope)
            return y
        self.cdf = ndtr(x)
        return x * self.cdf

    def backward(self, gy):
        (x,) = self.inputs
        if self.slope is not None and not is_grad_enabled():
            return Tensor._make(gy.data * self.slope)
        cdf = _Reuse(ndtr(x.data) if self.cdf is None else self.cdf, lambda x, _: _pdf(x))(x)
        return gy * (cdf + x * _pdf(x))


def _tanh_gelu_slope(x: Tensor, s: Tensor) -> Tensor:
    """d/dx σ(2u(x)) = 2u'(x)·s(1 - s), u = √(2/π)(x + κx³)."""
    return (x * x * (3 * _KAPPA) + 1) * (2 * _SQRT_2_OVER_PI) * s * (1 - s)


class GELUTanh(Function):
    """GELU's tanh approximation y = x/2·(1 + tanh(u)), u = √(2/π)(x + 0.044715x³) (Hendrycks &
    Gimpel 2016), computed as y = x·σ(2u), the same function without the cancellation of 1 + tanh u
    for x ≪ 0; dy/dx = s + x·2u'·s(1 - s) with s = σ(2u), reused from forward."""

    def forward(self, x):
        u = x * x
        u *= _KAPPA
        u += 1
        u *= x
        u *= 2 * _SQRT_2_OVER_PI
        self.s = sigmoid_array(u)
        return x * self.s

    def backward(self, gy):
        (x,) = self.inputs
        s = _Reuse(self.s, _tanh_gelu_slope)(x)
        return gy * (s + x * _tanh_gelu_slope(x, s))


class SiLU(Function):
    """y = x·σ(x), the sigmoid-weighted linear unit (Elfwing et al. 2018; "swish", Ramachandran
    et al. 2017); dy/dx = σ(x)(1 + x(1 - σ(x))), with σ(x) reused from forward."""

    def forward(self, x):
        self.s = sigmoid_array(x)
        return x * self.s

    def backward(self, gy):
        (x,) = self.inputs
        s = _Reuse(self.s, lambda x, s: s * (1 - s))(x)
        return gy * s * (x * (1 - s) + 1)


class Mish(Function):
    """y = x·tanh(softplus(x)) (Misra 2019); dy/dx = t + x·(1 - t²)·σ(x) with t = tanh(softplus(x))
    reused from forward (dt/dx = (1 - t²)·σ(x))."""

    def forward(self, x):
        self.t = get_array_module(x).tanh(softplus_array(x))
        return x * self.t

    def backward(self, gy):
        (x,) = self.inputs
        s = sigmoid(x)
        t = _Reuse(self.t, lambda x, t: (1 - t * t) * s)(x)
        return gy * (t + x * (1 - t * t) * s)

