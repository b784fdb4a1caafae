"""Callbacks for ``fit``, with Keras's hooks and arguments.

``fit`` calls, in order: ``on_train_begin(logs)``; per epoch ``on_epoch_begin(epoch, logs)``, per batch
``on_batch_begin(batch, logs)`` and ``on_batch_end(batch, logs)`` (logs: ``batch``, ``size``,
``batch_loss`` and the epoch's running ``loss``/metrics), then ``on_epoch_end(epoch, logs)`` (logs: the
epoch's ``loss``, metrics, ``val_*``, ``lr``, ``time``); finally ``on_train_end(logs)``. Epochs are
0-based. Each callback sees the loop through ``self.state`` (``model``, ``optimizer``, ``scheduler``,
``history``, ``epoch``, ``step``, ``stop_training``; ``state.request_interrupt()`` acts as Ctrl-C) and
``self.model``. Setting ``self.state.stop_training = True`` ends training after the current batch
(the epoch is then finished: validation, logs, checkpoint).

A callback with state worth resuming (EarlyStopping's counters and best weights) returns it from
``state_dict()``; ``fit`` stores it in its checkpoints and hands it back with ``load_state_dict``.
"""
from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "CSVLogger", "Callback", "EarlyStopping", "JSONLogger", "LambdaCallback", "LearningRateScheduler",
    "ModelCheckpoint", "TerminateOnNaN",
]


class Callback:
    """Base class: override the hooks you need; all of them do nothing here."""

    state: Any = None

    def set_state(self, state: Any) -> None:
        self.state = state

    @property
    def model(self) -> Any:
        return self.state.model if self.state is not None else None

    def on_train_begin(self, logs: dict | None = None) -> None: ...

    def on_train_end(self, logs: dict | None = None) -> None: ...

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...

    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    def __init__(self, on_epoch_begin: Callable | None = None, on_epoch_end: Callable | None = None,
                 on_batch_begin: Callable | None = None, on_batch_end: Callable | None = None,
                 on_train_begin: Callable | None = None, on_train_end: Callable | None = None) -> None:
        hooks = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end, "on_batch_begin": on_batch_begin,
                 "on_batch_end": on_batch_end, "on_train_begin": on_train_begin, "on_train_end": on_train_end}
        for name, fn in hooks.items():
            if fn is not None:
                setattr(self, name, fn)


