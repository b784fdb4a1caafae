"""``fit`` and ``evaluate``: the training loop of the notes, with Keras's conveniences.

One epoch: ``model.train()``; for each batch ``(inputs, target)`` of ``train_loader``: zero the
gradients, ``loss = loss_fn(model(inputs), target)``, backward, optional gradient-norm clipping
(``clip_grad_norm_``), ``optimizer.step()``, and a scheduler step when ``scheduler_interval='step'``.
Then, with ``val_loader``, ``evaluate`` (``model.eval()`` under ``no_grad()``); the epoch's loss and
metrics are averages over samples (each batch weighted by its size); the scheduler steps once per
epoch (``ReduceLROnPlateau`` with the epoch's ``val_loss``, or its training loss without validation);
``History`` records everything; callbacks run (``deepnum.train.callbacks``); with ``checkpoint_path``
a resumable checkpoint is written (``deepnum.io.save_checkpoint``).

Ctrl-C stops after the current step with a checkpoint of the exact state and raises
``TrainingInterrupted``; ``fit(..., resume_from=path)`` continues bit-identically (``_resume``).
``amp=True``: the forward pass and the loss run under ``deepnum.amp.autocast`` and the backward
pass through a ``GradScaler`` (float32 master weights; docs/amp.md); the scaler's state is checkpointed.
Batches are ``(inputs, target)`` pairs, ``inputs`` a Tensor (or array) or a tuple of them (passed as
``model(*inputs)``); they are moved to the model's device.
"""
from __future__ import annotations

import contextlib
import copy
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from deepnum.amp import GradScaler, autocast
from deepnum.autograd.grad_mode import no_grad
from deepnum.creation import as_tensor
from deepnum.nn.utils.clip_grad import clip_grad_norm_
from deepnum.optim.lr_scheduler import ReduceLROnPlateau
from deepnum.tensor import Tensor
from deepnum.train._progress import Progress
from deepnum.train._resume import InterruptGuard, TrainingInterrupted, resume_iterator, rng_restore, rng_snapshot
from deepnum.train.callbacks import Callback
from deepnum.train.history import History
from deepnum.train.metrics import AUROC, Mean, Metric, get_metric

__all__ = ["FitState", "History", "TrainingInterrupted", "evaluate", "fit"]

CHECKPOINT_FORMAT = "deepnum.fit/1"


# --------------------------------------------------------------------------- batches and metrics
def _as_tensor(value: Any, device: str | None) -> Tensor:
    t = value if isinstance(value, Tensor) else as_tensor(value)
    return t.to(device) if device is not None and t.device != device else t


def _split_batch(batch: Any, device: str | None, who: str) -> tuple[tuple[Tensor, ...], Tensor]:
    if not isinstance(batch, tuple | list) or len(batch) != 2:
        got = f"a {type(batch).__name__} of length {len(batch)}" if isinstance(batch, tuple | list) \
            else f"a {type(batch).__name__}"
        raise TypeError(f"{who}: each batch must be a pair (inputs, target), got {got}")
    x, y = batch
    inputs = tuple(x) if isinstance(x, tuple | list) else (x,)
    return tuple(_as_tensor(v, device) for v in inputs), _as_tensor(y, device)


def _batch_size(inputs: tuple[Tensor, ...], target: Tensor) -> int:
    return int(target.shape[0]) if target.ndim else int(inputs[0].shape[0])


def _device(model: Any) -> str | None:
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else None


def _bare(model: Any) -> Any:
    """The model inside a DistributedDataParallel: checkpoints hold its keys, without ``module.``,
    so a distributed run and a single-process one resume from each other's checkpoints."""
    from deepnum.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def _make_meters(specs: Any) -> list[Metric]:
    """Fresh metric accumulators (a Metric instance given by the user is copied, so training and
    validation never share one)."""
    if specs is None:
        specs = ()
    elif isinstance(specs, str | Metric) or callable(specs):
        specs = (specs,)
    meters = [get_metric(copy.deepcopy(s) if isinstance(s, Metric) else s) for s in specs]
    names = [m.name for m in meters]
    duplicates = sorted({n for n in names if names.count(n) > 1} | ({"loss"} & set(names)))
    if duplicates:
        raise ValueError(f"metrics: the names {duplicates} are used twice (or clash with 'loss'); "
                         f"give (name, fn) pairs to rename")
    return meters


