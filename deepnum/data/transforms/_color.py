"""Photometric transforms, as torchvision.transforms: ``ColorJitter`` (brightness, contrast,
saturation, hue) with the functional ``adjust_*`` and ``rgb_to_grayscale``, and ``RandomErasing``
(Zhong et al. 2020, "Random Erasing Data Augmentation") with the functional ``erase``.

Images are floating point with values in [0, 1]. Each adjustment is a blend clipped to [0, 1]:
blend(x, y, f) = clip(f·x + (1 - f)·y, 0, 1) with y = 0 (brightness), the mean of the grayscale
image (contrast) or the grayscale image itself (saturation); gray = 0.2989 R + 0.587 G + 0.114 B.
Hue shifts H cyclically in HSV space. A batch gets per-sample factors (and a per-sample random order
of the adjustments, as ColorJitter draws one per call) with no loop over samples.
"""
from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepnum import random as dn_random
from deepnum.data.transforms._utils import Image, check_prob, randint_from, rng_of, uniforms


def _factor(xp: Any, f: Any, dtype: np.dtype) -> Any:
    """Per-sample factors (N,) as an (N, 1, 1, 1) array of the image's dtype (no float64 upcast)."""
    return xp.asarray(np.asarray(f, dtype=np.float64).astype(dtype).reshape(-1, 1, 1, 1))


def _blend(a: Any, b: Any, f: Any, xp: Any) -> Any:
    return xp.clip(f * a + (1 - f) * b, 0, 1)


def _gray(a: Any) -> Any:
    """ITU-R 601 luma (N, 1, H, W) of RGB images (N, 3, H, W), in their dtype."""
    return (0.2989 * a[:, 0:1] + 0.587 * a[:, 1:2] + 0.114 * a[:, 2:3]).astype(a.dtype, copy=False)


def _brightness(a: Any, f: Any, xp: Any) -> Any:
    return _blend(a, 0, f, xp)


def _contrast(a: Any, f: Any, xp: Any) -> Any:
    mean = (_gray(a) if a.shape[1] == 3 else a).mean(axis=(1, 2, 3), keepdims=True)
    return _blend(a, mean, f, xp)


def _saturation(a: Any, f: Any, xp: Any) -> Any:
    return a if a.shape[1] == 1 else _blend(a, _gray(a), f, xp)


def _rgb_to_hsv(a: Any, xp: Any) -> tuple[Any, Any, Any]:
    r, g, b = a[:, 0], a[:, 1], a[:, 2]
    maxc, minc = a.max(axis=1), a.min(axis=1)
    equal = maxc == minc
    chroma = maxc - minc
    s = chroma / xp.where(equal, 1, maxc)
    c = xp.where(equal, 1, chroma)
    rc, gc, bc = (maxc - r) / c, (maxc - g) / c, (maxc - b) / c
    h = xp.where(maxc == r, bc - gc, xp.where(maxc == g, 2 + rc - bc, 4 + gc - rc))
    return (h / 6 + 1) % 1, s, maxc


def _hsv_to_rgb(h: Any, s: Any, v: Any, xp: Any) -> Any:
    i = xp.floor(h * 6)
    f = h * 6 - i
    sector = (i.astype(np.int64) % 6)[None]
    p = xp.clip(v * (1 - s), 0, 1)
    q = xp.clip(v * (1 - s * f), 0, 1)
    t = xp.clip(v * (1 - s * (1 - f)), 0, 1)
    channels = ((v, q, p, p, t, v), (t, v, v, q, p, p), (p, p, t, v, v, q))  # R, G, B by sector
    return xp.stack([xp.take_along_axis(xp.stack(c), sector, axis=0)[0] for c in channels], axis=1)


def _hue(a: Any, f: Any, xp: Any) -> Any:
    if a.shape[1] == 1:
        return a
    h, s, v = _rgb_to_hsv(a, xp)
    return _hsv_to_rgb((h + f[:, 0]) % 1, s, v, xp)


_OPS = (("brightness", _brightness), ("contrast", _contrast), ("saturation", _saturation), ("hue", _hue))


def _adjust(img: Any, factor: float, op: int, owner: str, channels: tuple[int, ...]) -> Any:
    image = Image(owner, img, floating=True)
    a, xp = image.array, image.xp
    if a.shape[1] not in channels:
        raise ValueError(f"{owner}: expected {' or '.join(map(str, channels))} channels, got {tuple(img.shape)}")
    return image.give(_OPS[op][1](a, _factor(xp, [factor] * image.n, a.dtype), xp))


def adjust_brightness(img: Any, brightness_factor: float) -> Any:
    """clip(f·x, 0, 1): 0 gives black, 1 the original, 2 twice as bright."""
    if brightness_factor < 0:
        raise ValueError(f"adjust_brightness: brightness_factor ({brightness_factor}) is not non-negative")
    return _adjust(img, brightness_factor, 0, f"adjust_brightness({brightness_factor})", (1, 2, 3, 4))


