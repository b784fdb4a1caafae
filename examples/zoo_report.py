"""The comparison the notes ask for: which architecture gives the most accuracy per parameter?

Trains every small-input model in the registry on the bundled MNIST sample with ONE shared recipe
and writes ``docs/zoo.md`` (parameters, multiply-accumulates, training time per epoch, inference
time per image, test accuracy) and ``docs/zoo_accuracy_vs_params.png``. Then the data-size sweep:
the notes claim a ViT needs more data than a CNN, so a ResNet and a ViT of similar size are trained
on growing subsets and ``docs/zoo_data_sweep.png`` shows test accuracy against training-set size.

Run: ``.venv/bin/python examples/zoo_report.py [--epochs 3] [--train-size 4000] [--models a,b]``
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

import deepnum as dn
from deepnum import nn
from deepnum.data import DataLoader, TensorDataset
from deepnum.data.datasets import load_dataset
from deepnum.models import create_model, list_models, model_info
from deepnum.train import evaluate, fit, summary

DOCS = Path(__file__).resolve().parent.parent / "docs"


def mnist_arrays(split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The bundled MNIST split as arrays: images (N, 1, size, size) in [0, 1], zero-padded from 28."""
    data = load_dataset("mnist", split)
    x = np.stack([np.asarray(data[i][0].numpy()) for i in range(len(data))]).astype(np.float32)
    y = np.array([int(data[i][1]) for i in range(len(data))], dtype=np.int64)
    if size != 28:
        pad = (size - 28) // 2
        x = np.pad(x, ((0, 0), (0, 0), (pad, size - 28 - pad), (pad, size - 28 - pad)))
    return x, y


def input_size_for(model: nn.Module) -> int:
    """28 if the model takes MNIST as is, else 32 (the CIFAR-sized variants)."""
    for size in (28, 32):
        try:
            with dn.no_grad():
                model.eval()(dn.zeros(1, 1, size, size))
            return size
        except (ValueError, RuntimeError):
            continue
    raise RuntimeError(f"{type(model).__name__} takes neither 28 nor 32 px single-channel input")


def train_one(name: str, epochs: int, train_size: int, seed: int = 0, model_kwargs: dict | None = None) -> dict:
    """The shared recipe: AdamW (lr 2e-3, wd 0.01), cosine schedule, batch 64, no augmentation."""
    dn.manual_seed(seed)
    model = create_model(name, num_classes=10, in_chans=1, **(model_kwargs or {}))
    size = input_size_for(model)
    x, y = mnist_arrays("train", size)
    xt, yt = mnist_arrays("test", size)
    order = np.random.default_rng(seed).permutation(len(x))[:train_size]
    generator = dn.Generator().manual_seed(seed)
    train_loader = DataLoader(TensorDataset(dn.tensor(x[order]), dn.tensor(y[order])), batch_size=64,
                              shuffle=True, generator=generator)
    test_loader = DataLoader(TensorDataset(dn.tensor(xt), dn.tensor(yt)), batch_size=256)
    optimizer = dn.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    steps = epochs * len(train_loader)
    scheduler = dn.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    start = time.perf_counter()
    fit(model, train_loader, epochs=epochs, optimizer=optimizer, loss_fn=nn.CrossEntropyLoss(),
        scheduler=scheduler, scheduler_interval="step", progress=False)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = evaluate(model, test_loader, nn.CrossEntropyLoss())
    infer_ms = (time.perf_counter() - start) / len(xt) * 1e3
    stats = summary(model, (1, size, size), verbose=False)
    return {"name": name, "family": model_info(name).family, "params": stats.total_params,
            "macs": stats.total_macs, "input": size, "epoch_s": train_seconds / epochs,
            "infer_ms": infer_ms, "accuracy": result["accuracy"], "train_size": train_size}


