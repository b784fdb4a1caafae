"""Time-series classification, issue item 4: five small models on two real data sets.

Trains ``conv1d_net``, ``se_conv1d_net``, ``gru_classifier``, ``lstm_classifier`` and
``transformer_classifier`` (``deepnum.models.timeseries``) on MNIST-1D (4,000 train / 1,000 test
series of 1 × 40, 10 classes) and on the UEA BasicMotions activity series (smart-watch accelerometer
and gyroscope, 6 × 100, 4 activities, 40 / 40), each with several fixed seeds, and reports the test
accuracy (mean ± standard deviation over the seeds), the parameter count and the training time per
run. Writes ``docs/sequences_results.json`` and prints the Markdown table for ``docs/sequences.md``.

Recipe (per data set, the same for every model apart from its learning rate): AdamW (weight decay
0.01), one-cycle schedule stepped per batch, cross-entropy, no augmentation, the archive's own
train/test split; nothing is tuned on the test split.

Run: ``OPENBLAS_NUM_THREADS=1 .venv/bin/python examples/sequences_report.py [--seeds 0,1,2] [--quick]``
(``--quick``: one seed, 2 epochs, 512 MNIST-1D training series, writes nothing unless ``--output``).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

import deepnum as dn
from deepnum import nn
from deepnum.data import DataLoader, Subset
from deepnum.data.datasets import load_dataset
from deepnum.models import create_model, model_info
from deepnum.models import timeseries as _timeseries  # noqa: F401  (registers the models)
from deepnum.train import evaluate, fit

DOCS = Path(__file__).resolve().parent.parent / "docs"
MODELS = ("conv1d_net", "se_conv1d_net", "gru_classifier", "lstm_classifier", "transformer_classifier")
DATASETS = ("mnist1d", "basic_motions")
# Per data set: epochs and batch size (BasicMotions has 40 training series: small batches, more epochs).
RECIPES: dict[str, dict[str, int]] = {
    "mnist1d": {"epochs": 15, "batch_size": 64},
    "basic_motions": {"epochs": 40, "batch_size": 8},
}
# Peak learning rate of the one-cycle schedule, per model.
LEARNING_RATES = {"conv1d_net": 1e-2, "se_conv1d_net": 1e-2, "gru_classifier": 1e-2, "lstm_classifier": 1e-2,
                  "transformer_classifier": 5e-3}


def train_one(model_name: str, dataset: str, seed: int, epochs: int, limit: int | None = None) -> dict[str, Any]:
    """Train one model with one seed; returns its test accuracy, parameter count and training time."""
    train_set, test_set = load_dataset(dataset, "train"), load_dataset(dataset, "test")
    in_chans, num_classes = train_set.data.shape[1], len(train_set.classes)
    if limit is not None and limit < len(train_set):
        train_set = Subset(train_set, np.sort(np.random.default_rng(seed).permutation(len(train_set))[:limit]).tolist())
    dn.manual_seed(seed)
    model = create_model(model_name, num_classes=num_classes, in_chans=in_chans)
    batch_size, lr = RECIPES[dataset]["batch_size"], LEARNING_RATES[model_name]
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True,
                              generator=dn.Generator().manual_seed(seed + 1))
    test_loader = DataLoader(test_set, batch_size=500)
    optimizer = dn.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    scheduler = dn.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * len(train_loader))
    start = time.perf_counter()
    fit(model, train_loader, epochs=epochs, optimizer=optimizer, loss_fn=nn.CrossEntropyLoss(), scheduler=scheduler,
        scheduler_interval="step", progress=False)
    seconds = time.perf_counter() - start
    result = evaluate(model, test_loader, loss_fn=nn.CrossEntropyLoss())
    return {"seed": seed, "accuracy": float(result["accuracy"]), "test_loss": float(result["loss"]),
            "seconds": round(seconds, 3), "params": sum(p.numel() for p in model.parameters()),
            "lr": lr, "epochs": epochs, "batch_size": batch_size, "train_size": len(train_set)}


def summarise(model_name: str, dataset: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    accs, times = [r["accuracy"] for r in runs], [r["seconds"] for r in runs]
    return {"model": model_name, "family": model_info(model_name).family, "paper": model_info(model_name).paper,
            "dataset": dataset, "params": runs[0]["params"], "epochs": runs[0]["epochs"],
            "batch_size": runs[0]["batch_size"], "lr": runs[0]["lr"], "train_size": runs[0]["train_size"],
            "accuracy_mean": statistics.fmean(accs), "accuracy_std": statistics.pstdev(accs),
            "accuracy_min": min(accs), "accuracy_max": max(accs), "seconds_mean": statistics.fmean(times),
            "runs": runs}


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| model | data set | test accuracy (%) | parameters | training time per run (s) |",
             "|---|---|---:|---:|---:|"]
    for r in rows:
        spread = f" ± {100 * r['accuracy_std']:.1f}" if len(r["runs"]) > 1 else ""
        lines.append(f"| {r['model']} | {r['dataset']} | {100 * r['accuracy_mean']:.1f}{spread} | {r['params']:,} | "
                     f"{r['seconds_mean']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated model names")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated data set names")
    parser.add_argument("--epochs", type=int, default=None, help="override every recipe's epochs")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 2 epochs, 512 MNIST-1D series")
    parser.add_argument("--output", type=Path, default=None,
                        help="JSON to write (default docs/sequences_results.json; --quick writes none by default)")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")][:1 if args.quick else None]
    models, datasets = args.models.split(","), args.datasets.split(",")
    unknown = sorted(set(models) - set(MODELS)) + sorted(set(datasets) - set(DATASETS))
    if unknown:
        parser.error(f"unknown model or data set: {', '.join(unknown)}; models: {', '.join(MODELS)}; "
                     f"data sets: {', '.join(DATASETS)}")
    rows = []
    for dataset in datasets:
        epochs = args.epochs or (2 if args.quick else RECIPES[dataset]["epochs"])
        limit = 512 if args.quick else None
        for model_name in models:
            runs = [train_one(model_name, dataset, seed, epochs, limit) for seed in seeds]
            rows.append(summarise(model_name, dataset, runs))
            r = rows[-1]
            print(f"{model_name:24s} {dataset:14s} acc {100 * r['accuracy_mean']:5.1f} ± {100 * r['accuracy_std']:.1f}"
                  f"  params {r['params']:7,d}  {r['seconds_mean']:6.1f} s/run", flush=True)
    output = args.output if args.output is not None else (None if args.quick else DOCS / "sequences_results.json")
    if output is not None:
        meta = {"deepnum": getattr(dn, "__version__", "?"), "numpy": np.__version__,
                "python": platform.python_version(),
                "machine": platform.machine(), "seeds": seeds, "quick": args.quick,
                "recipe": "AdamW (weight decay 0.01), one-cycle per batch, cross-entropy, no augmentation",
                "time": "training seconds per run (fit only, single process)"}
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
        print(f"wrote {output}")
    print()
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
