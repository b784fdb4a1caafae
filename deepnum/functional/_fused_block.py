"""The fused ops of a convolution block: batch norm (+ ReLU) on channel rows, the fast path of
``batch_norm`` for batch-last inputs, and a residual addition fused with its ReLU.

A convolution's output is stored batch-last, (C, *S, N) (``conv_ops``), so each channel's values
are one contiguous row of a (C, R) matrix, R = N·∏S. Batch norm's statistics are then row sums,
which a matrix-vector product with a ones vector computes several times faster than
``ndarray.sum`` (BLAS streams the rows; NumPy's pairwise sum does not vectorise as well), and its
per-channel affine map is a broadcast of a (C, 1) column over contiguous rows.

Fusing the ReLU that follows (conv → BN → ReLU, the unit of every ResNet) applies max(·, 0) in place
on the normalised output, and in backward multiplies the gradient by the mask y > 0 before the
batch-norm formula: one array and one graph node less per layer.

A residual block ends with relu(F(x) + shortcut(x)): ``AddReLU`` writes the sum and clips it in
place, and its backward passes g·(y > 0) to both inputs.

Memory: the batch-norm op keeps only μ and 1/σ per channel (its input, which autograd holds anyway, gives x̂
back in one pass), as PyTorch's kernel does; the ReLU's mask is read off the output.
"""
from __future__ import annotations

from typing import Any

from deepnum.autograd.function import Function
from deepnum.autograd.grad_mode import is_grad_enabled
from deepnum.backend import get_array_module
from deepnum.functional._fused_runtime import channel_shares, cpu_threads, parallel
from deepnum.functional.activation import maximum0, times_positive
from deepnum.functional.reduction import mean as _mean
from deepnum.functional.reduction import sum as _sum
from deepnum.tensor import Tensor

_CHUNK = 4096  # row sums: float32 partial sums over chunks this long, then the chunks added in float64


def channel_rows(a: Any) -> Any | None:
    """The (C, R) matrix of an (N, C, *S) array stored batch-last ((C, *S, N) contiguous), as a view;
    None for any other layout."""
    if a.ndim < 3:
        return None
    b = a.transpose(tuple(range(1, a.ndim)) + (0,))
    return b.reshape(a.shape[1], -1) if b.flags.c_contiguous else None


def from_rows(rows: Any, shape: tuple[int, ...]) -> Any:
    """(C, R) rows → the (N, C, *S) view of them (the inverse of ``channel_rows``)."""
    b = rows.reshape(tuple(shape[1:]) + (shape[0],))
    return b.transpose((b.ndim - 1,) + tuple(range(b.ndim - 1)))


def _rows_of(a: Any) -> Any:
    """Channel rows of ``a``, copying it batch-last first when it is laid out otherwise."""
    rows = channel_rows(a)
    if rows is None:
        b = get_array_module(a).ascontiguousarray(a.transpose(tuple(range(1, a.ndim)) + (0,)))
        rows = b.reshape(a.shape[1], -1)
    return rows


