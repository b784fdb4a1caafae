"""Stochastic gradient descent with momentum (Polyak 1964; Nesterov 1983 in Sutskever et al. 2013's
form), exactly PyTorch's update rule, for a parameter w with gradient ∇L (−∇L under ``maximize``):

    g ← ∇L + λ·w                              (weight_decay: L2 regularisation added to the gradient)
    b ← μ·b + (1 − dampening)·g               (momentum buffer, a moving average of the gradients;
                                               b = g on the first step)
    g ← g + μ·b if nesterov else b            (Nesterov: look ahead along the momentum)
    w ← w − η·g
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from deepnum.optim.optimizer import Optimizer, check_flags, check_nonnegative, grad_array
from deepnum.tensor import Tensor


class SGD(Optimizer):
    """``SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *, maximize=False)``;
    state ``momentum_buffer`` (only when momentum ≠ 0), as ``torch.optim.SGD``."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, differentiable: bool = False, fused: bool | None = None) -> None:
        check_nonnegative("SGD", lr=lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening, got "
                             f"momentum={momentum}, dampening={dampening}")
        check_flags("SGD", foreach, fused, differentiable)
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize, foreach=foreach,
                                      differentiable=differentiable, fused=fused))

    def update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        lr, mu, wd = float(group["lr"]), float(group["momentum"]), float(group["weight_decay"])
        damp = float(group["dampening"])
        for p in params:
            g = grad_array(p, group["maximize"])
            if wd != 0:
                g = g + wd * p.data
            if mu != 0:
                state = self.state[p]
                if state.get("momentum_buffer") is None:
                    state["momentum_buffer"] = Tensor._make(g.copy())
                    buf = state["momentum_buffer"].data
                else:
                    buf = state["momentum_buffer"].data
                    buf *= mu
                    buf += (1 - damp) * g
                g = g + mu * buf if group["nesterov"] else buf
            p.add_(g, alpha=-lr)