def _scalar(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _module_modes(model: Any) -> list[tuple[Any, bool]]:
    return [(m, m.training) for m in model.modules()]


def _restore_modes(modes: list[tuple[Any, bool]]) -> None:
    for module, mode in modes:
        object.__setattr__(module, "training", mode)


def evaluate(model: Any, loader: Iterable, loss_fn: Any = None, metrics: Any = ("accuracy",)) -> dict[str, float]:
    """Loss (when ``loss_fn`` is given) and metrics over a whole loader, in eval mode without
    gradients (dropout off, batch norm on its running statistics); averages are over samples. The
    model's training/eval modes are restored afterwards."""
    meters = _make_meters(metrics)
    loss_meter, device, count = Mean("loss"), _device(model), 0
    modes = _module_modes(model)
    model.eval()
    try:
        with no_grad():
            for batch in loader:
                inputs, target = _split_batch(batch, device, "evaluate")
                output = model(*inputs)
                if loss_fn is not None:
                    loss_meter.update(loss_fn(output, target).item(), _batch_size(inputs, target))
                for m in meters:
                    m.update(output, target)
                count += 1
    finally:
        _restore_modes(modes)
    if count == 0:
        raise ValueError("evaluate: the loader yielded no batches")
    results = {"loss": loss_meter.compute()} if loss_fn is not None else {}
    results.update({m.name: _scalar(m.compute()) for m in meters})
    return results


def _named_generators(train_loader: Any, val_loader: Any, generators: Any) -> dict[str, Any]:
    """The generators a checkpoint saves besides the default one: the user's (a mapping of names,
    or a sequence named ``generators.<i>``), then the loaders' shuffling generators if not among them."""
    if generators is None:
        named: dict[str, Any] = {}
    elif isinstance(generators, Mapping):
        named = dict(generators)
    elif isinstance(generators, Sequence):
        named = {f"generators.{i}": g for i, g in enumerate(generators)}
    else:
        raise TypeError(f"fit: generators must be a dict of name -> Generator or a list, got {type(generators)}")
    for name, gen in named.items():
        if not (hasattr(gen, "get_state") and hasattr(gen, "set_state")):
            raise TypeError(f"fit: generators[{name!r}] is a {type(gen).__name__}, expected a deepnum.Generator")
    for name, loader in (("train_loader", train_loader), ("val_loader", val_loader)):
        gen = getattr(loader, "generator", None)
        if gen is not None and all(gen is not g for g in named.values()):
            named[name] = gen
    return named


def _check_arguments(epochs: Any, optimizer: Any, loss_fn: Any, scheduler: Any, scheduler_interval: str,
                     clip_grad_norm: Any, callbacks: Sequence[Any]) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"fit: epochs must be a non-negative int, got {epochs!r}")
    if optimizer is None or not hasattr(optimizer, "param_groups"):
        raise TypeError(f"fit: optimizer must be a deepnum.optim optimizer, got {type(optimizer).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"fit: loss_fn must be callable (e.g. nn.CrossEntropyLoss()), got {loss_fn!r}")
    if scheduler_interval not in ("epoch", "step"):
        raise ValueError(f"fit: scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
    if isinstance(scheduler, ReduceLROnPlateau) and scheduler_interval == "step":
        raise ValueError("fit: ReduceLROnPlateau needs an epoch metric; use scheduler_interval='epoch'")
    if clip_grad_norm is not None and not clip_grad_norm > 0:
        raise ValueError(f"fit: clip_grad_norm must be a positive number or None, got {clip_grad_norm!r}")
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"fit: callbacks must be deepnum.train.callbacks.Callback instances, got "
                            f"{type(cb).__name__} (wrap functions in LambdaCallback)")


class FitState:
    """The running loop of ``fit``, which callbacks see as ``self.state``: ``model``, ``optimizer``,
    ``scheduler``, ``history``, ``epoch`` (0-based), ``batch`` (index within the epoch), ``step``
    (optimizer steps so far), ``stop_training`` (set it to stop after the current batch),
    ``request_interrupt()`` (what Ctrl-C does) and ``save_checkpoint(path)``."""

    def __init__(self, model: Any, train_loader: Iterable, *, epochs: int, optimizer: Any, loss_fn: Any,
                 val_loader: Iterable | None = None, scheduler: Any = None, scheduler_interval: str = "epoch",
                 metrics: Any = ("accuracy",), callbacks: Sequence[Callback] = (), clip_grad_norm: float | None = None,
                 progress: bool | None = None, checkpoint_path: str | os.PathLike | None = None,
                 generators: Any = None, amp: bool = False) -> None:
        callbacks = list(callbacks)
        _check_arguments(epochs, optimizer, loss_fn, scheduler, scheduler_interval, clip_grad_norm, callbacks)
        self.model, self.train_loader, self.val_loader = model, train_loader, val_loader
        self.epochs, self.optimizer, self.loss_fn, self.scheduler = epochs, optimizer, loss_fn, scheduler
        self.scheduler_interval, self.clip_grad_norm = scheduler_interval, clip_grad_norm
        self.metric_specs, self.callbacks = metrics, callbacks
        self.checkpoint_path = os.fspath(checkpoint_path) if checkpoint_path is not None else None
        self.generators = _named_generators(train_loader, val_loader, generators)
        self.meters = [Mean("loss"), *_make_meters(metrics)]
        self.history = History()
        self.epoch = self.batch = self.step = 0
        self.stop_training = False
        self._progress = Progress(progress, epochs)
        self._guard = InterruptGuard()
        self._device = _device(model)
        self.amp = bool(amp)
        self.scaler = GradScaler(self._device or "cpu") if self.amp else None
        try:
            self.num_batches: int | None = len(train_loader)  # type: ignore[arg-type]
        except TypeError:
            self.num_batches = None
        self._epoch_start_rng: dict[str, Any] | None = None
        self._epoch_lr = float(optimizer.param_groups[0]["lr"])
        self._epoch_t0 = time.perf_counter()
        self._next_batch = 0

    # ------------------------------------------------------------------ public helpers
    def request_interrupt(self) -> None:
        """Ask the loop to stop after the current step and save, exactly as a Ctrl-C does."""
        self._guard.request()

    def save_checkpoint(self, path: str | os.PathLike, *, epoch_complete: bool = True) -> None:
        """Write a resumable checkpoint: at the end of the current epoch (``epoch_complete``) or, from
        inside the epoch, of the exact state before batch ``self._next_batch``."""
        from deepnum.io import save_checkpoint

        extra: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT, "batch": 0 if epoch_complete else self._next_batch,
            "num_batches": self.num_batches, "history": self.history.state_dict(),
            "callbacks": [{"type": type(cb).__name__, "state": cb.state_dict()} for cb in self.callbacks]}
        if self.scaler is not None:
            extra["grad_scaler"] = self.scaler.state_dict()
        if not epoch_complete:
            extra.update(meters=[m.state_dict() for m in self.meters], epoch_start_rng=self._epoch_start_rng,
                         epoch_lr=self._epoch_lr, epoch_time=time.perf_counter() - self._epoch_t0)
        directory = os.path.dirname(os.fspath(path))
        if directory:
            os.makedirs(directory, exist_ok=True)
        save_checkpoint(path, model=_bare(self.model), optimizer=self.optimizer, scheduler=self.scheduler,
                        epoch=self.epoch + 1 if epoch_complete else self.epoch, step=self.step,
                        generators=self.generators, extra=extra)

    # ------------------------------------------------------------------ the loop
    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def run(self, resume_from: str | os.PathLike | None = None) -> History:
        resume = self._load(resume_from) if resume_from is not None else None
        start = resume["epoch"] if resume is not None else 0
        for cb in self.callbacks:
            cb.set_state(self)
        with self._guard:
            self._call("on_train_begin", {"initial_epoch": start, "resumed": resume is not None})
            if resume is not None:  # whatever on_train_begin drew, continue from the saved states
                rng_restore(resume["rng"], self.generators)
            try:
                for epoch in range(start, self.epochs):
                    self._run_epoch(epoch, resume if epoch == start else None)
                    if self.stop_training:
                        break
            finally:
                self._progress.close()
        self._call("on_train_end", self.history.last())
        return self.history

    def _begin_epoch(self, epoch: int, resume: dict[str, Any] | None) -> tuple[Any, int]:
        """Mode, meters, callbacks and the batch iterator of an epoch (the rest of it when resuming)."""
        self.epoch, self.stop_training = epoch, False
        self.model.train()
        for m in self.meters:
            m.reset()
        self._call("on_epoch_begin", epoch, {"lr": float(self.optimizer.param_groups[0]["lr"])})
        self._epoch_lr = float(self.optimizer.param_groups[0]["lr"])  # after LearningRateScheduler & co.
        sampler = getattr(self.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):  # DistributedSampler: this epoch's shuffle, the same on every rank
            sampler.set_epoch(epoch)
        start = resume["batch"] if resume is not None else 0
        self._next_batch = start
        if start:
            for meter, state in zip(self.meters, resume["meters"], strict=True):
                meter.load_state_dict(state)
            self._epoch_start_rng, self._epoch_lr = resume["epoch_start_rng"], resume["epoch_lr"]
            self._epoch_t0 = time.perf_counter() - resume["epoch_time"]
            iterator = resume_iterator(self.train_loader, start, self._epoch_start_rng, resume["rng"], self.generators)
        else:
            self._epoch_t0 = time.perf_counter()
            self._epoch_start_rng = rng_snapshot(self.generators)
            iterator = iter(self.train_loader)
        self._progress.epoch_begin(epoch, self.num_batches, start)
        return iterator, start

    def _run_epoch(self, epoch: int, resume: dict[str, Any] | None) -> None:
        iterator, start = self._begin_epoch(epoch, resume)
        ran = start
        for index, batch in enumerate(iterator, start):
            self.batch, ran = index, index + 1
            self._train_batch(index, batch)
            if self._guard.requested:
                self._interrupt(epoch_complete=False)
            if self.stop_training:
                break
        if ran == 0:
            raise ValueError("fit: train_loader yielded no batches")
        self._end_epoch(epoch)

    def _train_batch(self, index: int, batch: Any) -> None:
        self._call("on_batch_begin", index, {"batch": index})
        inputs, target = _split_batch(batch, self._device, "fit")
        self.optimizer.zero_grad()
        with autocast(self._device or "cpu") if self.amp else contextlib.nullcontext():
            output = self.model(*inputs)
            loss = self.loss_fn(output, target)
        self._backward_and_step(loss)
        self.step += 1
        if self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()
        n, value = _batch_size(inputs, target), float(loss.item())
        self.meters[0].update(value, n)
        output = output.detach() if isinstance(output, Tensor) else output
        for m in self.meters[1:]:
            m.update(output, target)
        self._next_batch = index + 1  # the state is now "before batch index + 1" (for save_checkpoint)
        logs: dict[str, Any] = {"batch": index, "size": n, "batch_loss": value}
        for m in self.meters:
            current = m.compute() if not isinstance(m, AUROC) else None
            if isinstance(current, float):
                logs[m.name] = current
        self._call("on_batch_end", index, logs)
        self._progress.batch_end(logs)

    def _backward_and_step(self, loss: Tensor) -> None:
        """Backward, optional clipping, the optimizer step; with AMP through the GradScaler (which
        skips the step when a gradient overflowed; clipping then sees the unscaled gradients)."""
        scaler = self.scaler
        if scaler is None:
            loss.backward()
        else:
            with np.errstate(over="ignore", invalid="ignore"):  # float16 overflow: the scaler skips the step
                scaler.scale(loss).backward()
        if self.clip_grad_norm is not None:
            if scaler is not None:
                scaler.unscale_(self.optimizer)
            clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
        if scaler is None:
            self.optimizer.step()
            return
        scaler.step(self.optimizer)
        scaler.update()

    def _end_epoch(self, epoch: int) -> None:
        logs = {m.name: _scalar(m.compute()) for m in self.meters}
        if self.val_loader is not None:
            val = evaluate(self.model, self.val_loader, self.loss_fn, self.metric_specs)
            logs.update({f"val_{k}": v for k, v in val.items()})
        logs["lr"] = self._epoch_lr
        logs["time"] = time.perf_counter() - self._epoch_t0
        if self.scheduler is not None and self.scheduler_interval == "epoch":
            if isinstance(self.scheduler, ReduceLROnPlateau):
                self.scheduler.step(logs.get("val_loss", logs["loss"]))
            else:
                self.scheduler.step()
        self.history.append(epoch, logs)
        self._call("on_epoch_end", epoch, logs)
        self._progress.epoch_end(epoch, logs)
        if self.checkpoint_path is not None:
            self.save_checkpoint(self.checkpoint_path, epoch_complete=True)
        if self._guard.requested:
            self._interrupt(epoch_complete=True)

    # ------------------------------------------------------------------ interruption and resumption
    def _interrupt(self, epoch_complete: bool) -> None:
        """Save (mid-epoch; an epoch-end checkpoint is already written), explain, and raise."""
        self._progress.close()
        path = self.checkpoint_path
        if path is not None and not epoch_complete:
            self.save_checkpoint(path, epoch_complete=False)
        batch = 0 if epoch_complete else self._next_batch
        epoch = self.epoch + 1 if epoch_complete else self.epoch
        total = f"/{self.num_batches}" if self.num_batches is not None else ""
        where = (f"at the end of epoch {self.epoch + 1}/{self.epochs}" if epoch_complete
                 else f"in epoch {self.epoch + 1}/{self.epochs} after batch {batch}{total}")
        if path is not None:
            message = (f"Training interrupted {where} (step {self.step}). Checkpoint saved to {path}.\n"
                       f"Resume with the CLI's --resume {path}, or fit(..., resume_from={path!r}).")
        else:
            message = (f"Training interrupted {where} (step {self.step}). No checkpoint was written: give fit a "
                       f"checkpoint_path to make an interrupted run resumable.")
        print(message, file=sys.stderr, flush=True)
        self._guard.restore()
        raise TrainingInterrupted(message, path, epoch, batch, self.step, self.history)

    def _load(self, path: str | os.PathLike) -> dict[str, Any]:
        """Restore model, optimizer, scheduler, random states, counters, history and callback states."""
        from deepnum.io import load_checkpoint

        info = load_checkpoint(path, model=_bare(self.model), optimizer=self.optimizer, scheduler=self.scheduler,
                               generators=self.generators)
        extra = info["extra"] if isinstance(info["extra"], dict) else {}
        self.step = info["step"]
        resume: dict[str, Any] = {"epoch": info["epoch"], "batch": 0, "rng": rng_snapshot(self.generators)}
        if extra.get("format") != CHECKPOINT_FORMAT:
            return resume  # a plain checkpoint: continue at the start of its epoch
        self.history.load_state_dict(extra["history"])
        if self.scaler is not None and extra.get("grad_scaler"):
            self.scaler.load_state_dict(extra["grad_scaler"])
        self._load_callbacks(extra.get("callbacks", []), path)
        batch = int(extra.get("batch", 0))
        if batch:
            saved = extra.get("num_batches")
            if saved is not None and self.num_batches is not None and saved != self.num_batches:
                raise ValueError(f"fit(resume_from={os.fspath(path)!r}): the checkpoint was taken mid-epoch with "
                                 f"{saved} batches per epoch, train_loader now has {self.num_batches}")
            resume.update(batch=batch, meters=extra["meters"], epoch_start_rng=extra["epoch_start_rng"],
                          epoch_lr=float(extra["epoch_lr"]), epoch_time=float(extra.get("epoch_time", 0.0)))
        return resume

    def _load_callbacks(self, saved: list[dict[str, Any]], path: Any) -> None:
        import warnings

        for i, cb in enumerate(self.callbacks):
            if i < len(saved) and saved[i]["type"] == type(cb).__name__:
                cb.load_state_dict(saved[i]["state"])
            elif cb.state_dict():
                warnings.warn(f"fit(resume_from={os.fspath(path)!r}): no saved state for callback {i} "
                              f"({type(cb).__name__}); it starts afresh", RuntimeWarning, stacklevel=4)


