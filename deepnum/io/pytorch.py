"""PyTorch checkpoint files (``.pt``/``.pth``) read and written without torch and without running code
from the file.

``load_torch(path)`` is deepnum's equivalent of ``torch.load(path, weights_only=True)``: it reads the zip
archive ``torch.save`` writes (``<name>/data.pkl``, a pickle describing the object, and
``<name>/data/<key>``, the raw bytes of each storage) and the legacy format of torch < 1.6, through a
restricted unpickler (``_torch_unpickle``) that builds only tensors, containers, numbers and strings and
refuses every other global, listing them all, before any opcode runs. It never imports torch, so the
result is the same whether torch is installed or not. ``save_torch(obj, path)`` writes the archive that
``torch.load(path, weights_only=True)`` and ``load_state_dict`` accept. ``load_torch_checkpoint(model,
path)`` loads a ``.pt``/``.pth`` or ``.safetensors`` file into a model, picking the state dict out of a
training checkpoint, and on any problem raises one error listing every missing, unexpected or mismatched
key with the model unchanged.
"""
from __future__ import annotations

import io
import os
import pickletools
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from deepnum import backend
from deepnum.io import _torch_unpickle as up
from deepnum.io._torch_write import PickleWriter, write_archive
from deepnum.io.safetensors import CheckpointError, atomic_write, load_arrays
from deepnum.tensor import Tensor

__all__ = ["UnsafeCheckpointError", "load_torch", "load_torch_checkpoint", "save_torch"]
UnsafeCheckpointError = up.UnsafeCheckpointError
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch/serialization.py: MAGIC_NUMBER of the pre-1.6 format
_LEGACY_PROTOCOL = 1001


def _fail(path: str, problem: str) -> CheckpointError:
    return CheckpointError(f"cannot load {path}: {problem}")


def _sniff(path: str) -> str:
    """'zip', 'legacy', 'safetensors' or a CheckpointError explaining what the file is not."""
    if not os.path.exists(path):
        raise _fail(path, "no such file")
    if os.path.isdir(path):
        raise _fail(path, "it is a directory, not a checkpoint file")
    with open(path, "rb") as fh:
        head = fh.read(512)
    if not head:
        raise _fail(path, "the file is empty (0 bytes)")
    if zipfile.is_zipfile(path):
        return "zip"
    if len(head) > 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < os.path.getsize(path):
        return "safetensors"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "legacy"
    if head[:4] == b"PK\x03\x04":
        raise _fail(path, "a damaged or truncated zip archive (its central directory is missing)")
    if len(head) >= 262 and head[257:262] == b"ustar":
        raise _fail(path, "a tar archive (the format of torch < 0.4): load it once with that torch and save it again "
                          "with torch.save(obj, path) in torch >= 1.6, or as safetensors")
    raise _fail(path, "not a PyTorch checkpoint: neither the zip archive torch.save writes, nor the pre-1.6 "
                      "format, nor a safetensors file")


# ----------------------------------------------------------------- reading
def _read_zip(path: str) -> tuple[Any, dict[str, up.Storage], bool]:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        if any("/code/" in n or n.endswith("/constants.pkl") for n in names):
            raise _fail(path, "a TorchScript archive (torch.jit.save), which holds code: load it with torch.jit.load "
                              "and save model.state_dict() with torch.save, or as safetensors")
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise _fail(path, f"a zip file, but not one torch.save wrote (expected one <name>/data.pkl, found "
                              f"{pickles or 'none'})")
        prefix = pickles[0][: -len("data.pkl")]
        order = archive.read(prefix + "byteorder").decode(errors="replace") if prefix + "byteorder" in names \
            else "little"
        if order not in ("little", "big"):
            raise _fail(path, f"its byteorder record says {order!r}, expected 'little' or 'big'")
        storages: dict[str, up.Storage] = {}
        obj = up.unpickle(archive.read(pickles[0]), path, storages)
        for key, storage in storages.items():
            name = f"{prefix}data/{key}"
            if name not in names:
                raise _fail(path, f"the pickle refers to storage {key!r}, but the archive has no record {name}")
            size, expected = archive.getinfo(name).file_size, storage.numel * storage.itemsize
            if size != expected:
                raise _fail(path, f"storage {key!r} should hold {expected} bytes, its record {name} has {size}")
            storage.data = archive.read(name)
    return obj, storages, order == "big"


