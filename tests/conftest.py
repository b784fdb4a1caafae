"""Test-session settings. Torch is only the oracle here: its calls are tiny, and on the 2-core CI
machine its thread pool only adds contention, so it runs single-threaded (no result changes).
NumPy's BLAS is pinned to one thread for the same reason: with two threads on a machine where
other processes also run, small matrix products slow down 10-100x (docs/performance.md), which
would make the timing-sensitive slow tests flaky. Results do not depend on the thread count."""
import torch

torch.set_num_threads(1)

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # threadpoolctl comes with scikit-learn (the datasets extra)
    threadpool_limits = None
if threadpool_limits is not None:
    threadpool_limits(limits=1, user_api="blas")
