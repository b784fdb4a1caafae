"""The restricted unpickler behind ``deepnum.io.load_torch``: it reads the pickle inside a ``torch.save``
file without torch and without running code from the file.

A pickle is a small program: ``GLOBAL module name`` looks up any importable object and ``REDUCE`` calls
it, so ``pickle.load`` of an untrusted file can run ``os.system`` (Python docs, "pickle — Restricting
Globals"). A state dict needs only a handful of globals (PyTorch's ``torch/serialization.py`` and
``torch/_utils.py`` write them): ``collections.OrderedDict``, the tensor rebuilders
``torch._utils._rebuild_tensor_v2``/``_v3``/``_rebuild_tensor`` and ``_rebuild_parameter(_with_state)``,
the storage classes (``torch.FloatStorage`` ..., ``torch.storage.UntypedStorage``), which appear only
inside persistent ids ``('storage', type, key, location, numel)`` naming a record ``data/<key>``,
torch dtypes and ``torch.Size``. Here each of those names maps to a harmless stand-in (a rebuilder
returns a ``TensorRef`` description, checked against its storage's bounds); every other global is
refused. ``scan_globals`` lists the globals of the whole pickle before anything is unpickled, so a
refusal names all of them; ``find_class`` refuses again whatever the scan could not resolve.
"""
from __future__ import annotations

import _compat_pickle
import io
import math
import pickle
import pickletools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from deepnum.io.safetensors import CheckpointError

BFLOAT16 = "bfloat16"  # not a NumPy dtype: read as uint16, widened to float32 (its upper half)
_DTYPES: dict[str, Any] = {
    "float16": np.float16, "half": np.float16, "float32": np.float32, "float": np.float32,
    "float64": np.float64, "double": np.float64, "bfloat16": BFLOAT16, "int8": np.int8, "int16": np.int16,
    "short": np.int16, "int32": np.int32, "int": np.int32, "int64": np.int64, "long": np.int64,
    "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64, "bool": np.bool_,
    "complex64": np.complex64, "cfloat": np.complex64, "complex128": np.complex128, "cdouble": np.complex128,
}
# dtypes NumPy cannot hold: named, so that a tensor of one is refused with its dtype, not as an unknown global
_UNSUPPORTED = ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu",
                "complex32", "chalf")
STORAGE_TYPES: dict[str, Any] = {
    "HalfStorage": np.float16, "FloatStorage": np.float32, "DoubleStorage": np.float64,
    "BFloat16Storage": BFLOAT16, "CharStorage": np.int8, "ShortStorage": np.int16, "IntStorage": np.int32,
    "LongStorage": np.int64, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
    "ComplexFloatStorage": np.complex64, "ComplexDoubleStorage": np.complex128,
}

MAX_EXPANSION_BYTES = 2**30  # an expanded (zero-stride) view is copied when read: cap what it may grow to


class UnsafeCheckpointError(CheckpointError):
    """A pickle that references globals a tensor state dict never needs (``os.system``, ``builtins.eval``,
    a custom class ...). ``refused`` lists them; nothing from the file was run."""

    def __init__(self, message: str, refused: list[str]) -> None:
        super().__init__(message)
        self.refused = refused


class Marker:
    """A torch dtype or storage class as it appears in the pickle: a name and the NumPy dtype it holds."""
    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: Any) -> None:
        self.name, self.dtype = name, dtype

    def __repr__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Marker) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


class Storage:
    """One storage record (``data/<key>``): its element dtype, element count and, once read, its bytes."""
    __slots__ = ("key", "dtype", "numel", "data")

    def __init__(self, key: str, dtype: Any, numel: int) -> None:
        self.key, self.dtype, self.numel, self.data = key, dtype, numel, None

    @property
    def itemsize(self) -> int:
        return 2 if self.dtype is BFLOAT16 else np.dtype(self.dtype).itemsize


class TensorRef:
    """A tensor described by the pickle: a view (offset, size, stride in elements) of a storage."""
    __slots__ = ("storage", "offset", "size", "stride", "dtype")

    def __init__(self, storage: Storage, offset: int, size: tuple, stride: tuple, dtype: Any) -> None:
        self.storage, self.offset, self.size, self.stride, self.dtype = storage, offset, size, stride, dtype


class _Call:
    """An allowed callable; slotted, so that a pickle's BUILD cannot set attributes on it."""
    __slots__ = ("name", "fn")

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        self.name, self.fn = name, fn

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise pickle.UnpicklingError(f"a tensor's {what} is {value!r}, expected a non-negative integer")
    return value


def _ints(values: Any, what: str) -> tuple[int, ...]:
    if not isinstance(values, tuple | list):
        raise pickle.UnpicklingError(f"a tensor's {what} is a {type(values).__name__}, expected a tuple")
    return tuple(_int(v, what) for v in values)


