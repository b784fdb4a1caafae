"""Figures of ``deepnum caption``: held-out canvases titled with their generated captions, and the loss."""
from __future__ import annotations

import os
import textwrap

import numpy as np

from deepnum.apps._common import save_png


def plot_captions(images: np.ndarray, references: list[list[str]], captions: list[list[str]],
                  path: str | os.PathLike, cols: int = 4) -> None:
    """Canvases (N, 1, H, W) with their generated caption as the title: green when it equals the
    reference sentence, red (with the reference below) when it does not."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, ref, cap in zip(axes.flat, images, references, captions, strict=False):
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=1)
        ok = cap == ref
        title = textwrap.fill(" ".join(cap), 26)
        if not ok:
            title += "\n(true: " + " ".join(ref) + ")"
        ax.set_title(title, fontsize=9, color="darkgreen" if ok else "firebrick")
    fig.tight_layout()
    save_png(fig, path)


def plot_loss(losses: list[float], exact: list[float], path: str | os.PathLike) -> None:
    """Training loss (nats per word) and held-out exact match (greedy) per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    epochs = np.arange(1, len(losses) + 1)
    ax.plot(epochs, losses, marker="o", color="tab:blue")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (nats/word)", color="tab:blue")
    ax.grid(alpha=0.3)
    right = ax.twinx()
    right.plot(epochs[:len(exact)], exact, marker="s", color="tab:green")
    right.set_ylabel("held-out exact match (greedy)", color="tab:green")
    right.set_ylim(0, 1)
    ax.set_title("captioner: teacher forcing")
    fig.tight_layout()
    save_png(fig, path)
