"""GoogLeNet / Inception v1 (C. Szegedy, W. Liu, Y. Jia, P. Sermanet, S. Reed, D. Anguelov, D. Erhan,
V. Vanhoucke, A. Rabinovich, "Going deeper with convolutions", CVPR 2015).

An Inception module runs four branches on the same input and concatenates their outputs along the
channels: a 1×1 convolution; a 1×1 reduction then a 3×3 convolution; a 1×1 reduction then a "5×5"
convolution; a 3×3 max pooling (stride 1) then a 1×1 projection. The 1×1 reductions keep the
expensive convolutions narrow, so nine stacked modules (Table 1 of the paper, ``INCEPTION_CONFIG``)
cost about 1.5 GFLOPs at 224×224. Every convolution is torchvision's ``BasicConv2d``:
``Conv2d(bias=False)`` → ``BatchNorm2d(eps=0.001)`` → ReLU (batch norm arrived with Inception v2; the
2014 network had biases and no normalisation).

``googlenet`` is torchvision's layout (state_dict keys, shapes and eval outputs equal, with
``transform_input=False``): stem conv 7×7/2 → max pool → 1×1 → 3×3 → max pool, modules 3a-3b, pool,
4a-4e, pool, 5a-5b, global average pooling, dropout 0.2, ``Linear(1024, num_classes)``. Like
torchvision, its "5×5" branch uses a 3×3 kernel (torchvision kept this slip of its original port so
that the pretrained weights still load); that gives 6,624,904 parameters without the auxiliary heads
and 13,004,888 with them (``aux_logits=True``; each head is avg-pool to 4×4 → 1×1 conv 128 →
FC 1024 → dropout 0.7 → FC, and is used only in training, where the model returns
``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)``). The smallest input it accepts is 15×15.

``googlenet_small`` is a GoogLeNet for 28-32 px images (MNIST, CIFAR): the stem is a single 3×3
convolution at full resolution followed by the 3×3/2 max pooling (28 → 14, 32 → 16), the nine
Inception modules follow with every width multiplied by ``width`` (default 1/4), and the "5×5"
branch uses real 5×5 kernels as in the paper; its convolutions start Kaiming-normal (see
``GoogLeNetSmall._init_small``). With the defaults (in_chans=3, 10 classes) it has 372,578
parameters (``GOOGLENET_SMALL_PARAMS``; 371,714 with in_chans=1) and costs 18 M multiply-adds per
28×28 image.
"""
from __future__ import annotations

from collections import namedtuple
from typing import Any

from deepnum.backend import get_array_module
from deepnum.functional._windows import pool_out_size
from deepnum.functional.array import flatten
from deepnum.functional.joining import cat
from deepnum.models import register_model
from deepnum.nn import functional as F
from deepnum.nn import init
from deepnum.nn.modules.batchnorm import BatchNorm2d
from deepnum.nn.modules.container import Sequential
from deepnum.nn.modules.conv import Conv2d
from deepnum.nn.modules.dropout import Dropout
from deepnum.nn.modules.linear import Linear
from deepnum.nn.modules.module import Module
from deepnum.nn.modules.pooling import AdaptiveAvgPool2d, MaxPool2d
from deepnum.tensor import Tensor

__all__ = ["BasicConv2d", "GoogLeNet", "GoogLeNetOutputs", "GoogLeNetSmall", "Inception", "InceptionAux",
           "googlenet", "googlenet_small"]

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])

# Table 1 of the paper: in_channels, #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj.
INCEPTION_CONFIG: dict[str, tuple[int, ...]] = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}
GOOGLENET_SMALL_PARAMS = 372_578  # googlenet_small() with its defaults (width 1/4, in_chans=3, 10 classes)

# Spatial stages (kernel, stride, padding, ceil_mode) that shrink the input, to find the smallest size.
_IMAGENET_STAGES = ((7, 2, 3, False), (3, 2, 0, True), (3, 2, 0, True), (3, 2, 0, True), (2, 2, 0, True))
_SMALL_STAGES = ((3, 2, 0, True), (3, 2, 0, True), (2, 2, 0, True))


def min_input_size(stages: tuple[tuple[int, int, int, bool], ...]) -> int:
    """The smallest height/width whose every stage keeps at least one output position (PyTorch's
    pooling/convolution output-size rule)."""
    size = 1
    while True:
        s = size
        for kernel, stride, pad, ceil in stages:
            s = pool_out_size(s, kernel, stride, pad, 1, ceil)
            if s < 1:
                break
        else:
            return size
        size += 1


