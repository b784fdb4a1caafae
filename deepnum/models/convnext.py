"""ConvNeXt (Z. Liu, H. Mao, C.-Y. Wu, C. Feichtenhofer, T. Darrell, S. Xie, "A ConvNet for the 2020s",
CVPR 2022): a ResNet modernised step by step towards the Swin Transformer's design.

Layout (torchvision's module tree, so ``state_dict`` keys and shapes equal torchvision's)::

    features.0      stem "patchify": Conv2d(in_chans, d1, 4, stride=4) → LayerNorm2d(d1)
    features.1      stage 1: depths[0] × CNBlock(d1)
    features.2      downsampling: LayerNorm2d(d1) → Conv2d(d1, d2, 2, stride=2)
    features.3..7   stages 2-4, with a downsampling layer before each
    avgpool         global average pooling
    classifier      LayerNorm2d(d4) → Flatten → Linear(d4, num_classes)

    CNBlock(d): x + StochasticDepth(γ ⊙ block(x)), block = depthwise Conv2d(d, d, 7, padding=3, groups=d)
                → Permute to channels-last → LayerNorm(d) → Linear(d, 4d) → GELU → Linear(4d, d)
                → Permute back; γ (``layer_scale``, shape (d, 1, 1)) starts at 1e-6 (Touvron et al.
                2021, "Going deeper with image transformers"), so every block starts near the identity.

All LayerNorms use eps = 1e-6. The drop probability of stochastic depth grows linearly over the blocks,
from 0 at the first to ``stochastic_depth_prob`` at the last (torchvision: 0.1 for T, 0.4 for S, 0.5 for
B/L). Initialisation as torchvision's: every Conv2d and Linear weight ~ N(0, 0.02²) truncated to [-2, 2],
biases 0, LayerNorm γ = 1, β = 0.

Parameter counts (torchvision's, and the paper's Table 1 / 10 rounded: 28M, 50M, 89M, 198M):
``convnext_tiny`` (3, 3, 9, 3) × (96, 192, 384, 768): 28,589,128; ``convnext_small`` (3, 3, 27, 3) ×
(96, 192, 384, 768): 50,223,688; ``convnext_base`` (128, 256, 512, 1024): 88,591,464; ``convnext_large``
(192, 384, 768, 1536): 197,767,336.

Small-input variant ``convnext_mini`` (our own, for 28–32 px images such as MNIST or CIFAR): a 2×2
stride-2 patchify stem (a 4×4 stem would leave 7×7 maps after the stem and 0×0 after three
downsamplings), three stages of depths (2, 2, 2) and widths (16, 32, 64) (maps of 14 → 7 → 3 px for
28 px inputs, 16 → 8 → 4 for 32 px), the same 7×7 depthwise CNBlocks with layer scale, no stochastic
depth by default; 110,330 parameters for 10 classes and 1 input channel (``in_chans=1`` is its
default, for MNIST; pass 3 for CIFAR). It is this narrow because the depthwise 7×7 convolution is not
yet fast in deepnum (the im2col path handles groups = C as C tiny matrix products and spends its time
moving data): a training step on 32 MNIST images takes about 0.4 s on one busy CPU core, against
about 0.9 s for widths (32, 64, 128) (413,162 parameters).
"""
from __future__ import annotations

from collections.abc import Sequence

from deepnum.creation import ones
from deepnum.functional.normalization import layer_norm
from deepnum.models import register_model
from deepnum.nn import init
from deepnum.nn.modules.activation import GELU
from deepnum.nn.modules.container import Sequential
from deepnum.nn.modules.conv import Conv2d
from deepnum.nn.modules.dropout import StochasticDepth
from deepnum.nn.modules.linear import Flatten, Linear
from deepnum.nn.modules.module import Module
from deepnum.nn.modules.normalization import LayerNorm
from deepnum.nn.modules.pooling import AdaptiveAvgPool2d
from deepnum.nn.parameter import Parameter
from deepnum.tensor import Tensor

__all__ = ["CNBlock", "ConvNeXt", "LayerNorm2d", "Permute", "convnext_base", "convnext_large", "convnext_mini",
           "convnext_small", "convnext_tiny"]

_PAPER = "Liu et al. 2022, A ConvNet for the 2020s"


