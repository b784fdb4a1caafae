"""The array backend: which array module holds the data (NumPy or CuPy), the dtype policy, devices.

Every op asks ``get_array_module(array)`` for its module instead of calling ``numpy`` directly, so a
CuPy array flows through the same code on a GPU (the idea of DeZero's ``get_array_module``).
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

_default_dtype = np.dtype(np.float32)

float16 = half = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = double = np.dtype(np.float64)
int8 = np.dtype(np.int8)
uint8 = np.dtype(np.uint8)
int16 = short = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = long = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)

_DTYPE_NAMES = {
    "float16": float16, "half": float16, "float32": float32, "float": float32,
    "float64": float64, "double": float64, "int8": int8, "uint8": uint8, "int16": int16,
    "int32": int32, "int64": int64, "long": int64, "bool": bool_,
}


def _cupy() -> ModuleType | None:
    try:
        import cupy
    except ImportError:
        return None
    return cupy


def require_cupy() -> ModuleType:
    """Return the cupy module, or explain which extra installs it."""
    cp = _cupy()
    if cp is None:
        raise RuntimeError("device 'cuda' needs CuPy, which is not installed: pip install 'deepnum[gpu]' "
                           "(CuPy for CUDA 12, cupy-cuda12x)")
    return cp


def cuda_device_count() -> int:
    """How many CUDA devices CuPy sees; 0 without CuPy, a driver or a GPU (never raises)."""
    cp = _cupy()
    if cp is None:
        return 0
    try:
        return int(cp.cuda.runtime.getDeviceCount())
    except Exception:  # CuPy raises its CUDARuntimeError (no driver, no device) or ImportError (no libcudart)
        return 0


_CHECKED: list[ModuleType] = []  # the cupy module once a device was found (one runtime call, not one per copy)


def require_cuda() -> ModuleType:
    """The cupy module when a CUDA device is usable; otherwise say what is missing and how to get it."""
    cp = require_cupy()
    if _CHECKED and _CHECKED[0] is cp:
        return cp
    if cuda_device_count() == 0:
        raise RuntimeError("device 'cuda' was requested but CuPy finds no CUDA device (no GPU, or no NVIDIA "
                           "driver): use device 'cpu', or run where deepnum.cuda.is_available() is True; "
                           "CuPy comes with pip install 'deepnum[gpu]'")
    _CHECKED[:] = [cp]
    return cp


def get_array_module(*arrays: Any) -> ModuleType:
    """The module (numpy or cupy) that owns these arrays; numpy for host data and scalars."""
    for a in arrays:
        if type(a).__module__.startswith("cupy"):
            return require_cupy()
    return np


def device_of(array: Any) -> str:
    """'cuda' for a CuPy array, 'cpu' otherwise."""
    return "cuda" if type(array).__module__.startswith("cupy") else "cpu"


def normalize_device(device: Any) -> str:
    """Accept 'cpu', 'cuda', 'cuda:0' (one GPU is supported) and return 'cpu' or 'cuda'."""
    name = str(device)
    if name == "cpu" or name.startswith("cuda"):
        return "cpu" if name == "cpu" else "cuda"
    raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")


def to_device(array: Any, device: str) -> Any:
    """Move an array between host (numpy) and GPU (cupy)."""
    device = normalize_device(device)
    if device == device_of(array):
        return array
    if device == "cuda":
        return require_cuda().asarray(array)
    return require_cupy().asnumpy(array)


def get_default_dtype() -> np.dtype:
    """The dtype of new floating-point tensors (float32 unless changed), as ``torch.get_default_dtype``."""
    return _default_dtype


def set_default_dtype(dtype: Any) -> None:
    """Set the dtype used for floating-point tensors created from Python data or by factories."""
    global _default_dtype
    dt = as_dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"set_default_dtype: only floating-point dtypes are allowed, got {dt}")
    _default_dtype = dt


def as_dtype(dtype: Any) -> np.dtype:
    """Turn a dtype, a name ('float32') or a Python type into a numpy dtype."""
    if dtype is None:
        return _default_dtype
    if isinstance(dtype, str):
        if dtype not in _DTYPE_NAMES:
            raise TypeError(f"unknown dtype name {dtype!r}")
        return _DTYPE_NAMES[dtype]
    if dtype is builtins_float:
        return _default_dtype
    if dtype is builtins_int:
        return int64
    if dtype is builtins_bool:
        return bool_
    return np.dtype(dtype)


builtins_float, builtins_int, builtins_bool = (float, int, bool)


def is_floating(dtype: np.dtype) -> bool:
    return dtype.kind in "fc"


def _category(dtype: np.dtype) -> int:
    return {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}[dtype.kind]


def _scalar_category(value: Any) -> int:
    if isinstance(value, bool | np.bool_):
        return 0
    if isinstance(value, int | np.integer):
        return 1
    if isinstance(value, complex):
        return 3
    return 2


def _category_default(category: int) -> np.dtype:
    return [bool_, int64, _default_dtype, np.dtype(np.complex64)][category]


def _promote_pair(a: np.dtype, b: np.dtype) -> np.dtype:
    """Two tensor dtypes: the higher category wins as is (int64 with float16 is float16, not NumPy's
    float64); within one category the smaller type that holds both (int32 with int64 is int64)."""
    if _category(a) != _category(b):
        return a if _category(a) > _category(b) else b
    return np.promote_types(a, b)


def result_type(*operands: Any) -> np.dtype:
    """PyTorch's type promotion: dimensioned tensors outrank 0-d tensors, which outrank Python scalars,
    unless a lower-priority operand is of a higher category (bool < int < float < complex).

    ``operands`` are arrays (with ``.ndim`` and ``.dtype``) or Python scalars. A Python float never
    turns float32 into float64; a float scalar with an int tensor gives the default float dtype.
    """
    dims = [o.dtype for o in operands if hasattr(o, "dtype") and o.ndim > 0]
    zero_d = [o.dtype for o in operands if hasattr(o, "dtype") and o.ndim == 0]
    scalars = [o for o in operands if not hasattr(o, "dtype")]
    result = None
    for group in (dims, zero_d):
        if not group:
            continue
        promoted = group[0]
        for d in group[1:]:
            promoted = _promote_pair(promoted, d)
        if result is None:
            result = promoted
        elif _category(promoted) > _category(result):
            result = promoted if _category(promoted) > _category(result) else result
    if scalars:
        category = max(_scalar_category(s) for s in scalars)
        if result is None or category > _category(result):
            result = _category_default(category)
    return result if result is not None else _default_dtype


def asarray(data: Any, dtype: Any = None, device: Any = None) -> Any:
    """An array from Python data or an array, with PyTorch's dtype inference: Python floats take the
    default dtype, ints int64, bools bool; arrays keep their dtype unless one is given."""
    target = None if dtype is None else as_dtype(dtype)
    if isinstance(data, np.generic):
        data = np.asarray(data)  # a NumPy scalar keeps its dtype (np.float64 gives float64), as in PyTorch
    if isinstance(data, np.ndarray) or device_of(data) == "cuda":
        array = data if target is None or data.dtype == target else data.astype(target)
    else:
        array = np.asarray(data)
        if target is not None:
            array = array.astype(target, copy=False)
        elif array.dtype.kind == "f":
            array = array.astype(_default_dtype, copy=False)
        elif array.dtype.kind in "iu":
            array = array.astype(int64, copy=False)
        elif array.dtype.kind not in "bc":
            raise TypeError(f"tensor: cannot make a tensor from data of type {type(data).__name__}")
    return array if device is None else to_device(array, device)
