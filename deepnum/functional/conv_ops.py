"""The convolution kernels (im2col / col2im) and the three differentiable ops built on them.

A convolution maps x (N, C, *size) to y (N, O, *out) with a weight w (O, C/G, *kernel). With the
zero-padded input xp, stride S, dilation D and G groups (one spatial dim shown):

    y[n, o, i] = Σ_{c in o's group} Σ_k w[o, c, k] · xp[n, c, i·S + k·D]

**im2col** turns this into a matrix product: copy every window of xp into a "columns" matrix
(C/G·K rows per group, one column per output position; K = ∏kernel), then y = w @ columns with w
reshaped to (G, O/G, C/G·K), ONE matmul per group for a whole batch tile. The columns are laid out
channel-major, (C·K, n·L), so the batch is part of the matrix width, not a loop of small products.

Two ways to fill the columns:

- **Unit stride ("wide" columns).** Flatten the channel-major padded image to (C, n·∏padded).
  For kernel offset j, the windows of all positions p are the slice starting at p + shift_j, so
  each block of C rows is ONE long contiguous copy (the notes' im2col, done K copies at a time).
  Columns are made for every padded position; those beyond the output size are computed and
  discarded (``from_grid``), and the output gradient is zero there (``to_grid``). The extra work
  is ∏padded/∏out (13% for a 3×3 conv on 32×32, 56% on 8×8) and buys copies that run at memory
  speed instead of one short copy per output row.
- **Strided.** ``windows`` is an ``as_strided`` view of xp of shape (N, C, *kernel, *out) holding
  every window without copying (strides = the input's times D on the kernel axes and times S on the
  output axes); copying it channel-major gives the columns.

**Batch tiles (CPU).** Columns are K times larger than the input (38 MB for a 3×3 conv of a
(128, 32, 16, 16) batch). On the CPU the batch is cut into tiles whose columns take about
``TILE_BYTES``, copied into one reused buffer that stays in cache. When the whole batch is one
tile (and on the GPU, where there is no tiling), the forward pass keeps its columns for the weight
gradient instead of copying the windows again.

**col2im** is the adjoint: column gradients wᵀ @ gy are added back into a zero padded image, one
slice-add per kernel offset (contiguous at unit stride, strided otherwise; overlapping windows
accumulate), and the padding is cut away (the adjoint of padding is cropping).

Three ``Function``s close under differentiation, so gradients of any order exist:

- ``Convolution``      y = conv(x, w) (+ b)
- ``ConvTranspose``    x = conv_transpose(y, w), the adjoint of conv(·, w): ⟨conv(x, w), y⟩ = ⟨x, conv_transpose(y, w)⟩
- ``ConvWeightGrad``   gw = Σ_{n,i} gy ⊗ window_i(x), the adjoint of conv(x, ·) in w

The backward of each is made of the other two (plus a sum for the bias): conv's input gradient is
conv_transpose and conv_transpose's is conv, so double backward works for both paths.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

from deepnum.autograd.function import Function
from deepnum.backend import get_array_module
from deepnum.functional.reduction import sum as _sum
from deepnum.tensor import Tensor

_ALL = slice(None)
TILE_BYTES = 4 << 20  # CPU: columns per batch tile (L2/L3-sized); None: the whole batch at once


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

    @property
    def unit_stride(self) -> bool:
        """Stride 1 everywhere: the shifted-slice ("wide") im2col applies."""
        return all(s == 1 for s in self.stride)

    @property
    def grid(self) -> tuple[int, ...]:
        """The positions per sample that the columns cover: every padded position at unit stride
        (those past ``out`` are computed and discarded), else exactly the output positions."""
        return self.padded if self.unit_stride else self.out

    def shifts(self) -> list[int]:
        """Where each kernel offset's window starts in the flattened padded image (unit stride)."""
        row = [math.prod(self.padded[i + 1:]) for i in range(len(self.padded))]
        return [sum(k * d * r for k, d, r in zip(offset, self.dilation, row))
                for offset in itertools.product(*(range(k) for k in self.kernel))]


