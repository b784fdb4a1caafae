"""deepnum.distributed, DistributedDataParallel and DistributedSampler.

The multi-process checks run ``mpiexec -n 2`` (the venv's, from the mpich wheel) as a subprocess
with a timeout, so a hang fails the test instead of blocking the suite; ``_distributed_worker.py``
is the program both ranks run. The headline check is the issue's: two ranks at batch B end with the
weights of one process at batch 2B after 20 steps (float64, SGD with momentum and Adam).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data.distributed import DistributedSampler as TorchDistributedSampler

import deepnum as dn
from deepnum import distributed as dist
from deepnum import nn
from deepnum.data import DistributedSampler
from tests import _distributed_worker as worker

MPIEXEC = Path(sys.executable).parent / "mpiexec"
WORKER = Path(__file__).with_name("_distributed_worker.py")
TIMEOUT = 240  # generous: MPI start-up on a loaded 2-core machine can take a while


def _env() -> dict[str, str]:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _mpiexec(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([str(MPIEXEC), *args], capture_output=True, text=True, timeout=TIMEOUT, env=_env(),
                              cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"mpiexec {' '.join(args)} did not finish in {TIMEOUT} s (a hang?)\n{exc.stdout}\n{exc.stderr}")


@pytest.fixture(scope="module")
def mpi_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 2-rank job runs every scenario (one MPI start-up for all of them)."""
    out = tmp_path_factory.mktemp("mpi")
    proc = _mpiexec(["-n", "2", sys.executable, str(WORKER), "collectives,mismatch,parity,no_sync", str(out)])
    assert proc.returncode == 0, f"mpiexec failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return out


# --------------------------------------------------------------------------- two ranks (mpiexec -n 2)
@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("cap", [25, 0.001])
def test_two_ranks_at_batch_b_equal_one_process_at_batch_2b(mpi_results: Path, opt: str, cap: float) -> None:
    reference = worker.train_steps(opt, 1, 0)
    start = {k: v.numpy() for k, v in worker.make_model().state_dict().items()}
    ranks = [np.load(mpi_results / f"{opt}-{cap}-rank{r}.npz") for r in (0, 1)]
    for key, ref in reference.items():
        assert np.abs(ref - start[key]).max() > 1e-3  # the 20 steps moved every tensor
        for weights in ranks:
            np.testing.assert_allclose(weights[key], ref, rtol=0, atol=1e-12, err_msg=key)
        np.testing.assert_array_equal(ranks[0][key], ranks[1][key])  # the replicas stay bit-identical


def test_two_ranks_on_simulated_cuda_match_the_cpu_reference(mpi_results: Path) -> None:
    """CUDA tensors go through host buffers (the mpich wheel is not CUDA-aware); here on CuPy's CPU
    simulation (tests/_fake_cupy.py), which checks the device bookkeeping, not a real GPU."""
    reference = worker.train_steps("sgd", 1, 0)
    for r in (0, 1):
        weights = np.load(mpi_results / f"cuda-rank{r}.npz")
        for key, ref in reference.items():
            np.testing.assert_allclose(weights[key], ref, rtol=0, atol=1e-12, err_msg=key)


def test_small_buckets_split_the_gradients(mpi_results: Path) -> None:
    counts = [(mpi_results / f"buckets-rank{r}.txt").read_text().split() for r in (0, 1)]
    params = list(worker.make_model().parameters())
    assert counts[0] == counts[1]
    assert int(counts[0][0]) == 3  # 1 kB buckets, reverse order: (5, 80, 16 values) (1728) (3, 27)
    assert int(counts[0][1]) == sum(p.numel() for p in params) * 8


def test_no_sync_accumulates_locally_then_averages_the_sum(mpi_results: Path) -> None:
    x, y = worker.make_data(12)
    model = worker.make_model()
    loss_fn = nn.CrossEntropyLoss()
    per_rank = []
    for rank in (0, 1):
        model.zero_grad()
        for i in range(3):
            part = slice(rank * 6 + 2 * i, rank * 6 + 2 * i + 2)
            loss_fn(model(dn.tensor(x[part])), dn.tensor(y[part])).backward()
            if i == 1:
                local = np.load(mpi_results / f"nosync-local-rank{rank}.npz")
                for n, p in model.named_parameters():  # inside no_sync: this rank's own sum
                    np.testing.assert_allclose(local[n], p.grad.numpy(), rtol=0, atol=1e-14)
        per_rank.append({n: p.grad.numpy().copy() for n, p in model.named_parameters()})
    for rank in (0, 1):
        synced = np.load(mpi_results / f"nosync-rank{rank}.npz")
        for n in per_rank[0]:
            np.testing.assert_allclose(synced[n], (per_rank[0][n] + per_rank[1][n]) / 2, rtol=0, atol=1e-14)


