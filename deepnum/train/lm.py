"""Training a character-level language model: ``train_language_model`` and
``evaluate_language_model``.

The loss is the mean cross-entropy of the next character, in nats per character (bits per character
= nats / ln 2; a model that predicts uniformly over V characters scores ln V).

Batches. The text is one long sequence of ids. With the ``"streams"`` layout (the default for a
recurrent model, ``model.recurrent`` true) it is cut into ``batch_size`` contiguous streams of equal
length (row b of the (batch_size, L) matrix is the b-th L-character piece of the text); step i reads
the next ``seq_len`` columns of every stream, so row b of a batch continues row b of the previous
batch. At the end of the streams the reading starts again from column 0 (a new epoch) with a fresh
state. The ``"random"`` layout (the default for other models, e.g. a GPT) draws ``batch_size``
windows of ``seq_len + 1`` characters at uniformly random start positions from a seeded
``deepnum.Generator`` (``random_windows``).

Truncated backpropagation through time (R. J. Williams and J. Peng, "An efficient gradient-based
algorithm for on-line training of recurrent network trajectories", Neural Computation 1990; as used
for language models by I. Sutskever, "Training recurrent neural networks", PhD thesis, 2013): for a
recurrent model the final state (h, c) of each chunk is the initial state of the next chunk, so the
model sees an unbroken text, but the state is *detached* between chunks, so gradients flow back at
most ``seq_len`` characters and the graph of one step never grows beyond one chunk.

Each step: ``zero_grad``, forward, cross-entropy, backward, ``clip_grad_norm_`` (R. Pascanu,
T. Mikolov, Y. Bengio, "On the difficulty of training recurrent neural networks", ICML 2013), the
optimizer step. The learning rate follows ``scheduler``: ``"cosine"`` is a linear warm-up over
``warmup_steps`` followed by cosine decay to ``min_lr_ratio`` × the peak over the *budget*, whose
progress is ``max(step / steps, training time / max_minutes)``, so a time-limited run anneals to the
end of its time; an ``LRScheduler`` object (not ``ReduceLROnPlateau``) is stepped once per step; None
keeps the rate.

Training stops after ``steps`` steps or ``max_minutes`` of training time (evaluation excluded),
whichever comes first; the validation loss is measured every ``eval_every`` steps on the first
``eval_tokens`` characters of the validation ids and at the end on all of them (a recurrent model
reads the validation text as contiguous streams carrying its state; any other model reads
non-overlapping windows of ``block_size`` characters).
"""
from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from deepnum.autograd.grad_mode import no_grad
from deepnum.backend import to_device
from deepnum.functional.loss import cross_entropy
from deepnum.nn.utils.clip_grad import clip_grad_norm_
from deepnum.random import Generator
from deepnum.tensor import Tensor
from deepnum.train.history import History

__all__ = ["LMHistory", "evaluate_language_model", "random_windows", "stream_batches", "train_language_model"]


# --------------------------------------------------------------------------- history and display
def as_ids(ids: Any, who: str) -> np.ndarray:
    """A 1-d int64 NumPy array of token ids from an array, a sequence or a Tensor."""
    array = np.asarray(ids.detach().numpy() if isinstance(ids, Tensor) else ids)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise ValueError(f"{who}: expected a 1-d sequence of integer token ids, got shape {array.shape} and "
                         f"dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def model_device(model: Any) -> str:
    for p in model.parameters():
        return p.device
    return "cpu"


class LMHistory(History):
    """A ``History`` with one row per evaluation (``epoch`` holds the step number): ``loss`` (mean
    training loss since the previous evaluation), ``val_loss`` (nats/char), ``val_bpc``
    (bits/char), ``lr``, ``train_time`` (seconds of training, evaluation excluded), ``time``
    (seconds since the start, evaluations included), ``tokens_per_s`` (training characters per
    second of training time); ``step_loss`` lists the loss of every step and ``final`` the last
    row (its validation over the whole validation ids unless ``final_eval_tokens`` was given)."""

    def __init__(self) -> None:
        super().__init__()
        self.step_loss: list[float] = []
        self.final: dict[str, float] = {}

    def record(self, step: int, loss: float, val: dict[str, float], train_time: float, elapsed: float, tokens: int,
               lr: float, final: bool) -> dict[str, float]:
        row = {"step": step, "loss": loss, "val_loss": val["loss"], "val_bpc": val["bpc"], "val_tokens": val["tokens"],
               "lr": lr, "train_time": train_time, "time": elapsed, "tokens_per_s": tokens / max(train_time, 1e-9)}
        self.append(step, {k: v for k, v in row.items() if k != "step"})
        if final:
            self.final = row
        return row

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "step_loss": list(self.step_loss), "final": dict(self.final)}


