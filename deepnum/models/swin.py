"""Swin Transformer (Z. Liu, Y. Lin, Y. Cao, H. Hu, Y. Wei, Z. Zhang, S. Lin, B. Guo, "Swin Transformer:
Hierarchical Vision Transformer using Shifted Windows", ICCV 2021), in torchvision's v1 layout, so
torchvision's ``state_dict`` loads as is and eval outputs agree.

Layout (channels-last feature maps ``(B, H, W, C)`` from the patch partition on)::

    features.0   Conv2d(in_chans, C, p, stride p) → Permute(0, 2, 3, 1) → LayerNorm(C)     (H/p × W/p tokens)
    features.1   depth₁ × SwinTransformerBlock(C):  x += SD(attn(LN(x))); x += SD(MLP(LN(x)))
    features.2   PatchMerging: 2×2 neighbours concatenated (4C) → LayerNorm(4C) → Linear(4C, 2C, no bias)
    ...          (stage i has dim C·2^i; a merging layer between stages)
    norm → permute to (B, C, H, W) → AdaptiveAvgPool2d(1) → Flatten → head Linear

Window attention: each M×M window attends within itself, ``softmax(q·kᵀ/√d + B)·v``, B read from a
learned table of (2M−1)² × heads relative-position biases through the fixed ``relative_position_index``
buffer. Odd blocks roll the map by −M/2 first (cyclic shift), so windows straddle the previous
windows' borders; tokens that the roll brought together from different regions get −100 added to
their logits (the attention mask), and the roll is undone afterwards. Following torchvision, a map
that is not a multiple of M is padded with zeros on the bottom/right (the padding takes part in
attention unmasked, as there) and cropped after, and an axis whose padded size is no larger than M is
not shifted (one window covers it). Window partition and its reverse are reshapes and one permute,
the shift a roll, and attention for all windows of all images is one batched matmul.

Parameter counts (torchvision's): ``swin_t`` 28,288,354, ``swin_s`` 49,606,258, ``swin_b`` 87,768,224.
``swin_micro`` (small inputs, 28–32 px: patch 2, window 4, dims 32/64/128, depths 2/2/2, heads
2/4/8, head dim 16): 566,790 parameters with 10 classes and 1 input channel (567,046 with 3) =
patch embedding 224 + stage 1 25,604 + merging 8,448 + stage 2 100,360 + merging 33,280 + stage 3
397,328 + final norm 256 + head 1,290. On a 28×28 MNIST image the stages see 14×14 tokens (padded to
16×16: 4×4 windows, shifted and masked), 7×7 (padded to 8×8: 2×2 windows, shifted and masked) and
4×4 (one window, no shift)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache, partial
from typing import Any

import numpy as np

from deepnum.creation import as_tensor, empty
from deepnum.functional.activation import softmax
from deepnum.functional.array import roll
from deepnum.functional.dropout import dropout
from deepnum.functional.joining import pad, unbind
from deepnum.models import register_model
from deepnum.nn import init
from deepnum.nn.modules.activation import GELU
from deepnum.nn.modules.container import Sequential
from deepnum.nn.modules.conv import Conv2d
from deepnum.nn.modules.dropout import Dropout, StochasticDepth
from deepnum.nn.modules.linear import Flatten, Linear
from deepnum.nn.modules.module import Module
from deepnum.nn.modules.normalization import LayerNorm
from deepnum.nn.modules.pooling import AdaptiveAvgPool2d
from deepnum.nn.parameter import Parameter
from deepnum.tensor import Tensor

__all__ = ["PatchMerging", "ShiftedWindowAttention", "SwinTransformer", "SwinTransformerBlock",
           "relative_position_index", "shifted_window_mask", "swin_b", "swin_micro", "swin_s", "swin_t",
           "window_partition", "window_reverse"]

_MASK_VALUE = -100.0  # added to the logits of token pairs from different regions (exp(-100) ≈ 4e-44)


def _pair(value: int | Sequence[int], name: str) -> list[int]:
    pair = [int(value)] * 2 if isinstance(value, int) else [int(v) for v in value]
    if len(pair) != 2 or min(pair) < 0:
        raise ValueError(f"Swin: {name} must be an int or a pair of non-negative ints, got {value!r}")
    return pair


# ----------------------------------------------------------------------------- fixed index tables
def relative_position_index(window_size: Sequence[int]) -> np.ndarray:
    """Flat (M₀M₁·M₀M₁,) int64 index into the (2M₀−1)(2M₁−1)-row bias table: for tokens i, j of a
    window at (yᵢ, xᵢ), (yⱼ, xⱼ), entry i·M₀M₁ + j is (yᵢ−yⱼ+M₀−1)·(2M₁−1) + (xᵢ−xⱼ+M₁−1)."""
    m0, m1 = window_size
    ys, xs = (c.ravel() for c in np.meshgrid(np.arange(m0), np.arange(m1), indexing="ij"))
    dy = ys[:, None] - ys[None, :] + (m0 - 1)
    dx = xs[:, None] - xs[None, :] + (m1 - 1)
    return (dy * (2 * m1 - 1) + dx).ravel().astype(np.int64)


def _regions(n: int, window: int, shift: int) -> np.ndarray:
    """Region of each row of an n-row map rolled by −shift (n a multiple of the window): 0 = rows
    [0, n−M), whole windows of rows that were neighbours before the roll; 1 = rows [n−M, n−s), the
    original bottom rows; 2 = rows [n−s, n), the original top rows that wrapped around. Without a
    shift every row is region 0."""
    idx = np.arange(n)
    if shift == 0:
        return np.zeros(n, np.int64)
    return (idx >= n - window).astype(np.int64) + (idx >= n - shift)


def shifted_window_mask(height: int, width: int, window_size: Sequence[int], shift_size: Sequence[int]) -> np.ndarray:
    """(nW, N, N) float32 additive mask for the windows of a ``height × width`` map rolled by −shift:
    0 where both tokens come from the same region of the unrolled map, −100 where they do not
    (Liu et al. 2021, sec. 3.2, "efficient batch computation for shifted configuration").
    Cached per geometry and read-only."""
    return _mask(int(height), int(width), *(int(v) for v in (*window_size, *shift_size)))


@lru_cache(maxsize=64)
def _mask(height: int, width: int, m0: int, m1: int, s0: int, s1: int) -> np.ndarray:
    label = _regions(height, m0, s0)[:, None] * 3 + _regions(width, m1, s1)[None, :]
    label = label.reshape(height // m0, m0, width // m1, m1).transpose(0, 2, 1, 3).reshape(-1, m0 * m1)
    mask = np.where(label[:, :, None] != label[:, None, :], np.float32(_MASK_VALUE), np.float32(0.0))
    mask.flags.writeable = False
    return mask


# ----------------------------------------------------------------------------- windows
def window_partition(x: Tensor, window_size: Sequence[int]) -> Tensor:
    """(B, H, W, C) → (B·nW, M₀M₁, C), windows in row-major order: split H and W into (grid,
    in-window) axes (a view), swap the in-window row axis with the grid column axis (a view), and
    one copy into the window-major layout."""
    b, h, w, c = x.shape
    m0, m1 = window_size
    return x.reshape(b, h // m0, m0, w // m1, m1, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, m0 * m1, c)


def window_reverse(windows: Tensor, window_size: Sequence[int], batch: int, height: int, width: int) -> Tensor:
    """The inverse of ``window_partition``: (B·nW, M₀M₁, C) → (B, H, W, C)."""
    m0, m1 = window_size
    c = windows.shape[-1]
    x = windows.reshape(batch, height // m0, width // m1, m0, m1, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(batch, height, width, c)


# ----------------------------------------------------------------------------- small layers
class Permute(Module):
    """Reorder the dims of the input (torchvision.ops.misc.Permute): channels-last and back."""

    def __init__(self, dims: Sequence[int]) -> None:
        super().__init__()
        self.dims = [int(d) for d in dims]

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != len(self.dims):
            raise ValueError(f"Permute({self.dims}): expected a {len(self.dims)}-d input, got {tuple(x.shape)}")
        return x.permute(*self.dims)


class MLP(Sequential):
    """The transformer feed-forward block: Linear(d, h) → GELU → Dropout → Linear(h, d) → Dropout."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__(Linear(dim, hidden), GELU(), Dropout(dropout), Linear(hidden, dim), Dropout(dropout))


