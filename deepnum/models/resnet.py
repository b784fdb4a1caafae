"""Residual networks: ResNet (K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image
Recognition", CVPR 2016) and ResNeXt (S. Xie, R. Girshick, P. Dollár, Z. Tu, K. He, "Aggregated Residual
Transformations for Deep Neural Networks", CVPR 2017).

A residual block computes ``y = relu(F(x) + shortcut(x))``: the layers learn the residual ``F`` and the
shortcut is the identity, or, where the shape changes, a projection.

**ImageNet ResNets** (paper Table 1; torchvision's layout, state_dict keys and default initialisation)::

    conv1 7×7/2 (64) → bn1 → relu → maxpool 3×3/2 → layer1..layer4 → avgpool (global) → fc

``layer1..4`` have 64/128/256/512 "planes" and stride 1/2/2/2; a ``BasicBlock`` (3×3, 3×3) outputs
``planes`` channels, a ``Bottleneck`` (1×1 reduce, 3×3, 1×1 expand ×4) outputs ``4·planes``. The
first block of a stage whose shape changes gets a 1×1 projection shortcut (option B of the paper:
``downsample = Sequential(conv1×1 stride s, BatchNorm2d)``). As in torchvision ("ResNet v1.5") the
bottleneck strides in its 3×3 convolution, not in the first 1×1 as the paper did. ResNeXt replaces
the bottleneck's 3×3 by a grouped convolution with ``groups`` paths of ``width_per_group`` channels
(width = ``planes · width_per_group/64 · groups``).

Parameter counts (equal to torchvision's): resnet18 11,689,512; resnet34 21,797,672; resnet50
25,557,032; resnet101 44,549,160; resnet152 60,192,808; resnext50_32x4d 25,028,904.

**CIFAR ResNets** (paper §4.2): ``conv1 3×3 (16)`` then three stages of ``n`` basic blocks with 16/32/64
channels on 32×32/16×16/8×8 maps, global average pooling and ``fc``: depth ``6n + 2`` (20, 32, 44, 56,
110). The shortcuts are parameter-free (option A, ``ShortcutA``): where a stage halves the map and
doubles the channels, the shortcut takes every second pixel and appends zero channels. Trainable
parameters, for 10 classes, ``97,216·n − 21,926`` (conv1+bn1 464; stage 1: ``4,672·n``; stage 2:
``13,952 + 18,560·(n−1)``; stage 3: ``55,552 + 73,984·(n−1)``; fc 650):

    ======== == ========== ==================
    model    n parameters paper (Table 6)
    ======== == ========== ==================
    resnet20  3    269,722 0.27M
    resnet32  5    464,154 0.46M
    resnet44  7    658,586 0.66M
    resnet56  9    853,018 0.85M
    resnet110 18 1,727,962 1.7M
    ======== == ========== ==================

The sometimes-quoted 272,474 for ResNet-20 is the count with projection shortcuts (option B,
``shortcut='B'``): the two 1×1 conv + BN projections add 576 + 2,176 = 2,752 parameters.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from deepnum.functional._fused_block import SubsamplePad, channel_rows
from deepnum.functional.joining import pad
from deepnum.models import register_model
from deepnum.nn import init
from deepnum.nn.modules.activation import ReLU
from deepnum.nn.modules.batchnorm import BatchNorm2d, add_relu, conv_bn
from deepnum.nn.modules.container import Sequential
from deepnum.nn.modules.conv import Conv2d
from deepnum.nn.modules.linear import Linear
from deepnum.nn.modules.module import Module
from deepnum.nn.modules.normalization import GroupNorm
from deepnum.nn.modules.pooling import AdaptiveAvgPool2d, MaxPool2d
from deepnum.tensor import Tensor

__all__ = [
    "BasicBlock", "Bottleneck", "CifarResNet", "ResNet", "ShortcutA", "conv1x1", "conv3x3",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
    "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
]

HE_2016 = "He et al. 2016, Deep Residual Learning for Image Recognition"
XIE_2017 = "Xie et al. 2017, Aggregated Residual Transformations for Deep Neural Networks"


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> Conv2d:
    """3×3 convolution without bias, padded to keep the size at stride 1."""
    return Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation, groups=groups,
                  bias=False, dilation=dilation)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> Conv2d:
    """1×1 convolution without bias (channel projection)."""
    return Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(Module):
    """Two 3×3 conv-BN layers with a shortcut: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``
    (He et al. 2016, Fig. 2). ``downsample`` is the shortcut module when the shape changes."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Module | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1,
                 norm_layer: Callable[..., Module] | None = None) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError(f"BasicBlock({inplanes}→{planes}): only groups=1 and base_width=64 are supported, "
                             f"got groups={groups}, base_width={base_width}")
        norm_layer = BatchNorm2d if norm_layer is None else norm_layer
        self.conv1 = conv3x3(inplanes, planes, stride, dilation=dilation)
        self.bn1 = norm_layer(planes)
        self.relu = ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, dilation=dilation)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def residual_branch(self, x: Tensor) -> Tensor:
        """F(x): the block's layers without the shortcut and the final ReLU (with each BN folded
        into its convolution for inference, and BN + ReLU fused in training: ``conv_bn``)."""
        out = conv_bn(self.conv1, self.bn1, x, self.relu)
        return conv_bn(self.conv2, self.bn2, out)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        if type(self).residual_branch is not BasicBlock.residual_branch:  # a subclass changed F (SE blocks)
            return add_relu(self.relu, self.residual_branch(x), identity)
        out = conv_bn(self.conv1, self.bn1, x, self.relu)
        return conv_bn(self.conv2, self.bn2, out, self.relu, residual=identity)  # relu(bn2(conv2(out)) + identity)


