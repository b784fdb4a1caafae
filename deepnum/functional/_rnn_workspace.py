"""A pool of work arrays that outlive one call, for ops that need large buffers on every training
step: the LSTM's gate, factor and state buffers and its weight gradients (``_rnn_lstm``), and the
optimizers' temporaries (``deepnum.optim.optimizer.scratch``).

Why: a fresh multi-megabyte NumPy array is a fresh ``mmap``; each of its 4 KiB pages is then
zero-filled by the kernel on first touch (a "minor page fault", about 1 µs each here), and freeing it
unmaps it again. An LSTM language-model step allocated ~20 MB of such buffers: ~5 ms of page faults
per step, as much as its elementwise math. Keeping the arrays and handing them out again avoids that.

Safety: an array is handed out again only when nothing outside the pool refers to it — not the
``Saved`` state of a graph that still waits for its backward, not a returned Tensor, not a ``.grad``
(``optimizer.zero_grad()`` dropping the gradient makes it reusable), not a view of it (a NumPy view
holds a reference to its base). That is checked with the array's reference count, calibrated once at
import, so it holds on every CPython (a lock keeps two threads from taking the same free array).
Arrays are pooled per (shape, dtype); the pool holds at most ``LIMIT_BYTES`` (least recently used
free arrays go first), only arrays of 64 KiB or more, and only NumPy arrays (CuPy has its own memory
pool). ``clear()`` drops every pooled array.
"""
from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

LIMIT_BYTES = 512 << 20
_PER_SHAPE = 16  # a key holds at most this many arrays (e.g. every layer and direction of a deep RNN)

_pool: OrderedDict[tuple, list] = OrderedDict()
_held = 0
_lock = threading.Lock()


def _refs(a: Any) -> int:
    return sys.getrefcount(a)


def _calibrate() -> int:
    """The count ``_refs(arrays[i])`` gives for an array that only the pool's list refers to."""
    arrays = [np.empty(0)]
    for i in range(len(arrays)):
        return _refs(arrays[i])
    raise AssertionError


_FREE = _calibrate()


def take(xp: Any, shape: tuple[int, ...], dtype: Any, zero: bool = False) -> Any:
    """An array of ``shape`` and ``dtype`` that nothing else uses: a pooled one when free, else a new
    one (pooled if there is room). Its content is undefined unless ``zero``."""
    if xp is not np:
        return xp.zeros(shape, dtype) if zero else xp.empty(shape, dtype)
    with _lock:  # two threads must not both find the same array free
        a = _find(shape, dtype)
    if zero:
        a.fill(0)
    return a


def _find(shape: tuple[int, ...], dtype: Any) -> Any:
    global _held
    key = (tuple(shape), np.dtype(dtype).str)
    arrays = _pool.get(key)
    if arrays is not None:
        _pool.move_to_end(key)
        for i in range(len(arrays)):
            if _refs(arrays[i]) == _FREE:
                return arrays[i]
    a = np.empty(shape, dtype)
    if a.nbytes < 1 << 16 or (arrays is not None and len(arrays) >= _PER_SHAPE):
        return a  # small arrays come from malloc's own free lists
    _evict(LIMIT_BYTES - a.nbytes)
    if _held + a.nbytes <= LIMIT_BYTES:
        _pool.setdefault(key, []).append(a)
        _held += a.nbytes
    return a


def _evict(budget: int) -> None:
    """Drop free arrays, least recently used shapes first, until at most ``budget`` bytes are held."""
    global _held
    for key in list(_pool):
        if _held <= budget:
            return
        arrays = _pool[key]
        keep = [arrays[i] for i in range(len(arrays)) if _refs(arrays[i]) != _FREE]
        _held -= sum(a.nbytes for a in arrays) - sum(a.nbytes for a in keep)
        if keep:
            _pool[key] = keep
        else:
            del _pool[key]


def clear() -> None:
    """Forget every pooled array (those still in use stay valid: they simply are not reused)."""
    global _held
    with _lock:
        _pool.clear()
        _held = 0


def held_bytes() -> int:
    """Bytes of the arrays the pool holds (free or in use)."""
    return _held
