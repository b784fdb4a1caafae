"""Stochastic gradient descent with momentum (Polyak 1964; Nesterov 1983 in Sutskever et al. 2013's
form), exactly PyTorch's update rule:

    g ← ∇L + λ·w                              (weight_decay: L2 regularisation added to the gradient)
    b ← μ·b + (1 − dampening)·g               (momentum buffer; b = g on the first step)
    g ← g + μ·b if nesterov else b
    w ← w − η·g
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from deepnum.optim.optimizer import Optimizer
from deepnum.tensor import Tensor


class SGD(Optimizer):
    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: invalid lr={lr}, momentum={momentum} or weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        for p in params:
            g = p.grad.data
            if group["maximize"]:
                g = -g
            if wd:
                g = g + wd * p.data
            if mu:
                state = self.state_for(p)
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = Tensor._make(g.copy())
                    buf = state["momentum_buffer"].data
                else:
                    buf = state["momentum_buffer"].data
                    buf *= mu
                    buf += (1 - group["dampening"]) * g
                g = g + mu * buf if group["nesterov"] else buf
            p.sub_(g, alpha=lr)
