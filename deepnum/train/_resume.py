"""Interruption and exact resumption for ``fit``.

Ctrl-C (SIGINT) while ``fit`` runs only sets a flag (``InterruptGuard``); the loop finishes the
current optimizer step, saves a checkpoint of that exact state, prints how to resume, puts the
previous SIGINT handler back and raises ``TrainingInterrupted`` (a ``KeyboardInterrupt``: scripts
that do not catch it end as after any Ctrl-C; the CLI turns it into exit status 130). A second
Ctrl-C before the step ends raises ``KeyboardInterrupt`` at once, without a checkpoint.

A mid-epoch checkpoint also holds every random state as it was at the START of the epoch (just
before ``iter(loader)`` drew the epoch's order) and the index of the next batch. Resuming restores
the start-of-epoch states, redraws the same order, skips the batches already done and then sets
every random state to the saved end state, so dropout, shuffling and augmentation continue exactly
where the uninterrupted run would be. Skipping reads no samples for a ``deepnum.data.DataLoader``
over a map-style dataset (the remaining index batches are handed to a loader over the same
dataset); any other iterable is advanced by loading and discarding the batches.
"""
from __future__ import annotations

import random
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from deepnum.random import default_generator

__all__ = ["InterruptGuard", "TrainingInterrupted"]


class TrainingInterrupted(KeyboardInterrupt):
    """Raised by ``fit`` after a Ctrl-C, once the state is saved. ``checkpoint_path`` (None when fit had
    no ``checkpoint_path``), ``epoch`` (0-based), ``batch`` (the next batch to run), ``step`` and
    ``history`` describe where training stopped."""

    def __init__(self, message: str, checkpoint_path: str | None, epoch: int, batch: int, step: int,
                 history: Any) -> None:
        super().__init__(message)
        self.checkpoint_path, self.epoch, self.batch, self.step, self.history = \
            checkpoint_path, epoch, batch, step, history


class InterruptGuard:
    """Installs a SIGINT handler that only records the request (main thread only; elsewhere signals
    cannot be caught and ``request()`` is the only way in). Use as a context manager."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self.handler)
            self._installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        self.restore()

    def handler(self, signum: int, frame: Any) -> None:
        """The SIGINT handler: first press sets the flag, a second one aborts at once."""
        if self.requested:
            self.restore()
            raise KeyboardInterrupt
        self.request()

    def request(self) -> None:
        self.requested = True
        print("\nInterrupt received: finishing the current step, then saving a checkpoint "
              "(press Ctrl-C again to abort at once without saving)", file=sys.stderr, flush=True)

    def restore(self) -> None:
        if self._installed:
            previous = self._previous if self._previous is not None else signal.default_int_handler
            signal.signal(signal.SIGINT, previous)
            self._installed = False


# --------------------------------------------------------------------------- random states
def rng_snapshot(generators: Mapping[str, Any]) -> dict[str, Any]:
    """Every random state a training step may draw from: deepnum's default generator, the named
    generators, NumPy's legacy global RNG and Python's ``random``."""
    return {"default": default_generator.get_state(),
            "named": {name: gen.get_state() for name, gen in generators.items()},
            "numpy": np.random.get_state(legacy=False),
            "python": random.getstate()}


def rng_restore(snapshot: dict[str, Any], generators: Mapping[str, Any]) -> None:
    default_generator.set_state(snapshot["default"])
    for name, gen in generators.items():
        gen.set_state(snapshot["named"][name])
    np.random.set_state(snapshot["numpy"])
    random.setstate(snapshot["python"])


# --------------------------------------------------------------------------- skipping batches
def _remaining_loader(loader: Any, skip: int) -> Any | None:
    """For a deepnum DataLoader with a batch sampler: draw the epoch's index batches (exactly the
    draws ``iter(loader)`` makes) and return a loader over the same dataset for the batches after the
    first ``skip``, without reading any sample. None when the loader is of another kind."""
    from deepnum.data.dataloader import DataLoader
    from deepnum.data.sampler import BatchSampler

    if not isinstance(loader, DataLoader) or type(loader).__iter__ is not DataLoader.__iter__:
        return None
    if getattr(loader, "batch_sampler", None) is None:
        return None
    sampler = loader.batch_sampler
    plain = isinstance(sampler, BatchSampler) and type(sampler).__iter__ is BatchSampler.__iter__
    batches = list(sampler.array_batches() if plain else iter(sampler))
    if len(batches) < skip:
        raise RuntimeError(f"fit(resume_from=...): the checkpoint was taken after batch {skip} of the epoch, "
                           f"but the loader now has only {len(batches)} batches per epoch")
    options = {"collate_fn": loader.collate_fn, "num_workers": loader.num_workers, "pin_memory": loader.pin_memory,
               "timeout": loader.timeout, "worker_init_fn": loader.worker_init_fn, "generator": loader.generator,
               "prefetch": getattr(loader, "prefetch", False)}
    if loader.num_workers > 0:
        options["prefetch_factor"] = loader.prefetch_factor
    return DataLoader(loader.dataset, batch_sampler=batches[skip:], **options)


def resume_iterator(loader: Any, skip: int, start_state: dict[str, Any], end_state: dict[str, Any],
                    generators: Mapping[str, Any]) -> Iterator[Any]:
    """An iterator over the rest of an interrupted epoch, with every random state left where the
    interrupted run had it (see the module docstring)."""
    rng_restore(start_state, generators)
    rest = _remaining_loader(loader, skip)
    if rest is not None:
        rng_restore(end_state, generators)
        return iter(rest)
    iterator = iter(loader)
    for done in range(skip):
        try:
            next(iterator)
        except StopIteration:
            raise RuntimeError(f"fit(resume_from=...): the checkpoint was taken after batch {skip} of the epoch, "
                               f"but the loader ended after {done} batches") from None
    rng_restore(end_state, generators)
    return iterator