def adjust_contrast(img: Any, contrast_factor: float) -> Any:
    """clip(f·x + (1 - f)·mean(gray(x)), 0, 1): 0 gives a uniform gray image, 1 the original."""
    if contrast_factor < 0:
        raise ValueError(f"adjust_contrast: contrast_factor ({contrast_factor}) is not non-negative")
    return _adjust(img, contrast_factor, 1, f"adjust_contrast({contrast_factor})", (1, 3))


def adjust_saturation(img: Any, saturation_factor: float) -> Any:
    """clip(f·x + (1 - f)·gray(x), 0, 1): 0 gives the grayscale image, 1 the original."""
    if saturation_factor < 0:
        raise ValueError(f"adjust_saturation: saturation_factor ({saturation_factor}) is not non-negative")
    return _adjust(img, saturation_factor, 2, f"adjust_saturation({saturation_factor})", (1, 3))


def adjust_hue(img: Any, hue_factor: float) -> Any:
    """Shift the hue by ``hue_factor`` turns (in [-0.5, 0.5]) in HSV space."""
    if not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f"adjust_hue: hue_factor ({hue_factor}) is not in [-0.5, 0.5]")
    return _adjust(img, hue_factor, 3, f"adjust_hue({hue_factor})", (1, 3))


def rgb_to_grayscale(img: Any, num_output_channels: int = 1) -> Any:
    """0.2989 R + 0.587 G + 0.114 B, repeated ``num_output_channels`` (1 or 3) times."""
    image = Image("rgb_to_grayscale", img, floating=True)
    if image.array.shape[1] != 3 or num_output_channels not in (1, 3):
        raise ValueError(f"rgb_to_grayscale: expected 3 channels and num_output_channels 1 or 3, got "
                         f"{tuple(img.shape)} and {num_output_channels}")
    gray = _gray(image.array)
    return image.give(image.xp.repeat(gray, num_output_channels, axis=1))


def _check_input(value: Any, name: str, center: float = 1, bound: tuple = (0, float("inf")),
                 clip_first_on_zero: bool = True) -> tuple[float, float] | None:
    """torchvision's rule: a number v means [center - v, center + v] (clipped at 0), a pair is kept;
    the identity range gives None (the adjustment is skipped)."""
    if isinstance(value, numbers.Number):
        if value < 0:
            raise ValueError(f"ColorJitter: if {name} is a single number, it must be non negative, got {value}")
        value = [center - float(value), center + float(value)]
        if clip_first_on_zero:
            value[0] = max(value[0], 0.0)
    elif isinstance(value, Sequence) and len(value) == 2:
        value = [float(value[0]), float(value[1])]
    else:
        raise TypeError(f"ColorJitter: {name} should be a single number or a list/tuple with length 2")
    if not bound[0] <= value[0] <= value[1] <= bound[1]:
        raise ValueError(f"ColorJitter: {name} values should be between {bound}, but got {value}")
    return None if value[0] == value[1] == center else (value[0], value[1])


class ColorJitter:
    """Random brightness, contrast, saturation and hue: factors uniform in [max(0, 1 - b), 1 + b]
    (or the given (min, max)), hue shift uniform in [-h, h], applied in a random order."""

    def __init__(self, brightness: Any = 0, contrast: Any = 0, saturation: Any = 0, hue: Any = 0, *,
                 generator: dn_random.Generator | None = None) -> None:
        self.brightness = _check_input(brightness, "brightness")
        self.contrast = _check_input(contrast, "contrast")
        self.saturation = _check_input(saturation, "saturation")
        self.hue = _check_input(hue, "hue", center=0, bound=(-0.5, 0.5), clip_first_on_zero=False)
        self.generator = generator

    def __call__(self, img: Any) -> Any:
        image = Image(repr(self), img, floating=True)
        a, xp = image.array, image.xp
        ranges = (self.brightness, self.contrast, self.saturation, self.hue)
        if a.shape[1] not in (1, 3) and any(r is not None for r in ranges[1:]):
            raise ValueError(f"{self!r}: contrast, saturation and hue need 1 or 3 channels, got {tuple(img.shape)}")
        u = uniforms(self.generator, image.n, 8)
        order = np.argsort(u[:, :4], axis=1, kind="stable")  # a random permutation of the 4 ops per sample
        factors = [None if r is None else r[0] + (r[1] - r[0]) * u[:, 4 + k] for k, r in enumerate(ranges)]
        out = a
        for position in range(4):
            for k, (_, op) in enumerate(_OPS):
                if factors[k] is None:
                    continue
                sel = order[:, position] == k
                if sel.all():
                    out = op(out, _factor(xp, factors[k], a.dtype), xp)
                elif sel.any():
                    out = out.copy() if out is a else out
                    idx = xp.asarray(sel.nonzero()[0])
                    out[idx] = op(out[idx], _factor(xp, factors[k][sel], a.dtype), xp)
        return img if out is a else image.give(out)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation}, hue={self.hue})")


