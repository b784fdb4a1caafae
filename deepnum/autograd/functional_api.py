"""``deepnum.autograd.grad``: gradients of outputs with respect to chosen inputs, returned instead
of accumulated into ``.grad`` (``torch.autograd.grad``)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deepnum.autograd.engine import run_backward
from deepnum.tensor import Tensor


def _as_list(x: Any) -> list:
    return [x] if isinstance(x, Tensor) else list(x)


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: Any = None, retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False) -> tuple[Tensor | None, ...]:
    """d(outputs)/d(inputs) weighted by ``grad_outputs`` (ones for scalar outputs). With
    ``create_graph=True`` the result is itself differentiable (higher-order gradients)."""
    outputs, inputs = _as_list(outputs), _as_list(inputs)
    grad_outputs = None if grad_outputs is None else _as_list(grad_outputs)
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"grad: input {i} (shape {tuple(t.shape)}) does not require grad")
    retain = create_graph if retain_graph is None else retain_graph
    grads = run_backward(outputs, grad_outputs, retain, create_graph, inputs=inputs)
    for i, g in enumerate(grads):
        if g is None and not allow_unused:
            raise RuntimeError(f"grad: input {i} (shape {tuple(inputs[i].shape)}) was not used to compute "
                               "the outputs; pass allow_unused=True if this is intended")
    return tuple(grads)
