"""Normalisation: batch_norm (with running statistics), layer_norm, group_norm.

All three are one op, ``Normalize``: standardise x over some axes, x̂ = (x - μ)/√(σ² + ε), then
scale and shift by per-feature parameters, y = γ·x̂ + β. They differ only in the axes of the
statistics (batch norm: every axis but the channel; layer norm: the trailing ``normalized_shape``;
group norm: the channels of a group and the spatial axes) and in the axes along which γ and β are
shared. The forward and the closed-form backward are fused into one Function, so a training step
costs a few whole-array passes instead of a dozen small ops.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from deepnum.autograd.autocast_state import Autocast
from deepnum.autograd.function import Function
from deepnum.autograd.grad_mode import is_grad_enabled, no_grad
from deepnum.backend import device_of, get_array_module
from deepnum.functional._fused_block import BatchNormRows, affine_rows, channel_rows
from deepnum.functional.array import reshape
from deepnum.functional.math import rsqrt
from deepnum.functional.reduction import mean as _mean
from deepnum.functional.reduction import sum as _sum
from deepnum.tensor import Tensor

__all__ = ["batch_norm", "layer_norm", "group_norm"]

_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_BLOCK = 1 << 18  # elements per block of the elementwise passes: 1 MB of float32


def _reduce(axes: tuple[int, ...], *arrays: Any, dtype: Any = None) -> Any:
    """Σ over ``axes`` of the elementwise product of ``arrays`` (keepdims), as one einsum: no
    temporary for the product, and faster than ``ndarray.sum`` over several axes."""
    first = arrays[0]
    letters = _LETTERS[:first.ndim]
    kept = "".join(c for i, c in enumerate(letters) if i not in axes)
    out = get_array_module(first).einsum(",".join([letters] * len(arrays)) + "->" + kept, *arrays, dtype=dtype)
    return out.reshape(tuple(1 if i in axes else n for i, n in enumerate(first.shape)))


def _blocks(x: Any) -> list[slice]:
    """Slices along axis 0 of about ``_BLOCK`` elements each. The elementwise steps of a
    normalisation run block by block (a loop over a few dozen blocks, not over elements) so that
    their temporaries stay in the CPU cache instead of streaming each intermediate through main
    memory (a LayerNorm step on 16 MB went from 12.8 to 10.7 ms of CPU time). One block on the GPU."""
    rows = x.shape[0] if x.ndim else 1
    per_row = math.prod(x.shape[1:])
    if get_array_module(x) is not np or rows * per_row <= _BLOCK:
        return [slice(None)]
    step = max(1, _BLOCK // max(per_row, 1))
    return [slice(i, i + step) for i in range(0, rows, step)]


def _block_buffer(x: Any) -> Any:
    """A work array for one block of ``_blocks(x)`` (its first rows are used for a shorter block)."""
    rows = _blocks(x)[0].indices(x.shape[0] if x.ndim else 1)
    return get_array_module(x).empty((len(range(*rows)),) + x.shape[1:], x.dtype)


def _sum_keep(t: Tensor, axes: tuple[int, ...]) -> Tensor:
    return _sum(t, axes, keepdim=True) if axes else t


class Normalize(Function):
    """y = γ·x̂ + β, x̂ = (x - μ)/√(σ² + ε), μ and σ² (biased) over ``stats_axes``; γ and β are
    broadcast along ``param_axes``. Inputs: x, then γ and/or β (already in a shape that broadcasts).

    Backward (Ioffe & Szegedy 2015, §3), with ĝ = g·γ and means over the statistics axes:
        dx = (1/σ)·(ĝ - mean(ĝ) - x̂·mean(ĝ·x̂)),  dγ = Σ g·x̂,  dβ = Σ g  (sums over ``param_axes``).
    Batch norm, whose γ is constant over the statistics axes, reuses dγ and dβ for the two means.

    Without a graph being recorded the backward runs on raw arrays with the saved x̂ and 1/σ. With
    ``create_graph=True`` it recomputes x̂ from x with Tensor ops and evaluates the same formula
    with Tensor ops, so the gradient is itself differentiable (double backward).
    """

    def __init__(self, stats_axes: tuple[int, ...], param_axes: tuple[int, ...], eps: float,
                 has_weight: bool, has_bias: bool):
        self.stats_axes, self.param_axes, self.eps = stats_axes, param_axes, eps
        self.has_weight, self.has_bias = has_weight, has_bias

    def forward(self, x, *params):
        xp = get_array_module(x)
        self.count = math.prod(x.shape[a] for a in self.stats_axes)
        weight = params[0] if self.has_weight else None
        bias = params[-1] if self.has_bias else None
        across = 0 in self.stats_axes  # batch norm: statistics span the blocks, computed first
        # Layer/group norm with an affine output keep only μ and 1/σ (x is an input, kept anyway):
        # backward recomputes x̂ block by block, which saves an x-sized array per layer.
        keep = across or (weight is None and bias is None) or x.ndim == 0
        self.xhat = xhat = xp.empty_like(x) if keep else None
        y = xhat if weight is None and bias is None else xp.empty_like(x)
        if across:
            self._stats_across_blocks(x, xhat)
        else:
            shape = tuple(1 if i in self.stats_axes else n for i, n in enumerate(x.shape))
            self.mean, self.var_sum, self.inv_std = (xp.empty(shape, dtype=x.dtype) for _ in range(3))
        work = None if keep else _block_buffer(x)
        for blk in _blocks(x):
            xhat_b = xhat[blk] if keep else work[:len(range(*blk.indices(x.shape[0])))]
            if not across:  # layer and group norm: a sample's statistics lie inside its block
                self._block_stats(x, xhat_b, blk)
            y_b = y[blk]
            xhat_b *= self.inv_std if across else self.inv_std[blk]
            if weight is not None:
                xp.multiply(xhat_b, weight, out=y_b)
                if bias is not None:
                    y_b += bias
            elif bias is not None:
                xp.add(xhat_b, bias, out=y_b)
        return y

    def _stats_across_blocks(self, x, centred) -> None:
        """Batch norm: μ over the whole batch first, then Σ(x - μ)² accumulated block by block
        while x - μ is written into ``centred``."""
        xp = get_array_module(x)
        # μ's rounding error is amplified by |μ|/σ in x̂: accumulate it in float64 (batch norm's
        # slices are long), then round once.
        self.mean = (_reduce(self.stats_axes, x, dtype=xp.float64) / self.count).astype(x.dtype)
        self.var_sum = 0
        for blk in _blocks(x):
            c = centred[blk]
            xp.subtract(x[blk], self.mean, out=c)
            self.var_sum = self.var_sum + _reduce(self.stats_axes, c, c)
        self.inv_std = 1 / xp.sqrt(self.var_sum / self.count + self.eps)

    def _block_stats(self, x, c, blk: slice) -> None:
        """μ, Σ(x - μ)² and 1/σ of the samples in one block; x[blk] - μ goes into ``c``."""
        xp = get_array_module(x)
        mean, var_sum, inv_std = self.mean[blk], self.var_sum[blk], self.inv_std[blk]
        xp.divide(_reduce(self.stats_axes, x[blk]), self.count, out=mean)
        xp.subtract(x[blk], mean, out=c)
        var_sum[...] = _reduce(self.stats_axes, c, c)
        xp.divide(var_sum, self.count, out=inv_std)
        inv_std += self.eps
        xp.sqrt(inv_std, out=inv_std)
        xp.reciprocal(inv_std, out=inv_std)

    def backward(self, gy):
        if is_grad_enabled():
            return self._backward_graph(gy)
        if not (self.has_weight or self.has_bias):  # the output is the saved x̂ itself
            out = self._outputs[0]()
            if out is not None and out._version != 0:
                self.output()  # raises: the output, saved for backward, was modified in place
        needs = (self.needs_input_grad[0], self.has_weight and self.needs_input_grad[1],
                 self.has_bias and self.needs_input_grad[-1])
        weight = self.inputs[1].data if self.has_weight else None
        if 0 in self.stats_axes:
            grads = self._grads_batch(gy.data, weight, *needs)
        else:
            grads = self._grads_per_sample(gy.data, weight, *needs)
        return self._pack(*(None if a is None else Tensor._make(a) for a in grads))

    def _grads_batch(self, g, weight, need_x: bool, need_w: bool, need_b: bool) -> tuple:
        """Batch norm: γ is constant over the statistics axes, so mean(ĝ) = γ·dβ/m and
        mean(ĝ·x̂) = γ·dγ/m: dx = c·g - x̂·(c·dγ/m) - c·dβ/m with c = γ/σ."""
        xp, m, xhat = get_array_module(g), self.count, self.xhat
        gw = _reduce(self.param_axes, g, xhat) if need_w or need_x else None
        gb = _reduce(self.param_axes, g) if need_b or need_x else None
        gx = None
        if need_x:
            coef = self.inv_std if weight is None else self.inv_std * weight
            k2, k1 = gw * (coef / m), gb * (coef / m)
            gx = xp.empty_like(g)
            for blk in _blocks(g):
                gx_b = gx[blk]
                xp.multiply(g[blk], coef, out=gx_b)
                gx_b -= xhat[blk] * k2
                gx_b -= k1
        return gx, gw if need_w else None, gb if need_b else None

    def _grads_per_sample(self, g, weight, need_x: bool, need_w: bool, need_b: bool) -> tuple:
        """Layer and group norm, block by block (γ and β are shared along axis 0, so their
        gradients add up over the blocks): dx = (1/σ)·(ĝ - mean(ĝ) - x̂·mean(ĝ·x̂))."""
        xp, m = get_array_module(g), self.count
        gx = xp.empty_like(g) if need_x else None
        gw = gb = 0
        x, work = self.inputs[0].data, None if self.xhat is not None else _block_buffer(g)
        for blk in _blocks(g):
            g_b = g[blk]
            if work is None:
                xhat_b = self.xhat[blk]
            else:  # x̂ = (x - μ)/σ again, the forward's operations: the same values
                xhat_b = xp.subtract(x[blk], self.mean[blk], out=work[:g_b.shape[0]])
                xhat_b *= self.inv_std[blk]
            if need_w:
                gw = gw + _reduce(self.param_axes, g_b, xhat_b)
            if need_b:
                gb = gb + _reduce(self.param_axes, g_b)
            if not need_x:
                continue
            gx_b = gx[blk]
            ghat = g_b if weight is None else g_b * weight
            s1 = _reduce(self.stats_axes, ghat)
            s2 = _reduce(self.stats_axes, ghat, xhat_b)
            xp.multiply(xhat_b, s2 * (-1 / m), out=gx_b)
            gx_b += ghat
            gx_b -= s1 / m
            gx_b *= self.inv_std[blk]
        return gx, gw if need_w else None, gb if need_b else None

    def _backward_graph(self, gy: Tensor) -> tuple:
        """The same gradient written with Tensor ops on the recomputed x̂ (for double backward)."""
        x = self.inputs[0]
        weight = self.inputs[1] if self.has_weight else None
        axes = self.stats_axes
        centred = x - _mean(x, axes, keepdim=True)
        inv_std = rsqrt(_mean(centred * centred, axes, keepdim=True) + self.eps)
        xhat = centred * inv_std
        ghat = gy if weight is None else gy * weight
        gx = inv_std * (ghat - _mean(ghat, axes, keepdim=True) - xhat * _mean(ghat * xhat, axes, keepdim=True))
        gw = _sum_keep(gy * xhat, self.param_axes) if self.has_weight else None
        gb = _sum_keep(gy, self.param_axes) if self.has_bias else None
        return self._pack(gx, gw, gb)

    def _pack(self, gx: Any, gw: Any, gb: Any) -> tuple:
        return (gx,) + ((gw,) if self.has_weight else ()) + ((gb,) if self.has_bias else ())


def _normalize(x: Tensor, stats_axes: tuple[int, ...], param_axes: tuple[int, ...], param_shape: tuple[int, ...],
               weight: Tensor | None, bias: Tensor | None, eps: float) -> tuple[Tensor, Normalize]:
    """Run ``Normalize`` with γ and β reshaped to ``param_shape``; returns the output and the op
    (whose ``mean`` and ``var_sum`` batch norm needs for its running statistics)."""
    params = [reshape(p, param_shape) for p in (weight, bias) if p is not None]
    op = Normalize(stats_axes, param_axes, float(eps), weight is not None, bias is not None)
    return op(x, *params), op


def _check_floating(op: str, input: Tensor, **params: Tensor | None) -> None:  # noqa: A002
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}(): expected input to be a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise RuntimeError(f"{op}(): expected a floating point input, got {input.dtype} of shape {tuple(input.shape)}")
    for name, p in params.items():
        if p is not None and p.dtype != input.dtype:
            raise RuntimeError(f"{op}(): expected {name} of dtype {input.dtype} like the input, got {p.dtype}")


def _check_param(op: str, name: str, p: Tensor | None, shape: tuple[int, ...], input_shape: tuple) -> None:
    if p is not None and tuple(p.shape) != shape:
        raise RuntimeError(f"{op}(): expected {name} of shape {shape} for input of shape {input_shape}, "
                           f"got {tuple(p.shape)}")


def verify_batch_size(size: tuple[int, ...], prefix: str = "") -> None:
    """Batch statistics need more than one value per channel (else the variance is 0/0), as torch."""
    if math.prod(size[:1] + size[2:]) == 1:
        raise ValueError(f"{prefix}Expected more than 1 value per channel when training, got input size {size}")


# ----------------------------------------------------------------------------- batch norm
def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,  # noqa: A002
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation (Ioffe & Szegedy 2015) of an (N, C, *) input over every dim but C.

    Training: normalise with the batch mean and biased variance, and update the running statistics
    in place: r ← (1 - momentum)·r + momentum·s, with the unbiased variance for ``running_var`` (as
    PyTorch). Evaluation: y = x·a + b with a = γ/√(running_var + ε) and b = β - running_mean·a.
    """
    return batch_norm_act(input, running_mean, running_var, weight, bias, training, momentum, eps)


