"""The convolution kernels (im2col / col2im) and the three differentiable ops built on them.

A convolution maps x (N, C, *size) to y (N, O, *out) with a weight w (O, C/G, *kernel). With the
zero-padded input xp, stride S, dilation D and G groups (one spatial dim shown):

    y[n, o, i] = Σ_{c in o's group} Σ_k w[o, c, k] · xp[n, c, i·S + k·D]

**im2col** turns this into a matrix product: copy every window of xp into a "columns" matrix
(C/G·K rows per group, one column per output position and sample; K = ∏kernel), then y = w @ columns
with w reshaped to (G, O/G, C/G·K): ONE matmul per group for the whole batch.

**Batch-last memory layout.** The kernels work on arrays laid out (C, *spatial, N), the batch
innermost, and a convolution's output Tensor is the (N, O, *out) view of such an (O, *out, N)
array (``batch_first``; PyTorch's "memory formats" are the same idea: the shape and semantics are
those of NCHW, only the strides differ). Then

- ``windows`` is an ``as_strided`` view (C, *kernel, *out, N) of the padded input, and copying it
  into the columns moves runs of ∏out[-1]·N contiguous elements (a whole output row of every
  sample at unit stride) — no per-sample short copies, and no transposes;
- the matmul (O, C·K) @ (C·K, ∏out·N) writes y directly in its final layout (O, *out, N);
- batch norm's per-channel statistics are sums over contiguous rows, ReLU and residual additions
  keep the layout (NumPy's ufuncs follow the memory order of their inputs), and the next
  convolution reads its input without a copy.

An input in any other layout (the user's NCHW batch) is read through a transposed view; the copy
into the padded columns is then the only transpose.

**Tiles (CPU).** The columns are K times larger than the input, so on the CPU they are made in tiles
of output rows whose columns take about ``TILE_BYTES``, one matmul per tile written into its rows
of y. The tile buffer is a work array kept between calls (``_fused_runtime.scratch``): a fresh
multi-megabyte array costs a page fault per 4 kB page on first touch, which measured several times
the cost of the copy itself inside a training step. The weight gradient makes the columns again
rather than keeping K times the input alive from forward to backward.

**col2im** is the adjoint: column gradients wᵀ @ gy are added back where their windows came from,
one strided block-add per kernel offset (overlapping windows accumulate); positions that fall in
the padding are skipped (the adjoint of zero-padding is cropping).

**Fast path.** 3×3 stride-1 convolutions with at least ``_conv_winograd.MIN_CHANNELS`` channels (the
bulk of a ResNet) use Winograd's F(2×2, 3×3) instead (``_conv_winograd``: 16 GEMMs with 4/9 of the
multiply-adds); their input gradient is the same kind of convolution with the flipped kernel.

Three ``Function``s close under differentiation, so gradients of any order exist:

- ``Convolution``      y = conv(x, w) (+ b)
- ``ConvTranspose``    x = conv_transpose(y, w), the adjoint of conv(·, w): ⟨conv(x, w), y⟩ = ⟨x, conv_transpose(y, w)⟩
- ``ConvWeightGrad``   gw = Σ_{n,i} gy ⊗ window_i(x), the adjoint of conv(x, ·) in w

The backward of each is made of the other two (plus a sum for the bias): conv's input gradient is
conv_transpose and conv_transpose's is conv, so double backward works for both paths.
"""
from __future__ import annotations

import contextlib
import itertools
import math
from typing import Any

from deepnum.autograd.function import Function
from deepnum.backend import get_array_module
from deepnum.functional import _conv_winograd as winograd
from deepnum.functional._fused_runtime import cpu_threads, parallel, scratch, workers
from deepnum.functional._half import gemm, is_host_half
from deepnum.functional.reduction import sum as _sum
from deepnum.tensor import Tensor

_ALL = slice(None)
TILE_BYTES = 2 << 20  # CPU: columns per tile of output rows, all threads together; None: everything at once