def plot_accuracy_vs_params(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        ax.scatter(r["params"], r["accuracy"] * 100)
        ax.annotate(r["name"], (r["params"], r["accuracy"] * 100), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel("MNIST test accuracy (%)")
    ax.set_title("Small-input zoo on the bundled MNIST (one shared recipe)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_sweep(sweep: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, rows in sweep.items():
        ax.plot([r["train_size"] for r in rows], [r["accuracy"] * 100 for r in rows], marker="o",
                label=f"{name} ({rows[0]['params']:,} params)")
    ax.set_xscale("log")
    ax.set_xlabel("training images (log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs training-set size: CNN vs ViT")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(rows: list[dict], sweep: dict[str, list[dict]], args: argparse.Namespace) -> None:
    lines = [
        "# The model zoo on MNIST: accuracy per parameter",
        "",
        f"Generated by `examples/zoo_report.py --epochs {args.epochs} --train-size {args.train_size}` on the "
        "2-core CI machine (numbers are measured, not copied). Recipe shared by every model: the bundled MNIST "
        f"sample ({args.train_size} training images, the 1,000 test images), zero-padded to 32 px for the "
        "CIFAR-sized variants, AdamW lr 2e-3, weight decay 0.01, cosine schedule per step, batch 64, "
        f"{args.epochs} epochs, no augmentation, seed 0. MACs are per image (Linear and convolutions).",
        "",
        "| model | family | params | MACs | input | train s/epoch | inference ms/image | test accuracy |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: r["params"]):
        lines.append(f"| {r['name']} | {r['family']} | {r['params']:,} | {r['macs']:,} | {r['input']} | "
                     f"{r['epoch_s']:.1f} | {r['infer_ms']:.3f} | {r['accuracy'] * 100:.1f}% |")
    lines += ["", "![accuracy against parameters](zoo_accuracy_vs_params.png)", ""]
    if sweep:
        lines += ["## Does a ViT need more data than a CNN?", "",
                  f"Same recipe, growing random subsets of the training images, each trained for "
                  f"{args.sweep_steps} optimizer steps (epochs = steps / batches per epoch), so that a smaller "
                  "set is not also trained for fewer steps:", "",
                  "| training images | " + " | ".join(sweep) + " |",
                  "|---:|" + "---:|" * len(sweep)]
        sizes = [r["train_size"] for r in next(iter(sweep.values()))]
        for i, n in enumerate(sizes):
            lines.append(f"| {n} | " + " | ".join(f"{sweep[m][i]['accuracy'] * 100:.1f}%" for m in sweep) + " |")
        lines += ["", "![accuracy against training-set size](zoo_data_sweep.png)", ""]
    (DOCS / "zoo.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--models", default="", help="comma-separated names (default: every small-input model)")
    parser.add_argument("--sweep", default="resnet20,vit_tiny_patch4_32", help="CNN and ViT for the data sweep")
    parser.add_argument("--sweep-sizes", default="250,500,1000,2000,4000")
    parser.add_argument("--sweep-steps", type=int, default=300,
                        help="optimizer steps per sweep run, whatever the data size (so small sets are not also "
                             "trained for fewer steps)")
    parser.add_argument("--sweep-only", action="store_true", help="reuse the table of docs/zoo_results.json")
    args = parser.parse_args()
    results = DOCS / "zoo_results.json"
    if args.sweep_only:
        rows = json.loads(results.read_text())
    else:
        names = [n for n in args.models.split(",") if n] or [n for n in list_models() if model_info(n).small_input]
        rows = []
        for name in names:
            row = train_one(name, args.epochs, args.train_size)
            print(f"{name:28s} params {row['params']:>10,}  acc {row['accuracy'] * 100:5.1f}%  "
                  f"{row['epoch_s']:.1f} s/epoch", flush=True)
            rows.append(row)
        results.write_text(json.dumps(rows, indent=1))
    plot_accuracy_vs_params(rows, DOCS / "zoo_accuracy_vs_params.png")
    sweep: dict[str, list[dict]] = {}
    for name in [n for n in args.sweep.split(",") if n in list_models()]:
        sweep[name] = [train_one(name, math.ceil(args.sweep_steps / math.ceil(n / 64)), n)
                       for n in map(int, args.sweep_sizes.split(","))]
        print(name, [f"{r['train_size']}: {r['accuracy']:.3f}" for r in sweep[name]], flush=True)
    if sweep:
        plot_sweep(sweep, DOCS / "zoo_data_sweep.png")
    write_report(rows, sweep, args)
    print(f"wrote {DOCS / 'zoo.md'}")


if __name__ == "__main__":
    main()
