"""MobileNet v1 and v2: networks built from depthwise separable convolutions.

**Depthwise separable convolution** (Howard et al. 2017, §3.1; Chollet 2017). A K×K convolution
C_in→C_out filters space and mixes channels at once, with K²·C_in·C_out weights. Factor it into a
*depthwise* K×K convolution (one filter per channel, ``groups=C_in``: K²·C_in weights) that filters
space, then a *pointwise* 1×1 convolution (C_in·C_out weights) that mixes channels:
K²·C_in + C_in·C_out weights, the fraction 1/C_out + 1/K² of the full convolution's (the same
ratio holds for the multiply-adds). For a 3×3 convolution C→C that is 9C² against 9C + C²; for
C = 512, 2,359,296 against 266,752 weights, 8.8× fewer (``depthwise_separable_savings``).

**MobileNet v1** (A. G. Howard et al., "MobileNets: Efficient Convolutional Neural Networks for
Mobile Vision Applications", 2017, Table 1): a 3×3 stride-2 conv 3→32, then 13 depthwise separable
blocks (3×3 depthwise conv-BN-ReLU, 1×1 pointwise conv-BN-ReLU) with output channels
64, 128/2, 128, 256/2, 256, 512/2, 512 ×5, 1024/2, 1024 (/2: the depthwise conv has stride 2),
global average pooling and a fully connected layer (``classifier``: Dropout, p = 0 by default, then
Linear). Convolutions have no bias (BatchNorm follows
each). The width multiplier α thins every layer to max(⌊α·c⌋, 8) channels (§4.2; the minimum of 8
is TF-Slim's). Parameters (weights and BatchNorm affine parameters; running statistics are
buffers), α = 1, 1000 classes: 4,231,976 — the paper's "4.2 million" (Table 4, and Table 8's
1.0 MobileNet-224): 928 in the stem, 3,206,048 in the 13 blocks, 1,025,000 in the classifier.

**MobileNet v2** (M. Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
CVPR 2018, Table 2). The inverted residual block expands a thin tensor with a 1×1 conv (factor t,
BN, ReLU6), filters it with a 3×3 depthwise conv (BN, ReLU6) and projects it back with a 1×1 conv
and BN *without* activation (the linear bottleneck: a ReLU in the low-dimensional space would
destroy information); the input is added when the stride is 1 and the channels match. The body is
a 3×3 stride-2 conv to 32 channels, then bottleneck stages (t, c, n, s) = (1, 16, 1, 1),
(6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1), a 1×1 conv
to 1280, global average pooling, dropout 0.2 and a linear classifier. Channels are rounded to
multiples of 8 under a width multiplier. ``mobilenet_v2`` has torchvision's state_dict keys and
shapes, its initialisation (conv: Kaiming normal, fan_out; BN: 1, 0; linear: N(0, 0.01), 0) and
its 3,504,872 parameters with 1000 classes (the paper's "3.4M", Table 4).

**Small-input variants** (28–32 px, MNIST/CIFAR): ``mobilenet_v1_cifar`` and ``mobilenet_v2_cifar``
keep every layer but give the stem stride 1, so the network downsamples 16× instead of 32× and a
32×32 image ends at 2×2 (28×28: 2×2 too) instead of 1×1. (The common CIFAR MobileNetV2 also makes
the first 24-channel stage stride 1; that quadruples the cost of the widest layers, too slow for
training on a CPU in NumPy, so it is left as an option: ``setting=``.)
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deepnum.models import register_model
from deepnum.nn import init
from deepnum.nn.modules.activation import ReLU, ReLU6
from deepnum.nn.modules.batchnorm import BatchNorm2d
from deepnum.nn.modules.container import Sequential
from deepnum.nn.modules.conv import Conv2d
from deepnum.nn.modules.dropout import Dropout
from deepnum.nn.modules.linear import Linear
from deepnum.nn.modules.module import Module
from deepnum.tensor import Tensor

__all__ = [
    "ConvBNAct", "DepthwiseSeparable", "InvertedResidual", "MobileNetV1", "MobileNetV2",
    "depthwise_separable_savings", "make_divisible", "mobilenet_v1", "mobilenet_v1_cifar", "mobilenet_v2",
    "mobilenet_v2_cifar",
]

# (expansion t, output channels c, repeats n, first stride s): Sandler et al. 2018, Table 2.
V2_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
              (6, 320, 1, 1))
# (output channels, depthwise stride) of the 13 depthwise separable blocks: Howard et al. 2017, Table 1.
V1_SETTING = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1), (512, 1),
              (512, 1), (1024, 2), (1024, 1))


def depthwise_separable_savings(channels: int, out_channels: int | None = None,
                                kernel_size: int = 3) -> tuple[int, int]:
    """(weights of a K×K conv C→O, weights of depthwise K×K + pointwise 1×1), both without bias:
    (K²·C·O, K²·C + C·O); for a 3×3 conv C→C, (9C², 9C + C²)."""
    out = channels if out_channels is None else out_channels
    return kernel_size * kernel_size * channels * out, kernel_size * kernel_size * channels + channels * out


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to the nearest multiple of ``divisor`` (at least ``min_value``), going
    one step up when rounding down would lose more than 10% (MobileNet v2's width rounding)."""
    floor = divisor if min_value is None else min_value
    rounded = max(floor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNAct(Sequential):
    """Conv2d (no bias, 'same'-style padding (K−1)/2) → BatchNorm2d → activation (none when
    ``activation`` is None). Keys ``0.weight``, ``1.weight``... as torchvision's Conv2dNormActivation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 activation: type[Module] | None = ReLU6, padding: int | None = None) -> None:
        pad = (kernel_size - 1) // 2 if padding is None else padding
        layers: list[Module] = [Conv2d(in_channels, out_channels, kernel_size, stride, pad, groups=groups, bias=False),
                                BatchNorm2d(out_channels)]
        if activation is not None:
            layers.append(activation())
        super().__init__(*layers)


class DepthwiseSeparable(Module):
    """MobileNet v1's block (Howard et al. 2017, Fig. 3): 3×3 depthwise conv-BN-ReLU (carrying the
    stride), then 1×1 pointwise conv-BN-ReLU. 9C + C·O conv weights instead of 9C·O."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels, activation=ReLU)
        self.pointwise = ConvBNAct(in_channels, out_channels, 1, activation=ReLU)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class InvertedResidual(Module):
    """MobileNet v2's bottleneck (Sandler et al. 2018, Table 1): expand 1×1 (×t, BN, ReLU6; absent
    when t = 1) → depthwise 3×3 (stride s, BN, ReLU6) → project 1×1 + BN, linear; plus the input
    when s = 1 and C_in = C_out. Keys as torchvision's (``conv.0.0.weight``...)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: float) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual({in_channels}→{out_channels}): stride must be 1 or 2, got {stride}")
        hidden = int(round(in_channels * expand_ratio))
        layers: list[Module] = [] if expand_ratio == 1 else [ConvBNAct(in_channels, hidden, 1)]
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden),
                   Conv2d(hidden, out_channels, 1, bias=False), BatchNorm2d(out_channels)]
        self.conv = Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        return x + y if self.use_residual else y


def check_image_input(label: str, x: Any, channels: int) -> None:
    """Raise a ValueError naming the model unless ``x`` is a (N, channels, H, W) Tensor."""
    if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != channels:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        hint = " (add the batch dim with x.unsqueeze(0))" if isinstance(x, Tensor) and x.ndim == 3 else ""
        raise ValueError(f"{label}: expected input (N, {channels}, H, W), got {got}{hint}")


def init_cnn_weights(model: Module, linear_std: float | None = 0.01) -> None:
    """torchvision's CNN initialisation: conv weights Kaiming normal (fan_out), conv biases 0,
    BN γ = 1, β = 0, linear weights N(0, linear_std²) (PyTorch's default when None), biases 0."""
    for m in model.modules():
        if isinstance(m, Conv2d):
            init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                init.zeros_(m.bias)
        elif isinstance(m, BatchNorm2d):
            init.ones_(m.weight)
            init.zeros_(m.bias)
        elif isinstance(m, Linear) and linear_std is not None:
            init.normal_(m.weight, 0.0, linear_std)
            init.zeros_(m.bias)


def _check_sizes(label: str, num_classes: int, in_chans: int, width_mult: float) -> None:
    if int(num_classes) < 1 or int(in_chans) < 1 or not width_mult > 0:
        raise ValueError(f"{label}: num_classes and in_chans must be >= 1 and width_mult > 0, got "
                         f"num_classes={num_classes}, in_chans={in_chans}, width_mult={width_mult}")


class MobileNetV1(Module):
    """MobileNet v1 (Howard et al. 2017, Table 1) with width multiplier ``width_mult`` (α);
    ``stem_stride=1`` for small inputs. (N, in_chans, H, W) → (N, num_classes) logits."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0, stem_stride: int = 2,
                 setting: Sequence[tuple[int, int]] = V1_SETTING, dropout: float = 0.0) -> None:
        super().__init__()
        _check_sizes("MobileNetV1", num_classes, in_chans, width_mult)
        self.num_classes, self.in_chans, self.width_mult = int(num_classes), int(in_chans), float(width_mult)
        channels = max(int(32 * width_mult), 8)
        layers: list[Module] = [ConvBNAct(self.in_chans, channels, 3, stem_stride, activation=ReLU)]
        for out, stride in setting:
            out = max(int(out * width_mult), 8)
            layers.append(DepthwiseSeparable(channels, out, stride))
            channels = out
        self.features = Sequential(*layers)
        self.classifier = Sequential(Dropout(dropout), Linear(channels, self.num_classes))
        self.num_features = channels
        init_cnn_weights(self, linear_std=None)

    def forward(self, x: Tensor) -> Tensor:
        check_image_input(f"MobileNetV1(in_chans={self.in_chans})", x, self.in_chans)
        return self.classifier(self.features(x).mean((2, 3)))

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, in_chans={self.in_chans}, width_mult={self.width_mult}"


class MobileNetV2(Module):
    """MobileNet v2 (Sandler et al. 2018, Table 2), torchvision's layout; ``stem_stride`` and
    ``setting`` (t, c, n, s) rows adapt it to small inputs. (N, in_chans, H, W) → (N, num_classes)."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0, stem_stride: int = 2,
                 setting: Sequence[tuple[float, int, int, int]] = V2_SETTING, dropout: float = 0.2,
                 last_channel: int = 1280) -> None:
        super().__init__()
        _check_sizes("MobileNetV2", num_classes, in_chans, width_mult)
        self.num_classes, self.in_chans, self.width_mult = int(num_classes), int(in_chans), float(width_mult)
        channels = make_divisible(32 * width_mult)
        last = make_divisible(last_channel * max(1.0, width_mult))
        layers: list[Module] = [ConvBNAct(self.in_chans, channels, 3, stem_stride)]
        for t, c, n, s in setting:
            out = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(channels, out, s if i == 0 else 1, t))
                channels = out
        layers.append(ConvBNAct(channels, last, 1))
        self.features = Sequential(*layers)
        self.classifier = Sequential(Dropout(dropout), Linear(last, self.num_classes))
        self.num_features = last
        init_cnn_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        check_image_input(f"MobileNetV2(in_chans={self.in_chans})", x, self.in_chans)
        return self.classifier(self.features(x).mean((2, 3)))

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, in_chans={self.in_chans}, width_mult={self.width_mult}"


