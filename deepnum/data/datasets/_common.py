"""Shared pieces of the dataset loaders: the array-backed dataset, finding optional packages without
importing them, the cache directory, atomic file writes and the class-balanced split."""
from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deepnum.data.dataset import Dataset
from deepnum.tensor import Tensor

__all__ = ["ArrayDataset", "default_cache_dir"]

# The package finder, a module attribute so tests can simulate a missing package by replacing it.
find_spec = importlib.util.find_spec


def require_package(module: str, install: str, dataset: str) -> Path:
    """The directory of the installed package ``module``, found without importing it; a
    ``ModuleNotFoundError`` naming ``install`` (the exact command) when it is not installed."""
    try:
        spec = find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or (not spec.submodule_search_locations and spec.origin is None):
        raise ModuleNotFoundError(f"dataset {dataset!r} needs the package {module!r}, which is not installed; "
                                  f"install it with: {install}", name=module)
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent


def default_cache_dir() -> Path:
    """Where downloaded or derived data is kept: ``$DEEPNUM_CACHE_DIR`` if set, else
    ``$XDG_CACHE_HOME/deepnum``, else ``~/.cache/deepnum``."""
    env = os.environ.get("DEEPNUM_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "deepnum"


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temporary file in the same directory and a rename, so
    a reader never sees a half-written file (and an interrupted write leaves the old one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a cache file is readable as any other
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def stratified_split(labels: np.ndarray, train_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic class-balanced split: for every class, the first ``floor(n_c * train_fraction)``
    samples in file order go to train and the rest to test. Returns (train_idx, test_idx), each
    sorted in file order."""
    order = np.argsort(labels, kind="stable")          # grouped by class, file order inside a class
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    counts = np.diff(np.r_[starts, labels.size])
    rank = np.arange(labels.size) - np.repeat(starts, counts)  # position of each sample inside its class
    n_train = np.repeat(np.floor(counts * train_fraction).astype(np.int64), counts)
    is_train = np.empty(labels.size, dtype=bool)
    is_train[order] = rank < n_train
    return np.flatnonzero(is_train), np.flatnonzero(~is_train)


def check_split(dataset: str, split: str, splits: tuple[str, ...]) -> None:
    """A ValueError naming the valid splits when ``split`` is not one of them."""
    if split not in splits:
        raise ValueError(f"dataset {dataset!r}: unknown split {split!r}; valid splits: {', '.join(splits)}")


def readonly(array: np.ndarray) -> np.ndarray:
    """``array`` marked read-only (the cached arrays are shared by every dataset object)."""
    array.flags.writeable = False
    return array


class ArrayDataset(Dataset):
    """Samples held as two NumPy arrays: ``data`` (N, *sample_shape) and integer ``targets`` (N,).

    ``ds[i]`` is ``(x, y)``: ``x`` a float32 Tensor (a copy, so changing it never touches the
    shared arrays) passed through ``transform`` when one is given, ``y`` a 0-d int64 Tensor passed
    through ``target_transform``. Without transforms, ``__getbatch__`` gives DataLoader a whole
    batch with one fancy index per array. ``classes`` names the labels."""

    def __init__(self, data: np.ndarray, targets: np.ndarray, *, classes: list[str] | None = None,
                 transform: Callable[[Tensor], Any] | None = None,
                 target_transform: Callable[[Tensor], Any] | None = None, name: str = "") -> None:
        if data.shape[0] != targets.shape[0]:
            raise ValueError(f"{type(self).__name__}: data has {data.shape[0]} samples but targets has "
                             f"{targets.shape[0]}")
        for label, fn in (("transform", transform), ("target_transform", target_transform)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{type(self).__name__}: {label} must be callable, got {type(fn).__name__}")
        self.data = data
        self.targets = targets
        self.classes = list(classes) if classes is not None else None
        self.transform = transform
        self.target_transform = target_transform
        self.name = name or type(self).__name__

    def __len__(self) -> int:
        return self.data.shape[0]

    def _check_index(self, index: Any) -> int:
        if isinstance(index, Tensor):
            index = index.item()
        index = int(index)
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"{self.name}: index {index} is out of range for a dataset of {n} samples")
        return index % n

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        i = self._check_index(index)
        x: Any = Tensor._make(np.array(self.data[i]))
        y: Any = Tensor._make(np.array(self.targets[i]))
        if self.transform is not None:
            x = self.transform(x)
        if self.target_transform is not None:
            y = self.target_transform(y)
        return x, y

    @property
    def __getbatch__(self) -> Callable[[np.ndarray], list[Tensor]] | None:
        """The batch fast path (``[x[idx], y[idx]]``), or None when a transform must see each sample."""
        if self.transform is not None or self.target_transform is not None:
            return None
        return lambda indices: [Tensor._make(self.data[indices]), Tensor._make(self.targets[indices])]

    def __repr__(self) -> str:
        shape = tuple(self.data.shape[1:])
        return f"{self.name}(samples={len(self)}, sample_shape={shape}, classes={len(self.classes or [])})"