# ----------------------------------------------------------------------------- attention
class ShiftedWindowAttention(Module):
    """Multi-head self-attention inside (shifted) M₀×M₁ windows with a relative position bias
    (Liu et al. 2021, eq. 4): Attention(Q, K, V) = SoftMax(QKᵀ/√d + B + mask)·V. Input and output
    are channels-last (B, H, W, C)."""

    def __init__(self, dim: int, window_size: int | Sequence[int], shift_size: int | Sequence[int], num_heads: int,
                 qkv_bias: bool = True, proj_bias: bool = True, attention_dropout: float = 0.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.window_size, self.shift_size = _pair(window_size, "window_size"), _pair(shift_size, "shift_size")
        if dim < 1 or num_heads < 1 or dim % num_heads:
            raise ValueError(f"ShiftedWindowAttention: dim ({dim}) must be a positive multiple of num_heads "
                             f"({num_heads})")
        if min(self.window_size) < 1 or any(s >= w for s, w in zip(self.shift_size, self.window_size, strict=True)):
            raise ValueError(f"ShiftedWindowAttention: need window_size >= 1 and shift_size < window_size, got "
                             f"window_size={self.window_size}, shift_size={self.shift_size}")
        self.dim, self.num_heads = int(dim), int(num_heads)
        self.attention_dropout, self.dropout = attention_dropout, dropout
        self.qkv = Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = Linear(dim, dim, bias=proj_bias)
        m0, m1 = self.window_size
        self.relative_position_bias_table = Parameter(empty((2 * m0 - 1) * (2 * m1 - 1), num_heads))
        self.register_buffer("relative_position_index", as_tensor(relative_position_index(self.window_size)))
        init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def relative_position_bias(self) -> Tensor:
        """B of shape (1, heads, N, N), N = M₀M₁, gathered from the table."""
        n = self.window_size[0] * self.window_size[1]
        bias = self.relative_position_bias_table[self.relative_position_index]
        return bias.reshape(n, n, self.num_heads).permute(2, 0, 1).unsqueeze(0)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[-1] != self.dim:
            raise ValueError(f"ShiftedWindowAttention(dim={self.dim}, window={self.window_size}): expected input "
                             f"(B, H, W, {self.dim}), got {tuple(x.shape)}")
        b, h, w, _ = x.shape
        (m0, m1), (s0, s1) = self.window_size, self.shift_size
        pad_b, pad_r = -h % m0, -w % m1
        if pad_b or pad_r:
            x = pad(x, (0, 0, 0, pad_r, 0, pad_b))
        ph, pw = h + pad_b, w + pad_r
        shift = (s0 if m0 < ph else 0, s1 if m1 < pw else 0)  # one window covering an axis: no shift
        if any(shift):
            x = roll(x, (-shift[0], -shift[1]), (1, 2))
            mask = shifted_window_mask(ph, pw, (m0, m1), shift)
            mask = as_tensor(mask.reshape(1, mask.shape[0], 1, *mask.shape[1:]), dtype=x.dtype, device=x.device)
        else:
            mask = None
        x = window_reverse(self._attend(window_partition(x, (m0, m1)), b, mask), (m0, m1), b, ph, pw)
        if any(shift):
            x = roll(x, shift, (1, 2))
        return x[:, :h, :w, :] if pad_b or pad_r else x

    def _attend(self, windows: Tensor, batch: int, mask: Tensor | None) -> Tensor:
        """Attention in every window at once: (B·nW, N, C) → (B·nW, N, C)."""
        bw, n, c = windows.shape
        heads = self.num_heads
        q, k, v = unbind(self.qkv(windows).reshape(bw, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4), 0)
        attn = (q * (c // heads) ** -0.5) @ k.transpose(-2, -1) + self.relative_position_bias()
        if mask is not None:  # (B, nW, heads, N, N) + (1, nW, 1, N, N)
            attn = (attn.reshape(batch, bw // batch, heads, n, n) + mask).reshape(bw, heads, n, n)
        attn = dropout(softmax(attn, dim=-1), self.attention_dropout, self.training)
        out = self.proj((attn @ v).transpose(1, 2).reshape(bw, n, c))
        return dropout(out, self.dropout, self.training)


class SwinTransformerBlock(Module):
    """x ← x + SD(W-MSA(LN(x))); x ← x + SD(MLP(LN(x))) on channels-last maps (Liu et al. 2021, eq. 3);
    ``shift_size`` 0 gives regular windows (W-MSA), M/2 shifted ones (SW-MSA)."""

    def __init__(self, dim: int, num_heads: int, window_size: Sequence[int], shift_size: Sequence[int],
                 mlp_ratio: float = 4.0, dropout: float = 0.0, attention_dropout: float = 0.0,
                 stochastic_depth_prob: float = 0.0, norm_layer: Callable[..., Module] | None = None,
                 attn_layer: Callable[..., Module] = ShiftedWindowAttention) -> None:
        super().__init__()
        norm_layer = norm_layer or partial(LayerNorm, eps=1e-5)
        self.norm1 = norm_layer(dim)
        self.attn = attn_layer(dim, window_size, shift_size, num_heads, attention_dropout=attention_dropout,
                               dropout=dropout)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, "row")
        self.norm2 = norm_layer(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio), dropout)
        for m in self.mlp.modules():
            if isinstance(m, Linear):
                init.xavier_uniform_(m.weight)
                init.normal_(m.bias, std=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.stochastic_depth(self.attn(self.norm1(x)))
        return x + self.stochastic_depth(self.mlp(self.norm2(x)))


class PatchMerging(Module):
    """Downsample ×2: each 2×2 neighbourhood's tokens are concatenated (order (0,0), (1,0), (0,1),
    (1,1) as (row, col) offsets, torchvision's), normalised and projected 4C → 2C. Odd sizes are
    zero-padded on the bottom/right first. (B, H, W, C) → (B, ⌈H/2⌉, ⌈W/2⌉, 2C)."""

    def __init__(self, dim: int, norm_layer: Callable[..., Module] = LayerNorm) -> None:
        super().__init__()
        self.dim = int(dim)
        self.reduction = Linear(4 * dim, 2 * dim, bias=False)
        self.norm = norm_layer(4 * dim)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[-1] != self.dim:
            raise ValueError(f"PatchMerging(dim={self.dim}): expected input (B, H, W, {self.dim}), "
                             f"got {tuple(x.shape)}")
        b, h, w, c = x.shape
        if h % 2 or w % 2:
            x = pad(x, (0, 0, 0, w % 2, 0, h % 2))
            h, w = h + h % 2, w + w % 2
        # (B, H/2, dy, W/2, dx, C) → (B, H/2, W/2, dx, dy, C): channel block k = 2·dx + dy
        x = x.reshape(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 4, 2, 5).reshape(b, h // 2, w // 2, 4 * c)
        return self.reduction(self.norm(x))


# ----------------------------------------------------------------------------- the network
class SwinTransformer(Module):
    """Swin Transformer for ``(N, in_chans, H, W)`` images (any H, W ≥ ``patch_size``); returns
    ``(N, num_classes)`` logits. Stochastic-depth probability grows linearly over the blocks from 0
    to ``stochastic_depth_prob``."""

    def __init__(self, patch_size: Sequence[int], embed_dim: int, depths: Sequence[int], num_heads: Sequence[int],
                 window_size: Sequence[int], mlp_ratio: float = 4.0, dropout: float = 0.0,
                 attention_dropout: float = 0.0, stochastic_depth_prob: float = 0.1, num_classes: int = 1000,
                 norm_layer: Callable[..., Module] | None = None, block: Callable[..., Module] | None = None,
                 downsample_layer: Callable[..., Module] = PatchMerging, in_chans: int = 3) -> None:
        super().__init__()
        self.patch_size, self.window_size = _pair(patch_size, "patch_size"), _pair(window_size, "window_size")
        depths, num_heads = [int(d) for d in depths], [int(h) for h in num_heads]
        if len(depths) != len(num_heads) or not depths or min(depths) < 1 or min(self.patch_size) < 1:
            raise ValueError(f"SwinTransformer: need one positive depth per stage and as many num_heads, and "
                             f"patch_size >= 1; got depths={depths}, num_heads={num_heads}, "
                             f"patch_size={self.patch_size}")
        if int(num_classes) < 1 or int(in_chans) < 1:
            raise ValueError(f"SwinTransformer: num_classes and in_chans must be >= 1, got {num_classes}, {in_chans}")
        self.embed_dim, self.in_chans, self.num_classes = int(embed_dim), int(in_chans), int(num_classes)
        norm_layer = norm_layer or partial(LayerNorm, eps=1e-5)
        block = block or SwinTransformerBlock
        layers: list[Module] = [Sequential(
            Conv2d(self.in_chans, embed_dim, kernel_size=self.patch_size, stride=self.patch_size),
            Permute([0, 2, 3, 1]), norm_layer(embed_dim))]
        total, block_id = sum(depths), 0
        for i, (depth, heads) in enumerate(zip(depths, num_heads, strict=True)):
            dim, stage = embed_dim * 2 ** i, []
            for j in range(depth):
                sd_prob = stochastic_depth_prob * float(block_id) / max(total - 1, 1)
                shift = [0 if j % 2 == 0 else m // 2 for m in self.window_size]
                stage.append(block(dim, heads, window_size=self.window_size, shift_size=shift, mlp_ratio=mlp_ratio,
                                   dropout=dropout, attention_dropout=attention_dropout,
                                   stochastic_depth_prob=sd_prob, norm_layer=norm_layer))
                block_id += 1
            layers.append(Sequential(*stage))
            if i < len(depths) - 1:
                layers.append(downsample_layer(dim, norm_layer))
        self.features = Sequential(*layers)
        num_features = embed_dim * 2 ** (len(depths) - 1)
        self.norm = norm_layer(num_features)
        self.permute = Permute([0, 3, 1, 2])
        self.avgpool = AdaptiveAvgPool2d(1)
        self.flatten = Flatten(1)
        self.head = Linear(num_features, self.num_classes)
        for m in self.modules():
            if isinstance(m, Linear):
                init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        p0, p1 = self.patch_size
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != self.in_chans or x.shape[2] < p0 \
                or x.shape[3] < p1:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"SwinTransformer(patch={self.patch_size}, embed_dim={self.embed_dim}, "
                             f"window={self.window_size}): expected input (N, {self.in_chans}, H, W) with "
                             f"H >= {p0}, W >= {p1}, got {got}")
        x = self.norm(self.features(x))
        return self.head(self.flatten(self.avgpool(self.permute(x))))


# ----------------------------------------------------------------------------- builders
_PAPER = "Liu et al. 2021, Swin Transformer: Hierarchical Vision Transformer using Shifted Windows"


@register_model(paper=_PAPER)
def swin_t(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> SwinTransformer:
    """Swin-T (torchvision's ``swin_t``): C = 96, depths 2/2/6/2, heads 3/6/12/24, window 7,
    stochastic depth 0.2; 28,288,354 parameters."""
    kwargs.setdefault("stochastic_depth_prob", 0.2)
    return SwinTransformer([4, 4], 96, [2, 2, 6, 2], [3, 6, 12, 24], [7, 7], num_classes=num_classes,
                           in_chans=in_chans, **kwargs)


@register_model(paper=_PAPER)
def swin_s(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> SwinTransformer:
    """Swin-S (torchvision's ``swin_s``): C = 96, depths 2/2/18/2, heads 3/6/12/24, window 7,
    stochastic depth 0.3; 49,606,258 parameters."""
    kwargs.setdefault("stochastic_depth_prob", 0.3)
    return SwinTransformer([4, 4], 96, [2, 2, 18, 2], [3, 6, 12, 24], [7, 7], num_classes=num_classes,
                           in_chans=in_chans, **kwargs)


@register_model(paper=_PAPER)
def swin_b(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> SwinTransformer:
    """Swin-B (torchvision's ``swin_b``): C = 128, depths 2/2/18/2, heads 4/8/16/32, window 7,
    stochastic depth 0.5; 87,768,224 parameters."""
    kwargs.setdefault("stochastic_depth_prob", 0.5)
    return SwinTransformer([4, 4], 128, [2, 2, 18, 2], [4, 8, 16, 32], [7, 7], num_classes=num_classes,
                           in_chans=in_chans, **kwargs)


@register_model(paper=_PAPER, small_input=True)
def swin_micro(num_classes: int = 10, in_chans: int = 1, **kwargs: Any) -> SwinTransformer:
    """A Swin for 28–32 px images (MNIST, CIFAR): patch 2 (so 14×14 or 16×16 tokens), window 4,
    C = 32, depths 2/2/2, heads 2/4/8, stochastic depth 0.1: windows are shifted and masked in the
    first two stages, the last (4×4 tokens) is one window. 566,790 parameters (10 classes, 1 channel).
    Trained from scratch on 2,000 MNIST images for 3 epochs (AdamW, one-cycle lr 2e-3, batch 32)
    it reaches about 60% test accuracy: without convolutions' locality prior it needs more data or
    epochs than a CNN."""
    kwargs.setdefault("stochastic_depth_prob", 0.1)
    return SwinTransformer([2, 2], 32, [2, 2, 2], [2, 4, 8], [4, 4], num_classes=num_classes, in_chans=in_chans,
                           **kwargs)