_V1_PAPER = "Howard et al. 2017, MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications"
_V2_PAPER = "Sandler et al. 2018, MobileNetV2: Inverted Residuals and Linear Bottlenecks"


@register_model(paper=_V1_PAPER)
def mobilenet_v1(num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0, **kwargs: Any) -> MobileNetV1:
    """MobileNet v1 for 224×224 images: 4,231,976 parameters with α = 1 and 1000 classes."""
    return MobileNetV1(num_classes=num_classes, in_chans=in_chans, width_mult=width_mult, **kwargs)


@register_model(paper=_V1_PAPER, small_input=True)
def mobilenet_v1_cifar(num_classes: int = 10, in_chans: int = 3, width_mult: float = 1.0,
                       **kwargs: Any) -> MobileNetV1:
    """MobileNet v1 for 28–32 px images: stride-1 stem (32×32 → 2×2 before pooling)."""
    return MobileNetV1(num_classes=num_classes, in_chans=in_chans, width_mult=width_mult, stem_stride=1, **kwargs)


@register_model(paper=_V2_PAPER)
def mobilenet_v2(num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0, **kwargs: Any) -> MobileNetV2:
    """MobileNet v2 for 224×224 images, torchvision's layout: 3,504,872 parameters (1000 classes)."""
    return MobileNetV2(num_classes=num_classes, in_chans=in_chans, width_mult=width_mult, **kwargs)


@register_model(paper=_V2_PAPER, small_input=True)
def mobilenet_v2_cifar(num_classes: int = 10, in_chans: int = 3, width_mult: float = 1.0,
                       **kwargs: Any) -> MobileNetV2:
    """MobileNet v2 for 28–32 px images: stride-1 stem (32×32 → 2×2 before pooling)."""
    return MobileNetV2(num_classes=num_classes, in_chans=in_chans, width_mult=width_mult, stem_stride=1, **kwargs)