def _pad_crop(a: Any, lo: tuple[int, ...], hi: tuple[int, ...]) -> Any:
    """Zero-pad the spatial dims of ``a`` (N, C, *S) by lo/hi; negative widths crop instead.
    Returns ``a`` itself when nothing changes and a view when it only crops."""
    if not any(lo) and not any(hi):
        return a
    spatial = a.shape[2:]
    a = a[(_ALL, _ALL) + tuple(slice(max(-b, 0), n - max(-e, 0)) for n, b, e in zip(spatial, lo, hi))]
    if all(b <= 0 and e <= 0 for b, e in zip(lo, hi)):
        return a
    xp = get_array_module(a)
    shape = tuple(n + max(b, 0) + max(e, 0) for n, b, e in zip(a.shape[2:], lo, hi))
    out = xp.zeros(a.shape[:2] + shape, dtype=a.dtype)
    out[(_ALL, _ALL) + tuple(slice(max(b, 0), max(b, 0) + n) for n, b in zip(a.shape[2:], lo))] = a
    return out


def windows(x: Any, geom: ConvGeometry) -> Any:
    """Every window of the padded x as an ``as_strided`` view (N, C, *kernel, *out), no copy."""
    xp = get_array_module(x)
    xpad = _pad_crop(x, geom.lo, geom.hi)
    steps = xpad.strides[2:]
    strides = (xpad.strides[:2] + tuple(s * d for s, d in zip(steps, geom.dilation))
               + tuple(s * st for s, st in zip(steps, geom.stride)))
    return xp.lib.stride_tricks.as_strided(xpad, xpad.shape[:2] + geom.kernel + geom.out, strides)


