"""Vision Transformer (A. Dosovitskiy, L. Beyer, A. Kolesnikov et al., "An image is worth 16x16 words:
Transformers for image recognition at scale", ICLR 2021).

The image is cut into P×P patches, each patch is flattened and linearly embedded (a convolution with
kernel = stride = P), a learned class token is prepended and learned position embeddings are added;
a stack of pre-norm Transformer encoder blocks follows, and the head classifies the class token::

    x  = [cls; patches · E] + pos                          (N, 1 + (H/P)(W/P), D)
    x  = x + MHA(LN₁(x))                                   LayerNorm eps 1e-6, D/heads per head
    x  = x + MLP(LN₂(x))                                   Linear(D, mlp) → GELU → Linear(mlp, D)
    y  = head(LN(x)[:, 0])

Layout, state_dict keys and initialisation follow torchvision's ``VisionTransformer`` (``conv_proj``,
``class_token``, ``encoder.pos_embedding``, ``encoder.layers.encoder_layer_<i>.{ln_1, self_attention,
ln_2, mlp.0, mlp.3}``, ``encoder.ln``, ``heads.head``), so its weights load unchanged. Builders:

=====================  ======  =====  =====  ======  =====  ====  ===========  =================
name                   image   patch  depth  width   heads  MLP   in_chans     parameters
=====================  ======  =====  =====  ======  =====  ====  ===========  =================
``vit_b_16``           224     16     12     768     12     3072  3            86,567,656
``vit_b_32``           224     32     12     768     12     3072  3            88,224,232
``vit_tiny_patch4_32`` 32      4      12     192     3      768   3            5,362,762
``vit_mini_patch7_28`` 28      7      6      64      4      128   1            205,962
=====================  ======  =====  =====  ======  =====  ====  ===========  =================

(ViT-B counts with 1000 classes, equal to torchvision's; the small ones with 10 classes:
``vit_tiny_patch4_32`` is DeiT-Ti's/ViT-Ti's shape on the 8×8 grid of 4×4-pixel patches of a
32×32 image (CIFAR), 65 tokens; ``vit_mini_patch7_28`` is a 6-block, width-64 model on the 4×4
grid of 7×7-pixel patches of a 28×28 MNIST digit, 17 tokens, small enough to train in seconds.)
A ViT only takes images of its ``image_size`` (the position embeddings are learned per position).

Attention maps for visualisation. ``model.record_attention(True)`` makes every encoder block keep
the attention weights of the next forward passes (detached, one (N, num_heads, T, T) Tensor per
block, T = 1 + number of patches, token 0 the class token, the patches in row-major order);
``model.attention_maps()`` returns them as a list, first block first, and
``model.record_attention(False)`` stops recording and frees them. Each ``EncoderBlock`` also has
its own ``record_attention`` flag and ``attention_weights`` attribute. ``model.grid_size`` is the
(rows, cols) patch grid, for reshaping a row of T - 1 patch weights into an image. Recording asks
the attention layer for its weights (``need_weights=True, average_attn_weights=False``); the output
is the same as without recording.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

from deepnum import functional as F
from deepnum.creation import zeros
from deepnum.models import register_model
from deepnum.nn import init
from deepnum.nn.modules._transformer_ops import fused_linear
from deepnum.nn.modules.activation import GELU, Tanh
from deepnum.nn.modules.attention import MultiheadAttention
from deepnum.nn.modules.container import Sequential
from deepnum.nn.modules.conv import Conv2d
from deepnum.nn.modules.dropout import Dropout
from deepnum.nn.modules.linear import Linear
from deepnum.nn.modules.module import Module
from deepnum.nn.modules.normalization import LayerNorm
from deepnum.nn.parameter import Parameter
from deepnum.tensor import Tensor

__all__ = ["EncoderBlock", "MLPBlock", "VisionTransformer", "vit_b_16", "vit_b_32", "vit_mini_patch7_28",
           "vit_tiny_patch4_32"]

_PAPER = "Dosovitskiy et al. 2021, An image is worth 16x16 words: Transformers for image recognition at scale"
_LN_EPS = 1e-6


class MLPBlock(Sequential):
    """The Transformer's position-wise feed-forward net: Linear(D, mlp) → GELU → Dropout →
    Linear(mlp, D) → Dropout (indices 0-4, as torchvision). Xavier-uniform weights, N(0, 1e-6²) biases."""

    def __init__(self, in_dim: int, mlp_dim: int, dropout: float) -> None:
        super().__init__(Linear(in_dim, mlp_dim), GELU(), Dropout(dropout), Linear(mlp_dim, in_dim), Dropout(dropout))
        for layer in (self[0], self[3]):
            init.xavier_uniform_(layer.weight)
            init.normal_(layer.bias, std=1e-6)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        """As the Sequential, with Linear → GELU as one fused op (``fused_linear``: the bias add,
        GELU and its slope in one cache-blocked pass, the pre-activation never stored) and the
        second Linear's bias added in place, while the layers are the plain ones without hooks."""
        fc1, act, drop1, fc2, drop2 = self
        plain = all(not (m._forward_hooks or m._forward_pre_hooks) for m in (fc1, act, fc2))
        fits = input.ndim > 0 and input.shape[-1] == fc1.in_features  # else Linear raises its error
        if not (plain and fits and type(fc1) is Linear and type(fc2) is Linear and type(act) is GELU
                and act.approximate == "none"):
            return super().forward(input)
        hidden = drop1(fused_linear(input, fc1.weight, fc1.bias, "gelu"))
        return drop2(fused_linear(hidden, fc2.weight, fc2.bias))


