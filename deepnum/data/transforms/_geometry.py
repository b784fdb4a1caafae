"""Crops, padding and flips, as torchvision.transforms: ``RandomCrop``, ``CenterCrop``,
``RandomHorizontalFlip``, ``RandomVerticalFlip`` and the functional ``pad``, ``crop``, ``center_crop``,
``hflip``, ``vflip``. A batch (N, C, H, W) gets one random draw per sample; the per-sample crops are
gathered in one indexing step from a strided window view (no loop over samples)."""
from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

from deepnum import random as dn_random
from deepnum.backend import get_array_module
from deepnum.data.transforms._utils import Image, check_prob, pair, randint_from, uniforms

PADDING_MODES = ("constant", "edge", "reflect", "symmetric")


def _ltrb(padding: Any, owner: str) -> tuple[int, int, int, int]:
    """torchvision's padding forms: p (all sides), (left/right, top/bottom) or (left, top, right, bottom)."""
    if isinstance(padding, numbers.Number):
        values = [int(padding)] * 4
    elif isinstance(padding, Sequence) and len(padding) in (1, 2, 4):
        p = [int(v) for v in padding]
        values = p * 4 if len(p) == 1 else ([p[0], p[1], p[0], p[1]] if len(p) == 2 else p)
    else:
        raise ValueError(f"{owner}: padding should be an int or a sequence of 1, 2 or 4 ints, got {padding!r}")
    if min(values) < 0:
        raise ValueError(f"{owner}: padding should be non-negative, got {padding!r}")
    return values[0], values[1], values[2], values[3]


def _pad_array(a: Any, ltrb: tuple[int, int, int, int], fill: float, mode: str, owner: str) -> Any:
    if mode not in PADDING_MODES:
        raise ValueError(f"{owner}: padding_mode should be one of {PADDING_MODES}, got {mode!r}")
    left, top, right, bottom = ltrb
    if not any(ltrb):
        return a
    xp = get_array_module(a)
    widths = ((0, 0), (0, 0), (top, bottom), (left, right))
    if mode == "constant":
        return xp.pad(a, widths, mode="constant", constant_values=fill)
    return xp.pad(a, widths, mode=mode)


def pad(img: Any, padding: Any, fill: float = 0, padding_mode: str = "constant") -> Any:
    """Pad the last two dimensions: ``constant`` (with ``fill``), ``edge``, ``reflect`` (mirror without
    repeating the border) or ``symmetric`` (mirror repeating it), as NumPy's modes of the same names."""
    owner = f"pad(padding={padding}, padding_mode={padding_mode!r})"
    image = Image(owner, img)
    return image.give(_pad_array(image.array, _ltrb(padding, owner), fill, padding_mode, owner))


def crop(img: Any, top: int, left: int, height: int, width: int) -> Any:
    """The window rows [top, top + height), columns [left, left + width); parts outside the image are
    zero-padded, as torchvision."""
    image = Image(f"crop(top={top}, left={left}, height={height}, width={width})", img)
    a = image.array
    h, w = a.shape[-2:]
    pads = (max(0, -left), max(0, -top), max(0, left + width - w), max(0, top + height - h))
    a = _pad_array(a, pads, 0, "constant", "crop")
    top, left = top + pads[1], left + pads[0]
    return image.give(a[..., top:top + height, left:left + width])


