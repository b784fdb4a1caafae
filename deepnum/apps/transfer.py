"""``deepnum transfer``: transfer learning on MNIST. A LeNet-5 learns digits 0-4; then digits 5-9 are
learned from 20 labelled images per class in three ways, and their test-accuracy curves compared:

- **scratch**: a fresh LeNet-5, every weight trained;
- **frozen**: the pre-trained convolutions (``features``) with a new classifier head; the body is
  frozen with ``requires_grad_(False)`` and only the head is trained (the pre-trained layers as a
  fixed feature extractor);
- **fine-tune**: the pre-trained convolutions with a new head, every weight trained, the body with
  a smaller learning rate than the head (two optimizer parameter groups).

Features learned on one task transfer to a related one, and matter most when the new task has few
labels (J. Yosinski, J. Clune, Y. Bengio, H. Lipson, "How transferable are features in deep neural
networks?", NeurIPS 2014). ``--pretrained FILE`` skips the pre-training and loads a LeNet-5 state
dict saved elsewhere: a PyTorch ``.pt``/``.pth`` (``torch.save(model.state_dict(), path)`` of the
torch twin of ``deepnum.models.lenet5``; read without torch and without running code from the file)
or a ``.safetensors`` file, through ``deepnum.load_torch_checkpoint``.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np

HELP = "transfer learning on MNIST: pre-train on digits 0-4, learn 5-9 from 20 labels per class"
DESCRIPTION = __doc__.split("\n\n", 1)[1] if __doc__ else HELP
METHODS = ("scratch", "frozen", "fine-tune")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pretrained", metavar="FILE", default=None,
                        help="LeNet-5 weights (.pt/.pth from torch.save, or .safetensors) instead of pre-training")
    parser.add_argument("--pretrained-classes", type=int, default=5,
                        help="outputs of the --pretrained network's last layer (default 5: digits 0-4)")
    parser.add_argument("--pretrain-epochs", type=int, default=15, help="epochs on digits 0-4 (default 15)")
    parser.add_argument("--pretrain-size", type=int, default=2000, help="images of digits 0-4 (default all 2,000)")
    parser.add_argument("--shots", type=int, default=20, help="labelled images per class of 5-9 (default 20)")
    parser.add_argument("--epochs", type=int, default=15, help="epochs on the few labels (default 15)")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate of the head / scratch model")
    parser.add_argument("--body-lr-scale", type=float, default=0.1,
                        help="fine-tuning: body learning rate = lr × this (default 0.1)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds (label draws and heads) averaged (default 5)")
    parser.add_argument("--test-size", type=int, default=500, help="test images of digits 5-9 (default all 500)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--output", default="runs/transfer", help="output folder (default runs/transfer)")


def digit_split(split: str, digits: range, size: int | None, seed: int, shots: int | None = None) -> Any:
    """(images, labels - digits.start) of ``split`` restricted to ``digits``: ``shots`` per class
    drawn with ``seed``, else the first ``size`` of a fixed shuffle (all when None)."""
    import deepnum as dn
    from deepnum.data.datasets.mnist import mnist_arrays

    x, y = mnist_arrays(split)
    rng = np.random.default_rng(seed)
    if shots is not None:
        idx = np.concatenate([rng.choice(np.flatnonzero(y == d), shots, replace=False) for d in digits])
    else:
        idx = np.flatnonzero((y >= digits.start) & (y < digits.stop))
        idx = np.sort(np.random.default_rng(1234).permutation(idx)[:size])
    return dn.tensor(np.ascontiguousarray(x[idx])), dn.tensor(np.ascontiguousarray(y[idx] - digits.start))


def loader(data: Any, batch_size: int, seed: int | None) -> Any:
    """A DataLoader over (images, labels), shuffled by a generator seeded with ``seed`` (None: in order)."""
    import deepnum as dn
    from deepnum.data import DataLoader, TensorDataset

    gen = None if seed is None else dn.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(*data), batch_size=batch_size, shuffle=seed is not None, generator=gen)


def pretrain(args: argparse.Namespace) -> dict[str, Any]:
    """The body's starting weights: a LeNet-5 trained on digits 0-4, or the ``--pretrained`` file."""
    import deepnum as dn
    from deepnum.models import create_model
    from deepnum.train import evaluate, fit

    dn.manual_seed(args.seed)
    if args.pretrained:
        model = create_model("lenet5", num_classes=args.pretrained_classes)
        dn.load_torch_checkpoint(model, args.pretrained)
        print(f"loaded {args.pretrained} into lenet5(num_classes={args.pretrained_classes})")
    else:
        model = create_model("lenet5", num_classes=5)
        train = loader(digit_split("train", range(5), args.pretrain_size, args.seed), 64, args.seed)
        fit(model, train, epochs=args.pretrain_epochs, optimizer=dn.optim.Adam(model.parameters(), lr=1e-3),
            loss_fn=dn.nn.CrossEntropyLoss(), progress=False)
        dn.save(model.state_dict(), os.path.join(args.output, "pretrained_0-4.safetensors"))
    if model.num_classes == 5:
        acc = evaluate(model, loader(digit_split("test", range(5), None, 0), 500, None))["accuracy"]
        print(f"pre-trained network: test accuracy on digits 0-4 {acc:.4f}")
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def build(method: str, body: dict[str, Any], seed: int, args: argparse.Namespace) -> tuple[Any, Any]:
    """The model and optimizer of one method. The body is ``features`` (the convolutions), the head the
    ``classifier`` (three Linear layers), freshly initialised in all three methods (the same seeded
    initial head, so they differ only in the body and how it is trained)."""
    import deepnum as dn
    from deepnum.models import create_model

    dn.manual_seed(seed)
    model = create_model("lenet5", num_classes=5)
    if method != "scratch":
        model.features.load_state_dict({k[len("features."):]: v for k, v in body.items() if k.startswith("features.")})
    if method == "scratch":
        opt = dn.optim.Adam(model.parameters(), lr=args.lr)
    elif method == "frozen":
        model.features.requires_grad_(False)
        opt = dn.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    else:
        opt = dn.optim.Adam([{"params": list(model.features.parameters()), "lr": args.lr * args.body_lr_scale},
                             {"params": list(model.classifier.parameters())}], lr=args.lr)
    return model, opt