def batch_norm_act(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,  # noqa: A002
                   weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
                   momentum: float = 0.1, eps: float = 1e-5, relu: bool = False,
                   residual: Tensor | None = None) -> Tensor:
    """``batch_norm``, plus ``residual`` if given, then ReLU when ``relu``: ``relu(batch_norm(...) +
    residual)`` as one op where the input (and the residual) are batch-last (a convolution's output,
    see ``_fused_block``), as separate ops otherwise."""
    if Autocast.enabled:
        input, weight, bias, residual = Autocast.cast("batch_norm", input, weight, bias, residual)
    _check_floating("batch_norm", input, weight=weight, bias=bias)
    shape = tuple(input.shape)
    if input.ndim < 2:
        raise ValueError(f"batch_norm(): expected input of shape (N, C, *), got {shape}")
    channels = shape[1]
    for name, p in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if p is not None and p.numel() != channels:
            raise RuntimeError(f"batch_norm(): {name} should contain {channels} elements not {p.numel()} "
                               f"(input of shape {shape})")
    param_shape = (1, channels) + (1,) * (input.ndim - 2)
    if residual is not None and (tuple(residual.shape) != shape or residual.dtype != input.dtype):
        raise RuntimeError(f"batch_norm(): the residual of shape {tuple(residual.shape)} ({residual.dtype}) does not "
                           f"match the input {shape} ({input.dtype})")
    fused = residual is None or _rows(residual.data) is not None
    if not training or not fused:
        if not training and (running_mean is None or running_var is None):
            raise RuntimeError("batch_norm(): running_mean and running_var must be defined in evaluation mode")
        if residual is not None:
            out = batch_norm_act(input, running_mean, running_var, weight, bias, training, momentum, eps)
            return _relu(out + residual) if relu else out + residual
        return _batch_norm_eval(input, running_mean, running_var, weight, bias, eps, param_shape, relu)
    if momentum is None:
        raise TypeError("batch_norm(): momentum must be a number (modules turn momentum=None into 1/num_batches)")
    verify_batch_size(shape, "batch_norm(): ")
    if _rows(input.data) is not None:
        params = [reshape(p, (channels,)) for p in (weight, bias) if p is not None]
        op = BatchNormRows(float(eps), weight is not None, bias is not None, relu, residual is not None)
        out = op(input, *([] if residual is None else [residual]), *params)
    else:
        axes = (0,) + tuple(range(2, input.ndim))
        out, op = _normalize(input, axes, axes, param_shape, weight, bias, eps)
        out = out if residual is None else out + residual
        out = _relu(out) if relu else out
    with no_grad():
        if running_mean is not None:
            running_mean.mul_(1 - momentum).add_(op.mean.reshape(running_mean.shape), alpha=momentum)
        if running_var is not None:
            unbiased = op.var_sum.reshape(running_var.shape) / (op.count - 1)
            running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)
    return out


