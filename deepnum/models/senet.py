"""Squeeze-and-Excitation networks (J. Hu, L. Shen, G. Sun, "Squeeze-and-Excitation Networks",
CVPR 2018).

**The SE block** recalibrates channels: *squeeze* each channel to one number by global average
pooling, ``z_c = mean_{h,w} x_c``; *excite* with a bottleneck of two fully connected layers,
``s = σ(W₂ δ(W₁ z))`` with ``W₁ ∈ R^{C/r × C}``, ``W₂ ∈ R^{C × C/r}``, δ = ReLU and σ the sigmoid; and
scale, ``y_c = s_c · x_c``. ``SqueezeExcitation`` (images) and ``SqueezeExcitation1d`` (signals
``(N, C, L)``) implement it with the FC layers as 1×1 convolutions (with bias), so the layout — keys
``fc1``/``fc2``, constructor ``(input_channels, squeeze_channels, activation, scale_activation)`` and
repr — is torchvision's ``torchvision.ops.SqueezeExcitation``; other families (MobileNetV3's
hard-sigmoid SE, EfficientNet's SiLU SE) can use it as is. ``squeeze_channels`` defaults to
``max(1, C // reduction)``.

**SE-ResNet** puts the SE block on the residual branch, after its last BatchNorm and before the
addition with the shortcut (paper Fig. 3), with r = 16. One SE block on C channels adds
``2C²/r + C/r + C`` parameters (weights and biases of both FC layers). Counts (built on
``deepnum.models.resnet``, torchvision's ResNet v1.5 layout):

    ==================== ============ ============= ==========================
    model                 ResNet base  SE blocks     total (rounded)
    ==================== ============ ============= ==========================
    se_resnet18            11,689,512      89,080    11,778,592
    se_resnet34            21,797,672     161,196    21,958,868
    se_resnet50            25,557,032   2,530,992    28,088,024 (28.09M)
    se_resnet101           44,549,160   4,777,712    49,326,872 (49.33M)
    se_resnet152           60,192,808   6,629,040    66,821,848 (66.82M)
    se_resnext50_32x4d     25,028,904   2,530,992    27,559,896 (27.56M)
    se_resnet20 (CIFAR)       269,722       2,373       272,095 (10 classes, option-A shortcuts)
    se_resnet110 (CIFAR)    1,727,962      14,238     1,742,200
    ==================== ============ ============= ==========================

The number matched is the paper's 28.09M for SE-ResNet-50, which is the count *with* the FC biases:
the paper's bias-free complexity formula ``(2/r) Σ_s N_s C_s²`` (N_s blocks of C_s output channels in
stage s) gives 2,514,944 extra weights and 28,071,976 in all (28.07M); the biases add
``Σ_s N_s (C_s + C_s/r)`` = 16,048.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deepnum.models import register_model
from deepnum.models.resnet import HE_2016, BasicBlock, Bottleneck, CifarResNet, ResNet
from deepnum.nn.modules.activation import ReLU, Sigmoid
from deepnum.nn.modules.conv import Conv1d, Conv2d
from deepnum.nn.modules.module import Module
from deepnum.nn.modules.pooling import AdaptiveAvgPool1d, AdaptiveAvgPool2d
from deepnum.tensor import Tensor

__all__ = [
    "SEBasicBlock", "SEBottleneck", "SqueezeExcitation", "SqueezeExcitation1d",
    "se_resnet18", "se_resnet34", "se_resnet50", "se_resnet101", "se_resnet152", "se_resnext50_32x4d",
    "se_resnet20", "se_resnet110",
]

HU_2018 = "Hu et al. 2018, Squeeze-and-Excitation Networks"


class _SqueezeExcitationNd(Module):
    """``y = x · σ(W₂ δ(W₁ mean(x)))`` over the spatial dims (Hu et al. 2018, §3)."""

    _dims = 2
    _pool: type[Module] = AdaptiveAvgPool2d
    _conv: type[Module] = Conv2d

    def __init__(self, input_channels: int, squeeze_channels: int | None = None,
                 activation: Callable[..., Module] = ReLU, scale_activation: Callable[..., Module] = Sigmoid,
                 *, reduction: int = 16) -> None:
        super().__init__()
        if squeeze_channels is None:
            if int(reduction) < 1:
                raise ValueError(f"{type(self).__name__}({input_channels}): reduction must be >= 1, got {reduction}")
            squeeze_channels = max(1, int(input_channels) // int(reduction))
        if int(input_channels) < 1 or int(squeeze_channels) < 1:
            raise ValueError(f"{type(self).__name__}: input_channels and squeeze_channels must be >= 1, got "
                             f"input_channels={input_channels}, squeeze_channels={squeeze_channels}")
        self.input_channels, self.squeeze_channels = int(input_channels), int(squeeze_channels)
        self.avgpool = self._pool(1)
        self.fc1 = self._conv(self.input_channels, self.squeeze_channels, 1)
        self.fc2 = self._conv(self.squeeze_channels, self.input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def _check(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.ndim != self._dims + 2 or x.shape[1] != self.input_channels:
            dims = "L" if self._dims == 1 else "H, W"
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{type(self).__name__}({self.input_channels}→{self.squeeze_channels}): expected input "
                             f"(N, {self.input_channels}, {dims}), got {got}")

    def gate(self, input: Tensor) -> Tensor:  # noqa: A002
        """The excitation ``s = σ(W₂ δ(W₁ z))``, shape ``(N, C, 1)`` or ``(N, C, 1, 1)``."""
        self._check(input)
        return self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(input)))))

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return input * self.gate(input)


class SqueezeExcitation(_SqueezeExcitationNd):
    """SE block for images ``(N, C, H, W)``: ``x · σ(fc2(δ(fc1(avgpool(x)))))``, gate ``(N, C, 1, 1)``
    (Hu et al. 2018). Same constructor and layout as ``torchvision.ops.SqueezeExcitation``;
    ``squeeze_channels`` defaults to ``max(1, input_channels // reduction)``."""


class SqueezeExcitation1d(_SqueezeExcitationNd):
    """SE block for signals ``(N, C, L)`` (time series, sensor data): channel gates ``(N, C, 1)`` from
    the mean over the length (Hu et al. 2018, applied to 1-D feature maps)."""

    _dims = 1
    _pool = AdaptiveAvgPool1d
    _conv = Conv1d


class SEBasicBlock(BasicBlock):
    """ResNet basic block with an SE block on the residual branch before the addition (Hu et al.
    2018, Fig. 3): ``relu(se(F(x)) + shortcut(x))``."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Module | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1,
                 norm_layer: Callable[..., Module] | None = None, *, reduction: int = 16) -> None:
        super().__init__(inplanes, planes, stride, downsample, groups, base_width, dilation, norm_layer)
        self.se = SqueezeExcitation(planes * self.expansion, reduction=reduction)

    def residual_branch(self, x: Tensor) -> Tensor:
        return self.se(super().residual_branch(x))


class SEBottleneck(Bottleneck):
    """ResNet/ResNeXt bottleneck with an SE block after ``bn3``, before the addition (Hu et al. 2018)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Module | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1,
                 norm_layer: Callable[..., Module] | None = None, *, reduction: int = 16) -> None:
        super().__init__(inplanes, planes, stride, downsample, groups, base_width, dilation, norm_layer)
        self.se = SqueezeExcitation(planes * self.expansion, reduction=reduction)

    def residual_branch(self, x: Tensor) -> Tensor:
        return self.se(super().residual_branch(x))