def _tile(xp: Any, n: int, sample_bytes: int) -> int:
    """Samples per batch tile: all of them on the GPU or when TILE_BYTES is None."""
    if TILE_BYTES is None or xp.__name__ != "numpy":
        return max(n, 1)
    return max(1, min(n, TILE_BYTES // max(sample_bytes, 1)))


def _channel_major(a: Any) -> Any:
    """(m, C, *S) → (C, m, *S) as a contiguous copy: the batch axis moves behind the channels so that
    (C, m·∏S) is one matrix."""
    xp = get_array_module(a)
    return xp.ascontiguousarray(a.swapaxes(0, 1))


def im2col_tiles(x: Any, geom: ConvGeometry) -> Iterator[tuple[slice, Any]]:
    """Yield (batch slice, columns (G, C/G·∏kernel, m·∏grid)) tile by tile. Channel-major columns
    make the whole tile ONE matrix product per group with the weight (O/G, C/G·∏kernel). The
    columns of one tile live in a buffer that the next tile overwrites: use them before asking for
    the next."""
    if geom.unit_stride:
        yield from _shifted_tiles(x, geom)
        return
    xp = get_array_module(x)
    n, c, g = x.shape[0], x.shape[1], geom.groups
    k, length = math.prod(geom.kernel), math.prod(geom.out)
    view = windows(x, geom)  # (N, C, *kernel, *out)
    nk = len(geom.kernel)
    to_channel_major = (1, *range(2, 2 + nk), 0, *range(2 + nk, view.ndim))  # (C, *kernel, N, *out)
    step = _tile(xp, n, c * k * length * x.itemsize)
    buffer = xp.empty(c * k * step * length, dtype=x.dtype)
    for start in range(0, n, step):
        m = min(step, n - start)
        cols = buffer[: c * k * m * length].reshape((c,) + geom.kernel + (m,) + geom.out)
        xp.copyto(cols, view[start:start + m].transpose(to_channel_major))
        yield slice(start, start + m), cols.reshape(g, (c // g) * k, m * length)


def _shifted_tiles(x: Any, geom: ConvGeometry) -> Iterator[tuple[slice, Any]]:
    """im2col at unit stride. In the flattened, channel-major padded image (C, m·∏padded), the
    window of kernel offset j for every position p is the slice starting at p + shift_j, so each
    row block of the columns is ONE long contiguous copy (instead of one short copy per output
    row). Columns are computed for every padded position; those past ``out`` are garbage that
    ``from_grid`` discards (their tail is zero-filled so no NaN from stale memory can leak)."""
    xp = get_array_module(x)
    n, c, g = x.shape[0], x.shape[1], geom.groups
    shifts, span = geom.shifts(), math.prod(geom.padded)
    k = len(shifts)
    step = _tile(xp, n, c * k * span * x.itemsize)
    buffer = None if k == 1 else xp.empty(c * k * step * span, dtype=x.dtype)
    for start in range(0, n, step):
        m = min(step, n - start)
        total = m * span
        image = _channel_major(_pad_crop(x[start:start + m], geom.lo, geom.hi)).reshape(c, total)
        if k == 1:
            yield slice(start, start + m), image.reshape(g, c // g, total)
            continue
        cols = buffer[: c * k * total].reshape(c, k, total)
        for j, shift in enumerate(shifts):
            cols[:, j, :total - shift] = image[:, shift:]
            cols[:, j, total - shift:] = 0
        yield slice(start, start + m), cols.reshape(g, (c // g) * k, total)


def to_grid(a: Any, geom: ConvGeometry) -> Any:
    """(m, O, *out) → (O, m, *grid) contiguous, zero on the discarded positions of the wide grid."""
    xp = get_array_module(a)
    if not geom.unit_stride:
        return _channel_major(a)
    grid = xp.zeros((a.shape[1], a.shape[0]) + geom.padded, dtype=a.dtype)
    grid[(_ALL, _ALL) + tuple(slice(0, o) for o in geom.out)] = a.swapaxes(0, 1)
    return grid


def from_grid(product: Any, geom: ConvGeometry) -> Any:
    """(O, m, *grid) → (m, O, *out), a view."""
    if geom.unit_stride:
        product = product[(_ALL, _ALL) + tuple(slice(0, o) for o in geom.out)]
    return product.swapaxes(0, 1)


def _bmm(a: Any, b: Any, out: Any = None) -> Any:
    """Batched a @ b. When the contracted dim has length 1 (the columns of a depthwise transposed
    conv) it is a batch of outer products: a broadcast product beats thousands of tiny BLAS calls."""
    xp = get_array_module(a)
    if a.shape[-1] == 1:
        return xp.multiply(a, b, out=out)
    return xp.matmul(a, b, out=out)


def conv_forward(x: Any, w: Any, geom: ConvGeometry) -> tuple[Any, Any]:
    """y = w ⋆ x: per batch tile ONE matmul per group, (G, O/G, C/G·K) @ (G, C/G·K, m·L) →
    (G, O/G, m·L), i.e. (O, m, *out), moved into its slice of y (N, O, *out). Returns y and, when
    the whole batch was one tile, its columns (the weight gradient reuses them instead of copying
    the windows again); None otherwise."""
    xp = get_array_module(x)
    n, o, g = x.shape[0], w.shape[0], geom.groups
    wm = w.reshape(g, o // g, -1)
    y = xp.empty((n, o) + geom.out, dtype=x.dtype)
    columns = None
    for batch, cols in im2col_tiles(x, geom):
        m = batch.stop - batch.start
        y[batch] = from_grid(_bmm(wm, cols).reshape((o, m) + geom.grid), geom)
        columns = cols if m == n else None
    return y, columns


def col2im(cols: Any, geom: ConvGeometry, image: Any) -> None:
    """The adjoint of im2col: add each column entry back where its window took it from, into the
    channel-major padded ``image`` (C, m, *padded). At unit stride one contiguous slice-add per
    kernel offset on the flattened image; otherwise one strided block-add per kernel offset."""
    c, m = image.shape[:2]
    if geom.unit_stride:
        flat = image.reshape(c, -1)
        total = flat.shape[1]
        blocks = cols.reshape(c, -1, total)
        for j, shift in enumerate(geom.shifts()):
            flat[:, shift:] += blocks[:, j, :total - shift]
        return
    blocks = cols.reshape((c,) + geom.kernel + (m,) + geom.out)
    for offset in itertools.product(*(range(k) for k in geom.kernel)):
        target = tuple(slice(o * d, o * d + st * (q - 1) + 1, st)
                       for o, d, st, q in zip(offset, geom.dilation, geom.stride, geom.out))
        image[(_ALL, _ALL) + target] += blocks[(_ALL,) + offset]


def conv_transpose_forward(y: Any, w: Any, geom: ConvGeometry) -> Any:
    """x = convᵀ(y, w) (N, O, *out) → (N, C, *size), the adjoint of conv_forward in x: per batch
    tile, columns = wᵀ @ y, (G, C/G·K, O/G) @ (G, O/G, m·∏grid), one matmul per group, then col2im
    into the padded image, whose padding is cut away again (the adjoint of padding is cropping)."""
    xp = get_array_module(y)
    n, o, g = y.shape[0], y.shape[1], geom.groups
    channels = w.shape[1] * g
    wt = w.reshape(g, o // g, -1).swapaxes(1, 2)
    x = xp.empty((n, channels) + geom.size, dtype=y.dtype)
    span = math.prod(geom.grid)
    step = _tile(xp, n, channels * math.prod(geom.kernel) * span * y.itemsize)
    unpad = (tuple(-b for b in geom.lo), tuple(-e for e in geom.hi))
    for start in range(0, n, step):
        m = min(step, n - start)
        ys = to_grid(y[start:start + m], geom).reshape(g, o // g, m * span)
        image = xp.zeros((channels, m) + geom.padded, dtype=y.dtype)
        col2im(_bmm(wt, ys), geom, image)
        x[start:start + m] = _pad_crop(image.swapaxes(0, 1), *unpad)
    return x


def weight_grad(gy: Any, x: Any, geom: ConvGeometry, columns: Any = None) -> Any:
    """gw = Σ_{n,i} gy[n, :, i] ⊗ columns[:, n, i]: per tile ONE matmul per group,
    (G, O/G, m·L) @ (G, m·L, C/G·K), accumulated over the tiles. ``columns``: the forward pass's
    columns of the whole batch, when it kept them."""
    xp = get_array_module(gy)
    o, g = gy.shape[1], geom.groups
    gw = None
    tiles = [(slice(0, x.shape[0]), columns)] if columns is not None else im2col_tiles(x, geom)
    for batch, cols in tiles:
        gys = to_grid(gy[batch], geom).reshape(g, o // g, cols.shape[-1])
        part = _bmm(gys, cols.swapaxes(-1, -2))
        gw = part if gw is None else xp.add(gw, part, out=gw)
    return gw.reshape((o, x.shape[1] // g) + geom.kernel)


def _add_bias(out: Any, b: Any) -> Any:
    out += b.reshape((-1,) + (1,) * (out.ndim - 2))
    return out


def _bias_grad(g: Tensor, geom: ConvGeometry) -> Tensor:
    return _sum(g, (0,) + geom.spatial_axes)


class Convolution(Function):
    """y = conv(x, w) + b by im2col and a matmul per batch tile (see the module docstring).
    Backward: gx = conv_transpose(gy, w), gw = ConvWeightGrad(gy, x), gb = Σ gy over batch and space."""

    def __init__(self, geom: ConvGeometry) -> None:
        self.geom = geom

    def forward(self, x, w, b=None):
        y, columns = conv_forward(x, w, self.geom)
        self.columns = columns  # kept for the weight gradient (only when the batch was one tile)
        return y if b is None else _add_bias(y, b)

    def backward(self, gy: Tensor):
        x, w = self.inputs[:2]
        need = self.needs_input_grad
        gx = ConvTranspose(self.geom)(gy, w) if need[0] else None
        gw = ConvWeightGrad(self.geom, self.columns)(gy, x) if need[1] else None
        if len(need) == 2:
            return gx, gw
        return gx, gw, (_bias_grad(gy, self.geom) if need[2] else None)


class ConvTranspose(Function):
    """x = conv_transpose(y, w) + b: the adjoint of conv(·, w), computed by col2im (or, at stride
    1, by the equivalent conv). Backward: gy = conv(gx, w), gw = ConvWeightGrad(y, gx), gb = Σ gx."""

    def __init__(self, geom: ConvGeometry) -> None:
        self.geom = geom

    def forward(self, y, w, b=None):
        x = conv_transpose_forward(y, w, self.geom)
        return x if b is None else _add_bias(x, b)

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

    def __init__(self, geom: ConvGeometry, columns: Any = None) -> None:
        self.geom, self.columns = geom, columns

    def forward(self, gy, x):
        columns, self.columns = self.columns, None  # used once, then dropped
        return weight_grad(gy, x, self.geom, columns)

    def backward(self, ggw: Tensor):
        gy, x = self.inputs
        need = self.needs_input_grad
        d_gy = Convolution(self.geom)(x, ggw) if need[0] else None
        d_x = ConvTranspose(self.geom)(gy, ggw) if need[1] else None
        return d_gy, d_x
