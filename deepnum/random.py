"""Random numbers: a seedable ``Generator`` (NumPy's PCG64) and the global one behind
``manual_seed``. Values are drawn directly in the target dtype (no float64 detour)."""
from __future__ import annotations

from typing import Any

import numpy as np

from deepnum import backend
from deepnum.tensor import Tensor


class Generator:
    """A source of random numbers, as ``torch.Generator``: ``Generator().manual_seed(0)``."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = backend.normalize_device(device)
        self._seed = 0
        self.rng = np.random.default_rng(0)

    def manual_seed(self, seed: int) -> Generator:
        self._seed = int(seed)
        self.rng = np.random.default_rng(self._seed)
        return self

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seed the global generator so every run draws the same numbers."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    """Re-seed the global generator from the operating system's entropy; returns the seed."""
    value = int(np.random.SeedSequence().entropy % (2**63))
    manual_seed(value)
    return value


def _rng(generator: Generator | None) -> np.random.Generator:
    return (generator or default_generator).rng


def _finish(array: np.ndarray, device: Any, requires_grad: bool) -> Tensor:
    t = Tensor._make(array if device is None else backend.to_device(array, device))
    t.requires_grad = requires_grad
    return t


def _size(size: tuple) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], tuple | list):
        size = tuple(size[0])
    return tuple(int(s) for s in size)


def _float_dtype(dtype: Any) -> np.dtype:
    dt = backend.as_dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"expected a floating-point dtype, got {dt}")
    return dt


def _standard(method: str, size: tuple, dtype: np.dtype, generator: Generator | None) -> np.ndarray:
    """Draw in float32 or float64 directly (what NumPy supports), then narrow for float16."""
    draw_dtype = dtype if dtype in (backend.float32, backend.float64) else backend.float32
    return getattr(_rng(generator), method)(size, dtype=draw_dtype).astype(dtype, copy=False)


def rand(*size: Any, generator: Generator | None = None, dtype: Any = None, device: Any = None,
         requires_grad: bool = False) -> Tensor:
    """Uniform samples on [0, 1)."""
    return _finish(_standard("random", _size(size), _float_dtype(dtype), generator), device, requires_grad)


def randn(*size: Any, generator: Generator | None = None, dtype: Any = None, device: Any = None,
          requires_grad: bool = False) -> Tensor:
    """Standard normal samples."""
    return _finish(_standard("standard_normal", _size(size), _float_dtype(dtype), generator), device,
                   requires_grad)


def randint(low: int, high: int | None = None, size: Any = (), *, generator: Generator | None = None,
            dtype: Any = "int64", device: Any = None) -> Tensor:
    """Integers uniform on [low, high); ``randint(high, size)`` starts at 0, as PyTorch."""
    if isinstance(high, tuple | list):
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    if low >= high:
        raise RuntimeError(f"randint: expected low < high, got low={low}, high={high}")
    values = _rng(generator).integers(low, high, size=_size((size,)) if isinstance(size, int) else tuple(size))
    return _finish(values.astype(backend.as_dtype(dtype)), device, False)


def randperm(n: int, *, generator: Generator | None = None, dtype: Any = "int64", device: Any = None) -> Tensor:
    """A random permutation of 0..n-1."""
    return _finish(_rng(generator).permutation(n).astype(backend.as_dtype(dtype)), device, False)


def normal(mean: Any = 0.0, std: Any = 1.0, size: Any = None, *, generator: Generator | None = None,
           dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Samples of N(mean, std²): ``size`` of them for number arguments, or one per element of the
    broadcast tensor ``mean``/``std`` (which receive no gradient), as ``torch.normal``."""
    if isinstance(mean, Tensor) or isinstance(std, Tensor):
        return _normal_elementwise(mean, std, size, generator)
    if size is None:
        raise TypeError("normal: size is required when mean and std are numbers")
    if std < 0:
        raise RuntimeError(f"normal: expected std >= 0, got {std}")
    dt = _float_dtype(dtype)
    values = _standard("standard_normal", _size((size,)) if isinstance(size, int) else tuple(size), dt, generator)
    return _finish((values * dt.type(std) + dt.type(mean)).astype(dt, copy=False), device, requires_grad)


def _normal_elementwise(mean: Any, std: Any, size: Any, generator: Generator | None) -> Tensor:
    """One N(mean_i, std_i²) sample per element of the broadcast (tensor) mean and std."""
    if size is not None:
        raise TypeError("normal: size is only accepted with number mean and std")
    tensors = [t for t in (mean, std) if isinstance(t, Tensor)]
    dt = _float_dtype(np.result_type(*(t.dtype for t in tensors)))
    m, s = (t.data if isinstance(t, Tensor) else t for t in (mean, std))
    xp = backend.get_array_module(*(t.data for t in tensors))
    if bool(xp.any(xp.asarray(s) < 0)):
        raise RuntimeError("normal: expected every std >= 0")
    shape = np.broadcast_shapes(np.shape(m), np.shape(s))
    z = backend.to_device(_standard("standard_normal", shape, dt, generator), tensors[0].device)
    return _finish((z * s + m).astype(dt, copy=False), None, False)


def rand_like(input: Tensor, **kwargs: Any) -> Tensor:  # noqa: A002
    return rand(input.shape, dtype=kwargs.pop("dtype", input.dtype), device=kwargs.pop("device", input.device),
                **kwargs)


def randn_like(input: Tensor, **kwargs: Any) -> Tensor:  # noqa: A002
    return randn(input.shape, dtype=kwargs.pop("dtype", input.dtype), device=kwargs.pop("device", input.device),
                 **kwargs)
