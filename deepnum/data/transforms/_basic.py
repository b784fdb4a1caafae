"""Composition and conversion, as torchvision.transforms: ``Compose``, ``Lambda``, ``RandomChoice``,
``RandomApply``, ``ToTensor``, ``Normalize``."""
from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deepnum import random as dn_random
from deepnum.data.transforms._utils import Image, check_prob, uniforms
from deepnum.tensor import Tensor


class Compose:
    """Apply transforms one after the other. With one input each transform gets and returns one
    value; with several (``Compose([...])(images, labels)``) each gets them all and returns a tuple,
    as torchvision.transforms.v2.Compose."""

    def __init__(self, transforms: Sequence[Callable]) -> None:
        if not isinstance(transforms, Sequence):
            raise TypeError(f"Compose: transforms should be a sequence of callables, got {type(transforms).__name__}")
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Compose: every transform should be callable, got {type(t).__name__}")
        self.transforms = list(transforms)

    def __call__(self, *inputs: Any) -> Any:
        if not inputs:
            raise TypeError("Compose: expected at least one input")
        unpack = len(inputs) > 1
        for t in self.transforms:
            out = t(*inputs)
            inputs = tuple(out) if unpack else (out,)
        return inputs if unpack else inputs[0]

    def __repr__(self) -> str:
        lines = "".join(f"\n    {t}" for t in self.transforms)
        return f"{type(self).__name__}({lines}\n)"


class Lambda:
    """A user function as a transform."""

    def __init__(self, lambd: Callable) -> None:
        if not callable(lambd):
            raise TypeError(f"Argument lambd should be callable, got {type(lambd).__name__!r}")
        self.lambd = lambd

    def __call__(self, *inputs: Any) -> Any:
        return self.lambd(*inputs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _probabilities(p: Sequence[float] | None, n: int, owner: str) -> list[float]:
    if p is None:
        return [1.0 / n] * n
    if len(p) != n:
        raise ValueError(f"{owner}: got {len(p)} probabilities for {n} transforms")
    if any(not isinstance(v, numbers.Number) or v < 0 for v in p) or sum(p) <= 0:
        raise ValueError(f"{owner}: probabilities should be non-negative with a positive sum, got {list(p)}")
    total = float(sum(p))
    return [float(v) / total for v in p]


class RandomChoice:
    """Apply one transform picked at random (with probabilities ``p``, normalised to sum 1; uniform
    by default), as torchvision.transforms.v2.RandomChoice: ``RandomChoice([MixUp(...), CutMix(...)])``
    called on ``(images, labels)`` mixes each batch one way or the other."""

    def __init__(self, transforms: Sequence[Callable], p: Sequence[float] | None = None, *,
                 generator: dn_random.Generator | None = None) -> None:
        if not isinstance(transforms, Sequence) or not transforms:
            raise TypeError("RandomChoice: transforms should be a non-empty sequence of callables")
        self.transforms = list(transforms)
        self.p = _probabilities(p, len(self.transforms), "RandomChoice")
        self.generator = generator

    def __call__(self, *inputs: Any) -> Any:
        u = float(uniforms(self.generator, 1, 1)[0, 0])
        idx = min(int(np.searchsorted(np.cumsum(self.p), u, side="right")), len(self.transforms) - 1)
        return self.transforms[idx](*inputs)

    def __repr__(self) -> str:
        lines = "".join(f"\n    {t}" for t in self.transforms)
        return f"{type(self).__name__}(p={self.p},{lines}\n)"


class RandomApply:
    """Apply a list of transforms, all or none, with probability ``p`` (one draw per call)."""

    def __init__(self, transforms: Sequence[Callable], p: float = 0.5, *,
                 generator: dn_random.Generator | None = None) -> None:
        self.transforms = list(transforms)
        self.p = check_prob(p, "RandomApply")
        self.generator = generator

    def __call__(self, *inputs: Any) -> Any:
        if float(uniforms(self.generator, 1, 1)[0, 0]) >= self.p:
            return inputs if len(inputs) > 1 else inputs[0]
        return Compose(self.transforms)(*inputs)

    def __repr__(self) -> str:
        lines = "".join(f"\n    {t}" for t in self.transforms)
        return f"{type(self).__name__}(\n    p={self.p}{lines}\n)"


class ToTensor:
    """A PIL image or a NumPy array (H, W, C) or (H, W) as a Tensor (C, H, W); uint8 values are
    divided by 255 into float32 on [0, 1], other dtypes are kept as they are (torchvision's rule)."""

    def __call__(self, pic: Any) -> Tensor:
        if isinstance(pic, Tensor):
            raise TypeError("ToTensor: pic should be a PIL Image or a NumPy ndarray, got Tensor")
        if isinstance(pic, np.ndarray):
            array = pic
        elif hasattr(pic, "mode") and hasattr(pic, "size"):  # a PIL image
            array = np.asarray(pic)
            if pic.mode == "1":
                array = array.astype(np.uint8) * np.uint8(255)
        else:
            raise TypeError(f"ToTensor: pic should be a PIL Image or a NumPy ndarray, got {type(pic).__name__}")
        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim != 3:
            raise ValueError(f"ToTensor: pic should be 2 or 3 dimensional (H, W[, C]), got {array.shape}")
        chw = np.ascontiguousarray(array.transpose(2, 0, 1))
        if chw.dtype == np.uint8:
            chw = chw.astype(np.float32) / np.float32(255)
        return Tensor._make(chw)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def normalize(tensor: Any, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> Any:
    """Per channel (x - mean[c]) / std[c] on (C, H, W) or (N, C, H, W), in the image's dtype."""
    owner = f"Normalize(mean={mean}, std={std})"
    img = Image(owner, tensor, floating=True)
    xp, a = img.xp, img.array
    m = np.asarray(mean, dtype=np.float64).reshape(-1)
    s = np.asarray(std, dtype=np.float64).reshape(-1)
    channels = a.shape[1]
    for name, v in (("mean", m), ("std", s)):
        if v.size not in (1, channels):
            raise ValueError(f"{owner}: {name} has {v.size} values, the image has {channels} channels "
                             f"(shape {tuple(tensor.shape)})")
    if np.any(s.astype(a.dtype) == 0):
        raise ValueError(f"{owner}: std evaluated to zero after conversion to {a.dtype}, leading to division by zero")
    m = xp.asarray(m.astype(a.dtype).reshape(-1, 1, 1))
    s = xp.asarray(s.astype(a.dtype).reshape(-1, 1, 1))
    if inplace:
        a -= m
        a /= s
        if isinstance(tensor, Tensor):
            tensor._version += 1
        return tensor
    return img.give((a - m) / s)


class Normalize:
    """Standardise each channel: ``(x - mean[c]) / std[c]`` (e.g. MNIST's 0.1307, 0.3081)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> None:
        self.mean = mean
        self.std = std
        self.inplace = inplace

    def __call__(self, tensor: Any) -> Any:
        return normalize(tensor, self.mean, self.std, self.inplace)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"
