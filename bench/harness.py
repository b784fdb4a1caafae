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


def settings_dict() -> dict:
    """The versions, thread counts and allocator settings the numbers were taken under, as data:
    numpy and torch versions, torch's thread count, the BLAS libraries NumPy loaded (threadpoolctl's
    ``threadpool_info``: library, version, architecture, threads), and the environment variables."""
    import numpy as np
    import torch

    np.ones((2, 2)) @ np.ones((2, 2))  # load NumPy's BLAS so that threadpoolctl sees it
    try:
        from threadpoolctl import threadpool_info

        blas = [{k: info.get(k) for k in ("user_api", "internal_api", "version", "architecture", "num_threads",
                                          "threading_layer", "filepath")} for info in threadpool_info()]
    except ImportError:
        blas = [{"user_api": "unknown (pip install threadpoolctl to report it)"}]
    return {"numpy": np.__version__, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "blas": blas, "threads": {v: os.environ.get(v, "unset") for v in THREAD_VARS},
            "allocator": {v: os.environ.get(v, "default") for v in ALLOCATOR_VARS},
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "unset")}


def settings() -> str:
    """The thread and allocator settings the numbers were taken under."""
    info = settings_dict()
    blas = "; ".join(f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')}, "
                     f"{b.get('num_threads')} threads)" for b in info["blas"] if b.get("user_api") == "blas")
    return (f"numpy {info['numpy']} (BLAS: {blas or 'unknown'}), torch {info['torch']} (torch threads "
            f"{info['torch_threads']}), threads {info['threads']}, allocator {info['allocator']}, "
            f"OPENBLAS_CORETYPE={info['openblas_coretype']}")


def limit_threads(threads: int) -> None:
    """Pin every thread count: the environment (read by libraries not loaded yet), NumPy's BLAS via
    threadpoolctl (the variables do nothing once it is loaded) and torch's intra-op pool."""
    pin_threads(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:
        pass
    import torch

    torch.set_num_threads(threads)


def start(description: str, argv: list[str] | None, rounds: int) -> argparse.Namespace:
    """The common start of every benchmark: parse ``--threads``/``--rounds``, pin the thread counts
    before numpy or torch is imported, give torch the same count, and print the settings."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=rounds)
    args = parser.parse_args(argv)
    limit_threads(args.threads)
    print(settings())
    return args


def time_per_iteration(step: Callable[[], object], iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    return (time.perf_counter() - start) / iterations


def measure(deepnum_step: Callable[[], object], torch_step: Callable[[], object], rounds: int = 15,
            iterations: int = 20, warmup: int = 5) -> tuple[list[float], list[float]]:
    """Warm both up, then alternate rounds of ``iterations`` calls: the seconds per iteration of each
    round, deepnum's and torch's (round i of one ran right after round i of the other)."""
    for _ in range(warmup):
        deepnum_step()
        torch_step()
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(time_per_iteration(deepnum_step, iterations))
        theirs.append(time_per_iteration(torch_step, iterations))
    return ours, theirs


def compare(name: str, deepnum_step: Callable[[], object], torch_step: Callable[[], object],
            rounds: int = 15, iterations: int = 20, warmup: int = 5) -> float:
    """Print the median seconds per iteration of each and return the ratio deepnum/torch."""
    ours, theirs = measure(deepnum_step, torch_step, rounds, iterations, warmup)
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    ratio = ours_median / theirs_median
    print(f"{name}: deepnum {ours_median * 1e3:.3f} ms, torch {theirs_median * 1e3:.3f} ms, "
          f"ratio deepnum/torch = {ratio:.2f}x")
    return ratio


def classification_step(functional, model, opt, x, y) -> Callable[[], object]:
    """One training step of a classifier, written with names both libraries share: zero_grad,
    cross-entropy of ``model(x)`` against ``y``, backward, the optimizer's step; returns the loss."""
    def step():
        opt.zero_grad()
        loss = functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step
