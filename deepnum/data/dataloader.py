"""``DataLoader``: iterate over a dataset in (shuffled) mini-batches, as ``torch.utils.data.DataLoader``.

Arithmetic: an epoch is ``len(loader)`` iterations, ceil(N / batch_size), or floor(N / batch_size)
with ``drop_last=True`` (2,000 samples at batch 500: 4 iterations; 2,001 samples: 5, or 4 dropping
the last single sample). With ``batch_size=None`` batching is off: one sample per iteration.

Order: ``shuffle=True`` makes a ``RandomSampler`` that draws a fresh permutation at the start of
every epoch (at ``iter(loader)``) from ``generator`` (a ``deepnum.Generator``; the global default
generator when None). Equally seeded generators give identical epochs, and restoring a state
saved with ``generator.get_state()`` before an epoch reproduces that epoch's order exactly.

Batch fast path: with the default collate function and a dataset that has ``__getbatch__``
(``TensorDataset``, a ``Subset`` of one) each batch is gathered with one fancy index per tensor,
instead of ``batch_size`` calls to ``dataset[i]`` and a stack; ``loader.fast_path`` tells whether
it is used. The result equals the generic path's.

Background loading, with threads (not processes): ``prefetch=True`` runs one thread that loads the
next batch while the current one is being used; ``num_workers=k`` runs ``k`` threads keeping
``prefetch_factor * k`` batches in flight. Batches always come out in order. Threads help where
loading releases the GIL (NumPy copies, file reads, image decoding), not for pure-Python work.
Randomness inside a dataset or its transforms then runs in the worker threads: draws from a
shared generator (the global one, for instance) interleave with the main thread's draws in a
timing-dependent order, so such pipelines are reproducible only with loading in the main thread.
"""
from __future__ import annotations

import itertools
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import numpy as np

from deepnum import backend
from deepnum.data._collate import default_collate, default_convert
from deepnum.data.dataset import Dataset, IterableDataset
from deepnum.data.sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler
from deepnum.random import Generator
from deepnum.tensor import Tensor

__all__ = ["DataLoader"]

_END = object()  # what a fetch returns once an IterableDataset is exhausted


class DataLoader:
    """Batches of ``dataset``, in order or shuffled, with PyTorch's arguments and checks (see the
    module docstring for the arithmetic, the order, the fast path and background loading).

    Differences from PyTorch: ``num_workers > 0`` runs worker *threads* (``worker_init_fn(i)`` is
    called once in each, ``timeout`` bounds the wait for a batch); ``prefetch=True`` (deepnum only,
    off by default) loads one batch ahead in one background thread; ``pin_memory`` is accepted and
    has no effect; ``multiprocessing_context`` must stay None; Python floats collate to the default
    dtype (float32), not float64. ``device='cuda'`` (deepnum only) moves every tensor of a batch to
    that device as it is loaded (in the loading thread, with ``prefetch`` or workers)."""

    def __init__(self, dataset: Dataset, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler: Sampler | Iterable | None = None, batch_sampler: Sampler | Iterable | None = None,
                 num_workers: int = 0, collate_fn: Callable[[list], Any] | None = None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn: Callable[[int], None] | None = None,
                 multiprocessing_context: Any = None, generator: Generator | None = None, *,
                 prefetch_factor: int | None = None, persistent_workers: bool = False, prefetch: bool = False,
                 device: Any = None) -> None:
        _check_workers(num_workers, timeout, prefetch_factor, persistent_workers, multiprocessing_context)
        device = None if device is None else backend.normalize_device(device)
        if device == "cuda":
            backend.require_cuda()  # no GPU: say so now, not at the first batch
        iterable = isinstance(dataset, IterableDataset)
        if iterable:
            _check_iterable(shuffle, sampler, batch_sampler, num_workers)
        shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
                                 "and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with drop_last")
        if sampler is None and not iterable:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None and not iterable:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        elif batch_size is not None and iterable:
            BatchSampler([], batch_size, drop_last)  # the same checks of batch_size and drop_last
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.prefetch_factor = 2 if num_workers > 0 and prefetch_factor is None else prefetch_factor
        self.pin_memory = pin_memory
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.persistent_workers = persistent_workers
        self.generator = generator
        self.prefetch = bool(prefetch)
        self.device = device
        self._auto_collation = batch_sampler is not None or (iterable and batch_size is not None)
        self.collate_fn = collate_fn or (default_collate if self._auto_collation else default_convert)

    @property
    def fast_path(self) -> bool:
        """True when batches are gathered with the dataset's ``__getbatch__`` (one fancy index per
        tensor) instead of per-sample reads and ``default_collate``."""
        return (self.batch_sampler is not None and self.collate_fn is default_collate
                and getattr(self.dataset, "__getbatch__", None) is not None)

    def __len__(self) -> int:
        if isinstance(self.dataset, IterableDataset):
            n = len(self.dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)

    def __iter__(self) -> Iterator[Any]:
        """A fresh pass over the data; the epoch's order is drawn here, not at the first ``next``."""
        keys, fetch = self._plan()
        if self.device is not None:
            fetch = _moving(fetch, self.device)
        workers = self.num_workers or (1 if self.prefetch else 0)
        if workers == 0:
            return _in_main_thread(keys, fetch)
        depth = self.prefetch_factor * self.num_workers if self.num_workers else 1
        init = self.worker_init_fn if self.num_workers else None
        return _in_threads(keys, fetch, workers, depth, self.timeout or None, init)

    def _plan(self) -> tuple[Iterator[Any], Callable[[Any], Any]]:
        """The keys of one epoch (index batches, indices, or a counter for an IterableDataset) and the
        function that turns a key into what the loader yields."""
        if isinstance(self.dataset, IterableDataset):
            return itertools.count(), _iterable_fetch(iter(self.dataset), self.batch_size, self.drop_last,
                                                      self.collate_fn)
        if self.fast_path:
            get_batch = self.dataset.__getbatch__
            return _array_batches(self.batch_sampler), get_batch
        if self.batch_sampler is not None:
            return iter(self.batch_sampler), self._fetch_batch
        return iter(self.sampler), lambda index: self.collate_fn(self.dataset[index])

    def _fetch_batch(self, indices: Any) -> Any:
        if isinstance(indices, np.ndarray):
            indices = indices.tolist()
        get_items = getattr(self.dataset, "__getitems__", None)
        samples = get_items(indices) if callable(get_items) else [self.dataset[i] for i in indices]
        return self.collate_fn(samples)


