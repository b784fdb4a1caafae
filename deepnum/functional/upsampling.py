"""Resizing, as ``torch.nn.functional.interpolate``: nearest, nearest-exact, (bi/tri)linear and area.

Nearest and linear interpolation are separable: resizing along each spatial dim in turn gives
the same result as PyTorch's joint formula (bilinear: y = Σ w_h·w_w·x over the 4 neighbours, the
"bilinear interpolation" used to enlarge the last feature map in the notes' FCN, 004). Along one
dim, output o reads input i₀(o) (and i₁(o) = i₀ + 1 for linear, with weights 1 − λ and λ):

- nearest: i₀ = min(floor(o·scale), L − 1) with scale = 1/scale_factor when given, else L/out
  (PyTorch's rule, in float32; so scale_factor=1.1 on L=5 gives out=5 but not a copy);
- nearest-exact: i₀ = min(floor((o + ½)·scale), L − 1);
- linear, align_corners=True: src = o·(L − 1)/(out − 1) (the corner pixels' centres line up);
- linear, align_corners=False: src = max((o + ½)·scale − ½, 0) (pixel areas line up);
  i₀ = floor(src), λ = src − i₀, computed in the input's precision (float32 for float32) as PyTorch;
  where out = L the dim is copied whatever the scale factor, as PyTorch's linear kernels do.

The backward is the adjoint: every output's gradient is added back to the inputs it read, with
the same weights. The index maps are non-decreasing, so the outputs reading one input form a run,
and the adjoint is a few whole-slice additions (one per position within a run) instead of a
scatter over every element.
"""
from __future__ import annotations

import operator
from typing import Any

import numpy as np

from deepnum.autograd.function import Function
from deepnum.backend import get_array_module
from deepnum.functional.array import clone
from deepnum.functional.pooling import Who as _Who
from deepnum.functional.pooling import adaptive_average_pool
from deepnum.tensor import Tensor

__all__ = ["interpolate", "upsample", "upsample_nearest", "upsample_bilinear"]

_LINEAR = {"linear": 3, "bilinear": 4, "trilinear": 5}
_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "trilinear", "area")


def _as_slice(positions: np.ndarray) -> slice | np.ndarray:
    """An arithmetic progression of positions as a slice (a view instead of a gather)."""
    if positions.size == 0:
        return positions
    step = int(positions[1] - positions[0]) if positions.size > 1 else 1
    if step > 0 and np.array_equal(positions, positions[0] + step * np.arange(positions.size)):
        return slice(int(positions[0]), int(positions[-1]) + 1, step)
    return positions


class _Tap:
    """One term of the interpolation along an axis: input positions (non-decreasing) and their
    weights (None: weight 1). For the adjoint, the outputs reading one input form a run; the r-th
    outputs of all runs (phase r) go to distinct inputs, so a phase is one slice addition
    (source → target slice), or, where its inputs are not a progression, one gather: input i reads
    output ``source[i]``, with ``len(index)`` standing for a zero (target None)."""

    def __init__(self, index: np.ndarray, weight: np.ndarray | None):
        self.index, self.weight = index, weight
        starts = np.flatnonzero(np.diff(index, prepend=-1))
        lengths = np.diff(np.append(starts, index.size))
        self.phases = []
        for r in range(int(lengths.max()) if index.size else 0):
            runs = lengths > r
            source, target = _as_slice(starts[runs] + r), _as_slice(index[starts[runs]])
            if not isinstance(target, slice):
                inverse = np.full(int(index[-1]) + 1, index.size, dtype=np.int64)
                inverse[target] = starts[runs] + r
                source, target = inverse, None
            self.phases.append((source, target))


def _along(values: Any, axis: int, ndim: int) -> Any:
    return values.reshape((-1,) + (1,) * (ndim - axis - 1))


class Resample(Function):
    """y[…, o, …] = Σ_taps w(o)·x[…, i(o), …] along one axis (one tap: nearest; two: linear).
    Linear in x: its gradient is ``ResampleAdjoint``, whose gradient is ``Resample`` again."""

    saves_inputs = False

    def __init__(self, axis: int, taps: tuple[_Tap, ...], size: int):
        self.axis, self.taps, self.size = axis, taps, size

    def forward(self, x):
        xp = get_array_module(x)
        out = None
        for tap in self.taps:
            v = xp.take(x, xp.asarray(tap.index), axis=self.axis)
            if tap.weight is not None:
                xp.multiply(v, _along(xp.asarray(tap.weight, dtype=x.dtype), self.axis, x.ndim), out=v)
            out = v if out is None else xp.add(out, v, out=out)
        return out

    def backward(self, gy):
        return ResampleAdjoint(self.axis, self.taps, self.size)(gy)