class LayerNorm2d(LayerNorm):
    """LayerNorm over the channels of an (N, C, H, W) input ("channels first"): each position's C
    values are standardised, then scaled by γ and shifted by β of shape (C,). The same numbers as
    ``LayerNorm(C)`` on the channels-last (N, H, W, C) tensor, which is how it is computed."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        c = self.normalized_shape[0]
        if not isinstance(input, Tensor) or input.ndim != 4 or (input.shape[1],) != self.normalized_shape:
            got = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise ValueError(f"LayerNorm2d({self.normalized_shape}): expected input (N, {c}, H, W), got {got}")
        out = layer_norm(input.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return out.permute(0, 3, 1, 2)


class Permute(Module):
    """Reorder the dims of the input (``input.permute(*dims)``), as ``torchvision.ops.misc.Permute``."""

    def __init__(self, dims: Sequence[int]) -> None:
        super().__init__()
        self.dims = tuple(int(d) for d in dims)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        if input.ndim != len(self.dims):
            raise ValueError(f"Permute{self.dims}: expected a {len(self.dims)}-d input, got {tuple(input.shape)}")
        return input.permute(*self.dims)


class CNBlock(Module):
    """The ConvNeXt block: x + drop(γ ⊙ MLP(LN(dwconv₇ₓ₇(x)))), an inverted bottleneck (4× expansion)
    with one normalisation and one activation, like a Transformer block with the attention replaced
    by a large-kernel depthwise convolution (Liu et al. 2022, §2)."""

    def __init__(self, dim: int, layer_scale: float = 1e-6, stochastic_depth_prob: float = 0.0,
                 kernel_size: int = 7) -> None:
        super().__init__()
        if int(dim) < 1 or int(kernel_size) < 1 or kernel_size % 2 == 0:
            raise ValueError(f"CNBlock: dim must be >= 1 and kernel_size odd, got dim={dim}, kernel_size={kernel_size}")
        self.dim = int(dim)
        self.layer_scale = Parameter(ones((self.dim, 1, 1)) * layer_scale)
        self.block = Sequential(
            Conv2d(self.dim, self.dim, kernel_size, padding=kernel_size // 2, groups=self.dim),
            Permute((0, 2, 3, 1)),
            LayerNorm(self.dim, eps=1e-6),
            Linear(self.dim, 4 * self.dim),
            GELU(),
            Linear(4 * self.dim, self.dim),
            Permute((0, 3, 1, 2)),
        )
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, "row")

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        if not isinstance(input, Tensor) or input.ndim != 4 or input.shape[1] != self.dim:
            got = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise ValueError(f"CNBlock({self.dim}): expected input (N, {self.dim}, H, W), got {got}")
        return input + self.stochastic_depth(self.layer_scale * self.block(input))


class ConvNeXt(Module):
    """ConvNeXt for (N, in_chans, H, W) images: a ``patch_size``-stride patchify stem, one stage of
    CNBlocks per entry of ``depths``/``dims`` with a LayerNorm2d + 2×2 stride-2 convolution between
    stages, global average pooling and a LayerNorm + Linear head. Returns (N, num_classes) logits."""

    def __init__(self, depths: Sequence[int], dims: Sequence[int], stochastic_depth_prob: float = 0.0,
                 layer_scale: float = 1e-6, num_classes: int = 1000, in_chans: int = 3, patch_size: int = 4,
                 kernel_size: int = 7) -> None:
        super().__init__()
        depths, dims = tuple(int(d) for d in depths), tuple(int(d) for d in dims)
        if not depths or len(depths) != len(dims) or min(depths) < 1 or min(dims) < 1:
            raise ValueError(f"ConvNeXt: depths and dims must be non-empty sequences of positive ints of one length, "
                             f"got depths={depths}, dims={dims}")
        if int(num_classes) < 1 or int(in_chans) < 1 or int(patch_size) < 1:
            raise ValueError(f"ConvNeXt: num_classes, in_chans and patch_size must be >= 1, got "
                             f"num_classes={num_classes}, in_chans={in_chans}, patch_size={patch_size}")
        if not 0.0 <= stochastic_depth_prob <= 1.0:
            raise ValueError(f"ConvNeXt: stochastic_depth_prob must be in [0, 1], got {stochastic_depth_prob}")
        self.depths, self.dims = depths, dims
        self.num_classes, self.in_chans, self.patch_size = int(num_classes), int(in_chans), int(patch_size)
        layers: list[Module] = [Sequential(Conv2d(self.in_chans, dims[0], self.patch_size, stride=self.patch_size),
                                           LayerNorm2d(dims[0], eps=1e-6))]
        total, block_id = sum(depths), 0
        for stage, (depth, dim) in enumerate(zip(depths, dims, strict=True)):
            blocks = []
            for _ in range(depth):
                # linear decay rule (Huang et al. 2016): 0 at the first block, the full p at the last
                p = stochastic_depth_prob * block_id / (total - 1.0) if total > 1 else 0.0
                blocks.append(CNBlock(dim, layer_scale, p, kernel_size))
                block_id += 1
            layers.append(Sequential(*blocks))
            if stage + 1 < len(dims):
                layers.append(Sequential(LayerNorm2d(dim, eps=1e-6), Conv2d(dim, dims[stage + 1], 2, stride=2)))
        self.features = Sequential(*layers)
        self.avgpool = AdaptiveAvgPool2d(1)
        self.classifier = Sequential(LayerNorm2d(dims[-1], eps=1e-6), Flatten(1), Linear(dims[-1], self.num_classes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torchvision's initialisation: truncated N(0, 0.02²) weights and zero biases for every
        Conv2d and Linear (LayerNorms and γ keep their own initial values)."""
        for m in self.modules():
            if isinstance(m, Conv2d | Linear):
                init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    init.zeros_(m.bias)

    @property
    def min_input_size(self) -> int:
        """The smallest height/width that survives the stem and every downsampling."""
        return self.patch_size * 2 ** (len(self.dims) - 1)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != self.in_chans or \
                min(x.shape[2:]) < self.min_input_size:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"ConvNeXt(depths={self.depths}, dims={self.dims}): expected input "
                             f"(N, {self.in_chans}, H, W) with H, W >= {self.min_input_size}, got {got}")
        return self.classifier(self.avgpool(self.features(x)))


