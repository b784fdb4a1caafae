"""Shared plumbing of the transforms: taking an image (C, H, W) or a batch (N, C, H, W) as an array,
giving back the caller's type, and drawing per-sample random parameters from a generator.

Random parameters are drawn as one block of uniforms ``u`` of shape (N, k) (row i holds sample i's k
numbers) and then mapped to their ranges. A batch of N therefore consumes the generator exactly as N
single-image calls do, so a batch and a loop over its samples give the same result for the same seed.
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepnum import random as dn_random
from deepnum.backend import get_array_module
from deepnum.tensor import Tensor


def rng_of(generator: dn_random.Generator | None) -> np.random.Generator:
    """The NumPy generator behind ``generator``, or behind the global one (read at call time, so
    ``deepnum.manual_seed`` after building a transform still takes effect)."""
    return (generator if generator is not None else dn_random.default_generator).rng


def uniforms(generator: dn_random.Generator | None, n: int, k: int) -> np.ndarray:
    """(n, k) float64 uniforms on [0, 1): sample i's k draws are consecutive in the stream."""
    return rng_of(generator).random((n, k))


def randint_from(u: np.ndarray, high: Any) -> np.ndarray:
    """Integers uniform on [0, high) from uniforms ``u`` (elementwise; ``high`` may be an array)."""
    high = np.asarray(high)
    return np.minimum(np.floor(u * high), high - 1).astype(np.int64)


class Image:
    """An input image or batch as an (N, C, H, W) array, and how to hand a result back in the
    caller's form (Tensor or array, with or without the batch dimension)."""

    __slots__ = ("array", "batched", "tensor")

    def __init__(self, name: str, img: Any, *, floating: bool = False) -> None:
        if isinstance(img, Tensor):
            array, self.tensor = img.data, True
        elif hasattr(img, "shape") and hasattr(img, "dtype"):
            array, self.tensor = img, False
        else:
            raise TypeError(f"{name}: expected an image Tensor (C, H, W) or a batch (N, C, H, W), "
                            f"got {type(img).__name__}")
        if array.ndim not in (3, 4):
            raise ValueError(f"{name}: expected an image (C, H, W) or a batch (N, C, H, W), got {tuple(array.shape)}")
        if floating and array.dtype.kind != "f":
            raise TypeError(f"{name}: expected a floating-point image with values in [0, 1], got {array.dtype}")
        self.batched = array.ndim == 4
        self.array = array if self.batched else array[None]

    @property
    def xp(self) -> Any:
        return get_array_module(self.array)

    @property
    def n(self) -> int:
        return self.array.shape[0]

    def give(self, array: Any) -> Any:
        """Wrap an (N, C, H, W) result like the input was given."""
        if not self.batched:
            array = array[0]
        return Tensor._make(array) if self.tensor else array


def pair(value: Any, name: str, owner: str) -> tuple[int, int]:
    """An int or a 1/2-sequence as (h, w), torchvision's ``_setup_size``."""
    if isinstance(value, numbers.Number):
        return int(value), int(value)
    if isinstance(value, Sequence) and len(value) == 1:
        return int(value[0]), int(value[0])
    if isinstance(value, Sequence) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise ValueError(f"{owner}: {name} should be an int or a sequence of one or two ints, got {value!r}")


def fill_array(fill: Any, channels: int, dtype: np.dtype, xp: Any, owner: str) -> Any:
    """A fill value (number or one per channel) as a (C, 1) array of the image's dtype."""
    values = [0.0] if fill is None else ([fill] if isinstance(fill, numbers.Number) else list(fill))
    if len(values) not in (1, channels):
        raise ValueError(f"{owner}: fill has {len(values)} values, the image has {channels} channels")
    out = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    return xp.asarray(np.broadcast_to(out, (channels, 1)).astype(dtype))


def check_prob(p: float, owner: str) -> float:
    if not isinstance(p, numbers.Number) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{owner}: probability p should be a number in [0, 1], got {p!r}")
    return p
