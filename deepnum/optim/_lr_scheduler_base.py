"""``LRScheduler``: the base of the learning-rate schedules in ``deepnum.optim.lr_scheduler``.

A scheduler owns an optimizer and rewrites each parameter group's ``'lr'`` once per ``step()``. As in
PyTorch, ``last_epoch`` counts the calls (the constructor makes the first one, so a fresh scheduler
has ``last_epoch == 0`` and has already set the epoch-0 learning rate), the learning rate the
schedule started from is kept in each group as ``'initial_lr'`` (``base_lrs``), and the training loop
calls ``optimizer.step()`` *before* ``scheduler.step()``: calling them the other way round skips the
first value of the schedule, which is warned about on the first call.

Most schedules are *chainable*: ``get_lr`` derives the new rate from the group's current ``'lr'``
(η_t = f_t · η_{t−1}), so several schedulers can act on one optimizer and multiply their effects;
``step(epoch)`` (deprecated, as in PyTorch) jumps to an epoch with ``_get_closed_form_lr`` instead.
"""
from __future__ import annotations

import functools
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from deepnum.optim.optimizer import Optimizer
from deepnum.tensor import Tensor

EPOCH_DEPRECATION_WARNING = (
    "The epoch parameter in `scheduler.step()` was not necessary and is being deprecated where possible. "
    "Please use `scheduler.step()` to step the scheduler. During the deprecation, if epoch is different from "
    "None, the closed form is used instead of the new chainable form, where available."
)


def _copy(value: Any) -> Any:
    return value.clone() if isinstance(value, Tensor) else value


def _format_param(owner: str, name: str, optimizer: Optimizer, value: Any) -> list[Any]:
    """One value per parameter group: a list/tuple must have one entry per group, a scalar is repeated."""
    groups = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != groups:
            raise ValueError(f"{owner}: {name} must have one value per parameter group: got {len(value)} values "
                             f"for {groups} param_groups")
        return [_copy(v) for v in value]
    return [_copy(value)] * groups


def _group_values(optimizer: Optimizer, key: str) -> list[Any]:
    """``[group[key] for group in optimizer.param_groups]``, copying Tensors so nothing aliases a group."""
    return [_copy(group[key]) for group in optimizer.param_groups]


def _set_group_value(group: dict[str, Any], key: str, value: Any) -> None:
    """``group[key] = value``, or in place when the group holds a Tensor (a captured lr stays valid)."""
    if isinstance(group[key], Tensor):
        group[key].fill_(value.item() if isinstance(value, Tensor) else value)
    else:
        group[key] = value


@contextmanager
def _flag(obj: Any, name: str) -> Iterator[None]:
    """Set the boolean attribute ``name`` of ``obj`` for the duration of the block."""
    setattr(obj, name, True)
    try:
        yield
    finally:
        setattr(obj, name, False)


class _MarkedStep:
    """Replaces ``optimizer.step`` (once): calls the original and records ``optimizer._opt_called = True``,
    which the scheduler reads to warn when ``scheduler.step()`` comes before the first ``optimizer.step()``.
    It holds the optimizer by weak reference (no reference cycle), and ``deepcopy``/``pickle`` of the
    optimizer rebind the copy's wrapper to the copy."""

    def __init__(self, optimizer: Optimizer, func: Callable[..., Any], bound: bool) -> None:
        self._owner = weakref.ref(optimizer)
        self._func, self._bound = func, bound
        functools.update_wrapper(self, func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        optimizer = self._owner()
        optimizer._opt_called = True
        return self._func(optimizer, *args, **kwargs) if self._bound else self._func(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        return _MarkedStep, (self._owner(), self._func, self._bound)


def _mark_optimizer_steps(optimizer: Optimizer) -> None:
    step = optimizer.step
    if isinstance(step, _MarkedStep):
        return
    func = getattr(step, "__func__", None)
    optimizer.step = _MarkedStep(optimizer, func, True) if func is not None else _MarkedStep(optimizer, step, False)


class LRScheduler:
    """Base class: ``LRScheduler(optimizer, last_epoch=-1)``. Subclasses implement ``get_lr`` (the rates
    for ``self.last_epoch``, usually from the current group rates) and optionally ``_get_closed_form_lr``
    (the rates from ``base_lrs`` alone). ``last_epoch=-1`` starts a schedule; another value resumes one
    and needs ``'initial_lr'`` in every group (restore the optimizer's state dict first)."""

    _get_lr_called_within_step: bool = False
    _is_initial: bool = False

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", _copy(group["lr"]))
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"{type(self).__name__}(last_epoch={last_epoch}): param 'initial_lr' is not "
                                   f"specified in param_groups[{i}] when resuming a scheduler; load the optimizer's "
                                   f"state dict first, or use last_epoch=-1 for a fresh run")
        self.base_lrs: list[Any] = _group_values(optimizer, "initial_lr")
        self.last_epoch = last_epoch
        _mark_optimizer_steps(optimizer)
        self._initial_step()

    def _initial_step(self) -> None:
        """Reset the step count and take the constructor's step (to epoch ``last_epoch + 1``)."""
        self._step_count = 0
        with _flag(self, "_is_initial"):
            self.step()

    def state_dict(self) -> dict[str, Any]:
        """Every attribute but the optimizer (PyTorch's layout)."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the attributes saved by ``state_dict``."""
        self.__dict__.update(state_dict)

    def get_last_lr(self) -> list[Any]:
        """The learning rates the last ``step()`` set, one per parameter group."""
        return self._last_lr

    def get_lr(self) -> list[Any]:
        """The learning rates for epoch ``self.last_epoch`` (called by ``step``)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement get_lr")

    def _warn_if_called_outside_step(self) -> None:
        if not self._get_lr_called_within_step:
            warnings.warn("To get the last learning rate computed by the scheduler, please use `get_last_lr()`.",
                          UserWarning, stacklevel=3)

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (or, deprecated, jump to ``epoch``) and write the new rates into the groups.
        Call it after ``optimizer.step()``."""
        if self._step_count == 1:
            if not isinstance(self.optimizer.step, _MarkedStep):
                warnings.warn("Seems like `optimizer.step()` has been overridden after learning rate scheduler "
                              "initialization. Please, make sure to call `optimizer.step()` before "
                              "`lr_scheduler.step()`.", UserWarning, stacklevel=2)
            elif not getattr(self.optimizer, "_opt_called", False):
                warnings.warn("Detected call of `lr_scheduler.step()` before `optimizer.step()`. You should call "
                              "them in the opposite order: `optimizer.step()` before `lr_scheduler.step()`. "
                              "Failure to do this will result in skipping the first value of the learning rate "
                              "schedule.", UserWarning, stacklevel=2)
        self._step_count += 1
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None) -> None:
        with _flag(self, "_get_lr_called_within_step"):
            if epoch is None:
                self.last_epoch += 1
                values = self.get_lr()
            else:
                self.last_epoch = epoch
                closed_form: Callable[[], list[Any]] | None = getattr(self, "_get_closed_form_lr", None)
                values = closed_form() if closed_form is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            _set_group_value(group, "lr", lr)
        self._last_lr: list[Any] = _group_values(self.optimizer, "lr")


class _LRScheduler(LRScheduler):
    """Old name of ``LRScheduler``, kept for compatibility (a subclass, so its ``__name__`` differs)."""
