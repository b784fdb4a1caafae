"""VGG (K. Simonyan, A. Zisserman, "Very deep convolutional networks for large-scale image
recognition", ICLR 2015), in torchvision's form.

The paper's Table 1 configurations A (11 weight layers), B (13), D (16) and E (19): stacks of 3×3
convolutions (padding 1, so the size is kept) with ReLU, 2×2 max pooling after each of the five
stages (64, 128, 256, 512, 512 filters), then three fully connected layers. ``vgg*_bn`` put a
BatchNorm2d between each convolution and its ReLU (not in the paper; torchvision's variant, after
Ioffe & Szegedy 2015). The ``state_dict`` keys and shapes are torchvision's, so its weights load
unchanged::

    features:   [Conv2d(c_in, c, 3, padding=1) (→ BatchNorm2d(c)) → ReLU] × n, MaxPool2d(2) — five stages
    avgpool:    AdaptiveAvgPool2d((7, 7))   (224 px gives 7×7 maps already; a 32 px image gives 1×1,
                                             which the adaptive pool repeats to 7×7)
    classifier: Linear(25088, 4096) → ReLU → Dropout → Linear(4096, 4096) → ReLU → Dropout → Linear(4096, 1000)

Parameters with the defaults (equal to torchvision's): vgg11 132,863,336; vgg13 133,047,848;
vgg16 138,357,544; vgg19 143,667,240; the ``_bn`` variants add 4 numbers per convolution channel
(γ, β trained; running mean and variance are buffers, not counted): vgg11_bn 132,868,840,
vgg13_bn 133,053,736, vgg16_bn 138,365,992, vgg19_bn 143,678,248.

Initialisation as torchvision's: convolution weights N(0, 2/fan_out) (He et al. 2015, fan_out mode),
biases 0; BatchNorm γ = 1, β = 0; linear weights N(0, 0.01²), biases 0.

Small variants (``vgg11_small`` ... ``vgg19_bn_small``) for 28-32 px images: the same configurations
with a quarter of the filters (16, 32, 64, 128, 128), max pooling with ``ceil_mode=True`` so that 28 px
(28→14→7→4→2→1) and 32 px (32→16→8→4→2→1) both reach 1×1, and a compact head: global average
pooling, dropout and one linear layer (the three-layer head learned far slower on small data: 38 %
against 81 % MNIST test accuracy for vgg11_small after 2 epochs on 2,000 images). For 1×28×28 input
and 10 classes: vgg11_small 578,122 parameters, vgg16_small 921,786, vgg19_bn_small 1,256,634.
"""
from __future__ import annotations

from collections.abc import Sequence

from deepnum.models import register_model
from deepnum.nn import init
from deepnum.nn.modules.activation import ReLU
from deepnum.nn.modules.batchnorm import BatchNorm2d
from deepnum.nn.modules.container import Sequential
from deepnum.nn.modules.conv import Conv2d
from deepnum.nn.modules.dropout import Dropout
from deepnum.nn.modules.linear import Linear
from deepnum.nn.modules.module import Module
from deepnum.nn.modules.pooling import AdaptiveAvgPool2d, MaxPool2d
from deepnum.tensor import Tensor

__all__ = [
    "CONFIGS", "VGG", "vgg11", "vgg11_bn", "vgg11_bn_small", "vgg11_small", "vgg13", "vgg13_bn", "vgg13_bn_small",
    "vgg13_small", "vgg16", "vgg16_bn", "vgg16_bn_small", "vgg16_small", "vgg19", "vgg19_bn", "vgg19_bn_small",
    "vgg19_small",
]

_PAPER = "Simonyan & Zisserman 2015, Very deep convolutional networks for large-scale image recognition"

# Table 1 of the paper: filters per 3×3 convolution, "M" for a 2×2 max pooling.
CONFIGS: dict[int, tuple[int | str, ...]] = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),                       # A
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),              # B
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),  # D
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"),                                                            # E
}


def _features(config: Sequence[int | str], in_chans: int, batch_norm: bool, ceil_mode: bool) -> Sequential:
    layers: list[Module] = []
    channels = in_chans
    for item in config:
        if item == "M":
            layers.append(MaxPool2d(kernel_size=2, stride=2, ceil_mode=ceil_mode))
            continue
        layers.append(Conv2d(channels, int(item), kernel_size=3, padding=1))
        if batch_norm:
            layers.append(BatchNorm2d(int(item)))
        layers.append(ReLU(inplace=True))
        channels = int(item)
    return Sequential(*layers)


