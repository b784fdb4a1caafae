"""Figures of ``deepnum mae``: masked input / reconstruction / original, and the pre-training loss."""
from __future__ import annotations

from typing import Any

import numpy as np


def reconstruct(model: Any, images: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(masked input, reconstruction with the visible patches pasted back, original), each
    (N, H, W); the masked patches of the input are NaN (drawn grey). Normalised-pixel predictions
    are mapped back with each patch's own mean and standard deviation, as the paper's figures."""
    import deepnum as dn
    from deepnum.apps._mae_model import patchify, unpatchify

    model.eval()
    with dn.no_grad():
        x = dn.tensor(images)
        _, pred, mask = model(x, rng)
        target = patchify(x, model.patch_size).numpy()
    pred, keep = pred.numpy(), 1.0 - mask.numpy()[..., None]
    if model.norm_pix_loss:
        mu, sd = target.mean(-1, keepdims=True), target.std(-1, ddof=1, keepdims=True)
        pred = pred * np.sqrt(sd ** 2 + 1e-6) + mu
    p, c = model.patch_size, model.in_channels
    masked = np.where(keep > 0, target, np.nan)
    pasted = keep * target + (1.0 - keep) * pred
    return tuple(unpatchify(dn.tensor(a.astype(np.float32)), p, c).numpy()[:, 0] for a in (masked, pasted, target))


def plot_reconstructions(model: Any, images: np.ndarray, rng: np.random.Generator, path: str) -> None:
    from matplotlib import colormaps

    from deepnum.train.plots import _figure

    rows = reconstruct(model, images, rng)
    cmap = colormaps["gray"].with_extremes(bad="tab:gray")
    n = rows[0].shape[0]
    fig = _figure(1.2 * n, 4.0)
    for r, (label, imgs) in enumerate(zip((f"masked ({model.mask_ratio:.0%})", "reconstruction", "original"), rows)):
        for i in range(n):
            ax = fig.add_subplot(3, n, r * n + i + 1)
            ax.imshow(np.clip(imgs[i], 0, 1), cmap=cmap, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle("MAE on MNIST test digits: masked input / reconstruction / original", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)


def plot_loss(losses: list[float], path: str) -> None:
    from deepnum.train.plots import _figure

    fig = _figure(4.5, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(np.arange(1, len(losses) + 1), losses, "-o", markersize=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean squared error, masked patches")
    ax.set_title("MAE pre-training loss")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
