"""Winograd's F(4×4, 3×3) for inference: 3×3 stride-1 convolutions of NumPy float32 arrays when no
gradient is wanted (``_fused_block.folded_conv3x3``, the convolutions of a model in eval mode under
``no_grad`` with their batch norm folded in).

A. Lavin, S. Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016, §4.2: a 4×4
output tile from a 6×6 input tile (tiles overlap by 2) with 36 multiplications instead of 144,
Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A with the interpolation points 0, ±1, ±2, ∞ (the matrices below).
Per output that is 2.25 multiply-adds per (input, output) channel pair against F(2×2, 3×3)'s 4
and the direct method's 9, so the 36 GEMMs U_ξ (O×C) @ V_ξ (C×tiles) take 56% of F(2×2)'s time.
The price is accuracy: the transforms multiply by up to 8 (Aᵀ) and 5 (Bᵀ), and the float32 result
is 10–20× less accurate than the direct sum (max |error| / max |y| 4·10⁻⁶ to 1.2·10⁻⁵ for 16–512
channels against float64, docs/performance.md; F(2×2) and PyTorch's float32 give 2–6·10⁻⁷).
That is why training (gradients) keeps F(2×2, 3×3) (``_conv_winograd``).

Layout. The tile position is made the leading axis, so that each transform along a tile axis is
ONE matrix product with the 6×6 Bᵀ or the 4×6 Aᵀ over contiguous rows (BLAS instead of ~20
element-wise NumPy passes per axis). Per band of tile rows: Bᵀ along H on the zero-padded,
batch-last input (C, H, W, N) itself, whose rows 4i..4i+5 of a channel form one contiguous block;
the six stride-4 column samplings of that gathered into D (6, 6, C, P), P = tiles·N; Bᵀ along W;
the 36 GEMMs; Aᵀ along H and W; the 4×4 output tiles interleaved into (O, OH, OW, N) once, with
the residual and the ReLU applied to the band while it is in cache.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from deepnum.functional._conv_winograd import each_band
from deepnum.functional._fused_runtime import channel_shares, parallel, scratch

_BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=np.float32)
_G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
               [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])
_G_KRON = np.kron(_G, _G)  # (36, 9): G ⊗ G, so that vec(G w Gᵀ) = (G ⊗ G) vec(w)
_AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], dtype=np.float32)
BAND_BYTES = 1 << 20  # per band of tile rows: the size of its gathered tiles D
_BIAS_PLANE = 7  # ξ = (1, 1): Aᵀ's column 1 is all ones, so M_ξ's entries reach every output with weight 1


def weight_transform(w: Any) -> Any:
    """U = G w Gᵀ for every (out, in) channel pair as one product with G ⊗ G, computed in float64
    (G has sixths and twenty-fourths) and rounded once: (36, O, C) in w's dtype."""
    o, c = w.shape[:2]
    u = np.matmul(_G_KRON, w.reshape(o * c, 9).astype(np.float64).T)  # U[6i + j] = Σ G[i, a] G[j, b] w[3a + b]
    return u.astype(w.dtype).reshape(36, o, c)


def _padded(x: Any, lo: tuple[int, int], rows: int, cols: int) -> Any:
    """x (C, H, W, N) placed at (lo₀, lo₁) in a zeroed (C, rows, cols, N) work buffer (its border
    is zeroed each time, the interior copied), the channels split over the op's threads."""
    c, h, w, n = x.shape
    p = scratch("input", (c, rows, cols, n), x.dtype)

    def fill(sl: slice) -> None:
        q = p[sl]
        q[:, :lo[0]] = 0
        q[:, lo[0] + h:] = 0
        q[:, lo[0]:lo[0] + h, :lo[1]] = 0
        q[:, lo[0]:lo[0] + h, lo[1] + w:] = 0
        q[:, lo[0]:lo[0] + h, lo[1]:lo[1] + w] = x[sl]

    parallel(channel_shares(c), fill)
    return p


