"""The networks of ``deepnum segment``: a small digit classifier, ``convolutionalize`` (its dense
head rewritten as convolutions) and the fully convolutional network built from it.

"Convolutionalization" (Long, Shelhamer, Darrell, "Fully Convolutional Networks for Semantic
Segmentation", CVPR 2015, Section 3.1): a ``Linear`` layer that reads a flattened ``C x h x w``
feature map is a ``Conv2d(C, out, (h, w))`` with the same weights reshaped, and each following
``Linear`` is a 1x1 convolution. On the training input size the result is the classifier's output
as a 1x1 map; on a larger image it slides the classifier with the stride of its features and gives
a dense map of class scores in one pass.
"""
from __future__ import annotations

import copy

import numpy as np

from deepnum.autograd.grad_mode import no_grad
from deepnum.creation import tensor as as_tensor
from deepnum.nn.modules.activation import ReLU
from deepnum.nn.modules.container import Sequential
from deepnum.nn.modules.conv import Conv2d, ConvTranspose2d
from deepnum.nn.modules.linear import Flatten, Linear
from deepnum.nn.modules.module import Module
from deepnum.nn.modules.pooling import MaxPool2d
from deepnum.tensor import Tensor

__all__ = ["FCN", "DigitClassifier", "Standardize", "bilinear_kernel", "convolutionalize"]


MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def _block(c_in: int, c_out: int) -> Sequential:
    return Sequential(Conv2d(c_in, c_out, 3, padding=1), ReLU())


class Standardize(Module):
    """``(x - mean) / std`` with MNIST's pixel mean and standard deviation (fixed, no parameters), so
    the models take images in [0, 1] and their first layers see inputs of unit scale."""

    def __init__(self, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> None:
        super().__init__()
        self.mean, self.std = float(mean), float(std)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) * (1.0 / self.std)

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"