def _next_pickle(path: str, stream: io.BytesIO, what: str, storages: dict[str, up.Storage]) -> Any:
    """Unpickle (restricted) the pickle starting at the stream's position and move past it."""
    start = stream.tell()
    try:
        for _ in pickletools.genops(stream):
            pass
    except ValueError as exc:
        raise _fail(path, f"not a PyTorch checkpoint: its {what} is not a valid pickle ({exc})") from None
    return up.unpickle(stream.getvalue()[start:stream.tell()], path, storages)


def _read_legacy(path: str) -> tuple[Any, dict[str, up.Storage], bool]:
    """torch < 1.6: pickles of the magic number, the protocol version, system info, the object and the
    storage keys, then each storage's element count (8 bytes) and data, in the order of the keys."""
    with open(path, "rb") as fh:
        stream = io.BytesIO(fh.read())
    if _next_pickle(path, stream, "header", {}) != _LEGACY_MAGIC:
        raise _fail(path, "a pickle, but not a PyTorch checkpoint (no torch.save magic number); deepnum does not "
                          "load arbitrary pickles")
    if _next_pickle(path, stream, "protocol version", {}) != _LEGACY_PROTOCOL:
        raise _fail(path, "an unknown version of the pre-1.6 PyTorch format")
    info = _next_pickle(path, stream, "system info", {})
    big = isinstance(info, dict) and info.get("little_endian") is False
    storages: dict[str, up.Storage] = {}
    obj = _next_pickle(path, stream, "object", storages)
    keys = _next_pickle(path, stream, "storage keys", {})
    if not isinstance(keys, list) or set(keys) != set(storages):
        raise _fail(path, "its list of storage keys does not match the storages the object uses")
    for key in keys:
        storage = storages[key]
        count = int.from_bytes(stream.read(8), "big" if big else "little")
        nbytes = storage.numel * storage.itemsize
        data = stream.read(nbytes)
        if count != storage.numel or len(data) != nbytes:
            raise _fail(path, f"storage {key!r} is truncated or has the wrong size")
        storage.data = data
    return obj, storages, big


def _read(path: str | os.PathLike) -> Any:
    """The file's object with every tensor as a NumPy array (bfloat16 widened to float32, with a warning)."""
    name = os.fspath(path)
    kind = _sniff(name)
    if kind == "safetensors":
        raise _fail(name, "a safetensors file: use deepnum.load(path) (load_torch_checkpoint reads both)")
    try:
        obj, _, big = _read_zip(name) if kind == "zip" else _read_legacy(name)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise _fail(name, f"damaged archive ({exc})") from None
    widened: list[tuple[int, ...]] = []

    def convert(ref: up.TensorRef) -> np.ndarray:
        if ref.dtype is up.BFLOAT16:
            widened.append(ref.size)
        return up.to_array(ref, big)

    try:
        result = up.materialise(obj, convert)
    except RecursionError:
        raise _fail(name, "its containers are nested too deeply") from None
    if widened:
        warnings.warn(f"load_torch: {name}: {len(widened)} bfloat16 tensor(s) were converted to float32 (exactly: "
                      "bfloat16 is the upper half of a float32; NumPy has no bfloat16)", stacklevel=3)
    return result


