"""DenseNet (G. Huang, Z. Liu, L. van der Maaten, K. Q. Weinberger, "Densely connected convolutional
networks", CVPR 2017).

Inside a dense block, layer ℓ sees the concatenation of the block input and the outputs of all
earlier layers, x_ℓ = H_ℓ([x_0, x_1, ..., x_{ℓ−1}]), and adds ``growth_rate`` (k) new channels. The
DenseNet-BC layer H_ℓ is BN → ReLU → 1×1 conv to ``bn_size``·k channels (the bottleneck "B") →
BN → ReLU → 3×3 conv to k channels. Between blocks a transition layer BN → ReLU → 1×1 conv → 2×2
average pooling halves the resolution and, with compression θ = 0.5 ("C"), halves the channels.

ImageNet models (torchvision's layout: ``features.conv0``, ``features.denseblock1.denselayer1.norm1``,
``features.transition1.conv``, ``features.norm5``, ``classifier``; keys, shapes and eval outputs
equal torchvision's): stem conv 7×7/2 (2k channels) → BN → ReLU → max pool 3×3/2, four dense blocks,
final BN → ReLU → global average pooling → ``Linear``. Parameter counts (1000 classes):
``densenet121`` (blocks 6-12-24-16) 7,978,856; ``densenet169`` (6-12-32-32) 14,149,480;
``densenet201`` (6-12-48-32) 20,013,928. The smallest input they accept is 29×29.

CIFAR models (``small_input=True``): a single 3×3 conv with 2k channels (no BN, ReLU or pooling),
three dense blocks of (depth − 4)/6 bottleneck layers, two transitions (32 → 16 → 8 px). With depth
100 and k = 12 this is DenseNet-BC (L=100, k=12) of the paper's Table 2, "0.8M" parameters:
``densenet_bc_100_12`` has exactly 769,162 for 10 classes (``DENSENET_BC_100_12_PARAMS``; 800,032
for 100 classes). ``densenet_bc_22_12`` (in_chans=1 by default, for 28 px MNIST) is the tiny
variant trained in the tests (24 M multiply-adds per 28 px image against BC-100's 220 M): 3
bottleneck layers per block, 71,254 parameters with 10 classes.

Memory. A naive implementation concatenates the growing list [x_0, ..., x_{ℓ−1}] anew for every
layer, copying Σ_ℓ (c_0 + ℓk) channels, and batch norm keeps each of those concatenations for its
backward pass: O(L²) memory per block. Here a block allocates ONE buffer of its final width
c_0 + Lk, copies each new feature map into its slice once, and hands layer ℓ a view of the first
c_0 + ℓk channels (``SharedConcat``; the "shared memory storage" of G. Pleiss, D. Chen, G. Huang,
T. Li, L. van der Maaten, K. Q. Weinberger, "Memory-efficient implementation of DenseNets", 2017).
The views never change once handed out (later layers write only further channels), so they are safe
to keep for backward: the concatenations cost O(L) memory and O(L) copying. The first batch norm,
ReLU and 1×1 conv of every layer still keep their own (N, c_0 + ℓk, H, W) intermediates for the
backward pass (O(L²) in total) unless ``memory_efficient=True``: then that bottleneck is recomputed
during backward from the shared buffer (``RecomputedBottleneck``; torchvision's flag, which
checkpoints the same ops), and the whole block holds O(L) activations, at the price of running the
bottleneck's forward twice. That mode supports first-order gradients only; unlike torchvision's
checkpointing, which re-runs norm1 in train mode, it updates the running statistics once per step.
Measured (tests): with c_0 = 32, k = 4, the memory kept after the forward pass grows 2.4× from 6 to
12 layers by default and 1.9× with ``memory_efficient=True``, which keeps about a third as much.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

from deepnum.amp import autocast, is_autocast_enabled
from deepnum.autograd.function import Function
from deepnum.autograd.functional_api import grad as autograd_grad
from deepnum.autograd.grad_mode import _GradMode, enable_grad, is_grad_enabled, no_grad
from deepnum.backend import get_array_module
from deepnum.functional.array import cast, flatten
from deepnum.functional.joining import cat, split
from deepnum.models import register_model
from deepnum.models.googlenet import check_image_input, min_input_size
from deepnum.nn import functional as F
from deepnum.nn import init
from deepnum.nn.modules.activation import ReLU
from deepnum.nn.modules.batchnorm import BatchNorm2d
from deepnum.nn.modules.container import ModuleDict, Sequential
from deepnum.nn.modules.conv import Conv2d
from deepnum.nn.modules.linear import Linear
from deepnum.nn.modules.module import Module
from deepnum.nn.modules.pooling import AvgPool2d, MaxPool2d
from deepnum.tensor import Tensor

__all__ = ["DENSENET_BC_100_12_PARAMS", "DenseNet", "RecomputedBottleneck", "SharedConcat", "densenet121",
           "densenet169", "densenet201", "densenet_bc", "densenet_bc_22_12", "densenet_bc_100_12"]

DENSENET_BC_100_12_PARAMS = 769_162  # densenet_bc_100_12() for 10 classes, in_chans=3


class SharedConcat(Function):
    """[x_0, ..., x_j] concatenated along the channels into a block's preallocated buffer
    (Pleiss et al. 2017): the inputs before the last are already in the buffer (written by earlier
    calls of the same block), so only x_j is copied, into channels [c − c_j, c), and the output is
    the view ``buffer[:, :c]``. Backward: the gradient split back into the input sizes (views)."""

    saves_inputs = False

    def __init__(self, buffer: Any, sizes: list[int]) -> None:
        self.buffer, self.sizes = buffer, sizes

    def forward(self, *xs):
        end = sum(self.sizes)
        last = xs[-1]
        if last.dtype != self.buffer.dtype and not (last.dtype.kind == "f" and self.buffer.dtype.kind == "f"
                                                    and last.dtype.itemsize < self.buffer.dtype.itemsize):
            # a narrower float (a float16 conv under autocast) is widened as cat's type promotion would
            raise TypeError(f"SharedConcat: a dense layer returned {last.dtype}, the block's buffer holds "
                            f"{self.buffer.dtype}; use one dtype for the input and the parameters")
        self.buffer[:, end - last.shape[1]:end] = last
        return self.buffer[:, :end]

    def backward(self, gy):
        parts = split(gy, self.sizes, 1) if len(self.sizes) > 1 else (gy,)
        return tuple((g if g.dtype == x.dtype else cast(g, x.dtype)) if need else None
                     for g, x, need in zip(parts, self.inputs, self.needs_input_grad, strict=True))


class RecomputedBottleneck(Function):
    """z = conv1(relu1(norm1(x))) of a dense layer without keeping its intermediates: forward runs
    the layer's modules with grad off (updating batch norm's running statistics once); backward
    recomputes the three ops from the saved input (a view of the block buffer) and the parameters,
    with the same statistics (the batch's in training, the running ones in eval), and
    differentiates them. Inputs: x, norm1.weight, norm1.bias, conv1.weight."""

    def __init__(self, layer: _DenseLayer) -> None:
        self.layer = layer
        self.batch_stats = layer.norm1.training or layer.norm1.running_mean is None
        self.autocast = is_autocast_enabled("cpu"), is_autocast_enabled("cuda")  # recompute as forward ran

    def forward(self, x, gamma, beta, weight):
        layer = self.layer
        with no_grad():
            return layer.conv1(layer.relu1(layer.norm1(Tensor._make(x)))).data

    def backward(self, gz):
        if is_grad_enabled():
            raise RuntimeError("DenseNet(memory_efficient=True) supports first-order gradients only "
                               "(create_graph=True needs memory_efficient=False)")
        norm, conv = self.layer.norm1, self.layer.conv1
        leaves = [t.detach().requires_grad_(need) for t, need in zip(self.inputs, self.needs_input_grad,
                                                                      strict=True)]
        x, gamma, beta, weight = leaves
        with enable_grad(), autocast("cpu", enabled=self.autocast[0]), autocast("cuda", enabled=self.autocast[1]):
            stats = (None, None) if self.batch_stats else (norm.running_mean, norm.running_var)
            z = F.batch_norm(x, *stats, gamma, beta, self.batch_stats, 0.0, norm.eps)
            z = F.conv2d(F.relu(z), weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
        wanted = [t for t in leaves if t.requires_grad]
        grads = iter(autograd_grad(z, wanted, gz))
        return tuple(next(grads) if t.requires_grad else None for t in leaves)


class _DenseLayer(Module):
    """BN → ReLU → 1×1 conv (bn_size·k) → BN → ReLU → 3×3 conv (k), then dropout with ``drop_rate``.
    Takes the concatenated features (a Tensor, or a list of Tensors that it concatenates)."""

    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int, drop_rate: float,
                 memory_efficient: bool = False) -> None:
        super().__init__()
        self.norm1 = BatchNorm2d(num_input_features)
        self.relu1 = ReLU(inplace=True)
        self.conv1 = Conv2d(num_input_features, bn_size * growth_rate, kernel_size=1, stride=1, bias=False)
        self.norm2 = BatchNorm2d(bn_size * growth_rate)
        self.relu2 = ReLU(inplace=True)
        self.conv2 = Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, stride=1, padding=1, bias=False)
        self.drop_rate = float(drop_rate)
        self.memory_efficient = memory_efficient

    def bottleneck(self, x: Tensor) -> Tensor:
        """conv1(relu1(norm1(x))), recomputed in backward when ``memory_efficient`` (and a graph is
        being recorded); run directly otherwise."""
        params = (self.norm1.weight, self.norm1.bias, self.conv1.weight)
        if (self.memory_efficient and _GradMode.enabled and self.norm1.weight is not None
                and any(t.requires_grad for t in (x, *params))):
            self.norm1._check_input_dim(x)
            return RecomputedBottleneck(self)(x, *params)
        return self.conv1(self.relu1(self.norm1(x)))

    def forward(self, input: Tensor | list[Tensor]) -> Tensor:  # noqa: A002
        x = cat(list(input), 1) if isinstance(input, list | tuple) else input
        out = self.conv2(self.relu2(self.norm2(self.bottleneck(x))))
        return F.dropout(out, p=self.drop_rate, training=self.training) if self.drop_rate > 0 else out


class _DenseBlock(ModuleDict):
    """``num_layers`` dense layers, each fed with all earlier feature maps; the output has
    num_input_features + num_layers·growth_rate channels. The concatenations share one buffer
    (``SharedConcat``)."""

    def __init__(self, num_layers: int, num_input_features: int, bn_size: int, growth_rate: int,
                 drop_rate: float, memory_efficient: bool = False) -> None:
        super().__init__()
        self.growth_rate = growth_rate
        for i in range(num_layers):
            layer = _DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size, drop_rate,
                                memory_efficient)
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, init_features: Tensor) -> Tensor:
        n, c0, h, w = init_features.shape
        xp = get_array_module(init_features.data)
        buffer = xp.empty((n, c0 + len(self) * self.growth_rate, h, w), dtype=init_features.dtype)
        features, sizes = [init_features], [c0]
        for layer in self.values():
            new = layer(SharedConcat(buffer, list(sizes))(*features))
            features.append(new)
            sizes.append(new.shape[1])
        return SharedConcat(buffer, sizes)(*features)


class _Transition(Sequential):
    """BN → ReLU → 1×1 conv (compression) → 2×2 average pooling."""

    def __init__(self, num_input_features: int, num_output_features: int) -> None:
        super().__init__()
        self.norm = BatchNorm2d(num_input_features)
        self.relu = ReLU(inplace=True)
        self.conv = Conv2d(num_input_features, num_output_features, kernel_size=1, stride=1, bias=False)
        self.pool = AvgPool2d(kernel_size=2, stride=2)


class DenseNet(Module):
    """DenseNet-BC with torchvision's arguments and layout; keyword-only extras: ``in_chans``,
    ``small_input`` (the CIFAR stem: one 3×3 conv, no pooling) and ``compression`` (θ of the
    transitions). Input ``(N, in_chans, H, W)``; output ``(N, num_classes)`` logits."""

    def __init__(self, growth_rate: int = 32, block_config: tuple[int, ...] = (6, 12, 24, 16),
                 num_init_features: int = 64, bn_size: int = 4, drop_rate: float = 0, num_classes: int = 1000,
                 memory_efficient: bool = False, *, in_chans: int = 3, small_input: bool = False,
                 compression: float = 0.5) -> None:
        super().__init__()
        if min(int(growth_rate), int(num_init_features), int(bn_size), int(num_classes), int(in_chans)) < 1 \
                or not block_config or min(block_config) < 1 or not 0 < compression <= 1:
            raise ValueError(f"DenseNet: growth_rate, num_init_features, bn_size, num_classes, in_chans and every "
                             f"block size must be >= 1 and 0 < compression <= 1, got growth_rate={growth_rate}, "
                             f"block_config={block_config}, num_init_features={num_init_features}, "
                             f"bn_size={bn_size}, num_classes={num_classes}, in_chans={in_chans}, "
                             f"compression={compression}")
        self.in_chans, self.small_input = int(in_chans), bool(small_input)
        self.features = Sequential(OrderedDict(self._stem(num_init_features)))
        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            block = _DenseBlock(num_layers, channels, bn_size, growth_rate, drop_rate, memory_efficient)
            self.features.add_module(f"denseblock{i + 1}", block)
            channels += num_layers * growth_rate
            if i != len(block_config) - 1:
                reduced = int(math.floor(channels * compression))
                self.features.add_module(f"transition{i + 1}", _Transition(channels, reduced))
                channels = reduced
        self.features.add_module("norm5", BatchNorm2d(channels))
        self.classifier = Linear(channels, num_classes)
        stages = ((2, 2, 0, False),) * (len(block_config) - 1)
        self.min_size = min_input_size(stages if self.small_input else ((7, 2, 3, False), (3, 2, 1, False)) + stages)
        self._init_weights()

    def _stem(self, channels: int) -> list[tuple[str, Module]]:
        if self.small_input:
            return [("conv0", Conv2d(self.in_chans, channels, kernel_size=3, stride=1, padding=1, bias=False))]
        return [("conv0", Conv2d(self.in_chans, channels, kernel_size=7, stride=2, padding=3, bias=False)),
                ("norm0", BatchNorm2d(channels)), ("relu0", ReLU(inplace=True)),
                ("pool0", MaxPool2d(kernel_size=3, stride=2, padding=1))]

    def _init_weights(self) -> None:
        """torchvision's: conv weights Kaiming-normal (fan_in, gain √2), batch norm γ = 1, β = 0,
        classifier bias 0 (its weight keeps Linear's default)."""
        for m in self.modules():
            if isinstance(m, Conv2d):
                init.kaiming_normal_(m.weight)
            elif isinstance(m, BatchNorm2d):
                init.constant_(m.weight, 1)
                init.constant_(m.bias, 0)
            elif isinstance(m, Linear):
                init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        check_image_input("DenseNet", x, self.in_chans, self.min_size)
        out = F.relu(self.features(x), inplace=True)
        return self.classifier(flatten(F.adaptive_avg_pool2d(out, (1, 1)), 1))


_PAPER = "Huang et al. 2017, Densely connected convolutional networks"


def _imagenet(block_config: tuple[int, ...], num_init_features: int, growth_rate: int, num_classes: int,
              in_chans: int, kwargs: dict[str, Any]) -> DenseNet:
    return DenseNet(growth_rate, block_config, num_init_features, num_classes=num_classes, in_chans=in_chans,
                    **kwargs)


@register_model(paper=_PAPER)
def densenet121(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """DenseNet-121 (k=32, blocks 6-12-24-16): 7,978,856 parameters. Keyword arguments go to
    ``DenseNet`` (``drop_rate``, ``memory_efficient``...)."""
    return _imagenet((6, 12, 24, 16), 64, 32, num_classes, in_chans, kwargs)


@register_model(paper=_PAPER)
def densenet169(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """DenseNet-169 (k=32, blocks 6-12-32-32): 14,149,480 parameters."""
    return _imagenet((6, 12, 32, 32), 64, 32, num_classes, in_chans, kwargs)


@register_model(paper=_PAPER)
def densenet201(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """DenseNet-201 (k=32, blocks 6-12-48-32): 20,013,928 parameters."""
    return _imagenet((6, 12, 48, 32), 64, 32, num_classes, in_chans, kwargs)


def densenet_bc(depth: int, growth_rate: int, num_classes: int = 10, in_chans: int = 3,
                **kwargs: Any) -> DenseNet:
    """DenseNet-BC for 28-32 px images: 3 blocks of (depth − 4)/6 bottleneck layers, 2k stem channels,
    compression 0.5 (the paper's CIFAR networks)."""
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"densenet_bc: depth must be 6n + 4 with n >= 1 (3 blocks of n bottleneck layers), "
                         f"got depth={depth}")
    n = (depth - 4) // 6
    return DenseNet(growth_rate, (n, n, n), 2 * growth_rate, num_classes=num_classes, in_chans=in_chans,
                    small_input=True, **kwargs)


@register_model(paper=_PAPER, small_input=True)
def densenet_bc_100_12(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """DenseNet-BC (L=100, k=12) for CIFAR (Table 2, 0.8M): 769,162 parameters with 10 classes."""
    return densenet_bc(100, 12, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(paper=_PAPER, small_input=True)
def densenet_bc_22_12(num_classes: int = 10, in_chans: int = 1, **kwargs: Any) -> DenseNet:
    """DenseNet-BC (L=22, k=12), 3 bottleneck layers per block, for MNIST (in_chans=1): 71,254
    parameters with 10 classes."""
    return densenet_bc(22, 12, num_classes=num_classes, in_chans=in_chans, **kwargs)