def _rows(a: Any) -> Any | None:
    """The channel rows of a batch-last NumPy array (the fused fast paths' input); None for another
    layout or a CuPy array (on a GPU the separate ops are the path)."""
    return channel_rows(a) if device_of(a) == "cpu" else None


def _relu(x: Tensor) -> Tensor:
    from deepnum.functional.activation import relu

    return relu(x)


def _batch_norm_eval(x: Tensor, running_mean: Tensor, running_var: Tensor, weight: Tensor | None,
                     bias: Tensor | None, eps: float, param_shape: tuple[int, ...], relu: bool = False) -> Tensor:
    """y = x·a + b, a = γ/√(running_var + ε), b = β - running_mean·a (the form PyTorch's CPU kernel
    uses), differentiable in x, γ and β."""
    xp = get_array_module(x.data)
    inv_std = (1 / xp.sqrt(running_var.data + eps)).astype(x.dtype, copy=False)
    scale = Tensor._make(inv_std) if weight is None else weight * Tensor._make(inv_std)
    shift = scale * Tensor._make(-running_mean.data.astype(x.dtype, copy=False))
    if bias is not None:
        shift = shift + bias
    if relu and not (is_grad_enabled() and x.requires_grad) and _rows(x.data) is not None:
        return Tensor._make(affine_rows(x.data, scale.data.reshape(-1), shift.data.reshape(-1), relu=True))
    out = ChannelAffine()(x, reshape(scale, param_shape), reshape(shift, param_shape))
    return _relu(out) if relu else out


