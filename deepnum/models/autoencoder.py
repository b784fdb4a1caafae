"""Autoencoders: an encoder maps the input to a small latent code, a decoder maps the code back, and
the pair is trained to reproduce its input, ``loss(model(x), x)`` (Hinton & Salakhutdinov, "Reducing
the dimensionality of data with neural networks", Science 2006; Goodfellow, Bengio & Courville,
*Deep Learning*, ch. 14). Because the code is narrower than the input, the network must keep what is
common to the training data; inputs unlike it reconstruct badly, which is what anomaly detection by
reconstruction error uses (``deepnum.apps.anomaly``).

``DenseAutoencoder`` — flatten → [Linear → ReLU] per hidden width → Linear to ``latent_dim``, and the
mirror image back, ending in an optional ``Sigmoid`` (for inputs in [0, 1], such as MNIST pixels) and
an ``Unflatten`` to the input's shape. With no hidden layers and no activations it is a linear
autoencoder, whose optimum spans the same subspace as PCA (Baldi & Hornik 1989).

``ConvAutoencoder`` — for images (``dims=2``, inputs (N, C, H, W)) or series (``dims=1``, (N, C, L)):
stride-2 convolutions halve the size per stage, a Linear maps the last feature map to the latent
code; the decoder is a Linear back to that map and stride-2 transposed convolutions (padding k // 2,
output_padding 1) that double it again, so 28 × 28 → 14 → 7 → 14 → 28 (Masci et al., "Stacked
convolutional auto-encoders for hierarchical feature extraction", ICANN 2011).

Both have ``encode(x)`` (the latent code, (N, latent_dim)), ``decode(z)`` and ``forward(x) =
decode(encode(x))``. They are not in the model registry: its builders take ``num_classes``, which an
autoencoder has none of.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from deepnum.nn.modules.activation import ReLU, Sigmoid
from deepnum.nn.modules.container import Sequential
from deepnum.nn.modules.conv import Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d
from deepnum.nn.modules.linear import Flatten, Linear, Unflatten
from deepnum.nn.modules.module import Module
from deepnum.tensor import Tensor

__all__ = ["ConvAutoencoder", "DenseAutoencoder"]


def _check_input(owner: str, x: Tensor, shape: tuple[int, ...]) -> None:
    if not isinstance(x, Tensor) or x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{owner}: expected input of shape (N, {', '.join(map(str, shape))}), got {got}")


def _check_latent(owner: str, z: Tensor, latent_dim: int) -> None:
    if not isinstance(z, Tensor) or z.ndim != 2 or z.shape[1] != latent_dim:
        got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(f"{owner}.decode: expected a latent code of shape (N, {latent_dim}), got {got}")


def _positive_ints(owner: str, name: str, values: Sequence[int], allow_empty: bool = True) -> tuple[int, ...]:
    out = tuple(values)
    if (not out and not allow_empty) or not all(isinstance(v, int) and v >= 1 for v in out):
        raise ValueError(f"{owner}: {name} must be {'a' if allow_empty else 'a non-empty'} sequence of positive "
                         f"integers, got {values!r}")
    return out


class DenseAutoencoder(Module):
    """A fully connected autoencoder for inputs of shape ``input_shape`` (e.g. (1, 28, 28) or (1, 180)).
    ``hidden``: encoder widths (the decoder mirrors them); ``output_activation``: 'sigmoid' or None."""

    def __init__(self, input_shape: Sequence[int] = (1, 28, 28), latent_dim: int = 16,
                 hidden: Sequence[int] = (256, 64), output_activation: str | None = "sigmoid") -> None:
        super().__init__()
        self.input_shape = _positive_ints("DenseAutoencoder", "input_shape", input_shape, allow_empty=False)
        hidden = _positive_ints("DenseAutoencoder", "hidden", hidden)
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"DenseAutoencoder: latent_dim must be a positive integer, got {latent_dim!r}")
        if output_activation not in ("sigmoid", None):
            raise ValueError(f"DenseAutoencoder: output_activation must be 'sigmoid' or None, "
                             f"got {output_activation!r}")
        self.latent_dim = latent_dim
        widths = (math.prod(self.input_shape), *hidden)
        enc: list[Module] = [Flatten()]
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            enc += [Linear(a, b), ReLU()]
        enc.append(Linear(widths[-1], latent_dim))
        back = widths[::-1]
        dec: list[Module] = [Linear(latent_dim, back[0])]
        for a, b in zip(back[:-1], back[1:], strict=True):
            dec += [ReLU(), Linear(a, b)]
        if output_activation == "sigmoid":
            dec.append(Sigmoid())
        dec.append(Unflatten(1, self.input_shape))
        self.encoder, self.decoder = Sequential(*enc), Sequential(*dec)

    def encode(self, x: Tensor) -> Tensor:
        _check_input("DenseAutoencoder", x, self.input_shape)
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        _check_latent("DenseAutoencoder", z, self.latent_dim)
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


class ConvAutoencoder(Module):
    """A convolutional autoencoder for (N, ``in_chans``, *``input_size``) inputs, 1-D (``dims=1``) or
    2-D (``dims=2``). Each entry of ``channels`` is one stride-2 stage, so every spatial size must be
    divisible by 2 ** len(channels); ``kernel_size`` is odd."""

    def __init__(self, in_chans: int = 1, input_size: int | Sequence[int] = 28, latent_dim: int = 16,
                 channels: Sequence[int] = (16, 32), kernel_size: int = 3, dims: int = 2,
                 output_activation: str | None = "sigmoid") -> None:
        super().__init__()
        if dims not in (1, 2):
            raise ValueError(f"ConvAutoencoder: dims must be 1 or 2, got {dims!r}")
        size = (input_size,) * dims if isinstance(input_size, int) else tuple(input_size)
        size = _positive_ints("ConvAutoencoder", "input_size", size, allow_empty=False)
        channels = _positive_ints("ConvAutoencoder", "channels", channels, allow_empty=False)
        scale = 2 ** len(channels)
        if len(size) != dims or any(s % scale for s in size):
            raise ValueError(f"ConvAutoencoder: input_size {size} must have {dims} entries, each divisible by "
                             f"2 ** len(channels) = {scale}")
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"ConvAutoencoder: kernel_size must be a positive odd integer, got {kernel_size!r}")
        if not isinstance(latent_dim, int) or latent_dim < 1 or not isinstance(in_chans, int) or in_chans < 1:
            raise ValueError(f"ConvAutoencoder: latent_dim and in_chans must be positive integers, "
                             f"got {latent_dim!r} and {in_chans!r}")
        if output_activation not in ("sigmoid", None):
            raise ValueError(f"ConvAutoencoder: output_activation must be 'sigmoid' or None, "
                             f"got {output_activation!r}")
        self.input_shape, self.latent_dim = (in_chans, *size), latent_dim
        conv, deconv = (Conv1d, ConvTranspose1d) if dims == 1 else (Conv2d, ConvTranspose2d)
        k, p = kernel_size, kernel_size // 2
        feature = (channels[-1], *(s // scale for s in size))
        chans = (in_chans, *channels)
        enc: list[Module] = []
        for a, b in zip(chans[:-1], chans[1:], strict=True):
            enc += [conv(a, b, k, stride=2, padding=p), ReLU()]
        enc += [Flatten(), Linear(math.prod(feature), latent_dim)]
        dec: list[Module] = [Linear(latent_dim, math.prod(feature)), ReLU(), Unflatten(1, feature)]
        back = chans[::-1]
        for i, (a, b) in enumerate(zip(back[:-1], back[1:], strict=True)):
            dec.append(deconv(a, b, k, stride=2, padding=p, output_padding=1))
            if i < len(back) - 2:
                dec.append(ReLU())
        if output_activation == "sigmoid":
            dec.append(Sigmoid())
        self.encoder, self.decoder = Sequential(*enc), Sequential(*dec)

    def encode(self, x: Tensor) -> Tensor:
        _check_input("ConvAutoencoder", x, self.input_shape)
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        _check_latent("ConvAutoencoder", z, self.latent_dim)
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))
