"""A CPU stand-in for the ``cupy`` module, to run deepnum's GPU code path where no GPU exists.

``fake_cupy.ndarray`` wraps a NumPy array; its class reports ``__module__ == "cupy"``, so
``deepnum.backend.get_array_module`` dispatches to this module exactly as it would to CuPy. Every
function and method delegates to NumPy and wraps the result again (reductions return 0-d arrays, as
CuPy's do). What the fake is for is what it refuses, as real CuPy does:

- implicit conversion to NumPy (``np.asarray(a)``, ``np.array(a)``, filling a host array with device
  values) raises ``TypeError``; ``a.get()`` / ``cupy.asnumpy(a)`` are the explicit ways;
- host arrays as operands of device ops (``cupy_a + numpy_b``) raise ``TypeError``;
- ``np.<function>(device_array)`` raises ``TypeError``. Real CuPy is more lenient here: through
  ``__array_function__`` / ``__array_ufunc__`` it forwards ``np.f`` to ``cupy.f`` where that exists.
  The fake is strict on purpose, so deepnum never relies on that forwarding (which fails for functions
  CuPy lacks or NumPy-only arguments) and always calls ``xp.f`` from ``get_array_module``. The one
  exception is a NumPy scalar on the left of an operator (``np.float32(2) * a``), which NumPy routes
  through ``__array_ufunc__`` and which CuPy accepts;
- ndarray attributes and module functions CuPy does not have raise ``AttributeError``.

What it cannot catch: anything about CUDA itself (kernels, streams and synchronisation, device
memory limits and fragmentation, float16 speed or accuracy on a GPU, atomics' ordering in
``scatter_add``, NCCL). Its arithmetic is NumPy's, so results match the CPU bit for bit, which a GPU
would not (different BLAS and reduction orders).
"""
from __future__ import annotations

import sys
import types
import weakref
from typing import Any

import numpy as np

_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a "
             "NumPy array explicitly.")
