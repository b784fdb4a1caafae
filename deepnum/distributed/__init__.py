"""``deepnum.distributed``: data-parallel training over MPI, with ``torch.distributed``'s names.

``init_process_group(backend='mpi')`` joins the job that ``mpiexec -n N`` started (or makes a
world of one without mpiexec); the collectives (``all_reduce``, ``broadcast``, ``all_gather``,
``barrier``) work on Tensors in place. ``deepnum.nn.parallel.DistributedDataParallel`` builds on
them, and ``deepnum.data.DistributedSampler`` gives each rank its share of a dataset.
See ``docs/distributed.md``.
"""
from deepnum.distributed.process_group import (
    ReduceOp,
    Work,
    all_gather,
    all_gather_object,
    all_reduce,
    barrier,
    broadcast,
    destroy_process_group,
    get_backend,
    get_rank,
    get_world_size,
    init_process_group,
    is_available,
    is_initialized,
    is_mpi_available,
)

__all__ = ["ReduceOp", "Work", "all_gather", "all_gather_object", "all_reduce", "barrier", "broadcast",
           "destroy_process_group", "get_backend", "get_rank", "get_world_size", "init_process_group",
           "is_available", "is_initialized", "is_mpi_available"]
