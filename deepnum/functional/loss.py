"""Loss functions with reductions 'none' | 'mean' | 'sum', as ``torch.nn.functional``, plus deepnum's
own ``focal_loss`` (Lin et al. 2017) and ``asymmetric_loss`` (Ridnik et al. 2021).

Conventions shared by every loss here:
- ``reduction='mean'`` averages over all loss elements unless a loss says otherwise (weighted
  cross-entropy/nll divide by the summed target weights; ``kl_div`` also has 'batchmean').
- The deprecated ``size_average``/``reduce`` arguments are accepted and mapped to a reduction as PyTorch.
- Elementwise losses (MSE, L1, smooth L1, Huber, BCE, BCE with logits, focal, asymmetric) need
  ``target.shape == input.shape``. PyTorch only warns and broadcasts for MSE/L1/smooth L1/Huber,
  which silently computes the wrong loss for an (N, 1) input against an (N,) target; deepnum raises a
  ``ValueError`` naming the loss and both shapes instead. ``kl_div`` broadcasts, as PyTorch.
- Class weights and ``pos_weight`` are constants, as PyTorch (which refuses to differentiate them).
- Class-index targets may be any integer dtype (PyTorch takes int64 and uint8 only).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepnum.autograd.autocast_state import Autocast
from deepnum.autograd.function import Function
from deepnum.backend import get_array_module
from deepnum.functional._class_loss import ClassLoss, ClassTargets, class_axis, pick
from deepnum.functional._operands import promote, raw
from deepnum.functional.activation import log_softmax, sigmoid
from deepnum.functional.math import abs, clamp, exp, log, where
from deepnum.functional.reduction import mean, sum
from deepnum.tensor import Tensor

__all__ = [
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "cross_entropy", "nll_loss", "kl_div", "focal_loss", "asymmetric_loss",
]

_REDUCTIONS = ("none", "mean", "sum")
_const = Tensor._make


# ----------------------------------------------------------------------------- argument checks
def legacy_reduction(size_average: bool | None, reduce: bool | None) -> str:
    """PyTorch's mapping of the deprecated (size_average, reduce) pair: reduce=False -> 'none',
    else size_average=False -> 'sum', else 'mean' (None counts as True)."""
    warnings.warn("size_average and reduce args will be deprecated, please use reduction='{}' instead.".format(
        "none" if reduce is False else "sum" if size_average is False else "mean"), stacklevel=4)
    if reduce is False:
        return "none"
    return "sum" if size_average is False else "mean"


def check_reduction(name: str, reduction: Any, size_average: Any = None, reduce: Any = None,
                    allowed: tuple[str, ...] = _REDUCTIONS) -> str:
    if size_average is not None or reduce is not None:
        return legacy_reduction(size_average, reduce)
    if reduction not in allowed:
        choices = ", ".join(repr(r) for r in allowed)
        raise ValueError(f"{name}: reduction must be one of {choices}, got {reduction!r}")
    return reduction


def _input(name: str, input: Any) -> Tensor:
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: expected input to be a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating point input, got {input.dtype} of shape {tuple(input.shape)}")
    if Autocast.enabled:
        (input,) = Autocast.cast("loss", input)
    return input


def _pair(name: str, input: Any, target: Any, same_shape: bool = True) -> tuple[Tensor, Tensor]:
    """input and target as Tensors of one floating dtype, with equal shapes unless ``same_shape=False``."""
    x = _input(name, input)
    if same_shape and tuple(getattr(target, "shape", ())) != tuple(x.shape):
        raise ValueError(f"{name}: expected target of the input's shape {tuple(x.shape)}, got "
                         f"{tuple(getattr(target, 'shape', ()))} (deepnum does not broadcast a loss's target)")
    x, t = promote(x, target, floating=True)
    return x, t


def _constant(name: str, what: str, value: Any, x: Tensor, shape: tuple[int, ...] | None = None) -> Any:
    """A weight-like argument as a constant array of x's dtype (None stays None); PyTorch does not
    differentiate these, so one that requires grad is refused."""
    if value is None:
        return None
    if isinstance(value, Tensor) and value.requires_grad:
        raise RuntimeError(f"{name}: {what} is not differentiable; pass {what}.detach()")
    xp = get_array_module(x.data)
    array = xp.asarray(raw(value), dtype=x.dtype)
    if shape is not None:
        if array.shape != shape:
            raise ValueError(f"{name}: expected {what} of shape {shape}, got {tuple(array.shape)}")
        return array
    try:
        np.broadcast_shapes(array.shape, tuple(x.shape))
    except ValueError:
        raise ValueError(f"{name}: {what} of shape {tuple(array.shape)} does not broadcast to the input "
                         f"shape {tuple(x.shape)}") from None
    return array


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    return sum(loss) if reduction == "sum" else mean(loss)


# ----------------------------------------------------------------------------- regression losses
def _weighted(name: str, loss: Tensor, weight: Any, reduction: str, divide_by_weight: bool) -> Tensor:
    """PyTorch's optional per-element weight: 'mean' is Σ w·ℓ / Σ w for MSE and L1, mean(w·ℓ) for Huber."""
    if weight is None:
        return _reduce(loss, reduction)
    if tuple(getattr(weight, "shape", ())) != tuple(loss.shape):
        raise ValueError(f"{name}: expected weight of the input's shape {tuple(loss.shape)}, got "
                         f"{tuple(getattr(weight, 'shape', ()))}")
    loss, w = promote(loss, weight)
    loss = loss * w
    if reduction == "mean" and divide_by_weight:
        return sum(loss) / sum(w)
    return _reduce(loss, reduction)