def _tensor_ref(storage: Any, offset: Any, size: Any, stride: Any, dtype: Any = None) -> TensorRef:
    if not isinstance(storage, Storage):
        raise pickle.UnpicklingError(f"a tensor rebuilt from a {type(storage).__name__}, not from a storage record")
    size, stride, offset = _ints(size, "size"), _ints(stride, "stride"), _int(offset, "storage offset")
    if len(size) != len(stride):
        raise pickle.UnpicklingError(f"a tensor of size {size} has stride {stride} of another length")
    if dtype is None:
        dtype = storage.dtype
    elif not isinstance(dtype, Marker) or dtype.name.startswith("torch.") and dtype.name.endswith("Storage"):
        raise pickle.UnpicklingError(f"a tensor's dtype is {dtype!r}, expected a torch dtype")
    elif dtype.dtype is None:
        raise pickle.UnpicklingError(f"a tensor of dtype {dtype!r}, which NumPy has no type for; convert it in "
                                     "PyTorch first (e.g. tensor.float())")
    else:
        dtype = dtype.dtype
    itemsize = 2 if dtype is BFLOAT16 else np.dtype(dtype).itemsize
    available = storage.numel * storage.itemsize // itemsize
    extent = 0 if 0 in size else offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if extent > available:
        raise pickle.UnpicklingError(f"a tensor of size {size}, stride {stride} and offset {offset} reaches element "
                                     f"{extent} of storage {storage.key!r}, which has {available}")
    numel = math.prod(size)
    if numel > available and numel * itemsize > MAX_EXPANSION_BYTES:
        raise pickle.UnpicklingError(f"a tensor of size {size} repeats the {available} elements of storage "
                                     f"{storage.key!r} (zero strides) into more than {MAX_EXPANSION_BYTES} bytes; "
                                     "refused, as a file crafted this way would exhaust memory")
    return TensorRef(storage, offset, size, stride, dtype)


def _rebuild_v2(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False, hooks: Any = None,
                metadata: Any = None) -> TensorRef:
    return _tensor_ref(storage, offset, size, stride)


def _rebuild_v3(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any, hooks: Any, dtype: Any,
                metadata: Any = None) -> TensorRef:
    return _tensor_ref(storage, offset, size, stride, dtype)


def _rebuild_parameter(data: Any, requires_grad: Any = True, hooks: Any = None, state: Any = None) -> TensorRef:
    if not isinstance(data, TensorRef):
        raise pickle.UnpicklingError(f"a Parameter rebuilt from a {type(data).__name__}, not from a tensor")
    return data


def _allowed() -> dict[str, Any]:
    table: dict[str, Any] = {
        "collections.OrderedDict": OrderedDict,
        "torch._utils._rebuild_tensor": _Call("_rebuild_tensor", _tensor_ref),
        "torch._utils._rebuild_tensor_v2": _Call("_rebuild_tensor_v2", _rebuild_v2),
        "torch._utils._rebuild_tensor_v3": _Call("_rebuild_tensor_v3", _rebuild_v3),
        "torch._utils._rebuild_parameter": _Call("_rebuild_parameter", _rebuild_parameter),
        "torch._utils._rebuild_parameter_with_state": _Call("_rebuild_parameter_with_state", _rebuild_parameter),
        "torch.Size": _Call("Size", lambda dims=(): _ints(dims, "Size")),
    }
    for name, dtype in [*_DTYPES.items(), *((n, None) for n in _UNSUPPORTED)]:
        table[f"torch.{name}"] = Marker(f"torch.{name}", dtype)
    for name, dtype in STORAGE_TYPES.items():
        table[f"torch.{name}"] = Marker(f"torch.{name}", dtype)
    for name in ("torch.storage.UntypedStorage", "torch.UntypedStorage"):
        table[name] = Marker(name, np.uint8)
    return table