def check_image_input(who: str, x: Any, channels: int, min_size: int) -> None:
    """Raise a clear error unless ``x`` is an (N, channels, H, W) Tensor with H, W >= min_size."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{who}: expected a Tensor input, got {type(x).__name__}")
    shape = tuple(x.shape)
    if x.ndim != 4 or shape[1] != channels or min(shape[2:]) < min_size:
        hint = " (a batch of images has 4 dims; add the batch dim with x.unsqueeze(0))" if x.ndim == 3 else ""
        raise ValueError(f"{who}: expected input (N, {channels}, H, W) with H, W >= {min_size}, got {shape}{hint}")


class BasicConv2d(Module):
    """Conv2d (no bias) → BatchNorm2d(eps=0.001) → ReLU, torchvision's Inception building block."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs: Any) -> None:
        super().__init__()
        self.conv = Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(Module):
    """Four parallel branches concatenated along the channels (Szegedy et al. 2015, Figure 2b):
    1×1 | 1×1 → 3×3 | 1×1 → k×k | 3×3 max pool → 1×1, with ``k = branch3_kernel_size`` (3 in
    torchvision's GoogLeNet, 5 in the paper). Output channels: ch1x1 + ch3x3 + ch5x5 + pool_proj."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int, branch3_kernel_size: int = 3) -> None:
        super().__init__()
        if branch3_kernel_size not in (3, 5):
            raise ValueError(f"Inception({in_channels}): branch3_kernel_size must be 3 or 5, "
                             f"got {branch3_kernel_size}")
        self.in_channels = in_channels
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                  BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                  BasicConv2d(ch5x5red, ch5x5, kernel_size=branch3_kernel_size,
                                              padding=branch3_kernel_size // 2))
        self.branch4 = Sequential(MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                                  BasicConv2d(in_channels, pool_proj, kernel_size=1))

    def forward(self, x: Tensor) -> Tensor:
        return cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(Module):
    """Auxiliary classifier on an intermediate map (Szegedy et al. 2015, section 5): adaptive average
    pooling to 4×4 → 1×1 conv to 128 channels → FC 1024 + ReLU → dropout → FC to the classes. Its loss
    is added with weight 0.3 during training; it is unused at inference."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = Linear(2048, 1024)
        self.fc2 = Linear(1024, num_classes)
        self.dropout = Dropout(p=dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))
        x = F.relu(self.fc1(flatten(x, 1)), inplace=True)
        return self.fc2(self.dropout(x))


class _InceptionTrunk(Module):
    """The nine Inception modules with the max poolings between them, shared by both variants."""

    def _build_trunk(self, in_channels: int, width: float, branch3_kernel_size: int) -> int:
        """Add inception3a ... inception5b (widths scaled by ``width``); return the output channels."""
        channels = in_channels
        for name, config in INCEPTION_CONFIG.items():
            widths = [max(1, round(c * width)) for c in config[1:]]
            module = Inception(channels, *widths, branch3_kernel_size=branch3_kernel_size)
            setattr(self, name, module)
            channels = module.out_channels
            if name == "inception3b":
                self.maxpool3 = MaxPool2d(3, stride=2, ceil_mode=True)
            elif name == "inception4e":
                self.maxpool4 = MaxPool2d(2, stride=2, ceil_mode=True)
        return channels

    def _trunk(self, x: Tensor, aux: list[Tensor | None]) -> Tensor:
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = getattr(self, "aux1", None)
        aux.append(aux1(x) if aux1 is not None and self.training else None)
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = getattr(self, "aux2", None)
        aux.append(aux2(x) if aux2 is not None and self.training else None)
        x = self.maxpool4(self.inception4e(x))
        return self.inception5b(self.inception5a(x))

    def _head(self, x: Tensor) -> Tensor:
        return self.fc(self.dropout(flatten(self.avgpool(x), 1)))

    def _init_weights(self) -> None:
        """torchvision's GoogLeNet initialisation: conv and linear weights ~ N(0, 0.01²) truncated at
        ±2 (i.e. 200 std, no truncation in practice), batch norm γ = 1 and β = 0, linear biases as
        PyTorch's default."""
        for m in self.modules():
            if isinstance(m, Conv2d | Linear):
                init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, BatchNorm2d):
                init.constant_(m.weight, 1)
                init.constant_(m.bias, 0)