class ChannelAffine(Function):
    """y = x·a + b with a, b broadcast per channel (batch norm in evaluation): one output array
    written in cache-sized blocks (on the contiguous channel rows of a batch-last x). dx = g·a,
    da = Σ g·x, db = Σ g over the broadcast axes."""

    def forward(self, x, a, b):
        xp = get_array_module(x)
        self.axes = tuple(i for i, n in enumerate(a.shape) if n == 1)
        if _rows(x) is not None:
            return affine_rows(x, a.reshape(-1), b.reshape(-1), relu=False)
        y = xp.empty_like(x)
        for blk in _blocks(x):
            y_b = y[blk]
            xp.multiply(x[blk], a, out=y_b)
            y_b += b
        return y

    def backward(self, gy):
        x, a, _ = self.inputs
        need_x, need_a, need_b = self.needs_input_grad
        if is_grad_enabled():
            return (gy * a if need_x else None, _sum_keep(gy * x, self.axes) if need_a else None,
                    _sum_keep(gy, self.axes) if need_b else None)
        g = gy.data
        grads = (g * a.data if need_x else None, _reduce(self.axes, g, x.data) if need_a else None,
                 _reduce(self.axes, g) if need_b else None)
        return tuple(None if v is None else Tensor._make(v) for v in grads)