class ResampleAdjoint(Function):
    """gx[…, i, …] = Σ_{o : i(o) = i} w(o)·gy[…, o, …]: per tap, one slice addition per phase (the
    r-th output of every run of equal input positions); nearest ×2 is two strided additions."""

    saves_inputs = False

    def __init__(self, axis: int, taps: tuple[_Tap, ...], size: int):
        self.axis, self.taps, self.size = axis, taps, size

    def forward(self, gy):
        xp, axis = get_array_module(gy), self.axis
        g = xp.zeros(gy.shape[:axis] + (self.size,) + gy.shape[axis + 1:], dtype=gy.dtype)
        lead = (slice(None),) * axis
        for tap in self.taps:
            p = gy if tap.weight is None else gy * _along(xp.asarray(tap.weight, dtype=gy.dtype), axis, gy.ndim)
            padded = None
            for source, target in tap.phases:
                if target is not None:  # a slice of outputs added to a slice of inputs
                    g[lead + (target,)] += p[lead + (source,)] if isinstance(source, slice) else \
                        xp.take(p, xp.asarray(source), axis)
                    continue
                if padded is None:  # p and one zero slot, read by the inputs the phase does not reach
                    padded = xp.concatenate([p, xp.zeros_like(p[lead + (slice(0, 1),)])], axis=axis)
                n = source.size
                g[lead + (slice(0, n),)] += xp.take(padded, xp.asarray(source), axis)
        return g

    def backward(self, gg):
        return Resample(self.axis, self.taps, self.size)(gg)


def _scale(size: int, out: int, scale: float | None, dtype: Any) -> Any:
    """PyTorch's compute_scales_value: 1/scale_factor when one was given, else in/out."""
    t = dtype.type
    return t(1.0 / scale) if scale is not None and scale > 0 else t(size) / t(out)


def _nearest_taps(size: int, out: int, scale: float | None, exact: bool) -> tuple[_Tap, ...] | None:
    if out == size and scale is None:  # in/out = 1 exactly: a copy (PyTorch skips it the same way)
        return None
    dst = np.arange(out, dtype=np.int64)
    s = _scale(size, out, scale, np.dtype(np.float32))
    if exact:  # floorf((o + 0.5) * scale): a double product rounded to float
        src = np.floor(((dst + 0.5) * np.float64(s)).astype(np.float32))
    else:
        src = np.floor(dst.astype(np.float32) * s)
    return (_Tap(np.minimum(src.astype(np.int64), size - 1), None),)


def _linear_taps(size: int, out: int, align_corners: bool, scale: float | None,
                 dtype: np.dtype) -> tuple[_Tap, ...] | None:
    """Indices i₀, i₁ and weights 1 − λ, λ along one dim, in PyTorch's opmath precision."""
    if out == size:
        return None
    opmath = np.dtype(np.float64 if dtype == np.float64 else np.float32)
    t = opmath.type
    if align_corners:
        ratio = t(size - 1) / t(out - 1) if out > 1 else t(0)
    else:
        ratio = _scale(size, out, scale, opmath)
    dst = np.arange(out).astype(opmath)
    src = ratio * dst if align_corners else np.maximum(ratio * (dst + t(0.5)) - t(0.5), t(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), size - 1)
    lam = np.clip(src - i0.astype(opmath), t(0), t(1))
    i1 = i0 + (i0 < size - 1)
    return _Tap(i0, (t(1) - lam).astype(dtype)), _Tap(i1, lam.astype(dtype))