class Reporter:
    """Progress of a run: a tqdm bar (per step, live loss) or one line per evaluation, or nothing
    (``progress`` True, None = the bar on a terminal and lines otherwise, False)."""

    def __init__(self, progress: bool | None, steps: int | None, limit: float | None) -> None:
        from deepnum.train._progress import _isatty, _tqdm

        self.bar, self.lines, self.steps = None, progress is not False, steps
        if progress is True or (progress is None and _isatty(sys.stderr)):
            try:
                self.bar = _tqdm()(total=steps, unit="step", file=sys.stderr, dynamic_ncols=True,
                                   desc="training" if limit is None else f"training (≤ {limit / 60:g} min)")
            except ImportError:
                if progress is True:
                    raise
        self.lines = progress is not False and self.bar is None

    def step(self, loss: float, lr: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {loss:.4f}, lr {lr:.2e}", refresh=False)
            self.bar.update(1)

    def evaluated(self, row: dict[str, float]) -> None:
        text = (f"step {row['step']}{'/' + str(self.steps) if self.steps else ''}: train loss {row['loss']:.4f}, "
                f"val loss {row['val_loss']:.4f} nats/char ({row['val_bpc']:.3f} bits), {row['train_time']:.1f} s, "
                f"{row['tokens_per_s']:,.0f} chars/s")
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        elif self.lines:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------- batches
def stream_batches(ids: Any, seq_len: int, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, bool]]:
    """Endless TBPTT batches ``(x, y, new_epoch)`` of shape (batch_size, seq_len): the text cut into
    ``batch_size`` contiguous streams, read ``seq_len`` columns at a time (see the module docstring);
    ``new_epoch`` is True for the first chunk of every pass (the state must start fresh)."""
    ids = as_ids(ids, "stream_batches")
    length = (ids.size - 1) // batch_size
    chunks = length // seq_len
    if chunks < 1:
        raise ValueError(f"stream_batches: {ids.size} ids are too few for {batch_size} streams of at least "
                         f"seq_len + 1 = {seq_len + 1} characters")
    x_streams = ids[: batch_size * length].reshape(batch_size, length)
    y_streams = ids[1: batch_size * length + 1].reshape(batch_size, length)
    while True:
        for j in range(chunks):
            cols = slice(j * seq_len, (j + 1) * seq_len)
            yield np.ascontiguousarray(x_streams[:, cols]), np.ascontiguousarray(y_streams[:, cols]), j == 0


def random_windows(ids: Any, seq_len: int, batch_size: int,
                   generator: Generator | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, bool]]:
    """Endless batches ``(x, y, False)`` of ``batch_size`` windows at start positions drawn
    uniformly (``generator.rng.integers(0, len(ids) - seq_len, batch_size)``), one gather each."""
    ids = as_ids(ids, "random_windows")
    if ids.size < seq_len + 1:
        raise ValueError(f"random_windows: {ids.size} ids are too few for windows of seq_len + 1 = {seq_len + 1}")
    windows = np.lib.stride_tricks.sliding_window_view(ids, seq_len + 1)
    rng = (generator if generator is not None else Generator()).rng
    while True:
        batch = windows[rng.integers(0, ids.size - seq_len, batch_size)]
        yield np.ascontiguousarray(batch[:, :-1]), np.ascontiguousarray(batch[:, 1:]), False


# --------------------------------------------------------------------------- evaluation
def _nll(logits: Tensor, y: np.ndarray, device: str) -> float:
    target = Tensor._make(to_device(np.ascontiguousarray(y).reshape(-1), device))
    return float(cross_entropy(logits.reshape(-1, logits.shape[-1]), target, reduction="sum").item())