def _resolve_mode(monitor: str, mode: str, owner: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    higher_is_better = ("acc", "auc", "f1", "precision", "recall")
    return "max" if any(word in monitor for word in higher_is_better) else "min"


def _monitored(logs: dict | None, monitor: str, owner: str) -> float | None:
    value = (logs or {}).get(monitor)
    if value is None:
        import warnings

        warnings.warn(f"{owner}: the monitored quantity {monitor!r} is not in the logs (available: "
                      f"{sorted(logs or {})}); is there validation data?", RuntimeWarning, stacklevel=3)
        return None
    return float(value)


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs in a
    row (Prechelt 1998, "Early stopping — but when?"). ``mode`` 'min' / 'max' / 'auto' (max for
    accuracy-like names). With ``restore_best_weights`` the weights of the best epoch are put back
    when training stops, early or not (Keras restores them only on an early stop). ``baseline``: the
    value to beat before the patience counter resets. ``start_from_epoch``: epochs ignored at first."""

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0) -> None:
        if patience < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience}")
        self.monitor, self.patience, self.verbose = monitor, patience, verbose
        self.mode = _resolve_mode(monitor, mode, "EarlyStopping")
        self.min_delta = abs(min_delta)
        self.baseline, self.restore_best_weights, self.start_from_epoch = baseline, restore_best_weights, \
            start_from_epoch
        self.reset()

    def reset(self) -> None:
        self.wait, self.stopped_epoch, self.best_epoch = 0, -1, -1
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_weights: dict[str, Any] | None = None

    def _improved(self, current: float, reference: float) -> bool:
        if self.mode == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not (logs or {}).get("resumed"):
            self.reset()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        current = _monitored(logs, self.monitor, "EarlyStopping")
        if current is None or epoch < self.start_from_epoch:
            return
        self.wait += 1
        if self._improved(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = {k: v.clone() for k, v in self.model.state_dict().items()}
            if self.baseline is None or self._improved(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.state.stop_training = True
            if self.verbose:
                print(f"EarlyStopping: {self.monitor} did not improve for {self.wait} epochs; stopping after epoch "
                      f"{epoch + 1} (best {self.best:.6g} at epoch {self.best_epoch + 1})")

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.restore_best_weights and self.best_weights is not None and self.best_epoch != self.state.epoch:
            if self.verbose:
                print(f"EarlyStopping: restoring the weights of epoch {self.best_epoch + 1}")
            self.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {"wait": self.wait, "stopped_epoch": self.stopped_epoch, "best_epoch": self.best_epoch,
                "best": self.best, "best_weights": self.best_weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.wait, self.stopped_epoch = int(state["wait"]), int(state["stopped_epoch"])
        self.best_epoch, self.best, self.best_weights = int(state["best_epoch"]), float(state["best"]), \
            state["best_weights"]


class ModelCheckpoint(Callback):
    """Save at the end of every epoch (or only when ``monitor`` improves, with ``save_best_only``).
    ``filepath`` may hold ``str.format`` fields: ``{epoch}`` (1-based, as Keras) and any log key,
    e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.safetensors"``. ``save_weights_only=True`` writes the
    model's state_dict (``deepnum.io.save``); otherwise a full resumable checkpoint, the one ``fit``
    writes (model, optimizer, scheduler, counters, random states, history)."""

    def __init__(self, filepath: str | os.PathLike, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False, mode: str = "auto") -> None:
        self.filepath, self.monitor, self.verbose = os.fspath(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.mode = _resolve_mode(monitor, mode, "ModelCheckpoint")
        self.best = math.inf if self.mode == "min" else -math.inf
        self.last_saved: str | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if self.save_best_only:
            current = _monitored(logs, self.monitor, "ModelCheckpoint")
            better = current is not None and (current < self.best if self.mode == "min" else current > self.best)
            if not better:
                return
            self.best = current
        path = self.filepath.format(epoch=epoch + 1, **logs)
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            from deepnum.io import save

            save(self.model.state_dict(), path)
        else:
            self.state.save_checkpoint(path, epoch_complete=True)
        self.last_saved = path
        if self.verbose:
            print(f"ModelCheckpoint: saved {path}")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])


class CSVLogger(Callback):
    """Append one row per epoch (``epoch`` 0-based, then the sorted log keys) to a CSV file. The file
    is started afresh unless ``append``; a resumed run keeps the rows of the epochs before it."""

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False) -> None:
        self.filename, self.sep, self.append = os.fspath(filename), separator, append
        self.keys: list[str] | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        logs = logs or {}
        self.keys = None
        if logs.get("resumed") or self.append:
            keep_before = logs.get("initial_epoch") if logs.get("resumed") else None
            self._keep_rows(keep_before)
        elif os.path.exists(self.filename):
            os.remove(self.filename)

    def _keep_rows(self, before: int | None) -> None:
        if not os.path.exists(self.filename):
            return
        with open(self.filename, newline="") as f:
            rows = list(csv.reader(f, delimiter=self.sep))
        if not rows:
            return
        self.keys = rows[0][1:]
        if before is not None:
            rows = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < before]
            with open(self.filename, "w", newline="") as f:
                csv.writer(f, delimiter=self.sep).writerows(rows)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        new_file = self.keys is None
        if new_file:
            self.keys = sorted(logs)
        with open(self.filename, "a", newline="") as f:
            writer = csv.writer(f, delimiter=self.sep)
            if new_file:
                writer.writerow(["epoch", *self.keys])
            writer.writerow([epoch, *(_csv_value(logs.get(k, "")) for k in self.keys)])


def _csv_value(value: Any) -> Any:
    return repr(float(value)) if isinstance(value, float | np.floating) else value


class JSONLogger(Callback):
    """Rewrite the whole history as JSON (``History.save_json``) at the end of every epoch."""

    def __init__(self, filename: str | os.PathLike) -> None:
        self.filename = os.fspath(filename)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.state.history.save_json(self.filename)


class LearningRateScheduler(Callback):
    """Set every parameter group's learning rate to ``schedule(epoch, lr)`` at the start of each epoch
    (Keras's callback; ``lr`` is the first group's current rate)."""

    def __init__(self, schedule: Callable[[int, float], float], verbose: int = 0) -> None:
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        groups = self.state.optimizer.param_groups
        lr = float(self.schedule(epoch, float(groups[0]["lr"])))
        if not math.isfinite(lr):
            raise ValueError(f"LearningRateScheduler: schedule({epoch}, ...) returned {lr}, not a finite number")
        for group in groups:
            group["lr"] = lr
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr:.6g}")


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch loss is NaN or infinite."""

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("batch_loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: invalid loss {loss}, terminating training")
            self.state.stop_training = True