def _sizes(input: Tensor, size: Any, scale_factor: Any, recompute: bool | None,
           who: _Who) -> tuple[tuple[int, ...], tuple[float | None, ...]]:
    """The output size and the scale factors the kernels use (None where the size decides)."""
    spatial = tuple(input.shape)[2:]
    k = len(spatial)
    if size is not None and scale_factor is not None:
        raise ValueError(f"{who}: only one of size or scale_factor should be defined")
    if size is None and scale_factor is None:
        raise ValueError(f"{who}: either size or scale_factor should be defined")
    if recompute and size is not None:
        raise ValueError(f"{who}: recompute_scale_factor is not meaningful with an explicit size")
    if size is not None:
        sizes = tuple(size) if isinstance(size, list | tuple) else (size,) * k
        if len(sizes) != k:
            raise ValueError(f"{who}: size {size!r} must give {k} spatial sizes for input {tuple(input.shape)}")
        try:
            out = tuple(operator.index(n) for n in sizes)
        except TypeError:
            raise TypeError(f"{who}: size must be an int or a tuple of {k} ints, got {size!r}") from None
        scales: tuple[float | None, ...] = (None,) * k
    else:
        factors = tuple(scale_factor) if isinstance(scale_factor, list | tuple) else (scale_factor,) * k
        if len(factors) != k:
            raise ValueError(f"{who}: scale_factor {scale_factor!r} must give {k} factors for input "
                             f"{tuple(input.shape)}")
        scales = tuple(float(f) for f in factors)
        out = tuple(int(n * f) for n, f in zip(spatial, scales))
        if recompute:
            scales = (None,) * k
    if min(out) <= 0:
        raise RuntimeError(f"{who}: input and output sizes should be greater than 0, got input {spatial} and "
                           f"output {out}")
    return out, scales


def interpolate(input: Tensor, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                align_corners: bool | None = None, recompute_scale_factor: bool | None = None,
                antialias: bool = False) -> Tensor:
    """Resize the spatial dims of an (N, C, L), (N, C, H, W) or (N, C, D, H, W) input to ``size``
    or by ``scale_factor`` (out = floor(in·scale_factor)), with PyTorch's index rules (see the
    module docstring). ``mode='area'`` is adaptive average pooling."""
    return resize(input, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias,
                  _Who("interpolate", mode=mode))


def resize(input: Tensor, size: Any, scale_factor: Any, mode: str, align_corners: bool | None,
           recompute_scale_factor: bool | None, antialias: bool, who: Any) -> Tensor:
    """``interpolate`` naming ``who`` (the function or the layer) in its errors."""
    if mode not in _MODES:
        raise NotImplementedError(f"{who}: mode must be one of {', '.join(_MODES)}, got {mode!r}")
    if mode in ("nearest", "nearest-exact", "area") and align_corners is not None:
        raise ValueError(f"{who}: align_corners option can only be set with the interpolating modes: "
                         "linear | bilinear | trilinear")
    if antialias:
        raise NotImplementedError(f"{who}: antialias=True is not supported")
    if not isinstance(input, Tensor):
        raise TypeError(f"{who}: expected a Tensor input, got {type(input).__name__}")
    if input.ndim not in (3, 4, 5):
        raise NotImplementedError(f"{who}: expected input (N, C, L), (N, C, H, W) or (N, C, D, H, W), got "
                                  f"{tuple(input.shape)}")
    if mode in _LINEAR and input.ndim != _LINEAR[mode]:
        raise NotImplementedError(f"{who}: got {input.ndim}-D input {tuple(input.shape)}, but mode {mode!r} needs "
                                  f"{_LINEAR[mode]}-D input")
    out, scales = _sizes(input, size, scale_factor, recompute_scale_factor, who)
    if mode == "area":
        return adaptive_average_pool(input, input.ndim - 2, out, who)
    if mode in _LINEAR and input.dtype.kind != "f":
        raise NotImplementedError(f"{who}: expected a floating-point input, got {input.dtype}")
    y = input
    for j, (n, o, s) in enumerate(zip(tuple(input.shape)[2:], out, scales)):
        if mode in _LINEAR:
            taps = _linear_taps(n, o, bool(align_corners), s, input.dtype)
        else:
            taps = _nearest_taps(n, o, s, exact=mode == "nearest-exact")
        if taps is not None:
            y = Resample(2 + j, taps, n)(y)
    return clone(input) if y is input else y


def upsample(input: Tensor, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
             align_corners: bool | None = None) -> Tensor:
    """The older name of ``interpolate`` (deprecated in PyTorch, kept for its users)."""
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input: Tensor, size: Any = None, scale_factor: Any = None) -> Tensor:
    """``interpolate(input, size, scale_factor, mode='nearest')``."""
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input: Tensor, size: Any = None, scale_factor: Any = None) -> Tensor:
    """``interpolate(input, size, scale_factor, mode='bilinear', align_corners=True)``, as PyTorch."""
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)
