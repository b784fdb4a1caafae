"""Tracing: run the model's forward once and record every autograd ``Function`` call.

The recorder plugs into the hook that ``Function.__call__`` already offers the profiler
(``deepnum.autograd.function._PROFILER``: ``enter()`` before an op, ``forward_done(fn, inputs,
results, token)`` after it), so the core is unchanged. Each record keeps the Function object (its
attributes are the op's parameters: a reshape's shape, a convolution's geometry), its input and
output Tensors, and the path of the innermost model submodule whose ``forward`` was running (found
on the Python stack), for error messages and node names.

The forward runs in eval mode with grad mode ON and the example input requiring grad: deepnum's
inference-only fast paths (batch norm folded into the convolution with the residual and ReLU added
in place, in-place ReLU) work on raw arrays outside any Function and would be invisible to a
tracer; with a graph being recorded every value is produced by a Function.
"""
from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import Any

from deepnum.autograd import function as _function
from deepnum.autograd.grad_mode import enable_grad
from deepnum.nn.modules.module import Module
from deepnum.tensor import Tensor


@dataclass
class Record:
    """One op call: the Function, its input and output Tensors, and the submodule it ran in."""

    fn: Any
    inputs: tuple[Tensor, ...]
    results: tuple[Tensor, ...]
    path: str


class _Recorder:
    """The hook object: records every op called on the tracing thread."""

    def __init__(self, modules: dict[int, str]) -> None:
        self.thread = threading.get_ident()
        self.modules = modules
        self.records: list[Record] = []

    def enter(self) -> bool | None:
        return True if threading.get_ident() == self.thread else None

    def forward_done(self, fn: Any, inputs: tuple, results: tuple, token: Any) -> None:
        if token is None:
            return
        self.records.append(Record(fn, tuple(inputs), tuple(results), self._module_path()))

    def _module_path(self) -> str:
        frame = sys._getframe(2)
        while frame is not None:
            owner = frame.f_locals.get("self")
            if owner is not None and id(owner) in self.modules:
                return self.modules[id(owner)]
            frame = frame.f_back
        return ""


def flatten_tensors(value: Any, what: str) -> list[Tensor]:
    """The Tensors of a Tensor or a (nested) tuple/list of Tensors, in order."""
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, tuple | list):
        return [t for v in value for t in flatten_tensors(v, what)]
    raise TypeError(f"deepnum.onnx.export: the model's {what} must be Tensors or tuples of Tensors, "
                    f"got {type(value).__name__}")


def trace(model: Module, inputs: list[Tensor]) -> tuple[list[Record], list[Tensor], list[Tensor]]:
    """Run ``model(*inputs)`` in eval mode with every op recorded. Returns the records, the input
    Tensors the model saw (detached copies that require grad) and the output Tensors."""
    if _function._PROFILER is not None:
        raise RuntimeError("deepnum.onnx.export: a profiler (or another export) is recording on this "
                           "thread; export outside deepnum.profiler.profile()")
    modules = {id(m): name or type(model).__name__ for name, m in model.named_modules()}
    recorder = _Recorder(modules)
    fed = [x.detach().requires_grad_(x.dtype.kind == "f") for x in inputs]
    was_training = [(m, m.training) for m in model.modules()]
    model.eval()
    _function._PROFILER = recorder
    try:
        with enable_grad():
            out = model(*fed)
    finally:
        _function._PROFILER = None
        for m, mode in was_training:
            m.training = mode
    return recorder.records, fed, flatten_tensors(out, "output")
