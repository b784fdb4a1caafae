"""Training plots written straight to PNG files with matplotlib's Agg canvas (no display needed, and
the global pyplot backend is left alone). matplotlib is optional: ``pip install matplotlib``
(``deepnum[plot]``)."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["plot_confusion_matrix", "plot_history"]


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("plotting needs matplotlib: pip install matplotlib (or pip install 'deepnum[plot]')") \
            from error
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _panels(history: Any, metrics: Sequence[str] | None) -> list[str]:
    keys = history.history
    if metrics is not None:
        missing = [m for m in metrics if m not in keys]
        if missing:
            raise KeyError(f"plot_history: {missing} not in the history (it has {list(keys)})")
        return list(metrics)
    panels = [k for k in keys if not k.startswith("val_") and k not in ("lr", "time")]
    panels += [k[4:] for k in keys if k.startswith("val_") and k[4:] not in keys]
    return panels or list(keys)[:1]


def plot_history(history: Any, path: str | os.PathLike, metrics: Sequence[str] | None = None,
                 title: str | None = None, dpi: int = 100) -> str:
    """One panel per quantity (by default loss and each metric, e.g. accuracy), the training curve
    and, when recorded, the validation curve (``val_`` prefix), against the epoch (1-based). Writes a
    PNG to ``path`` and returns the path."""
    panels = _panels(history, metrics)
    fig = _figure(4.5 * len(panels), 3.6)
    epochs = np.asarray(history.epoch) + 1
    for i, key in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for name, label, style in ((key, "train", "-o"), (f"val_{key}", "validation", "-s")):
            if name in history.history:
                ax.plot(epochs, history.history[name], style, markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.set_title(key)
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(os.fspath(path), format="png", dpi=dpi)
    return os.fspath(path)


def plot_confusion_matrix(matrix: Any, path: str | os.PathLike, class_names: Sequence[str] | None = None,
                          normalize: bool = False, title: str = "Confusion matrix", dpi: int = 100) -> str:
    """A confusion matrix (rows: true class, columns: predicted) as a heat map with the counts (or
    the row-normalised fractions) written in the cells; PNG to ``path``."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"plot_confusion_matrix: expected a square matrix, got shape {m.shape}")
    if normalize:
        rows = m.sum(axis=1, keepdims=True)
        m = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    k = m.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"plot_confusion_matrix: {len(names)} class names for a {k}-class matrix")
    fig = _figure(max(4.0, 1.5 + 0.5 * k), max(3.4, 1.0 + 0.5 * k))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(m, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if k <= 30:
        threshold, size = (m.max() / 2 if m.size else 0), (9 if k <= 10 else 7)
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center", fontsize=size,
                    color="white" if v > threshold else "black")
    fig.tight_layout()
    fig.savefig(os.fspath(path), format="png", dpi=dpi)
    return os.fspath(path)
