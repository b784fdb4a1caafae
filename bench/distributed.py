"""Time of a data-parallel training step: ``mpiexec -n N python -m bench.distributed [--model resnet20]``.

Each rank trains ``--model`` on random inputs of batch ``--batch`` (per rank) through
DistributedDataParallel; rank 0 prints one JSON line: the median step time and its parts (forward,
backward including the overlapped Allreduces, the wait for the last bucket, the optimizer step),
the bytes each rank sends into the Allreduces per step, and the number of buckets. ``--plain``
trains without the wrapper (the one-process baseline); ``--bucket-cap-mb`` sets the bucket size
(a huge value gives one bucket, launched only when backward is over: no overlap).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

import deepnum as dn
from deepnum import distributed as dist
from deepnum import nn


def _step_times(net: nn.Module, model: nn.Module, args: argparse.Namespace, shape: tuple[int, ...]) -> dict:
    rng = np.random.default_rng(dist.get_rank())
    x = dn.tensor(rng.standard_normal((args.batch, *shape)).astype(np.float32))
    y = dn.tensor(rng.integers(0, 10, args.batch))
    optimizer = dn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    parts: dict[str, list[float]] = {"step": [], "forward": [], "backward": [], "wait": [], "optimizer": []}
    for i in range(args.warmup + args.steps):
        dist.barrier()
        t0 = time.perf_counter()
        optimizer.zero_grad()
        loss = loss_fn(net(x), y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        optimizer.step()
        t3 = time.perf_counter()
        if i >= args.warmup:
            parts["step"].append(t3 - t0)
            parts["forward"].append(t1 - t0)
            parts["backward"].append(t2 - t1)
            parts["optimizer"].append(t3 - t2)
            parts["wait"].append(net.reducer.wait_seconds if net is not model else 0.0)
    return {k: round(1000 * statistics.median(v), 2) for k, v in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--bucket-cap-mb", type=float, default=25)
    parser.add_argument("--plain", action="store_true", help="no DistributedDataParallel (baseline)")
    args = parser.parse_args()
    from deepnum.models import create_model

    dist.init_process_group("mpi")
    dn.manual_seed(0)
    model = create_model(args.model, num_classes=10)
    shape = tuple(model.input_shape)
    net = model if args.plain else nn.parallel.DistributedDataParallel(model, bucket_cap_mb=args.bucket_cap_mb)
    times = _step_times(net, model, args, shape)
    if dist.get_rank() == 0:
        report = {"model": args.model, "world_size": dist.get_world_size(), "batch_per_rank": args.batch,
                  "ddp": not args.plain, "ms": times}
        if not args.plain:
            report.update(bucket_cap_mb=args.bucket_cap_mb, buckets=len(net.reducer.buckets),
                          overlapped_buckets=net.reducer.overlapped_buckets,
                          allreduce_bytes_per_rank=net.reducer.bytes_per_step)
        print(json.dumps(report), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
