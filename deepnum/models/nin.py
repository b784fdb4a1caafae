"""Network in Network (M. Lin, Q. Chen, S. Yan, "Network in network", ICLR 2014).

An mlpconv block replaces a linear convolution by a small multilayer perceptron slid over the image:
a k×k convolution followed by two 1×1 convolutions ("cascaded cross channel parametric pooling"),
each with a ReLU. The classifier is global average pooling (Section 3.2): the last mlpconv makes one
map per class and each map's mean is that class's logit, so the network has no fully connected layer.
Dropout follows every mlpconv block but the last (Section 4.1).

``nin_cifar`` is the paper's CIFAR-10 model as the authors released it (the Caffe Model Zoo's "NIN
CIFAR10" definition, which the paper's Section 4.2 describes: three mlpconv layers, pooling between
them halving the maps)::

    features: MLPConv(in → 192, 5×5, pad 2 | 160 | 96)   → MaxPool2d(3, 2, ceil_mode)    → Dropout(0.5)  32→16
              MLPConv(96 → 192, 5×5, pad 2 | 192 | 192)  → AvgPool2d(3, 2, ceil_mode)    → Dropout(0.5)  16→8
              MLPConv(192 → 192, 3×3, pad 1 | 192 | num_classes)
    head:     AdaptiveAvgPool2d(1) → Flatten

Parameter count matched (the paper prints none; it is the released model's layer table worked out
layer by layer): 14,592 + 30,880 + 15,456 | 460,992 + 37,056 + 37,056 | 331,968 + 37,056 + 1,930 =
**966,986** for 3×32×32 inputs and 10 classes. As in the release, the class maps pass a ReLU before
the global average (the logits are non-negative). Caffe rounds pooled sizes up, hence
``ceil_mode=True`` (a partial last window is averaged over its pixels inside the image only).

Initialisation: He et al. (2015) normal, fan_in with the ReLU gain, and zero biases, in place of the
release's hand-tuned fixed-std Gaussians (they need the authors' learning-rate schedule to train).

``nin_mnist`` is the small MNIST model: the paper (Section 4.6) uses the CIFAR-10 structure with
fewer feature maps and gives no numbers; here 32-24-16 | 32-32-32 | 32-32-10 maps (28→14→7 and
32→16→8 px) and no ReLU on the class maps (``relu_logits=False``): in short runs from scratch a
class whose maps are all negative gets a constant logit and no gradient (in MNIST runs of 2,000
images, 2-3 epochs with Adam, the ReLU'd form stayed at 10-35 % test accuracy where the linear one
reached 65-90 %). 27,602 parameters for 1×28×28 input and 10 classes.
"""
from __future__ import annotations

from collections.abc import Sequence

from deepnum.models import register_model
from deepnum.nn import init
from deepnum.nn.modules.activation import ReLU
from deepnum.nn.modules.container import Sequential
from deepnum.nn.modules.conv import Conv2d
from deepnum.nn.modules.dropout import Dropout
from deepnum.nn.modules.linear import Flatten
from deepnum.nn.modules.module import Module
from deepnum.nn.modules.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from deepnum.tensor import Tensor

__all__ = ["MLPConv", "NiN", "nin_cifar", "nin_mnist"]

_PAPER = "Lin, Chen & Yan 2014, Network in network"


class MLPConv(Sequential):
    """One mlpconv layer: Conv2d(in, c1, k, padding) → ReLU → Conv2d(c1, c2, 1) → ReLU →
    Conv2d(c2, c3, 1) → ReLU, i.e. a three-layer perceptron applied to every k×k patch
    (Lin et al. 2014, Section 3.1, Eq. 2); ``last_relu=False`` leaves the last layer linear."""

    def __init__(self, in_channels: int, channels: Sequence[int], kernel_size: int, padding: int = 0,
                 last_relu: bool = True) -> None:
        c1, c2, c3 = (int(c) for c in channels)
        super().__init__(Conv2d(in_channels, c1, kernel_size, padding=padding), ReLU(inplace=True),
                         Conv2d(c1, c2, 1), ReLU(inplace=True), Conv2d(c2, c3, 1),
                         *([ReLU(inplace=True)] if last_relu else []))


