"""Small pieces several applications share: writing a figure atomically, checking canvas options."""
from __future__ import annotations

import argparse
import os
from typing import Any


def save_png(fig: Any, path: str | os.PathLike, dpi: int = 100) -> None:
    """Write a matplotlib figure as a PNG atomically (temporary file, then rename) and close it."""
    import matplotlib.pyplot as plt

    from deepnum.io.safetensors import atomic_write

    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    plt.close(fig)


def check_canvas_args(args: argparse.Namespace, command: str, network: str, stride: int = 8) -> None:
    """Refuse canvas options a canvas app cannot use: a size that is not a multiple of the network's
    stride, or a count of canvases, epochs or batch size below 1."""
    if args.size % stride:
        raise ValueError(f"deepnum {command}: --size must be a multiple of {stride} (the {network}'s stride), "
                         f"got {args.size}")
    for name in ("train_canvases", "test_canvases", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"deepnum {command}: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")


def add_canvas_arguments(parser: argparse.ArgumentParser, command: str, pretrain_help: str, model: str) -> None:
    """The options every canvas app (``deepnum segment``, ``deepnum detect``) takes: output, seed, how
    many canvases of what size with how many digits, pre-training and training epochs, batch, rate."""
    parser.add_argument("--output", default=f"runs/{command}", help=f"output folder (default: runs/{command})")
    parser.add_argument("--seed", type=int, default=0, help="random seed of data, initialisation and shuffling")
    parser.add_argument("--train-canvases", type=int, default=3000, help="training canvases (train digits)")
    parser.add_argument("--test-canvases", type=int, default=500, help="held-out canvases (test digits)")
    parser.add_argument("--size", type=int, default=64, help="canvas side in pixels, a multiple of 8")
    parser.add_argument("--digits", type=int, nargs=2, default=(1, 3), metavar=("MIN", "MAX"),
                        help="digits per canvas (default: 1 3)")
    parser.add_argument("--pretrain-epochs", type=int, default=5, help=pretrain_help)
    parser.add_argument("--epochs", type=int, default=15, help=f"{model} training epochs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (cosine-annealed)")
