"""The default process group on MPI, with ``torch.distributed``'s names.

Every process of a job (started by ``mpiexec -n N``) runs the same script; MPI numbers them
0..N-1 (the *rank*) and carries the collective operations: ``all_reduce`` (every rank ends with the
element-wise sum of everyone's tensor), ``broadcast`` (everyone ends with ``src``'s tensor),
``all_gather`` and ``barrier``. The MPI standard defines them (MPI 4.0, chapter 6, "Collective
Communication"); mpi4py calls them on NumPy arrays without copying (its upper-case buffer methods).

A script started without ``mpiexec`` is a world of one process (MPI's singleton start), so the same
code runs on a laptop unchanged. mpi4py is imported when the group is created, not before:
``pip install 'deepnum[mpi]'`` installs it with the ``mpich`` wheel, so no system MPI is needed.

CUDA tensors are staged through host memory (the ``mpich`` wheel is not CUDA-aware); see
``docs/distributed.md`` for the NCCL path and what was tested.
"""
from __future__ import annotations

from enum import Enum
from typing import Any

import numpy as np

from deepnum import backend
from deepnum.tensor import Tensor

__all__ = ["ReduceOp", "Work", "all_gather", "all_gather_object", "all_reduce", "barrier", "broadcast",
           "destroy_process_group", "get_backend", "get_rank", "get_world_size", "init_process_group",
           "is_available", "is_initialized", "is_mpi_available"]

_MISSING = ("deepnum.distributed needs mpi4py and an MPI library: pip install 'deepnum[mpi]' "
            "(installs mpi4py and the mpich wheel; no system MPI is needed)")
_NOT_INIT = ("Default process group has not been initialized, please make sure to call "
             "deepnum.distributed.init_process_group() first")


class ReduceOp(Enum):
    """How ``all_reduce`` combines the ranks' tensors (``AVG`` is the sum divided by the world size)."""

    SUM = "sum"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"
    AVG = "avg"


class _Group:
    """The default group: the MPI communicator (a duplicate of COMM_WORLD, so our messages never
    mix with the user's own mpi4py traffic) and its rank and size."""

    def __init__(self, comm: Any, mpi: Any) -> None:
        self.comm, self.mpi = comm, mpi
        self.rank, self.size = comm.Get_rank(), comm.Get_size()


_GROUP: _Group | None = None


def _import_mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(_MISSING) from exc
    return MPI


def is_available() -> bool:
    """True: the distributed package is part of deepnum (its MPI backend may still be missing)."""
    return True


def is_mpi_available() -> bool:
    """Whether mpi4py (with an MPI library) can be imported."""
    try:
        _import_mpi()
    except ImportError:
        return False
    return True


def init_process_group(backend: str | None = "mpi", init_method: str | None = None, timeout: Any = None,
                       world_size: int = -1, rank: int = -1, **kwargs: Any) -> None:
    """Join the default process group. With MPI the world size and the ranks come from ``mpiexec``;
    ``world_size``/``rank``, when given, must agree with them. ``init_method`` and ``timeout`` are
    accepted for PyTorch compatibility and unused (MPI's launcher has already connected the processes)."""
    global _GROUP
    if _GROUP is not None:
        raise RuntimeError("trying to initialize the default process group twice!")
    name = "mpi" if backend is None else str(backend).lower()
    if name != "mpi":
        raise ValueError(f"init_process_group: backend {backend!r} is not supported; deepnum's process group "
                         "runs on MPI (backend='mpi'); see docs/distributed.md for GPUs (NCCL)")
    mpi = _import_mpi()
    group = _Group(mpi.COMM_WORLD.Dup(), mpi)
    for what, given, actual in (("world_size", world_size, group.size), ("rank", rank, group.rank)):
        if given not in (-1, None) and given != actual:
            group.comm.Free()
            raise ValueError(f"init_process_group: {what}={given} but MPI started this process with "
                             f"{what}={actual} (mpiexec -n decides the world size and the ranks)")
    _GROUP = group


def is_initialized() -> bool:
    return _GROUP is not None


def _group() -> _Group:
    if _GROUP is None:
        raise RuntimeError(_NOT_INIT)
    return _GROUP


def get_backend(group: Any = None) -> str:
    _group()
    return "mpi"


def get_rank(group: Any = None) -> int:
    """This process's number, 0..world_size-1."""
    return _group().rank


def get_world_size(group: Any = None) -> int:
    """The number of processes in the job."""
    return _group().size


def destroy_process_group(group: Any = None) -> None:
    """Leave the group (MPI itself is finalised by mpi4py when the process exits)."""
    global _GROUP
    if _GROUP is not None:
        _GROUP.comm.Free()
        _GROUP = None


def barrier(group: Any = None, async_op: bool = False) -> Work | None:
    """Wait until every rank has reached this call."""
    g = _group()
    if async_op:
        return Work([g.comm.Ibarrier()], [])
    g.comm.Barrier()
    return None


class Work:
    """A collective in flight (``async_op=True``): ``wait()`` blocks until it is complete and
    writes the result into the tensor; ``is_completed()`` asks without blocking."""

    def __init__(self, requests: list, finish: list) -> None:
        self._requests, self._finish, self._done = requests, finish, False

    def is_completed(self) -> bool:
        if not self._done and self._requests and _group().mpi.Request.Testall(self._requests):
            self._complete()
        return self._done or not self._requests

    def wait(self, timeout: Any = None) -> bool:
        if not self._done:
            if self._requests:
                _group().mpi.Request.Waitall(self._requests)
            self._complete()
        return True

    def _complete(self) -> None:
        for fn in self._finish:
            fn()
        self._done = True