class EncoderBlock(Module):
    """Pre-norm Transformer block: x + Dropout(MHA(LN₁(x))), then + MLP(LN₂(·)). Input (N, T, D).
    With ``record_attention`` set, keeps the last forward's (N, heads, T, T) weights in
    ``attention_weights``."""

    def __init__(self, num_heads: int, hidden_dim: int, mlp_dim: int, dropout: float, attention_dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.ln_1 = LayerNorm(hidden_dim, eps=_LN_EPS)
        self.self_attention = MultiheadAttention(hidden_dim, num_heads, dropout=attention_dropout, batch_first=True)
        self.dropout = Dropout(dropout)
        self.ln_2 = LayerNorm(hidden_dim, eps=_LN_EPS)
        self.mlp = MLPBlock(hidden_dim, mlp_dim, dropout)
        self.record_attention = False
        self.attention_weights: Tensor | None = None

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        if input.ndim != 3 or input.shape[2] != self.ln_1.normalized_shape[0]:
            raise ValueError(f"EncoderBlock(hidden_dim={self.ln_1.normalized_shape[0]}, num_heads={self.num_heads}): "
                             f"expected input (N, T, {self.ln_1.normalized_shape[0]}), got {tuple(input.shape)}")
        x = self.ln_1(input)
        if self.record_attention:
            x, weights = self.self_attention(x, x, x, need_weights=True, average_attn_weights=False)
            self.attention_weights = weights.detach()
        else:
            x, _ = self.self_attention(x, x, x, need_weights=False)
        x = self.dropout(x) + input
        return x + self.mlp(self.ln_2(x))


class Encoder(Module):
    """Position embedding (N(0, 0.02²)), dropout, the blocks, and the final LayerNorm."""

    def __init__(self, seq_length: int, num_layers: int, num_heads: int, hidden_dim: int, mlp_dim: int,
                 dropout: float, attention_dropout: float) -> None:
        super().__init__()
        self.pos_embedding = Parameter(zeros(1, seq_length, hidden_dim))
        init.normal_(self.pos_embedding, std=0.02)
        self.dropout = Dropout(dropout)
        self.layers = Sequential(OrderedDict(
            (f"encoder_layer_{i}", EncoderBlock(num_heads, hidden_dim, mlp_dim, dropout, attention_dropout))
            for i in range(num_layers)))
        self.ln = LayerNorm(hidden_dim, eps=_LN_EPS)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        _, tokens, width = self.pos_embedding.shape
        if input.ndim != 3 or tuple(input.shape[1:]) != (tokens, width):
            raise ValueError(f"Encoder(seq_length={tokens}, hidden_dim={width}): expected input "
                             f"(N, {tokens}, {width}), got {tuple(input.shape)}")
        return self.ln(self.layers(self.dropout(input + self.pos_embedding)))


class VisionTransformer(Module):
    """ViT for (N, in_channels, image_size, image_size) images; returns (N, num_classes) logits.
    torchvision's constructor arguments, plus ``in_channels``. With ``representation_size`` the head
    is Linear → Tanh → Linear (the paper's pre-training head)."""

    def __init__(self, image_size: int, patch_size: int, num_layers: int, num_heads: int, hidden_dim: int,
                 mlp_dim: int, dropout: float = 0.0, attention_dropout: float = 0.0, num_classes: int = 1000,
                 representation_size: int | None = None, in_channels: int = 3) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"VisionTransformer: image_size {image_size} is not divisible by patch_size {patch_size}")
        if min(num_classes, in_channels, num_layers, hidden_dim) < 1:
            raise ValueError(f"VisionTransformer: num_classes, in_channels, num_layers and hidden_dim must be >= 1, "
                             f"got {num_classes}, {in_channels}, {num_layers}, {hidden_dim}")
        self.image_size, self.patch_size, self.hidden_dim = image_size, patch_size, hidden_dim
        self.mlp_dim, self.num_classes, self.in_channels = mlp_dim, num_classes, in_channels
        self.representation_size = representation_size
        self.class_token = Parameter(zeros(1, 1, hidden_dim))
        self.conv_proj = Conv2d(in_channels, hidden_dim, kernel_size=patch_size, stride=patch_size)
        fan_in = in_channels * patch_size * patch_size
        init.trunc_normal_(self.conv_proj.weight, std=math.sqrt(1 / fan_in))
        init.zeros_(self.conv_proj.bias)
        grid = image_size // patch_size
        self.seq_length = grid * grid + 1
        self.encoder = Encoder(self.seq_length, num_layers, num_heads, hidden_dim, mlp_dim, dropout, attention_dropout)
        self.heads = self._make_heads(hidden_dim, num_classes, representation_size)

    @staticmethod
    def _make_heads(hidden_dim: int, num_classes: int, representation_size: int | None) -> Sequential:
        """The classifier on the class token; the last Linear starts at zero (torchvision's choice)."""
        if representation_size is None:
            head = Linear(hidden_dim, num_classes)
            layers = OrderedDict(head=head)
        else:
            pre = Linear(hidden_dim, representation_size)
            init.trunc_normal_(pre.weight, std=math.sqrt(1 / hidden_dim))
            init.zeros_(pre.bias)
            head = Linear(representation_size, num_classes)
            layers = OrderedDict(pre_logits=pre, act=Tanh(), head=head)
        init.zeros_(head.weight)
        init.zeros_(head.bias)
        return Sequential(layers)

    @property
    def grid_size(self) -> tuple[int, int]:
        """The (rows, cols) grid of patches."""
        g = self.image_size // self.patch_size
        return (g, g)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The shape of one input image, (C, H, W)."""
        return (self.in_channels, self.image_size, self.image_size)

    def _process_input(self, x: Tensor) -> Tensor:
        """(N, C, H, W) → (N, patches, D): the patch embedding, patches in row-major order."""
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            c, s = self.in_channels, self.image_size
            raise ValueError(f"VisionTransformer(image_size={s}, patch_size={self.patch_size}): expected input "
                             f"(N, {c}, {s}, {s}), got {tuple(x.shape)}")
        x = self.conv_proj(x)
        n = x.shape[0]
        return F.permute(F.reshape(x, n, self.hidden_dim, -1), (0, 2, 1))

    def forward(self, x: Tensor) -> Tensor:
        x = self._process_input(x)
        cls = F.expand(self.class_token, x.shape[0], 1, self.hidden_dim)
        x = self.encoder(F.cat([cls, x], 1))
        return self.heads(x[:, 0])

    def record_attention(self, enabled: bool = True) -> VisionTransformer:
        """Make every encoder block keep its attention weights from each forward (or stop, and drop
        the kept ones); returns the model."""
        for block in self.encoder.layers:
            block.record_attention = bool(enabled)
            if not enabled:
                block.attention_weights = None
        return self

    def attention_maps(self) -> list[Tensor]:
        """The (N, num_heads, T, T) attention weights of each block from the last forward pass made
        while recording, first block first."""
        maps = [block.attention_weights for block in self.encoder.layers]
        if any(m is None for m in maps):
            raise RuntimeError("VisionTransformer.attention_maps: no attention recorded; call "
                               "model.record_attention(True) and run a forward pass first")
        return maps


def _vit(image_size: int, patch_size: int, num_layers: int, num_heads: int, hidden_dim: int, mlp_dim: int,
         num_classes: int, in_chans: int, **kwargs: Any) -> VisionTransformer:
    return VisionTransformer(image_size, patch_size, num_layers, num_heads, hidden_dim, mlp_dim,
                             num_classes=num_classes, in_channels=in_chans, **kwargs)


@register_model(paper=_PAPER)
def vit_b_16(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VisionTransformer:
    """ViT-B/16: 224×224 images, 16×16 patches (196 + 1 tokens), 12 blocks of width 768, 12 heads,
    MLP 3072; 86,567,656 parameters (1000 classes)."""
    return _vit(224, 16, 12, 12, 768, 3072, num_classes, in_chans, **kwargs)


@register_model(paper=_PAPER)
def vit_b_32(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VisionTransformer:
    """ViT-B/32: 224×224 images, 32×32 patches (49 + 1 tokens), 12 blocks of width 768, 12 heads,
    MLP 3072; 88,224,232 parameters (1000 classes)."""
    return _vit(224, 32, 12, 12, 768, 3072, num_classes, in_chans, **kwargs)


@register_model(paper=_PAPER, small_input=True)
def vit_tiny_patch4_32(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> VisionTransformer:
    """ViT-Ti for 32×32 images (CIFAR): 4×4 patches (64 + 1 tokens), 12 blocks of width 192,
    3 heads, MLP 768; 5,362,762 parameters (10 classes, 3 channels)."""
    return _vit(32, 4, 12, 3, 192, 768, num_classes, in_chans, **kwargs)


@register_model(paper=_PAPER, small_input=True)
def vit_mini_patch7_28(num_classes: int = 10, in_chans: int = 1, **kwargs: Any) -> VisionTransformer:
    """A small ViT for 28×28 images (MNIST): 7×7 patches (16 + 1 tokens), 6 blocks of width 64,
    4 heads, MLP 128; 205,962 parameters (10 classes, 1 channel)."""
    return _vit(28, 7, 6, 4, 64, 128, num_classes, in_chans, **kwargs)
