"""Xception (F. Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", CVPR 2017).

The "extreme Inception" hypothesis: cross-channel and spatial correlations can be mapped entirely
separately, so every Inception module becomes a depthwise separable convolution — a 3×3 depthwise
conv (one filter per channel) followed by a 1×1 pointwise conv — with **no nonlinearity between
the two** (§4.7, Fig. 10: an intermediate ReLU or ELU trains slower and ends worse). A 3×3 conv C→C
has 9C² weights, the separable one 9C + C² (for C = 728: 4,769,856 against 536,536).

Architecture (Fig. 5), 36 convolution layers in 14 modules, each module with a residual connection
except the first and last; every separable conv is followed by BatchNorm:

- entry flow: conv 3×3/2 → 32, conv 3×3 → 64 (both unpadded, BN, ReLU); three blocks
  [ReLU] SepConv → c, ReLU, SepConv → c, MaxPool 3×3/2, for c = 128, 256, 728, each added to a
  1×1 stride-2 conv + BN shortcut of its input (the first block starts without ReLU, as its input
  has just passed one);
- middle flow: 8 × (ReLU, SepConv 728) × 3, added to the identity;
- exit flow: ReLU, SepConv → 728, ReLU, SepConv → 1024, MaxPool 3×3/2 (+ 1×1/2 conv shortcut),
  SepConv → 1536, ReLU, SepConv → 2048, ReLU, global average pooling, linear classifier (the paper's
  optional fully connected layers are left out, as in its Table 3 count and in Keras).

Convolutions have no bias. Max pooling pads 1 on each side: the output sizes of Keras's 'same'
padding (147 → 74 → 37 → 19 → 10 for a 299×299 image), with the same windows on odd sizes.
**Parameter count** with 1000 classes: 22,855,952 — exactly the paper's Table 3 figure for Xception
(22,855,952, "22.8M"). Keras's ``Xception`` reports 22,910,480 *total* parameters: the same
22,855,952 trainable ones plus 54,528 non-trainable BatchNorm moving means and variances (2 × 27,264
channels), which deepnum (like PyTorch) keeps as buffers, not parameters; counting the
``running_mean``/``running_var`` buffers too gives exactly Keras's 22,910,480
(``keras_parameter_count``). The layers, kernel sizes and the biases (none in convolutions, one per
class in the classifier) are the same as Keras's, hence the exact match.

Initialisation: convolutions Kaiming normal (fan_out), BN γ = 1, β = 0 (the torchvision CNN
convention, as timm does for Xception), the classifier PyTorch's default.

``xception_cifar`` is a small-input variant for 28–32 px images (MNIST, CIFAR): stride-1, padded
stem convs (16, 32 channels), two entry blocks (64, 128), two middle blocks (128), an exit block
(128, 256) and tail separable convs (384, 512): a 32×32 image ends at 4×4 before pooling.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deepnum.models import register_model
from deepnum.models.mobilenet import ConvBNAct, check_image_input, init_cnn_weights
from deepnum.nn.modules.activation import ReLU
from deepnum.nn.modules.batchnorm import BatchNorm2d
from deepnum.nn.modules.container import Sequential
from deepnum.nn.modules.conv import Conv2d
from deepnum.nn.modules.linear import Linear
from deepnum.nn.modules.module import Module
from deepnum.nn.modules.pooling import MaxPool2d
from deepnum.tensor import Tensor

__all__ = ["SeparableConv2d", "Xception", "XceptionBlock", "keras_parameter_count", "xception", "xception_cifar"]


class SeparableConv2d(Module):
    """Depthwise K×K conv (groups = in_channels) then pointwise 1×1 conv, no bias and NO
    activation in between (Chollet 2017, §4.7): K²·C + C·O weights instead of K²·C·O."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = Conv2d(in_channels, in_channels, kernel_size, stride, (kernel_size - 1) // 2,
                                groups=in_channels, bias=False)
        self.pointwise = Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class XceptionBlock(Module):
    """One Xception module: ([ReLU] SepConv → c, BN) for each c in ``channels``, then a 3×3 max pool
    when ``stride`` is 2; added to the input, through a 1×1 conv (stride ``stride``) + BN when the
    shape changes."""

    def __init__(self, in_channels: int, channels: Sequence[int], stride: int = 1,
                 start_with_relu: bool = True) -> None:
        super().__init__()
        layers: list[Module] = []
        current = in_channels
        for i, out in enumerate(channels):
            if i > 0 or start_with_relu:
                layers.append(ReLU())
            layers += [SeparableConv2d(current, out), BatchNorm2d(out)]
            current = out
        if stride != 1:
            layers.append(MaxPool2d(3, stride, padding=1))
        self.body = Sequential(*layers)
        self.shortcut = (ConvBNAct(in_channels, current, 1, stride, activation=None)
                         if stride != 1 or current != in_channels else None)

    def forward(self, x: Tensor) -> Tensor:
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.body(x) + skip


