"""The UCI optical-recognition handwritten digits (Alpaydin & Kaynak, 1998), as shipped inside
scikit-learn (``sklearn.datasets.load_digits``, no download): 1,797 images of 8x8 pixels with
values 0-16, ten classes.

Split (fixed, class-balanced): for each digit, the first ``floor(0.8 * n_class)`` images in the
file's order are ``train`` and the rest ``test``: 1,433 train and 364 test images. Images are
float32 (1, 8, 8) scaled to [0, 1] (divided by 16); labels int64.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from deepnum.data.datasets._common import ArrayDataset, check_split, readonly, require_package, stratified_split

__all__ = ["DIGITS_INSTALL", "load_digits"]

DIGITS_INSTALL = "pip install scikit-learn"
TRAIN_FRACTION = 0.8
_CACHE: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def digits_arrays(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 1, 8, 8) float32 in [0, 1], labels (N,) int64) of a split, read-only."""
    check_split("digits", split, ("train", "test"))
    require_package("sklearn", DIGITS_INSTALL, "digits")
    if not _CACHE:
        from sklearn.datasets import load_digits as sk_load_digits

        bunch = sk_load_digits()
        images = (np.asarray(bunch.images, dtype=np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)
        labels = np.asarray(bunch.target, dtype=np.int64)
        train_idx, test_idx = stratified_split(labels, TRAIN_FRACTION)
        for name, idx in (("train", train_idx), ("test", test_idx)):
            _CACHE[name] = (readonly(images[idx]), readonly(labels[idx]))
    return _CACHE[split]


def load_digits(split: str = "train", *, transform: Callable | None = None,
                target_transform: Callable | None = None) -> ArrayDataset:
    """The 8x8 UCI digits: 1,433 train / 364 test images, (1, 8, 8) float32 in [0, 1]."""
    images, labels = digits_arrays(split)
    return ArrayDataset(images, labels, classes=[str(d) for d in range(10)], transform=transform,
                        target_transform=target_transform, name=f"Digits[{split}]")
