"""Making tensors: from data (``tensor``) and by factories (``zeros``, ``arange``, ``eye``...), with
PyTorch's dtype rules (floats default to float32, integers to int64)."""
from __future__ import annotations

from typing import Any

import numpy as np

from deepnum import backend
from deepnum.tensor import Tensor


def tensor(data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A new leaf tensor holding a copy of ``data`` (nested lists, numbers, arrays or Tensors)."""
    array = backend.asarray(data.data if isinstance(data, Tensor) else data, dtype, device)
    if array is data or (isinstance(data, Tensor) and array is data.data):
        array = array.copy()
    return Tensor(array, requires_grad=requires_grad)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """Like ``tensor`` but shares memory with ``data`` when no conversion is needed."""
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    return Tensor(backend.asarray(data.data if isinstance(data, Tensor) else data, dtype, device))


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with a NumPy array (its dtype kept)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray (got {type(array).__name__})")
    return Tensor._make(array)


def _size(size: tuple) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], tuple | list):
        size = tuple(size[0])
    return tuple(int(s) for s in size)


def _filled(size: tuple, value: Any, dtype: Any, device: Any, requires_grad: bool) -> Tensor:
    if dtype is None and isinstance(value, bool):
        dt = backend.bool_
    elif dtype is None and isinstance(value, int):
        dt = backend.int64
    else:
        dt = backend.as_dtype(dtype)
    xp = backend.require_cupy() if device is not None and backend.normalize_device(device) == "cuda" else np
    array = xp.zeros(size, dtype=dt) if value == 0 else xp.full(size, value, dtype=dt)  # zeros: lazily mapped pages
    return Tensor(array, requires_grad=requires_grad)


def zeros(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _filled(_size(size), 0.0, dtype, device, requires_grad)


def ones(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _filled(_size(size), 1.0, dtype, device, requires_grad)


def empty(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Uninitialised in PyTorch; zeros here, so results never depend on stale memory."""
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def full(size: Any, fill_value: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _filled(_size((size,)) if isinstance(size, int) else tuple(size), fill_value, dtype, device,
                   requires_grad)


def _like(input: Tensor, dtype: Any, device: Any) -> tuple:  # noqa: A002
    return input.shape, (input.dtype if dtype is None else dtype), (input.device if device is None else device)


def zeros_like(input: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:  # noqa: A002
    shape, dt, dev = _like(input, dtype, device)
    return _filled(shape, 0, dt, dev, requires_grad)


def ones_like(input: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:  # noqa: A002
    shape, dt, dev = _like(input, dtype, device)
    return _filled(shape, 1, dt, dev, requires_grad)


def empty_like(input: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:  # noqa: A002
    return zeros_like(input, dtype, device, requires_grad)


def full_like(input: Tensor, fill_value: Any, dtype: Any = None, device: Any = None,  # noqa: A002
              requires_grad: bool = False) -> Tensor:
    shape, dt, dev = _like(input, dtype, device)
    return _filled(shape, fill_value, dt, dev, requires_grad)


def arange(start: float, end: float | None = None, step: float = 1, dtype: Any = None, device: Any = None,
           requires_grad: bool = False) -> Tensor:
    """Values start, start+step, ... below end; int64 when all three are integers, else float32."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError(f"arange: upper bound {end} and lower bound {start} inconsistent with step sign {step}")
    if dtype is None:
        integral = all(isinstance(v, int) for v in (start, end, step))
        dtype = backend.int64 if integral else backend.get_default_dtype()
    values = np.arange(start, end, step, dtype=np.float64 if backend.as_dtype(dtype).kind == "f" else None)
    return Tensor(values.astype(backend.as_dtype(dtype)), requires_grad=requires_grad, device=device)


def linspace(start: float, end: float, steps: int, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from start to end inclusive."""
    if steps < 0:
        raise RuntimeError(f"linspace: number of steps must be non-negative, got {steps}")
    values = np.linspace(start, end, steps).astype(backend.as_dtype(dtype))
    return Tensor(values, requires_grad=requires_grad, device=device)


def eye(n: int, m: int | None = None, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Identity matrix of n rows and m (= n) columns."""
    return Tensor(np.eye(n, m, dtype=backend.as_dtype(dtype)), requires_grad=requires_grad, device=device)
