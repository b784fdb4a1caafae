"""Samplers, as ``torch.utils.data``: they decide which indices a ``DataLoader`` reads, in which
order, and how they are grouped into batches.

The built-in index samplers draw a whole epoch at once, as one NumPy array, when they are iterated
(``iter(sampler)``): the order of an epoch depends only on the generator's state at that moment,
so saving ``generator.get_state()`` before an epoch and restoring it reproduces that epoch exactly,
whatever else draws from the same generator during the epoch (dropout, augmentation). The array
also lets ``BatchSampler`` hand out each batch as a slice, with no per-index Python work.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence, Sized
from typing import Any

import numpy as np

from deepnum import backend
from deepnum.random import Generator, default_generator
from deepnum.tensor import Tensor

__all__ = ["BatchSampler", "DistributedSampler", "RandomSampler", "Sampler", "SequentialSampler",
           "SubsetRandomSampler", "WeightedRandomSampler"]


def _rng(generator: Generator | None) -> np.random.Generator:
    """The NumPy generator behind ``generator`` (the global default generator when None)."""
    return (generator or default_generator).rng


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise ValueError(f"{what} should be a positive integer value, but got {what}={value!r}")
    return int(value)


def _boolean(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{what} should be a boolean value, but got {what}={value!r}")
    return value


class Sampler:
    """Base class: subclasses define ``__iter__`` over indices (or over lists of indices, for a batch
    sampler) and, when they can, ``__len__``."""

    def __init__(self, data_source: Sized | None = None) -> None:
        pass  # PyTorch's deprecated argument, accepted and unused

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__}: subclasses of Sampler must define __iter__")


class _ArraySampler(Sampler):
    """A sampler whose epoch is one int64 array, drawn eagerly by ``_indices()``."""

    def _indices(self) -> np.ndarray:
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        # A plain function, not a generator: the epoch is drawn now, at iter(), not at the first next().
        return iter(self._indices().tolist())


def epoch_indices(sampler: Any) -> np.ndarray | None:
    """The epoch of a built-in sampler as an int64 array (drawn now), or None for any other sampler
    (including subclasses that override ``__iter__``)."""
    if isinstance(sampler, _ArraySampler) and type(sampler).__iter__ is _ArraySampler.__iter__:
        return sampler._indices()
    return None


class SequentialSampler(_ArraySampler):
    """0, 1, ..., len(data_source) - 1 in order."""

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def _indices(self) -> np.ndarray:
        return np.arange(len(self.data_source), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(_ArraySampler):
    """A random order of the dataset, fresh on every iteration. Without replacement it yields whole
    permutations (and, for ``num_samples`` > len, further permutations cut at ``num_samples``);
    with replacement ``num_samples`` independent uniform indices. Draws come from ``generator``, or
    the global default generator (``deepnum.manual_seed``) when None."""

    def __init__(self, data_source: Sized, replacement: bool = False, num_samples: int | None = None,
                 generator: Generator | None = None) -> None:
        self.data_source = data_source
        self.replacement = _boolean(replacement, "replacement")
        self._num_samples = None if num_samples is None else _positive_int(num_samples, "num_samples")
        self.generator = generator
        if self._num_samples is None:
            self.num_samples  # noqa: B018  (validates that data_source has a length now)

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def _indices(self) -> np.ndarray:
        n, k, rng = len(self.data_source), self.num_samples, _rng(self.generator)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        if self.replacement:
            return rng.integers(0, n, size=k, dtype=np.int64)
        perms = [rng.permutation(n) for _ in range(-(-k // n))]
        return np.concatenate(perms)[:k].astype(np.int64, copy=False)

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(_ArraySampler):
    """The given indices in a random order, fresh on every iteration."""

    def __init__(self, indices: Sequence[int], generator: Generator | None = None) -> None:
        self.indices = indices
        self.generator = generator

    def _indices(self) -> np.ndarray:
        source = self.indices
        if isinstance(source, Tensor):
            source = backend.to_device(source.data, "cpu")
        array = np.asarray(source, dtype=np.int64)
        return array[_rng(self.generator).permutation(len(array))]

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(_ArraySampler):
    """``num_samples`` indices drawn with probabilities proportional to ``weights`` (which need not
    sum to 1), with or without replacement, as ``torch.multinomial``."""

    def __init__(self, weights: Sequence[float], num_samples: int, replacement: bool = True,
                 generator: Generator | None = None) -> None:
        self.num_samples = _positive_int(num_samples, "num_samples")
        self.replacement = _boolean(replacement, "replacement")
        if isinstance(weights, Tensor):
            weights = backend.to_device(weights.data, "cpu")
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1:
            raise ValueError(f"weights should be a 1d sequence but given weights have shape {w.shape}")
        if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("WeightedRandomSampler: weights must be finite, non-negative and not all zero")
        nonzero = int(np.count_nonzero(w))
        if not replacement and self.num_samples > nonzero:
            raise ValueError(f"WeightedRandomSampler: cannot draw num_samples={self.num_samples} without "
                             f"replacement from {nonzero} non-zero weights")
        self.weights = w
        self.generator = generator

    def _indices(self) -> np.ndarray:
        p = self.weights / self.weights.sum()
        draws = _rng(self.generator).choice(len(p), size=self.num_samples, replace=self.replacement, p=p)
        return draws.astype(np.int64, copy=False)

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Groups the indices of ``sampler`` (any sampler or iterable of indices) into lists of
    ``batch_size``; the last, shorter batch is dropped when ``drop_last``. There are
    ceil(n / batch_size) batches, or floor(n / batch_size) with ``drop_last``."""

    def __init__(self, sampler: Sampler | Iterable[int], batch_size: int, drop_last: bool) -> None:
        self.sampler = sampler
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.drop_last = _boolean(drop_last, "drop_last")

    def array_batches(self) -> Iterator[np.ndarray]:
        """The batches as int64 arrays; the epoch is drawn now (at the call) for built-in samplers,
        and each batch is then a slice of it."""
        indices = epoch_indices(self.sampler)
        if indices is not None:
            return self._slices(indices)
        return (np.asarray(batch, dtype=np.int64) for batch in self._list_batches(iter(self.sampler)))

    def _list_batches(self, it: Iterator[int]) -> Iterator[list[int]]:
        batch: list[int] = []
        for index in it:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __iter__(self) -> Iterator[list[int]]:
        indices = epoch_indices(self.sampler)
        if indices is not None:
            return (batch.tolist() for batch in self._slices(indices))
        return self._list_batches(iter(self.sampler))

    def _slices(self, indices: np.ndarray) -> Iterator[np.ndarray]:
        b = self.batch_size
        stop = len(indices) - len(indices) % b if self.drop_last else len(indices)
        return (indices[i:i + b] for i in range(0, stop, b))

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def _replica_arg(value: Any, what: str, query: str) -> int:
    """``num_replicas``/``rank``, or the default process group's world size / rank when None."""
    if value is None:
        from deepnum import distributed as dist

        if not dist.is_initialized():
            raise RuntimeError(f"DistributedSampler: {what}=None needs the default process group; call "
                               f"deepnum.distributed.init_process_group() first, or pass {what} explicitly")
        return int(getattr(dist, query)())
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"DistributedSampler: {what} must be an int, got {value!r}")
    return int(value)


