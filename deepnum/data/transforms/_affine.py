"""Rotations, shifts, scaling and shear by inverse mapping, as torchvision.transforms:
``RandomRotation``, ``RandomAffine`` and the functional ``rotate``, ``affine``.

Coordinate convention (torchvision's tensor backend): pixel (i, j) sits at x = j - (W-1)/2,
y = i - (H-1)/2 (x right, y down), so by default the centre of the transform is the centre of the
image. Each output pixel is mapped back through the inverse transform M⁻¹ = C·RSS⁻¹·C⁻¹·T⁻¹
(T: translation, C: centre, RSS = R(a)·S(s)·SHy·SHx) and the input is sampled there:

- ``nearest`` (the default, as torchvision): the source index rounded half to even (``rint``, what
  ``grid_sample`` does); a source outside the image gives ``fill``.
- ``bilinear``: the four neighbours weighted by (1-fx, fx) × (1-fy, fy); the weight of neighbours
  outside the image goes to ``fill``: out = Σ_in w·v + (1 - Σ_in w)·fill. (torchvision multiplies the
  zero-padded sample by that coverage once more at the border; inside the image both agree.)

Direction, as torchvision: ``rotate``/``RandomRotation`` turn the picture counter-clockwise for a
positive angle (90° equals ``np.rot90(img, 1, axes=(-2, -1))``); ``affine``/``RandomAffine`` use the
opposite sign, clockwise for a positive angle, as torchvision.transforms.functional.affine
documents. Positive translations move the content right and down. A batch gets per-sample angles,
shifts and scales, sampled with one gather over the whole batch.
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence
from enum import Enum
from typing import Any

import numpy as np

from deepnum import random as dn_random
from deepnum.backend import get_array_module
from deepnum.data.transforms._utils import Image, fill_array, uniforms


class InterpolationMode(Enum):
    """How a transformed image is resampled (torchvision's enum; the strings are accepted too)."""

    NEAREST = "nearest"
    BILINEAR = "bilinear"


def _mode(interpolation: Any, owner: str) -> InterpolationMode:
    try:
        return InterpolationMode(interpolation.value if isinstance(interpolation, Enum) else interpolation)
    except ValueError:
        raise ValueError(f"{owner}: interpolation should be 'nearest' or 'bilinear', got {interpolation!r}") from None


def inverse_affine_matrices(angle: Any, translate: Any, scale: Any, shear: Any, center: Any) -> np.ndarray:
    """(N, 2, 3) inverse matrices (output → input, centred coordinates) for per-sample arrays of
    angle (degrees, clockwise on screen), translate (N, 2), scale (N,), shear (N, 2) in degrees and
    one centre (cx, cy); torchvision's ``_get_inverse_affine_matrix``, vectorised."""
    rot = np.radians(np.asarray(angle, dtype=np.float64))
    sx, sy = np.radians(np.asarray(shear, dtype=np.float64)).T
    tx, ty = np.asarray(translate, dtype=np.float64).T
    scale = np.asarray(scale, dtype=np.float64)
    cx, cy = center
    a = np.cos(rot - sy) / np.cos(sy)  # RSS without scaling; det [[a, b], [c, d]] = 1
    b = -np.cos(rot - sy) * np.tan(sx) / np.cos(sy) - np.sin(rot)
    c = np.sin(rot - sy) / np.cos(sy)
    d = -np.sin(rot - sy) * np.tan(sx) / np.cos(sy) + np.cos(rot)
    m = np.stack([np.stack([d, -b], -1), np.stack([-c, a], -1)], -2) / scale[:, None, None]
    offset = np.stack([-cx - tx, -cy - ty], -1)  # C·RSS⁻¹·C⁻¹·T⁻¹
    shift = np.einsum("nij,nj->ni", m, offset) + np.array([cx, cy])
    return np.concatenate([m, shift[:, :, None]], axis=2)


def _source_coords(xp: Any, matrix: np.ndarray, h: int, w: int) -> tuple[Any, Any]:
    """Input pixel coordinates (N, H·W) that each output pixel maps back to (float64)."""
    m = xp.asarray(matrix)
    x = (xp.arange(w, dtype=np.float64) - (w - 1) / 2)[None, :]
    y = (xp.arange(h, dtype=np.float64) - (h - 1) / 2)[:, None]
    xs = m[:, 0, 0, None, None] * x + m[:, 0, 1, None, None] * y + m[:, 0, 2, None, None] + (w - 1) / 2
    ys = m[:, 1, 0, None, None] * x + m[:, 1, 1, None, None] * y + m[:, 1, 2, None, None] + (h - 1) / 2
    return xs.reshape(len(m), -1), ys.reshape(len(m), -1)


def _gather(xp: Any, flat: Any, ix: Any, iy: Any, h: int, w: int) -> tuple[Any, Any]:
    """Values at integer (iy, ix) for every channel (N, C, H·W) and where they are inside (N, 1, H·W)."""
    inside = ((ix >= 0) & (ix < w) & (iy >= 0) & (iy < h))[:, None]
    index = (xp.clip(iy, 0, h - 1) * w + xp.clip(ix, 0, w - 1))[:, None]
    return xp.take_along_axis(flat, index, axis=2), inside


def apply_affine(a: Any, matrix: np.ndarray, interpolation: InterpolationMode, fill: Any, owner: str) -> Any:
    """Resample the batch ``a`` (N, C, H, W) through per-sample inverse matrices (N, 2, 3)."""
    n, ch, h, w = a.shape
    xp = get_array_module(a)
    fill = fill_array(fill, ch, a.dtype, xp, owner)
    xs, ys = _source_coords(xp, matrix, h, w)
    flat = a.reshape(n, ch, h * w)
    if interpolation is InterpolationMode.NEAREST:
        values, inside = _gather(xp, flat, xp.rint(xs).astype(np.int64), xp.rint(ys).astype(np.int64), h, w)
        out = xp.where(inside, values, fill)
    else:
        if a.dtype.kind != "f":
            raise TypeError(f"{owner}: bilinear interpolation needs a floating-point image, got {a.dtype}")
        x0, y0 = xp.floor(xs), xp.floor(ys)
        fx, fy = (xs - x0).astype(a.dtype)[:, None], (ys - y0).astype(a.dtype)[:, None]
        x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
        out = xp.zeros_like(flat)
        coverage = xp.zeros((n, 1, h * w), dtype=a.dtype)
        for dy, wy in ((0, 1 - fy), (1, fy)):  # the four neighbours
            for dx, wx in ((0, 1 - fx), (1, fx)):
                values, inside = _gather(xp, flat, x0 + dx, y0 + dy, h, w)
                weight = wy * wx * inside
                out += weight * values
                coverage += weight
        out += (1 - coverage) * fill
    return out.reshape(n, ch, h, w)


def _center(center: Any, h: int, w: int) -> tuple[float, float]:
    """torchvision's centre argument: (x, y) with the origin at the top-left corner of the image
    (pixel j covers [j, j+1)), to centred coordinates; None is the middle of the image."""
    if center is None:
        return 0.0, 0.0
    return float(center[0]) - w * 0.5, float(center[1]) - h * 0.5


def _affine(img: Any, angles: Any, translate: Any, scale: Any, shear: Any, interpolation: Any, fill: Any,
            center: Any, owner: str) -> Any:
    image = Image(owner, img)
    h, w = image.array.shape[-2:]
    n = image.n
    matrix = inverse_affine_matrices(np.broadcast_to(angles, (n,)), np.broadcast_to(translate, (n, 2)),
                                     np.broadcast_to(scale, (n,)), np.broadcast_to(shear, (n, 2)),
                                     _center(center, h, w))
    return image.give(apply_affine(image.array, matrix, _mode(interpolation, owner), fill, owner))


def rotate(img: Any, angle: float, interpolation: Any = InterpolationMode.NEAREST, expand: bool = False,
           center: Sequence[float] | None = None, fill: Any = None) -> Any:
    """Rotate by ``angle`` degrees counter-clockwise about the centre (torchvision's direction)."""
    if expand:
        raise NotImplementedError("rotate: expand=True is not supported (the output keeps the input size)")
    return _affine(img, -float(angle), (0.0, 0.0), 1.0, (0.0, 0.0), interpolation, fill, center,
                   f"rotate(angle={angle})")


def affine(img: Any, angle: float, translate: Sequence[float], scale: float, shear: Any,
           interpolation: Any = InterpolationMode.NEAREST, fill: Any = None,
           center: Sequence[float] | None = None) -> Any:
    """Rotate by ``angle`` degrees (clockwise on screen, torchvision's ``affine`` sign), scale by
    ``scale`` about the centre, shear by ``shear`` degrees (x, or (x, y)), then translate by
    ``translate`` = (tx, ty) pixels (right, down)."""
    owner = f"affine(angle={angle}, translate={translate}, scale={scale}, shear={shear})"
    if not isinstance(translate, Sequence) or len(translate) != 2:
        raise ValueError(f"{owner}: translate should be a sequence of two numbers")
    if scale <= 0:
        raise ValueError(f"{owner}: scale should be positive")
    shear = (float(shear), 0.0) if isinstance(shear, numbers.Number) else tuple(float(s) for s in shear)
    if len(shear) == 1:
        shear = (shear[0], 0.0)
    return _affine(img, float(angle), tuple(float(t) for t in translate), float(scale), shear, interpolation,
                   fill, center, owner)


def _setup_angle(x: Any, name: str, sizes: tuple[int, ...], owner: str) -> list[float]:
    if isinstance(x, numbers.Number):
        if x < 0:
            raise ValueError(f"{owner}: if {name} is a single number, it must be positive, got {x}")
        return [float(-x), float(x)]
    if not isinstance(x, Sequence) or len(x) not in sizes:
        raise ValueError(f"{owner}: {name} should be a number or a sequence of length {' or '.join(map(str, sizes))}")
    return [float(v) for v in x]


def _span(lo_hi: Sequence[float], u: np.ndarray) -> np.ndarray:
    """Uniform on [lo, hi) from uniforms on [0, 1), as ``uniform_(lo, hi)``."""
    return lo_hi[0] + (lo_hi[1] - lo_hi[0]) * u


class RandomRotation:
    """Rotate each image by an angle uniform in ``degrees`` (a number d means (-d, d)),
    counter-clockwise for positive angles; ``fill`` for the corners that come from outside."""

    def __init__(self, degrees: Any, interpolation: Any = InterpolationMode.NEAREST, expand: bool = False,
                 center: Sequence[float] | None = None, fill: Any = 0, *,
                 generator: dn_random.Generator | None = None) -> None:
        self.degrees = _setup_angle(degrees, "degrees", (2,), "RandomRotation")
        self.interpolation = _mode(interpolation, "RandomRotation")
        if expand:
            raise NotImplementedError("RandomRotation: expand=True is not supported (per-sample angles would give "
                                      "per-sample output sizes); the output keeps the input size")
        self.expand = expand
        if center is not None and (not isinstance(center, Sequence) or len(center) != 2):
            raise ValueError(f"RandomRotation: center should be a sequence of length 2, got {center!r}")
        self.center = center
        if fill is None or not isinstance(fill, numbers.Number | Sequence):
            raise TypeError(f"RandomRotation: fill should be a number or a sequence, got {fill!r}")
        self.fill = fill
        self.generator = generator

    def __call__(self, img: Any) -> Any:
        image = Image(repr(self), img)
        angles = _span(self.degrees, uniforms(self.generator, image.n, 1)[:, 0])
        h, w = image.array.shape[-2:]
        n = image.n
        matrix = inverse_affine_matrices(-angles, np.zeros((n, 2)), np.ones(n), np.zeros((n, 2)),
                                         _center(self.center, h, w))
        return image.give(apply_affine(image.array, matrix, self.interpolation, self.fill, repr(self)))

    def __repr__(self) -> str:
        s = f"{type(self).__name__}(degrees={self.degrees}, interpolation={self.interpolation.value}"
        s += f", expand={self.expand}"
        s += f", center={self.center}" if self.center is not None else ""
        s += f", fill={self.fill}" if self.fill is not None else ""
        return s + ")"


def _check_range(value: Any, name: str, owner: str, low: float, high: float, open_low: bool = False) -> Any:
    if value is None:
        return None
    if not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"{owner}: {name} should be a sequence of length 2, got {value!r}")
    for v in value:
        if not isinstance(v, numbers.Number) or not (low < v if open_low else low <= v) or not v <= high:
            raise ValueError(f"{owner}: {name} values should be in {'(' if open_low else '['}{low}, {high}], "
                             f"got {value!r}")
    return value


