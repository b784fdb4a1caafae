"""The DCGAN pair for 28×28 images (Radford, Metz and Chintala 2016, "Unsupervised representation
learning with deep convolutional generative adversarial networks", section 3 and figure 1).

The paper's guidelines, kept here: no pooling and no fully connected hidden layers (the generator
upsamples with strided transposed convolutions, the discriminator downsamples with strided
convolutions); batch normalisation in both nets except the generator's output and the
discriminator's input layer; ReLU in the generator with Tanh at the output; LeakyReLU (slope 0.2) in
the discriminator; weights drawn from N(0, 0.02). The paper's 64×64 stack (4×4 → 8 → 16 → 32 → 64)
is shortened for MNIST's 28×28: a 7×7 transposed convolution turns the noise vector into a 7×7 map,
and two stride-2 layers double it to 14 and 28. The discriminator mirrors it (28 → 14 → 7 → one
7×7 convolution to a single logit) and returns logits, so the loss is ``BCEWithLogitsLoss`` (the
sigmoid and the binary cross-entropy fused, stable for large logits)."""
from __future__ import annotations

from deepnum.autograd.grad_mode import no_grad
from deepnum.nn import init
from deepnum.nn.modules.activation import LeakyReLU, ReLU, Tanh
from deepnum.nn.modules.batchnorm import BatchNorm2d
from deepnum.nn.modules.container import Sequential
from deepnum.nn.modules.conv import Conv2d, ConvTranspose2d
from deepnum.nn.modules.module import Module
from deepnum.random import Generator
from deepnum.tensor import Tensor

__all__ = ["DCGANDiscriminator", "DCGANGenerator", "dcgan_init_"]


class DCGANGenerator(Module):
    """Noise ``(N, nz)`` or ``(N, nz, 1, 1)`` → images ``(N, 1, 28, 28)`` in [-1, 1]; ``ngf`` is the
    width of the last hidden layer (the one before it has ``2·ngf`` channels)."""

    def __init__(self, nz: int = 64, ngf: int = 32, channels: int = 1) -> None:
        super().__init__()
        if min(int(nz), int(ngf), int(channels)) < 1:
            raise ValueError(f"DCGANGenerator: nz, ngf and channels must be >= 1, got nz={nz}, ngf={ngf}, "
                             f"channels={channels}")
        self.nz, self.ngf, self.channels = int(nz), int(ngf), int(channels)
        self.main = Sequential(
            ConvTranspose2d(self.nz, 2 * self.ngf, 7, 1, 0, bias=False), BatchNorm2d(2 * self.ngf), ReLU(True),
            ConvTranspose2d(2 * self.ngf, self.ngf, 4, 2, 1, bias=False), BatchNorm2d(self.ngf), ReLU(True),
            ConvTranspose2d(self.ngf, self.channels, 4, 2, 1, bias=False), Tanh(),
        )

    def forward(self, z: Tensor) -> Tensor:
        if tuple(z.shape[1:]) not in ((self.nz,), (self.nz, 1, 1)):
            raise ValueError(f"DCGANGenerator: expected noise (N, {self.nz}) or (N, {self.nz}, 1, 1), "
                             f"got {tuple(z.shape)}")
        return self.main(z.reshape(z.shape[0], self.nz, 1, 1))

    def extra_repr(self) -> str:
        return f"nz={self.nz}, ngf={self.ngf}, channels={self.channels}"


class DCGANDiscriminator(Module):
    """Images ``(N, 1, 28, 28)`` in [-1, 1] → real-vs-fake logits ``(N,)``."""

    def __init__(self, ndf: int = 32, channels: int = 1) -> None:
        super().__init__()
        if min(int(ndf), int(channels)) < 1:
            raise ValueError(f"DCGANDiscriminator: ndf and channels must be >= 1, got ndf={ndf}, channels={channels}")
        self.ndf, self.channels = int(ndf), int(channels)
        self.main = Sequential(
            Conv2d(self.channels, self.ndf, 4, 2, 1, bias=False), LeakyReLU(0.2, True),
            Conv2d(self.ndf, 2 * self.ndf, 4, 2, 1, bias=False), BatchNorm2d(2 * self.ndf), LeakyReLU(0.2, True),
            Conv2d(2 * self.ndf, 1, 7, 1, 0, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.channels, 28, 28):
            raise ValueError(f"DCGANDiscriminator: expected images (N, {self.channels}, 28, 28), got {tuple(x.shape)}")
        return self.main(x).reshape(x.shape[0])

    def extra_repr(self) -> str:
        return f"ndf={self.ndf}, channels={self.channels}"


def dcgan_init_(module: Module, generator: Generator | None = None) -> Module:
    """The paper's initialisation, in place: convolution weights ~ N(0, 0.02), batch-norm scales
    ~ N(1, 0.02) and shifts 0. Returns ``module``."""
    with no_grad():
        for m in module.modules():
            if isinstance(m, Conv2d | ConvTranspose2d):
                init.normal_(m.weight, 0.0, 0.02, generator=generator)
            elif isinstance(m, BatchNorm2d):
                init.normal_(m.weight, 1.0, 0.02, generator=generator)
                init.zeros_(m.bias)
    return module
