"""IDX files (LeCun's format of the original MNIST and Fashion-MNIST downloads), plain or ``.gz``.

Layout: a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian uint32 sizes,
then the values big-endian in C order. Type codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64. ``idx3`` image files are (N, rows, cols) uint8 and ``idx1`` label files
(N,) uint8. The reader checks the magic number, the type code, the number of dimensions when one is
expected and that the payload holds exactly the announced number of values.
"""
from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np

from deepnum.data.datasets._common import ArrayDataset, atomic_write_bytes, check_split

__all__ = ["IDXError", "load_mnist_idx", "mnist_idx_dataset", "read_idx", "write_idx"]

_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
          0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {dt.newbyteorder("=") if dt.itemsize > 1 else dt: code for code, dt in _TYPES.items()}
# The file names of the MNIST / Fashion-MNIST downloads, per split.
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


class IDXError(ValueError):
    """A file that is not a valid IDX file (or not the kind that was expected)."""


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        head = f.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as exc:
        raise IDXError(f"{path}: cannot decompress the gzip stream ({exc})") from exc


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """The array stored in an IDX file (gzip-compressed or not: detected from its first bytes), in
    native byte order. ``ndim`` (e.g. 3 for idx3 images, 1 for idx1 labels) is checked when given."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise IDXError(f"{path}: not an IDX file (the magic number must start with two zero bytes, got "
                       f"{raw[:4].hex() or 'an empty file'})")
    code, dims = raw[2], raw[3]
    if code not in _TYPES:
        raise IDXError(f"{path}: unknown IDX type code 0x{code:02X} (valid: "
                       f"{', '.join(f'0x{c:02X}' for c in _TYPES)})")
    if ndim is not None and dims != ndim:
        raise IDXError(f"{path}: expected an idx{ndim} file ({ndim} dimensions), got {dims} dimensions")
    header = 4 + 4 * dims
    if len(raw) < header:
        raise IDXError(f"{path}: truncated header: {dims} dimensions need {header} bytes, the file has {len(raw)}")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=dims, offset=4))
    dtype = _TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise IDXError(f"{path}: header announces shape {shape} of {dtype.name} ({expected} bytes of data), "
                       f"but the file holds {len(raw) - header} bytes after the header")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file (gzip-compressed when ``compress`` or, by default, when the name
    ends in ``.gz``), atomically."""
    path = Path(path)
    array = np.asarray(array)
    dtype = array.dtype.newbyteorder("=") if array.dtype.itemsize > 1 else array.dtype
    if dtype not in _CODES:
        raise TypeError(f"write_idx: IDX cannot store dtype {array.dtype}; use one of "
                        f"{', '.join(str(d) for d in _CODES)}")
    code = _CODES[dtype]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=_TYPES[code]).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    atomic_write_bytes(path, payload)


def _find(root: Path, stem: str) -> Path:
    for candidate in (root / stem, root / f"{stem}.gz", root / stem.replace("-idx", ".idx")):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no {stem} or {stem}.gz in {root}")


def mnist_idx_dataset(images_path: str | Path, labels_path: str | Path, *, transform: Callable | None = None,
                      target_transform: Callable | None = None, name: str = "IDXDataset") -> ArrayDataset:
    """Images (N, 1, H, W) float32 in [0, 1] and int64 labels from an idx3 uint8 image file and an
    idx1 label file."""
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise IDXError(f"{images_path}, {labels_path}: expected uint8 images and labels, got {images.dtype} and "
                       f"{labels.dtype}")
    if images.shape[0] != labels.shape[0]:
        raise IDXError(f"{images_path} holds {images.shape[0]} images but {labels_path} holds {labels.shape[0]} "
                       "labels")
    data = (images.astype(np.float32) / np.float32(255.0))[:, None]
    targets = labels.astype(np.int64)
    classes = [str(c) for c in range(int(targets.max(initial=-1)) + 1)]
    return ArrayDataset(data, targets, classes=classes, transform=transform, target_transform=target_transform,
                        name=name)


def load_mnist_idx(split: str = "train", *, root: str | Path | None = None, transform: Callable | None = None,
                   target_transform: Callable | None = None) -> ArrayDataset:
    """MNIST (or Fashion-MNIST, KMNIST...) from the original IDX downloads in ``root``:
    ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``, ``t10k-...`` for test."""
    check_split("mnist_idx", split, ("train", "test"))
    if root is None:
        raise ValueError("dataset 'mnist_idx' reads files you provide: pass root=<folder holding the IDX files>")
    root = Path(root)
    image_stem, label_stem = IDX_FILES[split]
    return mnist_idx_dataset(_find(root, image_stem), _find(root, label_stem), transform=transform,
                             target_transform=target_transform, name=f"MNIST-IDX[{split}]")