class VGG(Module):
    """A VGG network: ``config`` lists the filters of each 3×3 convolution and "M" for each max
    pooling (``CONFIGS``); the head pools to ``pool_size``×``pool_size`` and has two hidden layers of
    ``hidden`` units with dropout (``hidden=None``: dropout and one linear layer). Input
    ``(N, in_chans, H, W)`` (``image_size`` is only the default ``input_shape``), output
    ``(N, num_classes)`` logits."""

    def __init__(self, config: Sequence[int | str], num_classes: int = 1000, *, in_chans: int = 3,
                 batch_norm: bool = False, dropout: float = 0.5, hidden: int | None = 4096, pool_size: int = 7,
                 ceil_mode: bool = False, init_weights: bool = True, image_size: int = 224) -> None:
        super().__init__()
        config = tuple(config)
        widths = [c for c in config if c != "M"]
        if not widths or any(not isinstance(c, int) or c < 1 for c in widths):
            raise ValueError(f"VGG: config must list positive filter counts and 'M' for pooling, got {config}")
        if min(int(num_classes), int(in_chans), int(pool_size)) < 1 or (hidden is not None and int(hidden) < 1):
            raise ValueError(f"VGG: num_classes, in_chans, hidden and pool_size must be >= 1, got "
                             f"num_classes={num_classes}, in_chans={in_chans}, hidden={hidden}, pool_size={pool_size}")
        self.num_classes, self.in_chans, self.batch_norm = int(num_classes), int(in_chans), bool(batch_norm)
        self.image_size = int(image_size)
        pools = config.count("M")
        # floor-mode pooling halves with rounding down: 2**pools pixels reach 1×1; ceil mode keeps 1×1 alive
        self.min_size = 2 ** pools if not ceil_mode else 1
        self.features = _features(config, self.in_chans, self.batch_norm, ceil_mode)
        self.avgpool = AdaptiveAvgPool2d((pool_size, pool_size))
        features = widths[-1] * pool_size * pool_size
        self.classifier = Sequential(
            Linear(features, hidden), ReLU(inplace=True), Dropout(p=dropout),
            Linear(hidden, hidden), ReLU(inplace=True), Dropout(p=dropout), Linear(hidden, self.num_classes),
        ) if hidden is not None else Sequential(Dropout(p=dropout), Linear(features, self.num_classes))
        if init_weights:
            self.init_weights()

    def init_weights(self) -> None:
        """torchvision's initialisation: He-normal (fan_out, ReLU) convolutions, unit BatchNorm,
        N(0, 0.01²) linear weights, zero biases."""
        for module in self.modules():
            if isinstance(module, Conv2d):
                init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    init.zeros_(module.bias)
            elif isinstance(module, BatchNorm2d):
                init.ones_(module.weight)
                init.zeros_(module.bias)
            elif isinstance(module, Linear):
                init.normal_(module.weight, 0.0, 0.01)
                init.zeros_(module.bias)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The default input size (C, image_size, image_size); any H, W >= ``min_size`` works."""
        return (self.in_chans, self.image_size, self.image_size)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_chans or min(x.shape[2], x.shape[3]) < self.min_size:
            hint = " (a batch of images has 4 dims; add the batch dim with x.unsqueeze(0))" if x.ndim == 3 else ""
            raise ValueError(f"VGG(batch_norm={self.batch_norm}): expected input (N, {self.in_chans}, H, W) with "
                             f"H, W >= {self.min_size}, got {tuple(x.shape)}{hint}")
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def _vgg(depth: int, batch_norm: bool, num_classes: int, in_chans: int, dropout: float) -> VGG:
    return VGG(CONFIGS[depth], num_classes, in_chans=in_chans, batch_norm=batch_norm, dropout=dropout)


def _vgg_small(depth: int, batch_norm: bool, num_classes: int, in_chans: int, dropout: float) -> VGG:
    """A quarter of the filters, ceil-mode pooling (28 and 32 px reach 1×1) and a 256-unit head."""
    config = tuple(c if c == "M" else c // 4 for c in CONFIGS[depth])
    return VGG(config, num_classes, in_chans=in_chans, batch_norm=batch_norm, dropout=dropout, hidden=None,
               pool_size=1, ceil_mode=True, image_size=28 if in_chans == 1 else 32)


@register_model(paper=_PAPER)
def vgg11(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> VGG:
    """VGG-11 (configuration A), 132,863,336 parameters."""
    return _vgg(11, False, num_classes, in_chans, dropout)


@register_model(paper=_PAPER)
def vgg13(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> VGG:
    """VGG-13 (configuration B), 133,047,848 parameters."""
    return _vgg(13, False, num_classes, in_chans, dropout)


@register_model(paper=_PAPER)
def vgg16(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> VGG:
    """VGG-16 (configuration D), 138,357,544 parameters."""
    return _vgg(16, False, num_classes, in_chans, dropout)


@register_model(paper=_PAPER)
def vgg19(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> VGG:
    """VGG-19 (configuration E), 143,667,240 parameters."""
    return _vgg(19, False, num_classes, in_chans, dropout)


@register_model(paper=_PAPER)
def vgg11_bn(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> VGG:
    """VGG-11 with BatchNorm, 132,868,840 parameters."""
    return _vgg(11, True, num_classes, in_chans, dropout)


@register_model(paper=_PAPER)
def vgg13_bn(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> VGG:
    """VGG-13 with BatchNorm, 133,053,736 parameters."""
    return _vgg(13, True, num_classes, in_chans, dropout)


@register_model(paper=_PAPER)
def vgg16_bn(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> VGG:
    """VGG-16 with BatchNorm, 138,365,992 parameters."""
    return _vgg(16, True, num_classes, in_chans, dropout)


@register_model(paper=_PAPER)
def vgg19_bn(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> VGG:
    """VGG-19 with BatchNorm, 143,678,248 parameters."""
    return _vgg(19, True, num_classes, in_chans, dropout)


@register_model(paper=_PAPER, small_input=True)
def vgg11_small(num_classes: int = 10, in_chans: int = 1, dropout: float = 0.5) -> VGG:
    """VGG-11's layout at a quarter width for 28-32 px images, compact head."""
    return _vgg_small(11, False, num_classes, in_chans, dropout)


