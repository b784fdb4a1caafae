"""Converters of the layer ops: linear/matmul (Gemm with ``transB=1``), convolution, pooling, the
normalisations, attention, and the fused blocks deepnum runs for speed (a fused op becomes the ONNX
ops it stands for)."""
from __future__ import annotations

import math

import numpy as np

from deepnum.functional import conv_ops, linalg
from deepnum.functional import normalization as norm
from deepnum.functional._fused_block import AddReLU, SubsamplePad
from deepnum.functional._windows import AvgPool, MaxPool, count_divisor
from deepnum.functional.attention import ScaledDotProductAttention
from deepnum.functional.sparse import Embedding
from deepnum.models.densenet import SharedConcat
from deepnum.nn.modules._transformer_ops import FusedLinear
from deepnum.onnx._graph import Call, Graph, host
from deepnum.onnx._ops import converts, gelu


def _transposed_initializer(g: Graph, name: str) -> str | None:
    """W when ``name`` is Transpose(W) of a 2-D initializer W (a Linear's weight read as Wᵀ)."""
    node = g.producer.get(name)
    if node is None or node.op_type != "Transpose" or node.input[0] not in g.initializers:
        return None
    return node.input[0] if g.initializers[node.input[0]].ndim == 2 else None


@converts(linalg.MatMul)
def _matmul(g: Graph, c: Call) -> list[str]:
    weight = _transposed_initializer(g, c.names[1])
    if weight is not None and c.inputs[0].ndim == 2:
        # Gemm computes A·Bᵀ with transB=1, so the (out, in) weight is used as stored
        return [g.one("Gemm", [c.names[0], weight], c.path, transB=1)]
    return [g.one("MatMul", c.names, c.path)]


def _transpose_last(g: Graph, name: str, ndim: int, hint: str) -> str:
    return g.one("Transpose", [name], hint, perm=list(range(ndim - 2)) + [ndim - 1, ndim - 2])


@converts(FusedLinear)
def _fused_linear(g: Graph, c: Call) -> list[str]:
    x, w = c.names[:2]
    if c.inputs[0].ndim == 2:
        y = g.one("Gemm", c.names, c.path, transB=1)
    else:
        y = g.one("MatMul", [x, _transpose_last(g, w, 2, c.path)], c.path)
        if len(c.names) > 2:
            y = g.one("Add", [y, c.names[2]], c.path)
    if c.fn.activation == "relu":
        y = g.one("Relu", [y], c.path)
    elif c.fn.activation == "gelu":
        y = gelu(g, c, y)
    return [y]


def _conv_attrs(c: Call, geom: conv_ops.ConvGeometry) -> dict:
    if any(v < 0 for v in geom.lo + geom.hi):
        raise c.error(f"negative padding {geom.lo}/{geom.hi} is not supported")
    return {"kernel_shape": list(geom.kernel), "strides": list(geom.stride), "dilations": list(geom.dilation),
            "pads": list(geom.lo) + list(geom.hi), "group": int(geom.groups)}


@converts(conv_ops.Convolution)
def _conv(g: Graph, c: Call) -> list[str]:
    return [g.one("Conv", c.names, c.path, **_conv_attrs(c, c.fn.geom))]


@converts(conv_ops.ConvTranspose)
def _conv_transpose(g: Graph, c: Call) -> list[str]:
    geom = c.fn.geom
    natural = [s * (o - 1) + d * (k - 1) + 1 - a - b for s, o, d, k, a, b
               in zip(geom.stride, geom.out, geom.dilation, geom.kernel, geom.lo, geom.hi)]
    extra = [size - n for size, n in zip(geom.size, natural)]
    return [g.one("ConvTranspose", c.names, c.path, output_padding=extra, **_conv_attrs(c, geom))]


def _pool_attrs(win: object) -> dict:
    floor = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, p, d, k, s
             in zip(win.in_size, win.padding, win.dilation, win.kernel, win.stride)]
    return {"kernel_shape": list(win.kernel), "strides": list(win.stride), "pads": list(win.padding) * 2,
            "ceil_mode": int(list(win.out_size) != floor)}


@converts(MaxPool)
def _max_pool(g: Graph, c: Call) -> list[str]:
    win = c.fn.windows
    if not c.fn.largest:
        neg = g.one("Neg", c.names, c.path)
        return [g.one("Neg", [g.one("MaxPool", [neg], c.path, dilations=list(win.dilation), **_pool_attrs(win))])]
    return [g.one("MaxPool", c.names, c.path, dilations=list(win.dilation), **_pool_attrs(win))]


@converts(AvgPool)
def _avg_pool(g: Graph, c: Call) -> list[str]:
    win, divisor = c.fn.windows, host(c.fn.divisor)
    if any(d != 1 for d in win.dilation):
        raise c.error("dilated average pooling is not supported")
    for include in (0, 1):
        expected = np.asarray(count_divisor(win, bool(include)))
        if np.array_equal(np.broadcast_to(divisor, np.broadcast_shapes(divisor.shape, expected.shape)),
                          np.broadcast_to(expected, np.broadcast_shapes(divisor.shape, expected.shape))):
            return [g.one("AveragePool", c.names, c.path, count_include_pad=include, **_pool_attrs(win))]
    if divisor.ndim == 0:  # divisor_override: the window sum over the divisor
        total = g.one("AveragePool", c.names, c.path, count_include_pad=1, **_pool_attrs(win))
        scale = math.prod(win.kernel) / float(divisor)
        return [g.one("Mul", [total, c.scalar(scale, g)], c.path)]
    raise c.error("an average-pooling divisor that ONNX cannot express")


