"""``Optimizer``: holds parameter groups (each with its own hyper-parameters, e.g. a smaller
learning rate for pre-trained layers when fine-tuning) and per-parameter state (momentum buffers,
Adam's moments), with PyTorch's ``state_dict`` layout. Subclasses implement ``step``."""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from deepnum.autograd.grad_mode import no_grad
from deepnum.tensor import Tensor


class Optimizer:
    """Base class: ``Optimizer(params, defaults)`` where ``params`` is an iterable of Tensors or of
    dicts (param groups) such as ``[{"params": head.parameters(), "lr": 1e-2}, {"params": body...}]``."""

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group; hyper-parameters it does not set come from the optimizer's defaults."""
        group = dict(param_group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__} can only optimize Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{type(self).__name__}: can't optimize a non-leaf Tensor of shape {tuple(p.shape)}")
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients of the last backward (they accumulate otherwise)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; ``closure`` re-evaluates the loss."""
        loss = None
        if closure is not None:
            from deepnum.autograd.grad_mode import enable_grad

            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                params = [p for p in group["params"] if p.grad is not None]
                if params:
                    self.update_group(group, params)
        return loss

    def update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        raise NotImplementedError

    def state_for(self, p: Tensor) -> dict[str, Any]:
        """The state dict of one parameter, created empty on first use."""
        return self.state.setdefault(p, {})

    # ----------------------------------------------------------------- saving
    def state_dict(self) -> dict[str, Any]:
        """``{'state': {index: {...}}, 'param_groups': [{..., 'params': [indices]}]}`` as PyTorch:
        parameters are numbered in group order, so the dict does not depend on object identity."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {index[id(p)]: {k: (v.detach().clone() if isinstance(v, Tensor) else copy.deepcopy(v))
                                for k, v in s.items()}
                 for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyper-parameters and state; group sizes and state shapes must match."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(groups)} parameter groups, the optimizer has "
                             f"{len(self.param_groups)}")
        for saved, own in zip(groups, self.param_groups, strict=True):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(f"loaded state dict has a group of {len(saved['params'])} parameters where the "
                                 f"optimizer has {len(own['params'])}")
        by_index = {i: p for saved, own in zip(groups, self.param_groups, strict=True)
                    for i, p in zip(saved["params"], own["params"], strict=True)}
        new_state: dict[Tensor, dict[str, Any]] = {}
        for i, s in state_dict["state"].items():
            p = by_index[int(i)]
            entry = {}
            for k, v in s.items():
                if isinstance(v, Tensor) and v.ndim > 0 and tuple(v.shape) != tuple(p.shape) and k != "step":
                    raise ValueError(f"state {k!r} of parameter {i} has shape {tuple(v.shape)}, "
                                     f"the parameter has {tuple(p.shape)}")
                entry[k] = v.detach().clone().to(p.dtype) if isinstance(v, Tensor) and v.dtype.kind == "f" else v
            new_state[p] = entry
        self.state = new_state
        for saved, own in zip(groups, self.param_groups, strict=True):
            own.update({k: v for k, v in saved.items() if k != "params"})

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines) + "\n)"