def _mse(name: str, input: Tensor, target: Tensor, reduction: str, weight: Any = None) -> Tensor:
    """ℓ = (x - y)²."""
    x, y = _pair(name, input, target)
    d = x - y
    return _weighted(name, d * d, weight, reduction, True)


def mse_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
             reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    """Mean squared error ℓ = (x - y)²; ``weight`` (input's shape) gives Σ w·ℓ / Σ w for 'mean'."""
    return _mse("mse_loss", input, target, check_reduction("mse_loss", reduction, size_average, reduce), weight)


def _l1(name: str, input: Tensor, target: Tensor, reduction: str, weight: Any = None) -> Tensor:
    """ℓ = |x - y| (gradient sign(x - y), 0 at x = y)."""
    x, y = _pair(name, input, target)
    return _weighted(name, abs(x - y), weight, reduction, True)


def l1_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
            reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    """Mean absolute error ℓ = |x - y|; ``weight`` (input's shape) gives Σ w·ℓ / Σ w for 'mean'."""
    return _l1("l1_loss", input, target, check_reduction("l1_loss", reduction, size_average, reduce), weight)


def _smooth_l1(name: str, input: Tensor, target: Tensor, reduction: str, beta: float) -> Tensor:
    """ℓ = 0.5 d²/β where |d| < β, else |d| - 0.5β (d = x - y; plain L1 for β = 0)."""
    if beta < 0:
        raise ValueError(f"{name}: beta must be non-negative, got {beta}")
    x, y = _pair(name, input, target)
    d = x - y
    ad = abs(d)
    if beta == 0:
        return _reduce(ad, reduction)
    inside = _const(ad.data < beta)
    return _reduce(where(inside, d * d * (0.5 / beta), ad - 0.5 * beta), reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
                   reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """Smooth L1 (Girshick 2015, Fast R-CNN): quadratic 0.5 d²/β for |d| < β, linear |d| - β/2 beyond."""
    name = "smooth_l1_loss"
    return _smooth_l1(name, input, target, check_reduction(name, reduction, size_average, reduce), beta)


def _huber(name: str, input: Tensor, target: Tensor, reduction: str, delta: float, weight: Any = None) -> Tensor:
    """ℓ = 0.5 d² where |d| < δ, else δ(|d| - 0.5δ) (d = x - y)."""
    if delta <= 0:
        raise ValueError(f"{name}: delta must be positive, got {delta}")
    x, y = _pair(name, input, target)
    d = x - y
    ad = abs(d)
    loss = where(_const(ad.data < delta), d * d * 0.5, (ad - 0.5 * delta) * delta)
    return _weighted(name, loss, weight, reduction, False)


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
               weight: Tensor | None = None) -> Tensor:
    """Huber loss (Huber 1964): 0.5 d² for |d| < δ, δ(|d| - δ/2) beyond; δ times smooth L1 with β = δ.
    ``weight`` (input's shape) gives mean(w·ℓ) for 'mean', as PyTorch."""
    return _huber("huber_loss", input, target, check_reduction("huber_loss", reduction), delta, weight)


