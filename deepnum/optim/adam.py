"""Adam (Kingma & Ba 2015, "Adam: a method for stochastic optimization"): momentum and an adaptive
learning rate together: moving averages of the gradient (first moment m) and of its square
(second moment v), both corrected for their bias towards the zero start. PyTorch's rule, for a
parameter w with gradient ∇L (−∇L under ``maximize``), at step t = 1, 2, ...:

    g ← ∇L + λ·w                      (weight_decay: L2 added to the gradient, "coupled")
    m ← β₁·m + (1 − β₁)·g             (``exp_avg``)
    v ← β₂·v + (1 − β₂)·g²            (``exp_avg_sq``)
    v̂ ← max(v̂, v) with amsgrad (Reddi et al. 2018, ``max_exp_avg_sq``), else v̂ = v
    w ← w − η/(1 − β₁ᵗ) · m / (√v̂ / √(1 − β₂ᵗ) + ε)

L2 ≠ weight decay for Adam: the L2 term λ·w above is divided by √v̂ like the rest of the gradient,
so weights with large gradients are barely regularised. ``decoupled_weight_decay=True`` (AdamW,
``deepnum/optim/adamw.py``) shrinks w ← w − η·λ·w directly instead, before the step above.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from deepnum.backend import get_array_module
from deepnum.optim.optimizer import (
    Optimizer,
    check_flags,
    check_nonnegative,
    count_step,
    grad_array,
    lerp_,
    new_step,
    scratch,
)
from deepnum.tensor import Tensor


class Adam(Optimizer):
    """``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
    maximize=False, decoupled_weight_decay=False)``; state ``step``, ``exp_avg``, ``exp_avg_sq`` and
    ``max_exp_avg_sq`` (amsgrad), as ``torch.optim.Adam``."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, amsgrad: bool = False, *, foreach: bool | None = None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False,
                 fused: bool | None = None, decoupled_weight_decay: bool = False) -> None:
        name = type(self).__name__
        check_nonnegative(name, lr=lr, eps=eps, weight_decay=weight_decay)
        if len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{name}: invalid beta parameter at index {i}: {beta} (expected 0 <= beta < 1)")
        check_flags(name, foreach, fused, differentiable)
        super().__init__(params, dict(lr=lr, betas=tuple(float(b) for b in betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
                                      foreach=foreach, capturable=capturable, differentiable=differentiable,
                                      fused=fused, decoupled_weight_decay=decoupled_weight_decay))

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        xp = get_array_module(p.data)
        state = self.state[p]
        state["step"] = new_step()
        state["exp_avg"] = Tensor._make(xp.zeros_like(p.data))
        state["exp_avg_sq"] = Tensor._make(xp.zeros_like(p.data))
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = Tensor._make(xp.zeros_like(p.data))
        return state

    def update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        """The rule of the module docstring with PyTorch's order of operations, in place on the state,
        with two pooled work arrays per parameter (``scratch``) instead of fresh temporaries."""
        lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        for p in params:
            xp = get_array_module(p.data)
            state = self.state[p] or self._init_state(p, group)
            step = count_step(state)
            g = grad_array(p, group["maximize"])
            tmp, denom = scratch(p.data), scratch(p.data)
            if wd != 0:
                if group["decoupled_weight_decay"]:
                    p.mul_(1 - lr * wd)
                else:
                    g = xp.add(g, xp.multiply(p.data, wd, out=denom), out=denom)
            m, v = state["exp_avg"].data, state["exp_avg_sq"].data
            lerp_(m, g, 1 - beta1, work=tmp)
            v *= beta2
            xp.multiply(g, 1 - beta2, out=tmp)
            tmp *= g
            v += tmp
            if group["amsgrad"]:
                v_hat = state["max_exp_avg_sq"].data
                xp.maximum(v_hat, v, out=v_hat)
            else:
                v_hat = v
            step_size = lr / (1 - beta1**step)
            xp.sqrt(v_hat, out=denom)
            denom /= (1 - beta2**step) ** 0.5
            denom += eps
            update = xp.multiply(m, -step_size, out=tmp)
            update /= denom
            p.add_(update)