ALLOWED = _allowed()
_STRING_OPS = {"UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "STRING", "BINSTRING", "SHORT_BINSTRING"}


def _python3_name(module: str, name: str) -> str:
    """The name the Unpickler looks up for a Python 2 one (``__builtin__.exec`` -> ``builtins.exec``)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    else:
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f"{module}.{name}"


def scan_globals(payload: bytes) -> list[str]:
    """Every global the pickle names (``GLOBAL``/``INST`` operands and ``STACK_GLOBAL``s whose two strings
    can be followed), in order of appearance, found by decoding the opcodes without executing them."""
    found: list[str] = []
    recent: list[Any] = []  # what the last opcodes pushed, enough to follow STACK_GLOBAL's two strings
    memo: dict[int, Any] = {}
    try:
        for op, arg, _ in pickletools.genops(payload):
            if op.name in ("GLOBAL", "INST"):
                found.append(_python3_name(*str(arg).split(" ", 1)))
            elif op.name == "STACK_GLOBAL" and len(recent) >= 2 and all(isinstance(v, str) for v in recent[-2:]):
                found.append(f"{recent[-2]}.{recent[-1]}")
            if op.name in _STRING_OPS:
                recent.append(arg if isinstance(arg, str) else None)
            elif op.name == "MEMOIZE":
                memo[len(memo)] = recent[-1] if recent else None
            elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = recent[-1] if recent else None
            elif op.name in ("GET", "BINGET", "LONG_BINGET"):
                recent.append(memo.get(arg))
            else:
                recent.append(None)
            del recent[:-2]
    except ValueError as exc:
        raise pickle.UnpicklingError(f"not a valid pickle ({exc})") from None
    return list(dict.fromkeys(found))


def refused_globals(names: list[str]) -> list[str]:
    return [n for n in names if n not in ALLOWED]


def refusal_message(path: str, refused: list[str]) -> str:
    return (f"cannot load {path}: its pickle references {', '.join(refused)}, which a tensor checkpoint never "
            "needs; loading it could run code, so nothing from it was run. deepnum reads only tensors, "
            "containers (dict, OrderedDict, list, tuple), numbers and strings. If you trust the file, load it "
            "in PyTorch and save model.state_dict() (or use safetensors)")


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only ``ALLOWED`` globals; persistent ids ``('storage', type, key, location, numel[, view])``
    become ``Storage`` records (one per key, shared by every tensor that views it)."""

    def __init__(self, payload: bytes, path: str, storages: dict[str, Storage]) -> None:
        super().__init__(io.BytesIO(payload))
        self.path, self.storages = path, storages

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if full not in ALLOWED:
            raise UnsafeCheckpointError(refusal_message(self.path, [full]), [full])
        return ALLOWED[full]

    def persistent_load(self, pid: Any) -> Storage:
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r} (expected ('storage', type, key, location, "
                                         "numel))")
        _, kind, key, _location, numel = pid[:5]
        if len(pid) == 6 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views (torch < 0.4 checkpoints) are not supported")
        if not (isinstance(kind, Marker) and kind.name.endswith("Storage")):
            raise pickle.UnpicklingError(f"storage type {kind!r} is not a torch storage class")
        if not isinstance(key, str):
            raise pickle.UnpicklingError(f"storage key {key!r} is not a string")
        numel = _int(numel, "storage size")
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = Storage(key, kind.dtype, numel)
        elif storage.dtype != kind.dtype or storage.numel != numel:
            raise pickle.UnpicklingError(f"storage {key!r} is described twice with different types or sizes")
        return storage


def unpickle(payload: bytes, path: str, storages: dict[str, Storage]) -> Any:
    """Scan, then unpickle ``payload``; refused globals raise ``UnsafeCheckpointError`` before any opcode runs."""
    refused = refused_globals(scan_globals(payload))
    if refused:
        raise UnsafeCheckpointError(refusal_message(path, refused), refused)
    try:
        return RestrictedUnpickler(payload, path, storages).load()
    except CheckpointError:
        raise
    except Exception as exc:  # damaged pickle, wrong argument types, out-of-bounds views
        raise CheckpointError(f"cannot load {path}: its pickle is not a tensor checkpoint ({exc})") from None


def to_array(ref: TensorRef, big_endian: bool) -> np.ndarray:
    """A C-contiguous, native-order copy of the view ``ref`` describes; bfloat16 becomes float32."""
    dtype = np.dtype(np.uint16 if ref.dtype is BFLOAT16 else ref.dtype).newbyteorder(">" if big_endian else "<")
    raw = ref.storage.data
    usable = len(raw) // dtype.itemsize * dtype.itemsize
    elements = np.frombuffer(raw, dtype=dtype, count=usable // dtype.itemsize)
    if math.prod(ref.size) == 0:
        array = np.empty(ref.size, dtype=dtype)
    else:
        strides = tuple(s * dtype.itemsize for s in ref.stride)
        array = np.lib.stride_tricks.as_strided(elements[ref.offset:], ref.size, strides, writeable=False)
    array = np.array(array, dtype=dtype.newbyteorder("="), order="C")
    if ref.dtype is BFLOAT16:
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def materialise(obj: Any, convert: Callable[[TensorRef], Any]) -> Any:
    """``obj`` with every ``TensorRef`` replaced by ``convert(ref)``, through dicts, lists and tuples."""
    if isinstance(obj, TensorRef):
        return convert(obj)
    if isinstance(obj, OrderedDict):
        return OrderedDict((k, materialise(v, convert)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: materialise(v, convert) for k, v in obj.items()}
    if isinstance(obj, list):
        return [materialise(v, convert) for v in obj]
    if isinstance(obj, tuple):
        return tuple(materialise(v, convert) for v in obj)
    return obj