# ----------------------------------------------------------------------------- binary cross-entropy
class BinaryCrossEntropy(Function):
    """ℓ = -[y·max(log x, -100) + (1 - y)·max(log(1 - x), -100)] for probabilities x (the logs are
    clamped at -100 as PyTorch, so x = 0 or 1 stays finite). ∂ℓ/∂x = (x - y)/max(x(1 - x), 1e-12),
    ∂ℓ/∂y = max(log(1 - x), -100) - max(log x, -100)."""

    def forward(self, x, y):
        xp = get_array_module(x)
        with np.errstate(divide="ignore"):
            log_x = xp.maximum(xp.log(x), -100)
            log_1mx = xp.maximum(xp.log1p(-x), -100)
        return (y - 1) * log_1mx - y * log_x

    def backward(self, gy):
        x, y = self.inputs
        gx = gt = None
        with np.errstate(divide="ignore"):
            if self.needs_input_grad[0]:
                gx = gy * (x - y) / clamp((1 - x) * x, min=1e-12)
            if self.needs_input_grad[1]:
                gt = gy * (clamp(log(1 - x), min=-100.0) - clamp(log(x), min=-100.0))
        return gx, gt


def _bce(name: str, input: Tensor, target: Tensor, weight: Any, reduction: str) -> Tensor:
    x, y = _pair(name, input, target)
    data = x.data
    if data.size and not bool(((data >= 0) & (data <= 1)).all()):
        raise RuntimeError(f"{name}: all elements of input should be between 0 and 1 (probabilities; use "
                           f"binary_cross_entropy_with_logits for logits), input shape {tuple(x.shape)}")
    w = _constant(name, "weight", weight, x)
    loss = BinaryCrossEntropy()(x, y)
    return _reduce(loss if w is None else loss * _const(w), reduction)


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         size_average: bool | None = None, reduce: bool | None = None,
                         reduction: str = "mean") -> Tensor:
    """ℓ = -w[y log x + (1 - y) log(1 - x)] on probabilities x ∈ [0, 1], logs clamped at -100 as PyTorch;
    ``weight`` broadcasts to the input."""
    name = "binary_cross_entropy"
    return _bce(name, input, target, weight, check_reduction(name, reduction, size_average, reduce))


class Softplus(Function):
    """softplus(x) = log(1 + e^x) = max(x, 0) + log(1 + e^(-|x|)) (never overflows); d/dx = σ(x)."""

    def forward(self, x):
        xp = get_array_module(x)
        return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, gy):
        return gy * sigmoid(self.inputs[0])


class BinaryCrossEntropyWithLogits(Function):
    """ℓ = p·y·softplus(-x) + (1 - y)·softplus(x) = -[p·y·log σ(x) + (1 - y)·log(1 - σ(x))] with
    pos_weight p (1 without one). For p = 1 this is max(x, 0) - x·y + log(1 + e^(-|x|)); written as two
    non-negative terms it has no cancellation, so ±100 logits give exact, finite values.
    ∂ℓ/∂x = (1 - y)σ(x) - p·y·σ(-x) (σ(x) - y for p = 1); ∂ℓ/∂y = p·softplus(-x) - softplus(x)."""

    def __init__(self, pos_weight: Any):
        self.pos_weight = pos_weight

    def forward(self, x, y):
        xp = get_array_module(x)
        tail = xp.log1p(xp.exp(-xp.abs(x)))
        py = y if self.pos_weight is None else y * self.pos_weight
        return (1 - y) * (xp.maximum(x, 0) + tail) + py * (xp.maximum(-x, 0) + tail)

    def backward(self, gy):
        x, y = self.inputs
        p = None if self.pos_weight is None else _const(self.pos_weight)
        gx = gt = None
        if self.needs_input_grad[0]:
            py = y if p is None else y * p
            gx = gy * ((1 - y) * sigmoid(x) - py * sigmoid(-x))
        if self.needs_input_grad[1]:
            gt = gy * -x if p is None else gy * (p * Softplus()(-x) - Softplus()(x))
        return gx, gt


