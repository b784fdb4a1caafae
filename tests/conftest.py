"""Test-session settings. Torch is only the oracle here: its calls are tiny, and on the 2-core CI
machine its thread pool only adds contention, so it runs single-threaded (no result changes).
NumPy's BLAS is pinned to one thread for the same reason: with two threads on a machine where
other processes also run, small matrix products slow down 10-100x (docs/performance.md), which
would make the timing-sensitive slow tests flaky. The environment variables carry the same limit
into the subprocesses that tests start, so a run split across processes (Ctrl-C, then resume) sums
in the same order as one that is not, and stays bit-identical."""
import os

import torch

os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"

torch.set_num_threads(1)

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # threadpoolctl comes with scikit-learn (the datasets extra)
    threadpool_limits = None
if threadpool_limits is not None:
    threadpool_limits(limits=1, user_api="blas")

# The `device` fixture ('cpu' and 'cuda', the latter on the CuPy simulation where no GPU exists).
from tests._device import cuda, device, fake_cupy, pytest_configure  # noqa: E402, F401