class RandomAffine:
    """Per image: an angle uniform in ``degrees`` (clockwise positive, torchvision's ``affine`` sign),
    a shift of round(uniform(-a·W, a·W)) and round(uniform(-b·H, b·H)) pixels for
    ``translate=(a, b)``, a ``scale`` uniform in (lo, hi), a shear uniform in ``shear`` (degrees; a
    number s means x in (-s, s), four numbers give x and y ranges)."""

    def __init__(self, degrees: Any, translate: Sequence[float] | None = None, scale: Sequence[float] | None = None,
                 shear: Any = None, interpolation: Any = InterpolationMode.NEAREST, fill: Any = 0,
                 center: Sequence[float] | None = None, *, generator: dn_random.Generator | None = None) -> None:
        owner = "RandomAffine"
        self.degrees = _setup_angle(degrees, "degrees", (2,), owner)
        self.translate = _check_range(translate, "translate", owner, 0.0, 1.0)
        self.scale = _check_range(scale, "scale", owner, 0.0, float("inf"), open_low=True)
        self.shear = None if shear is None else _setup_angle(shear, "shear", (2, 4), owner)
        self.interpolation = _mode(interpolation, owner)
        if fill is None or not isinstance(fill, numbers.Number | Sequence):
            raise TypeError(f"{owner}: fill should be a number or a sequence, got {fill!r}")
        self.fill = fill
        if center is not None and (not isinstance(center, Sequence) or len(center) != 2):
            raise ValueError(f"{owner}: center should be a sequence of length 2, got {center!r}")
        self.center = center
        self.generator = generator

    def get_params(self, n: int, h: int, w: int) -> dict[str, np.ndarray]:
        """Per-sample angle (N,), translate (N, 2) in whole pixels, scale (N,), shear (N, 2)."""
        u = uniforms(self.generator, n, 6)
        angle = _span(self.degrees, u[:, 0])
        translate = np.zeros((n, 2))
        if self.translate is not None:
            max_dx, max_dy = self.translate[0] * w, self.translate[1] * h
            translate = np.rint(np.stack([_span((-max_dx, max_dx), u[:, 1]), _span((-max_dy, max_dy), u[:, 2])], 1))
        scale = np.ones(n) if self.scale is None else _span(self.scale, u[:, 3])
        shear = np.zeros((n, 2))
        if self.shear is not None:
            shear[:, 0] = _span(self.shear[:2], u[:, 4])
            if len(self.shear) == 4:
                shear[:, 1] = _span(self.shear[2:], u[:, 5])
        return {"angle": angle, "translate": translate, "scale": scale, "shear": shear}

    def __call__(self, img: Any) -> Any:
        image = Image(repr(self), img)
        h, w = image.array.shape[-2:]
        p = self.get_params(image.n, h, w)
        matrix = inverse_affine_matrices(p["angle"], p["translate"], p["scale"], p["shear"],
                                         _center(self.center, h, w))
        return image.give(apply_affine(image.array, matrix, self.interpolation, self.fill, repr(self)))

    def __repr__(self) -> str:
        s = f"{type(self).__name__}(degrees={self.degrees}"
        s += f", translate={self.translate}" if self.translate is not None else ""
        s += f", scale={self.scale}" if self.scale is not None else ""
        s += f", shear={self.shear}" if self.shear is not None else ""
        s += f", interpolation={self.interpolation.value}" if self.interpolation != InterpolationMode.NEAREST else ""
        s += f", fill={self.fill}" if self.fill != 0 else ""
        s += f", center={self.center}" if self.center is not None else ""
        return s + ")"
