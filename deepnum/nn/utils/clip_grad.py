"""Gradient clipping, as ``torch.nn.utils`` (Pascanu, Mikolov & Bengio 2013, "On the difficulty of
training recurrent neural networks": rescale exploding gradients).

* ``clip_grad_norm_``: the total norm ‖g‖_p of all the gradients viewed as one vector (computed as
  PyTorch does: the p-norm of the per-tensor p-norms) is brought down to at most ``max_norm`` by
  g ← g · min(1, max_norm / (‖g‖_p + 1e-6)), which keeps the direction of the update.
* ``clip_grad_value_``: every gradient element is clamped into [−clip_value, clip_value].

Both work in place on ``p.grad`` (Tensor in-place methods, so version counters move) and skip
parameters whose gradient is None. Everything stays in the gradients' dtype.
"""
from __future__ import annotations

import math
import types
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from deepnum.autograd.grad_mode import no_grad
from deepnum.backend import get_array_module
from deepnum.creation import tensor
from deepnum.tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm"]


def _vector_norm(x: Any, p: float) -> Any:
    """‖x‖_p of an array as a 0-d array of x's dtype: max|x| for p = inf, min|x| for −inf, the
    number of non-zeros for 0, (Σ|x|^p)^(1/p) otherwise (torch.linalg.vector_norm)."""
    xp = get_array_module(x)
    if p == 2:
        return xp.sqrt((x * x).sum())
    if p == 0:
        return xp.asarray(xp.count_nonzero(x), dtype=x.dtype)
    a = xp.abs(x)
    if p == math.inf or p == -math.inf:
        if x.size == 0:
            raise RuntimeError(f"norm of order {p} of an empty gradient (shape {x.shape}) is undefined")
        return xp.asarray(a.max() if p > 0 else a.min())
    if p == 1:
        return xp.asarray(a.sum())
    return xp.asarray((a**p).sum() ** (1 / p))


@no_grad()
def get_total_norm(tensors: Tensor | Iterable[Tensor], norm_type: float = 2.0, error_if_nonfinite: bool = False,
                   foreach: bool | None = None) -> Tensor:
    """The p-norm of ``tensors`` viewed as one vector (the norm of their norms); 0 for no tensors.
    ``foreach`` is accepted for PyTorch compatibility and changes nothing."""
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    norm_type = float(norm_type)
    if not tensors:
        return tensor(0.0)
    xp = get_array_module(tensors[0].data)
    norms = [_vector_norm(t.data, norm_type) for t in tensors]
    total = _vector_norm(xp.stack(norms), norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
                           "so it cannot be clipped. To disable this error and scale the gradients by the "
                           "non-finite norm anyway, set `error_if_nonfinite=False`")
    return Tensor._make(total)


@no_grad()
def clip_grads_with_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, total_norm: Tensor,
                          foreach: bool | None = None) -> None:
    """Scale every gradient by min(1, max_norm / (total_norm + 1e-6)), given the total norm."""
    parameters = [parameters] if isinstance(parameters, Tensor) else parameters
    grads = [p.grad for p in parameters if p.grad is not None]
    max_norm = float(max_norm)
    if not grads:
        return
    xp = get_array_module(total_norm.data)
    coef = xp.minimum(max_norm / (total_norm.data + 1e-6), 1.0)
    with np.errstate(invalid="ignore"):  # inf · 0 = nan for a non-finite norm, silently as in PyTorch
        for g in grads:
            g.mul_(coef)


@no_grad()
def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """Rescale the gradients so that their total ``norm_type``-norm is at most ``max_norm``; returns
    the total norm before clipping (a 0-d Tensor). ``error_if_nonfinite`` raises on a nan/inf norm
    instead of scaling by it."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    else:
        is_generator = isinstance(parameters, types.GeneratorType)
        parameters = list(parameters)
        if is_generator and not parameters:
            warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.", stacklevel=3)
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(parameters, max_norm, total_norm, foreach)
    return total_norm


@no_grad()
def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every gradient element into [−clip_value, clip_value], in place."""
    parameters = [parameters] if isinstance(parameters, Tensor) else parameters
    clip_value = float(clip_value)
    for p in parameters:
        if p.grad is not None:
            p.grad.clamp_(-clip_value, clip_value)