class Bottleneck(Module):
    """1×1 (reduce to ``width``), 3×3 (stride, ``groups``), 1×1 (expand to ``4·planes``), each followed by
    BN, plus the shortcut: ``relu(F(x) + shortcut(x))`` (He et al. 2016, Fig. 5; ResNeXt when
    ``groups > 1``, Xie et al. 2017, Fig. 3c). ``width = planes · base_width/64 · groups``."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Module | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1,
                 norm_layer: Callable[..., Module] | None = None) -> None:
        super().__init__()
        norm_layer = BatchNorm2d if norm_layer is None else norm_layer
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def residual_branch(self, x: Tensor) -> Tensor:
        """F(x): the block's layers without the shortcut and the final ReLU (fused as in ``BasicBlock``)."""
        out = conv_bn(self.conv1, self.bn1, x, self.relu)
        out = conv_bn(self.conv2, self.bn2, out, self.relu)
        return conv_bn(self.conv3, self.bn3, out)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        if type(self).residual_branch is not Bottleneck.residual_branch:
            return add_relu(self.relu, self.residual_branch(x), identity)
        out = conv_bn(self.conv1, self.bn1, x, self.relu)
        out = conv_bn(self.conv2, self.bn2, out, self.relu)
        return conv_bn(self.conv3, self.bn3, out, self.relu, residual=identity)


def _init_weights(model: Module, zero_init_residual: bool) -> None:
    """He initialisation for convolutions (``kaiming_normal_``, fan_out, ReLU gain: He et al. 2015),
    γ = 1 and β = 0 for the norms; with ``zero_init_residual`` the last norm of every residual branch
    starts at γ = 0, so each block starts as the identity (Goyal et al. 2017). Linear layers keep
    PyTorch's default initialisation, as in torchvision."""
    for m in model.modules():
        if isinstance(m, Conv2d):
            init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, BatchNorm2d | GroupNorm) and m.weight is not None:
            init.ones_(m.weight)
            init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            last = m.bn3 if isinstance(m, Bottleneck) else m.bn2 if isinstance(m, BasicBlock) else None
            if getattr(last, "weight", None) is not None:
                init.zeros_(last.weight)


def _check_image(model: Module, x: Tensor, in_chans: int) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != in_chans:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        hint = " (add the batch dim with x.unsqueeze(0))" if isinstance(x, Tensor) and x.ndim == 3 else ""
        raise ValueError(f"{type(model).__name__}({model.describe()}): expected input (N, {in_chans}, H, W), "
                         f"got {got}{hint}")


