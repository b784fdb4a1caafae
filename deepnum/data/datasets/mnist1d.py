"""MNIST-1D (Greydanus, "Scaling down deep learning", 2020): ten 1-D digit templates of 12 points,
each padded, translated, scaled, sheared, smoothed-noised and resampled to 40 points, then the whole
set standardised (mean 0, std 1).

Generated offline with ``mnist1d.data.make_dataset(get_dataset_args())`` (the package's defaults:
5,000 samples, seed 42); ``get_dataset`` is never called (it downloads and writes files). The split is
the package's own: the first 4,000 shuffled samples are ``train``, the last 1,000 ``test`` (about,
not exactly, 400/100 per class). Sequences are float32 (1, 40), labels int64.
``make_dataset`` reseeds the global ``random`` and ``numpy.random`` generators; their states are
restored afterwards so loading this set does not change anyone else's random stream.
"""
from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np

from deepnum.data.datasets._common import ArrayDataset, check_split, readonly, require_package

__all__ = ["MNIST1D_INSTALL", "load_mnist1d"]

MNIST1D_INSTALL = "pip install mnist1d"
_CACHE: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def _generate() -> dict:
    from mnist1d.data import get_dataset_args, make_dataset

    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        return make_dataset(get_dataset_args())
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def mnist1d_arrays(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(sequences (N, 1, 40) float32, labels (N,) int64) of a split, generated once per process (~1 s)."""
    check_split("mnist1d", split, ("train", "test"))
    require_package("mnist1d", MNIST1D_INSTALL, "mnist1d")
    if not _CACHE:
        data = _generate()
        for name, xk, yk in (("train", "x", "y"), ("test", "x_test", "y_test")):
            x = np.asarray(data[xk], dtype=np.float32)[:, None, :]
            _CACHE[name] = (readonly(x), readonly(np.asarray(data[yk], dtype=np.int64)))
    return _CACHE[split]


def load_mnist1d(split: str = "train", *, transform: Callable | None = None,
                 target_transform: Callable | None = None) -> ArrayDataset:
    """MNIST-1D: 4,000 train / 1,000 test sequences of shape (1, 40), float32, standardised."""
    x, y = mnist1d_arrays(split)
    return ArrayDataset(x, y, classes=[str(d) for d in range(10)], transform=transform,
                        target_transform=target_transform, name=f"MNIST1D[{split}]")