@converts(norm.ChannelAffine)
def _channel_affine(g: Graph, c: Call) -> list[str]:
    """Batch norm in eval mode, already folded to x·a + b per channel (a = γ/√(σ²+ε), b = β − μ·a)."""
    return [g.one("Add", [g.one("Mul", c.names[:2], c.path), c.names[2]], c.path)]


@converts(norm.Normalize)
def _normalize(g: Graph, c: Call) -> list[str]:
    fn, x = c.fn, c.names[0]
    ndim = c.inputs[0].ndim
    axes = sorted(a % ndim for a in fn.stats_axes)
    weight = c.names[1] if fn.has_weight else None
    bias = c.names[-1] if fn.has_bias else None
    normalized = tuple(c.inputs[0].shape[axes[0]:])
    trailing = axes == list(range(axes[0], ndim)) and axes[0] > 0
    size = math.prod(normalized)
    shapes_fit = all(tuple(t.shape[t.ndim - len(normalized):]) == normalized and math.prod(t.shape) == size
                     for t in c.inputs[1:])
    if trailing and shapes_fit and g.opset >= 17:
        if any(tuple(t.shape) != normalized for t in c.inputs[1:]):  # (1, E) -> (E,): X's trailing shape
            weight, bias = (g.one("Reshape", [p, g.ints(normalized)], c.path) if p else p for p in (weight, bias))
        scale = weight or g.const(np.ones(normalized, dtype=c.dtype()), "ones")
        inputs = [x, scale] + ([bias] if bias else [])
        return [g.one("LayerNormalization", inputs, c.path, axis=axes[0], epsilon=float(fn.eps))]
    mean = g.axes_input("ReduceMean", x, axes, True, c.path)
    d = g.one("Sub", [x, mean], c.path)
    var = g.axes_input("ReduceMean", g.one("Mul", [d, d], c.path), axes, True, c.path)
    inv = g.one("Reciprocal", [g.one("Sqrt", [g.one("Add", [var, c.scalar(fn.eps, g)], c.path)], c.path)], c.path)
    y = g.one("Mul", [d, inv], c.path)
    if weight:
        y = g.one("Mul", [y, weight], c.path)
    if bias:
        y = g.one("Add", [y, bias], c.path)
    return [y]


@converts(ScaledDotProductAttention)
def _attention(g: Graph, c: Call) -> list[str]:
    """softmax(scale·Q·Kᵀ + mask, over the keys)·V, decomposed into MatMul / Softmax."""
    fn = c.fn
    if fn.drop is not None:
        raise c.error("attention dropout is active (export runs the model in eval mode; dropout_p must be 0)")
    q, k, v = c.names[:3]
    rank = c.inputs[0].ndim
    s = g.one("MatMul", [g.one("Mul", [q, c.scalar(fn.scale, g)], c.path), _transpose_last(g, k, rank, c.path)],
              c.path)
    if len(c.names) > 3:
        s = g.one("Add", [s, c.names[3]], c.path)
    if fn.keep is not None:
        keep, keep2 = host(fn.keep), host(c.fn2.keep)
        if keep.shape != keep2.shape or not np.array_equal(keep, keep2):
            raise c.error("a boolean attention mask that depends on the input (a key padding mask made from it) "
                          "cannot be exported; pass it as a float mask computed with tensor ops, or leave it out")
        s = g.one("Where", [g.const(keep.astype(bool), "keep"), s, c.scalar(-np.inf, g)], c.path)
    p = g.one("Softmax", [s], c.path, axis=-1)
    out = g.one("MatMul", [p, v], c.path)
    return [out, p] if fn.need_weights else [out]


@converts(SubsamplePad)
def _subsample_pad(g: Graph, c: Call) -> list[str]:
    """Option A's shortcut: x[:, :, ::s, ::s] with zero channels appended."""
    s, channels = int(c.fn.stride), int(c.fn.channels)
    big = np.iinfo(np.int64).max
    y = g.one("Slice", [c.names[0], g.ints([0, 0]), g.ints([big, big]), g.ints([2, 3]), g.ints([s, s])], c.path)
    extra = channels - c.inputs[0].shape[1]
    pads = [0, 0, 0, 0, 0, extra, 0, 0]
    return [g.one("Pad", [y, g.ints(pads), c.scalar(0.0, g)], c.path, mode="constant")]


@converts(AddReLU)
def _add_relu(g: Graph, c: Call) -> list[str]:
    return [g.one("Relu", [g.one("Add", c.names, c.path)], c.path)]


@converts(SharedConcat)
def _shared_concat(g: Graph, c: Call) -> list[str]:
    return [g.one("Concat", c.names, c.path, axis=1)]


@converts(Embedding)
def _embedding(g: Graph, c: Call) -> list[str]:
    """Rows of the table at the indices: Gather on axis 0 (the indices are the model's input, read
    by the op as an array rather than a Tensor)."""
    ids = g.arrays.get(id(c.fn.indices))
    if ids is None:
        first, second = host(c.fn.indices), host(c.fn2.indices)
        if first.shape != second.shape or not np.array_equal(first, second):
            raise c.error("the indices depend on the batch but are not an input of the model")
        ids = g.const(first, "indices")
    return [g.one("Gather", [c.names[0], ids], c.path, axis=0)]
