"""Converters of the elementwise, activation, shape and reduction ops: one small function per op
family, registered by the deepnum ``Function`` class it converts (``CONVERTERS``). A converter gets
the ``Graph`` and the traced ``Call`` and returns the ONNX names of the op's outputs (ONNX operator
semantics: https://onnx.ai/onnx/operators/)."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from deepnum.functional import _activation_smooth as smooth
from deepnum.functional import activation as act
from deepnum.functional import array as arr
from deepnum.functional import indexing as idx
from deepnum.functional import joining as join
from deepnum.functional import math as fm
from deepnum.functional import reduction as red
from deepnum.onnx._graph import Call, Graph, host

Converter = Callable[[Graph, Call], list[str]]
CONVERTERS: dict[type, Converter] = {}
_INT64_MAX = np.iinfo(np.int64).max


def converts(*classes: type) -> Callable[[Converter], Converter]:
    """Register a converter for the given Function classes."""
    def register(fn: Converter) -> Converter:
        for cls in classes:
            CONVERTERS[cls] = fn
        return fn
    return register


def _hint(c: Call) -> str:
    return c.path


_SAME_NAME = {fm.Add: "Add", fm.Sub: "Sub", fm.Mul: "Mul", fm.Div: "Div", fm.Pow: "Pow", fm.Maximum: "Max",
              fm.Minimum: "Min", fm.Neg: "Neg", fm.Exp: "Exp", fm.Log: "Log", fm.Sqrt: "Sqrt",
              fm.Reciprocal: "Reciprocal", fm.Abs: "Abs", fm.Sin: "Sin", fm.Cos: "Cos", fm.Tanh: "Tanh",
              act.ReLU: "Relu", smooth.Sigmoid: "Sigmoid"}


@converts(*_SAME_NAME)
def _same_name(g: Graph, c: Call) -> list[str]:
    if type(c.fn) is fm.Add:
        fused = _gemm_bias(g, c)
        if fused is not None:
            return [fused]
    return [g.one(_SAME_NAME[type(c.fn)], c.names, _hint(c))]


def _gemm_bias(g: Graph, c: Call) -> str | None:
    """Linear's x·Wᵀ + b: fold the bias into the Gemm that made x·Wᵀ (its C input)."""
    node = g.producer.get(c.names[0])
    bias = c.names[1]
    if (node is None or node.op_type != "Gemm" or len(node.input) != 2 or bias not in g.initializers
            or g.initializers[bias].ndim != 1 or g.uses.get(id(c.inputs[0]), 0) != 1
            or c.results[0].shape != c.inputs[0].shape):
        return None
    node.input.append(bias)
    return node.output[0]


@converts(fm.PowScalar)
def _pow_scalar(g: Graph, c: Call) -> list[str]:
    return [g.one("Pow", [c.names[0], c.scalar(c.fn.exponent, g)], _hint(c))]


@converts(fm.Rsqrt)
def _rsqrt(g: Graph, c: Call) -> list[str]:
    return [g.one("Reciprocal", [g.one("Sqrt", c.names, _hint(c))], _hint(c))]


@converts(fm.Log1p)
def _log1p(g: Graph, c: Call) -> list[str]:
    return [g.one("Log", [g.one("Add", [c.names[0], c.scalar(1.0, g)], _hint(c))], _hint(c))]


@converts(fm.Where)
def _where(g: Graph, c: Call) -> list[str]:
    cond1, cond2 = host(c.fn.condition), host(c.fn2.condition)
    if cond1.shape != cond2.shape or not np.array_equal(cond1, cond2):
        raise c.error("the condition depends on the input but was computed outside deepnum's autograd ops "
                      "(a comparison): a graph cannot compute it")
    return [g.one("Where", [g.const(cond1.astype(bool), "condition"), *c.names], _hint(c))]


@converts(fm.Clamp)
def _clamp(g: Graph, c: Call) -> list[str]:
    y = c.names[0]
    if c.fn.has_low:
        y = g.one("Max", [y, c.names[1]], _hint(c))
    if c.fn.has_high:
        y = g.one("Min", [y, c.names[-1]], _hint(c))
    return [y]


@converts(act.LeakyReLU)
def _leaky_relu(g: Graph, c: Call) -> list[str]:
    return [g.one("LeakyRelu", c.names, _hint(c), alpha=float(c.fn.negative_slope))]


@converts(act.Hardtanh)
def _hardtanh(g: Graph, c: Call) -> list[str]:
    return [g.one("Clip", [c.names[0], c.scalar(c.fn.min_val, g), c.scalar(c.fn.max_val, g)], _hint(c))]


@converts(act.Hardsigmoid)
def _hardsigmoid(g: Graph, c: Call) -> list[str]:
    return [g.one("HardSigmoid", c.names, _hint(c), alpha=1 / 6, beta=0.5)]


@converts(act.Hardswish)
def _hardswish(g: Graph, c: Call) -> list[str]:
    return [g.one("HardSwish", c.names, _hint(c))]