class GoogLeNet(_InceptionTrunk):
    """GoogLeNet with torchvision's layout for ``(N, in_chans, H, W)`` images, H, W >= 15 (224 in the
    paper). ``transform_input`` re-normalises ImageNet-normalised RGB input to the [-1, 1] scaling of
    Google's original weights, as torchvision does. ``aux_logits`` adds the two auxiliary heads; in
    training mode the model then returns ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)``."""

    _TRANSFORM = ((0.229 / 0.5, (0.485 - 0.5) / 0.5), (0.224 / 0.5, (0.456 - 0.5) / 0.5),
                  (0.225 / 0.5, (0.406 - 0.5) / 0.5))

    def __init__(self, num_classes: int = 1000, aux_logits: bool = True, transform_input: bool = False,
                 init_weights: bool | None = None, dropout: float = 0.2, dropout_aux: float = 0.7, *,
                 in_chans: int = 3) -> None:
        super().__init__()
        if int(num_classes) < 1 or int(in_chans) < 1:
            raise ValueError(f"GoogLeNet: num_classes and in_chans must be >= 1, got num_classes={num_classes}, "
                             f"in_chans={in_chans}")
        if transform_input and in_chans != 3:
            raise ValueError(f"GoogLeNet: transform_input=True re-normalises RGB input and needs in_chans=3, "
                             f"got in_chans={in_chans}")
        self.aux_logits, self.transform_input, self.in_chans = bool(aux_logits), bool(transform_input), int(in_chans)
        self.min_size = min_input_size(_IMAGENET_STAGES)
        self.conv1 = BasicConv2d(self.in_chans, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = MaxPool2d(3, stride=2, ceil_mode=True)
        channels = self._build_trunk(192, 1.0, 3)
        self.aux1 = InceptionAux(512, num_classes, dropout=dropout_aux) if self.aux_logits else None
        self.aux2 = InceptionAux(528, num_classes, dropout=dropout_aux) if self.aux_logits else None
        self.avgpool = AdaptiveAvgPool2d((1, 1))
        self.dropout = Dropout(p=dropout)
        self.fc = Linear(channels, num_classes)
        if init_weights is None or init_weights:
            self._init_weights()

    def _transform_input(self, x: Tensor) -> Tensor:
        """x_c ← x_c·(std_c/0.5) + (mean_c − 0.5)/0.5 per RGB channel (ImageNet mean/std → [-1, 1])."""
        xp = get_array_module(x.data)
        scale = xp.asarray([s for s, _ in self._TRANSFORM], dtype=x.dtype).reshape(1, 3, 1, 1)
        shift = xp.asarray([b for _, b in self._TRANSFORM], dtype=x.dtype).reshape(1, 3, 1, 1)
        return x * Tensor._make(scale) + Tensor._make(shift)

    def forward(self, x: Tensor) -> Tensor | GoogLeNetOutputs:
        check_image_input("GoogLeNet", x, self.in_chans, self.min_size)
        if self.transform_input:
            x = self._transform_input(x)
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        aux: list[Tensor | None] = []
        x = self._head(self._trunk(x, aux))
        if self.training and self.aux_logits:
            return GoogLeNetOutputs(x, aux[1], aux[0])
        return x


class GoogLeNetSmall(_InceptionTrunk):
    """GoogLeNet for 28-32 px images: a 3×3 stem conv (``stem_channels``, default 192·width) at full
    resolution, 3×3/2 max pooling, then the nine Inception modules (widths × ``width``, true 5×5
    kernels) with the same poolings as the ImageNet network, global average pooling, dropout, FC."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: float = 0.25, dropout: float = 0.2,
                 stem_channels: int | None = None) -> None:
        super().__init__()
        if int(num_classes) < 1 or int(in_chans) < 1 or not width > 0:
            raise ValueError(f"GoogLeNetSmall: num_classes and in_chans must be >= 1 and width > 0, got "
                             f"num_classes={num_classes}, in_chans={in_chans}, width={width}")
        self.in_chans, self.width = int(in_chans), float(width)
        self.min_size = min_input_size(_SMALL_STAGES)
        stem = stem_channels if stem_channels is not None else max(1, round(192 * width))
        self.conv1 = BasicConv2d(self.in_chans, stem, kernel_size=3, padding=1)
        self.maxpool1 = MaxPool2d(3, stride=2, ceil_mode=True)
        channels = self._build_trunk(stem, self.width, 5)
        self.avgpool = AdaptiveAvgPool2d((1, 1))
        self.dropout = Dropout(p=dropout)
        self.fc = Linear(channels, num_classes)
        self._init_small()

    def _init_small(self) -> None:
        """Kaiming-normal conv weights (fan_in, gain √2), batch norm γ = 1 and β = 0, Linear's default.
        Not the ImageNet recipe's N(0, 0.01²): with it the conv outputs have variance ~1e-4, which the
        running variance (starting at 1, momentum 0.1) needs ~100 steps to approach, so a short run
        would evaluate far worse than it trains."""
        for m in self.modules():
            if isinstance(m, Conv2d):
                init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif isinstance(m, BatchNorm2d):
                init.constant_(m.weight, 1)
                init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        check_image_input(f"GoogLeNetSmall(width={self.width})", x, self.in_chans, self.min_size)
        return self._head(self._trunk(self.maxpool1(self.conv1(x)), []))


@register_model(paper="Szegedy et al. 2015, Going deeper with convolutions")
def googlenet(num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = False, **kwargs: Any) -> GoogLeNet:
    """GoogLeNet / Inception v1 with torchvision's layout (6,624,904 parameters without the auxiliary
    heads). Further keyword arguments go to ``GoogLeNet`` (``transform_input``, ``dropout``...)."""
    return GoogLeNet(num_classes=num_classes, aux_logits=aux_logits, in_chans=in_chans, **kwargs)


@register_model(paper="Szegedy et al. 2015, Going deeper with convolutions", small_input=True)
def googlenet_small(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> GoogLeNetSmall:
    """GoogLeNet for 28-32 px images (MNIST with in_chans=1, CIFAR): 3×3 stem, nine Inception modules
    at ``width`` (default 1/4) of the paper's widths."""
    return GoogLeNetSmall(num_classes=num_classes, in_chans=in_chans, **kwargs)
