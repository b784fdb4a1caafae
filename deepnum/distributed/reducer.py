"""Gradient averaging for data parallelism: buckets of gradients, each summed across the ranks with
one non-blocking Allreduce as soon as backward has produced all of its gradients.

Why buckets: one Allreduce per parameter pays MPI's per-message latency hundreds of times, one
Allreduce of everything at the end cannot start before the whole backward is done. Buckets of
about ``bucket_cap_mb`` are the middle way (Li et al. 2020, "PyTorch Distributed: Experiences on
Accelerating Data Parallel Training", VLDB, section 3.2.3 and 3.2.4). The parameters are put into
buckets in reverse order of ``module.parameters()``, which is roughly the order in which backward
finishes their gradients (the last layer first), and buckets are launched strictly in index order,
so every rank issues the same collectives in the same order, as MPI requires.

A parameter's gradient is complete when the autograd engine calls its post-accumulate-grad hook
(``Tensor.register_post_accumulate_grad_hook``); the hook copies it into its bucket's flat buffer,
already divided by the world size, and launches the bucket's ``Iallreduce`` once the bucket is full.
While later layers' gradients are computed, earlier buckets travel; each later hook calls
``Testall`` on the requests in flight, which lets MPI progress them (MPICH progresses a non-blocking
collective only inside MPI calls unless its asynchronous progress thread is enabled). When the last
bucket has been launched, ``Waitall`` and the averaged gradients are written back to ``.grad``.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from deepnum import backend
from deepnum.tensor import Tensor

__all__ = ["Reducer"]


class _Bucket:
    """Parameters of one dtype whose gradients travel together in one flat buffer."""

    def __init__(self, params: list[Tensor]) -> None:
        self.params = params
        self.offsets, total = [], 0
        for p in params:
            self.offsets.append(total)
            total += int(p.data.size)
        self.flat = np.zeros(total, dtype=params[0].data.dtype)
        self.ready: set[int] = set()
        self.request: Any = None


def _make_buckets(params: list[Tensor], cap_bytes: int) -> list[_Bucket]:
    """Consecutive parameters (already in reverse order) grouped up to ``cap_bytes``; a new bucket
    starts when the dtype changes. A parameter larger than the cap gets a bucket of its own."""
    groups: list[list[Tensor]] = []
    size = 0
    for p in params:
        nbytes = int(p.data.nbytes)
        if not groups or size + nbytes > cap_bytes or groups[-1][0].data.dtype != p.data.dtype:
            groups.append([])
            size = 0
        groups[-1].append(p)
        size += nbytes
    return [_Bucket(g) for g in groups]


class Reducer:
    """Averages the gradients of ``params`` across the ranks of the default process group during
    backward (see the module docstring). Only a backward after ``prepare(True)`` (the wrapper's
    forward outside ``no_sync``) communicates; any other backward through the same parameters
    (through the bare module, or a second one from the same forward) keeps its gradients local,
    as in PyTorch."""

    def __init__(self, params: list[Tensor], bucket_cap_bytes: int, group: Any,
                 names: list[str] | None = None) -> None:
        self.group = group
        self._names = {id(p): repr(n) for p, n in zip(params, names or [f"#{i}" for i in range(len(params))],
                                                      strict=True)}
        self.buckets = _make_buckets(list(reversed(params)), bucket_cap_bytes)
        self._where: dict[int, tuple[int, int]] = {}
        for b, bucket in enumerate(self.buckets):
            for i, p in enumerate(bucket.params):
                self._where[id(p)] = (b, i)
        self.armed = False  # set by the wrapper's forward, cleared when the reduction is done
        self.next_launch = 0
        self.wait_seconds = 0.0  # time spent in the final Waitall of the last synchronised backward
        self.overlapped_buckets = 0  # buckets (of all but the last) already complete when backward ended
        self._removers = [p.register_post_accumulate_grad_hook(self._on_grad) for p in params]

    @property
    def bytes_per_step(self) -> int:
        """Bytes of gradient each rank contributes to the Allreduces of one synchronised step."""
        return sum(b.flat.nbytes for b in self.buckets)

    def remove_hooks(self) -> None:
        for remove in self._removers:
            remove()

    def prepare(self, sync: bool) -> None:
        """Called by each forward: a reduction left half done by the previous backward is an error
        (some parameter got no gradient), then the state is reset for the next backward."""
        started = [b for b in self.buckets if b.ready]
        if started:
            missing = [p for b in self.buckets for i, p in enumerate(b.params) if i not in b.ready]
            self.group.mpi.Request.Waitall([b.request for b in self.buckets if b.request is not None])
            self._reset()
            names = ", ".join(f"{self._names[id(p)]} {tuple(p.shape)}" for p in missing[:5])
            raise RuntimeError(
                f"DistributedDataParallel: the previous backward did not produce gradients for "
                f"{len(missing)} parameter(s) ({names}), so the gradients were not averaged across ranks. "
                f"Every parameter that requires grad must take part in the loss (find_unused_parameters "
                f"is not supported); freeze unused ones with requires_grad_(False) before wrapping")
        self._reset()
        self.armed = sync

    def _reset(self) -> None:
        for b in self.buckets:
            b.ready.clear()
            b.request = None
        self.next_launch = 0

    def _on_grad(self, p: Tensor) -> None:
        if not self.armed:
            return
        b, i = self._where[id(p)]
        bucket = self.buckets[b]
        if i in bucket.ready:
            raise RuntimeError(
                f"DistributedDataParallel: the gradient of parameter {self._names[id(p)]} {tuple(p.shape)} was "
                f"produced twice in one backward (backward ran twice after one forward, or the parameter is "
                f"reused across two forwards); run one forward per backward, or use no_sync() to accumulate")
        start = bucket.offsets[i]
        grad = backend.to_device(p.grad.data, "cpu") if p.device != "cpu" else p.grad.data
        if grad.dtype != bucket.flat.dtype:
            raise RuntimeError(
                f"DistributedDataParallel: parameter {self._names[id(p)]} has a {grad.dtype} gradient but was "
                f"{bucket.flat.dtype} when the model was wrapped; convert the model (half(), double()) before "
                f"wrapping it")
        np.divide(grad.reshape(-1), self.group.size, out=bucket.flat[start:start + grad.size])
        bucket.ready.add(i)
        launched = self.next_launch
        while self.next_launch < len(self.buckets) and self._full(self.buckets[self.next_launch]):
            nxt = self.buckets[self.next_launch]
            nxt.request = self.group.comm.Iallreduce(self.group.mpi.IN_PLACE, nxt.flat, op=self.group.mpi.SUM)
            self.next_launch += 1
        if self.next_launch == len(self.buckets):
            self._finish()
            self.armed = False
        elif launched > 0:
            self.group.mpi.Request.Testall([x.request for x in self.buckets[:self.next_launch]])

    @staticmethod
    def _full(bucket: _Bucket) -> bool:
        return len(bucket.ready) == len(bucket.params)

    def _finish(self) -> None:
        """Wait for every bucket and hand the averaged gradients to ``.grad``."""
        t0 = time.perf_counter()
        self.overlapped_buckets = sum(bool(b.request.Test()) for b in self.buckets[:-1])
        self.group.mpi.Request.Waitall([b.request for b in self.buckets])
        self.wait_seconds = time.perf_counter() - t0
        for b in self.buckets:
            for p, start in zip(b.params, b.offsets, strict=True):
                avg = b.flat[start:start + p.data.size].reshape(p.data.shape).copy()
                p.grad = Tensor._make(backend.to_device(avg, p.device) if p.device != "cpu" else avg)
        self._reset()
