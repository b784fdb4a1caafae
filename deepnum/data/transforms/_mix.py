"""Batch mixing, as torchvision.transforms.v2: ``MixUp`` (Zhang et al. 2018, "mixup: Beyond Empirical
Risk Minimization") and ``CutMix`` (Yun et al. 2019, "CutMix: Regularization Strategy to Train Strong
Classifiers with Localizable Features").

Called on a batch ``(images (N, C, H, W), labels (N,))`` they return the mixed images and soft
targets (N, num_classes) float32, which ``cross_entropy`` takes as class probabilities. Each sample
is mixed with its neighbour in the batch rolled by one (``x.roll(1, 0)``: sample i with sample i-1,
torchvision's partner choice; the DataLoader's shuffling makes the pairs random), with one
λ ~ Beta(α, α) per batch:

- MixUp: x̃ = λ·x + (1 - λ)·x_rolled, ỹ = λ·y + (1 - λ)·y_rolled.
- CutMix: a box of half-size (r·W, r·H) with r = √(1 - λ)/2 (integer parts) centred at a uniform
  pixel and clipped to the image is pasted from x_rolled; λ is then set to the exact share of pixels
  kept from x, 1 - box area / (H·W), and ỹ = λ·y + (1 - λ)·y_rolled.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from deepnum import random as dn_random
from deepnum.backend import get_array_module
from deepnum.data.transforms._utils import rng_of
from deepnum.tensor import Tensor


class _BaseMix:
    def __init__(self, *, alpha: float = 1.0, num_classes: int | None = None,
                 generator: dn_random.Generator | None = None) -> None:
        name = type(self).__name__
        if not isinstance(alpha, numbers.Real) or not alpha > 0:
            raise ValueError(f"{name}: alpha should be a positive number, got {alpha!r}")
        if num_classes is not None and (not isinstance(num_classes, numbers.Integral) or num_classes <= 0):
            raise ValueError(f"{name}: num_classes should be a positive int or None, got {num_classes!r}")
        self.alpha = float(alpha)
        self.num_classes = num_classes
        self.generator = generator

    def _targets(self, labels: Any, n: int, xp: Any) -> Any:
        """Labels (N,) as one-hot float32 (N, num_classes), or soft labels (N, K) as they are."""
        y = labels.data if isinstance(labels, Tensor) else xp.asarray(labels)
        if y.ndim == 1 and y.dtype.kind in "iu":
            if self.num_classes is None:
                raise ValueError(f"{self!r}: num_classes is needed to one-hot encode integer labels")
            if y.shape[0] != n:
                raise ValueError(f"{self!r}: got {y.shape[0]} labels for a batch of {n} images")
            if y.size and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise ValueError(f"{self!r}: labels should be in [0, {self.num_classes}), got values in "
                                 f"[{int(y.min())}, {int(y.max())}]")
            return (y[:, None] == xp.arange(self.num_classes)).astype(np.float32)
        if y.ndim == 2 and y.dtype.kind == "f" and y.shape[0] == n and self.num_classes in (None, y.shape[1]):
            return y.astype(np.float32)
        raise ValueError(f"{self!r}: expected integer labels ({n},) or probabilities ({n}, "
                         f"{self.num_classes or 'K'}), got {y.dtype} {tuple(y.shape)}")

    def _unpack(self, inputs: tuple) -> tuple[Any, Any]:
        """``(images, labels)`` given as two arguments or as one pair."""
        if len(inputs) == 1 and isinstance(inputs[0], tuple | list) and len(inputs[0]) == 2:
            inputs = tuple(inputs[0])
        if len(inputs) != 2:
            raise TypeError(f"{self!r}: expected to be called on (images, labels), got {len(inputs)} inputs")
        images, labels = inputs
        x = images.data if isinstance(images, Tensor) else images
        if getattr(x, "ndim", 0) != 4:
            raise ValueError(f"{self!r}: expected a batch of images (N, C, H, W), got "
                             f"{tuple(getattr(x, 'shape', ()))}")
        return images, labels

    def __call__(self, *inputs: Any) -> Any:
        images, labels = self._unpack(inputs)
        x = images.data if isinstance(images, Tensor) else images
        xp = get_array_module(x)
        y = self._targets(labels, x.shape[0], xp)
        lam = float(rng_of(self.generator).beta(self.alpha, self.alpha))
        mixed, lam = self._mix_images(x, lam, xp)
        y = lam * y + (1.0 - lam) * xp.roll(y, 1, axis=0)
        out_images = Tensor._make(mixed) if isinstance(images, Tensor) else mixed
        return out_images, Tensor._make(y)

    def _mix_images(self, x: Any, lam: float, xp: Any) -> tuple[Any, float]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha}, num_classes={self.num_classes})"


class MixUp(_BaseMix):
    """x̃ = λ·x + (1 - λ)·x.roll(1, 0), targets likewise, λ ~ Beta(α, α) once per batch."""

    def _mix_images(self, x: Any, lam: float, xp: Any) -> tuple[Any, float]:
        if x.dtype.kind != "f":
            raise TypeError(f"{self!r}: expected floating-point images, got {x.dtype}")
        return lam * x + (1.0 - lam) * xp.roll(x, 1, axis=0), lam


class CutMix(_BaseMix):
    """Paste a box from x.roll(1, 0); λ becomes the exact share of pixels kept (see the module)."""

    def get_box(self, lam: float, h: int, w: int) -> tuple[int, int, int, int]:
        """(x1, y1, x2, y2) of the pasted box for a drawn λ, as torchvision.v2.CutMix."""
        rng = rng_of(self.generator)
        r_x, r_y = int(rng.integers(w)), int(rng.integers(h))
        r = 0.5 * np.sqrt(1.0 - lam)
        r_w_half, r_h_half = int(r * w), int(r * h)
        return max(r_x - r_w_half, 0), max(r_y - r_h_half, 0), min(r_x + r_w_half, w), min(r_y + r_h_half, h)

    def _mix_images(self, x: Any, lam: float, xp: Any) -> tuple[Any, float]:
        h, w = x.shape[-2:]
        x1, y1, x2, y2 = self.get_box(lam, h, w)
        out = x.copy()
        out[..., y1:y2, x1:x2] = xp.roll(x[..., y1:y2, x1:x2], 1, axis=0)
        return out, 1.0 - (x2 - x1) * (y2 - y1) / (w * h)