@converts(act.Softmax, act.LogSoftmax)
def _softmax(g: Graph, c: Call) -> list[str]:
    op = "Softmax" if type(c.fn) is act.Softmax else "LogSoftmax"
    return [g.one(op, c.names, _hint(c), axis=int(c.fn.dim))]  # explicit axis: opset < 13 defaults to 1


@converts(smooth.ELU)
def _elu(g: Graph, c: Call) -> list[str]:
    return [g.one("Elu", c.names, _hint(c), alpha=float(c.fn.alpha))]


@converts(smooth.Softplus)
def _softplus(g: Graph, c: Call) -> list[str]:
    beta = float(c.fn.beta)
    if beta == 1.0:
        return [g.one("Softplus", c.names, _hint(c))]
    scaled = g.one("Mul", [c.names[0], c.scalar(beta, g)], _hint(c))
    return [g.one("Div", [g.one("Softplus", [scaled], _hint(c)), c.scalar(beta, g)], _hint(c))]


def gelu(g: Graph, c: Call, x: str, tanh: bool = False) -> str:
    """GELU: the Gelu op from opset 20, else x·Φ(x) with Φ(x) = (1 + erf(x/√2))/2 (or the tanh form)."""
    if g.opset >= 20:
        return g.one("Gelu", [x], _hint(c), approximate="tanh" if tanh else "none")
    if tanh:
        inner = g.one("Add", [x, g.one("Mul", [c.scalar(0.044715, g), g.one("Pow", [x, c.scalar(3.0, g)])])])
        t = g.one("Tanh", [g.one("Mul", [inner, c.scalar(math.sqrt(2 / math.pi), g)])])
    else:
        t = g.one("Erf", [g.one("Mul", [x, c.scalar(1 / math.sqrt(2), g)], _hint(c))], _hint(c))
    half = g.one("Mul", [x, c.scalar(0.5, g)], _hint(c))
    return g.one("Mul", [half, g.one("Add", [t, c.scalar(1.0, g)], _hint(c))], _hint(c))


@converts(smooth.GELU, smooth.GELUTanh)
def _gelu(g: Graph, c: Call) -> list[str]:
    return [gelu(g, c, c.names[0], tanh=type(c.fn) is smooth.GELUTanh)]


@converts(smooth.SiLU)
def _silu(g: Graph, c: Call) -> list[str]:
    return [g.one("Mul", [c.names[0], g.one("Sigmoid", c.names, _hint(c))], _hint(c))]


@converts(smooth.Mish)
def _mish(g: Graph, c: Call) -> list[str]:
    return [g.one("Mul", [c.names[0], g.one("Tanh", [g.one("Softplus", c.names, _hint(c))], _hint(c))], _hint(c))]


# --- shapes ---

@converts(arr.Reshape)
def _reshape(g: Graph, c: Call) -> list[str]:
    shape = g.shape(c.results[0].shape, c.results2[0].shape, c.where(), wildcard=-1)
    return [g.one("Reshape", [c.names[0], shape], _hint(c))]


@converts(arr.Permute)
def _permute(g: Graph, c: Call) -> list[str]:
    return [g.one("Transpose", c.names, _hint(c), perm=[int(a) for a in c.fn.axes])]


@converts(arr.BroadcastTo)
def _broadcast(g: Graph, c: Call) -> list[str]:
    s_in, s_in2 = c.inputs[0].shape, c.inputs2[0].shape
    out, out2 = c.results[0].shape, c.results2[0].shape
    pad = len(out) - len(s_in)
    carried = all(i >= pad and s_in[i - pad] == out[i] and s_in2[i - pad] == out2[i]
                  for i in range(len(out)) if out[i] != out2[i])
    shape = g.shape(out, out2, c.where(), wildcard=1 if carried else None)
    return [g.one("Expand", [c.names[0], shape], _hint(c))]


def _norm_axis(a: int, ndim: int) -> int:
    return a + ndim if a < 0 else a


@converts(arr.Roll)
def _roll(g: Graph, c: Call) -> list[str]:
    shifts, dims = c.fn.shifts, c.fn.dims
    if dims is None:
        raise c.error("roll without dims (over the flattened tensor) is not supported")
    shifts = [shifts] if isinstance(shifts, int) else list(shifts)
    dims = [dims] if isinstance(dims, int) else list(dims)
    y, shape = c.names[0], c.inputs[0].shape
    for s, d in zip(shifts, dims):
        d = _norm_axis(int(d), len(shape))
        n = shape[d]
        if c.inputs2[0].shape[d] != n:
            raise c.error("roll along the batch axis is not supported with a dynamic batch")
        s %= n
        if s:
            tail = g.one("Slice", [y, g.ints([n - s]), g.ints([n]), g.ints([d])], _hint(c))
            head = g.one("Slice", [y, g.ints([0]), g.ints([n - s]), g.ints([d])], _hint(c))
            y = g.one("Concat", [tail, head], _hint(c), axis=d)
    return [y]