def test_shape_mismatch_fails_on_every_rank_with_the_same_message(mpi_results: Path) -> None:
    messages = [(mpi_results / f"mismatch-rank{r}.txt").read_text() for r in (0, 1)]
    assert messages[0] == messages[1]
    assert messages[0].startswith("RuntimeError: DistributedDataParallel: the model is not the same on every rank")
    assert "'0.weight' has shape (16, 4) and dtype float32 on rank 0 but shape (17, 4)" in messages[0]
    assert "on rank 1" in messages[0]


def test_collectives(mpi_results: Path) -> None:
    for rank in (0, 1):
        lines = (mpi_results / f"collectives-rank{rank}.txt").read_text().splitlines()
        assert lines[0] == "sum 3.0 6.0 9.0"  # (1 + 2) * [1, 2, 3]
        assert lines[1] == "max 1 0"  # max(0, 1), max(0, -1)
        assert lines[2] == "avg " + " ".join(["0.0", "1.5", "3.0", "4.5"] * 2)  # mean of 1x and 2x arange(4)
        assert lines[3] == "bcast 11.0 11.0 11.0"  # rank 1's 10 + 1
        assert lines[4] == "gather 0.0 0.0 1.0 10.0"
        assert lines[5] == f"world 2 rank {rank}"


def test_cli_distributed_training_rank0_writes_alone(tmp_path: Path) -> None:
    """Rank 0 runs in a0/, rank 1 in a1/ (mpiexec's MPMD form), both with --output run: only a0/run appears."""
    dirs = [tmp_path / "a0", tmp_path / "a1"]
    for d in dirs:
        d.mkdir()
    cmd = [sys.executable, "-m", "deepnum", "train", "--distributed", "--epochs", "1", "--limit", "256",
           "--batch-size", "32", "--output", "run", "--no-augment"]
    proc = _mpiexec(["-n", "1", "-wdir", str(dirs[0]), *cmd, ":", "-n", "1", "-wdir", str(dirs[1]), *cmd])
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert sorted(os.listdir(dirs[0] / "run")) == ["checkpoint.safetensors", "config.json", "curves.png",
                                                   "history.csv", "history.json", "model.safetensors"]
    assert os.listdir(dirs[1]) == []
    assert proc.stdout.count("test accuracy:") == 1 and proc.stdout.count("data-parallel over 2 processes") == 1
    import json

    config = json.loads((dirs[0] / "run" / "config.json").read_text())
    assert config["status"] == "done" and config["world_size"] == 2 and 0.0 <= config["test_accuracy"] <= 1.0
    weights = dn.load(dirs[0] / "run" / "model.safetensors")
    assert not any(k.startswith("module.") for k in weights)  # the bare model's keys, loadable by eval/predict
    from safetensors.numpy import load_file

    keys = list(load_file(dirs[0] / "run" / "checkpoint.safetensors"))
    from deepnum.models import create_model

    bare = {"model." + k for k in create_model("lenet5", num_classes=10).state_dict()}
    assert bare <= set(keys) and set(weights) == {k[len("model."):] for k in bare}  # fit unwraps DDP


