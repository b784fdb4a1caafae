"""``DistributedDataParallel``: one model replica per process, gradients averaged across processes.

Data parallelism: every rank holds the same model and takes a different slice of each batch; after
backward the ranks average their gradients, so each optimizer step is the step that one process
would take on the union of the slices (a batch ``world_size`` times larger), and the replicas stay
identical. The wrapper

1. checks that every rank built the same model (names, shapes, dtypes of parameters and buffers,
   compared as a digest; on a mismatch every rank raises the same error naming the first difference);
2. copies rank 0's parameters and buffers to every rank (``broadcast``);
3. averages gradients during backward with bucketed non-blocking Allreduce
   (``deepnum.distributed.reducer``), overlapping communication with the rest of backward;
4. in training mode with ``broadcast_buffers``, copies rank 0's buffers (BatchNorm's running
   statistics) to every rank before each forward that records a graph.

As ``torch.nn.parallel.DistributedDataParallel`` (Li et al. 2020, VLDB): the wrapped model is
``.module``, so ``state_dict`` keys start with ``module.``; ``no_sync()`` accumulates gradients
locally. It lives under ``nn`` (as in PyTorch) because it is a Module; the process group and the
gradient reducer it uses live in ``deepnum.distributed``, above ``nn`` in the layering.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from deepnum import distributed as dist
from deepnum.autograd.grad_mode import is_grad_enabled
from deepnum.distributed.process_group import _group
from deepnum.distributed.reducer import Reducer
from deepnum.nn.modules.module import Module

__all__ = ["DistributedDataParallel"]

_PREFIX = "DistributedDataParallel: the model is not the same on every rank: "
_SUFFIX = ". Every rank must build the same model (same architecture and arguments) before wrapping it"


def _signature(module: Module) -> list[list[Any]]:
    """(kind, name, shape, dtype, requires_grad) of every parameter and buffer, in traversal order."""
    sig = [["parameter", n, list(p.shape), str(p.dtype), bool(p.requires_grad)] for n, p in module.named_parameters()]
    sig += [["buffer", n, list(b.shape), str(b.dtype), False] for n, b in module.named_buffers()]
    return sig


def _describe(entry: list[Any]) -> str:
    kind, name, shape, dtype, grad = entry
    frozen = "" if grad or kind == "buffer" else ", requires_grad=False"
    return f"{kind} '{name}' of shape {tuple(shape)} and dtype {dtype}{frozen}"


def _first_difference(sigs: list[list[list[Any]]]) -> str:
    """The first difference between rank 0's signature and another rank's, in words (the same text
    on every rank, since every rank computes it from the same gathered signatures)."""
    ref = sigs[0]
    for r, other in enumerate(sigs[1:], 1):
        for i in range(max(len(ref), len(other))):
            if i >= len(ref):
                return f"rank {r} has a {_describe(other[i])} that rank 0 does not have"
            if i >= len(other):
                return f"rank 0 has a {_describe(ref[i])} that rank {r} does not have"
            if ref[i] != other[i]:
                if ref[i][:2] == other[i][:2]:
                    return (f"{ref[i][0]} '{ref[i][1]}' has shape {tuple(ref[i][2])} and dtype {ref[i][3]} on rank 0 "
                            f"but shape {tuple(other[i][2])} and dtype {other[i][3]} on rank {r}"
                            + ("" if ref[i][4] == other[i][4] else
                               f" (requires_grad {ref[i][4]} on rank 0, {other[i][4]} on rank {r})"))
                return f"entry {i} is the {_describe(ref[i])} on rank 0 but the {_describe(other[i])} on rank {r}"
    return "the signatures differ"  # unreachable: different digests come from different signatures


def _verify_same_model(module: Module) -> None:
    """Compare a digest of the model's signature across ranks; on a mismatch gather the full
    signatures and raise the same error on every rank (no rank goes on to wait for the others)."""
    sig = _signature(module)
    digest = hashlib.sha256(json.dumps(sig).encode()).hexdigest()
    digests: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(digests, digest)
    if len(set(digests)) == 1:
        return
    sigs: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(sigs, sig)
    raise RuntimeError(_PREFIX + _first_difference(sigs) + _SUFFIX)


class DistributedDataParallel(Module):
    """Data-parallel training of ``module`` across the ranks of the default process group (see the
    module docstring). ``bucket_cap_mb``: the size of the gradient buckets (MB = 2**20 bytes).
    ``broadcast_buffers``: copy rank 0's buffers to every rank before each training forward.
    ``init_sync``: broadcast rank 0's parameters and buffers at construction.
    ``device_ids``/``output_device``/``dim`` are accepted for PyTorch compatibility (one device per process)."""

    def __init__(self, module: Module, device_ids: Any = None, output_device: Any = None, dim: int = 0,
                 broadcast_buffers: bool = True, init_sync: bool = True, process_group: Any = None,
                 bucket_cap_mb: float | None = 25, find_unused_parameters: bool = False, **kwargs: Any) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: module must be a deepnum.nn.Module, got {type(module).__name__}")
        if not dist.is_initialized():
            raise RuntimeError("DistributedDataParallel: the default process group is not initialized; call "
                               "deepnum.distributed.init_process_group() first (and start with mpiexec -n N)")
        cap = 25 if bucket_cap_mb is None else bucket_cap_mb
        if isinstance(cap, bool) or not isinstance(cap, int | float) or not cap > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be a positive number, got {bucket_cap_mb!r}")
        if find_unused_parameters:
            raise ValueError("DistributedDataParallel: find_unused_parameters=True is not supported; every "
                             "parameter that requires grad must take part in the loss (freeze the others)")
        unknown = sorted(k for k in kwargs if k not in ("check_reduction", "gradient_as_bucket_view", "static_graph"))
        if unknown:
            raise TypeError(f"DistributedDataParallel: unexpected keyword arguments {unknown}")
        _verify_same_model(module)
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self.bucket_cap_mb = cap
        self.require_backward_grad_sync = True
        if init_sync:
            for t in [*module.parameters(), *module.buffers()]:
                dist.broadcast(t, 0)
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self.reducer = Reducer([p for _, p in named], int(cap * 2 ** 20), _group(), [n for n, _ in named])

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        if is_grad_enabled():
            if self.training and self.broadcast_buffers:
                for b in self.module.buffers():
                    dist.broadcast(b, 0)
            self.reducer.prepare(self.require_backward_grad_sync)
        return self.module(*inputs, **kwargs)

    @contextmanager
    def no_sync(self) -> Iterator[None]:
        """Inside, backward passes of forwards run here keep their gradients local (accumulated in
        ``.grad``); the first synchronised backward after it averages the accumulated gradients."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def extra_repr(self) -> str:
        return f"world_size={dist.get_world_size()}, bucket_cap_mb={self.bucket_cap_mb}, " \
               f"buckets={len(self.reducer.buckets)}"
