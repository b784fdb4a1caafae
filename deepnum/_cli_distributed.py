"""``deepnum train --distributed``: data-parallel training over the processes ``mpiexec`` started.

``mpiexec -n N deepnum train --distributed ...`` runs N copies of the command. Each builds the same
run (same seed, same model) and checks the same things, so a bad option fails on every rank alike;
each trains on its shard of the training set (``DistributedSampler``: batch ``--batch-size`` per
process, ``N x batch-size`` per optimizer step) through ``DistributedDataParallel``. Only rank 0
prints, evaluates on the test split (the other ranks skip validation) and writes the run directory
and its checkpoints; the other ranks write nothing. Without ``--distributed`` the stand-in below
changes nothing.
"""
from __future__ import annotations

import argparse
from typing import Any


class ParallelRun:
    """Who does what in a (possibly) distributed run: ``enabled``, ``rank``, ``world_size``, ``is_main``."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.rank, self.world_size = enabled, 0, 1
        if enabled:
            from deepnum import distributed as dist

            if not dist.is_initialized():
                dist.init_process_group("mpi")
            self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Every rank has validated the run before rank 0 starts writing (so no rank sees rank 0's
        fresh output directory as someone else's)."""
        if self.enabled:
            from deepnum import distributed as dist

            dist.barrier()

    def wrap(self, model: Any) -> Any:
        """The model to train: wrapped in DistributedDataParallel when distributed."""
        if not self.enabled:
            return model
        from deepnum.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model)

    def describe(self, batch_size: int) -> str:
        return (f"data-parallel over {self.world_size} processes: batch {batch_size} per process, "
                f"{batch_size * self.world_size} per step; rank 0 evaluates and writes")


def parallel_run(args: argparse.Namespace) -> ParallelRun:
    """The run's ParallelRun: joins the MPI job with ``--distributed``."""
    return ParallelRun(bool(getattr(args, "distributed", False)))


def shard_sampler(dataset: Any, seed: int) -> Any:
    """This rank's shuffled shard of ``dataset`` (reshuffled each epoch by ``fit``'s ``set_epoch``)."""
    from deepnum.data import DistributedSampler

    return DistributedSampler(dataset, shuffle=True, seed=seed)