def fit(model: Any, train_loader: Iterable, *, epochs: int, optimizer: Any, loss_fn: Any,
        val_loader: Iterable | None = None, scheduler: Any = None, scheduler_interval: str = "epoch",
        metrics: Any = ("accuracy",), callbacks: Sequence[Callback] = (), clip_grad_norm: float | None = None,
        progress: bool | None = None, checkpoint_path: str | os.PathLike | None = None,
        resume_from: str | os.PathLike | None = None, generators: Any = None, amp: bool = False) -> History:
    """Train ``model`` for ``epochs`` epochs (in total: a resumed run continues up to the same number)
    and return its ``History``. See the module docstring for the loop; ``metrics`` are names
    ('accuracy', 'top5', 'precision', 'recall', 'f1', 'auc'), Metric objects or functions (pass
    ``metrics=()`` for regression);
    ``progress``: None = a tqdm bar on a terminal and one line per epoch otherwise, True = the bar,
    False = silent. ``checkpoint_path``: a checkpoint after every epoch and on Ctrl-C.
    ``resume_from``: continue a checkpointed run exactly where it stopped. ``generators``: further
    named ``deepnum.Generator`` s to checkpoint and restore (augmentation); the loaders' own
    shuffling generators and the global one are always included. ``amp``: mixed precision
    (``deepnum.amp.autocast`` around forward and loss, a ``GradScaler`` for backward).

    On Ctrl-C: the current step finishes, a checkpoint is saved (with ``checkpoint_path``), a message
    says how to resume, the previous SIGINT handler is restored and ``TrainingInterrupted`` (a
    ``KeyboardInterrupt``) is raised."""
    state = FitState(model, train_loader, epochs=epochs, optimizer=optimizer, loss_fn=loss_fn,
                     val_loader=val_loader, scheduler=scheduler, scheduler_interval=scheduler_interval,
                     metrics=metrics, callbacks=callbacks, clip_grad_norm=clip_grad_norm, progress=progress,
                     checkpoint_path=checkpoint_path, generators=generators, amp=amp)
    return state.run(resume_from)
