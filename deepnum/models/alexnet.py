"""AlexNet (A. Krizhevsky, I. Sutskever, G. E. Hinton, "ImageNet classification with deep convolutional
neural networks", NeurIPS 2012).

``alexnet()`` is torchvision's single-GPU form (the one of Krizhevsky's 2014 "One weird trick for
parallelizing convolutional neural networks": 64-192-384-256-256 filters, no response normalisation).
Its ``state_dict`` keys and shapes are torchvision's, so torchvision's weights load unchanged; with
the defaults it has 61,100,840 parameters::

    features:   Conv2d(3, 64, 11, stride 4, padding 2)  → 64×55×55 → ReLU → MaxPool2d(3, 2) → 64×27×27
                Conv2d(64, 192, 5, padding 2)           → ReLU → MaxPool2d(3, 2) → 192×13×13
                Conv2d(192, 384, 3, padding 1) → ReLU → Conv2d(384, 256, 3, padding 1) → ReLU
                Conv2d(256, 256, 3, padding 1) → ReLU → MaxPool2d(3, 2)                → 256×6×6
    avgpool:    AdaptiveAvgPool2d((6, 6))   (any input of at least 63×63 px gives 256×6×6)
    classifier: Dropout → Linear(9216, 4096) → ReLU → Dropout → Linear(4096, 4096) → ReLU → Linear(4096, 1000)

``alexnet(groups=2)`` is the 2012 paper's network as it was split over two GPUs (Section 3.2 and
Figure 2): 96-256-384-384-256 filters; conv2, conv4 and conv5 see only the maps of "their" GPU, which
is a convolution with ``groups=2``; conv3 and the fully connected layers connect across both halves;
local response normalisation (Section 3.3, k=2, n=5, α=1e-4, β=0.75 on the *sum* of squares, which is
``LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2)`` in PyTorch's convention of α/n) follows the ReLUs
of conv1 and conv2, before their max pooling. It has 60,965,224 parameters (conv 34,944 + 307,456 +
885,120 + 663,936 + 442,624; fc 37,752,832 + 16,781,312 + 4,097,000), the count of the Caffe
reference model ``bvlc_alexnet``. Differences from the paper: conv1 pads by 2 so a 224×224 image gives
the 55×55 maps of the paper's figure, and both forms keep PyTorch's default layer initialisation (as
torchvision does) instead of the paper's N(0, 0.01²) weights and unit biases.

``alexnet_small`` keeps the layout (five convolutions with max pooling after the 1st, 2nd and 5th,
three fully connected layers with dropout) at CIFAR/MNIST scale for 28-32 px images: 5×5 stride-1
convolutions with 2×2 pooling, a quarter of torchvision's filters (16-48-96-64-64), a 3×3 adaptive
pool and 512-unit hidden layers; 716,730 parameters for 1×28×28 input and 10 classes.
"""
from __future__ import annotations

from collections.abc import Sequence

from deepnum.functional.joining import pad
from deepnum.functional.pooling import avg_pool2d
from deepnum.models import register_model
from deepnum.nn.modules.activation import ReLU
from deepnum.nn.modules.container import Sequential
from deepnum.nn.modules.conv import Conv2d
from deepnum.nn.modules.dropout import Dropout
from deepnum.nn.modules.linear import Linear
from deepnum.nn.modules.module import Module
from deepnum.nn.modules.pooling import AdaptiveAvgPool2d, MaxPool2d
from deepnum.tensor import Tensor

__all__ = ["AlexNet", "AlexNetSmall", "LocalResponseNorm", "alexnet", "alexnet_small", "local_response_norm"]

_PAPER = "Krizhevsky et al. 2012, ImageNet classification with deep convolutional neural networks"