def test_fit_with_ddp_sets_the_sampler_epoch_and_checkpoints_the_bare_model(tmp_path: Path) -> None:
    from deepnum.data import DataLoader, TensorDataset
    from deepnum.io import load_checkpoint
    from deepnum.train import fit

    x, y = worker.make_data(16)
    data = TensorDataset(dn.tensor(x), dn.tensor(y))
    dist.init_process_group()
    try:
        model = worker.make_model()
        sampler = DistributedSampler(data, shuffle=True, seed=1)
        loader = DataLoader(data, batch_size=4, sampler=sampler)
        epochs = []
        real_indices = sampler._indices
        sampler._indices = lambda: (epochs.append(sampler.epoch), real_indices())[1]
        fit(nn.parallel.DistributedDataParallel(model), loader, epochs=2, optimizer=dn.optim.SGD(model.parameters(),
            lr=0.1), loss_fn=nn.CrossEntropyLoss(), progress=False, checkpoint_path=tmp_path / "ckpt.safetensors")
        assert epochs == [0, 1]
        fresh = worker.make_model()
        load_checkpoint(tmp_path / "ckpt.safetensors", model=fresh)  # keys without "module."
        for a, b in zip(fresh.parameters(), model.parameters(), strict=True):
            np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    finally:
        dist.destroy_process_group()


# --------------------------------------------------------------------------- one process
def test_post_accumulate_grad_hook_fires_as_soon_as_the_leaf_is_complete() -> None:
    gen = np.random.default_rng(0)
    w1 = dn.tensor(gen.standard_normal((3, 4)), requires_grad=True)
    w2 = dn.tensor(gen.standard_normal((4, 2)), requires_grad=True)
    x = dn.tensor(gen.standard_normal((5, 3)))
    seen = []
    w2.register_post_accumulate_grad_hook(lambda p: seen.append(("w2", w1.grad is None, p.grad.numpy().copy())))
    w1.register_post_accumulate_grad_hook(lambda p: seen.append(("w1", w2.grad is None, p.grad.numpy().copy())))
    ((x @ w1).tanh() @ w2 + (x @ w1)[:, :2]).square().sum().backward()  # w1 used twice
    tw1, tw2 = (torch.tensor(w.detach().numpy(), requires_grad=True) for w in (w1, w2))
    tx = torch.tensor(x.numpy())
    ((tx @ tw1).tanh() @ tw2 + (tx @ tw1)[:, :2]).square().sum().backward()
    assert [s[:2] for s in seen] == [("w2", True), ("w1", False)]  # w2's hook ran before w1 had a gradient
    np.testing.assert_allclose(seen[0][2], tw2.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(seen[1][2], tw1.grad.numpy(), rtol=1e-12)  # both uses of w1 summed first


def test_post_accumulate_grad_hook_errors_and_removal() -> None:
    w = dn.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="non-leaf"):
        (w * 2).register_post_accumulate_grad_hook(lambda p: None)
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        dn.ones(3).register_post_accumulate_grad_hook(lambda p: None)
    calls = []
    remove = w.register_post_accumulate_grad_hook(lambda p: calls.append(p.grad.numpy().copy()))
    (w * w).sum().backward()
    remove()
    (w * w).sum().backward()
    assert len(calls) == 1 and calls[0].tolist() == [2.0, 2.0, 2.0]
    assert w.grad.tolist() == [4.0, 4.0, 4.0]


def test_world_of_one_without_mpiexec() -> None:
    dist.init_process_group("mpi")
    try:
        assert dist.is_initialized() and dist.get_rank() == 0 and dist.get_world_size() == 1
        with pytest.raises(RuntimeError, match="twice"):
            dist.init_process_group()
        t = dn.tensor([1.0, -2.0])
        dist.all_reduce(t)
        dist.broadcast(t, 0)
        dist.barrier()
        assert t.tolist() == [1.0, -2.0]
        with pytest.raises(ValueError, match=r"src must be a rank in \[0, 0\]"):
            dist.broadcast(t, 1)
        model = worker.make_model()
        ddp = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=0.001)
        assert list(ddp.state_dict()) == ["module." + k for k in model.state_dict()]
        x, y = worker.make_data(6)
        nn.CrossEntropyLoss()(ddp(dn.tensor(x)), dn.tensor(y)).backward()
        grads = [p.grad.numpy().copy() for p in model.parameters()]
        model.zero_grad()
        nn.CrossEntropyLoss()(model(dn.tensor(x)), dn.tensor(y)).backward()
        for g, p in zip(grads, model.parameters(), strict=True):
            np.testing.assert_array_equal(g, p.grad.numpy())
        loss = ddp(dn.tensor(x)).sum()
        assert ddp.reducer.armed
        loss.backward()
        assert not ddp.reducer.armed  # reduced; a bare-module backward now stays local, as in torch
        with ddp.no_sync():
            ddp(dn.tensor(x)).sum()
        assert not ddp.reducer.armed
        _unused_parameter_error()
    finally:
        dist.destroy_process_group()
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.get_rank()
    with pytest.raises(RuntimeError, match="not initialized"):
        nn.parallel.DistributedDataParallel(worker.make_model())
    with pytest.raises(ValueError, match="backend 'nccl' is not supported"):
        dist.init_process_group("nccl")


