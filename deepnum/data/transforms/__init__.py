"""Image transforms and augmentations with torchvision.transforms' names and semantics, on float
images (C, H, W) with values in [0, 1], or batches (N, C, H, W) with one random draw per sample.

``Compose([RandomCrop(28, padding=4), RandomHorizontalFlip(), Normalize((0.1307,), (0.3081,))])``;
``RandomChoice([MixUp(num_classes=10), CutMix(num_classes=10)])(images, labels)`` on a batch.

Every random transform takes ``generator=`` (a ``deepnum.Generator``) and otherwise draws from the
global generator, so ``deepnum.manual_seed(s)`` makes a pipeline reproducible. Float32 stays float32.
Transforms are preprocessing: their outputs do not track gradients.

Files: ``_basic`` (Compose, Lambda, RandomChoice, RandomApply, ToTensor, Normalize), ``_geometry``
(crops, flips, pad), ``_affine`` (RandomRotation, RandomAffine: inverse-mapped sampling, nearest or
bilinear), ``_color`` (ColorJitter, RandomErasing), ``_mix`` (MixUp, CutMix), ``functional``.
"""
from deepnum.data.transforms import functional
from deepnum.data.transforms._affine import InterpolationMode, RandomAffine, RandomRotation
from deepnum.data.transforms._basic import Compose, Lambda, Normalize, RandomApply, RandomChoice, ToTensor
from deepnum.data.transforms._color import ColorJitter, RandomErasing
from deepnum.data.transforms._geometry import CenterCrop, RandomCrop, RandomHorizontalFlip, RandomVerticalFlip
from deepnum.data.transforms._mix import CutMix, MixUp

__all__ = ["CenterCrop", "ColorJitter", "Compose", "CutMix", "InterpolationMode", "Lambda", "MixUp", "Normalize",
           "RandomAffine", "RandomApply", "RandomChoice", "RandomCrop", "RandomErasing", "RandomHorizontalFlip",
           "RandomRotation", "RandomVerticalFlip", "ToTensor", "functional"]