def local_response_norm(input: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75,  # noqa: A002
                        k: float = 1.0) -> Tensor:
    """Local response normalisation across channels (Krizhevsky et al. 2012, Section 3.3), as
    ``torch.nn.functional.local_response_norm``:
    b_c = a_c / (k + α/n · Σ_{c' in window(c)} a_c'²)^β, the window of n = ``size`` channels centred
    on c (size//2 before, (size-1)//2 after, zeros beyond the ends). The windowed sum is one average
    pooling of the squares over the channel axis."""
    if input.ndim < 3:
        raise ValueError(f"local_response_norm: expected an input with at least 3 dims (N, C, ...), "
                         f"got {tuple(input.shape)}")
    if int(size) < 1:
        raise ValueError(f"local_response_norm: size must be >= 1, got {size}")
    n, c = input.shape[0], input.shape[1]
    rest = 1
    for s in input.shape[2:]:
        rest *= s
    squares = (input * input).reshape(n, 1, c, rest)
    squares = pad(squares, (0, 0, size // 2, (size - 1) // 2))
    mean = avg_pool2d(squares, (size, 1), stride=1).reshape(input.shape)
    return input / (mean * alpha + k) ** beta


class LocalResponseNorm(Module):
    """``torch.nn.LocalResponseNorm``: normalise each activation by the energy of its ``size``
    neighbouring channels (see ``local_response_norm``)."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        if int(size) < 1:
            raise ValueError(f"LocalResponseNorm: size must be >= 1, got {size}")
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        if input.ndim < 3:
            raise ValueError(f"{self!r}: expected input (N, C, ...), got {tuple(input.shape)}")
        return local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


def _check_image(label: str, x: Tensor, channels: int, min_size: int) -> None:
    """Raise a clear error for anything but an (N, channels, H, W) batch with H, W >= min_size."""
    if x.ndim != 4 or x.shape[1] != channels or x.shape[2] < min_size or x.shape[3] < min_size:
        hint = " (a batch of images has 4 dims; add the batch dim with x.unsqueeze(0))" if x.ndim == 3 else ""
        raise ValueError(f"{label}: expected input (N, {channels}, H, W) with H, W >= {min_size}, "
                         f"got {tuple(x.shape)}{hint}")


def _classifier(in_features: int, hidden: int, num_classes: int, dropout: float) -> Sequential:
    """AlexNet's head: dropout before each of the two hidden fully connected layers."""
    return Sequential(Dropout(p=dropout), Linear(in_features, hidden), ReLU(inplace=True),
                      Dropout(p=dropout), Linear(hidden, hidden), ReLU(inplace=True), Linear(hidden, num_classes))


def _paper_lrn(groups: int) -> list[Module]:
    """The paper's response normalisation (k=2, n=5, α=1e-4 on the sum, β=0.75) for the two-GPU form;
    none in torchvision's single-GPU form."""
    return [] if groups == 1 else [LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)]


class AlexNet(Module):
    """AlexNet for ImageNet-size images ``(N, in_chans, H, W)``, H, W >= 63 (224 in the paper);
    returns ``(N, num_classes)`` logits. ``groups=1``: torchvision's single-GPU network;
    ``groups=2``: the paper's two-GPU network (see the module docstring)."""

    min_size = 63

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5, *, in_chans: int = 3, groups: int = 1) -> None:
        super().__init__()
        if groups not in (1, 2):
            raise ValueError(f"AlexNet: groups must be 1 (torchvision's single-GPU form) or 2 (the paper's two-GPU "
                             f"split), got groups={groups!r}")
        if int(num_classes) < 1 or int(in_chans) < 1:
            raise ValueError(f"AlexNet: num_classes and in_chans must be >= 1, got num_classes={num_classes}, "
                             f"in_chans={in_chans}")
        self.num_classes, self.in_chans, self.groups = int(num_classes), int(in_chans), groups
        w = (64, 192, 384, 256, 256) if groups == 1 else (96, 256, 384, 384, 256)
        g = groups
        self.features = Sequential(
            Conv2d(self.in_chans, w[0], kernel_size=11, stride=4, padding=2), ReLU(inplace=True), *_paper_lrn(g),
            MaxPool2d(kernel_size=3, stride=2),
            Conv2d(w[0], w[1], kernel_size=5, padding=2, groups=g), ReLU(inplace=True), *_paper_lrn(g),
            MaxPool2d(kernel_size=3, stride=2),
            Conv2d(w[1], w[2], kernel_size=3, padding=1), ReLU(inplace=True),
            Conv2d(w[2], w[3], kernel_size=3, padding=1, groups=g), ReLU(inplace=True),
            Conv2d(w[3], w[4], kernel_size=3, padding=1, groups=g), ReLU(inplace=True),
            MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = AdaptiveAvgPool2d((6, 6))
        self.classifier = _classifier(w[4] * 6 * 6, 4096, self.num_classes, dropout)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The paper's input size, (C, 224, 224) (any H, W >= 63 works)."""
        return (self.in_chans, 224, 224)

    def forward(self, x: Tensor) -> Tensor:
        _check_image(f"AlexNet(groups={self.groups})", x, self.in_chans, self.min_size)
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


class AlexNetSmall(Module):
    """AlexNet's layout for 28-32 px images ``(N, in_chans, H, W)`` (MNIST, CIFAR-10); any H, W >= 8
    works (the adaptive pool gives 3×3 maps). ``widths``: the five convolutions' filters."""

    min_size = 8

    def __init__(self, num_classes: int = 10, in_chans: int = 1, dropout: float = 0.5,
                 widths: Sequence[int] = (16, 48, 96, 64, 64), hidden: int = 512) -> None:
        super().__init__()
        w = tuple(int(v) for v in widths)
        if len(w) != 5 or min(w) < 1 or int(num_classes) < 1 or int(in_chans) < 1 or int(hidden) < 1:
            raise ValueError(f"AlexNetSmall: expected 5 positive widths and num_classes, in_chans, hidden >= 1, got "
                             f"widths={tuple(widths)}, num_classes={num_classes}, in_chans={in_chans}, hidden={hidden}")
        self.num_classes, self.in_chans = int(num_classes), int(in_chans)
        self.features = Sequential(
            Conv2d(self.in_chans, w[0], kernel_size=5, padding=2), ReLU(inplace=True), MaxPool2d(2),
            Conv2d(w[0], w[1], kernel_size=5, padding=2), ReLU(inplace=True), MaxPool2d(2),
            Conv2d(w[1], w[2], kernel_size=3, padding=1), ReLU(inplace=True),
            Conv2d(w[2], w[3], kernel_size=3, padding=1), ReLU(inplace=True),
            Conv2d(w[3], w[4], kernel_size=3, padding=1), ReLU(inplace=True), MaxPool2d(2),
        )
        self.avgpool = AdaptiveAvgPool2d((3, 3))
        self.classifier = _classifier(w[4] * 3 * 3, int(hidden), self.num_classes, dropout)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The default input size: (1, 28, 28) for one channel (MNIST), (C, 32, 32) otherwise (CIFAR)."""
        size = 28 if self.in_chans == 1 else 32
        return (self.in_chans, size, size)

    def forward(self, x: Tensor) -> Tensor:
        _check_image("AlexNetSmall", x, self.in_chans, self.min_size)
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


@register_model(paper=_PAPER)
def alexnet(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5, groups: int = 1) -> AlexNet:
    """AlexNet (Krizhevsky et al. 2012): torchvision's single-GPU form (61,100,840 parameters), or
    with ``groups=2`` the paper's two-GPU network with grouped convolutions and local response
    normalisation (60,965,224 parameters)."""
    return AlexNet(num_classes=num_classes, dropout=dropout, in_chans=in_chans, groups=groups)


@register_model(paper=_PAPER, small_input=True)
def alexnet_small(num_classes: int = 10, in_chans: int = 1, dropout: float = 0.5) -> AlexNetSmall:
    """AlexNet's layout scaled for 28-32 px images (MNIST with ``in_chans=1``, CIFAR-10 with 3)."""
    return AlexNetSmall(num_classes=num_classes, in_chans=in_chans, dropout=dropout)
