"""``ImageFolder``: images laid out one sub-folder per class (``root/cat/001.png``), as torchvision's.

Classes are the sub-folder names sorted, ``class_to_idx`` maps each to its index; samples are the
image files of every class (by extension, case-insensitive), sorted by path. Images are opened with
Pillow when read, converted to ``mode`` ("RGB" or "L") and returned as float32 (C, H, W) in [0, 1].
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deepnum.data.dataset import Dataset
from deepnum.data.datasets._common import require_package
from deepnum.tensor import Tensor

__all__ = ["IMG_EXTENSIONS", "ImageFolder"]

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
PILLOW_INSTALL = "pip install pillow"


class ImageFolder(Dataset):
    """Samples ``(image, label)``: image a float32 Tensor (C, H, W) in [0, 1] (C = 3 for "RGB",
    1 for "L") passed through ``transform``, label the class index as a 0-d int64 Tensor."""

    def __init__(self, root: str | Path, transform: Callable[[Tensor], Any] | None = None,
                 target_transform: Callable[[Tensor], Any] | None = None, mode: str = "RGB",
                 extensions: tuple[str, ...] = IMG_EXTENSIONS) -> None:
        require_package("PIL", PILLOW_INSTALL, "image_folder")
        if mode not in ("RGB", "L"):
            raise ValueError(f"ImageFolder: mode must be 'RGB' or 'L', got {mode!r}")
        for label, fn in (("transform", transform), ("target_transform", target_transform)):
            if fn is not None and not callable(fn):
                raise TypeError(f"ImageFolder: {label} must be callable, got {type(fn).__name__}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"ImageFolder: root {self.root} is not a folder")
        self.classes = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not self.classes:
            raise FileNotFoundError(f"ImageFolder: no class sub-folders in {self.root}")
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        exts = tuple(e.lower() for e in extensions)
        self.samples: list[tuple[str, int]] = []
        for c in self.classes:
            files = sorted(p for p in (self.root / c).rglob("*") if p.is_file() and p.suffix.lower() in exts)
            self.samples.extend((str(p), self.class_to_idx[c]) for p in files)
        if not self.samples:
            raise FileNotFoundError(f"ImageFolder: no image files ({', '.join(exts)}) in the class folders of "
                                    f"{self.root}")
        self.targets = [t for _, t in self.samples]
        self.imgs = self.samples
        self.transform, self.target_transform, self.mode = transform, target_transform, mode

    def __len__(self) -> int:
        return len(self.samples)

    def load_image(self, path: str) -> np.ndarray:
        """The image at ``path`` as a float32 array (C, H, W) in [0, 1]."""
        from PIL import Image

        with Image.open(path) as img:
            array = np.asarray(img.convert(self.mode), dtype=np.uint8)
        if array.ndim == 2:
            array = array[:, :, None]
        return np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        index = int(index.item() if isinstance(index, Tensor) else index)
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"ImageFolder: index {index} is out of range for a dataset of {n} images")
        path, target = self.samples[index]
        image: Any = Tensor._make(self.load_image(path))
        label: Any = Tensor._make(np.array(target, dtype=np.int64))
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def __repr__(self) -> str:
        return (f"ImageFolder(root={str(self.root)!r}, classes={len(self.classes)}, images={len(self)}, "
                f"mode={self.mode!r})")