def center_crop(img: Any, output_size: Any) -> Any:
    """The central (h, w) window; an image smaller than the crop is zero-padded first (the extra pixel
    of an odd difference going right/bottom), and the offset is ``round((H - h) / 2)``, half to even."""
    th, tw = pair(output_size, "size", "center_crop")
    image = Image(f"CenterCrop(size={(th, tw)})", img)
    a = image.array
    h, w = a.shape[-2:]
    if tw > w or th > h:
        ltrb = ((tw - w) // 2 if tw > w else 0, (th - h) // 2 if th > h else 0,
                (tw - w + 1) // 2 if tw > w else 0, (th - h + 1) // 2 if th > h else 0)
        a = _pad_array(a, ltrb, 0, "constant", "center_crop")
        h, w = a.shape[-2:]
    top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
    return image.give(a[..., top:top + th, left:left + tw])


def hflip(img: Any) -> Any:
    """Mirror left-right (reverse the last dimension)."""
    image = Image("hflip", img)
    return image.give(image.array[..., ::-1].copy())


def vflip(img: Any) -> Any:
    """Mirror top-bottom (reverse the second-to-last dimension)."""
    image = Image("vflip", img)
    return image.give(image.array[..., ::-1, :].copy())


class RandomCrop:
    """A random (h, w) window, after optional ``padding`` (and, with ``pad_if_needed``, padding of
    both sides by the missing size); the top-left corner is uniform over all valid positions."""

    def __init__(self, size: Any, padding: Any = None, pad_if_needed: bool = False, fill: float = 0,
                 padding_mode: str = "constant", *, generator: dn_random.Generator | None = None) -> None:
        self.size = pair(size, "size", "RandomCrop")
        self.padding = padding
        self.pad_if_needed = pad_if_needed
        self.fill = fill
        self.padding_mode = padding_mode
        self.generator = generator
        if padding is not None:
            _ltrb(padding, repr(self))
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{self!r}: padding_mode should be one of {PADDING_MODES}, got {padding_mode!r}")

    def __call__(self, img: Any) -> Any:
        image = Image(repr(self), img)
        a, th, tw, owner = image.array, *self.size, repr(self)
        if self.padding is not None:
            a = _pad_array(a, _ltrb(self.padding, owner), self.fill, self.padding_mode, owner)
        h, w = a.shape[-2:]
        if self.pad_if_needed and w < tw:
            a = _pad_array(a, (tw - w, 0, tw - w, 0), self.fill, self.padding_mode, owner)
        if self.pad_if_needed and h < th:
            a = _pad_array(a, (0, th - h, 0, th - h), self.fill, self.padding_mode, owner)
        h, w = a.shape[-2:]
        if h < th or w < tw:
            raise ValueError(f"{owner}: required crop size {(th, tw)} is larger than the (padded) input image "
                             f"size {(h, w)}")
        if (h, w) == (th, tw):
            return image.give(a)
        u = uniforms(self.generator, image.n, 2)
        top, left = randint_from(u[:, 0], h - th + 1), randint_from(u[:, 1], w - tw + 1)
        xp = image.xp
        windows = xp.lib.stride_tricks.sliding_window_view(a, (th, tw), axis=(2, 3))  # (N, C, h', w', th, tw)
        out = windows[xp.arange(image.n), :, xp.asarray(top), xp.asarray(left)]  # (N, C, th, tw)
        return image.give(out)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, padding={self.padding})"


class CenterCrop:
    """The central (h, w) window (see ``center_crop``)."""

    def __init__(self, size: Any) -> None:
        self.size = pair(size, "size", "CenterCrop")

    def __call__(self, img: Any) -> Any:
        return center_crop(img, self.size)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


class _RandomFlip:
    axis = -1

    def __init__(self, p: float = 0.5, *, generator: dn_random.Generator | None = None) -> None:
        self.p = check_prob(p, type(self).__name__)
        self.generator = generator

    def __call__(self, img: Any) -> Any:
        image = Image(repr(self), img)
        flip = uniforms(self.generator, image.n, 1)[:, 0] < self.p
        if not flip.any():
            return img
        a = image.array
        out = a.copy()
        sel = image.xp.asarray(flip.nonzero()[0])
        out[sel] = a[sel][..., ::-1] if self.axis == -1 else a[sel][..., ::-1, :]
        return image.give(out)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class RandomHorizontalFlip(_RandomFlip):
    """Mirror left-right with probability ``p`` (per sample in a batch)."""

    axis = -1


class RandomVerticalFlip(_RandomFlip):
    """Mirror top-bottom with probability ``p`` (per sample in a batch)."""

    axis = -2
