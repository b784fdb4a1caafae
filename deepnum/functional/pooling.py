"""Pooling over sliding windows, as ``torch.nn.functional``: max, average and (deepnum's own) min
pooling in 1-D/2-D/3-D, adaptive average and max pooling.

Pooling reads the input through im2col windows (the notes' 004 method): the kernels in
``_windows.py`` take each kernel offset's column as a strided view of the padded input and reduce
over the window with whole-array passes; max keeps the arg-max, whose gradient is scattered back
(col2im, accumulating where windows overlap). PyTorch's exact rules are kept: padding at most half
the kernel, ceil mode's last window must start inside the input or its left padding, the
average's divisor for windows clipped by padding or ceil mode, adaptive bins
[floor(iL/out), ceil((i+1)L/out)). Inputs are (N, C, *spatial) or unbatched (C, *spatial).

Global pooling is adaptive pooling to size 1: ``adaptive_avg_pool2d(x, 1)`` averages each
channel's whole map (global average pooling), ``adaptive_max_pool2d(x, 1)`` takes its maximum.
"""
from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from deepnum.autograd.grad_mode import _GradMode
from deepnum.backend import get_array_module
from deepnum.functional._windows import AdaptiveMax, AvgPool, MaxPool, Windows, count_divisor, pool_out_size
from deepnum.functional.array import reshape
from deepnum.functional.linalg import matmul
from deepnum.tensor import Tensor

__all__ = [
    "max_pool1d", "max_pool2d", "max_pool3d", "min_pool1d", "min_pool2d", "min_pool3d",
    "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "adaptive_avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
]

_DEFAULTS = {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False, "count_include_pad": True,
             "divisor_override": None, "return_indices": False}
_SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}


class Who:
    """The op or layer named in error messages, with the arguments that differ from the defaults,
    e.g. ``MaxPool2d(kernel_size=2)``; formatted only when an error is raised."""

    __slots__ = ("name", "args")

    def __init__(self, name: str, **args: Any):
        self.name, self.args = name, args

    def __str__(self) -> str:
        kernel = self.args.get("kernel_size")
        shown = [f"{key}={value!r}" for key, value in self.args.items()
                 if key not in _DEFAULTS or (value != _DEFAULTS[key] and not (key == "stride" and value == kernel))]
        return f"{self.name}({', '.join(shown)})"


def _ints(who: Who, name: str, value: Any, k: int) -> tuple[int, ...]:
    """An int or a sequence of 1 or k ints, as k ints."""
    try:
        values = (operator.index(value),) if not isinstance(value, list | tuple) else tuple(map(operator.index, value))
    except TypeError:
        raise TypeError(f"{who}: {name} must be an int or a tuple of {k} ints, got {value!r}") from None
    if len(values) == 1:
        values *= k
    if len(values) != k:
        raise RuntimeError(f"{who}: {name} must be an int or a tuple of {k} ints, got {value!r}")
    return values


