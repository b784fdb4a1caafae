"""``deepnum.cuda``: is a GPU there, which one, and how much memory deepnum's arrays hold on it, as
``torch.cuda``. The GPU arrays are CuPy's (https://cupy.dev); CuPy is imported only when asked.

deepnum draws every random number on the host with one generator and moves it to the device, so a
seeded run gives the same numbers on the CPU and on the GPU; ``manual_seed`` here therefore seeds that
generator (there is no separate CUDA generator, unlike PyTorch's).
"""
from __future__ import annotations

from deepnum import backend
from deepnum import random as _random

__all__ = ["is_available", "device_count", "current_device", "get_device_name", "synchronize",
           "manual_seed", "manual_seed_all", "memory_allocated", "memory_reserved", "empty_cache"]


def is_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device; never raises."""
    return backend.cuda_device_count() > 0


def device_count() -> int:
    """The number of CUDA devices (0 without CuPy or a GPU). deepnum uses the first one."""
    return backend.cuda_device_count()


def current_device() -> int:
    """The index of the device CuPy allocates on."""
    return int(backend.require_cuda().cuda.runtime.getDevice())


def get_device_name(device: int | str | None = None) -> str:
    """The GPU's product name, e.g. 'NVIDIA H100 80GB HBM3'."""
    cp = backend.require_cuda()
    index = current_device() if device is None or str(device) == "cuda" else _index(device)
    name = cp.cuda.runtime.getDeviceProperties(index)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def _index(device: int | str) -> int:
    text = str(device)
    return int(text.split(":", 1)[1]) if text.startswith("cuda:") else int(text)


def synchronize() -> None:
    """Wait until every kernel queued on the device has finished (before reading a timer)."""
    backend.require_cuda().cuda.Device().synchronize()


def manual_seed(seed: int) -> None:
    """Seed the generator that draws deepnum's random numbers for every device (see the module notes)."""
    _random.manual_seed(seed)


def manual_seed_all(seed: int) -> None:
    """As ``manual_seed``: one generator serves every device."""
    _random.manual_seed(seed)


def memory_allocated() -> int:
    """Bytes of device memory held by live arrays (CuPy's default memory pool's ``used_bytes``)."""
    return int(backend.require_cuda().get_default_memory_pool().used_bytes())


def memory_reserved() -> int:
    """Bytes the memory pool holds from the driver, including freed blocks kept for reuse."""
    return int(backend.require_cuda().get_default_memory_pool().total_bytes())


def empty_cache() -> None:
    """Return the pool's unused blocks to the driver."""
    backend.require_cuda().get_default_memory_pool().free_all_blocks()
