"""The CPU runtime of the fused convolution-network kernels (``conv_ops``, ``_conv_winograd``,
``_fused_block``): reused work buffers and intra-op threads.

**Work buffers.** A fresh multi-megabyte NumPy array costs a page fault per 4 kB page the first time
it is touched, and a training step allocates its work arrays again every step; inside a LeNet step
the faults of the im2col buffer cost more than the copy itself. ``scratch(tag, shape, dtype)``
hands out a view of a buffer kept per thread and per tag, grown to the largest size asked for (up
to ``SCRATCH_MAX_BYTES``; larger requests get a fresh array). Results never live in it: only
arrays that are dead when the op returns (columns, transformed tiles, padded copies), so kernels
that never run at the same time share tags ("input": the padded or polyphase input, "input2": a
second one or a gathered copy, "columns": im2col columns or Winograd's transformed tiles).

**Threads.** NumPy's element-wise passes run on one core. Left to the BLAS, a second thread would
only share the (mostly small) matrix products, and between them the idle BLAS threads spin
(busy-wait) beside the element-wise work. ``cpu_threads()`` gives an op the BLAS thread budget T
instead: the BLAS runs single-threaded inside the op, and ``parallel`` splits its loops (bands of
tiles, tiles of rows, channel rows) over T Python threads; NumPy releases the GIL in its loops.
T comes from threadpoolctl (``threadpool_limits``, ``OPENBLAS_NUM_THREADS``); without it T = 1
and everything runs on the calling thread.
"""
from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

SCRATCH_MAX_BYTES = 64 << 20  # work buffers up to this size are kept between calls


_SCRATCH = threading.local()


def scratch(tag: str, shape: tuple[int, ...], dtype: Any, xp: Any = np) -> Any:
    """An uninitialised work array of ``shape`` from this thread's buffer for ``tag`` (see the module
    docstring). The caller must be done with it before the next request for the same tag."""
    cache, key = _SCRATCH.__dict__, (tag, xp.__name__)
    size, dtype = math.prod(shape), np.dtype(dtype)
    if size * dtype.itemsize > SCRATCH_MAX_BYTES:
        return xp.empty(shape, dtype=dtype)
    buf = cache.get(key)
    if buf is None or buf.dtype != dtype or buf.size < size:
        cache[key] = buf = xp.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


def free_scratch() -> None:
    """Drop this thread's work buffers (they are allocated again, at the size needed, on next use)."""
    _SCRATCH.__dict__.clear()


_POOLS: dict = {}
_BLAS: list = []
_STATE = threading.local()


def _numpy_blas() -> list:
    """threadpoolctl's controllers of the BLAS library that NumPy calls ([] without threadpoolctl)."""
    if not _BLAS:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _BLAS.append([])
        else:
            root = str(Path(np.__file__).parent)  # numpy/ and the wheel's numpy.libs/
            _BLAS.append([lib for lib in ThreadpoolController().select(user_api="blas").lib_controllers
                          if str(lib.filepath).startswith(root)])
    return _BLAS[0]


@contextlib.contextmanager
def cpu_threads() -> Iterator[None]:
    """Within: the op's thread budget T is ``workers()`` and NumPy's BLAS is single-threaded (see the
    module docstring; PyTorch calls this intra-op parallelism). Nested uses keep the outer budget."""
    if getattr(_STATE, "workers", 0):  # nested: the outer op holds the budget
        yield
        return
    libs = _numpy_blas()
    saved = [lib.get_num_threads() for lib in libs]
    workers = max(1, min(saved)) if saved else 1
    if workers > 1:
        for lib in libs:
            lib.set_num_threads(1)
    _STATE.workers = workers
    try:
        yield
    finally:
        _STATE.workers = 0
        if workers > 1:
            for lib, count in zip(libs, saved):
                lib.set_num_threads(count)


def workers() -> int:
    """The threads of the enclosing ``cpu_threads`` (1 outside one, and on its worker threads)."""
    return getattr(_STATE, "workers", 0) or 1


def channel_shares(channels: int) -> list[slice]:
    """``channels`` rows cut into one contiguous share per thread of the enclosing ``cpu_threads``."""
    count = min(workers(), channels)
    return [slice(i * channels // count, (i + 1) * channels // count) for i in range(count)]


def parallel(jobs: list, body: Any) -> list:
    """[body(job) for job in jobs], the jobs split into contiguous shares over the threads of the
    enclosing ``cpu_threads``: the first share on the calling thread, the others on T − 1 pool
    threads (all in order on the calling thread when T = 1). Each thread has its own ``scratch``
    buffers (the calling thread's work buffers serve its share: one set fewer than a pool of T);
    the bodies must write disjoint parts of any shared output and must not hold a tag that the
    calling thread holds around the call."""
    count = min(workers(), len(jobs))
    if count <= 1:
        return [body(job) for job in jobs]
    pool = _POOLS.get(count - 1)
    if pool is None:
        pool = _POOLS[count - 1] = ThreadPoolExecutor(count - 1, thread_name_prefix="deepnum")
    shares = [jobs[i * len(jobs) // count:(i + 1) * len(jobs) // count] for i in range(count)]
    futures = [pool.submit(lambda share: [body(job) for job in share], share) for share in shares[1:]]
    saved, _STATE.workers = getattr(_STATE, "workers", 0), 1  # the caller's share runs as a worker's would
    try:
        first = [body(job) for job in shares[0]]
    finally:
        _STATE.workers = saved
        wait(futures)  # no share outlives the call, even when the caller's raised
    return first + [r for future in futures for r in future.result()]
