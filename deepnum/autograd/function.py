"""``Function``: one differentiable op. ``forward`` works on raw arrays; ``backward`` works on Tensors.

Because ``backward`` is written with Tensor ops, running it while the graph is recorded
(``create_graph=True``) builds the graph of the gradient itself, which gives higher-order gradients
for free (DeZero, step 33; PyTorch's double backward).

Ownership keeps memory flat: an output Tensor holds its ``grad_fn``, a Function holds its inputs,
and it refers to its outputs only weakly, so there are no reference cycles and a graph is freed as
soon as nothing refers to its last output. The engine drops each Function's saved state right after
its backward runs (unless ``retain_graph=True``).
"""
from __future__ import annotations

import weakref
from typing import Any

from deepnum.autograd.grad_mode import _GradMode
from deepnum.tensor import Tensor

# The active profiler (``deepnum.profiler.profile`` sets it; None when off, which costs one global
# read and two ``is not None`` tests per op).
_PROFILER = None


class Function:
    """Base class of every op. Subclasses set their parameters in ``__init__`` and implement
    ``forward(*arrays) -> array | tuple`` and ``backward(*grad_outputs) -> grad | tuple``
    (one gradient per Tensor input, ``None`` where an input needs none)."""

    inputs: tuple[Tensor, ...] | None
    # Whether backward reads its inputs' values. Then the inputs' version counters are recorded and
    # backward refuses to run if one was modified in place since; ops whose backward needs only
    # shapes or indices (add, reshape, sum, ...) set this to False, as PyTorch saves nothing for them.
    saves_inputs = True
    _versions: tuple[int, ...] | None = None

    def __call__(self, *inputs: Tensor) -> Any:
        profiler = _PROFILER
        token = profiler.enter() if profiler is not None else None
        arrays = [t.data for t in inputs]
        if len(arrays) > 1:
            first = type(arrays[0])
            if any(type(a) is not first for a in arrays):
                shapes = ", ".join(f"{t.device}{tuple(t.shape)}" for t in inputs)
                raise RuntimeError(f"{self.name}: expected all tensors on the same device, got {shapes}")
        try:
            out = self.forward(*arrays)
        except ValueError as err:
            shapes = " and ".join(str(tuple(a.shape)) for a in arrays)
            raise RuntimeError(f"{self.name}: shapes {shapes} do not fit: {err}") from None
        multiple = isinstance(out, tuple)
        outs = out if multiple else (out,)
        results = tuple(Tensor._make(o) for o in outs)
        if _GradMode.enabled and any(t._requires_grad for t in inputs):
            self.inputs = inputs
            self.needs_input_grad = tuple(t._requires_grad for t in inputs)
            if self.saves_inputs:
                self._versions = tuple(t._version for t in inputs)
            self._outputs = tuple(weakref.ref(r) for r in results)
            if multiple:
                self._out_meta = tuple((o.shape, o.dtype) for o in outs)
            for r in results:
                if r.data.dtype.kind in "fc":
                    r.grad_fn = self
                    r._requires_grad = True
        if profiler is not None:
            profiler.forward_done(self, inputs, results, token)
        return results if multiple else results[0]

    @property
    def name(self) -> str:
        return type(self).__name__.lower()

    def forward(self, *arrays: Any) -> Any:
        raise NotImplementedError

    def backward(self, *grad_outputs: Tensor) -> Any:
        raise NotImplementedError(f"{type(self).__name__} is not differentiable")

    def output(self, index: int = 0) -> Tensor:
        """The output Tensor (with its graph), for backward formulas that reuse it, as y in
        d tanh(x)/dx = 1 - y²."""
        out = self._outputs[index]()
        if out is None:
            raise RuntimeError(f"{type(self).__name__}: the output was freed before backward")
        if out._version != 0:
            raise RuntimeError(f"{self!r}: its output of shape {tuple(out.shape)}, saved for backward, was "
                               f"modified in place (version 0 -> {out._version}) after it was computed")
        return out

    @property
    def next_functions(self) -> tuple:
        if getattr(self, "inputs", None) is None:
            return ()
        return tuple((t.grad_fn, 0) for t in self.inputs)

    def release(self) -> None:
        """Drop inputs and saved arrays once backward has used them."""
        self.__dict__.clear()
        self._freed = True

    def __repr__(self) -> str:
        return f"<{type(self).__name__}Backward>"

