"""Tensors on disk in the safetensors format (Hugging Face): an 8-byte little-endian header length
N, N bytes of JSON (``{"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
"__metadata__": {str: str}}``), then the raw little-endian data. Unlike a pickle, loading executes no
code, and the file can be memory-mapped and read by PyTorch, JAX or NumPy alike.

Writes are atomic: the data goes to a temporary file in the destination's directory, which is
flushed and fsync'ed and then renamed over the destination (``os.replace``, atomic on POSIX and
Windows). A crash or an error mid-write leaves the previous file intact and no partial file behind.
Loads check the whole file (size, header JSON, every entry's dtype, shape and byte range) before any
tensor is built, and raise ``CheckpointError`` naming the file and the problem.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import numpy as np

from deepnum import backend
from deepnum.tensor import Tensor

# safetensors dtype codes and NumPy dtypes (those NumPy has; bfloat16 and float8 are not NumPy types)
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_), "U8": np.dtype(np.uint8), "I8": np.dtype(np.int8), "U16": np.dtype(np.uint16),
    "I16": np.dtype(np.int16), "U32": np.dtype(np.uint32), "I32": np.dtype(np.int32), "U64": np.dtype(np.uint64),
    "I64": np.dtype(np.int64), "F16": np.dtype(np.float16), "F32": np.dtype(np.float32),
    "F64": np.dtype(np.float64), "C64": np.dtype(np.complex64),
}
_SAVABLE = set(DTYPES.values())
_MAX_HEADER = 100_000_000  # the limit the safetensors library itself enforces


class CheckpointError(RuntimeError):
    """A file that cannot be loaded (missing, truncated, not safetensors, not matching the model);
    the message names the file and the problem. Raised before anything is modified."""


def require_safetensors() -> ModuleType:
    """The ``safetensors.numpy`` module, or an error naming the command that installs it."""
    try:
        import safetensors.numpy as st_numpy
    except ImportError as exc:
        raise ImportError("deepnum.io needs the safetensors package: pip install safetensors "
                          "(or pip install 'deepnum[io]')") from exc
    return st_numpy


# ----------------------------------------------------------------- writing
def host_array(value: Any, key: str) -> np.ndarray:
    """A C-contiguous host array of a Tensor or array: safetensors' NumPy writer copies raw memory
    (pointer and byte count), so a strided view such as ``x.T`` must be made contiguous first."""
    if isinstance(value, Tensor):
        array = backend.to_device(value.detach().data, "cpu")
    elif isinstance(value, np.ndarray | np.generic) or hasattr(value, "__array__"):
        array = backend.to_device(value, "cpu") if backend.device_of(value) == "cuda" else np.asarray(value)
    else:
        raise TypeError(f"save: the value of {key!r} is a {type(value).__name__}; only Tensors and arrays can be "
                        "saved as tensors (put other data in `metadata`)")
    array = contiguous(array)
    if array.dtype.newbyteorder("=") not in _SAVABLE:
        raise TypeError(f"save: {key!r} has dtype {array.dtype}, which safetensors cannot store (supported: "
                        f"{', '.join(sorted(str(d) for d in _SAVABLE))})")
    return array


def contiguous(array: np.ndarray) -> np.ndarray:
    """``array`` itself when C-contiguous, else a C-contiguous copy (``np.ascontiguousarray``, which would
    also turn a 0-d array into shape (1,), is only applied to arrays of 1 or more dimensions)."""
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)


def to_arrays(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Check the keys and convert every value to a contiguous host array (before any file is touched)."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"save: expected a dict of name -> Tensor, got {type(state_dict).__name__}")
    arrays = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"save: keys must be strings, got {key!r} ({type(key).__name__})")
        if key == "__metadata__":
            raise ValueError("save: '__metadata__' is reserved by the safetensors format; pass metadata=... instead")
        arrays[key] = host_array(value, key)
    return arrays


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise TypeError(f"save: metadata must be a dict of str -> str, got {type(metadata).__name__}")
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"save: metadata must map str to str, got {k!r}: {v!r} ({type(v).__name__}); "
                            "encode other values yourself, e.g. with json.dumps")
    return dict(metadata)


def _write_file(arrays: dict[str, np.ndarray], path: str, metadata: dict[str, str] | None) -> None:
    """Serialize into ``path`` (the temporary file of ``atomic_write``)."""
    require_safetensors().save_file(arrays, path, metadata=metadata)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` on a new temporary file next to ``path``, fsync it, then rename it over
    ``path``. On any failure the temporary file is removed and an existing ``path`` is untouched."""
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save {target}: the directory {directory} does not exist")
    if os.path.isdir(target):
        raise IsADirectoryError(f"cannot save {target}: it is a directory")
    tmp = os.path.join(directory, f".{os.path.basename(target)}.{secrets.token_hex(6)}.tmp")
    # O_EXCL: never reuse someone else's file; mode 0o666 minus the umask, as an ordinary open() would give
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    mode = os.stat(tmp).st_mode & 0o777
    try:
        write(tmp)
        os.chmod(tmp, mode)  # the writer may recreate the file privately (safetensors makes it 0600)
        with open(tmp, "rb+") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def save(state_dict: Mapping[str, Any], path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> None:
    """Write a dict of name → Tensor (e.g. ``model.state_dict()``) to a safetensors file, atomically.
    ``metadata`` is an optional dict of str → str stored in the header (``read_metadata`` reads it).
    The file loads in PyTorch with ``safetensors.torch.load_file``."""
    arrays = to_arrays(state_dict)
    meta = check_metadata(metadata)
    require_safetensors()
    atomic_write(path, lambda tmp: _write_file(arrays, tmp, meta))


# ----------------------------------------------------------------- reading
def _fail(path: str, problem: str) -> CheckpointError:
    return CheckpointError(f"cannot load {path}: {problem}")


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """Check that ``path`` is a complete safetensors file and return its header (``__metadata__``
    included). Reads only the header; every tensor's byte range is checked against the file size."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise _fail(name, "no such file")
    if os.path.isdir(name):
        raise _fail(name, "it is a directory, not a safetensors file")
    size = os.path.getsize(name)
    if size == 0:
        raise _fail(name, "the file is empty (0 bytes)")
    if size < 8:
        raise _fail(name, f"the file has only {size} bytes, too few for a safetensors header")
    with open(name, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        if n < 2 or n > _MAX_HEADER or n > size - 8:
            kind = "truncated, or not a safetensors file" if n <= _MAX_HEADER else "not a safetensors file"
            raise _fail(name, f"{kind}: the first 8 bytes give a header of {n} bytes, but the file has {size} "
                              "bytes in all")
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(name, f"not a safetensors file, or a damaged one: its header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise _fail(name, f"not a safetensors file: the header is a JSON {type(header).__name__}, not an object")
    _check_entries(name, header, size - 8 - n)
    return header


def _check_entries(name: str, header: dict[str, Any], data_size: int) -> None:
    """Every entry has a known dtype, a shape and a byte range of the right length inside the data,
    and the data section ends where the last tensor does (no missing or trailing bytes)."""
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise _fail(name, "the header's __metadata__ is not a map of strings to strings")
    end_max = 0
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
            raise _fail(name, f"header entry {key!r} lacks dtype/shape/data_offsets: {entry!r}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPES:
            raise _fail(name, f"tensor {key!r} has dtype {dtype!r}, which NumPy cannot hold (known: "
                              f"{', '.join(DTYPES)})")
        if not (isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)):
            raise _fail(name, f"tensor {key!r} has an invalid shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            raise _fail(name, f"tensor {key!r} has invalid data_offsets {offsets!r}")
        expected = math.prod(shape) * DTYPES[dtype].itemsize
        if offsets[1] - offsets[0] != expected:
            raise _fail(name, f"tensor {key!r} of shape {tuple(shape)} and dtype {dtype} needs {expected} bytes, "
                              f"the header gives it {offsets[1] - offsets[0]}")
        if offsets[1] > data_size:
            raise _fail(name, f"truncated: tensor {key!r} ends at byte {offsets[1]} of the data, which has only "
                              f"{data_size} bytes")
        end_max = max(end_max, offsets[1])
    if end_max != data_size:
        raise _fail(name, f"the data section has {data_size} bytes but the tensors cover {end_max} "
                          "(damaged file, or extra bytes appended)")


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata`` dict a file was saved with (empty if none), after checking the file."""
    return dict(read_header(path).get("__metadata__", {}))


def load_arrays(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The checked file's tensors as writable host arrays, and its metadata."""
    name = os.fspath(path)
    header = read_header(name)
    st_numpy = require_safetensors()
    try:
        arrays = st_numpy.load_file(name)
    except Exception as exc:  # the file changed since the check, or a case the check does not know
        raise _fail(name, f"safetensors could not read it: {exc}") from exc
    arrays = {k: v if v.flags.writeable else v.copy() for k, v in arrays.items()}
    if set(arrays) != set(header) - {"__metadata__"}:
        raise _fail(name, "the file changed while it was being read")
    return arrays, dict(header.get("__metadata__", {}))


def load(path: str | os.PathLike, device: Any = None) -> dict[str, Tensor]:
    """Read a safetensors file into a dict of name → Tensor (on ``device``, the host by default), e.g.
    for ``model.load_state_dict(deepnum.load(path))``. Works on files written by PyTorch too, as long as
    their dtypes exist in NumPy (not bfloat16)."""
    arrays, _ = load_arrays(path)
    dev = None if device is None else backend.normalize_device(device)
    return {k: Tensor._make(v if dev is None else backend.to_device(v, dev)) for k, v in arrays.items()}
