"""A small masked autoencoder (K. He, X. Chen, S. Xie, Y. Li, P. Dollár, R. Girshick, "Masked
autoencoders are scalable vision learners", CVPR 2022, arXiv:2111.06377) for 28×28 MNIST digits.

The image is cut into P×P patches and a random 75% of them is removed per image. The **encoder** (a
ViT: patch embedding, class token, fixed 2-D sine-cosine position embeddings, pre-norm Transformer
blocks — ``deepnum.models.vit.EncoderBlock``) sees only the visible patches, so it works on a quarter
of the tokens. A light **decoder** takes the encoded visible tokens plus one shared, learned mask
token at every removed position (each with its position embedding), runs a few narrower blocks and
predicts the pixels of every patch; the loss is the mean squared error on the *removed* patches only,
optionally against per-patch normalised pixels (``norm_pix_loss``, the paper's Table 1d).
For a downstream task the decoder is dropped and ``features`` encodes the whole image.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from deepnum import functional as F
from deepnum.creation import tensor as as_tensor
from deepnum.creation import zeros
from deepnum.models.vit import EncoderBlock
from deepnum.nn import init
from deepnum.nn.modules.container import Sequential
from deepnum.nn.modules.conv import Conv2d
from deepnum.nn.modules.linear import Linear
from deepnum.nn.modules.module import Module
from deepnum.nn.modules.normalization import LayerNorm
from deepnum.nn.parameter import Parameter
from deepnum.tensor import Tensor

__all__ = ["MaskedAutoencoder", "patchify", "sincos_pos_embed_2d", "unpatchify"]


def sincos_pos_embed_2d(dim: int, grid: int, cls_token: bool = True) -> np.ndarray:
    """(1, [1 +] grid², dim) fixed position embeddings: half the channels encode the row, half the
    column, each as sin/cos of the index at geometrically spaced frequencies 1/10000^(2i/d) (Vaswani et
    al. 2017, in 2-D as in MAE); the class token's row is zero."""
    if dim % 4:
        raise ValueError(f"sincos_pos_embed_2d: dim must be a multiple of 4, got {dim}")
    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4))
    rows, cols = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    parts = [f(pos.reshape(-1, 1) * omega) for pos in (cols, rows) for f in (np.sin, np.cos)]
    emb = np.concatenate(parts, 1)
    if cls_token:
        emb = np.concatenate([np.zeros((1, dim)), emb], 0)
    return emb[None].astype(np.float32)


