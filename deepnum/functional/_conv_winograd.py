"""Winograd's minimal filtering F(2×2, 3×3): the fast path of 3×3, stride-1 convolutions.

A. Lavin, S. Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016. Two outputs of a
3-tap correlation from four inputs d take 4 multiplications instead of 6:

    y = Aᵀ[(G g) ⊙ (Bᵀ d)],   Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]],
                              G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]],  Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]].

Nested in 2-D, a 2×2 output tile comes from a 4×4 input tile (tiles overlap by 2) with 16 instead
of 36 multiplications: Y = Aᵀ[U ⊙ V]A with U = G g Gᵀ and V = Bᵀ d B. Summed over input channels,
each of the 16 tile positions ξ is one matrix product, M_ξ = U_ξ (O×C) @ V_ξ (C×tiles): the
convolution becomes 16 GEMMs with 4/9 of the direct method's multiply-adds, plus transforms
that are whole-array additions. The rounding error stays at the level of the direct sum (the
transforms only add and halve). F(4×4, 3×3) saves more multiplications but is 10–20× less accurate:
it serves inference only (``_conv_winograd4``), and training keeps this one.

Layout. Arrays are batch-last, (C, H, W, N) (see ``conv_ops``): the padded input is first copied
into its four polyphase planes, ``xq[c, ph, pw, i, j] = x_pad[c, 2i + ph, 2j + pw]``, so every
transform below reads and writes long contiguous runs (stride-2 slices of the batch-last array
would give runs of N elements only, measured 2–4× slower per pass). The work goes in bands of
tile rows so that a band's transforms and GEMM operands stay in the CPU cache, and the bands are
split over the op's threads (``_fused_runtime``).

Gradients use the same machinery: the input gradient of this convolution is a convolution of the
output gradient with the flipped, transposed kernel (``conv_ops``), and the weight gradient is
the adjoint, ∂L/∂U_ξ = Ŷ_ξ @ V_ξᵀ with Ŷ = A·gy_tile·Aᵀ, then ∂L/∂g = Gᵀ(∂L/∂U)G.
"""
from __future__ import annotations

from typing import Any

from deepnum.backend import get_array_module
from deepnum.functional._fused_runtime import parallel, scratch

MIN_CHANNELS = 8  # below this (an RGB input), im2col's single GEMM with K = 9·C is faster
BAND_BYTES = 1 << 20  # per band of tile rows: the size of its 16 transformed planes

_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))
# Gᵀ(∂L/∂U)G for the weight gradient, with the −1 of Ŷ's last row and column (A's last row is
# (0, −1)) folded in, so the transform of gy needs no negation pass.
_G_SIGNED = _G[:3] + ((0.0, 0.0, -1.0),)


def applies(kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...], groups: int,
            lo: tuple[int, ...], hi: tuple[int, ...], channels: int, out_channels: int) -> bool:
    """Whether a convolution takes the Winograd path: 2-D, 3×3, unit stride and dilation, one group,
    padding of 0 to 2 on each side (2 is what the input gradient of a 'valid' 3×3 conv needs), and
    enough channels on both sides for the GEMMs to dominate the transforms."""
    return (kernel == (3, 3) and stride == (1, 1) and dilation == (1, 1) and groups == 1
            and all(0 <= p <= 2 for p in lo + hi) and min(channels, out_channels) >= MIN_CHANNELS)