class NiN(Module):
    """Network in Network: three mlpconv blocks (``widths``: the three (k×k, 1×1, 1×1) filter
    counts of the first two; the third's last 1×1 layer makes ``num_classes`` maps), max then average
    3×3 stride-2 pooling and dropout between them, global average pooling as the classifier
    (``relu_logits``: a ReLU on the class maps before the average, as the released model).
    Input ``(N, in_chans, H, W)`` with H, W >= 4 (``image_size`` is only the default
    ``input_shape``); output ``(N, num_classes)`` logits."""

    min_size = 4

    def __init__(self, num_classes: int = 10, in_chans: int = 3,
                 widths: Sequence[Sequence[int]] = ((192, 160, 96), (192, 192, 192), (192, 192)),
                 kernel_sizes: Sequence[int] = (5, 5, 3), dropout: float = 0.5, relu_logits: bool = True,
                 image_size: int = 32) -> None:
        super().__init__()
        w = [tuple(int(c) for c in block) for block in widths]
        k = tuple(int(v) for v in kernel_sizes)
        if [len(b) for b in w] != [3, 3, 2] or len(k) != 3 or min(min(b) for b in w) < 1 or min(k) < 1 \
                or any(v % 2 == 0 for v in k) or int(num_classes) < 1 or int(in_chans) < 1:
            raise ValueError(f"NiN: expected widths of 3, 3 and 2 positive filter counts, 3 odd kernel sizes and "
                             f"num_classes, in_chans >= 1, got widths={widths}, kernel_sizes={kernel_sizes}, "
                             f"num_classes={num_classes}, in_chans={in_chans}")
        self.num_classes, self.in_chans, self.relu_logits = int(num_classes), int(in_chans), bool(relu_logits)
        self.image_size = int(image_size)
        self.features = Sequential(
            MLPConv(self.in_chans, w[0], k[0], padding=k[0] // 2),
            MaxPool2d(kernel_size=3, stride=2, ceil_mode=True), Dropout(p=dropout),
            MLPConv(w[0][2], w[1], k[1], padding=k[1] // 2),
            AvgPool2d(kernel_size=3, stride=2, ceil_mode=True), Dropout(p=dropout),
            MLPConv(w[1][2], (*w[2], self.num_classes), k[2], padding=k[2] // 2, last_relu=relu_logits),
        )
        self.head = Sequential(AdaptiveAvgPool2d(1), Flatten())
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal convolution weights (fan_in, ReLU gain), zero biases."""
        for module in self.modules():
            if isinstance(module, Conv2d):
                init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                init.zeros_(module.bias)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The default input size (C, image_size, image_size); any H, W >= 4 works."""
        return (self.in_chans, self.image_size, self.image_size)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_chans or min(x.shape[2], x.shape[3]) < self.min_size:
            hint = " (a batch of images has 4 dims; add the batch dim with x.unsqueeze(0))" if x.ndim == 3 else ""
            raise ValueError(f"NiN: expected input (N, {self.in_chans}, H, W) with H, W >= {self.min_size}, "
                             f"got {tuple(x.shape)}{hint}")
        return self.head(self.features(x))


@register_model(paper=_PAPER, small_input=True)
def nin_cifar(num_classes: int = 10, in_chans: int = 3, dropout: float = 0.5) -> NiN:
    """The paper's CIFAR-10 Network in Network (966,986 parameters for 10 classes)."""
    return NiN(num_classes=num_classes, in_chans=in_chans, dropout=dropout)


@register_model(paper=_PAPER, small_input=True)
def nin_mnist(num_classes: int = 10, in_chans: int = 1, dropout: float = 0.5) -> NiN:
    """A narrower Network in Network for MNIST-size images (the paper's Section 4.6 structure)."""
    return NiN(num_classes=num_classes, in_chans=in_chans, widths=((32, 24, 16), (32, 32, 32), (32, 32)),
               dropout=dropout, relu_logits=False, image_size=28 if in_chans == 1 else 32)