def row_sums(a: Any, wide: bool = False) -> Any:
    """Σ of each row of a contiguous (C, R) matrix as matrix-vector products with a ones vector.
    ``wide``: float32 partial sums over chunks of ``_CHUNK``, added up in float64 and rounded once
    (a mean's rounding error is amplified by |μ|/σ in x̂)."""
    xp = get_array_module(a)
    c, r = a.shape
    if not wide or r <= _CHUNK or r % _CHUNK:
        return a @ xp.ones(r, dtype=a.dtype)
    parts = a.reshape(c, r // _CHUNK, _CHUNK) @ xp.ones(_CHUNK, dtype=a.dtype)
    return parts.sum(axis=1, dtype=xp.float64).astype(a.dtype)


def row_dots(a: Any, b: Any) -> Any:
    """Σ_j a[i, j]·b[i, j] for every row i: one dot product per row (BLAS), no temporary."""
    return (a[:, None, :] @ b[:, :, None]).reshape(a.shape[0])


def relu_rows(a: Any) -> Any:
    """max(a, 0) in place on a contiguous 2-D array. NumPy's ``maximum`` against a scalar takes a
    slow loop (0.6 ms per 2M float32 here); against a zero row broadcast down the columns it runs
    vectorised (0.19 ms)."""
    xp = get_array_module(a)
    return xp.maximum(a, xp.zeros(a.shape[-1], dtype=a.dtype), out=a)


def relu_channels(rows: Any) -> Any:
    """``relu_rows`` with the channel rows split over the threads of a ``cpu_threads`` budget."""
    with cpu_threads():
        parallel(channel_shares(rows.shape[0]), lambda sl: relu_rows(rows[sl]))
    return rows


class BatchNormRows(Function):
    """Training-mode batch norm of a batch-last (N, C, *S) input, optionally plus a residual r and
    followed by ReLU: y = γ·(x − μ)/σ + β (+ r) (then max(y, 0)), μ and σ² (biased) per channel
    row. Inputs: x, then r (``residual``), then γ and/or β of shape (C,). The sum BN(x) + r of a
    residual block is never materialised: one array (and one pass) less per block.

    Backward (Ioffe & Szegedy 2015, §3), with g masked by y > 0 first when fused with ReLU,
    k = γ/σ and m = R: dr = g, dγ = Σ g·x̂, dβ = Σ g, dx = k·(g − x̂·dγ/m − dβ/m). With
    ``create_graph`` the same formula runs on Tensor ops (double backward)."""

    def __init__(self, eps: float, has_weight: bool, has_bias: bool, relu: bool, residual: bool = False) -> None:
        self.eps, self.has_weight, self.has_bias, self.relu = eps, has_weight, has_bias, relu
        self.residual = residual

    def forward(self, x, *rest):
        xp = get_array_module(x)
        rows = channel_rows(x)
        res = channel_rows(rest[0]) if self.residual else None
        params = rest[1:] if self.residual else rest
        c, self.count = rows.shape
        y = xp.empty_like(rows)
        self.mean, self.var_sum, self.inv_std = (xp.empty(c, dtype=x.dtype) for _ in range(3))
        with cpu_threads():  # channels split over the op's threads, BLAS single-threaded (``cpu_threads``)
            parallel(channel_shares(c), lambda sl: self._forward_rows(
                rows[sl], None if res is None else res[sl], y[sl], sl, params))
        return from_rows(y, x.shape)

    def _forward_rows(self, rows: Any, res: Any, y: Any, sl: slice, params: tuple) -> None:
        """Normalise the channel rows ``sl`` into y (its rows ``sl``)."""
        xp = get_array_module(rows)
        mean, var_sum, inv_std = self.mean[sl], self.var_sum[sl], self.inv_std[sl]
        mean[...] = row_sums(rows, wide=True) / self.count
        xp.subtract(rows, mean[:, None], out=y)  # x − μ, turned into y in place
        var_sum[...] = row_dots(y, y)
        inv_std[...] = 1 / xp.sqrt(var_sum / self.count + self.eps)
        y *= (inv_std * params[0][sl] if self.has_weight else inv_std)[:, None]
        if self.has_bias:
            y += params[-1][sl, None]
        if res is not None:
            y += res
        if self.relu:
            relu_rows(y)

    def _weight(self) -> Tensor:
        return self.inputs[1 + self.residual]

    def backward(self, gy):
        if is_grad_enabled():
            return self._backward_graph(gy)
        xp = get_array_module(gy.data)
        x = self.inputs[0].data
        g = _rows_of(gy.data)
        y = channel_rows(self.output().data) if self.relu else None
        gm = xp.empty_like(g) if self.relu else g  # g·[y > 0]
        c = g.shape[0]
        gx, gw, gb = xp.empty_like(g), xp.empty(c, dtype=g.dtype), xp.empty(c, dtype=g.dtype)
        rows = channel_rows(x)
        with cpu_threads():
            parallel(channel_shares(c), lambda sl: self._backward_rows(
                g[sl], rows[sl], None if y is None else y[sl], gm[sl], gx[sl], gw[sl], gb[sl], sl))
        gres = from_rows(gm, x.shape) if self.residual and self.needs_input_grad[1] else None
        need_x, need_w, need_b = self._needs()
        return self._pack(from_rows(gx, x.shape) if need_x else None, gres, gw if need_w else None,
                          gb if need_b else None, wrap=True)

    def _backward_rows(self, g: Any, rows: Any, y: Any, gm: Any, gx: Any, gw: Any, gb: Any, sl: slice) -> None:
        """dx, dγ and dβ of the channel rows ``sl`` (see the class docstring); g·[y > 0] into gm."""
        xp = get_array_module(g)
        if y is not None:
            xp.greater(y, 0, out=gm, casting="unsafe")
            gm *= g
            g = gm
        inv_std = self.inv_std[sl]
        gb[...] = row_sums(g)
        xp.subtract(rows, self.mean[sl, None], out=gx)  # x − μ, turned into dx in place
        gw[...] = row_dots(g, gx) * inv_std
        k = inv_std * self._weight().data[sl] if self.has_weight else inv_std
        gx *= (inv_std * gw / self.count)[:, None]  # x̂·dγ/m
        gx += (gb / self.count)[:, None]
        xp.subtract(g, gx, out=gx)
        gx *= k[:, None]

    def _needs(self) -> tuple[bool, bool, bool]:
        need = self.needs_input_grad
        return need[0], self.has_weight and need[1 + self.residual], self.has_bias and need[-1]

    def _backward_graph(self, gy: Tensor) -> tuple:
        """The same gradient with Tensor ops on the recomputed x̂ (differentiable again)."""
        x = self.inputs[0]
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        if self.relu:
            gy = gy * Tensor._make((self.output().data > 0).astype(gy.dtype))
        centred = x - _mean(x, axes, keepdim=True)
        inv_std = (_mean(centred * centred, axes, keepdim=True) + self.eps) ** -0.5
        xhat = centred * inv_std
        ghat = gy * self._weight().reshape(shape) if self.has_weight else gy
        gx = inv_std * (ghat - _mean(ghat, axes, keepdim=True) - xhat * _mean(ghat * xhat, axes, keepdim=True))
        gw = _sum(gy * xhat, axes) if self.has_weight else None
        gb = _sum(gy, axes) if self.has_bias else None
        return self._pack(gx, gy, gw, gb)

    def _pack(self, gx: Any, gres: Any, gw: Any, gb: Any, wrap: bool = False) -> tuple:
        grads = ((gx,) + ((gres,) if self.residual else ()) + ((gw,) if self.has_weight else ())
                 + ((gb,) if self.has_bias else ()))
        return tuple(Tensor._make(a) if wrap and a is not None else a for a in grads)


def affine_rows(x: Any, a: Any, b: Any, relu: bool) -> Any:
    """y = x·a + b per channel (batch norm in evaluation), then max(y, 0) if ``relu``, for a
    batch-last x: two (three) passes over contiguous rows. ``a``, ``b``: (C,)."""
    xp = get_array_module(x)
    rows = channel_rows(x)
    y = xp.multiply(rows, a[:, None])
    y += b[:, None]
    if relu:
        relu_rows(y)
    return from_rows(y, x.shape)


class AddReLU(Function):
    """y = max(a + b, 0) (the end of a residual block); ∂y/∂a = ∂y/∂b = 1 where y > 0, else 0. On
    batch-last arrays the channel rows are split over the op's threads."""

    saves_inputs = False

    def forward(self, a, b):
        xp = get_array_module(a)
        y = xp.empty_like(a)
        ya, yr = channel_rows(y), channel_rows(a) is not None and channel_rows(b) is not None
        if ya is None or not yr:
            return maximum0(xp.add(a, b, out=y), out=y)
        ra, rb = channel_rows(a), channel_rows(b)
        with cpu_threads():
            parallel(channel_shares(ya.shape[0]), lambda sl: relu_rows(xp.add(ra[sl], rb[sl], out=ya[sl])))
        return y

    def backward(self, gy):
        y = self.output().data
        if is_grad_enabled():
            g = gy * Tensor._make((y > 0).astype(gy.dtype))
        else:
            g = Tensor._make(_times_positive_rows(gy.data, y))
        need = self.needs_input_grad
        return (g if need[0] else None), (g if need[1] else None)


def _times_positive_rows(g: Any, y: Any) -> Any:
    """g·[y > 0] (``times_positive``), split over the channel rows of a batch-last y."""
    rows = channel_rows(y)
    if rows is None:
        return times_positive(g, y)
    xp = get_array_module(g)
    out = xp.empty_like(y, dtype=g.dtype)
    orows, grows = channel_rows(out), channel_rows(g)
    if grows is None:
        return times_positive(g, y)

    def part(sl: slice) -> None:
        xp.greater(rows[sl], 0, out=orows[sl], casting="unsafe")
        orows[sl] *= grows[sl]

    with cpu_threads():
        parallel(channel_shares(rows.shape[0]), part)
    return out


def _batch_last_zeros(xp: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """Zeros of the (N, C, H, W) ``shape`` stored batch-last, (C, H, W, N)."""
    return xp.zeros(tuple(shape[1:]) + tuple(shape[:1]), dtype=dtype).transpose(3, 0, 1, 2)


class SubsamplePad(Function):
    """y = x[:, :, ::s, ::s] with zero channels appended up to ``channels`` (option A's shortcut),
    written batch-last like its input. Linear: its gradient is ``SubsamplePadAdjoint``."""

    saves_inputs = False

    def __init__(self, stride: int, channels: int) -> None:
        self.stride, self.channels = stride, channels

    def forward(self, x):
        self.in_shape = x.shape
        n, c, h, w = x.shape
        s = self.stride
        y = _batch_last_zeros(get_array_module(x), (n, self.channels, -(-h // s), -(-w // s)), x.dtype)
        y[:, :c] = x[:, :, ::s, ::s]
        return y

    def backward(self, gy):
        return SubsamplePadAdjoint(self.stride, self.in_shape, self.channels)(gy)


class SubsamplePadAdjoint(Function):
    """gx = 0 except gx[:, :, ::s, ::s] = gy[:, :C] (the adjoint of ``SubsamplePad``)."""

    saves_inputs = False

    def __init__(self, stride: int, in_shape: tuple[int, ...], channels: int) -> None:
        self.stride, self.in_shape, self.channels = stride, in_shape, channels

    def forward(self, gy):
        gx = _batch_last_zeros(get_array_module(gy), self.in_shape, gy.dtype)
        gx[:, :, ::self.stride, ::self.stride] = gy[:, :self.in_shape[1]]
        return gx

    def backward(self, ggx):
        return SubsamplePad(self.stride, self.channels)(ggx)


def folded_conv3x3(x: Tensor, w: Any, b: Any, conv: Any, residual: Tensor | None, relu: bool) -> Tensor | None:
    """relu(conv(x, w) + b + residual) of an inference-mode block whose batch norm is folded into
    (w, b), as ONE op (``FoldedConv3x3``), or None when that fast path does not apply: NumPy float32
    only (no autocast), a plain 3×3 stride-1 convolution, a batch-last residual of the output's
    shape and even output sizes. Only for grad mode off: the op has no backward."""
    from deepnum.autograd.autocast_state import Autocast
    from deepnum.functional import _conv_winograd as winograd

    xd = x.data
    xp = get_array_module(xd)
    padding = conv.padding
    if (Autocast.enabled or xp.__name__ != "numpy" or xd.dtype != xp.float32 or w.dtype != xp.float32
            or xd.ndim != 4 or w.ndim != 4 or xd.shape[1] != w.shape[1]  # anything conv2d would reject: it raises
            or not isinstance(padding, tuple) or len(padding) != 2 or conv.padding_mode != "zeros"
            or not winograd.applies(tuple(w.shape[2:]), tuple(conv.stride), tuple(conv.dilation), conv.groups,
                                    padding, padding, xd.shape[1], w.shape[0])):
        return None
    out = (w.shape[0],) + tuple(s + 2 * p - 2 for s, p in zip(xd.shape[2:], padding)) + (xd.shape[0],)
    if residual is None:
        return FoldedConv3x3(padding, relu)(x, Tensor._make(w), Tensor._make(b))
    res = residual.data.transpose(1, 2, 3, 0)
    if (get_array_module(res) is not xp or res.dtype != xd.dtype or res.shape != out
            or not res.flags.c_contiguous or out[1] % 2 or out[2] % 2):
        return None
    return FoldedConv3x3(padding, relu)(x, Tensor._make(w), Tensor._make(b), residual)


class FoldedConv3x3(Function):
    """y = relu(conv(x, w) + b (+ r)) for a 3×3 stride-1 convolution in inference, batch-last in
    and out; the residual r and the ReLU are applied to each band of the output while it is in
    cache, on the op's threads. F(4×4, 3×3) (``_conv_winograd4``: 56% of F(2×2)'s products, less
    accurate) when the output's height and width are multiples of 4, else F(2×2, 3×3). A Function
    so that profilers and tracers see it; it has no backward (grad mode is off where it is used)."""

    saves_inputs = False

    def __init__(self, padding: tuple[int, int], relu: bool) -> None:
        self.padding, self.relu = padding, relu

    def forward(self, x, w, b, r=None):
        from deepnum.functional import _conv_winograd as winograd
        from deepnum.functional import _conv_winograd4 as winograd4

        xb, rb = x.transpose(1, 2, 3, 0), None if r is None else r.transpose(1, 2, 3, 0)
        pad = self.padding
        with cpu_threads():
            if (xb.shape[1] + 2 * pad[0] - 2) % 4 == 0 and (xb.shape[2] + 2 * pad[1] - 2) % 4 == 0:
                y = winograd4.conv3x3(xb, winograd4.weight_transform(w), pad, pad, b, rb, self.relu)
            else:
                y = winograd.conv3x3(xb, winograd.weight_transform(w), pad, pad, b, rb, self.relu)
        return y.transpose(3, 0, 1, 2)