class _HalfUsed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used, self.unused = nn.Linear(3, 2), nn.Linear(3, 2)

    def forward(self, x: dn.Tensor) -> dn.Tensor:
        return self.used(x)


def _unused_parameter_error() -> None:
    model = _HalfUsed()
    ddp = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=1e-5)  # one bucket per tensor
    x = dn.ones(4, 3)
    model(x).sum().backward()  # a bare-module backward: nothing is armed, nothing happens
    ddp(x).sum().backward()  # unused.weight and unused.bias never get a gradient
    with pytest.raises(RuntimeError, match=r"2 parameter\(s\) \('unused.bias' \(2,\), 'unused.weight' \(2, 3\)\)"):
        ddp(x)


# --------------------------------------------------------------------------- DistributedSampler
@pytest.mark.parametrize("n,world,drop_last", [(10, 3, False), (10, 3, True), (12, 4, False), (5, 8, False),
                                               (7, 2, True), (1, 3, False)])
def test_sampler_without_shuffle_equals_torch(n: int, world: int, drop_last: bool) -> None:
    for rank in range(world):
        ours = DistributedSampler(range(n), world, rank, shuffle=False, drop_last=drop_last)
        theirs = TorchDistributedSampler(range(n), world, rank, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


@pytest.mark.parametrize("n,world", [(100, 4), (101, 4), (7, 3)])
def test_shuffled_shards_are_disjoint_covering_and_equal(n: int, world: int) -> None:
    for epoch in (0, 1):
        shards = []
        for rank in range(world):
            sampler = DistributedSampler(range(n), world, rank, shuffle=True, seed=3)
            sampler.set_epoch(epoch)
            shards.append(list(sampler))
            again = DistributedSampler(range(n), world, rank, shuffle=True, seed=3)
            again.set_epoch(epoch)
            assert list(again) == shards[-1]  # every rank computes the same epoch order
        assert {len(s) for s in shards} == {-(-n // world)}
        flat = [i for s in shards for i in s]
        assert sorted(set(flat)) == list(range(n))  # covering
        assert len(flat) - len(set(flat)) == -n % world  # disjoint up to the padding
    first = [list(DistributedSampler(range(n), world, 0, seed=3)) for _ in range(2)]
    moved = DistributedSampler(range(n), world, 0, seed=3)
    moved.set_epoch(1)
    assert first[0] == first[1] and list(moved) != first[0] and first[0] != list(range(0, n, world))[:len(first[0])]


def test_sampler_drop_last_cuts_and_errors() -> None:
    shards = [list(DistributedSampler(range(10), 4, r, shuffle=True, drop_last=True)) for r in range(4)]
    flat = [i for s in shards for i in s]
    assert [len(s) for s in shards] == [2] * 4 and len(set(flat)) == 8
    with pytest.raises(ValueError, match=r"Invalid rank 4, rank should be in the interval \[0, 3\]"):
        DistributedSampler(range(10), 4, 4)
    with pytest.raises(RuntimeError, match="init_process_group"):
        DistributedSampler(range(10))


def test_sampler_in_a_dataloader_shards_the_batches() -> None:
    from deepnum.data import DataLoader, TensorDataset

    data = TensorDataset(dn.arange(10))
    seen = [[int(v) for (b,) in DataLoader(data, batch_size=2, sampler=DistributedSampler(data, 2, r, shuffle=False))
             for v in b.tolist()] for r in (0, 1)]
    assert seen == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]


def test_mpi4py_is_imported_only_when_a_group_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    code = "import sys, deepnum, deepnum.distributed; assert 'mpi4py' not in sys.modules, sorted(sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], env=_env(), timeout=TIMEOUT).returncode == 0
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"pip install 'deepnum\[mpi\]'"):
        dist.init_process_group("mpi")
    assert not dist.is_mpi_available() and not dist.is_initialized()