def _rows_transformed(xp: Any, i0: int, k: int, tw: int) -> Any:
    """Bᵀ along H of the tile rows i0..i0+k of the padded input, then their tiles' columns gathered:
    D (6 r, 6 b, C, k, tw, N) with D[r, b] = (Bᵀ d)[r, column 4j + b]. Rows 4i..4i+5 of a channel are
    one contiguous (6, W·N) block, so Bᵀ along H is one matrix product per (tile row, channel)
    on the padded input itself; only the 1.5× larger result is gathered (not the 2.25× larger tiles)."""
    c, _, cols, n = xp.shape
    s = xp.strides
    blocks = np.lib.stride_tricks.as_strided(xp[:, 4 * i0:], (k, c, 6, cols * n), (4 * s[1], s[0], s[1], s[3]))
    t = np.matmul(_BT, blocks, out=scratch("rows", (k, c, 6, cols * n), xp.dtype)).reshape(k, c, 6, cols, n)
    d = scratch("columns", (6, 6, c, k, tw, n), xp.dtype)
    for b in range(6):
        d[:, b].transpose(2, 1, 0, 3, 4)[...] = t[:, :, :, b::4][:, :, :, :tw]  # as (k, C, 6 r, tw, N)
    return d


def conv3x3(x: Any, u: Any, lo: tuple[int, int], hi: tuple[int, int], bias: Any = None, residual: Any = None,
            relu: bool = False) -> Any:
    """y = conv(x, w) + bias (+ residual) (then max(y, 0) if ``relu``) for a batch-last float32 x
    (C, H, W, N) and U = weight_transform(w) (36, O, C); padding lo/hi of 0 to 2. A residual
    (O, OH, OW, N), contiguous, needs OH and OW divisible by 4. Returns y (O, OH, OW, N), contiguous."""
    c, h, w, n = x.shape
    o = u.shape[1]
    oh, ow = h + lo[0] + hi[0] - 2, w + lo[1] + hi[1] - 2
    th, tw = -(-oh // 4), -(-ow // 4)
    xp = _padded(x, lo, 4 * th + 2, 4 * tw + 2)
    y6 = np.empty((o, th, 4, tw, 4, n), dtype=x.dtype)  # (O, OH, OW, N), each dim split as (tile, position)
    r6 = None if residual is None else residual.reshape(y6.shape)
    b = max(1, min(th, BAND_BYTES // (36 * max(c, o) * tw * n * x.itemsize)))

    def band(i0: int, k: int) -> None:
        p = k * tw * n
        v = np.matmul(_BT, _rows_transformed(xp, i0, k, tw).reshape(6, 6, -1),  # Bᵀ along W
                      out=scratch("half", (6, 6, c * p), x.dtype))
        m = np.matmul(u, v.reshape(36, c, p), out=scratch("m", (36, o, p), x.dtype))
        if bias is not None:
            m[_BIAS_PLANE] += bias[:, None]
        m1 = np.matmul(_AT, m.reshape(6, -1), out=scratch("rows", (4, 6 * o * p), x.dtype))  # Aᵀ along H
        y4 = np.matmul(_AT, m1.reshape(4, 6, -1), out=scratch("columns", (4, 4, o * p), x.dtype))  # along W
        out, zero = y6[:, i0:i0 + k], np.zeros(n, dtype=x.dtype)  # max(·, zero row): NumPy's fast loop
        tiles = y4.reshape(4, 4, o, k, tw, n)
        if relu and r6 is None:  # the ReLU in the interleaving copy
            np.maximum(tiles, zero, out=out.transpose(2, 4, 0, 1, 3, 5))
            return
        out.transpose(2, 4, 0, 1, 3, 5)[...] = tiles
        if r6 is not None:
            out += r6[:, i0:i0 + k]
        if relu:
            np.maximum(out, zero, out=out)

    each_band(th, b, band)
    y = y6.reshape(o, 4 * th, 4 * tw, n)
    return y if (oh, ow) == (4 * th, 4 * tw) else np.ascontiguousarray(y[:, :oh, :ow])
