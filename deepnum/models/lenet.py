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

Parameters with the defaults: 156 + 2,416 + 48,120 + 10,164 + 850 = 61,706.

``lenet5_classic`` (``LeNet5Classic``) is the 1998 network itself, for 32×32 images (28×28 input is
zero-padded by 2 pixels on each side, as the paper centres MNIST digits in a 32×32 field)::

    C1  Conv2d(1, 6, 5)                          → 6×28×28  → A·tanh(S·a)
    S2  AvgPool2d(2) → Conv2d(6, 6, 1, groups=6) → 6×14×14  → A·tanh(S·a)
    C3  TableConv2d(6, 16, 5), Table I           → 16×10×10 → A·tanh(S·a)
    S4  AvgPool2d(2) → Conv2d(16, 16, 1, groups=16) → 16×5×5 → A·tanh(S·a)
    C5  Conv2d(16, 120, 5)                       → 120×1×1  → A·tanh(S·a)
    F6  Flatten → Linear(120, 84)                           → A·tanh(S·a)
    out Linear(84, num_classes)

- the squashing function is the paper's scaled tanh f(a) = A·tanh(S·a), A = 1.7159, S = 2/3
  (Section II-A and Appendix A);
- a sub-sampling unit of S2/S4 adds its four inputs, multiplies by a trainable coefficient and adds a
  trainable bias (one pair per map). Simplified form: an average pooling followed by a 1×1 depthwise
  convolution, which is exactly that map-wise coefficient and bias (the mean is the sum / 4, the
  factor 4 goes into the coefficient); 12 and 32 parameters as in the paper;
- C3 connects each of its 16 maps to the subset of S2 maps of the paper's Table I (``C3_TABLE``):
  ``TableConv2d`` keeps a full (16, 6, 5, 5) weight and multiplies it by the table's 0/1 mask in
  every forward pass, so the 900 weights outside the table stay zero and get zero gradient; the 1,516
  parameters the table uses are the paper's count. ``connection_table=False`` makes C3 a full
  convolution (2,416 parameters);
- the output layer: the paper's Euclidean RBF units with fixed ±1 7×12 bitmaps of the digits are
  replaced by a ``Linear(84, num_classes)`` trained with cross-entropy on its logits;
- initialisation as the paper's Appendix A: the weights and the bias of a unit with F_i inputs are
  drawn from U(−2.4/F_i, 2.4/F_i) (for S2/S4, F_i = 4 on the sum, i.e. U(±2.4) for the coefficient
  of the mean).

Parameters: 156 + 12 + 1,516 + 32 + 48,120 + 10,164 = 60,000 up to F6 (the paper's "about 60,000
trainable parameters"), plus 850 for the output layer: 60,850 used; the model holds 61,750 numbers
(the 900 masked C3 weights included)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepnum.autograd.grad_mode import no_grad
from deepnum.creation import tensor as as_tensor
from deepnum.functional.conv import conv2d
from deepnum.functional.joining import pad
from deepnum.functional.math import tanh
from deepnum.models import register_model
from deepnum.nn import init
from deepnum.nn.modules.activation import ReLU
from deepnum.nn.modules.container import Sequential
from deepnum.nn.modules.conv import Conv2d
from deepnum.nn.modules.linear import Flatten, Linear
from deepnum.nn.modules.module import Module
from deepnum.nn.modules.pooling import AvgPool2d, MaxPool2d
from deepnum.tensor import Tensor

__all__ = ["C3_TABLE", "LeNet5", "LeNet5Classic", "ScaledTanh", "TableConv2d", "lenet5", "lenet5_classic"]


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


# ----------------------------------------------------------------------------- the 1998 form
C3_TABLE: tuple[tuple[int, ...], ...] = (
    *(tuple((j + i) % 6 for i in range(3)) for j in range(6)),   # maps 0-5: three neighbouring S2 maps
    *(tuple((j + i) % 6 for i in range(4)) for j in range(6)),   # maps 6-11: four neighbouring maps
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),                    # maps 12-14: four, not all neighbours
    (0, 1, 2, 3, 4, 5),                                          # map 15: all six
)
"""LeCun et al. 1998, Table I: the S2 maps each C3 map reads."""


class ScaledTanh(Module):
    """The squashing function of LeCun et al. 1998 (Appendix A): f(a) = A·tanh(S·a) with A = 1.7159
    and S = 2/3, so that f(±1) = ±1 and the gain is largest around the targets."""

    def __init__(self, A: float = 1.7159, S: float = 2.0 / 3.0) -> None:  # noqa: N803 (the paper's names)
        super().__init__()
        self.A, self.S = float(A), float(S)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return tanh(input * self.S) * self.A

    def extra_repr(self) -> str:
        return f"A={self.A:g}, S={self.S:.4g}"