def _bce_logits(name: str, input: Tensor, target: Tensor, weight: Any, reduction: str, pos_weight: Any) -> Tensor:
    x, y = _pair(name, input, target)
    w = _constant(name, "weight", weight, x)
    p = _constant(name, "pos_weight", pos_weight, x)
    loss = BinaryCrossEntropyWithLogits(p)(x, y)
    return _reduce(loss if w is None else loss * _const(w), reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     size_average: bool | None = None, reduce: bool | None = None,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """ℓ = -w[p·y log σ(x) + (1 - y) log(1 - σ(x))] on logits x, computed stably; ``pos_weight`` p (e.g.
    one per class, broadcast along the last dim) weighs the positive term, ``weight`` the whole loss."""
    name = "binary_cross_entropy_with_logits"
    return _bce_logits(name, input, target, weight, check_reduction(name, reduction, size_average, reduce),
                       pos_weight)


# ----------------------------------------------------------------------------- cross-entropy, nll
def _class_input(name: str, input: Any, weight: Any) -> tuple[Tensor, int, Any]:
    x = _input(name, input)
    if x.ndim == 0:
        raise ValueError(f"{name}: expected input (C,), (N, C) or (N, C, d1, ...), got a 0-d tensor")
    n_classes = x.shape[class_axis(x)]
    return x, n_classes, _constant(name, "weight", weight, x, shape=(n_classes,))


def _index_target(name: str, x: Tensor, target: Any, ignore_index: int | None, allow_probs: bool) -> Any:
    """The integer target array, checked: x's shape without the class dim, values in [0, C) or ignore_index."""
    axis = class_axis(x)
    n_classes = x.shape[axis]
    t = raw(target)
    t = get_array_module(x.data).asarray(t)
    expected = tuple(x.shape[:axis] + x.shape[axis + 1:])
    if tuple(t.shape) != expected:
        probs = f" or probabilities {tuple(x.shape)}" if allow_probs else ""
        raise ValueError(f"{name}: expected target {expected} of class indices in [0, {n_classes}){probs}, "
                         f"got {tuple(t.shape)}")
    if t.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected target {expected} of class indices in [0, {n_classes}) as an integer "
                        f"tensor, got {t.dtype}")
    bad = (t < 0) | (t >= n_classes)
    if ignore_index is not None:
        bad &= t != ignore_index
    if bad.any():
        value = int(t[bad].reshape(-1)[0])
        ignored = "" if ignore_index is None else f" or ignore_index={ignore_index}"
        raise IndexError(f"{name}: target {value} is out of bounds: expected class indices in [0, {n_classes})"
                         f"{ignored}, target shape {tuple(t.shape)}")
    return t


def _prob_cross_entropy(x: Tensor, target: Any, w: Any, reduction: str, smoothing: float) -> Tensor:
    """ℓ_i = -Σ_c w_c q_ic log softmax(x_i)_c with q = (1 - ε)·target + ε/C; 'mean' divides by the
    number of elements N·d1·..., as PyTorch (not by the weights)."""
    x, q = promote(x, target)
    axis = class_axis(x)
    n_classes = x.shape[axis]
    if smoothing > 0:
        q = q * (1 - smoothing) + smoothing / n_classes
    if w is not None:
        q = q * _const(w.reshape((1,) * axis + (n_classes,) + (1,) * (x.ndim - axis - 1)))
    loss = -sum(log_softmax(x, axis) * q, axis)
    if reduction != "mean":
        return _reduce(loss, reduction)
    count = x.data.size // n_classes if n_classes else 0
    return sum(loss) / count if count else sum(loss) * float("nan")


