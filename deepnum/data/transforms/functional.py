"""The functional forms of the transforms, as torchvision.transforms.functional: deterministic
versions taking the parameters explicitly (``hflip(img)``, ``rotate(img, 90)``,
``adjust_brightness(img, 1.5)``)."""
from deepnum.data.transforms._affine import InterpolationMode, affine, rotate
from deepnum.data.transforms._basic import normalize
from deepnum.data.transforms._color import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    erase,
    rgb_to_grayscale,
)
from deepnum.data.transforms._geometry import center_crop, crop, hflip, pad, vflip

__all__ = ["InterpolationMode", "adjust_brightness", "adjust_contrast", "adjust_hue", "adjust_saturation", "affine",
           "center_crop", "crop", "erase", "hflip", "normalize", "pad", "rgb_to_grayscale", "rotate", "vflip"]
