"""Multi-digit canvases built from real MNIST digits: the shared data of the segmentation,
detection and captioning applications.

A canvas is a ``size x size`` black image with ``digits[0]``..``digits[1]`` MNIST digits pasted at
random positions whose ink rectangles do not overlap (so every pixel belongs to at most one digit).
Each digit is first cropped to its ink (pixels > 0), optionally rescaled by a random factor in
``scale``, then pasted. Labels come in the three forms the three tasks need:

* ``masks``: per-pixel class, 0 = background and ``1 + digit`` where the pasted digit's intensity is
  above ``ink`` (0.5 by default; MNIST strokes are anti-aliased, so the faint rim counts as background);
* ``boxes``: ``(x1, y1, x2, y2)`` per digit in pixel-edge coordinates, tight around that digit's mask
  pixels (a digit covering columns 3..9 has ``x1 = 3, x2 = 10``), the convention of torchvision.ops;
* ``describe(i)``: the digits read left to right by box centre, for captions.

Held-out canvases must be built from the ``test`` split's digits: ``load_canvas_split('test', ...)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["CanvasSet", "load_canvas_split", "make_canvases"]

_MAX_TRIES = 200


@dataclass
class CanvasSet:
    """``count`` canvases with their per-pixel masks, boxes, classes and source-digit indices."""

    images: np.ndarray  # (count, 1, size, size) float32 in [0, 1]
    masks: np.ndarray  # (count, size, size) int64, 0 = background, 1 + class on digit pixels
    boxes: list[np.ndarray]  # per canvas (k, 4) float32 (x1, y1, x2, y2)
    classes: list[np.ndarray]  # per canvas (k,) int64 digit classes, in the order of boxes
    sources: list[np.ndarray] = field(default_factory=list)  # per canvas (k,) indices into the input images
    ink: float = 0.5

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def describe(self, i: int) -> list[int]:
        """The digits of canvas ``i`` read left to right (sorted by box centre x, ties by centre y)."""
        box, cls = self.boxes[i], self.classes[i]
        cx, cy = (box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2
        order = np.lexsort((cy, cx))
        return [int(c) for c in cls[order]]


def _resize_bilinear(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resampling of a 2-D image to (height, width), pixel centres aligned
    (``align_corners=False``, as ``F.interpolate``)."""
    h, w = img.shape

    def coords(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
        lo = np.floor(src).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (src - lo).astype(np.float32)

    y0, y1, wy = coords(height, h)
    x0, x1, wx = coords(width, w)
    top = img[y0][:, x0] * (1 - wx) + img[y0][:, x1] * wx
    bottom = img[y1][:, x0] * (1 - wx) + img[y1][:, x1] * wx
    return (top * (1 - wy)[:, None] + bottom * wy[:, None]).astype(np.float32)


def _ink_crop(img: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(img > 0)
    if rows.size == 0:
        return img[:1, :1]
    return img[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def _check_args(images: np.ndarray, labels: np.ndarray, count: int, size: int, digits: tuple[int, int],
                scale: tuple[float, float]) -> np.ndarray:
    imgs = np.asarray(images, dtype=np.float32)
    if imgs.ndim == 4 and imgs.shape[1] == 1:
        imgs = imgs[:, 0]
    if imgs.ndim != 3 or imgs.shape[1:] != (28, 28):
        raise ValueError(f"make_canvases: images must be (N, 28, 28) or (N, 1, 28, 28), got shape {images.shape}")
    if np.asarray(labels).shape != (imgs.shape[0],):
        raise ValueError(f"make_canvases: labels must be ({imgs.shape[0]},), got shape {np.asarray(labels).shape}")
    lo, hi = digits
    if not 1 <= lo <= hi:
        raise ValueError(f"make_canvases: digits must be (min, max) with 1 <= min <= max, got {digits}")
    if not 0 < scale[0] <= scale[1]:
        raise ValueError(f"make_canvases: scale must be (min, max) with 0 < min <= max, got {scale}")
    if size < int(np.ceil(28 * scale[1])):
        raise ValueError(f"make_canvases: size={size} is smaller than a digit at scale {scale[1]} "
                         f"({int(np.ceil(28 * scale[1]))} pixels)")
    if count < 0:
        raise ValueError(f"make_canvases: count must be >= 0, got {count}")
    return imgs


def _place(rng: np.random.Generator, placed: list[tuple[int, int, int, int]], h: int, w: int,
           size: int, gap: int) -> tuple[int, int] | None:
    for _ in range(_MAX_TRIES):
        y, x = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
        if all(y + h + gap <= py or py + ph + gap <= y or x + w + gap <= px or px + pw + gap <= x
               for py, px, ph, pw in placed):
            return y, x
    return None


def _one_canvas(rng: np.random.Generator, imgs: np.ndarray, labels: np.ndarray, size: int, k: int,
                scale: tuple[float, float], ink: float, gap: int):
    canvas = np.zeros((size, size), np.float32)
    mask = np.zeros((size, size), np.int64)
    placed: list[tuple[int, int, int, int]] = []
    boxes, classes, sources = [], [], []
    while len(placed) < k:
        src = int(rng.integers(0, imgs.shape[0]))
        digit = imgs[src]
        s = float(rng.uniform(*scale)) if scale[0] != scale[1] else scale[0]
        if s != 1.0:
            digit = _resize_bilinear(digit, max(1, round(28 * s)), max(1, round(28 * s)))
        digit = _ink_crop(digit)
        if not (digit > ink).any():
            continue
        h, w = digit.shape
        pos = _place(rng, placed, h, w, size, gap)
        if pos is None:
            break
        y, x = pos
        placed.append((y, x, h, w))
        canvas[y:y + h, x:x + w] = digit
        on = digit > ink
        mask[y:y + h, x:x + w][on] = 1 + int(labels[src])
        rows, cols = np.nonzero(on)
        boxes.append([x + cols.min(), y + rows.min(), x + cols.max() + 1, y + rows.max() + 1])
        classes.append(int(labels[src]))
        sources.append(src)
    return canvas, mask, np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes, np.int64), \
        np.asarray(sources, np.int64)


def make_canvases(images: np.ndarray, labels: np.ndarray, count: int, size: int = 64,
                  digits: tuple[int, int] = (1, 3), seed: int = 0, *, scale: tuple[float, float] = (1.0, 1.0),
                  ink: float = 0.5, gap: int = 1) -> CanvasSet:
    """``count`` canvases of ``size x size`` with between ``digits[0]`` and ``digits[1]`` digits each,
    drawn (with replacement) from ``images``/``labels`` by a NumPy generator seeded with ``seed``.
    Ink rectangles of different digits are at least ``gap`` pixels apart. A canvas on which the
    remaining digits do not fit after many tries is drawn again, so every canvas has at least
    ``digits[0]`` digits."""
    imgs = _check_args(images, labels, count, size, digits, scale)
    labels = np.asarray(labels, np.int64)
    rng = np.random.default_rng(seed)
    out_img = np.zeros((count, 1, size, size), np.float32)
    out_mask = np.zeros((count, size, size), np.int64)
    boxes, classes, sources = [], [], []
    for i in range(count):
        k = int(rng.integers(digits[0], digits[1] + 1))
        for _ in range(_MAX_TRIES):
            canvas, mask, box, cls, src = _one_canvas(rng, imgs, labels, size, k, scale, ink, gap)
            if len(cls) >= digits[0]:
                break
        else:
            raise ValueError(f"make_canvases: cannot fit {digits[0]} digits on a {size}x{size} canvas; "
                             "use a larger size or fewer digits")
        out_img[i, 0], out_mask[i] = canvas, mask
        boxes.append(box)
        classes.append(cls)
        sources.append(src)
    return CanvasSet(out_img, out_mask, boxes, classes, sources, ink)


def load_canvas_split(split: str = "train", count: int = 1000, size: int = 64, digits: tuple[int, int] = (1, 3),
                      seed: int = 0, **kw) -> CanvasSet:
    """Canvases made only from the digits of MNIST's ``split`` ('train': 4,000 digits, 'test': the
    1,000 held-out ones); keyword arguments go to ``make_canvases`` (``scale=``, ``ink=``, ``gap=``)."""
    from deepnum.data.datasets.mnist import mnist_arrays

    images, labels = mnist_arrays(split)
    return make_canvases(images, labels, count, size=size, digits=digits, seed=seed, **kw)
