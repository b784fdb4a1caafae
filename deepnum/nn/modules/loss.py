"""Loss layers, as ``torch.nn.modules.loss``: a Module holding the reduction (and class weights, as
buffers) that calls the matching function of ``deepnum.functional.loss``. Errors name the layer.

Constructors take PyTorch's arguments in PyTorch's order, including the deprecated
``size_average``/``reduce`` (mapped to ``reduction`` with a warning, as PyTorch). ``weight`` (and
``pos_weight`` for ``BCEWithLogitsLoss``) is registered as a buffer, so it is in the ``state_dict``
under the same key as in PyTorch when given and absent when None. ``FocalLoss`` and ``AsymmetricLoss``
are deepnum's own; their formulas are in their docstrings.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deepnum.creation import tensor
from deepnum.functional import loss as L
from deepnum.nn.modules.module import Module
from deepnum.tensor import Tensor

__all__ = [
    "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss",
    "NLLLoss", "KLDivLoss", "FocalLoss", "AsymmetricLoss",
]


def _as_tensor(value: Any) -> Tensor | None:
    return value if value is None or isinstance(value, Tensor) else tensor(value)


class _Loss(Module):
    """Holds ``reduction``; checked at construction so a typo fails before training starts."""

    _allowed: tuple[str, ...] = ("none", "mean", "sum")

    def __init__(self, size_average: Any = None, reduce: Any = None, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = L.check_reduction(type(self).__name__, reduction, size_average, reduce, self._allowed)

    @property
    def _name(self) -> str:
        return type(self).__name__


class _WeightedLoss(_Loss):
    """A loss with an optional per-class ``weight``, registered as a buffer as in PyTorch."""

    def __init__(self, weight: Tensor | None = None, size_average: Any = None, reduce: Any = None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _as_tensor(weight))


class MSELoss(_Loss):
    """Mean squared error ℓ = (x - y)², reduced; input and target of equal shape."""

    def __init__(self, size_average: Any = None, reduce: Any = None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return L._mse(self._name, input, target, self.reduction)


class L1Loss(_Loss):
    """Mean absolute error ℓ = |x - y|, reduced; input and target of equal shape."""

    def __init__(self, size_average: Any = None, reduce: Any = None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return L._l1(self._name, input, target, self.reduction)


class SmoothL1Loss(_Loss):
    """ℓ = 0.5 d²/β where |d| < β, else |d| - 0.5β, with d = x - y (Girshick 2015); β = 0 is L1."""

    def __init__(self, size_average: Any = None, reduce: Any = None, reduction: str = "mean",
                 beta: float = 1.0) -> None:
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return L._smooth_l1(self._name, input, target, self.reduction, self.beta)


class HuberLoss(_Loss):
    """ℓ = 0.5 d² where |d| < δ, else δ(|d| - 0.5δ), with d = x - y (Huber 1964)."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return L._huber(self._name, input, target, self.reduction, self.delta)


