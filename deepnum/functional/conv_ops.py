"""The convolution kernels (im2col / col2im) and the three differentiable ops built on them.

A convolution maps x (N, C, *size) to y (N, O, *out) with a weight w (O, C/G, *kernel). With the
zero-padded input xp, stride S, dilation D and G groups (one spatial dim shown):

    y[n, o, i] = Σ_{c in o's group} Σ_k w[o, c, k] · xp[n, c, i·S + k·D]

**im2col** turns this into a matrix product. ``windows`` is an ``as_strided`` view of xp of shape
(N, C, *kernel, *out) holding every window without copying (its strides are the input's strides
times D along the kernel axes and times S along the output axes; kernel axes come before output
axes, unlike the notes' (N, C, OH, OW, KH, KW), so that the product below is already in NCHW
order). Copied into "columns"
(n, G, C/G·K, L) (K = ∏kernel, L = ∏out) it is contracted with w reshaped to (G, O/G, C/G·K) by
one batched ``matmul``: (G, O/G, C/G·K) @ (n, G, C/G·K, L) → (n, G, O/G, L), which is y in
(N, O, *out) layout with no transpose. Groups are the batch axis G of the same product; a
depthwise conv is the case C/G = O/G = 1.

**Batch tiles (CPU).** The columns are K times larger than the input (75 MB for a 3×3 conv of a
(128, 16, 32, 32) batch). Copying them all at once costs a fresh allocation that the OS must fault
in page by page, and the matmul then streams them back from RAM. On the CPU the batch is therefore
cut into tiles whose columns take about ``TILE_BYTES`` (a few samples), copied into one reused
buffer that stays in cache: one matmul per tile, written straight into its slice of y. That made
forward + backward 1.25–1.65× faster than the whole-batch version on CIFAR-sized layers (2 threads;
tiles of 1–8 MB all do about as well). The whole batch is still one matmul when its columns fit in
one tile and on the GPU (CuPy); a 1×1 stride-1 conv uses the input itself as columns, no copy.
Nothing is saved for backward: the weight gradient rebuilds the columns tile by tile.

**col2im** is the adjoint: column gradients (n, C, *kernel, *out) are added back into a zero-padded
image, one strided slice-add per kernel offset (a loop over the ∏kernel offsets, each adding a
whole block; overlapping windows accumulate), and the padding is cut away. At stride 1 the same
adjoint is computed faster as a conv with the reversed kernel (``conv_transpose_forward``).

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
    def is_pointwise(self) -> bool:
        """A 1×1 kernel with stride 1 and no padding: the columns are the input itself."""
        return (all(k == 1 for k in self.kernel) and all(s == 1 for s in self.stride)
                and not any(self.lo) and not any(self.hi))


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


def im2col_tiles(x: Any, geom: ConvGeometry) -> Iterator[tuple[slice, Any]]:
    """Yield (batch slice, columns (n, G, C/G·∏kernel, ∏out)) tile by tile. The columns of one tile
    live in a buffer that the next tile overwrites: use them before asking for the next."""
    xp = get_array_module(x)
    n, c, g = x.shape[0], x.shape[1], geom.groups
    shape = (g, (c // g) * math.prod(geom.kernel), math.prod(geom.out))
    if geom.is_pointwise:
        yield slice(0, n), x.reshape((n,) + shape)
        return
    view = windows(x, geom)
    step = _tile(xp, n, math.prod(shape) * x.itemsize)
    buffer = xp.empty((step,) + view.shape[1:], dtype=x.dtype)
    for start in range(0, n, step):
        m = min(step, n - start)
        xp.copyto(buffer[:m], view[start:start + m])
        yield slice(start, start + m), buffer[:m].reshape((m,) + shape)


def _bmm(a: Any, b: Any, out: Any = None) -> Any:
    """Batched a @ b. When the contracted dim has length 1 (the columns of a depthwise transposed
    conv) it is a batch of outer products: a broadcast product beats thousands of tiny BLAS calls."""
    xp = get_array_module(a)
    if a.shape[-1] == 1:
        return xp.multiply(a, b, out=out)
    return xp.matmul(a, b, out=out)


def conv_forward(x: Any, w: Any, geom: ConvGeometry) -> Any:
    """y = w ⋆ x: per batch tile ONE batched matmul (G, O/G, C/G·K) @ (n, G, C/G·K, L) → (n, G, O/G, L),
    written into its slice of y (N, O, *out)."""
    xp = get_array_module(x)
    n, o, g = x.shape[0], w.shape[0], geom.groups
    wm = w.reshape(g, o // g, -1)
    y = xp.empty((n, g, o // g, math.prod(geom.out)), dtype=x.dtype)
    for batch, cols in im2col_tiles(x, geom):
        _bmm(wm, cols, out=y[batch])
    return y.reshape((n, o) + geom.out)


def col2im(cols: Any, geom: ConvGeometry, image: Any) -> None:
    """The adjoint of im2col: add each column entry back where its window took it from.
    ``cols`` (n, G, C/G·∏kernel, ∏out) into the padded ``image`` (n, C, *padded): one strided
    slice-add per kernel offset."""
    blocks = cols.reshape(image.shape[:2] + geom.kernel + geom.out)
    for offset in itertools.product(*(range(k) for k in geom.kernel)):
        target = tuple(slice(o * d, o * d + st * (m - 1) + 1, st)
                       for o, d, st, m in zip(offset, geom.dilation, geom.stride, geom.out))
        image[(_ALL, _ALL) + target] += blocks[(_ALL, _ALL) + offset]


def _flipped_transposed(w: Any, groups: int) -> Any:
    """w (O, C/G, *k) → (C, O/G, *k) with every kernel reversed: the weight of the conv that
    equals conv_transpose when the stride is 1."""
    xp = get_array_module(w)
    o, cg = w.shape[:2]
    k = w.shape[2:]
    wt = w.reshape((groups, o // groups, cg) + k).swapaxes(1, 2).reshape((groups * cg, o // groups) + k)
    return xp.ascontiguousarray(wt[(_ALL, _ALL) + (slice(None, None, -1),) * len(k)])


def conv_transpose_forward(y: Any, w: Any, geom: ConvGeometry) -> Any:
    """x = convᵀ(y, w) (N, O, *out) → (N, C, *size), the adjoint of conv_forward in x.

    General case, col2im: per batch tile, columns = wᵀ @ y, (G, C/G·K, O/G) @ (n, G, O/G, L) in one
    batched matmul, scattered back into the padded image. With stride 1 in every dim the adjoint is
    also a plain stride-1 conv of y, padded by D·(K−1) − lo before and size + lo − out after
    (negative: cropped), with the kernel reversed and its in/out axes swapped; im2col + matmul then
    does the same work without the scatter and is 1.7–2× faster, so that path is taken."""
    xp = get_array_module(y)
    n, o, g = y.shape[0], y.shape[1], geom.groups
    channels = w.shape[1] * g
    if all(s == 1 for s in geom.stride):
        lo = tuple(d * (k - 1) - b for d, k, b in zip(geom.dilation, geom.kernel, geom.lo))
        hi = tuple(s + b - m for s, b, m in zip(geom.size, geom.lo, geom.out))
        inner = ConvGeometry(geom.out, geom.kernel, geom.stride, geom.dilation, lo, hi, g)
        return conv_forward(y, _flipped_transposed(w, g), inner)
    wt = w.reshape(g, o // g, -1).swapaxes(1, 2)
    ys = y.reshape(n, g, o // g, -1)
    image = xp.zeros((n, channels) + geom.padded, dtype=y.dtype)
    step = _tile(xp, n, channels * math.prod(geom.kernel) * math.prod(geom.out) * y.itemsize)
    for start in range(0, n, step):
        col2im(_bmm(wt, ys[start:start + step]), geom, image[start:start + step])
    if not any(geom.lo) and not any(geom.hi):
        return image
    inner_slices = tuple(slice(b, b + s) for b, s in zip(geom.lo, geom.size))
    return xp.ascontiguousarray(image[(_ALL, _ALL) + inner_slices])


def weight_grad(gy: Any, x: Any, geom: ConvGeometry) -> Any:
    """gw = Σ_n gy_n @ cols_nᵀ: per tile (n, G, O/G, L) @ (n, G, L, C/G·K), summed over the batch."""
    xp = get_array_module(gy)
    n, o, g = gy.shape[0], gy.shape[1], geom.groups
    gys = gy.reshape(n, g, o // g, -1)
    gw = None
    for batch, cols in im2col_tiles(x, geom):
        part = _bmm(gys[batch], cols.swapaxes(-1, -2)).sum(axis=0)
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
        y = conv_forward(x, w, self.geom)
        return y if b is None else _add_bias(y, b)

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

    def __init__(self, geom: ConvGeometry) -> None:
        self.geom = geom

    def forward(self, gy, x):
        return weight_grad(gy, x, self.geom)

    def backward(self, ggw: Tensor):
        gy, x = self.inputs
        need = self.needs_input_grad
        d_gy = Convolution(self.geom)(x, ggw) if need[0] else None
        d_x = ConvTranspose(self.geom)(gy, ggw) if need[1] else None
        return d_gy, d_x
