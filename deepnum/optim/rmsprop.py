"""RMSprop (Hinton, Srivastava & Swersky, Coursera "Neural Networks for Machine Learning", lecture 6e):
divide the gradient by a moving average of its recent magnitude, an adaptive learning rate that,
unlike Adagrad's growing sum, forgets old gradients. PyTorch's rule, for a parameter w with gradient
∇L (−∇L under ``maximize``):

    g ← ∇L + λ·w                              (weight_decay: L2 added to the gradient)
    v ← α·v + (1 − α)·g²                      (moving average of the squared gradient, ``square_avg``)
    centered:  ḡ ← α·ḡ + (1 − α)·g,  d ← √(v − ḡ²) + ε    (Graves 2013: an estimate of the variance)
    otherwise: d ← √v + ε
    momentum μ > 0:  b ← μ·b + g / d,  w ← w − η·b
    otherwise:       w ← w − η·g / d
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from deepnum.backend import get_array_module
from deepnum.optim.optimizer import Optimizer, check_flags, check_nonnegative, count_step, grad_array, lerp_, new_step
from deepnum.tensor import Tensor


class RMSprop(Optimizer):
    """``RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False)``;
    state ``step``, ``square_avg``, ``momentum_buffer`` (momentum > 0) and ``grad_avg`` (centered),
    as ``torch.optim.RMSprop``."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False, capturable: bool = False,
                 foreach: bool | None = None, maximize: bool = False, differentiable: bool = False) -> None:
        check_nonnegative("RMSprop", lr=lr, eps=eps, momentum=momentum, weight_decay=weight_decay, alpha=alpha)
        check_flags("RMSprop", foreach, None, differentiable)
        super().__init__(params, dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                                      weight_decay=weight_decay, capturable=capturable, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable))

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        xp = get_array_module(p.data)
        state = self.state[p]
        state["step"] = new_step()
        state["square_avg"] = Tensor._make(xp.zeros_like(p.data))
        if group["momentum"] > 0:
            state["momentum_buffer"] = Tensor._make(xp.zeros_like(p.data))
        if group["centered"]:
            state["grad_avg"] = Tensor._make(xp.zeros_like(p.data))
        return state

    def update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        lr, alpha, eps = float(group["lr"]), float(group["alpha"]), float(group["eps"])
        wd, mu = float(group["weight_decay"]), float(group["momentum"])
        for p in params:
            xp = get_array_module(p.data)
            state = self.state[p] or self._init_state(p, group)
            count_step(state)
            g = grad_array(p, group["maximize"])
            if wd != 0:
                g = g + wd * p.data
            v = state["square_avg"].data
            v *= alpha
            v += (g * (1 - alpha)) * g
            if group["centered"]:
                g_avg = state["grad_avg"].data
                lerp_(g_avg, g, 1 - alpha)
                d = v - g_avg * g_avg
                xp.sqrt(d, out=d)
            else:
                d = xp.sqrt(v)
            d += eps
            if mu > 0:
                buf = state["momentum_buffer"].data
                buf *= mu
                buf += g / d
                p.add_(buf, alpha=-lr)
            else:
                update = g * -lr
                update /= d
                p.add_(update)