def _cross_entropy(name: str, input: Tensor, target: Any, weight: Any, ignore_index: int, reduction: str,
                   label_smoothing: float) -> Tensor:
    x, n_classes, w = _class_input(name, input, weight)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{name}: label_smoothing must be in [0, 1], got {label_smoothing}")
    if getattr(target, "dtype", np.dtype(int)).kind == "f" and tuple(target.shape) == tuple(x.shape):
        return _prob_cross_entropy(x, target, w, reduction, label_smoothing)
    t = _index_target(name, x, target, ignore_index, allow_probs=True)
    return ClassLoss(ClassTargets(x.data, t, w, ignore_index, label_smoothing), reduction, logits=True)(x)


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average: bool | None = None,
                  ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy on logits (C,), (N, C) or (N, C, d1, ...): class-index targets (with class
    weights, ``ignore_index`` and label smoothing, fused: see ``_class_loss``) or class-probability
    targets of the input's shape. 'mean' divides by Σ w[t_i] over non-ignored elements (all ignored:
    nan, as PyTorch)."""
    name = "cross_entropy"
    reduction = check_reduction(name, reduction, size_average, reduce)
    return _cross_entropy(name, input, target, weight, ignore_index, reduction, label_smoothing)


def _nll(name: str, input: Tensor, target: Any, weight: Any, ignore_index: int, reduction: str) -> Tensor:
    x, _, w = _class_input(name, input, weight)
    t = _index_target(name, x, target, ignore_index, allow_probs=False)
    return ClassLoss(ClassTargets(x.data, t, w, ignore_index, 0.0), reduction, logits=False)(x)


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average: bool | None = None,
             ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood ℓ_i = -w[t_i]·x[i, t_i] on log-probabilities; 'mean' divides by
    Σ w[t_i] over non-ignored elements."""
    name = "nll_loss"
    return _nll(name, input, target, weight, ignore_index, check_reduction(name, reduction, size_average, reduce))


# ----------------------------------------------------------------------------- KL divergence
def _kl_div(name: str, input: Tensor, target: Any, reduction: str, log_target: bool) -> Tensor:
    """ℓ = y(log y - x) with 0 log 0 = 0 (x: log-probabilities), or e^y(y - x) for log-space targets."""
    x, y = _pair(name, input, target, same_shape=False)
    if log_target:
        loss = exp(y) * (y - x)
    else:
        zero = _const(y.data == 0)
        loss = y * log(where(zero, 1.0, y)) - y * x
    if reduction == "batchmean":
        total = sum(loss)
        return total / x.shape[0] if x.ndim else total
    return _reduce(loss, reduction)


def kl_div(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
           reduction: str = "mean", log_target: bool = False) -> Tensor:
    """Kullback-Leibler divergence KL(target ‖ input) pointwise, input in log space. 'batchmean' (sum / N)
    is the true KL per sample; 'mean' averages over every element, as PyTorch."""
    name = "kl_div"
    reduction = check_reduction(name, reduction, size_average, reduce, _REDUCTIONS + ("batchmean",))
    return _kl_div(name, input, target, reduction, log_target)


# ----------------------------------------------------------------------------- focal, asymmetric
def _class_alpha(name: str, alpha: Any, x: Tensor, t: Any) -> Tensor | float | None:
    """Multi-class α_t: None, one number for every class, or one value per class read at the target."""
    if alpha is None or isinstance(alpha, int | float):
        return alpha
    n_classes = x.shape[class_axis(x)]
    a = _constant(name, "alpha", list(alpha) if isinstance(alpha, Sequence) else alpha, x, shape=(n_classes,))
    return _const(a[t])


def _focal(name: str, input: Tensor, target: Any, alpha: Any, gamma: float, reduction: str) -> Tensor:
    """FL = -α_t (1 - p_t)^γ log p_t (Lin et al. 2017, eq. 5), binary on sigmoid logits or multi-class
    on softmax logits."""
    x = _input(name, input)
    if gamma < 0:
        raise ValueError(f"{name}: gamma must be non-negative, got {gamma}")
    if tuple(getattr(target, "shape", ())) == tuple(x.shape):
        if alpha is not None and not (isinstance(alpha, int | float) and 0 <= alpha <= 1):
            raise ValueError(f"{name}: binary focal loss takes alpha in [0, 1] or None, got {alpha!r}")
        x, z = promote(x, target, floating=True)
        ce = BinaryCrossEntropyWithLogits(None)(x, z)
        loss = ce if gamma == 0 else ce * (sigmoid(x) * (1 - z) + sigmoid(-x) * z) ** gamma
        if alpha is not None:
            loss = (z * alpha + (1 - z) * (1 - alpha)) * loss
        return _reduce(loss, reduction)
    if x.ndim < 2:
        raise ValueError(f"{name}: expected target of the input's shape {tuple(x.shape)} (binary), got "
                         f"{tuple(getattr(target, 'shape', ()))}")
    t = _index_target(name, x, target, None, allow_probs=True)
    log_pt = pick(log_softmax(x, 1), t)
    loss = -log_pt if gamma == 0 else -((1 - exp(log_pt)) ** gamma) * log_pt
    a = _class_alpha(name, alpha, x, t)
    return _reduce(loss if a is None else loss * a, reduction)