# ----------------------------------------------------------------------------- layer norm, group norm
def layer_norm(input: Tensor, normalized_shape: Any, weight: Tensor | None = None,  # noqa: A002
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Layer normalisation (Ba et al. 2016): standardise each sample over its trailing
    ``normalized_shape`` dims, then scale and shift by γ and β of that shape."""
    if Autocast.enabled:
        input, weight, bias = Autocast.cast("layer_norm", input, weight, bias)
    _check_floating("layer_norm", input, weight=weight, bias=bias)
    norm_shape = (int(normalized_shape),) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    shape, k = tuple(input.shape), len(norm_shape)
    if k == 0 or input.ndim < k or shape[input.ndim - k:] != norm_shape:
        raise RuntimeError(f"layer_norm(): given normalized_shape={list(norm_shape)}, expected input with shape "
                           f"[*, {', '.join(map(str, norm_shape))}], but got input of size {shape}")
    _check_param("layer_norm", "weight", weight, norm_shape, shape)
    _check_param("layer_norm", "bias", bias, norm_shape, shape)
    rows, size = math.prod(shape[:input.ndim - k]), math.prod(norm_shape)
    flat = reshape(input, (rows, size))  # one row per sample: blocks of rows, two-axis reductions
    out = _normalize(flat, (1,), (0,), (1, size), weight, bias, eps)[0]
    return reshape(out, shape)


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None,  # noqa: A002
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Group normalisation (Wu & He 2018): split the C channels of an (N, C, *) input into
    ``num_groups`` groups, standardise each sample's group over its channels and spatial positions,
    then scale and shift per channel. One group is layer norm over (C, *); C groups is instance norm."""
    if Autocast.enabled:
        input, weight, bias = Autocast.cast("group_norm", input, weight, bias)
    _check_floating("group_norm", input, weight=weight, bias=bias)
    shape = tuple(input.shape)
    if input.ndim < 2:
        raise RuntimeError(f"group_norm(): expected input of shape (N, C, *), got {shape}")
    n, channels = shape[:2]
    if num_groups <= 0 or channels % num_groups:
        raise RuntimeError(f"group_norm(): expected number of channels in input to be divisible by num_groups, "
                           f"but got input of shape {shape} and num_groups={num_groups}")
    _check_param("group_norm", "weight", weight, (channels,), shape)
    _check_param("group_norm", "bias", bias, (channels,), shape)
    grouped = reshape(input, (n, num_groups, channels // num_groups, math.prod(shape[2:])))
    out = _normalize(grouped, (2, 3), (0, 3), (1, num_groups, channels // num_groups, 1), weight, bias, eps)[0]
    return reshape(out, shape)
