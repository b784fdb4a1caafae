"""Judging generated digits with a trained classifier, and the pictures of ``deepnum gan``.

A GAN has no test loss, so the samples are scored the way the Inception score does (Salimans et al.
2016, "Improved techniques for training GANs", section 4), with a LeNet-5 trained on real MNIST in
place of Inception: each sample should be recognised confidently (a high mean of the largest
softmax probability) and the samples together should cover all ten digits (the histogram of
predicted classes should be flat, not collapsed onto a few: its entropy, log2(10) = 3.32 bits at
best, and the number of classes that get at least 5% of the samples)."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from deepnum.autograd.grad_mode import no_grad
from deepnum.creation import tensor as as_tensor
from deepnum.nn.modules.module import Module

__all__ = ["judge_scores", "load_judge", "predict_proba", "save_image_grid", "save_progress", "train_judge"]

SHARE = 0.05


def predict_proba(judge: Module, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Softmax probabilities ``(N, 10)`` of ``judge`` (eval mode) on images ``(N, 1, 28, 28)`` in [0, 1]."""
    judge.eval()
    out = []
    with no_grad():
        for i in range(0, images.shape[0], batch_size):
            out.append(judge(as_tensor(images[i:i + batch_size])).softmax(1).numpy())
    return np.concatenate(out)


def judge_scores(probs: np.ndarray, share: float = SHARE) -> dict[str, Any]:
    """Mean confidence (largest probability), the histogram of predicted classes, its entropy in bits
    and how many classes hold at least ``share`` of the samples, for probabilities ``(N, C)``."""
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[0] == 0:
        raise ValueError(f"judge_scores: expected probabilities (N, C) with N >= 1, got shape {probs.shape}")
    counts = np.bincount(probs.argmax(1), minlength=probs.shape[1])
    p = counts / counts.sum()
    nz = p[p > 0]
    return {"confidence": float(probs.max(1).mean()), "entropy_bits": float(-(nz * np.log2(nz)).sum()) + 0.0,
            "classes_5pct": int((p >= share).sum()), "histogram": counts.tolist()}


def train_judge(seed: int, epochs: int, limit: int | None = None) -> tuple[Module, float]:
    """LeNet-5 trained on the MNIST training split (Adam, batch 64, one-cycle learning rate peaking at
    3e-3); returns it with its accuracy on the 1,000 test images."""
    from deepnum.data import DataLoader
    from deepnum.data.datasets import load_dataset
    from deepnum.models import create_model
    from deepnum.nn.modules.loss import CrossEntropyLoss
    from deepnum.optim import Adam
    from deepnum.optim.lr_scheduler import OneCycleLR
    from deepnum.random import Generator, manual_seed
    from deepnum.train import evaluate, fit

    manual_seed(seed)
    train, test = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    if limit is not None:
        from deepnum.data import Subset

        train = Subset(train, np.random.default_rng(seed).permutation(len(train))[:limit].tolist())
    judge = create_model("lenet5")
    loader = DataLoader(train, batch_size=64, shuffle=True, generator=Generator().manual_seed(seed))
    optimizer = Adam(judge.parameters(), lr=3e-3)
    schedule = OneCycleLR(optimizer, max_lr=3e-3, total_steps=epochs * len(loader))
    fit(judge, loader, epochs=epochs, optimizer=optimizer, loss_fn=CrossEntropyLoss(), scheduler=schedule,
        scheduler_interval="step", metrics=(), progress=False)
    accuracy = evaluate(judge, DataLoader(test, batch_size=500))["accuracy"]
    judge.eval()
    return judge, float(accuracy)


def load_judge(path: str | os.PathLike) -> Module:
    """A classifier saved by ``deepnum train`` (run directory, weights or checkpoint) that takes
    ``(N, 1, 28, 28)`` images and gives 10 logits."""
    from deepnum._cli_common import CLIError, load_saved_model

    saved = load_saved_model(path)
    shape = getattr(saved.model, "input_shape", None)
    probe = saved.model(as_tensor(np.zeros((1, 1, 28, 28), np.float32))) if shape in (None, (1, 28, 28)) else None
    if probe is None or tuple(probe.shape) != (1, 10):
        raise CLIError(f"--judge {path}: the judge must map (N, 1, 28, 28) digit images to 10 classes; "
                       f"{saved.name} takes {shape} and gives {None if probe is None else tuple(probe.shape)}")
    return saved.model


def image_grid(images: np.ndarray, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """Images ``(N, 1, H, W)`` in [0, 1] tiled into one ``(rows·(H+p)+p, nrow·(W+p)+p)`` array, as
    torchvision.utils.make_grid (pad value 0)."""
    n, _, h, w = images.shape
    rows = -(-n // nrow)
    grid = np.zeros((rows * (h + padding) + padding, nrow * (w + padding) + padding), np.float32)
    for k in range(n):
        r, c = divmod(k, nrow)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        grid[top:top + h, left:left + w] = images[k, 0]
    return grid


def save_image_grid(images: np.ndarray, path: str | os.PathLike, nrow: int = 8, scale: int = 3) -> str:
    """Write images ``(N, 1, H, W)`` in [0, 1] as one grey PNG, each pixel ``scale``×``scale``; atomic."""
    from matplotlib.image import imsave

    from deepnum.io.safetensors import atomic_write

    grid = np.kron(np.clip(image_grid(images, nrow), 0.0, 1.0), np.ones((scale, scale), np.float32))
    atomic_write(path, lambda tmp: imsave(tmp, grid, cmap="gray", vmin=0.0, vmax=1.0, format="png"))
    return os.fspath(path)


def save_progress(snapshots: dict[int, np.ndarray], path: str | os.PathLike, panels: int = 4) -> str:
    """The fixed-noise samples of up to ``panels`` epochs (first, last and evenly between) side by side."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from deepnum.io.safetensors import atomic_write

    epochs = sorted(snapshots)
    chosen = sorted({epochs[round(i * (len(epochs) - 1) / max(1, panels - 1))] for i in range(panels)})
    fig = Figure(figsize=(3.2 * len(chosen), 3.5))
    FigureCanvasAgg(fig)
    for ax, epoch in zip(np.atleast_1d(fig.subplots(1, len(chosen))), chosen):
        ax.imshow(image_grid(snapshots[epoch]), cmap="gray", vmin=0.0, vmax=1.0)
        ax.set_title(f"epoch {epoch}")
        ax.axis("off")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    return os.fspath(path)