_LIVE: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _unwrap(x: Any, host_ok: bool = False) -> Any:
    """Device arrays to their NumPy data; a host array (outside indices) is refused as CuPy does."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        if host_ok:
            return x
        raise TypeError(f"Unsupported type {type(x)}")
    if isinstance(x, list | tuple):
        return type(x)(_unwrap(v, host_ok) for v in x)
    return x


def _wrap(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return ndarray(x)
    if isinstance(x, np.generic):
        return ndarray(np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _call(func: Any, args: tuple, kwargs: dict, host_ok: bool = False) -> Any:
    out = kwargs.get("out")
    result = func(*_unwrap(args, host_ok), **{k: _unwrap(v, host_ok) for k, v in kwargs.items()})
    if out is not None and not isinstance(out, tuple):
        return out
    return _wrap(result)


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


_METHODS = _names(
    "all any argmax argmin argpartition argsort astype clip conj conjugate copy cumprod cumsum diagonal dot "
    "fill flatten max mean min nonzero partition prod ptp put ravel repeat reshape round sort squeeze std sum "
    "swapaxes take trace transpose var view")
_ATTRS = _names("dtype shape ndim size strides itemsize nbytes flags")
_WRAPPED_ATTRS = _names("T mT real imag base")


class ndarray:  # noqa: N801 (CuPy's name)
    """A device array of the simulation: NumPy data behind CuPy's interface."""

    __slots__ = ("_a", "__weakref__")

    def __init__(self, array: np.ndarray) -> None:
        self._a = array
        if array.base is None:
            _LIVE[id(self)] = self

    # ------------------------------------------------------------ the refusals
    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(_IMPLICIT)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        raise TypeError(f"numpy.{func.__name__} was called on a cupy array (fake CuPy is strict): use "
                        f"xp = get_array_module(...) and xp.{func.__name__}")

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        scalar_operator = (method == "__call__" and not kwargs and len(inputs) == 2
                           and any(isinstance(i, np.generic) for i in inputs))
        if not scalar_operator:
            raise TypeError(f"numpy.{ufunc.__name__} was called on a cupy array (fake CuPy is strict): use "
                            f"xp = get_array_module(...) and xp.{ufunc.__name__}")
        return _call(ufunc, inputs, {})

    # ------------------------------------------------------------ explicit transfer and scalars
    def get(self) -> np.ndarray:
        return self._a.copy()

    def item(self) -> Any:
        return self._a.item()

    def tolist(self) -> Any:
        return self._a.tolist()

    def tobytes(self) -> bytes:
        return self._a.tobytes()

    def __bool__(self) -> bool:
        return bool(self._a)

    def __float__(self) -> float:
        return float(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __index__(self) -> int:
        return self._a.__index__()

    def __complex__(self) -> complex:
        return complex(self._a)

    # ------------------------------------------------------------ attributes and methods
    def __getattr__(self, name: str) -> Any:
        if name in _ATTRS:
            return getattr(self._a, name)
        if name in _WRAPPED_ATTRS:
            return _wrap(getattr(self._a, name))
        if name in _METHODS:
            method = getattr(self._a, name)
            return lambda *args, **kwargs: _call(method, args, kwargs)
        raise AttributeError(f"'cupy.ndarray' object has no attribute '{name}'")

    @property
    def device(self) -> Any:
        return cuda.Device(0)

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Any:
        return (_wrap(v) for v in self._a)

    def __repr__(self) -> str:
        return f"fake_cupy.{self._a!r}"

    def __getitem__(self, index: Any) -> Any:
        return _wrap(self._a[_unwrap(index, host_ok=True)])

    def __setitem__(self, index: Any, value: Any) -> None:
        self._a[_unwrap(index, host_ok=True)] = _unwrap(value, host_ok=True)

    def __copy__(self) -> ndarray:
        return ndarray(self._a.copy())


def _binary(op: str, reflected: bool = False, inplace: bool = False) -> Any:
    def method(self: ndarray, other: Any) -> Any:
        other_data = _unwrap(other)
        if inplace:
            getattr(self._a, f"__i{op}__")(other_data)
            return self
        result = getattr(self._a, f"__{'r' if reflected else ''}{op}__")(other_data)
        return NotImplemented if result is NotImplemented else _wrap(result)
    return method


for _op in _names("add sub mul truediv floordiv mod pow matmul and or xor lshift rshift"):
    setattr(ndarray, f"__{_op}__", _binary(_op))
    setattr(ndarray, f"__r{_op}__", _binary(_op, reflected=True))
    setattr(ndarray, f"__i{_op}__", _binary(_op, inplace=True))
for _op in _names("lt le eq ne gt ge"):
    setattr(ndarray, f"__{_op}__", _binary(_op))
for _op in _names("neg pos abs invert"):
    setattr(ndarray, f"__{_op}__", (lambda name: lambda self: _wrap(getattr(self._a, name)()))(f"__{_op}__"))
ndarray.__hash__ = None  # type: ignore[assignment]
ndarray.__module__ = "cupy"


class ufunc:  # noqa: N801
    """A NumPy ufunc on device arrays, with CuPy's methods (``at``, ``reduce``, ``outer``...)."""

    def __init__(self, np_ufunc: np.ufunc) -> None:
        self._u = np_ufunc
        self.__name__ = np_ufunc.__name__
        self.nin, self.nout = np_ufunc.nin, np_ufunc.nout

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _call(self._u, args, kwargs)

    def at(self, a: ndarray, indices: Any, b: Any = None) -> None:
        args = (indices,) if b is None else (indices, _unwrap(b))
        self._u.at(_unwrap(a), _unwrap(args[0], host_ok=True), *args[1:])

    def reduce(self, *args: Any, **kwargs: Any) -> Any:
        return _call(self._u.reduce, args, kwargs)

    def accumulate(self, *args: Any, **kwargs: Any) -> Any:
        return _call(self._u.accumulate, args, kwargs)

    def reduceat(self, *args: Any, **kwargs: Any) -> Any:
        return _call(self._u.reduceat, args, kwargs)

    def outer(self, *args: Any, **kwargs: Any) -> Any:
        return _call(self._u.outer, args, kwargs)


ufunc.__module__ = "cupy"

# The names of NumPy's namespace that CuPy also has (a subset of CuPy's API: what deepnum could use).
_FUNCTIONS = _names("""
    all allclose amax amin any arange argmax argmin argsort argwhere around array_equal atleast_1d
    atleast_2d broadcast_arrays broadcast_to ceil clip concatenate copy copyto count_nonzero cumprod cumsum
    diag diagonal diff dot einsum empty empty_like expand_dims eye flip floor full full_like identity
    indices inner isclose linspace logspace matmul max mean meshgrid min moveaxis nanmax nanmin nansum
    nonzero ones ones_like outer pad prod ptp put_along_axis ravel repeat reshape roll rollaxis round
    searchsorted sort split squeeze stack std sum swapaxes take take_along_axis tensordot tile trace
    transpose tri tril triu unique var vstack hstack where zeros zeros_like result_type can_cast
    array_split unravel_index ravel_multi_index histogram bincount cross kron partition argpartition
    tril_indices triu_indices shape ndim size isneginf isposinf nan_to_num flatnonzero lexsort average median
    percentile quantile column_stack dstack asfortranarray select
""")
_PASSTHROUGH = _names("""
    dtype finfo iinfo float16 float32 float64 int8 int16 int32 int64 uint8 uint16 uint32 uint64 bool_
    complex64 complex128 intp generic number integer floating inf nan pi e newaxis promote_types
    issubdtype
""")


def asarray(a: Any, dtype: Any = None, order: Any = None) -> ndarray:
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == np.dtype(dtype) else ndarray(a._a.astype(dtype))
    return ndarray(np.array(a, dtype=dtype, order=order or "K"))


def array(a: Any, dtype: Any = None, copy: bool = True, order: Any = "K", ndmin: int = 0) -> ndarray:
    data = _unwrap(a, host_ok=True)
    return ndarray(np.array(data, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def ascontiguousarray(a: Any, dtype: Any = None) -> ndarray:
    return ndarray(np.ascontiguousarray(_unwrap(a), dtype=dtype))


def asnumpy(a: Any) -> np.ndarray:
    return a.get() if isinstance(a, ndarray) else np.asarray(a)


def get_array_module(*args: Any) -> types.ModuleType:
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else np


class _MemoryPool:
    """``cupy.get_default_memory_pool()``: here the bytes of the live device arrays that own their data."""

    def used_bytes(self) -> int:
        return sum(a._a.nbytes for a in list(_LIVE.values()))

    def total_bytes(self) -> int:
        return self.used_bytes()

    def free_all_blocks(self) -> None:
        return None


_POOL = _MemoryPool()


def get_default_memory_pool() -> _MemoryPool:
    return _POOL


class _Device:
    def __init__(self, device: int | None = None) -> None:
        self.id = 0 if device is None else int(device)
        if self.id != 0:
            raise cuda.runtime.CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")

    def synchronize(self) -> None:
        return None

    def use(self) -> None:
        return None

    def __enter__(self) -> _Device:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    compute_capability = "00"


class _CUDARuntimeError(RuntimeError):
    pass


cuda = types.SimpleNamespace(
    Device=_Device,
    runtime=types.SimpleNamespace(
        getDeviceCount=lambda: 1, getDevice=lambda: 0, deviceSynchronize=lambda: None,
        getDeviceProperties=lambda i: {"name": b"fake CuPy (NumPy on the CPU)", "totalGlobalMem": 0},
        CUDARuntimeError=_CUDARuntimeError),
    get_device_id=lambda: 0,
)
lib = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(
    as_strided=lambda x, shape=None, strides=None: ndarray(
        np.lib.stride_tricks.as_strided(_unwrap(x), shape=shape, strides=strides)),
    sliding_window_view=lambda *a, **k: _call(np.lib.stride_tricks.sliding_window_view, a, k)))
linalg = types.SimpleNamespace(**{name: (lambda f: lambda *a, **k: _call(f, a, k))(getattr(np.linalg, name))
                                  for name in ("norm", "inv", "solve", "det", "qr", "svd", "eigh", "cholesky")})
random = types.SimpleNamespace(
    default_rng=lambda seed=None: _FakeRandom(seed))


class _FakeRandom:
    """``cupy.random.default_rng``: NumPy's generator, results on the device."""

    def __init__(self, seed: Any) -> None:
        self._g = np.random.default_rng(seed)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._g, name)
        return lambda *args, **kwargs: _call(method, args, kwargs)


def __getattr__(name: str) -> Any:
    if name in _PASSTHROUGH:
        return getattr(np, name)
    target = getattr(np, name, None)
    if isinstance(target, np.ufunc):
        return ufunc(target)
    if name in _FUNCTIONS:
        return lambda *args, **kwargs: _call(target, args, kwargs)
    raise AttributeError(f"module 'cupy' has no attribute '{name}'")


def scatter_add(a: ndarray, slices: Any, value: Any) -> None:
    """``cupyx.scatter_add``: NumPy's ``add.at``."""
    np.add.at(_unwrap(a), _unwrap(slices, host_ok=True), _unwrap(value))


cupyx = types.ModuleType("cupyx")
cupyx.scatter_add = scatter_add
cupyx.scatter_max = lambda a, s, v: np.maximum.at(_unwrap(a), _unwrap(s, host_ok=True), _unwrap(v))
cupyx.scatter_min = lambda a, s, v: np.minimum.at(_unwrap(a), _unwrap(s, host_ok=True), _unwrap(v))
IS_FAKE = True