class ConvGeometry:
    """Every size of one convolution x (N, C, *size) → y (N, O, *out) with per-dim kernel, stride,
    dilation and (possibly asymmetric) padding ``lo``/``hi`` (negative: cropped). By default each
    output size is ⌊(size + lo + hi − D·(K−1) − 1)/S⌋ + 1; a transposed conv may ask for fewer
    (``out``), which happens when its output_padding is at least the stride."""

    def __init__(self, size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                 dilation: tuple[int, ...], lo: tuple[int, ...], hi: tuple[int, ...], groups: int,
                 out: tuple[int, ...] | None = None) -> None:
        self.size, self.kernel, self.stride, self.dilation = size, kernel, stride, dilation
        self.lo, self.hi, self.groups = lo, hi, groups
        self.padded = tuple(s + a + b for s, a, b in zip(size, lo, hi))
        natural = tuple((p - d * (k - 1) - 1) // st + 1
                        for p, k, st, d in zip(self.padded, kernel, stride, dilation))
        self.out = natural if out is None else tuple(out)

    @property
    def spatial_axes(self) -> tuple[int, ...]:
        return tuple(range(2, 2 + len(self.size)))

    def winograd(self, channels: int, out_channels: int) -> bool:
        """Whether the F(2×2, 3×3) fast path computes this convolution (see ``_conv_winograd``)."""
        return (self.out == tuple(p - 2 for p in self.padded)
                and winograd.applies(self.kernel, self.stride, self.dilation, self.groups, self.lo, self.hi,
                                     channels, out_channels))


def _winograd(geom: ConvGeometry, a: Any, channels: int, out_channels: int) -> bool:
    """Whether the Winograd fast path computes this convolution: float32/float64 NumPy arrays only (on
    CuPy the single im2col GEMM is the path: one large kernel instead of many small ones)."""
    return (get_array_module(a).__name__ == "numpy" and not is_host_half(a)
            and geom.winograd(channels, out_channels))


def _threads(a: Any) -> Any:
    """The op's CPU thread budget (``cpu_threads``) for NumPy arrays; nothing to set up for CuPy's."""
    return cpu_threads() if get_array_module(a).__name__ == "numpy" else contextlib.nullcontext()


def batch_last(a: Any) -> Any:
    """(N, C, *S) → (C, *S, N): a view, contiguous when ``a`` is a convolution's output."""
    return a.transpose(tuple(range(1, a.ndim)) + (0,))


def batch_first(a: Any) -> Any:
    """(C, *S, N) → (N, C, *S), the view that a batch-last array is exposed as."""
    return a.transpose((a.ndim - 1,) + tuple(range(a.ndim - 1)))


def _contiguous(a: Any) -> Any:
    return get_array_module(a).ascontiguousarray(a)


def _pad(a: Any, lo: tuple[int, ...], hi: tuple[int, ...]) -> Any:
    """Zero-pad the spatial dims of a batch-last ``a`` (C, *S, N) by lo/hi; negative widths crop.
    Returns ``a`` itself when nothing changes, a view when it only crops, and otherwise a work
    buffer (``scratch``: valid until the next call) whose border is zeroed."""
    if not any(lo) and not any(hi):
        return a
    spatial = a.shape[1:-1]
    a = a[(_ALL,) + tuple(slice(max(-b, 0), n - max(-e, 0)) for n, b, e in zip(spatial, lo, hi)) + (_ALL,)]
    if all(b <= 0 and e <= 0 for b, e in zip(lo, hi)):
        return a
    xp = get_array_module(a)
    lo, hi = tuple(max(b, 0) for b in lo), tuple(max(e, 0) for e in hi)
    shape = tuple(n + b + e for n, b, e in zip(a.shape[1:-1], lo, hi))
    out = scratch("input", (a.shape[0],) + shape + (a.shape[-1],), a.dtype, xp)
    for j, (b, e, n) in enumerate(zip(lo, hi, shape)):
        lead = (_ALL,) * (1 + j)
        out[lead + (slice(0, b),)] = 0
        out[lead + (slice(n - e, n),)] = 0
    out[(_ALL,) + tuple(slice(b, b + n) for n, b in zip(a.shape[1:-1], lo)) + (_ALL,)] = a
    return out