def focal_loss(input: Tensor, target: Tensor, alpha: Any = 0.25, gamma: float = 2.0,
               reduction: str = "mean") -> Tensor:
    """Focal loss FL(p_t) = -α_t (1 - p_t)^γ log p_t (Lin et al. 2017, "Focal Loss for Dense Object
    Detection"): the (1 - p_t)^γ factor down-weights well-classified examples.

    - Binary / multi-label (target of the input's shape, values in [0, 1]): p = σ(x),
      p_t = p·y + (1 - p)(1 - y), α_t = α·y + (1 - α)(1 - y), and -log p_t is the stable
      ``binary_cross_entropy_with_logits``: torchvision's ``sigmoid_focal_loss`` exactly (α = None: no
      α weighting; 1 - p_t is computed as σ(x)(1 - y) + σ(-x)·y, without cancellation).
    - Multi-class (logits (N, C, d1, ...), integer targets (N, d1, ...)): p_t = softmax(x)[t],
      α_t = α for a number (None: 1), or α[t] for a per-class sequence/tensor of length C.
    'mean' averages over all loss elements."""
    return _focal("focal_loss", input, target, alpha, gamma, check_reduction("focal_loss", reduction))


def _asymmetric(name: str, input: Tensor, target: Any, gamma_neg: float, gamma_pos: float, clip: float,
                eps: float, reduction: str, detach_focusing: bool) -> Tensor:
    x, y = _pair(name, input, target)
    p = sigmoid(x)
    q = 1 - p  # 1 - p_m, with p_m = max(p - m, 0) the shifted probability of a negative
    if clip is not None and clip > 0:
        q = clamp(q + clip, max=1.0)
    pos = log(clamp(p, min=eps))
    neg = log(clamp(q, min=eps))
    if gamma_pos > 0 or gamma_neg > 0:
        wp, wq = (p.detach(), q.detach()) if detach_focusing else (p, q)
        if gamma_pos > 0:
            pos = pos * (1 - wp) ** gamma_pos
        if gamma_neg > 0:
            neg = neg * (1 - wq) ** gamma_neg
    return _reduce(-(y * pos + (1 - y) * neg), reduction)


def asymmetric_loss(input: Tensor, target: Tensor, gamma_neg: float = 4.0, gamma_pos: float = 0.0,
                    clip: float = 0.05, eps: float = 1e-8, reduction: str = "mean", *,
                    detach_focusing: bool = False) -> Tensor:
    """Asymmetric loss for multi-label classification on logits (Ridnik et al. 2021, "Asymmetric Loss
    for Multi-Label Classification", eq. 4):

        ℓ = -[y (1 - p)^γ+ log p + (1 - y) p_m^γ- log(1 - p_m)],  p = σ(x), p_m = max(p - m, 0),

    with m = ``clip``. As the paper's reference implementation: 1 - p_m is computed as
    min(1 - p + m, 1), both logs read max(·, eps), and m ≤ 0 (or None) disables the shift. Its
    default gradient flows through the focusing weights too; ``detach_focusing=True`` treats them as
    constants, as the reference's ``disable_torch_grad_focal_loss=True``. The reference returns the
    sum over all elements (``reduction='sum'``); for soft targets it raises 1 - p_t to a y-blended γ,
    where this is the paper's per-term formula (the two agree for y ∈ {0, 1})."""
    name = "asymmetric_loss"
    return _asymmetric(name, input, target, gamma_neg, gamma_pos, clip, eps, check_reduction(name, reduction),
                       detach_focusing)
