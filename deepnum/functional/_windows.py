"""The kernels behind pooling: sliding-window geometry and the Functions for max/min and average
pooling, adaptive max pooling, and the scatter/gather pair that routes a max's gradient.

im2col without the copy. Window ``o`` along a spatial dim covers input positions
``o·s − p + a·d`` for ``a = 0..k−1`` (PyTorch's layout). For a fixed kernel offset ``(a₁..a_k)``
the elements at that offset of every window form one strided slice of the padded input: column
``a`` of the im2col matrix, as a view. A reduction over the window axes is then K = Πk whole-array
ufunc passes over these columns (a documented loop over kernel offsets, not over positions), which
measured 3–6× faster than copying the (…, out, K) column matrix and reducing its short last axis.
The arg-max is found the same way: first the max, then one pass per offset (in reverse, so the
first maximum in window order wins, as in PyTorch) with branch-free integer arithmetic. When there
are few windows (global pooling: K large, N·C·out small) each pass would be mostly call overhead,
so the windows are copied into rows of K (im2col proper) and reduced along the row instead.
"""
from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from deepnum.autograd.function import Function
from deepnum.backend import get_array_module


def pool_out_size(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    """PyTorch's pooling_output_shape: floor (or ceil) of (L + 2p − d(k−1) − 1)/s, plus one; in ceil
    mode a last window that would start past the input and its left padding is dropped."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = span // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


class Windows:
    """The windows of one pooling op over the last k dims of an (N, C, *in_size) array."""

    def __init__(self, in_size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                 padding: tuple[int, ...], dilation: tuple[int, ...], out_size: tuple[int, ...]):
        self.in_size, self.kernel, self.stride = in_size, kernel, stride
        self.padding, self.dilation, self.out_size = padding, dilation, out_size
        # Right padding: enough for every window, also ceil mode's last one that overhangs the padding.
        self.after = tuple(max(0, (o - 1) * s + d * (k - 1) + 1 - p - n)
                           for n, k, s, p, d, o in zip(in_size, kernel, stride, padding, dilation, out_size))
        self.padded_size = tuple(p + n + a for p, n, a in zip(padding, in_size, self.after))

    @property
    def touches_padding(self) -> bool:
        return any(self.padding) or any(self.after)

    def pad(self, x: Any, value: Any) -> Any:
        """x with the spatial dims padded by ``value`` (x itself when no window needs padding), in
        x's memory layout (batch-last stays batch-last)."""
        if not self.touches_padding:
            return x
        xp = get_array_module(x)
        lead = tuple(x.shape[:x.ndim - len(self.kernel)])
        out = zeros_in_layout(xp, lead + self.padded_size, x.dtype, batch_last_layout(x))
        if value != 0:
            out.fill(value)
        out[(slice(None),) * len(lead) + tuple(slice(p, p + n) for p, n in zip(self.padding, self.in_size))] = x
        return out

    def crop(self, xpad: Any) -> Any:
        """The input region of a padded array (the inverse of ``pad``)."""
        lead = (slice(None),) * (xpad.ndim - len(self.kernel))
        return xpad[lead + tuple(slice(p, p + n) for p, n in zip(self.padding, self.in_size))]

    def view(self, xpad: Any) -> Any:
        """All windows as one strided view of shape (N, C, *out_size, *kernel) (no copy)."""
        xp, k = get_array_module(xpad), len(self.kernel)
        lead = xpad.strides[:-k]
        strides = lead + tuple(t * s for t, s in zip(xpad.strides[-k:], self.stride)) + \
            tuple(t * d for t, d in zip(xpad.strides[-k:], self.dilation))
        return xp.lib.stride_tricks.as_strided(xpad, xpad.shape[:-k] + self.out_size + self.kernel, strides)

    @property
    def overlapping(self) -> bool:
        """Whether an input element can lie in two windows."""
        return any(s < d * (k - 1) + 1 for k, s, d in zip(self.kernel, self.stride, self.dilation))

    def _grid(self, j: int, values: Any) -> Any:
        """A per-window quantity along spatial dim j, shaped to broadcast over (*out_size)."""
        return values.reshape((1,) * j + (-1,) + (1,) * (len(self.kernel) - j - 1))

    def index_parts(self) -> tuple[np.ndarray, np.ndarray]:
        """The flat input index (over the spatial dims, PyTorch's ``return_indices``) of window
        position ``o`` at kernel offset ``q`` is ``base[o] + table[q]``."""
        strides = [math.prod(self.in_size[j + 1:]) for j in range(len(self.kernel))]
        base = np.zeros(self.out_size, dtype=np.int64)
        for j, (o, s, p, st) in enumerate(zip(self.out_size, self.stride, self.padding, strides)):
            base = base + self._grid(j, (np.arange(o, dtype=np.int64) * s - p) * st)
        offsets = np.array(list(itertools.product(*(range(k) for k in self.kernel))), dtype=np.int64)
        table = (offsets * np.array(self.dilation, dtype=np.int64) * np.array(strides, dtype=np.int64)).sum(1)
        return base, table

    def first_valid(self) -> np.ndarray:
        """The flat kernel offset of each window's first element inside the input (not padding)."""
        q = np.zeros(self.out_size, dtype=np.int64)
        for j, (o, s, p, d, k) in enumerate(zip(self.out_size, self.stride, self.padding, self.dilation,
                                                self.kernel)):
            skip = -(-np.maximum(p - np.arange(o) * s, 0) // d)  # ceil(max(0, -start) / d)
            q = q * k + self._grid(j, skip)
        return q


def _small_int(count: int) -> np.dtype:
    return np.dtype(np.int8 if count <= 127 else np.int16 if count <= 32767 else np.int32)


def extreme_columns(columns: list[Any], largest: bool, need_arg: bool) -> tuple[Any, Any]:
    """Elementwise max (or min) over the columns, and the position of the first extreme among
    them (the last NaN where a window holds NaNs, as PyTorch's kernels pick)."""
    xp = get_array_module(columns[0])
    op = xp.maximum if largest else xp.minimum
    m = columns[0].copy(order="K")  # keeps the input's memory layout (a convolution's is batch-last)
    for c in columns[1:]:
        op(m, c, out=m)
    if not need_arg:
        return m, None
    dtype = _small_int(len(columns))
    arg = xp.zeros_like(m, dtype=dtype)
    hit, step = xp.empty_like(m, dtype=bool), xp.empty_like(m, dtype=dtype)
    for q in range(len(columns) - 1, -1, -1):  # arg ← q where column q attains the extreme
        xp.equal(columns[q], m, out=hit)
        xp.subtract(dtype.type(q), arg, out=step)
        xp.multiply(step, hit, out=step)
        xp.add(arg, step, out=arg)
    if m.dtype.kind == "f" and bool(xp.isnan(m).any()):
        for q, c in enumerate(columns):
            arg = xp.where(xp.isnan(c), dtype.type(q), arg)
    return m, arg


_FEW_WINDOWS_MAX, _FEW_WINDOWS_SUM = 16384, 4096  # measured crossovers of the two strategies


def _offsets(view: Any, k: int) -> list[Any]:
    """The columns of a (…, *out, *kernel) window view, one per kernel offset in window order."""
    return [view[(Ellipsis,) + q] for q in itertools.product(*(range(n) for n in view.shape[-k:]))]


def extreme_windows(view: Any, k: int, largest: bool, need_arg: bool) -> tuple[Any, Any]:
    """Max (min) over the trailing k window axes of ``view`` and the flat window offset of the
    first extreme (last NaN). Column passes, or rows of K when the windows are few."""
    xp = get_array_module(view)
    count = math.prod(view.shape[:-k])
    if count >= _FEW_WINDOWS_MAX or math.prod(view.shape[-k:]) == 1:
        return extreme_columns(_offsets(view, k), largest, need_arg)
    lead = view.ndim - k
    order = sorted(range(lead), key=lambda i: -abs(view.strides[i]))  # the window axes in memory order
    back = tuple(order.index(i) for i in range(lead))  # the results keep the input's memory layout
    rows = view.transpose(order + list(range(lead, view.ndim)))
    rows = rows.reshape(rows.shape[:lead] + (math.prod(view.shape[-k:]),))
    if not need_arg:
        return (rows.max(-1) if largest else rows.min(-1)).transpose(back), None
    arg = rows.argmax(-1) if largest else rows.argmin(-1)  # the first extreme, or the first NaN
    m = xp.take_along_axis(rows, arg[..., None], -1)[..., 0]
    if m.dtype.kind == "f" and bool(xp.isnan(m).any()):
        last = rows.shape[-1] - 1 - xp.isnan(rows[..., ::-1]).argmax(-1)
        arg = xp.where(xp.isnan(m), last, arg)
    return m.transpose(back), arg.transpose(back)


def window_sum(view: Any, k: int, dtype: np.dtype) -> Any:
    """Σ over the trailing k window axes, accumulated in ``dtype`` (row by row when windows are few)."""
    xp = get_array_module(view)
    if math.prod(view.shape[:-k]) < _FEW_WINDOWS_SUM:
        return view.sum(axis=tuple(range(-k, 0)), dtype=dtype)
    cols = _offsets(view, k)
    acc = cols[0].astype(dtype, copy=True)
    for c in cols[1:]:
        xp.add(acc, c, out=acc)
    return acc


def fill_value(dtype: np.dtype, largest: bool) -> Any:
    """The padding that never wins a max (min): −inf (+inf), or the integer type's extreme."""
    if dtype.kind == "f":
        return -np.inf if largest else np.inf
    if dtype.kind == "b":
        return not largest
    info = np.iinfo(dtype)
    return info.min if largest else info.max


def _add_at(out: Any, index: Any, values: Any) -> None:
    """out[index] += values with repeated indices accumulating (``ufunc.at``; cupyx on CuPy)."""
    xp = get_array_module(out)
    if xp is np:
        np.add.at(out, index, values)
    else:  # pragma: no cover - needs CuPy
        import cupyx

        cupyx.scatter_add(out, index, values)


class ScatterToInput(Function):
    """The gradient of picking input elements: g_x[index[o]] += g_y[o] over flat input positions
    (col2im for a max: each window's gradient goes to its arg-max, adding up where windows share
    it). Its own gradient is ``GatherFromInput``, so double backward works."""

    saves_inputs = False

    def __init__(self, index: Any, in_shape: tuple[int, ...]):
        self.index, self.in_shape = index, in_shape

    def forward(self, gy):
        out = get_array_module(gy).zeros(math.prod(self.in_shape), dtype=gy.dtype)
        _add_at(out, self.index.reshape(-1), gy.reshape(-1))
        return out.reshape(self.in_shape)

    def backward(self, gg):
        return GatherFromInput(self.index, self.in_shape)(gg)


class GatherFromInput(Function):
    """y[o] = x.flat[index[o]]: the adjoint of ``ScatterToInput``."""

    saves_inputs = False

    def __init__(self, index: Any, in_shape: tuple[int, ...]):
        self.index, self.in_shape = index, in_shape

    def forward(self, x):
        return get_array_module(x).take(x.reshape(-1), self.index)

    def backward(self, gy):
        return ScatterToInput(self.index, self.in_shape)(gy)


class _PicksInput(Function):
    """An op whose every output is one input element (max, min): ``self.indices`` holds, per
    (n, c) plane, the flat spatial index of the element picked; the backward scatters to it."""

    saves_inputs = False
    indices: Any = None

    def flat_index(self) -> Any:
        xp = get_array_module(self.indices)
        n, c = self.in_shape[:2]
        planes = xp.arange(n * c, dtype=np.int64).reshape((n, c) + (1,) * (self.indices.ndim - 2))
        return self.indices + planes * math.prod(self.in_shape[2:])

    def backward(self, gy):
        return ScatterToInput(self.flat_index(), self.in_shape)(gy)


class MaxPool(Function):
    """y = max over each window of x (min when ``largest`` is False, deepnum's min pooling):
    padding is −inf (+inf), so it never wins. The kernel offset of the first maximum in window order
    is kept (``arg``) for the backward and for ``return_indices``. A window whose maximum is the
    padding value itself (all of its input elements are −inf) points at its first input element,
    as PyTorch. Backward: ``ScatterToWindows`` (col2im of the gradient through the arg-max masks)."""

    saves_inputs = False

    def __init__(self, windows: Windows, largest: bool, need_index: bool):
        self.windows, self.largest, self.need_index = windows, largest, need_index

    def forward(self, x):
        xp, win = get_array_module(x), self.windows
        self.in_shape, self.batch_last = x.shape, batch_last_layout(x)
        fill = fill_value(x.dtype, self.largest)
        m, arg = extreme_windows(win.view(win.pad(x, fill)), len(win.kernel), self.largest, self.need_index)
        if arg is not None and win.touches_padding:
            on_pad = m == fill
            if bool(on_pad.any()):
                arg = xp.where(on_pad, xp.asarray(win.first_valid()).astype(arg.dtype), arg)
        self.arg = arg
        return m

    @property
    def indices(self) -> Any:
        """PyTorch's ``return_indices``: the flat spatial index of each window's maximum."""
        xp = get_array_module(self.arg)
        base, table = self.windows.index_parts()
        return xp.asarray(table)[self.arg] + xp.asarray(base)

    def backward(self, gy):
        return ScatterToWindows(self.windows, self.arg, self.in_shape, self.batch_last)(gy)


def batch_last_layout(a: Any) -> bool:
    """Whether an (N, C, *S) array is stored batch-last, (C, *S, N) contiguous (a convolution's output)."""
    return a.ndim >= 3 and a.transpose(tuple(range(1, a.ndim)) + (0,)).flags.c_contiguous


def zeros_in_layout(xp: Any, shape: tuple[int, ...], dtype: Any, batch_last: bool) -> Any:
    """Zeros of the (N, C, *S) ``shape``, stored batch-last when ``batch_last``."""
    if not batch_last:
        return xp.zeros(shape, dtype=dtype)
    z = xp.zeros(tuple(shape[1:]) + tuple(shape[:1]), dtype=dtype)
    return z.transpose((z.ndim - 1,) + tuple(range(z.ndim - 1)))


class ScatterToWindows(Function):
    """The gradient of a max over windows: g_x = Σ_q (window column q of g_x) += g_y·[arg = q], one
    masked strided add per kernel offset q (col2im through the arg-max masks; overlapping windows
    accumulate, the padding is cropped). No per-element scatter. Its adjoint is ``GatherFromWindows``."""

    saves_inputs = False

    def __init__(self, windows: Windows, arg: Any, in_shape: tuple[int, ...], batch_last: bool):
        self.windows, self.arg, self.in_shape, self.batch_last = windows, arg, in_shape, batch_last

    def forward(self, gy):
        xp, win = get_array_module(gy), self.windows
        shape = tuple(self.in_shape[:len(self.in_shape) - len(win.kernel)]) + win.padded_size
        gpad = zeros_in_layout(xp, shape, gy.dtype, self.batch_last)
        for q, col in enumerate(_offsets(win.view(gpad), len(win.kernel))):
            col += gy * (self.arg == q)
        return win.crop(gpad)

    def backward(self, gg):
        return GatherFromWindows(self.windows, self.arg, self.in_shape, self.batch_last)(gg)


class GatherFromWindows(Function):
    """y = Σ_q (window column q of x)·[arg = q]: each window's element at its arg-max (the adjoint
    of ``ScatterToWindows``)."""

    saves_inputs = False

    def __init__(self, windows: Windows, arg: Any, in_shape: tuple[int, ...], batch_last: bool):
        self.windows, self.arg, self.in_shape, self.batch_last = windows, arg, in_shape, batch_last

    def forward(self, x):
        xp, win = get_array_module(x), self.windows
        out = xp.zeros_like(self.arg, dtype=x.dtype)
        for q, col in enumerate(_offsets(win.view(win.pad(x, 0)), len(win.kernel))):
            out += col * (self.arg == q)
        return out

    def backward(self, gy):
        return ScatterToWindows(self.windows, self.arg, self.in_shape, self.batch_last)(gy)


class AdaptiveMax(_PicksInput):
    """Adaptive max pooling: bin i along a dim of size L covers [floor(iL/out), ceil((i+1)L/out)).
    Bins are gathered into (…, out, K) windows with K the widest bin; narrower bins repeat their last
    element, which changes neither the max nor the first position attaining it."""

    def __init__(self, bins: list[np.ndarray], need_index: bool):
        self.bins, self.need_index = bins, need_index  # bins[j]: (out_j, K_j) input positions

    def forward(self, x):
        xp, k = get_array_module(x), len(self.bins)
        self.in_shape = x.shape
        windows = x
        for j, b in enumerate(self.bins):  # gather the bins dim by dim: (N, C, o1, K1, …, ok, Kk)
            windows = xp.take(windows, xp.asarray(b.reshape(-1)), axis=2 + 2 * j)
            windows = windows.reshape(windows.shape[:2 + 2 * j] + b.shape + windows.shape[3 + 2 * j:])
        order = (0, 1) + tuple(range(2, 2 + 2 * k, 2)) + tuple(range(3, 3 + 2 * k, 2))
        m, arg = extreme_windows(windows.transpose(order), k, True, self.need_index)
        if arg is not None:
            self.indices = self._spatial_index(arg.astype(np.int64), xp)
        return m

    def _spatial_index(self, arg: Any, xp: Any) -> Any:
        k, sizes = len(self.bins), self.in_shape[2:]
        widths = [b.shape[1] for b in self.bins]
        total = 0
        for j, b in enumerate(self.bins):
            a = (arg // math.prod(widths[j + 1:])) % widths[j]
            rows = xp.arange(b.shape[0]).reshape((1, 1) + (1,) * j + (-1,) + (1,) * (k - j - 1))
            total = total + xp.asarray(b)[rows, a] * math.prod(sizes[j + 1:])
        return total


class AvgPool(Function):
    """y = (Σ over the window of x) / divisor, the divisor following PyTorch's rules (window size,
    clipped to the padded input; or the count of input elements; or ``divisor_override``). Integer
    inputs are summed in int64 and divided rounding toward zero, as PyTorch. Linear, so its
    gradient is the adjoint ``AvgPoolAdjoint`` and that one's is ``AvgPool`` again."""

    saves_inputs = False

    def __init__(self, windows: Windows, divisor: Any):
        self.windows, self.divisor = windows, divisor

    def forward(self, x):
        xp, win = get_array_module(x), self.windows
        integer = x.dtype.kind not in "fc"
        acc = window_sum(win.view(win.pad(x, 0)), len(win.kernel), np.dtype(np.int64) if integer else x.dtype)
        if integer:
            div = xp.asarray(self.divisor, dtype=np.int64)
            q = xp.abs(acc) // xp.abs(div)
            return (q * xp.sign(acc) * xp.sign(div)).astype(x.dtype)
        xp.divide(acc, xp.asarray(self.divisor, dtype=x.dtype), out=acc)
        return acc

    def backward(self, gy):
        return AvgPoolAdjoint(self.windows, self.divisor)(gy)


class AvgPoolAdjoint(Function):
    """col2im of gy / divisor: every window adds its share to each of its elements, one strided
    slice per kernel offset; overlapping windows accumulate. Then the padding is cropped off."""

    saves_inputs = False

    def __init__(self, windows: Windows, divisor: Any):
        self.windows, self.divisor = windows, divisor

    def forward(self, gy):
        xp, win = get_array_module(gy), self.windows
        share = gy / xp.asarray(self.divisor, dtype=gy.dtype)
        gpad = xp.zeros(gy.shape[:2] + win.padded_size, dtype=gy.dtype)
        if win.overlapping:  # one strided slice per kernel offset, adding up where windows overlap
            for col in _offsets(win.view(gpad), len(win.kernel)):
                xp.add(col, share, out=col)
        else:  # disjoint windows: one broadcast write through the window view
            win.view(gpad)[...] = share.reshape(share.shape + (1,) * len(win.kernel))
        return win.crop(gpad)

    def backward(self, gg):
        return AvgPool(self.windows, self.divisor)(gg)


def count_divisor(win: Windows, count_include_pad: bool) -> Any:
    """PyTorch's avg-pool divisor per window: the window clipped to the padded input
    (count_include_pad) or to the input itself; it factorises over the spatial dims."""
    div = np.ones((), dtype=np.int64)
    for j, (n, k, s, p, o) in enumerate(zip(win.in_size, win.kernel, win.stride, win.padding, win.out_size)):
        start = np.arange(o, dtype=np.int64) * s - p
        end = np.minimum(start + k, n + p)
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, n)
        div = div * win._grid(j, end - start)
    first = int(div.reshape(-1)[0]) if div.size else 1
    return first if bool((div == first).all()) else div