class ResNet(Module):
    """ResNet / ResNeXt for ImageNet-style images (He et al. 2016, Table 1), with torchvision's
    constructor, state_dict layout and initialisation. ``in_chans`` (keyword) sets the input channels;
    ``block_kwargs`` are extra keyword arguments for every block (e.g. the SE reduction of
    ``deepnum.models.senet``). Input ``(N, in_chans, H, W)``, output ``(N, num_classes)`` logits."""

    def __init__(self, block: type[Module], layers: Sequence[int], num_classes: int = 1000,
                 zero_init_residual: bool = False, groups: int = 1, width_per_group: int = 64,
                 replace_stride_with_dilation: Sequence[bool] | None = None,
                 norm_layer: Callable[..., Module] | None = None, *, in_chans: int = 3,
                 block_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        if len(layers) != 4 or min(layers) < 1 or int(num_classes) < 1 or int(in_chans) < 1:
            raise ValueError(f"ResNet: expected 4 stage depths >= 1, num_classes >= 1 and in_chans >= 1, got "
                             f"layers={list(layers)}, num_classes={num_classes}, in_chans={in_chans}")
        dilate = [False, False, False] if replace_stride_with_dilation is None else list(replace_stride_with_dilation)
        if len(dilate) != 3:
            raise ValueError(f"ResNet: replace_stride_with_dilation should be None or a 3-element list, got {dilate}")
        self._norm_layer = BatchNorm2d if norm_layer is None else norm_layer
        self._block_kwargs = dict(block_kwargs or {})
        self.in_chans, self.inplanes, self.dilation = int(in_chans), 64, 1
        self.groups, self.base_width = groups, width_per_group
        self._config = f"{block.__name__} {list(layers)}, groups={groups}, width_per_group={width_per_group}"
        self.conv1 = Conv2d(self.in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = self._norm_layer(64)
        self.relu = ReLU(inplace=True)
        self.maxpool = MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2, dilate=dilate[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, dilate=dilate[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dilate=dilate[2])
        self.avgpool = AdaptiveAvgPool2d((1, 1))
        self.fc = Linear(512 * block.expansion, int(num_classes))
        _init_weights(self, zero_init_residual)

    def _make_layer(self, block: type[Module], planes: int, blocks: int, stride: int = 1,
                    dilate: bool = False) -> Sequential:
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                    self._norm_layer(planes * block.expansion))
        common = dict(groups=self.groups, base_width=self.base_width, norm_layer=self._norm_layer,
                      **self._block_kwargs)
        layers = [block(self.inplanes, planes, stride, downsample, dilation=previous_dilation, **common)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, dilation=self.dilation, **common) for _ in range(1, blocks)]
        return Sequential(*layers)

    def describe(self) -> str:
        """The configuration, for error messages."""
        return self._config

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The paper's input size, (C, 224, 224); any H, W >= 1 works (global average pooling)."""
        return (self.in_chans, 224, 224)

    def forward_features(self, x: Tensor) -> Tensor:
        """The last stage's feature map, ``(N, 512·expansion, H/32, W/32)``."""
        _check_image(self, x, self.in_chans)
        x = self.maxpool(conv_bn(self.conv1, self.bn1, x, self.relu))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.avgpool(self.forward_features(x)).flatten(1))


class ShortcutA(Module):
    """Parameter-free shortcut (He et al. 2016, §3.3 option A, used for CIFAR in §4.2): subsample by
    ``stride`` (``x[:, :, ::s, ::s]``) and append ``out_planes − in_planes`` zero channels."""

    def __init__(self, in_planes: int, out_planes: int, stride: int = 2) -> None:
        super().__init__()
        if out_planes < in_planes or stride < 1:
            raise ValueError(f"ShortcutA: needs out_planes >= in_planes and stride >= 1, got in_planes={in_planes}, "
                             f"out_planes={out_planes}, stride={stride}")
        self.in_planes, self.out_planes, self.stride = in_planes, out_planes, stride

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_planes:
            raise ValueError(f"ShortcutA({self.extra_repr()}): expected input (N, {self.in_planes}, H, W), "
                             f"got {tuple(x.shape)}")
        if x.device == "cpu" and channel_rows(x.data) is not None:  # a conv's batch-last output: keep its layout
            return SubsamplePad(self.stride, self.out_planes)(x)
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        extra = self.out_planes - self.in_planes
        return pad(x, (0, 0, 0, 0, 0, extra)) if extra else x

    def extra_repr(self) -> str:
        return f"{self.in_planes}, {self.out_planes}, stride={self.stride}"