def _moving(fetch: Callable[[Any], Any], device: str) -> Callable[[Any], Any]:
    """``fetch`` whose batches have every tensor (in tuples, lists and dicts) moved to ``device``."""
    def move(obj: Any) -> Any:
        if isinstance(obj, Tensor):
            return obj.to(device)
        if isinstance(obj, dict):
            return {k: move(v) for k, v in obj.items()}
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):
            return type(obj)(*(move(v) for v in obj))
        if isinstance(obj, list | tuple):
            return type(obj)(move(v) for v in obj)
        return obj

    return lambda key: (lambda item: item if item is _END else move(item))(fetch(key))


def _check_workers(num_workers: int, timeout: float, prefetch_factor: int | None, persistent_workers: bool,
                   multiprocessing_context: Any) -> None:
    if num_workers < 0:
        raise ValueError("num_workers option should be non-negative; use num_workers=0 to load in the main thread.")
    if timeout < 0:
        raise ValueError("timeout option should be non-negative")
    if num_workers == 0 and prefetch_factor is not None:
        raise ValueError("prefetch_factor option could only be specified with worker threads: let num_workers > 0, "
                         "otherwise set prefetch_factor to None (prefetch=True loads one batch ahead)")
    if prefetch_factor is not None and prefetch_factor < 1:
        raise ValueError(f"prefetch_factor option should be positive, got {prefetch_factor}")
    if persistent_workers and num_workers == 0:
        raise ValueError("persistent_workers option needs num_workers > 0")
    if multiprocessing_context is not None:
        raise ValueError("DataLoader: deepnum's workers are threads; multiprocessing_context must be None")


def _check_iterable(shuffle: Any, sampler: Any, batch_sampler: Any, num_workers: int) -> None:
    if shuffle not in {False, None}:
        raise ValueError(f"DataLoader with IterableDataset: expected unspecified shuffle option, but got "
                         f"shuffle={shuffle}")
    if sampler is not None:
        raise ValueError(f"DataLoader with IterableDataset: expected unspecified sampler option, but got "
                         f"sampler={sampler}")
    if batch_sampler is not None:
        raise ValueError(f"DataLoader with IterableDataset: expected unspecified batch_sampler option, but got "
                         f"batch_sampler={batch_sampler}")
    if num_workers > 0:
        raise NotImplementedError("DataLoader with IterableDataset: num_workers > 0 is not supported (a stream "
                                  "cannot be split between threads); use prefetch=True to load in the background")


def _array_batches(batch_sampler: Any) -> Iterator[np.ndarray]:
    """The batches of an epoch as int64 arrays: slices of the epoch's array for the built-in
    ``BatchSampler``, the lists of any other batch sampler converted."""
    if type(batch_sampler) is BatchSampler or (isinstance(batch_sampler, BatchSampler)
                                               and type(batch_sampler).__iter__ is BatchSampler.__iter__):
        return batch_sampler.array_batches()
    return (np.asarray(batch, dtype=np.int64) for batch in iter(batch_sampler))


def _iterable_fetch(it: Iterator[Any], batch_size: int | None, drop_last: bool,
                    collate_fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A fetch that pulls the next sample (or batch of samples) from a stream, ``_END`` when done."""
    lock = threading.Lock()

    def fetch(_key: Any) -> Any:
        with lock:
            if batch_size is None:
                sample = next(it, _END)
                return _END if sample is _END else collate_fn(sample)
            samples = list(itertools.islice(it, batch_size))
        if not samples or (drop_last and len(samples) < batch_size):
            return _END
        return collate_fn(samples)

    return fetch


def _in_main_thread(keys: Iterator[Any], fetch: Callable[[Any], Any]) -> Iterator[Any]:
    for key in keys:
        item = fetch(key)
        if item is _END:
            return
        yield item


def _in_threads(keys: Iterator[Any], fetch: Callable[[Any], Any], workers: int, depth: int, timeout: float | None,
                worker_init_fn: Callable[[int], None] | None) -> Iterator[Any]:
    """Fetch in ``workers`` threads with up to ``depth`` batches in flight; yield them in order."""
    ids = itertools.count()
    init = (lambda: worker_init_fn(next(ids))) if worker_init_fn is not None else None
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deepnum-loader", initializer=init)
    pending: deque[Future] = deque()

    def submit() -> None:
        key = next(keys, _END)
        if key is not _END:
            pending.append(pool.submit(fetch, key))

    def run() -> Iterator[Any]:
        stuck = False
        try:
            for _ in range(max(depth, 1)):
                submit()
            while pending:
                future = pending.popleft()
                try:
                    item = future.result(timeout=timeout)
                except FutureTimeout:
                    stuck = True
                    raise RuntimeError(f"DataLoader timed out after {timeout} seconds waiting for a batch") from None
                if item is _END:
                    return
                submit()
                yield item
        finally:  # also when the consumer stops early: pending loads are cancelled, the threads end
            pool.shutdown(wait=not stuck, cancel_futures=True)

    return run()