class BCELoss(_WeightedLoss):
    """ℓ = -w[y log x + (1 - y) log(1 - x)] on probabilities x ∈ [0, 1], logs clamped at -100;
    ``weight`` broadcasts to the input."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return L._bce(self._name, input, target, self.weight, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """ℓ = -w[p·y log σ(x) + (1 - y) log(1 - σ(x))] on logits, computed stably (sigmoid and BCE fused);
    ``pos_weight`` p (one per class, broadcast along the last dim) trades recall for precision."""

    def __init__(self, weight: Tensor | None = None, size_average: Any = None, reduce: Any = None,
                 reduction: str = "mean", pos_weight: Tensor | None = None) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _as_tensor(weight))
        self.register_buffer("pos_weight", _as_tensor(pos_weight))

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return L._bce_logits(self._name, input, target, self.weight, self.reduction, self.pos_weight)


class CrossEntropyLoss(_WeightedLoss):
    """Softmax cross-entropy on logits (C,), (N, C) or (N, C, d1, ...) with class-index targets
    (N, d1, ...) or class probabilities of the input's shape; class ``weight``, ``ignore_index`` and
    ``label_smoothing`` ε as PyTorch: ℓ_i = (1 - ε)·w[t_i]·(-log p_i,t_i) + (ε/C)·Σ_c w_c·(-log p_ic),
    'mean' = Σ ℓ_i / Σ_{i not ignored} w[t_i]."""

    def __init__(self, weight: Tensor | None = None, size_average: Any = None, ignore_index: int = -100,
                 reduce: Any = None, reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return L._cross_entropy(self._name, input, target, self.weight, self.ignore_index, self.reduction,
                                self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """ℓ_i = -w[t_i]·x[i, t_i] on log-probabilities; 'mean' = Σ ℓ_i / Σ_{i not ignored} w[t_i]."""

    def __init__(self, weight: Tensor | None = None, size_average: Any = None, ignore_index: int = -100,
                 reduce: Any = None, reduction: str = "mean") -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return L._nll(self._name, input, target, self.weight, self.ignore_index, self.reduction)


class KLDivLoss(_Loss):
    """ℓ = y(log y - x) (x: log-probabilities; e^y(y - x) with ``log_target``); 'batchmean' divides
    the sum by the batch size, which is the KL divergence per sample."""

    _allowed = ("none", "mean", "sum", "batchmean")

    def __init__(self, size_average: Any = None, reduce: Any = None, reduction: str = "mean",
                 log_target: bool = False) -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return L._kl_div(self._name, input, target, self.reduction, self.log_target)


class FocalLoss(_Loss):
    """Focal loss (Lin et al. 2017): FL = -α_t (1 - p_t)^γ log p_t on logits.

    Binary/multi-label (target of the input's shape): p = σ(x), p_t = p·y + (1 - p)(1 - y),
    α_t = α·y + (1 - α)(1 - y) (α ∈ [0, 1], or None for no α), as torchvision's ``sigmoid_focal_loss``.
    Multi-class (logits (N, C, ...), integer targets (N, ...)): p_t = softmax(x)[t]; α_t = α for a number,
    α[t] for a per-class tensor of length C (registered as the buffer ``alpha``)."""

    def __init__(self, alpha: float | Sequence[float] | Tensor | None = 0.25, gamma: float = 2.0,
                 reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        if gamma < 0:
            raise ValueError(f"FocalLoss: gamma must be non-negative, got {gamma}")
        if alpha is None or isinstance(alpha, int | float):
            self.alpha = alpha
        else:
            self.register_buffer("alpha", _as_tensor(alpha))
        self.gamma = gamma

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return L._focal(self._name, input, target, self.alpha, self.gamma, self.reduction)

    def extra_repr(self) -> str:
        alpha = "tensor" if isinstance(self.alpha, Tensor) else self.alpha
        return f"alpha={alpha}, gamma={self.gamma}, reduction={self.reduction}"


class AsymmetricLoss(_Loss):
    """Asymmetric loss for multi-label classification on logits (Ridnik et al. 2021):

        ℓ = -[y (1 - p)^γ+ log p + (1 - y) p_m^γ- log(1 - p_m)],  p = σ(x),  p_m = max(p - clip, 0),

    with the reference implementation's conventions: 1 - p_m = min(1 - p + clip, 1), both logs read
    max(·, eps), clip ≤ 0 or None disables the shift. ``detach_focusing=True`` stops the gradient
    through the focusing weights (the reference's ``disable_torch_grad_focal_loss=True``); the
    reference sums over all elements (``reduction='sum'``)."""

    def __init__(self, gamma_neg: float = 4, gamma_pos: float = 0, clip: float | None = 0.05, eps: float = 1e-8,
                 reduction: str = "mean", *, detach_focusing: bool = False) -> None:
        super().__init__(reduction=reduction)
        if gamma_neg < 0 or gamma_pos < 0:
            raise ValueError(f"AsymmetricLoss: gamma_neg and gamma_pos must be non-negative, got "
                             f"{gamma_neg} and {gamma_pos}")
        self.gamma_neg, self.gamma_pos, self.clip, self.eps = gamma_neg, gamma_pos, clip, eps
        self.detach_focusing = detach_focusing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return L._asymmetric(self._name, input, target, self.gamma_neg, self.gamma_pos, self.clip, self.eps,
                             self.reduction, self.detach_focusing)

    def extra_repr(self) -> str:
        return (f"gamma_neg={self.gamma_neg}, gamma_pos={self.gamma_pos}, clip={self.clip}, eps={self.eps}, "
                f"reduction={self.reduction}")
