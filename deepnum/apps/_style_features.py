"""The images and the feature network of ``deepnum style`` (``deepnum/apps/style_transfer.py``).

The feature network is the front of VGG-19 (Simonyan & Zisserman 2015, configuration E) up to
``relu4_1``, the part Gatys et al. 2016 take their style and content features from, with two changes
they recommend or that the setting needs: average instead of max pooling (Gatys et al., section 2:
"improves the gradient flow"), and, because no ImageNet weights can be downloaded here, *random*
He-normal weights by default. Random convolutional features still carry texture statistics: their
Gram matrices synthesise textures (Ustyuzhaninov, Brendel, Gatys & Bethge, "What does it take to
generate natural textures?", ICLR 2017) and transfer style to a degree (He, Wang & Hopcroft, "A
powerful generative model using random weights for the deep image representation", NeurIPS 2016).
With ``weights=`` a torchvision VGG-19 ``state_dict`` (``features.N.weight`` keys, .pt/.pth or
.safetensors) is loaded instead, and the layer indices are torchvision's, so it is the original method.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from deepnum.creation import tensor
from deepnum.models.vgg import CONFIGS
from deepnum.nn import init
from deepnum.nn.modules.activation import ReLU
from deepnum.nn.modules.container import Sequential
from deepnum.nn.modules.conv import Conv2d
from deepnum.nn.modules.module import Module
from deepnum.nn.modules.pooling import AvgPool2d
from deepnum.tensor import Tensor

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "VGGFeatures", "load_image", "sample_image"]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
SAMPLE_IMAGES = ("china.jpg", "flower.jpg")


def _resize(array: np.ndarray, size: int, what: str) -> np.ndarray:
    """An (H, W, 3) uint8 array resized (Lanczos) so that its height is ``size``, as float32 (3, H, W) in [0, 1]."""
    from PIL import Image

    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"style transfer: {what} must be an RGB image (H, W, 3), got shape {array.shape}")
    h, w = array.shape[:2]
    width = max(1, round(w * size / h))
    img = Image.fromarray(array).resize((width, size), Image.Resampling.LANCZOS)
    return np.ascontiguousarray(np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0))


def sample_image(name: str, size: int) -> np.ndarray:
    """One of the two photos scikit-learn ships (``china.jpg``, ``flower.jpg``), ``size`` pixels high."""
    if name not in SAMPLE_IMAGES:
        raise ValueError(f"style transfer: sample image must be one of {SAMPLE_IMAGES}, got {name!r}")
    try:
        from sklearn.datasets import load_sample_image
    except ImportError:
        raise ImportError("the sample images come from scikit-learn: pip install 'deepnum[data]' "
                          "(or pass your own files with --content/--style)") from None
    return _resize(load_sample_image(name), size, name)


def load_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """An image file (any mode Pillow reads; converted to RGB), ``size`` pixels high, (3, H, W) in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB"))
    except FileNotFoundError:
        raise FileNotFoundError(f"style transfer: image file {os.fspath(path)!r} does not exist") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"style transfer: cannot read image {os.fspath(path)!r}: {exc}") from None
    return _resize(array, size, os.fspath(path))


class VGGFeatures(Module):
    """VGG-19's convolutions up to ``relu4_1`` with average pooling, returning the activations of the
    named layers (``relu1_1`` ... ``relu4_1``). ``width`` divides the filter counts (1: VGG's 64, 128,
    256, 512; the default 2 halves them, four times cheaper). Reflection padding by default: with VGG's
    zero padding the optimised image grows coloured seams along its borders. Weights are He-normal
    (fan_out) from the current deepnum generator, and frozen. Input: RGB in [0, 1], normalised with
    ImageNet's statistics."""

    def __init__(self, width: int = 2, padding_mode: str = "reflect") -> None:
        super().__init__()
        if int(width) < 1:
            raise ValueError(f"VGGFeatures: width must be a positive divisor of the filter counts, got {width}")
        self.width = int(width)
        layers: list[Module] = []
        self.names: list[str] = []
        channels, stage, conv = 3, 1, 0
        for item in CONFIGS[19][:12]:   # up to and including conv4_1
            if item == "M":
                layers.append(AvgPool2d(kernel_size=2, stride=2))
                self.names.append(f"pool{stage}")
                stage, conv = stage + 1, 0
                continue
            conv += 1
            out = max(1, int(item) // self.width)
            layers += [Conv2d(channels, out, kernel_size=3, padding=1, padding_mode=padding_mode), ReLU()]
            self.names += [f"conv{stage}_{conv}", f"relu{stage}_{conv}"]
            channels = out
        self.features = Sequential(*layers)
        for module in self.features:
            if isinstance(module, Conv2d):
                init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                init.zeros_(module.bias)
        self.requires_grad_(False)
        self.register_buffer("mean", tensor(IMAGENET_MEAN.reshape(1, 3, 1, 1)), persistent=False)
        self.register_buffer("std", tensor(IMAGENET_STD.reshape(1, 3, 1, 1)), persistent=False)

    def load_vgg19(self, path: str | os.PathLike) -> None:
        """Load the ``features.*`` tensors of a torchvision VGG-19 ``state_dict`` (needs ``width=1``)."""
        if self.width != 1:
            raise ValueError(f"VGGFeatures: pretrained VGG-19 weights need width=1, got width={self.width}")
        state = _read_state(path)
        wanted = {f"features.{k}": v for k, v in self.features.state_dict().items()}
        missing = [k for k in wanted if k not in state]
        if missing:
            raise KeyError(f"VGGFeatures: {os.fspath(path)!r} is not a VGG-19 state_dict: missing {missing[:4]}")
        self.features.load_state_dict({k[len("features."):]: state[k] for k in wanted})

    def forward(self, x: Tensor, layers: list[str]) -> dict[str, Tensor]:  # type: ignore[override]
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"VGGFeatures: expected RGB images (N, 3, H, W), got {tuple(x.shape)}")
        unknown = [name for name in layers if name not in self.names]
        if unknown:
            raise ValueError(f"VGGFeatures: unknown layer(s) {unknown}; the layers are {self.names}")
        out: dict[str, Tensor] = {}
        h = (x - self.mean) / self.std
        last = max(self.names.index(name) for name in layers)
        for name, module in zip(self.names[:last + 1], self.features, strict=False):
            h = module(h)
            if name in layers:
                out[name] = h
        return out


def _read_state(path: str | os.PathLike) -> dict[str, Any]:
    """A state_dict from a .safetensors file or a torch .pt/.pth file (read without torch)."""
    from deepnum import io

    if os.fspath(path).endswith(".safetensors"):
        return dict(io.load(path))
    state = io.load_torch(path)
    if not isinstance(state, dict):
        raise ValueError(f"VGGFeatures: {os.fspath(path)!r} does not hold a state_dict")
    return state