class CifarResNet(Module):
    """ResNet for 32×32 images (He et al. 2016, §4.2): conv3×3 (16) → BN → ReLU → three stages of
    ``layers[i]`` blocks with ``widths`` channels (16, 32, 64) and strides 1, 2, 2 → global average
    pooling → fc. ``shortcut='A'`` (the paper's CIFAR choice) uses parameter-free ``ShortcutA``
    where shapes change, ``'B'`` a 1×1 conv + BN projection. Any input size works (global pooling)."""

    def __init__(self, block: type[Module], layers: Sequence[int], num_classes: int = 10, *, in_chans: int = 3,
                 zero_init_residual: bool = False, shortcut: str = "A", widths: Sequence[int] = (16, 32, 64),
                 block_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ValueError(f"CifarResNet: shortcut must be 'A' (zero-padding) or 'B' (projection), got {shortcut!r}")
        if len(layers) != len(widths) or min(layers) < 1 or int(num_classes) < 1 or int(in_chans) < 1:
            raise ValueError(f"CifarResNet: expected one depth >= 1 per width {list(widths)}, num_classes >= 1 and "
                             f"in_chans >= 1, got layers={list(layers)}, num_classes={num_classes}, "
                             f"in_chans={in_chans}")
        self.in_chans, self.shortcut, self.inplanes = int(in_chans), shortcut, widths[0]
        self._block_kwargs = dict(block_kwargs or {})
        self._config = f"{block.__name__} {list(layers)}, widths={list(widths)}, shortcut={shortcut!r}"
        self.conv1 = conv3x3(self.in_chans, widths[0])
        self.bn1 = BatchNorm2d(widths[0])
        self.relu = ReLU(inplace=True)
        for i, (width, depth) in enumerate(zip(widths, layers, strict=True)):
            self.add_module(f"layer{i + 1}", self._make_layer(block, width, depth, stride=1 if i == 0 else 2))
        self.avgpool = AdaptiveAvgPool2d((1, 1))
        self.fc = Linear(widths[-1] * block.expansion, int(num_classes))
        self.num_stages = len(widths)
        _init_weights(self, zero_init_residual)

    def _make_layer(self, block: type[Module], planes: int, blocks: int, stride: int) -> Sequential:
        out = planes * block.expansion
        downsample = None
        if stride != 1 or self.inplanes != out:
            downsample = ShortcutA(self.inplanes, out, stride) if self.shortcut == "A" else \
                Sequential(conv1x1(self.inplanes, out, stride), BatchNorm2d(out))
        layers = [block(self.inplanes, planes, stride, downsample, **self._block_kwargs)]
        self.inplanes = out
        layers += [block(out, planes, **self._block_kwargs) for _ in range(1, blocks)]
        return Sequential(*layers)

    def describe(self) -> str:
        """The configuration, for error messages."""
        return self._config

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The default input size: (1, 28, 28) for one channel (MNIST), (C, 32, 32) otherwise (CIFAR);
        any H, W >= 1 works (global average pooling)."""
        size = 28 if self.in_chans == 1 else 32
        return (self.in_chans, size, size)

    def forward_features(self, x: Tensor) -> Tensor:
        """The last stage's feature map, ``(N, 64·expansion, H/4, W/4)``."""
        _check_image(self, x, self.in_chans)
        x = conv_bn(self.conv1, self.bn1, x, self.relu)
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.avgpool(self.forward_features(x)).flatten(1))


# ----------------------------------------------------------------------------- ImageNet builders
@register_model(paper=HE_2016)
def resnet18(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-18: basic blocks [2, 2, 2, 2], 11,689,512 parameters."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, in_chans=in_chans, **kwargs)


@register_model(paper=HE_2016)
def resnet34(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-34: basic blocks [3, 4, 6, 3], 21,797,672 parameters."""
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, in_chans=in_chans, **kwargs)


@register_model(paper=HE_2016)
def resnet50(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-50: bottleneck blocks [3, 4, 6, 3], 25,557,032 parameters."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, in_chans=in_chans, **kwargs)


@register_model(paper=HE_2016)
def resnet101(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-101: bottleneck blocks [3, 4, 23, 3], 44,549,160 parameters."""
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, in_chans=in_chans, **kwargs)


@register_model(paper=HE_2016)
def resnet152(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-152: bottleneck blocks [3, 8, 36, 3], 60,192,808 parameters."""
    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes, in_chans=in_chans, **kwargs)


@register_model(paper=XIE_2017)
def resnext50_32x4d(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNeXt-50 (32×4d): bottleneck blocks [3, 4, 6, 3] with 32 groups of width 4, 25,028,904 parameters."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, groups=32, width_per_group=4, in_chans=in_chans, **kwargs)


# ----------------------------------------------------------------------------- CIFAR builders
def _cifar(n: int, num_classes: int, in_chans: int, kwargs: dict[str, Any]) -> CifarResNet:
    return CifarResNet(BasicBlock, [n, n, n], num_classes, in_chans=in_chans, **kwargs)


@register_model(paper=HE_2016, small_input=True)
def resnet20(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> CifarResNet:
    """CIFAR ResNet-20 (n = 3, option-A shortcuts): 269,722 parameters for 10 classes (paper: 0.27M)."""
    return _cifar(3, num_classes, in_chans, kwargs)


@register_model(paper=HE_2016, small_input=True)
def resnet32(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> CifarResNet:
    """CIFAR ResNet-32 (n = 5): 464,154 parameters for 10 classes (paper: 0.46M)."""
    return _cifar(5, num_classes, in_chans, kwargs)


@register_model(paper=HE_2016, small_input=True)
def resnet44(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> CifarResNet:
    """CIFAR ResNet-44 (n = 7): 658,586 parameters for 10 classes (paper: 0.66M)."""
    return _cifar(7, num_classes, in_chans, kwargs)


@register_model(paper=HE_2016, small_input=True)
def resnet56(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> CifarResNet:
    """CIFAR ResNet-56 (n = 9): 853,018 parameters for 10 classes (paper: 0.85M)."""
    return _cifar(9, num_classes, in_chans, kwargs)


@register_model(paper=HE_2016, small_input=True)
def resnet110(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> CifarResNet:
    """CIFAR ResNet-110 (n = 18): 1,727,962 parameters for 10 classes (paper: 1.7M)."""
    return _cifar(18, num_classes, in_chans, kwargs)
