"""``ReduceLROnPlateau``: decay the learning rate when a monitored metric stops improving (the
"reduce on plateau" heuristic of Keras/PyTorch): η ← max(η · factor, min_lr) after more than
``patience`` epochs without a significant improvement, then ignore ``cooldown`` epochs."""
from __future__ import annotations

import math
import warnings
from typing import Any, SupportsFloat

from deepnum.optim._lr_scheduler_base import EPOCH_DEPRECATION_WARNING, LRScheduler, _group_values, _set_group_value
from deepnum.optim.optimizer import Optimizer


class ReduceLROnPlateau(LRScheduler):
    """``step(metric)`` once per epoch. A value a is an improvement on the best so far when
    a < best·(1 − threshold) ('min', 'rel'), a < best − threshold ('min', 'abs'),
    a > best·(1 + threshold) ('max', 'rel') or a > best + threshold ('max', 'abs').
    More than ``patience`` bad epochs in a row multiply each group's rate by ``factor`` (not below its
    ``min_lr``; changes smaller than ``eps`` are skipped) and start a ``cooldown`` during which bad
    epochs are not counted."""

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float | list[float] = 0, eps: float = 1e-8) -> None:
        config = (f"ReduceLROnPlateau(mode={mode!r}, factor={factor}, patience={patience}, threshold={threshold}, "
                  f"threshold_mode={threshold_mode!r})")
        if factor >= 1.0:
            raise ValueError(f"{config}: factor should be < 1.0")
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{config}: expected an Optimizer, got {type(optimizer).__name__}")
        if isinstance(min_lr, (list, tuple)) and len(min_lr) != len(optimizer.param_groups):
            raise ValueError(f"{config}: expected {len(optimizer.param_groups)} min_lrs (one per parameter group), "
                             f"got {len(min_lr)}")
        self._check_modes(mode, threshold_mode)
        self.factor = factor
        self.optimizer = optimizer
        if isinstance(min_lr, (list, tuple)):
            self.default_min_lr = None
            self.min_lrs = list(min_lr)
        else:
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * len(optimizer.param_groups)
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = _group_values(optimizer, "lr")
        self._init_is_better(mode=mode, threshold=threshold, threshold_mode=threshold_mode)
        self._reset()

    @staticmethod
    def _check_modes(mode: str, threshold_mode: str) -> None:
        if mode not in {"min", "max"}:
            raise ValueError(f"ReduceLROnPlateau: mode {mode!r} is unknown, expected 'min' or 'max'")
        if threshold_mode not in {"rel", "abs"}:
            raise ValueError(f"ReduceLROnPlateau: threshold mode {threshold_mode!r} is unknown, "
                             f"expected 'rel' or 'abs'")

    def _init_is_better(self, mode: str, threshold: float, threshold_mode: str) -> None:
        self._check_modes(mode, threshold_mode)
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode

    def _reset(self) -> None:
        """Forget the best value and the bad-epoch and cooldown counters."""
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _is_better(self, a: float, best: float) -> bool:
        if self.mode == "min":
            return a < best * (1.0 - self.threshold) if self.threshold_mode == "rel" else a < best - self.threshold
        return a > best * (self.threshold + 1.0) if self.threshold_mode == "rel" else a > best + self.threshold

    def step(self, metrics: SupportsFloat, epoch: int | None = None) -> None:  # type: ignore[override]
        """Record this epoch's metric (a number or a 0-d Tensor) and reduce the rates on a plateau."""
        current = float(metrics)
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self.last_epoch = epoch
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs during a cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr(epoch)
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = _group_values(self.optimizer, "lr")

    def _reduce_lr(self, epoch: int) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(f"ReduceLROnPlateau: the optimizer has {len(groups)} param groups but min_lrs has "
                                   f"{len(self.min_lrs)} entries (a group was added after the scheduler was "
                                   f"created); update `min_lrs` to match")
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, min_lr in zip(groups, self.min_lrs, strict=True):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, min_lr)
            if old_lr - new_lr > self.eps:
                _set_group_value(group, "lr", new_lr)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(state_dict)
        self._init_is_better(mode=self.mode, threshold=self.threshold, threshold_mode=self.threshold_mode)