def _map_arrays(obj: Any, dev: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return Tensor._make(obj if dev is None else backend.to_device(obj, dev))
    if isinstance(obj, Mapping):
        return type(obj)((k, _map_arrays(v, dev)) for k, v in obj.items())
    if isinstance(obj, list | tuple):
        return type(obj)(_map_arrays(v, dev) for v in obj)
    return obj


def load_torch(path: str | os.PathLike, device: Any = None) -> Any:
    """Read a file written by ``torch.save`` (``.pt``/``.pth``; zip or pre-1.6 format) without torch and
    without running code from it: what ``torch.load(path, weights_only=True)`` returns, with deepnum
    Tensors (on ``device``, the host by default) for torch tensors. Only tensors, dicts, OrderedDicts,
    lists, tuples, numbers, strings, torch dtypes and sizes are built; a pickle that names any other
    global (``os.system``, a custom class, NumPy scalars) raises ``UnsafeCheckpointError`` listing them
    all. bfloat16 tensors become float32 (with a warning). Damaged or unknown files raise
    ``CheckpointError`` naming the file and the problem."""
    return _map_arrays(_read(path), None if device is None else backend.normalize_device(device))


# ----------------------------------------------------------------- writing
def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` (a Module, whose ``state_dict()`` is written, or a state dict, possibly nested in
    dicts/lists with numbers and strings, e.g. ``{'model': sd, 'epoch': 3}``) as ``torch.save`` does, so
    that ``torch.load(path, weights_only=True)`` and ``load_state_dict`` accept it; torch is not needed.
    Tensors sharing one array share one storage. Atomic: the file appears complete or not at all."""
    if hasattr(obj, "state_dict") and hasattr(obj, "named_parameters"):
        obj = OrderedDict(obj.state_dict())
    writer = PickleWriter()
    writer.write(obj)
    writer.out += b"."
    payload, storages = bytes(writer.out), writer.storages

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            write_archive(fh, payload, storages)

    atomic_write(path, write)


# ----------------------------------------------------------------- into a model
def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, np.ndarray) for v in obj.values())


def select_state_dict(obj: Any, key: str | Sequence[str] | None, path: str) -> Mapping[str, np.ndarray]:
    """The state dict inside a checkpoint: ``obj[key]`` (a sequence of keys walks nested dicts), else ``obj``
    itself when it holds only tensors, else its one value that holds only tensors."""
    if key is not None:
        for part in [key] if isinstance(key, str) else list(key):
            if not isinstance(obj, Mapping) or part not in obj:
                found = sorted(map(str, obj)) if isinstance(obj, Mapping) else type(obj).__name__
                raise _fail(path, f"no entry {part!r} in the checkpoint (it has: {found})")
            obj = obj[part]
        if not isinstance(obj, Mapping):
            raise _fail(path, f"the entry {key!r} is a {type(obj).__name__}, not a state dict")
        return obj
    if not isinstance(obj, Mapping):
        raise _fail(path, f"the file holds a {type(obj).__name__}, not a state dict")
    if _is_state_dict(obj):
        return obj
    candidates = [k for k, v in obj.items() if _is_state_dict(v)]
    if len(candidates) == 1:
        return obj[candidates[0]]
    raise _fail(path, f"the file holds a dict with entries {sorted(map(str, obj))}; "
                      + (f"several hold tensors ({candidates}): " if candidates else "") +
                      "pass key=... to pick the state dict")


def _state_from_file(path: str, key: str | Sequence[str] | None) -> Mapping[str, Any]:
    if _sniff(path) == "safetensors":
        if key is not None:
            raise _fail(path, "a safetensors file holds one flat state dict; key= applies to .pt checkpoints only")
        return load_arrays(path)[0]
    return select_state_dict(_read(path), key, path)


def load_torch_checkpoint(model: Any, path: str | os.PathLike, key: str | Sequence[str] | None = None,
                          strict: bool = True, strip_prefix: str | None = None) -> Any:
    """Load a PyTorch ``.pt``/``.pth`` file (read by ``load_torch``: no code runs) or a safetensors file
    into ``model``, as ``model.load_state_dict(torch.load(path, weights_only=True))`` would.

    A training checkpoint such as ``{'state_dict': ..., 'epoch': 3}`` is searched for its one dict of
    tensors; ``key='model'`` (or ``['ema', 'model']`` for nested dicts) picks one. ``strip_prefix``
    removes a prefix from every key that has it (``'module.'`` from ``DataParallel``). Every key, shape
    and dtype is checked before anything is copied; on any problem one ``CheckpointError`` lists all
    missing and unexpected keys and mismatches, and the model is unchanged. Returns ``(missing_keys,
    unexpected_keys)`` as ``load_state_dict``."""
    name = os.fspath(path)
    state = _state_from_file(name, key)
    bad = [f"{k!r} ({type(v).__name__})" for k, v in state.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise _fail(name, f"the state dict has entries that are not tensors: {', '.join(bad)}")
    if strip_prefix:
        state = {k[len(strip_prefix):] if k.startswith(strip_prefix) else k: v for k, v in state.items()}
    tensors = {k: Tensor._make(v) for k, v in state.items()}
    try:
        return model.load_state_dict(tensors, strict=strict)
    except RuntimeError as exc:
        hint = ""
        own = set(model.state_dict())
        if state and all(k.startswith("module.") for k in state) and not own & set(state):
            hint = "\n\tevery key starts with 'module.' (saved from DataParallel): pass strip_prefix='module.'"
        raise _fail(name, f"it does not fit the {type(model).__name__} ({exc}){hint}") from None
