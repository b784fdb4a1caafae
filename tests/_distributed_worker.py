"""Run by tests/test_distributed.py under ``mpiexec -n 2``: ``python _distributed_worker.py SCENARIO OUTDIR``.

Each scenario writes its results (``.npz`` arrays or ``.txt`` lines) per rank into OUTDIR; the test
process reads them. ``train_steps`` is also imported by the test to compute the one-process reference.
"""
from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import numpy as np

import deepnum as dn
from deepnum import distributed as dist
from deepnum import nn

STEPS, BATCH, SEED = 20, 4, 0


def make_model() -> nn.Module:
    dn.manual_seed(SEED)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 6 * 6, 16), nn.Tanh(),
                         nn.Linear(16, 5)).double()


def make_data(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    return rng.standard_normal((n, 1, 8, 8)), rng.integers(0, 5, n)


def make_optimizer(name: str, params: list) -> dn.optim.Optimizer:
    if name == "sgd":
        return dn.optim.SGD(params, lr=0.1, momentum=0.9)
    return dn.optim.Adam(params, lr=0.01)


def train_steps(opt_name: str, world: int, rank: int, ddp_kwargs: dict | None = None,
                device: str = "cpu") -> dict[str, np.ndarray]:
    """STEPS steps of batch BATCH on each of ``world`` ranks (with DDP when ``ddp_kwargs`` is given),
    or, with world=1 and no DDP, of batch world*BATCH: the weights at the end."""
    from deepnum.data import DataLoader, DistributedSampler, TensorDataset

    x, y = make_data(STEPS * BATCH * 2)
    dataset = TensorDataset(dn.tensor(x), dn.tensor(y))
    model = make_model().to(device)
    net = nn.parallel.DistributedDataParallel(model, **ddp_kwargs) if ddp_kwargs is not None else model
    if ddp_kwargs is not None:
        sampler = DistributedSampler(dataset, shuffle=False)
        loader = DataLoader(dataset, batch_size=BATCH, sampler=sampler)
    else:
        loader = DataLoader(dataset, batch_size=BATCH * 2)
    optimizer = make_optimizer(opt_name, list(model.parameters()))
    loss_fn = nn.CrossEntropyLoss()
    for inputs, target in loader:
        optimizer.zero_grad()
        loss_fn(net(inputs.to(device)), target.to(device)).backward()
        optimizer.step()
    assert all(p.device == device and p.grad.device == device for p in model.parameters())
    return {k: v.cpu().numpy().copy() for k, v in model.state_dict().items()}


def parity(out: Path) -> None:
    rank = dist.get_rank()
    for opt in ("sgd", "adam"):
        for cap in (25, 0.001):  # one bucket; several buckets of ~1 kB
            weights = train_steps(opt, dist.get_world_size(), rank, {"bucket_cap_mb": cap})
            np.savez(out / f"{opt}-{cap}-rank{rank}.npz", **weights)
    with _simulated_cupy():  # the CUDA path (gradients staged through host memory) on CuPy's CPU simulation
        weights = train_steps("sgd", dist.get_world_size(), rank, {"bucket_cap_mb": 0.001}, device="cuda")
    np.savez(out / f"cuda-rank{rank}.npz", **weights)
    ddp = nn.parallel.DistributedDataParallel(make_model(), bucket_cap_mb=0.001)
    (out / f"buckets-rank{rank}.txt").write_text(f"{len(ddp.reducer.buckets)} {ddp.reducer.bytes_per_step}\n")


@contextlib.contextmanager
def _simulated_cupy() -> Iterator[None]:
    from tests import _fake_cupy

    saved = {name: sys.modules.get(name) for name in ("cupy", "cupyx")}
    sys.modules["cupy"], sys.modules["cupyx"] = _fake_cupy, _fake_cupy.cupyx
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def no_sync(out: Path) -> None:
    """Two micro-batches under no_sync, then one synchronised: gradients of all three, averaged."""
    rank = dist.get_rank()
    model = make_model()
    ddp = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=0.001)
    x, y = make_data(12)
    loss_fn = nn.CrossEntropyLoss()
    parts = [slice(rank * 6 + 2 * i, rank * 6 + 2 * i + 2) for i in range(3)]
    with ddp.no_sync():
        for part in parts[:2]:
            loss_fn(ddp(dn.tensor(x[part])), dn.tensor(y[part])).backward()
    local = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
    loss_fn(ddp(dn.tensor(x[parts[2]])), dn.tensor(y[parts[2]])).backward()
    np.savez(out / f"nosync-local-rank{rank}.npz", **local)
    np.savez(out / f"nosync-rank{rank}.npz", **{n: p.grad.numpy() for n, p in model.named_parameters()})


def collectives(out: Path) -> None:
    rank, world = dist.get_rank(), dist.get_world_size()
    lines = []
    t = dn.tensor([1.0, 2.0, 3.0]) * (rank + 1)
    dist.all_reduce(t)
    lines.append("sum " + " ".join(map(repr, t.tolist())))
    t = dn.tensor([rank, -rank], dtype=dn.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    lines.append("max " + " ".join(map(repr, t.tolist())))
    t = dn.arange(4, dtype=dn.float64).reshape(2, 2) * (rank + 1)
    dist.all_reduce(t.T, op=dist.ReduceOp.AVG)  # a non-contiguous view: written back in place
    t2 = dn.arange(4, dtype=dn.float64).reshape(2, 2) * (rank + 1)
    work = dist.all_reduce(t2, op=dist.ReduceOp.AVG, async_op=True)
    work.wait()
    lines.append("avg " + " ".join(map(repr, t.reshape(-1).tolist() + t2.reshape(-1).tolist())))
    t = dn.full((3,), float(rank + 10))
    dist.broadcast(t, src=1)
    lines.append("bcast " + " ".join(map(repr, t.tolist())))
    gathered = [dn.zeros(2) for _ in range(world)]
    dist.all_gather(gathered, dn.tensor([rank, rank * 10.0]))
    lines.append("gather " + " ".join(repr(v) for g in gathered for v in g.tolist()))
    dist.barrier()
    lines.append(f"world {world} rank {rank}")
    (out / f"collectives-rank{rank}.txt").write_text("\n".join(lines) + "\n")


def mismatch(out: Path) -> None:
    """Rank 1 builds a wider hidden layer: every rank must raise the same error."""
    rank = dist.get_rank()
    dn.manual_seed(0)
    width = 16 if rank == 0 else 17
    model = nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 2))
    try:
        nn.parallel.DistributedDataParallel(model)
        message = "no error"
    except RuntimeError as exc:
        message = f"RuntimeError: {exc}"
    (out / f"mismatch-rank{rank}.txt").write_text(message + "\n")


def main() -> int:
    scenario, out = sys.argv[1], Path(sys.argv[2])
    dist.init_process_group("mpi")
    try:
        for name in scenario.split(","):
            {"parity": parity, "no_sync": no_sync, "collectives": collectives, "mismatch": mismatch}[name](out)
    except Exception:  # report, then take the whole job down rather than leave the other rank waiting
        traceback.print_exc()
        sys.stderr.flush()
        from mpi4py import MPI

        MPI.COMM_WORLD.Abort(1)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