class TableConv2d(Conv2d):
    """A convolution whose output map o reads only the input maps listed in ``table[o]`` (the
    sparse C3 layer of LeCun et al. 1998): y = conv(x, W ⊙ M) + b with the fixed 0/1 mask
    M[o, i] = [i in table[o]] (a non-persistent buffer), so the weights outside the table are zero
    and receive zero gradient."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, table: Sequence[Sequence[int]],
                 stride: Any = 1, padding: Any = 0, bias: bool = True, device: Any = None, dtype: Any = None) -> None:
        rows = [tuple(int(i) for i in row) for row in table]
        if len(rows) != out_channels or any(not row or min(row) < 0 or max(row) >= in_channels for row in rows):
            raise ValueError(f"TableConv2d({in_channels}→{out_channels}): table must list, for each of the "
                             f"{out_channels} output maps, a non-empty set of input maps in 0..{in_channels - 1}")
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias,
                         device=device, dtype=dtype)
        self.table = tuple(rows)
        mask = np.zeros((out_channels, in_channels, 1, 1), dtype=self.weight.dtype)
        for o, row in enumerate(rows):
            mask[o, list(row), 0, 0] = 1
        self.register_buffer("mask", as_tensor(mask, device=self.weight.device), persistent=False)
        self.apply_mask_()

    def apply_mask_(self) -> None:
        """Zero the weights outside the table (after an initialisation or a weight load)."""
        with no_grad():
            self.weight.mul_(self.mask)

    def connections(self) -> np.ndarray:
        """The number of input maps each output map reads, shape (out_channels,)."""
        return np.array([len(row) for row in self.table])

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        self._check_input(input)
        return conv2d(input, self.weight * self.mask, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", table={len(self.table)} maps"


def _paper_uniform(module: Conv2d | Linear, fan_in: np.ndarray | float, bias_fan_in: np.ndarray | float) -> None:
    """Weights of each output unit ~ U(±2.4/fan_in), bias ~ U(±2.4/bias_fan_in) (LeCun et al. 1998,
    Appendix A); ``fan_in`` may differ per output unit (a row of the C3 table)."""
    for param, fan in ((module.weight, fan_in), (module.bias, bias_fan_in)):
        init.uniform_(param, -1.0, 1.0)
        scale = (2.4 / np.asarray(fan, dtype=np.float64)).astype(param.dtype)
        scale = scale.reshape((-1,) + (1,) * (param.ndim - 1)) if scale.ndim else scale
        with no_grad():
            param.mul_(as_tensor(scale, device=param.device))


class LeNet5Classic(Module):
    """LeNet-5 as in LeCun et al. 1998 (see the module docstring) for ``(N, in_channels, 32, 32)``
    images, or 28×28 ones zero-padded to 32×32; returns ``(N, num_classes)`` logits."""

    image_size = (32, 32)

    def __init__(self, num_classes: int = 10, in_channels: int = 1, connection_table: bool = True) -> None:
        super().__init__()
        if int(num_classes) < 1 or int(in_channels) < 1:
            raise ValueError(f"LeNet5Classic: num_classes and in_channels must be >= 1, got "
                             f"num_classes={num_classes}, in_channels={in_channels}")
        self.num_classes, self.in_channels = int(num_classes), int(in_channels)
        self.connection_table = bool(connection_table)
        c3 = TableConv2d(6, 16, 5, C3_TABLE) if self.connection_table else Conv2d(6, 16, kernel_size=5)
        self.features = Sequential(
            Conv2d(self.in_channels, 6, kernel_size=5), ScaledTanh(),                        # C1
            AvgPool2d(2), Conv2d(6, 6, kernel_size=1, groups=6), ScaledTanh(),                # S2
            c3, ScaledTanh(),                                                                 # C3
            AvgPool2d(2), Conv2d(16, 16, kernel_size=1, groups=16), ScaledTanh(),             # S4
            Conv2d(16, 120, kernel_size=5), ScaledTanh(),                                     # C5
        )
        self.classifier = Sequential(Flatten(), Linear(120, 84), ScaledTanh(), Linear(84, self.num_classes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The paper's initialisation: U(±2.4/F_i), F_i the fan-in of the unit."""
        f, c = self.features, self.classifier
        c3 = f[5]
        _paper_uniform(f[0], 25.0 * self.in_channels, 25.0 * self.in_channels)
        c3_fan = 25.0 * (c3.connections() if isinstance(c3, TableConv2d) else np.full(16, 6))
        _paper_uniform(c3, c3_fan, c3_fan)
        if isinstance(c3, TableConv2d):
            c3.apply_mask_()
        _paper_uniform(f[10], 400.0, 400.0)
        for sub in (f[3], f[8]):  # coefficient on the mean of 4 inputs = 4 × the paper's coefficient on their sum
            _paper_uniform(sub, 1.0, 4.0)
        _paper_uniform(c[1], 120.0, 120.0)
        _paper_uniform(c[3], 84.0, 84.0)

    def used_parameters(self) -> int:
        """Trainable numbers the network uses: all parameters minus the C3 weights outside the table."""
        total = sum(p.numel() for p in self.parameters())
        c3 = self.features[5]
        if isinstance(c3, TableConv2d):
            total -= int(c3.weight.numel() - int(c3.connections().sum()) * math.prod(c3.kernel_size))
        return total

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The shape of one input image, (C, H, W)."""
        return (self.in_channels, *self.image_size)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels or tuple(x.shape[2:]) not in ((32, 32), (28, 28)):
            hint = "" if x.ndim == 4 else " (a batch of images has 4 dims; add the batch dim with x.unsqueeze(0))"
            raise ValueError(f"LeNet5Classic: expected input (N, {self.in_channels}, 32, 32) or "
                             f"(N, {self.in_channels}, 28, 28) (zero-padded to 32), got {tuple(x.shape)}{hint}")
        if x.shape[2] == 28:
            x = pad(x, (2, 2, 2, 2))
        return self.classifier(self.features(x))

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, in_channels={self.in_channels}, "
                f"connection_table={self.connection_table}")


@register_model(paper="LeCun et al. 1998, Gradient-based learning applied to document recognition",
                small_input=True)
def lenet5_classic(num_classes: int = 10, in_chans: int = 1, in_channels: int | None = None,
                   connection_table: bool = True) -> LeNet5Classic:
    """LeNet-5 as published (LeCun et al. 1998): 32×32 input (28×28 is padded), scaled-tanh
    squashing, trainable average-pool sub-sampling, C3's connection table; 60,000 parameters up to F6."""
    return LeNet5Classic(num_classes=num_classes, in_channels=in_chans if in_channels is None else in_channels,
                         connection_table=connection_table)