class DigitClassifier(Module):
    """A VGG-style classifier for 28x28 digits in [0, 1]: ``Standardize``, three conv+ReLU+2x2-max-pool
    stages (16, 32, 64 channels: 28 -> 14 -> 7 -> 3) and a dense head Flatten -> Linear(576, 128) ->
    ReLU -> Linear(128, 10)."""

    def __init__(self, num_classes: int = 10, hidden: int = 128) -> None:
        super().__init__()
        self.features = Sequential(Standardize(), _block(1, 16), MaxPool2d(2), _block(16, 32), MaxPool2d(2),
                                   _block(32, 64), MaxPool2d(2))
        self.classifier = Sequential(Flatten(), Linear(64 * 3 * 3, hidden), ReLU(), Linear(hidden, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


def convolutionalize(model: Module, input_size: tuple[int, int, int] = (1, 28, 28)) -> Sequential:
    """A fully convolutional copy of ``model`` (which has ``features`` and a ``classifier`` that
    starts with ``Flatten``): the first ``Linear`` becomes a ``Conv2d`` whose kernel covers the whole
    feature map that ``input_size`` gives, later ``Linear`` layers 1x1 convolutions; other layers
    (activations, dropout) are kept. On an ``input_size`` image it returns the classifier's logits
    as an ``(N, classes, 1, 1)`` map; on a larger image an ``(N, classes, H', W')`` score map."""
    head = list(model.classifier)
    if not head or not isinstance(head[0], Flatten):
        got = type(head[0]).__name__ if head else "nothing"
        raise ValueError(f"convolutionalize: model.classifier must start with Flatten, got {got}")
    was_training = model.training
    model.eval()
    with no_grad():
        c, h, w = model.features(as_tensor(np.zeros((1, *input_size), np.float32))).shape[1:]
    model.train(was_training)
    layers, first = [copy.deepcopy(model.features)], True
    for layer in head[1:]:
        if isinstance(layer, Linear):
            kh, kw = (h, w) if first else (1, 1)
            if layer.in_features != (c * h * w if first else c):
                raise ValueError(f"convolutionalize: Linear(in_features={layer.in_features}) does not read the "
                                 f"{(c, h, w) if first else c} features of input_size={input_size}")
            conv = Conv2d(c if first else layer.in_features, layer.out_features, (kh, kw), bias=layer.bias is not None)
            with no_grad():
                conv.weight.copy_(layer.weight.reshape(conv.weight.shape))
                if layer.bias is not None:
                    conv.bias.copy_(layer.bias)
            layers.append(conv)
            c, first = layer.out_features, False
        else:
            layers.append(copy.deepcopy(layer))
    return Sequential(*layers)


def bilinear_kernel(channels: int, size: int) -> np.ndarray:
    """The (channels, channels, size, size) weight that makes ``ConvTranspose2d(stride=size // 2)``
    a per-channel bilinear upsampler (FCN initialises its upsampling layers so)."""
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.arange(size, dtype=np.float64)
    filt = 1 - np.abs(og - centre) / factor
    weight = np.zeros((channels, channels, size, size), np.float32)
    weight[np.arange(channels), np.arange(channels)] = np.outer(filt, filt)
    return weight


class FCN(Module):
    """A fully convolutional network with FCN-8s-style skips carried down to full resolution.

    Body (a ``DigitClassifier``'s layers, so its weights transfer): ``Standardize``, conv1 (16, stride 1) -> pool ->
    conv2 (32, stride 2) -> pool -> conv3 (64, stride 4) -> pool -> fc6 (the classifier's first dense
    layer as a 3x3 convolution, padded so the map stays 1/8 of the input) -> ReLU. Head: a 1x1 "score"
    convolution at each stride (8, 4, 2, 1); starting from the coarsest, the score map is upsampled
    2x by a transposed convolution initialised to bilinear interpolation and added to the next finer
    score map (Long et al. 2015, Section 4.2). Input height and width must be multiples of 8."""

    def __init__(self, num_classes: int = 11, hidden: int = 128) -> None:
        super().__init__()
        self.norm = Standardize()
        self.conv1, self.conv2, self.conv3 = _block(1, 16), _block(16, 32), _block(32, 64)
        self.pool = MaxPool2d(2)
        self.fc6 = Sequential(Conv2d(64, hidden, 3, padding=1), ReLU())
        self.score8, self.score4 = Conv2d(hidden, num_classes, 1), Conv2d(64, num_classes, 1)
        self.score2, self.score1 = Conv2d(32, num_classes, 1), Conv2d(16, num_classes, 1)
        self.up8, self.up4, self.up2 = (ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, bias=False)
                                        for _ in range(3))
        with no_grad():
            for up in (self.up8, self.up4, self.up2):
                up.weight.copy_(as_tensor(bilinear_kernel(num_classes, 4)))

    def load_classifier(self, classifier: DigitClassifier) -> FCN:
        """Start from a trained ``DigitClassifier``: copy its convolutions and its first dense layer
        (convolutionalized to a 3x3 kernel); the scoring layers stay new, as in FCN."""
        f = classifier.features
        fc = classifier.classifier[1]
        with no_grad():
            for mine, theirs in ((self.conv1[0], f[1][0]), (self.conv2[0], f[3][0]), (self.conv3[0], f[5][0])):
                mine.weight.copy_(theirs.weight)
                mine.bias.copy_(theirs.bias)
            self.fc6[0].weight.copy_(fc.weight.reshape(self.fc6[0].weight.shape))
            self.fc6[0].bias.copy_(fc.bias)
        return self

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] % 8 or x.shape[3] % 8:
            raise ValueError(f"FCN: input must be (N, 1, H, W) with H and W multiples of 8, got {tuple(x.shape)}")
        c1 = self.conv1(self.norm(x))
        c2 = self.conv2(self.pool(c1))
        c3 = self.conv3(self.pool(c2))
        fc = self.fc6(self.pool(c3))
        s = self.up8(self.score8(fc)) + self.score4(c3)
        s = self.up4(s) + self.score2(c2)
        return self.up2(s) + self.score1(c1)
