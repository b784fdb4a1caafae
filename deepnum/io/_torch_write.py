"""Writing the files ``torch.save`` writes, without torch: a zip archive (uncompressed entries, each
entry's data aligned to 64 bytes as PyTorch's ``PyTorchStreamWriter`` does) holding ``archive/data.pkl``,
``archive/data/<key>`` (each storage's raw little-endian bytes), ``archive/byteorder``,
``archive/.format_version``, ``archive/.storage_alignment`` and ``archive/version`` (3).

The pickle (protocol 2, as ``torch.save``) is emitted opcode by opcode here, because Python's pickler
would import torch to check the globals it writes. A tensor becomes
``torch._utils._rebuild_tensor_v2(<persistent id ('storage', torch.FloatStorage, key, 'cpu', numel)>,
0, size, stride, False, OrderedDict())``, the call ``torch.load(weights_only=True)`` accepts; a dict of
tensors becomes a ``collections.OrderedDict``, as ``Module.state_dict()`` returns.
"""
from __future__ import annotations

import struct
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from deepnum import backend
from deepnum.tensor import Tensor

STORAGE_NAMES = {
    np.dtype(np.float16): "HalfStorage", np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.int8): "CharStorage", np.dtype(np.int16): "ShortStorage", np.dtype(np.int32): "IntStorage",
    np.dtype(np.int64): "LongStorage", np.dtype(np.uint8): "ByteStorage", np.dtype(np.bool_): "BoolStorage",
}
ALIGNMENT = 64
_DATE = (1980, 1, 1, 0, 0, 0)  # a fixed timestamp: the same state gives the same bytes


class PickleWriter:
    """Protocol-2 opcodes for containers, scalars, strings and tensors; storages are collected in
    ``storages`` (key -> contiguous little-endian array), one per distinct array."""

    def __init__(self) -> None:
        self.out = bytearray(b"\x80\x02")
        self.storages: dict[str, np.ndarray] = {}
        self._keys: dict[int, str] = {}
        self._keep: list[Any] = []  # keeps the arrays alive so their ids stay unique

    def _global(self, module: str, name: str) -> None:
        self.out += b"c" + f"{module}\n{name}\n".encode()

    def _str(self, text: str) -> None:
        data = text.encode("utf-8")
        self.out += b"X" + struct.pack("<I", len(data)) + data

    def _int(self, value: int) -> None:
        if 0 <= value < 256:
            self.out += b"K" + bytes([value])
        elif 0 <= value < 65536:
            self.out += b"M" + struct.pack("<H", value)
        elif -2**31 <= value < 2**31:
            self.out += b"J" + struct.pack("<i", value)
        else:
            data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
            if len(data) > 255:
                raise ValueError(f"save_torch: the integer {value} is too large to store")
            self.out += b"\x8a" + bytes([len(data)]) + data

    def _tuple(self, items: tuple | list) -> None:
        self.out += b"("
        for item in items:
            self.write(item)
        self.out += b"t"

    def _empty_ordered_dict(self) -> None:
        self._global("collections", "OrderedDict")
        self.out += b")R"

    def _mapping(self, mapping: Mapping, ordered: bool) -> None:
        if ordered:
            self._empty_ordered_dict()
        else:
            self.out += b"}"
        for key, value in mapping.items():
            if not isinstance(key, str | int) or isinstance(key, bool):
                raise TypeError(f"save_torch: dictionary keys must be strings or integers, got {key!r}")
            self.out += b"("
            self.write(key)
            self.write(value)
            self.out += b"u"

    def _tensor(self, array: np.ndarray) -> None:
        dtype = array.dtype.newbyteorder("=")
        if dtype not in STORAGE_NAMES:
            raise TypeError(f"save_torch: dtype {array.dtype} cannot be written (supported: "
                            f"{', '.join(sorted(str(d) for d in STORAGE_NAMES))})")
        key = self._keys.get(id(array))
        if key is None:
            key = self._keys[id(array)] = str(len(self.storages))
            self._keep.append(array)
            self.storages[key] = np.ascontiguousarray(array, dtype=dtype.newbyteorder("<")).reshape(-1)
        self._global("torch._utils", "_rebuild_tensor_v2")
        self.out += b"(("
        self._str("storage")
        self._global("torch", STORAGE_NAMES[dtype])
        self._str(key)
        self._str("cpu")
        self._int(array.size)
        self.out += b"tQ"
        self._int(0)
        self._tuple(array.shape)
        self._tuple(contiguous_strides(array.shape))
        self.out += b"\x89"
        self._empty_ordered_dict()
        self.out += b"tR"

    def write(self, obj: Any) -> None:
        if isinstance(obj, Tensor):
            self._tensor(backend.to_device(obj.detach().data, "cpu"))
        elif isinstance(obj, np.ndarray):
            self._tensor(obj)
        elif obj is None:
            self.out += b"N"
        elif isinstance(obj, bool | np.bool_):
            self.out += b"\x88" if obj else b"\x89"
        elif isinstance(obj, int | np.integer):
            self._int(int(obj))
        elif isinstance(obj, float | np.floating):
            self.out += b"G" + struct.pack(">d", float(obj))
        elif isinstance(obj, str):
            self._str(obj)
        elif isinstance(obj, Mapping):
            self._mapping(obj, ordered=type(obj) is not dict)
        elif isinstance(obj, tuple):
            self._tuple(obj)
        elif isinstance(obj, list):
            self.out += b"]("
            for item in obj:
                self.write(item)
            self.out += b"e"
        else:
            raise TypeError(f"save_torch: cannot write a {type(obj).__name__}; only Tensors, arrays, dicts, lists, "
                            "tuples, strings, numbers, booleans and None")


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major strides in elements, as PyTorch computes them (an empty dimension counts as 1)."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def _aligned_info(name: str, size: int, position: int) -> zipfile.ZipInfo:
    """A stored entry whose data starts at a multiple of ALIGNMENT: the local header's extra field
    ("FB" and a length, as PyTorch writes it) is padded to get there."""
    info = zipfile.ZipInfo(name, date_time=_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = size
    zip64 = 20 if size * 1.05 > zipfile.ZIP64_LIMIT else 0  # the extra field zipfile adds for such entries
    header = 30 + len(name.encode("utf-8")) + 4 + zip64
    pad = -(position + header) % ALIGNMENT
    info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
    return info


def write_archive(fh: Any, payload: bytes, storages: dict[str, np.ndarray], prefix: str = "archive") -> None:
    """Write the zip archive ``torch.load`` reads into the open binary file ``fh``."""
    records: list[tuple[str, Any]] = [("data.pkl", payload), (".format_version", b"1"),
                                      (".storage_alignment", str(ALIGNMENT).encode()), ("byteorder", b"little")]
    records += [(f"data/{key}", array) for key, array in storages.items()]
    records.append(("version", b"3\n"))
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in records:
            view = memoryview(data.view(np.uint8) if isinstance(data, np.ndarray) else data)
            info = _aligned_info(f"{prefix}/{name}", view.nbytes, fh.tell())
            with archive.open(info, "w") as dest:
                dest.write(view)