def windows(xpad: Any, geom: ConvGeometry) -> Any:
    """Every window of the padded batch-last input (C, *padded, N) as an ``as_strided`` view
    (C, *kernel, *out, N), no copy: strides are the input's times D on the kernel axes and times S
    on the output axes."""
    xp = get_array_module(xpad)
    steps = xpad.strides[1:-1]
    strides = ((xpad.strides[0],) + tuple(s * d for s, d in zip(steps, geom.dilation))
               + tuple(s * st for s, st in zip(steps, geom.stride)) + (xpad.strides[-1],))
    shape = (xpad.shape[0],) + geom.kernel + geom.out + (xpad.shape[-1],)
    return xp.lib.stride_tricks.as_strided(xpad, shape, strides)


def _tile(xp: Any, n: int, unit_bytes: int) -> int:
    """Units (output rows) per tile: all of them on the GPU or when TILE_BYTES is None."""
    if TILE_BYTES is None or xp.__name__ != "numpy":
        return max(n, 1)
    return max(1, min(n, TILE_BYTES // max(unit_bytes, 1)))


def _row_tiles(xp: Any, geom: ConvGeometry, row_bytes: int) -> list[slice]:
    """Tiles of output rows: each thread of the op works on one tile at a time, so the columns in
    flight take about ``TILE_BYTES`` together."""
    rows = geom.out[0]
    step = _tile(xp, rows, row_bytes * workers())
    return [slice(r, min(r + step, rows)) for r in range(0, rows, step)]


def im2col_view(x: Any, geom: ConvGeometry) -> Any:
    """Every window of the padded batch-last x (C, *size, N), as the view (C, *kernel, *out, N)
    (``windows``); an x in another layout (an NCHW batch) is gathered batch-last once first, rather
    than once per kernel offset."""
    xp = get_array_module(x)
    if not x.flags.c_contiguous and math.prod(geom.kernel) > 1:
        gathered = scratch("input2", x.shape, x.dtype, xp)
        xp.copyto(gathered, x)
        x = gathered
    return windows(_pad(x, geom.lo, geom.hi), geom)


def row_tiles(view: Any, geom: ConvGeometry) -> list[slice]:
    """Tiles of output rows whose columns take about ``TILE_BYTES``."""
    xp = get_array_module(view)
    c, n, itemsize = view.shape[0], view.shape[-1], view.itemsize
    return _row_tiles(xp, geom, c * math.prod(geom.kernel) * math.prod(geom.out[1:]) * n * itemsize)


def im2col(view: Any, geom: ConvGeometry, rows: slice) -> Any:
    """The columns (G, C/G·∏kernel, rows·∏out[1:]·N) of the output rows ``rows``: a copy of the
    window view, channel-major, so that the tile is ONE matrix product per group with the weight
    (O/G, C/G·∏kernel). They live in this thread's work buffer, which the next call overwrites."""
    xp = get_array_module(view)
    c, n, nk = view.shape[0], view.shape[-1], len(geom.kernel)
    m = rows.stop - rows.start
    shape = (c,) + geom.kernel + (m,) + geom.out[1:] + (n,)
    cols = scratch("columns", shape, view.dtype, xp)
    xp.copyto(cols, view[(_ALL,) * (1 + nk) + (rows,)])
    return cols.reshape(geom.groups, (c // geom.groups) * math.prod(geom.kernel), m * math.prod(geom.out[1:]) * n)


def _by_rows(a: Any, g: int, rows: slice) -> Any:
    """The output rows ``rows`` of a contiguous batch-last (O, *out, N) array as (G, O/G, rows·rest): a view."""
    grouped = a.reshape((g, a.shape[0] // g, a.shape[1], -1))[:, :, rows]
    return grouped.reshape(grouped.shape[:2] + (-1,))


def _bmm(a: Any, b: Any, out: Any = None) -> Any:
    """Batched a @ b. When the contracted dim has length 1 (the columns of a depthwise transposed
    conv) it is a batch of outer products: a broadcast product beats thousands of tiny BLAS calls."""
    xp = get_array_module(a)
    if a.shape[-1] == 1:
        return xp.multiply(a, b, out=out)
    return gemm(a, b, out=out)


def conv_forward(x: Any, w: Any, geom: ConvGeometry, b: Any = None) -> Any:
    """y = w ⋆ x (+ b) for x (N, C, *size) in any layout: per tile of output rows ONE matmul per
    group, (G, O/G, C/G·K) @ (G, C/G·K, rows·L) → (G, O/G, rows·L), written straight into its rows
    of y (O, *out, N) (the tiles spread over the op's threads). Returns y batch-last."""
    xp = get_array_module(x)
    xb = batch_last(x)
    o, g = w.shape[0], geom.groups
    if _winograd(geom, x, x.shape[1], o):
        return winograd.conv3x3(xb, winograd.weight_transform(w), geom.lo, geom.hi, b)
    wm = w.reshape(g, o // g, -1)
    y = xp.empty((o,) + geom.out + (x.shape[0],), dtype=x.dtype)
    view = im2col_view(xb, geom)
    parallel(row_tiles(view, geom), lambda rows: _bmm(wm, im2col(view, geom, rows), out=_by_rows(y, g, rows)))
    if b is not None:
        y += b.reshape((-1,) + (1,) * (y.ndim - 1))
    return y


def _valid(count: int, start: int, step: int, size: int) -> tuple[int, int]:
    """The range [a, b) of window indices i < count whose position start + i·step lies in [0, size)."""
    a = (-start + step - 1) // step if start < 0 else 0
    b = min(count, (size - 1 - start) // step + 1) if start <= size - 1 else 0
    return a, max(a, b)


def col2im(blocks: Any, geom: ConvGeometry, image: Any, rows: slice) -> None:
    """The adjoint of im2col for the output rows ``rows``: add each column entry back where its
    window took it from, into the batch-last, unpadded ``image`` (C, *size, N). One strided
    block-add per kernel offset; window positions in the padding are skipped (cropping)."""
    first = rows.start
    counts = (rows.stop - rows.start,) + geom.out[1:]
    for offset in itertools.product(*(range(k) for k in geom.kernel)):
        src, dst = [], []
        for j, (q, d, st, lo, size, cnt) in enumerate(zip(offset, geom.dilation, geom.stride, geom.lo, geom.size,
                                                          counts)):
            start = q * d - lo + (first * st if j == 0 else 0)
            a, b = _valid(cnt, start, st, size)
            src.append(slice(a, b))
            if b == a:
                break
            dst.append(slice(start + a * st, start + (b - 1) * st + 1, st))
        else:
            target = image[(_ALL,) + tuple(dst) + (_ALL,)]
            target += blocks[(_ALL,) + offset + tuple(src) + (_ALL,)]


def conv_transpose_forward(y: Any, w: Any, geom: ConvGeometry) -> Any:
    """x = convᵀ(y, w) (N, O, *out) → (N, C, *size) batch-last, the adjoint of conv_forward in x:
    per tile of y's rows, columns = wᵀ @ y, (G, C/G·K, O/G) @ (G, O/G, rows·L), one matmul per
    group, then col2im into x. At unit stride with a 3×3 kernel it is the Winograd convolution of y
    (padded by 2 − P) with the flipped kernel: the same sums, no scatter."""
    xp = get_array_module(y)
    n, o, g = y.shape[0], y.shape[1], geom.groups
    channels = w.shape[1] * g
    if _winograd(geom, y, channels, o):
        lo, hi = tuple(2 - p for p in geom.lo), tuple(2 - p for p in geom.hi)
        return winograd.conv3x3(batch_last(y), winograd.weight_transform(winograd.flipped(w)), lo, hi)
    yb = _contiguous(batch_last(y))
    wt = w.reshape(g, o // g, -1).swapaxes(1, 2)
    x = xp.zeros((channels,) + geom.size + (n,), dtype=y.dtype)
    k, rest = math.prod(geom.kernel), math.prod(geom.out[1:]) * n
    tiles = _row_tiles(xp, geom, channels * k * rest * y.itemsize)
    buffer = scratch("columns", (channels * k * (tiles[0].stop - tiles[0].start) * rest,), y.dtype, xp)
    for rows in tiles:
        m = rows.stop - rows.start
        cols = buffer[:channels * k * m * rest].reshape(g, -1, m * rest)
        _bmm(wt, _by_rows(yb, g, rows), out=cols)
        col2im(cols.reshape((channels,) + geom.kernel + (m,) + geom.out[1:] + (n,)), geom, x, rows)
    return x


def weight_grad(gy: Any, x: Any, geom: ConvGeometry) -> Any:
    """gw = Σ_{n,i} gy[n, :, i] ⊗ columns[:, n, i]: per tile ONE matmul per group,
    (G, O/G, rows·L) @ (G, rows·L, C/G·K), summed over the tiles (the columns are made again
    rather than kept from the forward pass: they are K times the input)."""
    o, g = gy.shape[1], geom.groups
    if _winograd(geom, x, x.shape[1], o):
        return winograd.weight_grad3x3(batch_last(gy), batch_last(x), geom.lo)
    gyb = _contiguous(batch_last(gy))
    view = im2col_view(batch_last(x), geom)
    parts = parallel(row_tiles(view, geom), lambda rows: _bmm(
        _by_rows(gyb, g, rows), im2col(view, geom, rows).swapaxes(-1, -2)))
    return sum(parts[1:], parts[0]).reshape((o, x.shape[1] // g) + geom.kernel)


def _bias_grad(g: Tensor, geom: ConvGeometry) -> Tensor:
    return _sum(g, (0,) + geom.spatial_axes)


class Convolution(Function):
    """y = conv(x, w) + b by im2col and a matmul per tile (see the module docstring); y is the
    (N, O, *out) view of a batch-last array. Backward: gx = conv_transpose(gy, w),
    gw = ConvWeightGrad(gy, x), gb = Σ gy over batch and space."""

    def __init__(self, geom: ConvGeometry) -> None:
        self.geom = geom

    def forward(self, x, w, b=None):
        with _threads(x):
            return batch_first(conv_forward(x, w, self.geom, b))

    def backward(self, gy: Tensor):
        x, w = self.inputs[:2]
        need = self.needs_input_grad
        gx = ConvTranspose(self.geom)(gy, w) if need[0] else None
        gw = ConvWeightGrad(self.geom)(gy, x) if need[1] else None
        if len(need) == 2:
            return gx, gw
        return gx, gw, (_bias_grad(gy, self.geom) if need[2] else None)


class ConvTranspose(Function):
    """x = conv_transpose(y, w) + b: the adjoint of conv(·, w), computed by col2im (or, at stride
    1, by the equivalent conv). Backward: gy = conv(gx, w), gw = ConvWeightGrad(y, gx), gb = Σ gx."""

    def __init__(self, geom: ConvGeometry) -> None:
        self.geom = geom

    def forward(self, y, w, b=None):
        with _threads(y):
            x = conv_transpose_forward(y, w, self.geom)
        if b is not None:
            x += b.reshape((-1,) + (1,) * (x.ndim - 1))
        return batch_first(x)

    def backward(self, gx: Tensor):
        y, w = self.inputs[:2]
        need = self.needs_input_grad
        gy = Convolution(self.geom)(gx, w) if need[0] else None
        gw = ConvWeightGrad(self.geom)(y, gx) if need[1] else None
        if len(need) == 2:
            return gy, gw
        return gy, gw, (_bias_grad(gx, self.geom) if need[2] else None)


class ConvWeightGrad(Function):
    """gw = ∂⟨conv(x, w), gy⟩/∂w = Σ_{n,i} gy[n, :, i] ⊗ window_i(x[n]), the adjoint of conv(x, ·).
    Its own backward, for a gradient ggw of gw: ∂/∂gy = conv(x, ggw), ∂/∂x = conv_transpose(gy, ggw)."""

    def __init__(self, geom: ConvGeometry) -> None:
        self.geom = geom

    def forward(self, gy, x):
        with _threads(x):
            return weight_grad(gy, x, self.geom)

    def backward(self, ggw: Tensor):
        gy, x = self.inputs
        need = self.needs_input_grad
        d_gy = Convolution(self.geom)(x, ggw) if need[0] else None
        d_x = ConvTranspose(self.geom)(gy, ggw) if need[1] else None
        return d_gy, d_x
