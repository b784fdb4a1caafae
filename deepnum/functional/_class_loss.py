"""Losses on class-index targets, fused: cross-entropy (log-softmax and pick in one pass, no one-hot
matrix) and the negative log-likelihood (a pick), with PyTorch's class weights, ``ignore_index`` and
label smoothing; plus ``pick``, the per-row gather that focal loss shares.

Every variant is one formula. With a target distribution q_ic = a_i·[c = t_i] + b_i·v_c per
element i (a row, or a pixel of a (N, C, d1, ...) input) and Q_i = Σ_c q_ic:

    cross-entropy  ℓ_i = -Σ_c q_ic log softmax(x_i)_c = Q_i·logsumexp(x_i) - Σ_c q_ic x_ic
                   ∂ℓ_i/∂x_ic = Q_i·softmax(x_i)_c - q_ic
    nll            ℓ_i = -Σ_c q_ic x_ic,   ∂ℓ_i/∂x_ic = -q_ic

where a_i = (1 - ε)·w[t_i] and b_i = ε/C, v = w (ones without weights) for label smoothing ε, and
a_i = b_i = 0 where t_i = ignore_index. This is PyTorch's
(1 - ε)·nll(log_softmax(x)) + (ε/C)·(-Σ_c w_c log softmax(x)_c) term by term, and 'mean' divides
both terms by the same D = Σ_{i not ignored} w[t_i] (the count of non-ignored elements without weights).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from deepnum.autograd.function import Function
from deepnum.backend import get_array_module
from deepnum.functional.activation import softmax
from deepnum.functional.array import reshape
from deepnum.functional.math import where
from deepnum.functional.reduction import sum
from deepnum.tensor import Tensor

_const = Tensor._make  # an array as a Tensor outside the graph


def class_axis(x: Any) -> int:
    """The class dimension: 0 for one unbatched sample (C,), else 1 ((N, C) and (N, C, d1, ...))."""
    return 0 if x.ndim == 1 else 1


def row_index(target: Any, axis: int, ndim: int) -> tuple:
    """The advanced index that reads x[i, t_i, j, ...] for every element of ``target``: the target
    along the class axis, a broadcast arange along every other axis (its result has target's shape)."""
    xp = get_array_module(target)
    index = []
    for d in range(ndim):
        if d == axis:
            index.append(target)
            continue
        td = d if d < axis else d - 1
        index.append(xp.arange(target.shape[td]).reshape((1,) * td + (-1,) + (1,) * (target.ndim - td - 1)))
    return tuple(index)


class Pick(Function):
    """y_i = x[i, t_i] (the class axis removed). Reading one position per element, its backward
    writes the gradient back to the same positions (``Place``): the two are adjoint linear maps."""

    saves_inputs = False

    def __init__(self, index: tuple):
        self.index = index

    def forward(self, x):
        self.shape = x.shape
        return get_array_module(x).asarray(x[self.index])

    def backward(self, gy):
        return Place(self.index, self.shape)(gy)


class Place(Function):
    """The adjoint of ``Pick``: zeros of the input's shape with g_i written at (i, t_i)."""

    saves_inputs = False

    def __init__(self, index: tuple, shape: tuple[int, ...]):
        self.index, self.shape = index, shape

    def forward(self, g):
        out = get_array_module(g).zeros(self.shape, dtype=g.dtype)
        out[self.index] = g
        return out

    def backward(self, gg):
        return Pick(self.index)(gg)


def pick(x: Tensor, target: Any) -> Tensor:
    """x[i, t_i] along the class axis for integer ``target`` of x's shape without that axis (checked by
    the caller); differentiable."""
    return Pick(row_index(target, class_axis(x), x.ndim))(x)


class ClassTargets:
    """The constants of one loss evaluation: the index of (i, t_i), the per-element coefficients a, b
    and Q (target's shape), the smoothing profile v (broadcast along the class axis) and the 'mean'
    denominator D. Ignored elements read class 0 and have a = b = Q = 0."""

    def __init__(self, x: Any, target: Any, weight: Any, ignore_index: int, smoothing: float):
        xp, dtype = get_array_module(x), x.dtype
        self.axis = axis = class_axis(x)
        n_classes = x.shape[axis]
        self.valid = target != ignore_index
        self.all_valid = bool(self.valid.all())
        safe = target if self.all_valid else xp.where(self.valid, target, 0)
        self.index = row_index(safe, axis, x.ndim)
        mask = self.valid.astype(dtype)
        w_t = mask if weight is None else weight[safe] * mask
        self.denominator = xp.asarray(w_t.sum(), dtype=dtype)
        self.a = w_t if smoothing == 0 else w_t * dtype.type(1 - smoothing)
        self.b = self.v = None
        self.total = self.a
        if smoothing > 0:
            self.b = mask * dtype.type(smoothing / n_classes)
            v_sum = n_classes if weight is None else weight.sum()
            self.total = self.a + self.b * v_sum
            if weight is not None:
                self.v = weight.reshape((1,) * axis + (n_classes,) + (1,) * (x.ndim - axis - 1))

    def expand(self, values: Any) -> Any:
        """Target-shaped values with the class axis put back (to broadcast against x)."""
        return get_array_module(values).expand_dims(values, self.axis)

    def smoothing_dot(self, x: Any) -> Any:
        """Σ_c v_c x_ic, the smoothing term's inner product (v = ones without weights)."""
        return (x if self.v is None else x * self.v).sum(axis=self.axis)

    def reduce(self, loss: Any, reduction: str) -> Any:
        xp = get_array_module(loss)
        if reduction == "none":
            return loss
        total = xp.asarray(loss.sum(), dtype=loss.dtype)
        if reduction == "sum":
            return total
        with np.errstate(divide="ignore", invalid="ignore"):  # nothing counted: 0/0 = nan, as PyTorch
            return total / self.denominator

    def element_grad(self, gy: Any, reduction: str) -> Any:
        """dL/dℓ_i: the incoming gradient per element (target-shaped, or a 0-d scalar), 0 where ignored."""
        xp = get_array_module(gy)
        g = gy
        if reduction == "mean":
            with np.errstate(divide="ignore", invalid="ignore"):
                g = gy / self.denominator
        return g if self.all_valid else xp.where(self.valid, g, xp.zeros((), dtype=gy.dtype))


class ClassLoss(Function):
    """Fused cross-entropy on logits (``logits=True``) or negative log-likelihood on log-probabilities,
    with the reduction applied: ℓ_i = Q_i·logsumexp(x_i) - Σ_c q_ic x_ic, or -Σ_c q_ic x_ic (see the
    module docstring). The forward keeps softmax(x) for the backward, Q·softmax - q, so no one-hot
    matrix is ever built; the backward is its own Function (``ClassLossGrad``), so it differentiates again."""

    saves_inputs = False

    def __init__(self, targets: ClassTargets, reduction: str, logits: bool):
        self.targets, self.reduction, self.logits = targets, reduction, logits
        self.p = None

    def forward(self, x):
        xp, t = get_array_module(x), self.targets
        self.shape = x.shape
        with np.errstate(invalid="ignore"):  # 0·inf where an ignored element reads an infinite input
            return t.reduce(self._elementwise(xp, x), self.reduction)

    def _elementwise(self, xp, x):
        t = self.targets
        loss = -(t.a * x[t.index])
        if self.logits:
            m = x.max(axis=t.axis, keepdims=True)
            p = x - m
            xp.exp(p, out=p)
            s = p.sum(axis=t.axis, keepdims=True)
            p /= s
            self.p = p
            loss += t.total * (xp.log(s) + m).squeeze(t.axis)
        if t.b is not None:
            loss -= t.b * t.smoothing_dot(x)
        if not t.all_valid:  # ignored elements give exactly 0, even where they read an infinite input
            loss = xp.where(t.valid, loss, xp.zeros((), dtype=x.dtype))
        return loss

    def backward(self, gy):
        if self.logits:
            return ClassLossGrad(self)(gy, self.inputs[0])
        return ClassLossGrad(self)(gy)


class ClassLossGrad(Function):
    """dL/dx = g_i·(Q_i·softmax(x_i) - q_i) (cross-entropy) or -g_i·q_i (nll), with g_i the incoming
    gradient per element (divided by D for 'mean'). Its own backward, written with Tensor ops:
    d/dg_i = Σ_c ggx_ic (Q_i p_ic - q_ic), and d/dx = g_i Q_i·p ⊙ (ggx - Σ_c ggx p) (the softmax
    Jacobian applied to ggx), so second and higher derivatives are exact."""

    def __init__(self, loss: ClassLoss):
        self.targets, self.reduction, self.logits = loss.targets, loss.reduction, loss.logits
        self.p, self.shape = loss.p, loss.shape

    def forward(self, gy, x=None):
        xp, t = get_array_module(gy), self.targets
        g = t.element_grad(gy, self.reduction)
        with np.errstate(invalid="ignore"):  # a zero weight times an infinite 1/D gives nan, as PyTorch
            if self.logits:
                gx = self.p * t.expand(t.total * g)
            else:
                gx = xp.zeros(self.shape, dtype=gy.dtype)
            gx[t.index] -= t.a * g
            if t.b is not None:
                b = t.expand(t.b * g)
                gx -= b if t.v is None else b * t.v
        return gx

    def backward(self, ggx):
        t = self.targets
        gy = self.inputs[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            g = gy / _const(t.denominator) if self.reduction == "mean" else gy
            ggy = gx = None
            p = softmax(self.inputs[1], t.axis) if self.logits else None
            if self.needs_input_grad[0]:
                inner = -(_const(t.a) * Pick(t.index)(ggx))
                if t.b is not None:
                    inner = inner - _const(t.b) * sum(ggx if t.v is None else ggx * _const(t.v), t.axis)
                if p is not None:
                    inner = inner + _const(t.total) * sum(ggx * p, t.axis)
                if not t.all_valid:
                    inner = where(_const(t.valid), inner, 0.0)
                ggy = inner if self.reduction == "none" else sum(inner)
                if self.reduction == "mean":
                    ggy = ggy / _const(t.denominator)
            if p is not None and self.needs_input_grad[1]:
                coef = g * _const(t.total)
                if not t.all_valid:
                    coef = where(_const(t.valid), coef, 0.0)
                if coef.ndim:
                    coef = reshape(coef, t.expand(coef.data).shape)
                gx = coef * p * (ggx - sum(ggx * p, t.axis, keepdim=True))
        return (ggy, gx) if self.logits else ggy
