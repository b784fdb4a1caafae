"""Adagrad (Duchi, Hazan & Singer 2011, "Adaptive subgradient methods"): an adaptive learning rate
per coordinate: coordinates that have seen large gradients take smaller steps. PyTorch's rule, for a
parameter w with gradient ∇L (−∇L under ``maximize``), at step t = 1, 2, ...:

    g ← ∇L + λ·w                              (weight_decay: L2 added to the gradient)
    η_t = η / (1 + (t − 1)·lr_decay)
    s ← s + g²                                (sum of squared gradients; s₀ = initial_accumulator_value)
    w ← w − η_t · g / (√s + ε)
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from deepnum.backend import get_array_module
from deepnum.optim.optimizer import Optimizer, check_flags, check_nonnegative, count_step, grad_array, new_step
from deepnum.tensor import Tensor


class Adagrad(Optimizer):
    """``Adagrad(params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10)``;
    state ``step`` and ``sum``, created for every parameter at construction, as ``torch.optim.Adagrad``
    (a group's own ``initial_accumulator_value`` is used for its parameters; PyTorch uses the
    constructor's value at construction and the defaults' for groups added later)."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, foreach: bool | None = None, *,
                 maximize: bool = False, differentiable: bool = False, fused: bool | None = None) -> None:
        check_nonnegative("Adagrad", lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                          initial_accumulator_value=initial_accumulator_value, eps=eps)
        check_flags("Adagrad", foreach, fused, differentiable)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable, fused=fused))
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> None:
        xp = get_array_module(p.data)
        self.state[p].update(step=new_step(),
                             sum=Tensor._make(xp.full_like(p.data, float(group["initial_accumulator_value"]))))

    def update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        lr, lr_decay = float(group["lr"]), float(group["lr_decay"])
        wd, eps = float(group["weight_decay"]), float(group["eps"])
        for p in params:
            xp = get_array_module(p.data)
            state = self.state[p]
            if not state:  # a group added after construction
                self._init_state(p, group)
            step = count_step(state)
            g = grad_array(p, group["maximize"])
            if wd != 0:
                g = g + wd * p.data
            clr = lr / (1 + (step - 1) * lr_decay)
            s = state["sum"].data
            s += g * g
            std = xp.sqrt(s)
            std += eps
            update = g * -clr
            update /= std
            p.add_(update)
