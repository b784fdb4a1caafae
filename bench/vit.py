"""ViT small-input training step, deepnum vs PyTorch in the same process (see bench/harness.py):
``deepnum.models.create_model("vit_tiny_patch4_32")`` (12 pre-norm blocks of width 192, 3 heads,
MLP 768, 4×4 patches of 3×32×32 images: 64 + 1 tokens) on batch 128, cross-entropy, backward,
AdamW. torch runs the same network written with torch.nn (``torch_vit``, torchvision's layout and
state_dict keys, without torchvision) with the same weights.

Run: ``.venv/bin/python -m bench.vit [--threads N] [--rounds R]``
"""
from __future__ import annotations

import sys
from collections import OrderedDict

import numpy as np

from bench.harness import classification_step, compare, start
from bench.layers import _libs, _same_weights

BATCH, CLASSES = 128, 10
TINY = dict(image_size=32, patch_size=4, num_layers=12, num_heads=3, hidden_dim=192, mlp_dim=768)


def torch_vit(image_size: int, patch_size: int, num_layers: int, num_heads: int, hidden_dim: int, mlp_dim: int,
              num_classes: int = CLASSES, in_channels: int = 3):
    """torchvision's VisionTransformer (no dropout) in plain torch.nn, with its state_dict keys:
    patch embedding (a conv with kernel = stride = patch), class token, learned positions, pre-norm
    blocks (LayerNorm eps 1e-6, MultiheadAttention, exact GELU MLP), final LayerNorm, a Linear head
    on the class token. Parameters get torch's default initialisation and the head small random
    weights (torchvision's zero head would make the first loss log(classes) whatever the weights)."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln_1 = nn.LayerNorm(hidden_dim, eps=1e-6)
            self.self_attention = nn.MultiheadAttention(hidden_dim, num_heads, batch_first=True)
            self.ln_2 = nn.LayerNorm(hidden_dim, eps=1e-6)
            self.mlp = nn.Sequential(nn.Linear(hidden_dim, mlp_dim), nn.GELU(), nn.Dropout(0.0),
                                     nn.Linear(mlp_dim, hidden_dim), nn.Dropout(0.0))

        def forward(self, x):
            h = self.ln_1(x)
            x = x + self.self_attention(h, h, h, need_weights=False)[0]
            return x + self.mlp(self.ln_2(x))

    class Encoder(nn.Module):
        def __init__(self, seq_length: int) -> None:
            super().__init__()
            self.pos_embedding = nn.Parameter(torch.randn(1, seq_length, hidden_dim) * 0.02)
            self.layers = nn.Sequential(OrderedDict((f"encoder_layer_{i}", Block()) for i in range(num_layers)))
            self.ln = nn.LayerNorm(hidden_dim, eps=1e-6)

        def forward(self, x):
            return self.ln(self.layers(x + self.pos_embedding))

    class ViT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.class_token = nn.Parameter(torch.zeros(1, 1, hidden_dim))
            self.conv_proj = nn.Conv2d(in_channels, hidden_dim, patch_size, patch_size)
            self.encoder = Encoder((image_size // patch_size) ** 2 + 1)
            self.heads = nn.Sequential(OrderedDict(head=nn.Linear(hidden_dim, num_classes)))
            nn.init.normal_(self.heads.head.weight, std=0.02)

        def forward(self, x):
            x = self.conv_proj(x).flatten(2).transpose(1, 2)
            x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], 1)
            return self.heads(self.encoder(x)[:, 0])

    return ViT()


def build_vit_step(lib_name: str, reference=None, batch: int = BATCH, config: dict | None = None):
    """``(step, model)``: one AdamW training step of the ViT in ``lib_name`` on a fixed random batch;
    with ``reference`` (the other library's model) it starts from the reference's weights.
    ``config`` overrides the ``vit_tiny_patch4_32`` shape (the tests use a small one)."""
    lib, _, functional, optim = _libs(lib_name)
    config = TINY if config is None else {**TINY, **config}
    if lib_name == "torch":
        import torch

        model = torch_vit(**config)
        if reference is not None:
            model.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in reference.state_dict().items()})
    else:
        from deepnum.models import create_model
        from deepnum.models.vit import VisionTransformer

        model = (create_model("vit_tiny_patch4_32") if config == TINY
                 else VisionTransformer(**config, num_classes=CLASSES))
        if reference is not None:
            _same_weights(model, reference)
    model.train()
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    size = config["image_size"]
    x = lib.tensor(rng.standard_normal((batch, 3, size, size)).astype(np.float32))
    y = lib.tensor(rng.integers(0, CLASSES, batch))

    return classification_step(functional, model, opt, x, y), model


def main(argv: list[str] | None = None) -> float:
    args = start(__doc__.splitlines()[0], argv, rounds=5)
    import torch

    torch.manual_seed(0)
    torch_step, reference = build_vit_step("torch")
    ours_step, _ = build_vit_step("deepnum", reference)
    return compare("ViT vit_tiny_patch4_32 train step, batch 128, AdamW", ours_step, torch_step,
                   rounds=args.rounds, iterations=1, warmup=2)


if __name__ == "__main__":
    main(sys.argv[1:])