def _bands(rows: int, row_bytes: int) -> int:
    """Tile rows per band."""
    return max(1, min(rows, BAND_BYTES // max(row_bytes, 1)))


def polyphase(a: Any, lo: tuple[int, int], rows: int, cols: int, tag: str = "input") -> Any:
    """(C, H, W, N) → (C, 2, 2, rows, cols, N): ``q[c, ph, pw, i, j] = a[c, 2i + ph − lo₀, 2j + pw − lo₁]``
    where that lies inside ``a``, else 0. Four strided copies, one per parity, into a reused buffer
    whose border is zeroed each time."""
    c, h, w, n = a.shape
    q = scratch(tag, (c, 2, 2, rows, cols, n), a.dtype, get_array_module(a))

    def plane(parities: tuple[int, int]) -> None:
        ph, pw = parities
        i0, s0 = _first(lo[0], ph, rows, h)
        j0, t0 = _first(lo[1], pw, cols, w)
        src = a[:, s0::2, t0::2][:, :rows - i0, :cols - j0]
        i1, j1 = i0 + src.shape[1], j0 + src.shape[2]
        p = q[:, ph, pw]
        p[:, :i0] = 0
        p[:, i1:] = 0
        p[:, i0:i1, :j0] = 0
        p[:, i0:i1, j1:] = 0
        p[:, i0:i1, j0:j1] = src

    parallel([(0, 0), (0, 1), (1, 0), (1, 1)], plane)
    return q


def _first(lo: int, parity: int, count: int, size: int) -> tuple[int, int]:
    """The first tile index whose position 2i + parity − lo falls inside [0, size), and that position."""
    i0 = max(0, (lo - parity + 1) // 2)
    return i0, min(2 * i0 + parity - lo, size)


def _sandwich(g: Any, a: Any) -> Any:
    """g a gᵀ on the last two axes of a (O, C, k, k) stack, as two 2-D matrix products (a broadcast
    matmul of 3×3 blocks would be thousands of tiny products): (O, C, r, r), r = len(g)."""
    xp = get_array_module(a)
    o, c, k, _ = a.shape
    r = g.shape[0]
    t = a.reshape(-1, k) @ g.T  # a gᵀ: (O·C·k, r)
    t = g @ t.reshape(o, c, k, r).transpose(2, 0, 1, 3).reshape(k, -1)  # g (a gᵀ): (r, O·C·r)
    return xp.ascontiguousarray(t.reshape(r, o, c, r).transpose(1, 2, 0, 3))


def weight_transform(w: Any, g: tuple = _G) -> Any:
    """U = G w Gᵀ for every (out, in) channel pair, as 16 matrices (16, O, C)."""
    xp = get_array_module(w)
    u = _sandwich(xp.asarray(g, dtype=w.dtype), w)  # (O, C, 4, 4)
    return xp.ascontiguousarray(u.transpose(2, 3, 0, 1)).reshape((16,) + w.shape[:2])


def _bt(d0: Any, d1: Any, d2: Any, d3: Any, out: Any) -> None:
    """Bᵀd along one axis: (d0 − d2, d1 + d2, d2 − d1, d1 − d3) into out[0..3]."""
    xp = get_array_module(out)
    xp.subtract(d0, d2, out=out[0])
    xp.add(d1, d2, out=out[1])
    xp.subtract(d2, d1, out=out[2])
    xp.subtract(d1, d3, out=out[3])


def _at(m0: Any, m1: Any, m2: Any, m3: Any, out0: Any, out1: Any) -> None:
    """Aᵀm along one axis: (m0 + m1 + m2, m1 − m2 − m3)."""
    xp = get_array_module(m0)
    xp.add(m0, m1, out=out0)
    out0 += m2
    xp.subtract(m1, m2, out=out1)
    out1 -= m3


def _buffers(xp: Any, dtype: Any, c: int, b: int, tw: int, n: int) -> tuple[Any, Any]:
    return scratch("rows", (4, c, 2, b, tw + 1, n), dtype, xp), scratch("columns", (4, 4, c, b, tw, n), dtype, xp)


def input_transform(xq: Any, i0: int, b: int, rows: Any, v: Any) -> Any:
    """V = Bᵀ d B for the tile rows i0..i0+b of the polyphase input: along H into ``rows``
    (4, C, 2, b, tw+1, N), then along W, all four rows at once, into ``v`` (4, 4, C, b, tw, N);
    returns v as (16, C, P). Eight whole-array passes per band (few, large NumPy calls)."""
    tw = xq.shape[4] - 1
    d = [xq[:, k % 2, :, i0 + k // 2:i0 + k // 2 + b] for k in range(4)]  # tile row k, both column parities
    _bt(*d, rows)
    e = [rows[:, :, k % 2, :, k // 2:k // 2 + tw] for k in range(4)]  # tile column k of every row
    _bt(*e, v.swapaxes(0, 1))
    return v.reshape(16, v.shape[2], -1)


def conv3x3(x: Any, u: Any, lo: tuple[int, int], hi: tuple[int, int], bias: Any = None, residual: Any = None,
            relu: bool = False) -> Any:
    """y = conv(x, w) + bias (+ residual) (then max(y, 0) if ``relu``) for a batch-last x (C, H, W, N)
    and U = weight_transform(w) (16, O, C): per band of tile rows, transform the input, 16 GEMMs (one
    batched matmul), transform back; the residual (O, OH, OW, N), contiguous, and the ReLU are
    applied to the band while it is in cache (the end of an inference-mode residual block, with its
    batch norm folded into w and bias). OH and OW must be even when a residual is given.
    Returns y (O, OH, OW, N), contiguous."""
    xp = get_array_module(x)
    c, h, w, n = x.shape
    o = u.shape[1]
    oh, ow = h + lo[0] + hi[0] - 2, w + lo[1] + hi[1] - 2
    th, tw = -(-oh // 2), -(-ow // 2)
    xq = polyphase(x, lo, th + 1, tw + 1)
    y6 = xp.empty((o, th, 2, tw, 2, n), dtype=x.dtype)  # (O, OH, OW, N) with each dim split as (tile, parity)
    r6 = None if residual is None else residual.reshape(y6.shape)
    b = _bands(th, 16 * max(c, o) * tw * n * x.itemsize)

    def band(i0: int, k: int) -> None:
        rows, v = _buffers(xp, x.dtype, c, b, tw, n)
        vk = input_transform(xq, i0, k, rows[:, :, :, :k], v[:, :, :, :k])
        mk = xp.matmul(u, vk, out=scratch("m", (16, o, b * tw * n), x.dtype, xp)[:, :, :k * tw * n])
        if bias is not None:
            mk[5] += bias[:, None]  # ξ = (1, 1) enters every output of the tile with weight 1
        out = y6[:, i0:i0 + k]
        _output_transform(mk.reshape(4, 4, o, k, tw, n), out, xp)
        if r6 is not None:
            out += r6[:, i0:i0 + k]
        if relu:
            xp.maximum(out, xp.zeros(n, dtype=out.dtype), out=out)  # against a zero row: NumPy's fast loop

    each_band(th, b, band)
    y = y6.reshape(o, 2 * th, 2 * tw, n)
    return y if (oh, ow) == (2 * th, 2 * tw) else xp.ascontiguousarray(y[:, :oh, :ow])


def _output_transform(m: Any, out: Any, xp: Any) -> None:
    """Y = Aᵀ M A of a band, m (4, 4, O, k, tw, N) → out (O, k, 2, tw, 2, N): along H into a work
    array, along W into a second one (contiguous writes), then one interleaving copy into ``out``
    (writing the two column parities straight into ``out`` makes every pass strided: ~1.2× slower)."""
    o, k, tw, n = m.shape[2:]
    half = scratch("half", (2, 4, o, k, tw, n), m.dtype, xp)
    _at(m[0], m[1], m[2], m[3], half[0], half[1])  # along H: output rows 2i, 2i+1
    t = scratch("columns", (2, 2, o, k, tw, n), m.dtype, xp)  # (column parity, row parity, O, k, tw, N)
    _at(half[:, 0], half[:, 1], half[:, 2], half[:, 3], t[0], t[1])  # along W
    out.transpose(4, 2, 0, 1, 3, 5)[...] = t


def weight_grad3x3(gy: Any, x: Any, lo: tuple[int, int]) -> Any:
    """∂L/∂w (O, C, 3, 3) for y = conv3x3(x, w): per band, V of the input and Ŷ = A·gy·Aᵀ of the
    output gradient's 2×2 tiles, then ∂L/∂U_ξ += Ŷ_ξ @ V_ξᵀ (16 GEMMs over every tile and sample)
    and finally Gᵀ(∂L/∂U)G. Ŷ's rows are (g0, g0 + g1, g0 − g1, −g1), its columns likewise: half of
    its 16 planes are views of gy's tiles (fed to their GEMM as they are), and the sign of the last
    row and column goes into the final transform."""
    xp = get_array_module(x)
    c, n = x.shape[0], x.shape[3]
    o, oh, ow = gy.shape[:3]
    th, tw = -(-oh // 2), -(-ow // 2)
    xq = polyphase(x, lo, th + 1, tw + 1)
    gq = polyphase(gy, (0, 0), th, tw, tag="input2")  # (O, 2, 2, th, tw, N): the 2×2 tiles of gy
    b = _bands(th, 16 * max(c, o) * tw * n * x.itemsize)

    def band(i0: int, k: int) -> Any:
        rows, v = _buffers(xp, x.dtype, c, b, tw, n)
        vk = input_transform(xq, i0, k, rows[:, :, :, :k], v[:, :, :, :k])
        g0, g1 = gq[:, 0, :, i0:i0 + k], gq[:, 1, :, i0:i0 + k]  # (O, 2, k, tw, N): tile rows 0 and 1
        s = scratch("hat_rows", (2, o, 2, b, tw, n), x.dtype, xp)[:, :, :, :k]
        s2 = scratch("hat", (2, o, b, tw, n), x.dtype, xp)[:, :, :k]
        xp.add(g0, g1, out=s[0])
        xp.subtract(g0, g1, out=s[1])
        part = xp.empty((16, o, c), dtype=x.dtype)
        for r, t in enumerate((g0, s[0], s[1], g1)):  # Ŷ along H; then along W the same way
            xp.add(t[:, 0], t[:, 1], out=s2[0])
            xp.subtract(t[:, 0], t[:, 1], out=s2[1])
            for q, plane in enumerate((t[:, 0], s2[0], s2[1], t[:, 1])):
                xp.matmul(plane.reshape(o, -1), vk[4 * r + q].T, out=part[4 * r + q])
        return part

    du = sum(each_band(th, b, band))
    gt = xp.asarray(_G_SIGNED, dtype=x.dtype).T
    return _sandwich(gt, du.reshape(4, 4, o, c).transpose(2, 3, 0, 1))  # Gᵀ (∂L/∂U) G per (o, c)


def each_band(rows: int, b: int, body: Any) -> list:
    """[body(i0, k) for each band of ``b`` tile rows (k ≤ b of them)], spread over the threads of
    the enclosing ``cpu_threads``."""
    return parallel([(i0, min(b, rows - i0)) for i0 in range(0, rows, b)], lambda job: body(*job))


def flipped(w: Any) -> Any:
    """The kernel of the input gradient: w'[c, o] = w[o, c] rotated by 180°."""
    return w.swapaxes(0, 1)[:, :, ::-1, ::-1]