class DistributedSampler(_ArraySampler):
    """Rank ``rank``'s share of ``dataset`` when ``num_replicas`` processes train on it together, as
    ``torch.utils.data.distributed.DistributedSampler``: the epoch's order (a permutation seeded by
    ``seed + epoch`` when ``shuffle``, else 0..n-1) is padded by repeating its start until it divides
    evenly (or cut, with ``drop_last``), and rank r takes positions r, r + num_replicas, ... So the
    ranks' shares are disjoint (up to the padding), cover the dataset and have equal lengths, and
    every rank computes the same order without communicating. Call ``set_epoch(epoch)`` before each
    epoch for a fresh shuffle. The permutation is NumPy's (``default_rng(seed + epoch)``), not
    ``torch.randperm``'s, so the shuffled order differs from PyTorch's; the unshuffled one is equal."""

    def __init__(self, dataset: Sized, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        num_replicas = _replica_arg(num_replicas, "num_replicas", "get_world_size")
        rank = _replica_arg(rank, "rank", "get_rank")
        if num_replicas <= 0:
            raise ValueError(f"DistributedSampler: num_replicas must be positive, got {num_replicas}")
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.drop_last = _boolean(shuffle, "shuffle"), _boolean(drop_last, "drop_last")
        self.seed, self.epoch = int(seed), 0
        n = len(dataset)
        if drop_last and n % num_replicas != 0:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order the next iteration draws (the shuffle is seeded by seed + epoch)."""
        self.epoch = int(epoch)

    def _indices(self) -> np.ndarray:
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(n).astype(np.int64)
        else:
            order = np.arange(n, dtype=np.int64)
        if not self.drop_last and self.total_size > n:
            order = np.resize(order, self.total_size)  # repeats the order from its start
        order = order[:self.total_size]
        return order[self.rank:self.total_size:self.num_replicas]

    def __len__(self) -> int:
        return self.num_samples
