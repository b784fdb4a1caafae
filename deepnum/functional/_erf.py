"""The error function on raw arrays (NumPy has none): erf, erfc and the normal CDF Φ.

W. J. Cody's rational Chebyshev approximations ("Rational Chebyshev approximations for the error
function", Math. Comp. 23 (1969) 631-637), in three ranges of a = |x|:

- a ≤ 0.5:      erf(x)  = x·P₁(x²)/Q₁(x²)
- 0.5 < a ≤ 4:  erfc(a) = e^(-a²)·P₂(a)/Q₂(a)
- a > 4:        erfc(a) = e^(-a²)/a·(1/√π + a⁻²·P₃(a⁻²)/Q₃(a⁻²))

e^(-a²) is evaluated as e^(-s²)·e^(-(a-s)(a+s)) with s = a rounded down to 1/16, which is exact in
s² and so avoids the error that rounding a² would multiply by a². Every step stays in the input's
dtype (float32 in, float32 out; float16 is computed in float32). In float64 the relative error is a
few units in the last place, for erfc also far in the tail (tests/test_activation.py checks against
``math.erf``/``math.erfc``).
"""
from __future__ import annotations

import math
from typing import Any

from deepnum.backend import get_array_module

_P1 = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02, 3.20937758913846947e03,
       1.85777706184603153e-1)
_Q1 = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03, 2.84423683343917062e03)
_P2 = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01, 2.98635138197400131e02,
       8.81952221241769090e02, 1.71204761263407058e03, 2.05107837782607147e03, 1.23033935479799725e03,
       2.15311535474403846e-8)
_Q2 = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02, 1.62138957456669019e03,
       3.29079923573345963e03, 4.36261909014324716e03, 3.43936767414372164e03, 1.23033935480374942e03)
_P3 = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1, 1.60837851487422766e-2,
       6.58749161529837803e-4, 1.63153871373020978e-2)
_Q3 = (2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1, 6.05183413124413191e-2,
       2.33520497626869185e-3)
_INV_SQRT_PI = 0.56418958354775628695
_SQRT_HALF = math.sqrt(0.5)
_BIG = 30.0  # erfc(30) < 1e-390 underflows to 0 in every float dtype; clamping keeps inf out of the split


def _ratio(t: Any, p: tuple, q: tuple) -> Any:
    """(p[-1]·t^n + p[0]·t^(n-1) + ... + p[-2]) / (t^n + q[0]·t^(n-1) + ... + q[-1]): Cody's nesting
    (the last numerator coefficient leads, the denominator is monic), in place on two buffers
    (fresh temporaries per step would cost several times the arithmetic)."""
    num = t * p[-1]
    den = t + q[0]
    den *= t
    num += p[0]
    num *= t
    for a, b in zip(p[1:-2], q[1:-1], strict=True):
        num += a
        num *= t
        den += b
        den *= t
    num += p[-2]
    den += q[-1]
    num /= den
    return num


def _erf_small(x: Any) -> Any:
    """erf(x) for |x| ≤ 0.5 (odd, so the sign of x carries through)."""
    out = _ratio(x * x, _P1, _Q1)
    out *= x
    return out


def _exp_minus_square(a: Any, out: Any = None) -> Any:
    """e^(-a²) without the error of rounding a² (Cody's splitting at multiples of 1/16), into ``out``
    if given (fresh large buffers cost page faults comparable to the arithmetic)."""
    xp = get_array_module(a)
    s = xp.multiply(a, 16, out=out)
    xp.trunc(s, out=s)
    s /= 16
    d = a - s
    d *= a + s
    xp.negative(d, out=d)
    xp.exp(d, out=d)
    s *= s
    xp.negative(s, out=s)
    xp.exp(s, out=s)
    s *= d
    return s


def _erfc_positive(a: Any) -> Any:
    """erfc(a) for a 1-D array a ≥ 0, finite or NaN, at most _BIG. Exact to a few ulp for a > 0.5;
    below, Cody's middle-range fit is still within 5e-12 (enough for float32). The tail a > 4 is
    usually a small part of the array, so it is evaluated on those elements only."""
    xp = get_array_module(a)
    t = xp.minimum(a, 4.0)
    out = _ratio(t, _P2, _Q2)
    tail = xp.flatnonzero(a > 4)
    if tail.size:
        at = a[tail]
        r = 1 / (at * at)
        out[tail] = (_INV_SQRT_PI - r * _ratio(r, _P3, _Q3)) / at
    out *= _exp_minus_square(a, out=t)
    return out


def _select(mask: Any, a: Any, b: Any) -> Any:
    """where(mask, a, b) for finite a and b, by arithmetic (a·m - b·(m - 1) with m ∈ {0, 1} is exact):
    several times faster than a masked copy when the mask is irregular; overwrites a and b."""
    if mask.all():
        return a
    if not mask.any():
        return b
    m = mask.astype(a.dtype)
    a *= m
    m -= 1
    b *= m
    a -= b
    return a


def _parts(x: Any, relative_near_zero: bool) -> tuple[Any, Any, Any, Any]:
    """(x flattened, in a float dtype of at least 32 bits; the mask |x| ≤ 0.5; erf there; erfc(|x|)
    elsewhere). The last two are None where the mask is all False or all True. Without
    ``relative_near_zero`` (erfc, Φ: values near 1 there), float32 skips the small-|x| formula."""
    xp = get_array_module(x)
    work = (x.astype(xp.float32) if x.dtype.itemsize < 4 else x).reshape(-1)  # 1-D: ufuncs keep arrays
    a = xp.abs(work)
    if work.dtype == xp.float32 and not relative_near_zero and work.size:
        return work, xp.zeros(work.shape, bool), None, _erfc_positive(xp.minimum(a, _BIG, out=a))
    small = a <= 0.5
    erf_small = _erf_small(xp.clip(work, -0.5, 0.5)) if small.any() or not small.size else None
    erfc_large = None if small.all() else _erfc_positive(xp.minimum(a, _BIG, out=a))
    return work, small, erf_small, erfc_large


def erf(x: Any) -> Any:
    """erf(x) = 2/√π ∫₀ˣ e^(-t²) dt, elementwise on a float array."""
    xp = get_array_module(x)
    work, small, s, c = _parts(x, True)
    if c is not None:
        xp.subtract(1, c, out=c)
        xp.copysign(c, work, out=c)
        s = c if s is None else _select(small, s, c)
    return s.astype(x.dtype, copy=False).reshape(x.shape)


def erfc(x: Any) -> Any:
    """erfc(x) = 1 - erf(x), accurate (relatively) also where it is tiny, for large positive x."""
    xp = get_array_module(x)
    work, small, s, c = _parts(x, False)
    if s is not None:
        xp.subtract(1, s, out=s)
    if c is not None:
        c = _select(work > 0, c, 2 - c)
        s = c if s is None else _select(small, s, c)
    return s.astype(x.dtype, copy=False).reshape(x.shape)


def ndtr(x: Any) -> Any:
    """The standard normal CDF Φ(x) = erfc(-x/√2)/2, relatively accurate in the lower tail."""
    return erfc(x * -_SQRT_HALF) * 0.5