@register_model(paper=_PAPER)
def convnext_tiny(num_classes: int = 1000, in_chans: int = 3, stochastic_depth_prob: float = 0.1) -> ConvNeXt:
    """ConvNeXt-T: depths (3, 3, 9, 3), widths (96, 192, 384, 768); 28,589,128 parameters."""
    return ConvNeXt((3, 3, 9, 3), (96, 192, 384, 768), stochastic_depth_prob, num_classes=num_classes,
                    in_chans=in_chans)


@register_model(paper=_PAPER)
def convnext_small(num_classes: int = 1000, in_chans: int = 3, stochastic_depth_prob: float = 0.4) -> ConvNeXt:
    """ConvNeXt-S: depths (3, 3, 27, 3), widths (96, 192, 384, 768); 50,223,688 parameters."""
    return ConvNeXt((3, 3, 27, 3), (96, 192, 384, 768), stochastic_depth_prob, num_classes=num_classes,
                    in_chans=in_chans)


@register_model(paper=_PAPER)
def convnext_base(num_classes: int = 1000, in_chans: int = 3, stochastic_depth_prob: float = 0.5) -> ConvNeXt:
    """ConvNeXt-B: depths (3, 3, 27, 3), widths (128, 256, 512, 1024); 88,591,464 parameters."""
    return ConvNeXt((3, 3, 27, 3), (128, 256, 512, 1024), stochastic_depth_prob, num_classes=num_classes,
                    in_chans=in_chans)


@register_model(paper=_PAPER)
def convnext_large(num_classes: int = 1000, in_chans: int = 3, stochastic_depth_prob: float = 0.5) -> ConvNeXt:
    """ConvNeXt-L: depths (3, 3, 27, 3), widths (192, 384, 768, 1536); 197,767,336 parameters."""
    return ConvNeXt((3, 3, 27, 3), (192, 384, 768, 1536), stochastic_depth_prob, num_classes=num_classes,
                    in_chans=in_chans)


@register_model(paper=_PAPER, small_input=True)
def convnext_mini(num_classes: int = 10, in_chans: int = 1, stochastic_depth_prob: float = 0.0) -> ConvNeXt:
    """ConvNeXt for 28–32 px images (ours): 2×2 stem, depths (2, 2, 2), widths (16, 32, 64); 110,330 parameters.
    The standard 7×7 CNBlocks with layer scale; 10 classes and 1 input channel (MNIST) by default."""
    return ConvNeXt((2, 2, 2), (16, 32, 64), stochastic_depth_prob, num_classes=num_classes, in_chans=in_chans,
                    patch_size=2)