# --------------------------------------------------------------------------- tensors as MPI buffers
def _check_tensor(tensor: Any, fn: str, name: str = "tensor") -> None:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{fn}: {name} must be a deepnum Tensor, got {type(tensor).__name__}")


def _host_buffer(tensor: Tensor) -> tuple[np.ndarray, bool]:
    """A C-contiguous host array holding ``tensor``'s values, and whether it is a copy that must be
    written back (a CUDA tensor, or a non-contiguous view)."""
    data = tensor.data
    if isinstance(data, np.ndarray) and data.flags.c_contiguous:
        return data, False
    host = backend.to_device(data, "cpu")
    return np.ascontiguousarray(host).copy(), True


def _write_back(tensor: Tensor, host: np.ndarray, copied: bool) -> None:
    if copied:
        xp = backend.get_array_module(tensor.data)
        tensor.data[...] = xp.asarray(host)
    tensor._version += 1


def _mpi_op(op: ReduceOp, g: _Group) -> Any:
    if not isinstance(op, ReduceOp):
        raise TypeError(f"all_reduce: op must be a deepnum.distributed.ReduceOp, got {op!r}")
    return {ReduceOp.SUM: g.mpi.SUM, ReduceOp.AVG: g.mpi.SUM, ReduceOp.PRODUCT: g.mpi.PROD,
            ReduceOp.MIN: g.mpi.MIN, ReduceOp.MAX: g.mpi.MAX}[op]


def all_reduce(tensor: Tensor, op: ReduceOp = ReduceOp.SUM, group: Any = None, async_op: bool = False) -> Work | None:
    """Combine ``tensor`` across all ranks, in place: afterwards every rank holds the same result."""
    _check_tensor(tensor, "all_reduce")
    g = _group()
    mpi_op = _mpi_op(op, g)
    buf, copied = _host_buffer(tensor)

    def finish() -> None:
        if op is ReduceOp.AVG:
            np.divide(buf, g.size, out=buf, casting="unsafe")
        _write_back(tensor, buf, copied)

    if async_op:
        return Work([g.comm.Iallreduce(g.mpi.IN_PLACE, buf, op=mpi_op)], [finish])
    g.comm.Allreduce(g.mpi.IN_PLACE, buf, op=mpi_op)
    finish()
    return None


def _check_src(src: Any, g: _Group, fn: str) -> int:
    if isinstance(src, bool) or not isinstance(src, int | np.integer) or not 0 <= src < g.size:
        raise ValueError(f"{fn}: src must be a rank in [0, {g.size - 1}], got {src!r}")
    return int(src)


def broadcast(tensor: Tensor, src: int, group: Any = None, async_op: bool = False) -> Work | None:
    """Copy rank ``src``'s ``tensor`` into every other rank's ``tensor`` (same shape and dtype)."""
    _check_tensor(tensor, "broadcast")
    g = _group()
    src = _check_src(src, g, "broadcast")
    buf, copied = _host_buffer(tensor)
    if async_op:
        return Work([g.comm.Ibcast(buf, root=src)], [lambda: _write_back(tensor, buf, copied)])
    g.comm.Bcast(buf, root=src)
    _write_back(tensor, buf, copied)
    return None


def all_gather(tensor_list: list[Tensor], tensor: Tensor, group: Any = None, async_op: bool = False) -> Work | None:
    """Fill ``tensor_list[r]`` with rank r's ``tensor``, on every rank."""
    _check_tensor(tensor, "all_gather")
    g = _group()
    if not isinstance(tensor_list, list) or len(tensor_list) != g.size:
        got = len(tensor_list) if isinstance(tensor_list, list) else type(tensor_list).__name__
        raise ValueError(f"all_gather: tensor_list must be a list of world_size={g.size} tensors, got {got}")
    for i, t in enumerate(tensor_list):
        _check_tensor(t, "all_gather", f"tensor_list[{i}]")
        if tuple(t.shape) != tuple(tensor.shape) or t.dtype != tensor.dtype:
            raise ValueError(f"all_gather: tensor_list[{i}] has shape {tuple(t.shape)} and dtype {t.dtype}, "
                             f"but tensor has shape {tuple(tensor.shape)} and dtype {tensor.dtype}")
    send, _ = _host_buffer(tensor)
    recv = np.empty((g.size, *send.shape), dtype=send.dtype)

    def finish() -> None:
        for t, part in zip(tensor_list, recv, strict=True):
            xp = backend.get_array_module(t.data)
            t.data[...] = xp.asarray(part)
            t._version += 1

    if async_op:
        return Work([g.comm.Iallgather(send, recv)], [finish])
    g.comm.Allgather(send, recv)
    finish()
    return None


def all_gather_object(object_list: list, obj: Any, group: Any = None) -> None:
    """Fill ``object_list[r]`` with rank r's picklable ``obj``. The objects travel between the job's
    own processes only (mpi4py pickles them); never use this for data from elsewhere."""
    g = _group()
    if not isinstance(object_list, list) or len(object_list) != g.size:
        raise ValueError(f"all_gather_object: object_list must be a list of world_size={g.size} elements")
    object_list[:] = g.comm.allgather(obj)
