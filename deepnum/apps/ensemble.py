"""``deepnum ensemble``: an ensemble of independently trained LeNet-5s on MNIST beats its best member,
and a learning-rate-decay ablation (constant vs step vs cosine) on the same task.

Ensembles average the predictions of networks that differ only in their random initialisation and
data order (Hansen & Salamon 1990; Lakshminarayanan et al. 2017, "deep ensembles"): their errors are
partly independent, so the averaged probabilities are right more often than any one member.
``deepnum.train.Ensemble`` does the averaging. The ablation trains the same network with SGD under
three learning-rate schedules (``optim.lr_scheduler``: none, ``StepLR``, ``CosineAnnealingLR``;
Loshchilov & Hutter 2017 for the cosine) and plots the test curves, averaged over seeds.
Data: the bundled MNIST sample (4,000 training, 1,000 test images).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np

HELP = "an ensemble of LeNet-5s beats its best member on MNIST; learning-rate decay ablation"
DESCRIPTION = __doc__.split("\n\n", 1)[1] if __doc__ else HELP
SCHEDULES = ("constant", "step", "cosine")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--members", type=int, default=5, help="networks in the ensemble (default 5)")
    parser.add_argument("--epochs", type=int, default=8, help="training epochs of each member (default 8)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate of the members (default 1e-3)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-size", type=int, default=4000, help="training images used (default all 4,000)")
    parser.add_argument("--test-size", type=int, default=1000, help="test images used (default all 1,000)")
    parser.add_argument("--schedule-epochs", type=int, default=15, help="epochs of each ablation run (default 15)")
    parser.add_argument("--schedule-seeds", type=int, default=3, help="seeds per schedule (default 3; 0 skips it)")
    parser.add_argument("--schedule-lr", type=float, default=0.05, help="SGD (momentum 0.9) peak rate (default 0.05)")
    parser.add_argument("--seed", type=int, default=0, help="first seed; member i uses seed + i (default 0)")
    parser.add_argument("--output", default="runs/ensemble", help="output folder (default runs/ensemble)")


def mnist_loaders(train_size: int, test_size: int, batch_size: int, seed: int) -> tuple[Any, Any]:
    """Seeded DataLoaders over the first ``train_size``/``test_size`` images of the bundled MNIST
    (taken class-balanced: the splits are grouped by class, so a random subset is drawn)."""
    import deepnum as dn
    from deepnum.data import DataLoader, TensorDataset
    from deepnum.data.datasets.mnist import mnist_arrays

    loaders = []
    for split, size in (("train", train_size), ("test", test_size)):
        x, y = mnist_arrays(split)
        if not 1 <= size <= len(y):
            raise ValueError(f"deepnum ensemble: --{split}-size must be in 1..{len(y)}, got {size}")
        idx = np.sort(np.random.default_rng(1234).permutation(len(y))[:size])
        ds = TensorDataset(dn.tensor(np.ascontiguousarray(x[idx])), dn.tensor(np.ascontiguousarray(y[idx])))
        shuffle = split == "train"
        gen = dn.Generator().manual_seed(seed) if shuffle else None
        loaders.append(DataLoader(ds, batch_size=batch_size if shuffle else 500, shuffle=shuffle, generator=gen))
    return loaders[0], loaders[1]


def train_members(args: argparse.Namespace) -> tuple[list[Any], list[float], list[float], Any]:
    """Train ``args.members`` LeNet-5s, member i with seed ``args.seed + i`` (weights and data order)."""
    import deepnum as dn
    from deepnum.models import create_model
    from deepnum.train import evaluate, fit

    models, accs, losses, test = [], [], [], None
    for i in range(args.members):
        seed = args.seed + i
        train, test = mnist_loaders(args.train_size, args.test_size, args.batch_size, seed)
        dn.manual_seed(seed)
        model = create_model("lenet5")
        fit(model, train, epochs=args.epochs, optimizer=dn.optim.Adam(model.parameters(), lr=args.lr),
            loss_fn=dn.nn.CrossEntropyLoss(), progress=False)
        scores = evaluate(model, test, loss_fn=dn.nn.CrossEntropyLoss())
        accs.append(scores["accuracy"])
        losses.append(scores["loss"])
        models.append(model)
        print(f"member {i} (seed {seed}): test accuracy {accs[-1]:.4f}, loss {losses[-1]:.4f}")
    return models, accs, losses, test


def schedule_run(schedule: str, seed: int, args: argparse.Namespace) -> dict[str, list[float]]:
    """One SGD run of LeNet-5 under ``schedule``; returns the per-epoch test loss/accuracy and rate."""
    import deepnum as dn
    from deepnum.models import create_model
    from deepnum.optim import lr_scheduler
    from deepnum.train import fit
    from deepnum.train.callbacks import LambdaCallback

    train, test = mnist_loaders(args.train_size, args.test_size, args.batch_size, seed)
    dn.manual_seed(seed)
    model = create_model("lenet5")
    opt = dn.optim.SGD(model.parameters(), lr=args.schedule_lr, momentum=0.9)
    epochs = args.schedule_epochs
    sched = {"constant": None,
             "step": lr_scheduler.StepLR(opt, step_size=max(1, epochs // 3), gamma=0.1),
             "cosine": lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)}[schedule]
    rates: list[float] = []
    record = LambdaCallback(on_epoch_begin=lambda epoch, logs=None: rates.append(opt.param_groups[0]["lr"]))
    hist = fit(model, train, epochs=epochs, optimizer=opt, loss_fn=dn.nn.CrossEntropyLoss(), val_loader=test,
               scheduler=sched, callbacks=[record], progress=False)
    return {"val_loss": list(hist.history["val_loss"]), "val_accuracy": list(hist.history["val_accuracy"]),
            "lr": rates}


def plot_members(accs: list[float], ensemble_acc: float, logit_acc: float, path: str) -> None:
    """Bar chart of the members' and the ensembles' test accuracies."""
    from deepnum.train.plots import _figure

    fig = _figure(6.0, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    names = [f"member {i}" for i in range(len(accs))] + ["ensemble\n(probs)", "ensemble\n(logits)"]
    values = [*accs, ensemble_acc, logit_acc]
    ax.bar(names, values, color=["tab:blue"] * len(accs) + ["tab:red", "tab:orange"])
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylim(min(values) - 0.02, min(1.0, max(values) + 0.01))
    ax.set_ylabel("test accuracy (1,000 images)")
    ax.set_title("LeNet-5 members vs their ensemble, MNIST")
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)


def plot_schedules(runs: dict[str, list[dict[str, list[float]]]], path: str) -> None:
    """Learning rate, test loss and test accuracy per epoch for each schedule, mean ± std over seeds."""
    from deepnum.train.plots import _figure

    fig = _figure(13.5, 3.6)
    for col, (key, label) in enumerate((("lr", "learning rate"), ("val_loss", "test loss"),
                                        ("val_accuracy", "test accuracy"))):
        ax = fig.add_subplot(1, 3, col + 1)
        for name, seeds in runs.items():
            curves = np.array([r[key] for r in seeds])
            epochs = np.arange(1, curves.shape[1] + 1)
            mu, sd = curves.mean(0), curves.std(0)
            ax.plot(epochs, mu, "-o", markersize=3, label=name)
            ax.fill_between(epochs, mu - sd, mu + sd, alpha=0.2)
        finals = [np.mean([r[key][-1] for r in seeds]) for seeds in runs.values()]
        if key == "val_accuracy":
            ax.set_ylim(max(0.0, min(finals) - 0.04), min(1.0, max(finals) + 0.01))
        elif key == "val_loss":
            ax.set_ylim(0.0, 3 * max(finals))
        ax.set_xlabel("epoch")
        ax.set_title(f"{label} (mean ± std over {len(next(iter(runs.values())))} seeds)", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)


def run_schedules(args: argparse.Namespace) -> dict[str, Any]:
    """Every schedule with ``args.schedule_seeds`` seeds; prints and returns the final numbers and curves."""
    runs = {name: [schedule_run(name, args.seed + s, args) for s in range(args.schedule_seeds)]
            for name in SCHEDULES}
    summary = {}
    for name, seeds in runs.items():
        final = np.array([r["val_accuracy"][-1] for r in seeds])
        loss = np.array([r["val_loss"][-1] for r in seeds])
        summary[name] = {"final_accuracy_mean": float(final.mean()), "final_accuracy_std": float(final.std()),
                         "final_loss_mean": float(loss.mean()), "per_seed_accuracy": final.tolist()}
        print(f"schedule {name:8s}: final test accuracy {final.mean():.4f} ± {final.std():.4f}, "
              f"test loss {loss.mean():.4f}")
    plot_schedules(runs, os.path.join(args.output, "schedules.png"))
    return {"summary": summary, "curves": runs}


def run(args: argparse.Namespace) -> int:
    from deepnum.nn import CrossEntropyLoss
    from deepnum.train import Ensemble, evaluate

    if args.members < 2 or args.epochs < 1 or args.schedule_seeds < 0 or args.schedule_epochs < 1:
        raise SystemExit("deepnum ensemble: need --members >= 2, --epochs >= 1, --schedule-epochs >= 1, "
                         "--schedule-seeds >= 0")
    os.makedirs(args.output, exist_ok=True)
    start = time.perf_counter()
    models, accs, losses, test = train_members(args)
    scores = evaluate(Ensemble(models), test, loss_fn=CrossEntropyLoss())
    ens, ens_loss = scores["accuracy"], scores["loss"]
    ens_logits = evaluate(Ensemble(models, average="logits"), test)["accuracy"]
    print(f"ensemble of {len(models)}: test accuracy {ens:.4f} (probability average), {ens_logits:.4f} "
          f"(logit average); best member {max(accs):.4f}, mean member {np.mean(accs):.4f}; test loss "
          f"{ens_loss:.4f} (best member {min(losses):.4f})")
    plot_members(accs, ens, ens_logits, os.path.join(args.output, "members.png"))
    result: dict[str, Any] = {"member_accuracy": accs, "member_loss": losses, "ensemble_accuracy": ens,
                              "ensemble_loss": ens_loss, "ensemble_logits_accuracy": ens_logits,
                              "best_member_accuracy": max(accs), "beats_best_member": ens > max(accs),
                              "seeds": [args.seed + i for i in range(args.members)]}
    if args.schedule_seeds:
        result["schedules"] = run_schedules(args)
    result["wall_s"] = time.perf_counter() - start
    with open(os.path.join(args.output, "results.json"), "w") as fh:
        json.dump(result, fh, indent=1)
    print(f"wrote {args.output}/results.json, members.png" + (", schedules.png" if args.schedule_seeds else "")
          + f" ({result['wall_s']:.0f} s)")
    return 0