@register_model(paper=_PAPER, small_input=True)
def vgg13_small(num_classes: int = 10, in_chans: int = 1, dropout: float = 0.5) -> VGG:
    """VGG-13's layout at a quarter width for 28-32 px images, compact head."""
    return _vgg_small(13, False, num_classes, in_chans, dropout)


@register_model(paper=_PAPER, small_input=True)
def vgg16_small(num_classes: int = 10, in_chans: int = 1, dropout: float = 0.5) -> VGG:
    """VGG-16's layout at a quarter width for 28-32 px images, compact head."""
    return _vgg_small(16, False, num_classes, in_chans, dropout)


@register_model(paper=_PAPER, small_input=True)
def vgg19_small(num_classes: int = 10, in_chans: int = 1, dropout: float = 0.5) -> VGG:
    """VGG-19's layout at a quarter width for 28-32 px images, compact head."""
    return _vgg_small(19, False, num_classes, in_chans, dropout)


@register_model(paper=_PAPER, small_input=True)
def vgg11_bn_small(num_classes: int = 10, in_chans: int = 1, dropout: float = 0.5) -> VGG:
    """VGG-11 with BatchNorm at a quarter width for 28-32 px images, compact head."""
    return _vgg_small(11, True, num_classes, in_chans, dropout)


@register_model(paper=_PAPER, small_input=True)
def vgg13_bn_small(num_classes: int = 10, in_chans: int = 1, dropout: float = 0.5) -> VGG:
    """VGG-13 with BatchNorm at a quarter width for 28-32 px images, compact head."""
    return _vgg_small(13, True, num_classes, in_chans, dropout)


@register_model(paper=_PAPER, small_input=True)
def vgg16_bn_small(num_classes: int = 10, in_chans: int = 1, dropout: float = 0.5) -> VGG:
    """VGG-16 with BatchNorm at a quarter width for 28-32 px images, compact head."""
    return _vgg_small(16, True, num_classes, in_chans, dropout)


@register_model(paper=_PAPER, small_input=True)
def vgg19_bn_small(num_classes: int = 10, in_chans: int = 1, dropout: float = 0.5) -> VGG:
    """VGG-19 with BatchNorm at a quarter width for 28-32 px images, compact head."""
    return _vgg_small(19, True, num_classes, in_chans, dropout)