def _se_resnet(block: type[Module], layers: list[int], num_classes: int, in_chans: int, reduction: int,
               kwargs: dict[str, Any]) -> ResNet:
    return ResNet(block, layers, num_classes, in_chans=in_chans, block_kwargs={"reduction": reduction}, **kwargs)


@register_model(paper=HU_2018)
def se_resnet18(num_classes: int = 1000, in_chans: int = 3, reduction: int = 16, **kwargs: Any) -> ResNet:
    """SE-ResNet-18 (r = 16): 11,778,592 parameters."""
    return _se_resnet(SEBasicBlock, [2, 2, 2, 2], num_classes, in_chans, reduction, kwargs)


@register_model(paper=HU_2018)
def se_resnet34(num_classes: int = 1000, in_chans: int = 3, reduction: int = 16, **kwargs: Any) -> ResNet:
    """SE-ResNet-34 (r = 16): 21,958,868 parameters."""
    return _se_resnet(SEBasicBlock, [3, 4, 6, 3], num_classes, in_chans, reduction, kwargs)


@register_model(paper=HU_2018)
def se_resnet50(num_classes: int = 1000, in_chans: int = 3, reduction: int = 16, **kwargs: Any) -> ResNet:
    """SE-ResNet-50 (r = 16): 28,088,024 parameters (paper: 28.09M)."""
    return _se_resnet(SEBottleneck, [3, 4, 6, 3], num_classes, in_chans, reduction, kwargs)


@register_model(paper=HU_2018)
def se_resnet101(num_classes: int = 1000, in_chans: int = 3, reduction: int = 16, **kwargs: Any) -> ResNet:
    """SE-ResNet-101 (r = 16): 49,326,872 parameters (paper: 49.33M)."""
    return _se_resnet(SEBottleneck, [3, 4, 23, 3], num_classes, in_chans, reduction, kwargs)


@register_model(paper=HU_2018)
def se_resnet152(num_classes: int = 1000, in_chans: int = 3, reduction: int = 16, **kwargs: Any) -> ResNet:
    """SE-ResNet-152 (r = 16): 66,821,848 parameters (paper: 66.82M)."""
    return _se_resnet(SEBottleneck, [3, 8, 36, 3], num_classes, in_chans, reduction, kwargs)


@register_model(paper=HU_2018)
def se_resnext50_32x4d(num_classes: int = 1000, in_chans: int = 3, reduction: int = 16,
                       **kwargs: Any) -> ResNet:
    """SE-ResNeXt-50 (32×4d, r = 16): 27,559,896 parameters (paper: 27.56M)."""
    kwargs = {"groups": 32, "width_per_group": 4, **kwargs}
    return _se_resnet(SEBottleneck, [3, 4, 6, 3], num_classes, in_chans, reduction, kwargs)


def _se_cifar(n: int, num_classes: int, in_chans: int, reduction: int, kwargs: dict[str, Any]) -> CifarResNet:
    return CifarResNet(SEBasicBlock, [n, n, n], num_classes, in_chans=in_chans,
                       block_kwargs={"reduction": reduction}, **kwargs)


@register_model(paper=f"{HU_2018}; {HE_2016}", small_input=True)
def se_resnet20(num_classes: int = 10, in_chans: int = 3, reduction: int = 16, **kwargs: Any) -> CifarResNet:
    """CIFAR ResNet-20 with SE blocks (r = 16; squeeze to 1/2/4 channels): 272,095 parameters for 10 classes."""
    return _se_cifar(3, num_classes, in_chans, reduction, kwargs)


@register_model(paper=f"{HU_2018}; {HE_2016}", small_input=True)
def se_resnet110(num_classes: int = 10, in_chans: int = 3, reduction: int = 16, **kwargs: Any) -> CifarResNet:
    """CIFAR SE-ResNet-110 (r = 16; the paper's CIFAR model, Table 4): 1,742,200 parameters for 10 classes."""
    return _se_cifar(18, num_classes, in_chans, reduction, kwargs)