def _batched(who: Who, input: Tensor, k: int) -> tuple[Tensor, bool]:
    """The input as (N, C, *spatial), and whether it came with a batch dim."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{who}: expected a Tensor input, got {type(input).__name__}")
    dims = _SPATIAL[k]
    if input.ndim not in (k + 1, k + 2) or any(n == 0 for n in input.shape[-k - 1:]):
        raise RuntimeError(f"{who}: expected input (N, C, {dims}) or (C, {dims}) with non-zero C, {dims}, "
                           f"got {tuple(input.shape)}")
    if input.ndim == k + 2:
        return input, True
    return reshape(input, (1,) + tuple(input.shape)), False


def _unbatch(out: Tensor, batched: bool) -> Tensor:
    return out if batched else reshape(out, tuple(out.shape)[1:])


def _layout(who: Who, input: Tensor, k: int, kernel_size: Any, stride: Any, padding: Any,
             dilation: Any, ceil_mode: bool) -> Windows:
    """Check the pooling arguments against the input's shape and lay out the windows."""
    kernel = _ints(who, "kernel_size", kernel_size, k)
    strides = kernel if stride is None or (isinstance(stride, list | tuple) and not stride) else \
        _ints(who, "stride", stride, k)
    pads, dils = _ints(who, "padding", padding, k), _ints(who, "dilation", dilation, k)
    for name, values in (("kernel_size", kernel), ("stride", strides), ("dilation", dils)):
        if min(values) <= 0:
            raise RuntimeError(f"{who}: {name} must be positive, got {values}")
    if min(pads) < 0 or any(p > kk // 2 for p, kk in zip(pads, kernel)):
        raise RuntimeError(f"{who}: padding must be at least 0 and at most half the kernel size, got "
                           f"padding {pads} for kernel_size {kernel}")
    spatial = tuple(input.shape)[-k:]
    out = tuple(pool_out_size(n, kk, s, p, d, ceil_mode)
                for n, kk, s, p, d in zip(spatial, kernel, strides, pads, dils))
    if min(out) < 1:
        raise RuntimeError(f"{who}: the output size would be {out} (zero or less) for input "
                           f"{tuple(input.shape)}; the input is too small for the kernel")
    return Windows(spatial, kernel, strides, pads, dils, out)


def _needs_grad(input: Tensor) -> bool:
    return _GradMode.enabled and input.requires_grad


def extreme_pool(input: Tensor, k: int, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
                 ceil_mode: bool, return_indices: bool, largest: bool, who: Who) -> Any:
    """Max (``largest``) or min pooling; returns (values, int64 indices) if ``return_indices``."""
    x, batched = _batched(who, input, k)
    if x.dtype.kind not in "fiu":
        raise RuntimeError(f"{who}: expected a floating-point or integer input, got {x.dtype}")
    windows = _layout(who, input, k, kernel_size, stride, padding, dilation, ceil_mode)
    op = MaxPool(windows, largest, need_index=return_indices or _needs_grad(x))
    out = _unbatch(op(x), batched)
    if not return_indices:
        return out
    indices = Tensor._make(op.indices if batched else op.indices[0])
    return out, indices


def average_pool(input: Tensor, k: int, kernel_size: Any, stride: Any, padding: Any, ceil_mode: bool,
                 count_include_pad: bool, divisor_override: int | None, who: Who) -> Tensor:
    """Average pooling with PyTorch's divisor rules."""
    x, batched = _batched(who, input, k)
    if x.dtype.kind not in "fiu":
        raise RuntimeError(f"{who}: expected a floating-point or integer input, got {x.dtype}")
    windows = _layout(who, input, k, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None:
        if operator.index(divisor_override) == 0:
            raise RuntimeError(f"{who}: divisor_override must not be zero")
        divisor = operator.index(divisor_override)
    else:
        divisor = count_divisor(windows, count_include_pad)
    return _unbatch(AvgPool(windows, divisor)(x), batched)


def max_pool1d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """y[n, c, o] = max over a of x[n, c, o·s − p + a·d] (−inf padding); optionally the indices."""
    who = Who("max_pool1d", kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
              ceil_mode=ceil_mode)
    return extreme_pool(input, 1, kernel_size, stride, padding, dilation, ceil_mode, return_indices, True, who)


def max_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """2-D max pooling; ``return_indices`` gives the flat H·W index of each maximum."""
    who = Who("max_pool2d", kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
              ceil_mode=ceil_mode)
    return extreme_pool(input, 2, kernel_size, stride, padding, dilation, ceil_mode, return_indices, True, who)


def max_pool3d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """3-D max pooling; indices are flat over D·H·W."""
    who = Who("max_pool3d", kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
              ceil_mode=ceil_mode)
    return extreme_pool(input, 3, kernel_size, stride, padding, dilation, ceil_mode, return_indices, True, who)


def min_pool1d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """deepnum's min pooling (PyTorch has none): the window minimum, +inf padding. Equal to
    −max_pool1d(−x), indices included (the first minimum in window order)."""
    who = Who("min_pool1d", kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
              ceil_mode=ceil_mode)
    return extreme_pool(input, 1, kernel_size, stride, padding, dilation, ceil_mode, return_indices, False, who)


def min_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """deepnum's 2-D min pooling: −max_pool2d(−x), computed directly."""
    who = Who("min_pool2d", kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
              ceil_mode=ceil_mode)
    return extreme_pool(input, 2, kernel_size, stride, padding, dilation, ceil_mode, return_indices, False, who)


def min_pool3d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """deepnum's 3-D min pooling: −max_pool3d(−x), computed directly."""
    who = Who("min_pool3d", kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
              ceil_mode=ceil_mode)
    return extreme_pool(input, 3, kernel_size, stride, padding, dilation, ceil_mode, return_indices, False, who)


def avg_pool1d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """y[n, c, o] = Σ_a x[n, c, o·s − p + a] / divisor (zero padding)."""
    who = Who("avg_pool1d", kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
              count_include_pad=count_include_pad)
    return average_pool(input, 1, kernel_size, stride, padding, ceil_mode, count_include_pad, None, who)


def avg_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """2-D average pooling; the divisor is the window size clipped to the padded input, the count of
    input elements (``count_include_pad=False``) or ``divisor_override``."""
    who = Who("avg_pool2d", kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
              count_include_pad=count_include_pad, divisor_override=divisor_override)
    return average_pool(input, 2, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
                        who)


def avg_pool3d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """3-D average pooling, divisor rules as ``avg_pool2d``."""
    who = Who("avg_pool3d", kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
              count_include_pad=count_include_pad, divisor_override=divisor_override)
    return average_pool(input, 3, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
                        who)


# ----------------------------------------------------------------------------- adaptive pooling
def _output_size(who: Who, output_size: Any, spatial: tuple[int, ...]) -> tuple[int, ...]:
    """An int or a k-tuple whose None entries keep the input's size."""
    k = len(spatial)
    sizes = (output_size,) * k if not isinstance(output_size, list | tuple) else tuple(output_size)
    if len(sizes) != k:
        raise RuntimeError(f"{who}: output_size must be an int or a tuple of {k} ints or None, got {output_size!r}")
    try:
        out = tuple(n if o is None else operator.index(o) for o, n in zip(sizes, spatial))
    except TypeError:
        raise TypeError(f"{who}: output_size must be an int or a tuple of {k} ints or None, "
                        f"got {output_size!r}") from None
    if min(out) < 0:
        raise RuntimeError(f"{who}: output_size must not be negative, got {out}")
    return out


def _bins(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin i covers [floor(i·L/out), ceil((i+1)·L/out)): the (start, end) arrays."""
    i = np.arange(out, dtype=np.int64)
    return (i * size) // out, -((-(i + 1) * size) // out)


def _adaptive_input(who: Who, input: Tensor, k: int, output_size: Any) -> tuple[Tensor, bool, tuple[int, ...]]:
    x, batched = _batched(who, input, k)
    if x.dtype.kind != "f":
        raise NotImplementedError(f"{who}: expected a floating-point input, got {x.dtype}")
    return x, batched, _output_size(who, output_size, tuple(x.shape)[2:])


def adaptive_average_pool(input: Tensor, k: int, output_size: Any, who: Who) -> Tensor:
    """Adaptive average pooling. Where every bin has the same size (L divisible by out) it is plain
    average pooling with kernel = stride = L/out; otherwise each spatial dim in turn is multiplied by
    its (out × L) averaging matrix A[i, j] = 1/|bin i| for j in bin i (one batched matmul per dim)."""
    x, batched, out = _adaptive_input(who, input, k, output_size)
    spatial = tuple(x.shape)[2:]
    if all(o > 0 and n % o == 0 for n, o in zip(spatial, out)):
        kernel = tuple(n // o for n, o in zip(spatial, out))
        windows = Windows(spatial, kernel, kernel, (0,) * k, (1,) * k, out)
        return _unbatch(AvgPool(windows, math.prod(kernel))(x), batched)
    xp = get_array_module(x.data)
    y = x
    for j in range(k - 1, -1, -1):  # shape (N, C, L_1..L_j, out_{j+1}..out_k)
        start, end = _bins(spatial[j], out[j])
        cols = np.arange(spatial[j])
        weights = ((cols >= start[:, None]) & (cols < end[:, None])) / (end - start)[:, None]
        a = Tensor._make(xp.asarray(weights, dtype=x.dtype))
        tail = math.prod(out[j + 1:])
        lead = tuple(x.shape)[:2] + spatial[:j]
        if tail == 1:
            y = matmul(reshape(y, (math.prod(lead), spatial[j])), a.mT)
        else:
            y = matmul(a, reshape(y, (math.prod(lead), spatial[j], tail)))
        y = reshape(y, lead + out[j:])
    return _unbatch(y, batched)


def adaptive_extreme_pool(input: Tensor, k: int, output_size: Any, return_indices: bool, who: Who) -> Any:
    """Adaptive max pooling over the bins [floor(iL/out), ceil((i+1)L/out))."""
    x, batched, out = _adaptive_input(who, input, k, output_size)
    if min(out) < 1:
        raise RuntimeError(f"{who}: output_size must be positive, got {out}")
    spatial = tuple(x.shape)[2:]
    if all(n % o == 0 for n, o in zip(spatial, out)):  # equal bins: plain max pooling, kernel = stride = L/out
        kernel = tuple(n // o for n, o in zip(spatial, out))
        op = MaxPool(Windows(spatial, kernel, kernel, (0,) * k, (1,) * k, out), True,
                     need_index=return_indices or _needs_grad(x))
    else:
        op = AdaptiveMax(_bin_positions(spatial, out), need_index=return_indices or _needs_grad(x))
    y = _unbatch(op(x), batched)
    if not return_indices:
        return y
    return y, Tensor._make(op.indices if batched else op.indices[0])


def _bin_positions(spatial: tuple[int, ...], out: tuple[int, ...]) -> list[np.ndarray]:
    """Per dim, the (out, K) input positions of each bin, K the widest bin; narrower bins repeat
    their last position."""
    bins = []
    for n, o in zip(spatial, out):
        start, end = _bins(n, o)
        width = int((end - start).max())
        bins.append(np.minimum(start[:, None] + np.arange(width), end[:, None] - 1))
    return bins


def adaptive_avg_pool1d(input: Tensor, output_size: Any) -> Tensor:
    """Average over ``output_size`` bins of the length dim; bins [floor(iL/o), ceil((i+1)L/o))."""
    return adaptive_average_pool(input, 1, output_size, Who("adaptive_avg_pool1d", output_size=output_size))


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    """Average over an output_size grid of bins; ``output_size=1`` is global average pooling."""
    return adaptive_average_pool(input, 2, output_size, Who("adaptive_avg_pool2d", output_size=output_size))


def adaptive_avg_pool3d(input: Tensor, output_size: Any) -> Tensor:
    """3-D adaptive average pooling."""
    return adaptive_average_pool(input, 3, output_size, Who("adaptive_avg_pool3d", output_size=output_size))


def adaptive_max_pool1d(input: Tensor, output_size: Any, return_indices: bool = False) -> Any:
    """Maximum over ``output_size`` bins of the length dim, optionally with the indices."""
    return adaptive_extreme_pool(input, 1, output_size, return_indices,
                                 Who("adaptive_max_pool1d", output_size=output_size))


def adaptive_max_pool2d(input: Tensor, output_size: Any, return_indices: bool = False) -> Any:
    """Maximum over an output_size grid of bins; ``output_size=1`` is global max pooling."""
    return adaptive_extreme_pool(input, 2, output_size, return_indices,
                                 Who("adaptive_max_pool2d", output_size=output_size))


def adaptive_max_pool3d(input: Tensor, output_size: Any, return_indices: bool = False) -> Any:
    """3-D adaptive max pooling."""
    return adaptive_extreme_pool(input, 3, output_size, return_indices,
                                 Who("adaptive_max_pool3d", output_size=output_size))