def _recurrent_nll(model: Any, ids: np.ndarray, chunk: int, streams: int, device: str) -> float:
    """Summed loss over every target: ``streams`` contiguous streams read ``chunk`` columns at a time
    with the state carried; the few ids left over continue the last stream (its state's last row)."""
    streams = max(1, min(streams, (ids.size - 1) // 2))
    length = (ids.size - 1) // streams
    x_all = ids[: streams * length].reshape(streams, length)
    y_all = ids[1: streams * length + 1].reshape(streams, length)
    total, state = 0.0, None
    for j in range(0, length, chunk):
        logits, state = model(Tensor._make(to_device(np.ascontiguousarray(x_all[:, j:j + chunk]), device)), state)
        total += _nll(logits, y_all[:, j:j + chunk], device)
    tail = streams * length
    if tail < ids.size - 1:
        last = tuple(s[:, -1:] for s in state)
        logits, _ = model(Tensor._make(to_device(np.ascontiguousarray(ids[tail:-1][None]), device)), last)
        total += _nll(logits, ids[tail + 1:], device)
    return total


def _window_nll(model: Any, ids: np.ndarray, window: int, batch_size: int, device: str) -> float:
    """Summed loss over every target: non-overlapping windows of ``window`` ids (and the shorter tail)."""
    count = (ids.size - 1) // window
    x_all, y_all = ids[: count * window].reshape(count, window), ids[1: count * window + 1].reshape(count, window)
    total = 0.0
    for i in range(0, count, batch_size):
        logits = model(Tensor._make(to_device(np.ascontiguousarray(x_all[i:i + batch_size]), device)))
        total += _nll(logits, y_all[i:i + batch_size], device)
    if count * window < ids.size - 1:
        logits = model(Tensor._make(to_device(np.ascontiguousarray(ids[count * window: -1][None]), device)))
        total += _nll(logits, ids[count * window + 1:], device)
    return total


def evaluate_language_model(model: Any, ids: Any, *, seq_len: int | None = None, batch_size: int = 64,
                            max_tokens: int | None = None) -> dict[str, float]:
    """Mean next-character cross-entropy of ``model`` over ``ids`` (the first ``max_tokens + 1`` of
    them when given), every target counted once: ``{"loss": nats/char, "bpc": bits/char, "tokens":
    count}``. In eval mode under ``no_grad`` (the mode is restored). A recurrent model reads
    ``batch_size`` contiguous streams in chunks of ``seq_len`` (default 256) characters, carrying its
    state (the result equals one forward pass per stream); other models read non-overlapping windows
    of ``seq_len`` (default ``model.block_size``) characters, each from an empty context."""
    ids = as_ids(ids, "evaluate_language_model")
    if max_tokens is not None:
        ids = ids[: int(max_tokens) + 1]
    if ids.size < 2:
        raise ValueError(f"evaluate_language_model: need at least 2 ids, got {ids.size}")
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            if getattr(model, "recurrent", False):
                total = _recurrent_nll(model, ids, seq_len or 256, batch_size, device)
            else:
                window = seq_len or getattr(model, "block_size", None) or 128
                total = _window_nll(model, ids, window, batch_size, device)
    finally:
        model.train(was_training)
    count = ids.size - 1
    return {"loss": total / count, "bpc": total / count / math.log(2), "tokens": count}


# --------------------------------------------------------------------------- training
def _cosine_factor(step: int, fraction: float, warmup_steps: int, min_lr_ratio: float) -> float:
    """Linear warm-up over ``warmup_steps`` (step 0 uses 1/warmup), then cosine from 1 down to
    ``min_lr_ratio`` as the budget's fraction goes from 0 to 1."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(fraction, 1.0)))


def _check_budget(steps: int | None, max_minutes: float | None, seq_len: int, batch_size: int) -> None:
    if steps is None and max_minutes is None:
        raise ValueError("train_language_model: give steps, max_minutes or both (a budget to stop at)")
    if steps is not None and (not isinstance(steps, int) or steps < 1):
        raise ValueError(f"train_language_model: steps must be a positive integer, got {steps!r}")
    if max_minutes is not None and not max_minutes > 0:
        raise ValueError(f"train_language_model: max_minutes must be > 0, got {max_minutes!r}")
    if seq_len < 1 or batch_size < 1:
        raise ValueError(f"train_language_model: seq_len and batch_size must be ≥ 1, got {seq_len}, {batch_size}")


def _scale_lr(optimizer: Any, base_lrs: list[float], factor: float) -> None:
    for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
        group["lr"] = base * factor


def _make_optimizer(model: Any, optimizer: Any, lr: float, weight_decay: float) -> Any:
    if optimizer is not None:
        return optimizer
    from deepnum.optim import AdamW

    return AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


def train_language_model(model: Any, train_ids: Any, val_ids: Any, *, seq_len: int = 64, batch_size: int = 32,
                         steps: int | None = None, max_minutes: float | None = None, optimizer: Any = None,
                         lr: float = 2e-3, weight_decay: float = 0.0, scheduler: Any = "cosine",
                         warmup_steps: int = 100, min_lr_ratio: float = 0.1, clip_grad_norm: float | None = 1.0,
                         eval_every: int | None = 250, eval_tokens: int | None = 20_000,
                         final_eval_tokens: int | None = None, layout: str | None = None,
                         generator: Generator | None = None, progress: bool | None = None,
                         callback: Callable[[dict[str, float]], Any] | None = None) -> LMHistory:
    """Train ``model`` on ``train_ids`` (see the module docstring) and return its ``LMHistory``.

    ``optimizer`` defaults to AdamW(lr, weight_decay). ``layout``: "streams" or "random" (default by
    ``model.recurrent``; the state is carried only for a recurrent model with "streams").
    ``generator`` seeds the random windows. ``progress``: None a tqdm bar on a terminal and lines
    otherwise, True the bar, False silence. ``callback(record)`` runs after every evaluation."""
    _check_budget(steps, max_minutes, seq_len, batch_size)
    recurrent = bool(getattr(model, "recurrent", False))
    layout = layout or ("streams" if recurrent else "random")
    if layout not in ("streams", "random"):
        raise ValueError(f"train_language_model: layout must be 'streams' or 'random', got {layout!r}")
    if isinstance(scheduler, str) and scheduler != "cosine":
        raise ValueError(f"train_language_model: scheduler must be 'cosine', an LRScheduler or None, got {scheduler!r}")
    batches = (stream_batches(train_ids, seq_len, batch_size) if layout == "streams"
               else random_windows(train_ids, seq_len, batch_size, generator))
    carry = recurrent and layout == "streams"
    optimizer = _make_optimizer(model, optimizer, lr, weight_decay)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    history, device = LMHistory(), model_device(model)
    limit = None if max_minutes is None else 60.0 * max_minutes
    reporter = Reporter(progress, steps, limit)
    train_time, window_losses, state, step, start = 0.0, [], None, 0, time.perf_counter()
    model.train()
    try:
        while (steps is None or step < steps) and (limit is None or train_time < limit):
            tick = time.perf_counter()
            x, y, new_epoch = next(batches)
            if scheduler == "cosine":
                fraction = max(step / steps if steps else 0.0, train_time / limit if limit else 0.0)
                _scale_lr(optimizer, base_lrs, _cosine_factor(step, fraction, warmup_steps, min_lr_ratio))
            loss, state = _train_step(model, optimizer, x, y, None if new_epoch or not carry else state, carry,
                                      device, clip_grad_norm)
            lr_used = optimizer.param_groups[0]["lr"]
            if scheduler is not None and scheduler != "cosine":
                scheduler.step()
            step += 1
            train_time += time.perf_counter() - tick
            history.step_loss.append(loss)
            window_losses.append(loss)
            reporter.step(loss, lr_used)
            last = (steps is not None and step >= steps) or (limit is not None and train_time >= limit)
            if last or (eval_every and step % eval_every == 0):
                val = evaluate_language_model(model, val_ids, max_tokens=final_eval_tokens if last else eval_tokens)
                record = history.record(step, float(np.mean(window_losses)), val, train_time,
                                        time.perf_counter() - start, step * seq_len * batch_size,
                                        lr_used, final=last)
                window_losses = []
                reporter.evaluated(record)
                if callback is not None:
                    callback(record)
    finally:
        reporter.close()
    return history


def _train_step(model: Any, optimizer: Any, x: np.ndarray, y: np.ndarray, state: Any, carry: bool, device: str,
                clip: float | None) -> tuple[float, Any]:
    """One optimisation step; returns (loss, the detached state to carry, or None)."""
    inputs = Tensor._make(to_device(x, device))
    target = Tensor._make(to_device(y.reshape(-1), device))
    optimizer.zero_grad()
    if getattr(model, "recurrent", False):
        logits, new_state = model(inputs, state)
        # TBPTT: the next chunk starts from this state's values but not its graph
        state = tuple(s.detach() for s in new_state) if carry else None
    else:
        logits = model(inputs)
    loss = cross_entropy(logits.reshape(-1, logits.shape[-1]), target)
    loss.backward()
    if clip is not None:
        clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return float(loss.item()), state
