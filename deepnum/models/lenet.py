"""LeNet-5 (Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, "Gradient-based learning applied to document
recognition", Proc. IEEE 1998), in its common modern form for 28×28 images such as MNIST.

Layout (shapes for one 1×28×28 image)::

    features:   Conv2d(1, 6, 5, padding=2)  → 6×28×28  → ReLU → MaxPool2d(2) → 6×14×14
                Conv2d(6, 16, 5)            → 16×10×10 → ReLU → MaxPool2d(2) → 16×5×5
    classifier: Flatten → Linear(400, 120) → ReLU → Linear(120, 84) → ReLU → Linear(84, num_classes)

Differences from the 1998 network, all of them the usual modern choices:
- the paper feeds 32×32 images (MNIST digits padded by 2 pixels) to an unpadded first convolution;
  here the 28×28 image goes in directly and the first convolution pads by 2, which gives the same
  28×28×6 C1 maps;
- ReLU instead of the scaled tanh ``1.7159·tanh(2x/3)``, and 2×2 max pooling instead of the
  trainable sub-sampling (average × weight + bias, then the squashing function): both train faster;
- C3 connects every S2 map to every C3 map (the paper used a hand-made sparse table), C5 is a
  ``Linear(16·5·5, 120)`` (the paper's 5×5 convolution on 5×5 maps is the same thing), and the RBF
  output layer is a ``Linear(84, num_classes)`` trained with cross-entropy on its logits.

Parameters with the defaults: 156 + 2,416 + 48,120 + 10,164 + 850 = 61,706."""
from __future__ import annotations

from deepnum.models import register_model
from deepnum.nn.modules.activation import ReLU
from deepnum.nn.modules.container import Sequential
from deepnum.nn.modules.conv import Conv2d
from deepnum.nn.modules.linear import Flatten, Linear
from deepnum.nn.modules.module import Module
from deepnum.nn.modules.pooling import MaxPool2d
from deepnum.tensor import Tensor

__all__ = ["LeNet5", "lenet5"]


class LeNet5(Module):
    """LeNet-5 for ``(N, in_channels, 28, 28)`` images; returns ``(N, num_classes)`` logits."""

    image_size = (28, 28)

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        if int(num_classes) < 1 or int(in_channels) < 1:
            raise ValueError(f"LeNet5: num_classes and in_channels must be >= 1, got num_classes={num_classes}, "
                             f"in_channels={in_channels}")
        self.num_classes, self.in_channels = int(num_classes), int(in_channels)
        self.features = Sequential(
            Conv2d(self.in_channels, 6, kernel_size=5, padding=2), ReLU(), MaxPool2d(2),
            Conv2d(6, 16, kernel_size=5), ReLU(), MaxPool2d(2),
        )
        self.classifier = Sequential(
            Flatten(), Linear(16 * 5 * 5, 120), ReLU(), Linear(120, 84), ReLU(), Linear(84, self.num_classes),
        )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The shape of one input image, (C, H, W)."""
        return (self.in_channels, *self.image_size)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            hint = "" if x.ndim == 4 else " (a batch of images has 4 dims; add the batch dim with x.unsqueeze(0))"
            raise ValueError(f"LeNet5: expected input (N, {self.in_channels}, 28, 28), got {tuple(x.shape)}{hint}")
        return self.classifier(self.features(x))

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, in_channels={self.in_channels}"


@register_model(paper="LeCun et al. 1998, Gradient-based learning applied to document recognition",
                small_input=True)
def lenet5(num_classes: int = 10, in_chans: int = 1, in_channels: int | None = None) -> LeNet5:
    """LeNet-5 (LeCun et al. 1998), modern variant (ReLU, max pooling) for 28×28 images.
    ``in_chans`` is the registry's name for the input channels (``in_channels`` is accepted too)."""
    return LeNet5(num_classes=num_classes, in_channels=in_chans if in_channels is None else in_channels)
