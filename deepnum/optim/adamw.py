"""AdamW (Loshchilov & Hutter 2019, "Decoupled weight decay regularization"): Adam whose weight
decay is applied to the weights directly instead of being added to the gradient. For a parameter w
at step t (see ``adam.py`` for m, v, v̂ and amsgrad):

    w ← w − η·λ·w                                     (decoupled weight decay, first)
    m ← β₁·m + (1 − β₁)·g,   v ← β₂·v + (1 − β₂)·g²
    w ← w − η/(1 − β₁ᵗ) · m / (√v̂ / √(1 − β₂ᵗ) + ε)

L2 ≠ weight decay for Adam: with Adam's coupled L2 the decay term λ·w is rescaled by 1/√v̂ like the
gradient, so every weight is decayed at a different, gradient-dependent rate; decoupling restores
plain weight decay (every weight shrinks by the same factor 1 − η·λ per step), which is why AdamW
generalises better and why its default λ is 1e-2 rather than 0.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from deepnum.optim.adam import Adam


class AdamW(Adam):
    """``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
    maximize=False)``: ``Adam`` with ``decoupled_weight_decay=True``, as ``torch.optim.AdamW``."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, capturable: bool = False, differentiable: bool = False,
                 fused: bool | None = None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As ``Optimizer.load_state_dict``; the weight decay stays decoupled whatever was saved."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