def learning_curves(body: dict[str, Any], args: argparse.Namespace) -> dict[str, list[list[float]]]:
    """Test accuracy on digits 5-9 after each epoch, per method and seed (epoch 0: before training)."""
    import deepnum as dn
    from deepnum.train import evaluate, fit

    test = loader(digit_split("test", range(5, 10), args.test_size, 0), 500, None)
    curves: dict[str, list[list[float]]] = {m: [] for m in METHODS}
    for s in range(args.seeds):
        seed = args.seed + s
        few = digit_split("train", range(5, 10), None, seed, shots=args.shots)
        for method in METHODS:
            model, opt = build(method, body, seed, args)
            start = evaluate(model, test)["accuracy"]
            hist = fit(model, loader(few, 20, seed), epochs=args.epochs, optimizer=opt,
                       loss_fn=dn.nn.CrossEntropyLoss(), val_loader=test, progress=False)
            curves[method].append([start, *hist.history["val_accuracy"]])
        print(f"seed {seed}: " + ", ".join(f"{m} {curves[m][-1][-1]:.4f}" for m in METHODS))
    return curves


def plot_curves(curves: dict[str, list[list[float]]], args: argparse.Namespace, path: str) -> None:
    from deepnum.train.plots import _figure

    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    for method, runs in curves.items():
        arr = np.array(runs)
        epochs = np.arange(arr.shape[1])
        mu, sd = arr.mean(0), arr.std(0)
        ax.plot(epochs, mu, "-o", markersize=2.5, label=f"{method}: {mu[-1]:.3f} ± {sd[-1]:.3f}")
        ax.fill_between(epochs, mu - sd, mu + sd, alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy, digits 5-9")
    source = os.path.basename(args.pretrained) if args.pretrained else "deepnum, digits 0-4"
    ax.set_title(f"{args.shots} labels per class, mean ± std over {len(next(iter(curves.values())))} seeds "
                 f"(body: {source})", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)


def run(args: argparse.Namespace) -> int:
    if min(args.epochs, args.seeds, args.shots, args.pretrain_epochs) < 1 or args.body_lr_scale <= 0:
        raise SystemExit("deepnum transfer: --epochs, --seeds, --shots, --pretrain-epochs must be >= 1 and "
                         "--body-lr-scale > 0")
    os.makedirs(args.output, exist_ok=True)
    start = time.perf_counter()
    body = pretrain(args)
    curves = learning_curves(body, args)
    final = {m: np.array([c[-1] for c in runs]) for m, runs in curves.items()}
    summary = {m: {"mean": float(v.mean()), "std": float(v.std()), "per_seed": v.tolist(),
                   "curve_mean": float(np.mean([c[1:] for c in curves[m]]))} for m, v in final.items()}
    for m, s in summary.items():
        print(f"{m:9s}: test accuracy on 5-9 after {args.epochs} epochs {s['mean']:.4f} ± {s['std']:.4f} "
              f"(mean over the epochs {s['curve_mean']:.4f})")
    plot_curves(curves, args, os.path.join(args.output, "transfer.png"))
    result = {"final_accuracy": summary, "curves": curves, "pretrained": args.pretrained,
              "seeds": [args.seed + s for s in range(args.seeds)],
              "fine_tune_beats_scratch": summary["fine-tune"]["mean"] > summary["scratch"]["mean"],
              "wall_s": time.perf_counter() - start}
    with open(os.path.join(args.output, "results.json"), "w") as fh:
        json.dump(result, fh, indent=1)
    print(f"wrote {args.output}/results.json and transfer.png ({result['wall_s']:.0f} s)")
    return 0
