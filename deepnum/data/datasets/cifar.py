"""CIFAR-10 / CIFAR-100 (Krizhevsky, 2009) from the "python version" batch files, read without
``pickle.load`` of arbitrary objects.

Each batch file is a pickle (protocol 2, written by Python 2) of a dict with ``b'data'`` a uint8
array (N, 3072) (1,024 red, then green, then blue values of a 32x32 image, row by row) and
``b'labels'`` (CIFAR-10) or ``b'fine_labels'``/``b'coarse_labels'`` (CIFAR-100) lists of ints.
Building those needs only NumPy's array reconstruction, so ``SafeUnpickler.find_class`` allows
exactly ``numpy.core.multiarray._reconstruct`` (and its NumPy 2 name ``numpy._core.multiarray``),
``numpy.core.multiarray.scalar``, ``numpy.ndarray``, ``numpy.dtype`` and, for pickles written by
Python 3 at protocol 2, ``_codecs.encode`` restricted to the latin-1 codec. Any other global (say
``os.system``) is refused with an ``UnpicklingError`` naming it, before anything is called.

Folders: CIFAR-10 ``cifar-10-batches-py`` holds ``data_batch_1``..``data_batch_5`` (train, read in
that order), ``test_batch`` and ``batches.meta`` (``label_names``); CIFAR-100 ``cifar-100-python``
holds ``train``, ``test`` and ``meta`` (``fine_label_names``, ``coarse_label_names``).
Images come out float32 (3, 32, 32) in [0, 1]; labels int64.
"""
from __future__ import annotations

import codecs
import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deepnum.data.datasets._common import ArrayDataset, check_split

__all__ = ["SafeUnpickler", "load_cifar", "load_cifar10", "load_cifar100", "read_cifar_batch", "safe_unpickle"]


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes: only the latin-1 codec."""
    try:
        codec = codecs.lookup(encoding).name
    except (LookupError, TypeError):
        codec = None
    if codec != "iso8859-1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"forbidden use of _codecs.encode with encoding {encoding!r}")
    return text.encode("latin-1", errors)


def _allowed() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray
    table = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): _latin1_encode}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(module, "_reconstruct")] = multiarray._reconstruct
        table[(module, "scalar")] = multiarray.scalar
    return table


class SafeUnpickler(pickle.Unpickler):
    """An Unpickler whose ``find_class`` resolves only the globals NumPy arrays, dtypes and
    scalars need; anything else raises ``pickle.UnpicklingError`` naming the forbidden global."""

    ALLOWED = _allowed()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"forbidden global {module}.{name} in the pickle: only NumPy array reconstruction is allowed "
                f"({', '.join(sorted(f'{m}.{n}' for m, n in self.ALLOWED))})") from None


def safe_unpickle(payload: bytes) -> Any:
    """Unpickle ``payload`` with ``SafeUnpickler`` (Python 2 strings come back as bytes)."""
    return SafeUnpickler(io.BytesIO(payload), encoding="bytes").load()


def _key(batch: dict, name: str) -> Any:
    for key in (name.encode(), name):
        if key in batch:
            return batch[key]
    raise KeyError(name)


def read_cifar_batch(path: str | Path, label_key: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 3, 32, 32) uint8, labels (N,) int64) of one batch file. ``label_key`` defaults to
    ``labels`` (CIFAR-10), else ``fine_labels`` (CIFAR-100)."""
    path = Path(path)
    batch = safe_unpickle(path.read_bytes())
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: expected a CIFAR batch (a dict), got {type(batch).__name__}")
    keys = [label_key] if label_key else ["labels", "fine_labels"]
    try:
        data = _key(batch, "data")
        labels = next(_key(batch, k) for k in keys if k in batch or k.encode() in batch)
    except (KeyError, StopIteration):
        raise ValueError(f"{path}: a CIFAR batch needs 'data' and one of {keys}; found "
                         f"{sorted(map(str, batch))}") from None
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: 'data' must be uint8 of shape (N, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{path}: {data.shape[0]} images but labels of shape {labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels


def _names(meta_path: Path, key: str) -> list[str] | None:
    if not meta_path.is_file():
        return None
    meta = safe_unpickle(meta_path.read_bytes())
    try:
        return [n.decode() if isinstance(n, bytes) else str(n) for n in _key(meta, key)]
    except (KeyError, TypeError):
        return None


def load_cifar(root: str | Path, split: str = "train", *, num_classes: int = 10, label_key: str | None = None,
               transform: Callable | None = None, target_transform: Callable | None = None) -> ArrayDataset:
    """CIFAR-10 (``num_classes=10``) or CIFAR-100 (``100``; ``label_key="coarse_labels"`` for the 20
    superclasses) from the extracted python-version folder ``root``."""
    check_split(f"cifar{num_classes}", split, ("train", "test"))
    if num_classes not in (10, 100):
        raise ValueError(f"load_cifar: num_classes must be 10 or 100, got {num_classes}")
    root = Path(root)
    if num_classes == 10:
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        meta, meta_key, label_key = root / "batches.meta", "label_names", label_key or "labels"
    else:
        files = [split]
        label_key = label_key or "fine_labels"
        meta, meta_key = root / "meta", "coarse_label_names" if label_key == "coarse_labels" else "fine_label_names"
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        folder = "cifar-10-batches-py" if num_classes == 10 else "cifar-100-python"
        raise FileNotFoundError(f"CIFAR-{num_classes}: missing {', '.join(missing)} in {root} (expected the "
                                f"extracted python version, folder {folder})")
    parts = [read_cifar_batch(root / f, label_key) for f in files]
    images = np.concatenate([p[0] for p in parts]).astype(np.float32) / np.float32(255.0)
    labels = np.concatenate([p[1] for p in parts])
    return ArrayDataset(images, labels, classes=_names(meta, meta_key), transform=transform,
                        target_transform=target_transform, name=f"CIFAR{num_classes}[{split}]")


def load_cifar10(split: str = "train", *, root: str | Path | None = None, **kw: Any) -> ArrayDataset:
    """CIFAR-10 from ``root`` (the extracted ``cifar-10-batches-py`` folder)."""
    if root is None:
        raise ValueError("dataset 'cifar10' reads files you provide: pass root=<cifar-10-batches-py folder>")
    return load_cifar(root, split, num_classes=10, **kw)


def load_cifar100(split: str = "train", *, root: str | Path | None = None, **kw: Any) -> ArrayDataset:
    """CIFAR-100 from ``root`` (the extracted ``cifar-100-python`` folder)."""
    if root is None:
        raise ValueError("dataset 'cifar100' reads files you provide: pass root=<cifar-100-python folder>")
    return load_cifar(root, split, num_classes=100, **kw)