def _index_items(index: Any, ndim: int, c: Call) -> list[Any]:
    items = list(index) if isinstance(index, tuple) else [index]
    if any(not (isinstance(i, int | slice) or i is None or i is Ellipsis) for i in items):
        raise c.error(f"indexing with {index!r} (tensors or arrays as indices) is not supported")
    used = sum(1 for i in items if i is not None and i is not Ellipsis)
    if Ellipsis in items:
        k = items.index(Ellipsis)
        items[k:k + 1] = [slice(None)] * (ndim - used)
    return items


@converts(idx.GetItem)
def _getitem(g: Graph, c: Call) -> list[str]:
    y, axis = c.names[0], 0
    for item in _index_items(c.fn.index, c.inputs[0].ndim, c):
        if item is None:
            y = g.one("Unsqueeze", [y, g.ints([axis])], _hint(c))
            axis += 1
        elif isinstance(item, int):
            y = g.one("Gather", [y, g.const(np.asarray(item, dtype=np.int64))], _hint(c), axis=axis)
        else:
            if item != slice(None):
                step = 1 if item.step is None else item.step
                start = item.start if item.start is not None else (0 if step > 0 else -1)
                stop = item.stop if item.stop is not None else (_INT64_MAX if step > 0 else -_INT64_MAX)
                y = g.one("Slice", [y, g.ints([start]), g.ints([stop]), g.ints([axis]), g.ints([step])], _hint(c))
            axis += 1
    return [y]


@converts(join.Cat)
def _cat(g: Graph, c: Call) -> list[str]:
    names = [n for n, skip in zip(c.names, c.fn.skip) if not skip]
    return [g.one("Concat", names, _hint(c), axis=int(c.fn.dim))]


@converts(join.Stack)
def _stack(g: Graph, c: Call) -> list[str]:
    axis = _norm_axis(int(c.fn.dim), c.inputs[0].ndim + 1)
    parts = [g.one("Unsqueeze", [n, g.ints([axis])], _hint(c)) for n in c.names]
    return [g.one("Concat", parts, _hint(c), axis=axis)]


def _split(g: Graph, c: Call, sizes: list[int], axis: int) -> list[str]:
    if c.inputs[0].shape[axis] != c.inputs2[0].shape[axis]:
        raise c.error("splitting along the batch axis is not supported with a dynamic batch")
    return g.node("Split", [c.names[0], g.ints(sizes)], len(sizes), _hint(c), axis=axis)


@converts(join.Split)
def _split_op(g: Graph, c: Call) -> list[str]:
    return _split(g, c, list(c.fn.sizes), _norm_axis(int(c.fn.dim), c.inputs[0].ndim))


@converts(join.Unbind)
def _unbind(g: Graph, c: Call) -> list[str]:
    axis = _norm_axis(int(c.fn.dim), c.inputs[0].ndim)
    parts = _split(g, c, [1] * c.inputs[0].shape[axis], axis)
    return [g.one("Squeeze", [p, g.ints([axis])], _hint(c)) for p in parts]


@converts(join.ConstantPad)
def _constant_pad(g: Graph, c: Call) -> list[str]:
    y, widths = c.names[0], list(c.fn.widths)
    crops = [(max(-a, 0), max(-b, 0)) for a, b in widths]
    for axis, (a, b) in enumerate(crops):
        if a or b:
            y = g.one("Slice", [y, g.ints([a]), g.ints([-b if b else _INT64_MAX]), g.ints([axis])], _hint(c))
    grow = [(max(a, 0), max(b, 0)) for a, b in widths]
    if any(a or b for a, b in grow):
        pads = [a for a, _ in grow] + [b for _, b in grow]
        y = g.one("Pad", [y, g.ints(pads), c.scalar(c.fn.value, g)], _hint(c), mode="constant")
    return [y]


@converts(join.IndexPad)
def _index_pad(g: Graph, c: Call) -> list[str]:
    """Reflect / replicate / circular padding: a Gather of fixed positions along each padded axis."""
    y = c.names[0]
    for axis, positions, _ in c.fn.maps:
        if c.inputs[0].shape[axis] != c.inputs2[0].shape[axis]:
            raise c.error("padding along the batch axis is not supported with a dynamic batch")
        y = g.one("Gather", [y, g.const(host(positions).astype(np.int64), "positions")], _hint(c), axis=int(axis))
    return [y]


# --- reductions ---

@converts(red.Sum)
def _sum(g: Graph, c: Call) -> list[str]:
    return [g.axes_input("ReduceSum", c.names[0], c.fn.axes, c.fn.keepdim, _hint(c))]


@converts(red.Extreme)
def _extreme(g: Graph, c: Call) -> list[str]:
    op = "ReduceMax" if c.fn.largest else "ReduceMin"
    return [g.axes_input(op, c.names[0], c.fn.axes, c.fn.keepdim, _hint(c))]


@converts(red.LogSumExp)
def _logsumexp(g: Graph, c: Call) -> list[str]:
    return [g.axes_input("ReduceLogSumExp", c.names[0], c.fn.axes, c.fn.keepdim, _hint(c))]
