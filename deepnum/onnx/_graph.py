"""The ONNX graph under construction, and what converters use to add to it.

A converter sees one ``Call`` (the op traced at the example batch size and, for a dynamic batch,
the same op traced at a second batch size) and adds nodes through ``Graph``. Comparing the two
traces tells which sizes depend on the batch: such a size is k·N for the symbolic batch N, and
``Graph.shape`` writes it as a computed dimension (or as -1 / 1 where Reshape / Expand allow it)
instead of baking the example's number into the file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepnum.tensor import Tensor


def host(array: Any) -> np.ndarray:
    """A NumPy copy of a NumPy or CuPy array (a model on the GPU exports as well)."""
    return array.get() if hasattr(array, "get") else np.asarray(array)


class ExportError(RuntimeError):
    """An op or a value that ``deepnum.onnx.export`` cannot express in ONNX."""


@dataclass
class Call:
    """One traced op for a converter: the Function at both batch sizes, the ONNX names of its
    inputs, and its input/output Tensors at both batch sizes."""

    fn: Any
    fn2: Any
    names: list[str]
    inputs: tuple[Tensor, ...]
    inputs2: tuple[Tensor, ...]
    results: tuple[Tensor, ...]
    results2: tuple[Tensor, ...]
    path: str

    @property
    def op(self) -> str:
        return type(self.fn).__name__

    def where(self) -> str:
        return f"{type(self.fn).__module__}.{self.op}" + (f" in module {self.path!r}" if self.path else "")

    def error(self, message: str) -> ExportError:
        return ExportError(f"deepnum.onnx.export: {self.where()}: {message}")

    def dtype(self, index: int = 0) -> np.dtype:
        return self.results[index].data.dtype

    def scalar(self, value: float, graph: Graph) -> str:
        """A 0-d initializer of the op's output dtype."""
        return graph.const(np.asarray(value, dtype=self.dtype()))


@dataclass
class Graph:
    """Nodes, initializers and the batch-size bookkeeping of one export."""

    opset: int
    batch_input: str | None = None
    batch_axis: int = 0
    batches: tuple[int, int] = (1, 1)
    nodes: list[Any] = field(default_factory=list)
    initializers: dict[str, np.ndarray] = field(default_factory=dict)
    producer: dict[str, Any] = field(default_factory=dict)  # value name -> node that makes it
    uses: dict[int, int] = field(default_factory=dict)  # id(traced Tensor) -> how many ops read it
    arrays: dict[int, str] = field(default_factory=dict)  # id(array of an input-dependent Tensor) -> name
    _counter: int = 0
    _consts: dict[tuple, str] = field(default_factory=dict)
    _batch: str | None = None

    def fresh(self, hint: str) -> str:
        self._counter += 1
        return f"{re.sub(r'[^A-Za-z0-9_./]', '_', hint)}_{self._counter}"

    def node(self, op: str, inputs: list[str], n_out: int = 1, hint: str = "", **attrs: Any) -> list[str]:
        """Add a node; returns its output names."""
        from onnx import helper
        outs = [self.fresh(f"{hint}/{op}" if hint else op) for _ in range(n_out)]
        node = helper.make_node(op, inputs, outs, name=outs[0], **attrs)
        self.nodes.append(node)
        for o in outs:
            self.producer[o] = node
        return outs

    def one(self, op: str, inputs: list[str], hint: str = "", **attrs: Any) -> str:
        return self.node(op, inputs, 1, hint, **attrs)[0]

    def add_initializer(self, name: str, value: np.ndarray) -> str:
        base, k = name, 1
        while name in self.initializers:
            k += 1
            name = f"{base}_{k}"
        self.initializers[name] = np.array(value, order="C")  # (ascontiguousarray makes 0-d 1-d)
        return name

    def const(self, value: Any, hint: str = "const") -> str:
        """An initializer holding ``value``; small constants are shared."""
        value = np.asarray(value)
        key = None
        if value.size <= 16:
            key = (value.dtype.str, value.shape, value.tobytes())
            if key in self._consts:
                return self._consts[key]
        name = self.add_initializer(self.fresh(hint), value)
        if key is not None:
            self._consts[key] = name
        return name

    def ints(self, values: Any) -> str:
        return self.const(np.asarray(list(values), dtype=np.int64), "ints")

    def batch_size(self) -> str:
        """The symbolic batch size N as an int64 tensor of shape (1,), read off the first input."""
        if self._batch is None:
            shape = self.one("Shape", [self.batch_input], hint="batch")
            self._batch = self.one("Gather", [shape, self.ints([self.batch_axis])], hint="batch", axis=0)
        return self._batch

    def batch_factor(self, v1: int, v2: int, what: str) -> int:
        """k for a size that is k·N (v1 at the example batch, v2 at the second one)."""
        b1, b2 = self.batches
        if v1 % b1 == 0 and v1 // b1 * b2 == v2:
            return v1 // b1
        raise ExportError(f"deepnum.onnx.export: {what}: a size changes with the batch size but is not a "
                          f"multiple of it ({v1} at batch {b1}, {v2} at batch {b2}); export with "
                          f"dynamic_batch=False")

    def shape(self, s1: tuple[int, ...], s2: tuple[int, ...], what: str, wildcard: int | None = None,
              source: str | None = None) -> str:
        """An int64 shape tensor for a shape that is ``s1`` at the example batch and ``s2`` at the
        second: a constant when they agree. Otherwise a single differing size becomes ``wildcard``
        when given (-1 for Reshape, 1 for Expand of an input that has it), and in general each
        differing size k·N is computed from the batch size."""
        s1, s2 = tuple(int(v) for v in s1), tuple(int(v) for v in s2)
        if len(s1) != len(s2):
            raise ExportError(f"deepnum.onnx.export: {what}: the rank changes with the batch size")
        moving = [i for i, (a, b) in enumerate(zip(s1, s2)) if a != b]
        if not moving:
            return self.ints(s1)
        factors = {i: self.batch_factor(s1[i], s2[i], what) for i in moving}
        if wildcard is not None and len(moving) == 1:
            return self.ints(wildcard if i in factors else v for i, v in enumerate(s1))
        parts, run = [], []
        for i, v in enumerate(s1):
            if i in factors:
                if run:
                    parts.append(self.ints(run))
                    run = []
                n = self.batch_size()
                parts.append(n if factors[i] == 1 else self.one("Mul", [n, self.ints([factors[i]])]))
            else:
                run.append(v)
        if run:
            parts.append(self.ints(run))
        return self.one("Concat", parts, hint="shape", axis=0)

    def axes_input(self, op: str, x: str, axes: Any, keepdims: bool, hint: str = "") -> str:
        """A Reduce* node: axes are an input from opset 18 (13 for ReduceSum), an attribute before."""
        axes = [int(a) for a in axes]
        if op == "ReduceSum" or self.opset >= 18:
            return self.one(op, [x, self.ints(axes)], hint, keepdims=int(keepdims))
        return self.one(op, [x], hint, axes=axes, keepdims=int(keepdims))
