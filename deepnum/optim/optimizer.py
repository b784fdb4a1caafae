"""``Optimizer``: holds parameter groups (each with its own hyper-parameters, e.g. a smaller
learning rate for pre-trained layers when fine-tuning) and per-parameter state (momentum buffers,
Adam's moments), with PyTorch's ``state_dict`` layout. Subclasses implement ``update_group``.

All the update rules work on the raw arrays of the state in place (no new state arrays per step);
parameters change through Tensor in-place methods (``p.add_``), so their version counters move and a
graph that saved an old value refuses to backpropagate, as in PyTorch. Hyper-parameters are turned
into Python floats first: a Python float times a float32 array stays float32 under NumPy 2, whereas
a NumPy float64 scalar would silently upcast the update to float64.
"""
from __future__ import annotations

import copy
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from deepnum import backend
from deepnum.autograd.grad_mode import enable_grad, no_grad
from deepnum.backend import get_array_module
from deepnum.functional._rnn_workspace import take
from deepnum.profiler import _optimizer_step_region
from deepnum.tensor import Tensor


class _RequiredParameter:
    """The default of a hyper-parameter every param group must set (``torch.optim.optimizer.required``)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


class Optimizer:
    """Base class: ``Optimizer(params, defaults)`` where ``params`` is an iterable of Tensors, of
    ``(name, Tensor)`` pairs (``model.named_parameters()``) or of dicts (param groups) such as
    ``[{"params": head.parameters(), "lr": 1e-2}, {"params": body.parameters()}]``; a group's
    missing hyper-parameters come from ``defaults``."""

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        name = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(f"{name}: params should be an iterable of Tensors or dicts, got a single Tensor of shape "
                            f"{tuple(params.shape)} (wrap it in a list)")
        self.defaults = defaults
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if not groups:
            raise ValueError(f"{name} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ----------------------------------------------------------------- groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (e.g. layers unfrozen while fine-tuning); hyper-parameters it does not set come
        from the optimizer's defaults. Everything is checked before the optimizer changes."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: a param group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{name}: a param group needs a 'params' entry, got keys {sorted(param_group)}")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(f"{name}: parameters need to be organized in ordered collections, but the ordering of "
                            "tensors in sets changes between runs; use a list instead")
        else:
            params = list(params)
        names = None
        if params and all(isinstance(p, tuple) and len(p) == 2 for p in params):
            names, params = [n for n, _ in params], [p for _, p in params]
        self._check_params(params)
        for key, default in self.defaults.items():
            if default is required and key not in group:
                raise ValueError(f"{name}: parameter group didn't specify a value of required optimization "
                                 f"parameter {key}")
        if self.param_groups and ("param_names" in self.param_groups[0]) != (names is not None):
            raise ValueError(f"{name}: all param groups must have parameter names or none of them")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        if len({id(p) for p in params}) != len(params):
            warnings.warn(f"{name} contains a parameter group with duplicate parameters; in future, this will "
                          "cause an error", stacklevel=3)
        group["params"] = params
        if names is not None:
            group["param_names"] = names
        for key, default in self.defaults.items():
            group.setdefault(key, default)
        self.param_groups.append(group)

    def _check_params(self, params: list[Any]) -> None:
        name = type(self).__name__
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{name} can only optimize Tensors, but one of the params is {type(p).__name__}")
            if not (p.is_leaf or p.retains_grad):
                raise ValueError(f"{name}: can't optimize a non-leaf Tensor (shape {tuple(p.shape)}, "
                                 f"grad_fn={type(p.grad_fn).__name__})")
            if p.dtype.kind != "f":
                raise TypeError(f"{name}: can only optimize floating-point Tensors, got {p.dtype} of shape "
                                f"{tuple(p.shape)}")

    # ----------------------------------------------------------------- training
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients of the last backward (they accumulate otherwise): drop them
        (``set_to_none=True``, PyTorch's default, frees the memory) or fill them with zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    @_optimizer_step_region  # a profiler region "Optimizer.step#SGD.step" while profiling (torch's name)
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient (the others, e.g. frozen layers, are
        skipped); ``closure`` re-evaluates the model and returns the loss, which step returns."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                params = [p for p in group["params"] if p.grad is not None]
                for p in params:
                    if p.grad.shape != p.shape:
                        raise RuntimeError(f"{type(self).__name__}.step: a gradient of shape {tuple(p.grad.shape)} "
                                           f"for a parameter of shape {tuple(p.shape)}")
                if params:
                    self.update_group(group, params)
        return loss

    def update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        """Update ``params`` (those of ``group`` with a gradient) in place; runs under no_grad."""
        raise NotImplementedError

    def state_for(self, p: Tensor) -> dict[str, Any]:
        """The state dict of one parameter, created empty on first use."""
        return self.state[p]

    # ----------------------------------------------------------------- saving
    def state_dict(self) -> dict[str, Any]:
        """``{'state': {index: {...}}, 'param_groups': [{..., 'params': [indices]}]}`` as PyTorch:
        parameters are numbered in group order, so the dict does not depend on object identity.
        Unlike PyTorch, the state tensors are copies, so later steps do not change a saved dict."""
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
        """Restore hyper-parameters and state, matched by position (group sizes must agree). Floating
        state takes each parameter's dtype and device, except ``step``, which keeps its own."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(groups)} parameter groups, the optimizer has "
                             f"{len(self.param_groups)}")
        for saved, own in zip(groups, self.param_groups, strict=True):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(f"loaded state dict contains a parameter group of {len(saved['params'])} parameters "
                                 f"that doesn't match the size of optimizer's group ({len(own['params'])})")
        by_index = {i: p for saved, own in zip(groups, self.param_groups, strict=True)
                    for i, p in zip(saved["params"], own["params"], strict=True)}
        new_state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        for i, s in state_dict["state"].items():
            key = int(i)
            if key not in by_index:
                raise ValueError(f"loaded state dict has state for parameter {i}, which no parameter group lists")
            p = by_index[key]
            new_state[p] = {k: _load_value(k, v, p, key) for k, v in s.items()}
        self.state = new_state
        for saved, own in zip(groups, self.param_groups, strict=True):
            own.update({k: copy.deepcopy(v) for k, v in saved.items() if k != "params"})

    def __repr__(self) -> str:
        text = type(self).__name__ + " ("
        for i, group in enumerate(self.param_groups):
            text += f"\nParameter Group {i}\n"
            text += "".join(f"    {k}: {group[k]}\n" for k in sorted(group) if k != "params")
        return text + ")"