def erase(img: Any, i: int, j: int, h: int, w: int, v: Any, inplace: bool = False) -> Any:
    """Set rows [i, i + h), columns [j, j + w) to ``v`` (a number, per-channel values or an array)."""
    image = Image(f"erase(i={i}, j={j}, h={h}, w={w})", img)
    a = image.array if inplace else image.array.copy()
    a[..., i:i + h, j:j + w] = v
    if not inplace:
        return image.give(a)
    if image.tensor:
        img._version += 1
    return img


class RandomErasing:
    """With probability ``p``, erase a rectangle of area s·H·W (s uniform in ``scale``) and aspect ratio
    h/w = r (log r uniform in log ``ratio``), at a uniform position; the first of 10 attempts that fits
    inside the image is used, none fitting leaves the image unchanged (torchvision's rule). ``value``:
    a number, one per channel, or 'random' for standard-normal noise."""

    def __init__(self, p: float = 0.5, scale: Sequence[float] = (0.02, 0.33), ratio: Sequence[float] = (0.3, 3.3),
                 value: Any = 0, inplace: bool = False, *, generator: dn_random.Generator | None = None) -> None:
        if not isinstance(value, numbers.Number | str | tuple | list):
            raise TypeError("RandomErasing: value should be either a number or str or a sequence")
        if isinstance(value, str) and value != "random":
            raise ValueError(f"RandomErasing: if value is str, it should be 'random', got {value!r}")
        if not isinstance(scale, Sequence) or len(scale) != 2:
            raise TypeError(f"RandomErasing: scale should be a sequence of two numbers, got {scale!r}")
        if not isinstance(ratio, Sequence) or len(ratio) != 2 or min(ratio) <= 0:
            raise TypeError(f"RandomErasing: ratio should be a sequence of two positive numbers, got {ratio!r}")
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            warnings.warn("RandomErasing: scale and ratio should be of kind (min, max)", stacklevel=2)
        if scale[0] < 0 or scale[1] > 1:
            raise ValueError(f"RandomErasing: scale should be between 0 and 1, got {scale!r}")
        self.p = check_prob(p, "RandomErasing")
        self.scale, self.ratio, self.value, self.inplace = scale, ratio, value, inplace
        self.generator = generator

    def get_params(self, n: int, h: int, w: int) -> tuple[np.ndarray, ...]:
        """Per-sample (apply, top, left, height, width); apply is False where no attempt fitted."""
        u = uniforms(self.generator, n, 41)
        tries = u[:, 1:].reshape(n, 10, 4)
        area = h * w * (self.scale[0] + (self.scale[1] - self.scale[0]) * tries[..., 0])
        lo, hi = np.log(self.ratio[0]), np.log(self.ratio[1])
        aspect = np.exp(lo + (hi - lo) * tries[..., 1])
        eh, ew = np.rint(np.sqrt(area * aspect)).astype(np.int64), np.rint(np.sqrt(area / aspect)).astype(np.int64)
        fits = (eh < h) & (ew < w)
        first = fits.argmax(axis=1)
        rows = np.arange(n)
        eh, ew, t = eh[rows, first], ew[rows, first], tries[rows, first]
        top, left = randint_from(t[:, 2], h - eh + 1), randint_from(t[:, 3], w - ew + 1)
        return (u[:, 0] < self.p) & fits.any(axis=1), top, left, eh, ew

    def __call__(self, img: Any) -> Any:
        image = Image(repr(self), img)
        a, xp = image.array, image.xp
        n, ch, h, w = a.shape
        if isinstance(self.value, tuple | list) and len(self.value) not in (1, ch):
            raise ValueError(f"{self!r}: value has {len(self.value)} values, the image has {ch} channels")
        apply, top, left, eh, ew = self.get_params(n, h, w)
        if not apply.any():
            return img
        if self.value == "random":
            if a.dtype.kind != "f":
                raise TypeError(f"{self!r}: value='random' needs a floating-point image, got {a.dtype}")
            draw = a.dtype if a.dtype in (np.float32, np.float64) else np.float32
            fill = xp.asarray(rng_of(self.generator).standard_normal(a.shape, dtype=draw).astype(a.dtype))
        else:
            fill = xp.asarray(np.asarray(self.value, dtype=np.float64).reshape(-1, 1, 1).astype(a.dtype))
        ii, jj = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
        inside = ((ii >= top[:, None, None]) & (ii < (top + eh)[:, None, None])
                  & (jj >= left[:, None, None]) & (jj < (left + ew)[:, None, None]) & apply[:, None, None])
        mask = xp.asarray(inside[:, None])  # (N, 1, H, W)
        if self.inplace:
            xp.copyto(a, xp.broadcast_to(fill, a.shape), where=mask)
            if image.tensor:
                img._version += 1
            return img
        return image.give(xp.where(mask, fill, a))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(p={self.p}, scale={self.scale}, ratio={self.ratio}, value={self.value}, "
                f"inplace={self.inplace})")
