"""Figures of ``deepnum style``: the loss curves and the content | style | result-over-steps panel."""
from __future__ import annotations

import os

import numpy as np

from deepnum.apps._common import save_png


def plot_losses(history: dict[str, list[float]], path: str | os.PathLike) -> None:
    """Content, style and total loss per step on a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogFormatter

    fig, ax = plt.subplots(figsize=(6, 4))
    steps = np.arange(1, len(history["total"]) + 1)
    for key in ("total", "content", "style"):
        ax.plot(steps, history[key], label=key)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(LogFormatter())   # plain numbers: no mathtext, so no font look-ups
    ax.set_xlabel("Adam step")
    ax.set_ylabel("loss (relative squared error)")
    ax.set_title("style transfer losses")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)


def plot_panel(content: np.ndarray, style: np.ndarray, snapshots: dict[int, np.ndarray], path: str | os.PathLike
               ) -> None:
    """The content photo, the style photo and the image at each snapshot step, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tiles = [("content", content), ("style", style)] + [(f"step {k}", v) for k, v in sorted(snapshots.items())]
    fig, axes = plt.subplots(1, len(tiles), figsize=(2.6 * len(tiles), 2.4))
    for ax, (title, image) in zip(np.atleast_1d(axes), tiles, strict=True):
        ax.imshow(np.clip(image.transpose(1, 2, 0), 0, 1))
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    save_png(fig, path)