class Xception(Module):
    """Xception (Chollet 2017, Fig. 5) with configurable widths and depth; the defaults are the
    paper's network for 299×299 images. ``small_input`` makes the stem convs stride 1 and padded.
    (N, in_chans, H, W) → (N, num_classes) logits."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, stem: Sequence[int] = (32, 64),
                 entry: Sequence[int] = (128, 256, 728), middle_blocks: int = 8,
                 exit_channels: Sequence[int] = (728, 1024), tail: Sequence[int] = (1536, 2048),
                 small_input: bool = False) -> None:
        super().__init__()
        if int(num_classes) < 1 or int(in_chans) < 1 or len(stem) != 2 or not entry or int(middle_blocks) < 0:
            raise ValueError(f"Xception: need num_classes >= 1, in_chans >= 1, two stem widths, at least one entry "
                             f"block and middle_blocks >= 0, got num_classes={num_classes}, in_chans={in_chans}, "
                             f"stem={tuple(stem)}, entry={tuple(entry)}, middle_blocks={middle_blocks}")
        self.num_classes, self.in_chans, self.small_input = int(num_classes), int(in_chans), bool(small_input)
        stride, pad = (1, 1) if small_input else (2, 0)
        self.stem = Sequential(ConvBNAct(self.in_chans, stem[0], 3, stride, activation=ReLU, padding=pad),
                               ConvBNAct(stem[0], stem[1], 3, activation=ReLU, padding=pad))
        blocks, current = [], stem[1]
        for i, c in enumerate(entry):
            blocks.append(XceptionBlock(current, (c, c), stride=2, start_with_relu=i > 0))
            current = c
        self.entry_flow = Sequential(*blocks)
        self.middle_flow = Sequential(*(XceptionBlock(current, (current,) * 3) for _ in range(int(middle_blocks))))
        self.exit_flow = Sequential(
            XceptionBlock(current, tuple(exit_channels), stride=2),
            SeparableConv2d(exit_channels[-1], tail[0]), BatchNorm2d(tail[0]), ReLU(),
            SeparableConv2d(tail[0], tail[1]), BatchNorm2d(tail[1]), ReLU(),
        )
        self.num_features = tail[1]
        self.fc = Linear(tail[1], self.num_classes)
        init_cnn_weights(self, linear_std=None)

    def forward(self, x: Tensor) -> Tensor:
        check_image_input(f"Xception(in_chans={self.in_chans})", x, self.in_chans)
        features = self.exit_flow(self.middle_flow(self.entry_flow(self.stem(x))))
        return self.fc(features.mean((2, 3)))

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, in_chans={self.in_chans}, small_input={self.small_input}"


def keras_parameter_count(model: Module) -> int:
    """Parameters plus BatchNorm running means and variances: what Keras calls "Total params"
    (its BN moving statistics are non-trainable weights); 22,910,480 for ``xception()``."""
    stats = sum(b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var")))
    return sum(p.numel() for p in model.parameters()) + stats


_PAPER = "Chollet 2017, Xception: Deep Learning with Depthwise Separable Convolutions"


@register_model(paper=_PAPER)
def xception(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> Xception:
    """Xception for 299×299 images: 22,855,952 parameters with 1000 classes (the paper's Table 3)."""
    return Xception(num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(paper=_PAPER, small_input=True)
def xception_cifar(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> Xception:
    """A small Xception for 28–32 px images (stride-1 stem, entry 64/128, 2 middle blocks, exit
    128/256, tail 384/512)."""
    config: dict[str, Any] = {"stem": (16, 32), "entry": (64, 128), "middle_blocks": 2, "exit_channels": (128, 256),
                              "tail": (384, 512), "small_input": True}
    config.update(kwargs)
    return Xception(num_classes=num_classes, in_chans=in_chans, **config)