def patchify(images: Tensor, patch: int) -> Tensor:
    """(N, C, H, W) → (N, L, P·P·C): patches in row-major order, pixels (row, col, channel) inside."""
    n, c, h, w = images.shape
    x = F.reshape(images, n, c, h // patch, patch, w // patch, patch)
    return F.reshape(F.permute(x, (0, 2, 4, 3, 5, 1)), n, (h // patch) * (w // patch), patch * patch * c)


def unpatchify(patches: Tensor, patch: int, channels: int) -> Tensor:
    """The inverse of ``patchify`` for square images."""
    n, length, _ = patches.shape
    g = int(round(length ** 0.5))
    x = F.reshape(patches, n, g, g, patch, patch, channels)
    return F.reshape(F.permute(x, (0, 5, 1, 3, 2, 4)), n, channels, g * patch, g * patch)


def _blocks(depth: int, heads: int, dim: int, mlp: int) -> Sequential:
    return Sequential(OrderedDict((f"block_{i}", EncoderBlock(heads, dim, mlp, 0.0, 0.0)) for i in range(depth)))


class MaskedAutoencoder(Module):
    """MAE with a ViT encoder for (N, in_channels, image_size, image_size) images. ``forward(images)``
    returns ``(loss, pred, mask)``: the masked-patch loss, the (N, L, P·P·C) predicted patches and the
    (N, L) 0/1 mask (1 = removed), as the reference implementation."""

    def __init__(self, image_size: int = 28, patch_size: int = 4, in_channels: int = 1, embed_dim: int = 64,
                 depth: int = 4, num_heads: int = 4, mlp_dim: int = 128, decoder_dim: int = 32,
                 decoder_depth: int = 2, decoder_heads: int = 4, mask_ratio: float = 0.75,
                 norm_pix_loss: bool = False) -> None:
        super().__init__()
        if image_size % patch_size or not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"MaskedAutoencoder: image_size {image_size} must be divisible by patch_size "
                             f"{patch_size} and mask_ratio in [0, 1), got {mask_ratio}")
        self.patch_size, self.in_channels, self.grid = patch_size, in_channels, image_size // patch_size
        self.num_patches, self.mask_ratio, self.norm_pix_loss = self.grid ** 2, float(mask_ratio), norm_pix_loss
        self.patch_embed = Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)
        init.xavier_uniform_(self.patch_embed.weight)
        init.zeros_(self.patch_embed.bias)
        self.cls_token = Parameter(zeros(1, 1, embed_dim))
        self.mask_token = Parameter(zeros(1, 1, decoder_dim))
        init.normal_(self.cls_token, std=0.02)
        init.normal_(self.mask_token, std=0.02)
        self.register_buffer("pos_embed", as_tensor(sincos_pos_embed_2d(embed_dim, self.grid)), persistent=False)
        self.register_buffer("decoder_pos_embed", as_tensor(sincos_pos_embed_2d(decoder_dim, self.grid)),
                             persistent=False)
        self.blocks = _blocks(depth, num_heads, embed_dim, mlp_dim)
        self.norm = LayerNorm(embed_dim, eps=1e-6)
        self.decoder_embed = Linear(embed_dim, decoder_dim)
        self.decoder_blocks = _blocks(decoder_depth, decoder_heads, decoder_dim, 2 * decoder_dim)
        self.decoder_norm = LayerNorm(decoder_dim, eps=1e-6)
        self.decoder_pred = Linear(decoder_dim, patch_size * patch_size * in_channels)

    def _embed(self, images: Tensor) -> Tensor:
        want = (self.in_channels, self.grid * self.patch_size, self.grid * self.patch_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != want:
            raise ValueError(f"MaskedAutoencoder: expected images (N, {', '.join(map(str, want))}), "
                             f"got {tuple(images.shape)}")
        x = self.patch_embed(images)
        x = F.permute(F.reshape(x, x.shape[0], x.shape[1], -1), (0, 2, 1))
        return x + self.pos_embed[:, 1:]

    def random_masking(self, n: int, rng: np.random.Generator, mask_ratio: float) -> tuple[np.ndarray, ...]:
        """Per image, keep a random ``(1 - mask_ratio)`` share of the patches: (ids_keep (N, K),
        ids_restore (N, L), mask (N, L) float32, 1 = removed), by sorting uniform noise."""
        keep = int(self.num_patches * (1 - mask_ratio))
        ids_shuffle = np.argsort(rng.random((n, self.num_patches)), axis=1)
        ids_restore = np.argsort(ids_shuffle, axis=1)
        mask = np.ones((n, self.num_patches), dtype=np.float32)
        mask[:, :keep] = 0
        return ids_shuffle[:, :keep], ids_restore, np.take_along_axis(mask, ids_restore, 1)

    def _encode(self, tokens: Tensor) -> Tensor:
        cls = F.expand(self.cls_token + self.pos_embed[:, :1], tokens.shape[0], 1, tokens.shape[2])
        return self.norm(self.blocks(F.cat([cls, tokens], 1)))

    def features(self, images: Tensor) -> Tensor:
        """(N, D) image features for downstream use: the whole image encoded (no masking), mean of the
        patch tokens (the paper's global pooling)."""
        return F.mean(self._encode(self._embed(images))[:, 1:], 1)

    def decode(self, latent: Tensor, ids_restore: np.ndarray) -> Tensor:
        """(N, 1 + K, D) encoded visible tokens → (N, L, P·P·C) predicted pixels of every patch."""
        x = self.decoder_embed(latent)
        n, length, width = x.shape[0], self.num_patches, x.shape[2]
        masked = F.expand(self.mask_token, n, length + 1 - x.shape[1], width)
        x_ = F.cat([x[:, 1:], masked], 1)[np.arange(n)[:, None], ids_restore]
        x = F.cat([x[:, :1], x_], 1) + self.decoder_pos_embed
        return self.decoder_pred(self.decoder_norm(self.decoder_blocks(x)))[:, 1:]

    def target(self, images: Tensor) -> Tensor:
        """The (N, L, P·P·C) pixels to predict: raw, or per patch normalised to mean 0, variance 1."""
        target = patchify(images, self.patch_size)
        if self.norm_pix_loss:
            mu = F.mean(target, -1, keepdim=True)
            var = F.var(target, -1, keepdim=True, unbiased=True)
            target = (target - mu) / (var + 1e-6) ** 0.5
        return target

    def forward(self, images: Tensor, rng: np.random.Generator | None = None,
                mask_ratio: float | None = None) -> tuple[Tensor, Tensor, Tensor]:
        ratio = self.mask_ratio if mask_ratio is None else mask_ratio
        tokens = self._embed(images)
        ids_keep, ids_restore, mask = self.random_masking(images.shape[0], rng or np.random.default_rng(), ratio)
        latent = self._encode(tokens[np.arange(images.shape[0])[:, None], ids_keep])
        pred = self.decode(latent, ids_restore)
        per_patch = F.mean((pred - self.target(images)) ** 2, -1)
        m = as_tensor(mask, device=images.device)
        loss = F.sum(per_patch * m) / float(mask.sum())
        return loss, pred, m

    def extra_repr(self) -> Any:
        return f"patch_size={self.patch_size}, patches={self.num_patches}, mask_ratio={self.mask_ratio}"
