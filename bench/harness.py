"""Same-process speed comparison: a workload runs in deepnum and in PyTorch, alternating rounds so
both see the same machine state, with the same thread count; we report medians and the ratio
deepnum/torch. Never used by tests: timings are not deterministic."""
from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
ALLOCATOR_VARS = ("MALLOC_ARENA_MAX", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "LD_PRELOAD")


def pin_threads(threads: int) -> None:
    """Set every BLAS/OpenMP thread count before numpy or torch is imported."""
    for var in THREAD_VARS:
        os.environ[var] = str(threads)


def settings() -> str:
    """The thread and allocator settings the numbers were taken under."""
    import numpy as np
    import torch

    threads = {v: os.environ.get(v, "unset") for v in THREAD_VARS}
    alloc = {v: os.environ.get(v, "default") for v in ALLOCATOR_VARS}
    return (f"numpy {np.__version__}, torch {torch.__version__} (torch threads {torch.get_num_threads()}), "
            f"threads {threads}, allocator {alloc}")


def start(description: str, argv: list[str] | None, rounds: int) -> argparse.Namespace:
    """The common start of every benchmark: parse ``--threads``/``--rounds``, pin the thread counts
    before numpy or torch is imported, give torch the same count, and print the settings."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=rounds)
    args = parser.parse_args(argv)
    pin_threads(args.threads)
    try:  # the variables above do nothing if numpy's BLAS is already loaded; threadpoolctl still can
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        pass
    import torch

    torch.set_num_threads(args.threads)
    print(settings())
    return args


def time_per_iteration(step: Callable[[], object], iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    return (time.perf_counter() - start) / iterations


def compare(name: str, deepnum_step: Callable[[], object], torch_step: Callable[[], object],
            rounds: int = 15, iterations: int = 20, warmup: int = 5) -> float:
    """Print the median seconds per iteration of each and return the ratio deepnum/torch."""
    for _ in range(warmup):
        deepnum_step()
        torch_step()
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(time_per_iteration(deepnum_step, iterations))
        theirs.append(time_per_iteration(torch_step, iterations))
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    ratio = ours_median / theirs_median
    print(f"{name}: deepnum {ours_median * 1e3:.3f} ms, torch {theirs_median * 1e3:.3f} ms, "
          f"ratio deepnum/torch = {ratio:.2f}x")
    return ratio