def _load_value(key: str, value: Any, p: Tensor, index: int) -> Any:
    """A copy of one saved state value for parameter ``p``: moment buffers take p's dtype and device
    (and must have its shape), ``step`` keeps its dtype (it lives on the host, as in PyTorch)."""
    if key == "step" and isinstance(value, int | float):  # older PyTorch checkpoints keep a Python number
        step = new_step()
        step.data[...] = value
        return step
    if not isinstance(value, Tensor):
        return copy.deepcopy(value)
    value = value.detach().clone()
    if key == "step":
        return value
    if value.ndim > 0 and tuple(value.shape) != tuple(p.shape):
        raise ValueError(f"state {key!r} of parameter {index} has shape {tuple(value.shape)}, "
                         f"the parameter has {tuple(p.shape)}")
    if value.dtype.kind == "f":
        value = value.to(dtype=p.dtype, device=p.device)
    return value


# ----------------------------------------------------------------- helpers for the update rules
def check_flags(name: str, foreach: bool | None = None, fused: bool | None = None,
                differentiable: bool = False) -> None:
    """PyTorch's implementation switches are accepted for source compatibility (and kept in the param
    groups so ``state_dict`` has PyTorch's keys); every deepnum update is one whole-array
    implementation, so ``foreach``/``fused``/``capturable`` change nothing."""
    if differentiable:
        raise NotImplementedError(f"{name}: differentiable=True (backpropagating through the update) is not "
                                  "supported")
    if fused and foreach:
        raise RuntimeError(f"{name}: `fused` and `foreach` cannot be `True` together.")


def check_nonnegative(name: str, **values: Any) -> None:
    """Raise ``Invalid <name> value`` for a negative hyper-parameter, as PyTorch."""
    for key, value in values.items():
        if not value >= 0.0:  # also rejects nan
            raise ValueError(f"{name}: invalid {key} value: {value}")


def grad_array(p: Tensor, maximize: bool) -> Any:
    """The gradient's array, negated for ``maximize`` (gradient ascent)."""
    g = p.grad.data
    return -g if maximize else g


def new_step() -> Tensor:
    """The step counter: a 0-d float tensor on the host, float32 (float64 under a float64 default
    dtype), as PyTorch stores it (``_get_scalar_dtype``)."""
    dtype = np.float64 if backend.get_default_dtype() == backend.float64 else np.float32
    return Tensor._make(np.zeros((), dtype=dtype))  # deliberately a host array, like torch's CPU step


def count_step(state: dict[str, Any]) -> float:
    """step += 1 in place; returns the new count as a Python float."""
    step = state["step"].data
    step += 1
    return float(step)


def scratch(like: Any) -> Any:
    """A work array shaped like ``like`` for an update's temporaries, reused from step to step (see
    ``deepnum.functional._rnn_workspace``: fresh parameter-sized arrays page-fault on every step)."""
    return take(get_array_module(like), like.shape, like.dtype)


def lerp_(a: Any, b: Any, weight: float, work: Any = None) -> None:
    """a ← a + w·(b − a) in place (an exponential moving average), computed as PyTorch's lerp:
    a + w·(b − a) for |w| < 0.5 and b − (b − a)·(1 − w) otherwise, for accuracy near w = 1.
    ``work``: an array of a's shape and dtype to hold b − a."""
    xp = get_array_module(a)
    diff = xp.subtract(b, a, out=work)
    if abs(weight) < 0.5:
        diff *= weight
        a += diff
    else:
        diff *= 1 - a.dtype.type(weight)
        xp.subtract(b, diff, out=a)
