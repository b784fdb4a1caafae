"""``deepnum gan``: a DCGAN (Radford, Metz and Chintala 2016) that learns to draw MNIST digits.

Goodfellow et al. 2014 ("Generative adversarial nets") set two networks against each other: a
discriminator D learns to tell real images from generated ones, and a generator G learns to map
noise z ~ N(0, I) to images that D takes for real. Each step here is the paper's Algorithm 1 with
one D update per G update: D descends the binary cross-entropy of "real = 1" on a real batch plus
"fake = 0" on G(z) (G held fixed with ``detach``); then G descends the cross-entropy of "fake = 1"
(the non-saturating loss of section 3, which gives G strong gradients while D still wins). Adam with
lr 2e-4 and beta1 = 0.5, as the DCGAN paper recommends; batch 32; D's target for real digits is 0.9
(one-sided label smoothing, --smooth 0.1). The architecture is in ``_gan_models.py``.

Every epoch the generator (eval mode) draws a grid from the same 64 noise vectors
(``samples_epoch_NN.png``, so the same digit can be watched sharpen) and a LeNet-5 judge scores
1,000 samples (``_gan_judge.py``: mean confidence and how evenly the predicted classes spread).
The judge is trained at the start on the 4,000 real training digits, or loaded with ``--judge``
from a run of ``deepnum train``; the same scores on the 1,000 real test digits are the reference."""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "run", "train_gan"]

HELP = "train a DCGAN on MNIST digits and judge its samples with a LeNet"
DESCRIPTION = __doc__.split("\n\n", 1)[1] + """

Outputs in --output: samples_epoch_NN.png (fixed-noise grids), progress.png (four of them side
by side), curves.png (losses and judge scores per epoch), generator.safetensors,
discriminator.safetensors, judge.safetensors (when trained here) and metrics.json. Target of the
default run: judge confidence >= 0.8 and at least 8 of the 10 classes with >= 5% of the samples
(docs/apps/gan.md)."""

TARGET_CONFIDENCE, TARGET_CLASSES = 0.8, 8


def add_arguments(p: argparse.ArgumentParser) -> None:
    from deepnum._cli_common import _positive_float, _positive_int

    p.add_argument("--epochs", type=_positive_int, default=25, help="passes over the training digits (default 25)")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="images per step (default 32)")
    p.add_argument("--nz", type=_positive_int, default=64, help="noise dimension (default 64)")
    p.add_argument("--ngf", type=_positive_int, default=32, help="generator width (default 32)")
    p.add_argument("--ndf", type=_positive_int, default=32, help="discriminator width (default 32)")
    p.add_argument("--lr", type=_positive_float, default=2e-4, help="Adam learning rate of both nets (default 2e-4)")
    p.add_argument("--beta1", type=float, default=0.5, help="Adam beta1 (default 0.5, as the DCGAN paper)")
    p.add_argument("--smooth", type=float, default=0.1, help="one-sided label smoothing: D's target for real "
                                                              "images is 1 - SMOOTH (default 0.1)")
    p.add_argument("--judge", metavar="RUN", help="a classifier from `deepnum train` (run directory or weights) "
                                                  "to judge with (default: train a LeNet-5 here)")
    p.add_argument("--judge-epochs", type=_positive_int, default=8, help="epochs of the judge trained here (default 8)")
    p.add_argument("--samples", type=_positive_int, default=1000, help="generated samples judged (default 1000)")
    p.add_argument("--limit", type=_positive_int, help="train on a random subset of this many digits (quick runs)")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same result (default 0)")
    p.add_argument("--output", metavar="DIR", default="runs/gan", help="output directory (default runs/gan)")


def _real_images(limit: int | None, seed: int) -> np.ndarray:
    """The MNIST training digits scaled to [-1, 1] (the generator's Tanh range)."""
    from deepnum.data.datasets import load_dataset

    images = load_dataset("mnist", "train").data
    if limit is not None:
        images = images[np.sort(np.random.default_rng(seed).permutation(len(images))[:limit])]
    return (images * np.float32(2.0) - np.float32(1.0)).astype(np.float32)


def _generate(net_g: Any, z: Any) -> np.ndarray:
    """Samples of the generator ``net_g`` (eval mode) for noise ``z``, as images in [0, 1]."""
    from deepnum.autograd.grad_mode import no_grad

    net_g.eval()
    with no_grad():
        images = net_g(z).numpy()
    net_g.train()
    return (images + np.float32(1.0)) * np.float32(0.5)


def _gan_step(net_g: Any, net_d: Any, opt_g: Any, opt_d: Any, real: Any, z: Any,
              real_label: float = 1.0) -> tuple[float, float, float, float]:
    """One D update then one G update; returns (loss_D, loss_G, mean D(x), mean D(G(z))).
    ``real_label`` < 1 is one-sided label smoothing (Salimans et al. 2016, section 3.4): D's target
    for real images only, so D is kept from growing overconfident."""
    from deepnum import full, ones, zeros
    from deepnum.nn.functional import binary_cross_entropy_with_logits as bce

    n = real.shape[0]
    fake = net_g(z)
    d_real, d_fake = net_d(real), net_d(fake.detach())
    loss_d = bce(d_real, full((n,), real_label)) + bce(d_fake, zeros(n))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    loss_g = bce(net_d(fake), ones(n))
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    return (loss_d.item(), loss_g.item(), float(d_real.sigmoid().mean().item()),
            float(d_fake.sigmoid().mean().item()))


def train_gan(args: argparse.Namespace, judge: Any, out: Path, log: Any = print) -> dict[str, Any]:
    """Train the pair for ``args.epochs`` epochs, writing a sample grid and judge scores every epoch;
    returns the history (per-epoch lists) and the two nets."""
    from deepnum import randn
    from deepnum.apps._gan_judge import judge_scores, predict_proba, save_image_grid, save_progress
    from deepnum.apps._gan_models import DCGANDiscriminator, DCGANGenerator, dcgan_init_
    from deepnum.creation import tensor as as_tensor
    from deepnum.optim import Adam
    from deepnum.random import Generator, manual_seed

    manual_seed(args.seed)
    init_gen = Generator().manual_seed(args.seed)
    net_g = dcgan_init_(DCGANGenerator(args.nz, args.ngf), init_gen)
    net_d = dcgan_init_(DCGANDiscriminator(args.ndf), init_gen)
    betas = (args.beta1, 0.999)
    opt_g, opt_d = Adam(net_g.parameters(), lr=args.lr, betas=betas), Adam(net_d.parameters(), lr=args.lr, betas=betas)
    real = _real_images(args.limit, args.seed)
    if real.shape[0] < args.batch_size:
        raise ValueError(f"deepnum gan: --batch-size {args.batch_size} is larger than the {real.shape[0]} "
                         "training digits")
    noise_gen, order_rng = Generator().manual_seed(args.seed + 1), np.random.default_rng(args.seed)
    fixed = randn(64, args.nz, generator=Generator().manual_seed(args.seed + 2))
    judged = randn(args.samples, args.nz, generator=Generator().manual_seed(args.seed + 3))
    hist: dict[str, list] = {k: [] for k in ("loss_d", "loss_g", "d_real", "d_fake", "confidence", "entropy_bits",
                                             "classes_5pct", "histogram", "time")}
    snapshots: dict[int, np.ndarray] = {}
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = order_rng.permutation(real.shape[0])
        steps = [_gan_step(net_g, net_d, opt_g, opt_d, as_tensor(real[order[i:i + args.batch_size]]),
                           randn(args.batch_size, args.nz, generator=noise_gen), 1.0 - args.smooth)
                 for i in range(0, real.shape[0] - args.batch_size + 1, args.batch_size)]
        for key, value in zip(("loss_d", "loss_g", "d_real", "d_fake"), np.mean(steps, axis=0)):
            hist[key].append(float(value))
        snapshots[epoch] = _generate(net_g, fixed)
        save_image_grid(snapshots[epoch], out / f"samples_epoch_{epoch:02d}.png")
        for key, value in judge_scores(predict_proba(judge, _generate(net_g, judged))).items():
            hist[key].append(value)
        hist["time"].append(time.perf_counter() - start)
        log(f"epoch {epoch:2d}/{args.epochs}  loss_D {hist['loss_d'][-1]:.3f}  loss_G {hist['loss_g'][-1]:.3f}  "
            f"D(x) {hist['d_real'][-1]:.2f}  D(G(z)) {hist['d_fake'][-1]:.2f}  judge confidence "
            f"{hist['confidence'][-1]:.3f}  classes>=5% {hist['classes_5pct'][-1]}  "
            f"entropy {hist['entropy_bits'][-1]:.2f} bits  ({hist['time'][-1]:.0f} s)")
    save_progress(snapshots, out / "progress.png")
    return {"history": hist, "generator": net_g, "discriminator": net_d}


def plot_curves(hist: dict[str, list], reference: dict[str, Any], path: Path) -> None:
    """Losses, D's outputs and the judge's scores per epoch, with the real-digit reference dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from deepnum.io.safetensors import atomic_write

    epochs = np.arange(1, len(hist["loss_d"]) + 1)
    fig = Figure(figsize=(13, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.subplots(1, 3)
    ax[0].plot(epochs, hist["loss_d"], label="loss D")
    ax[0].plot(epochs, hist["loss_g"], label="loss G")
    ax[0].plot(epochs, hist["d_real"], "--", label="D(x)")
    ax[0].plot(epochs, hist["d_fake"], "--", label="D(G(z))")
    ax[1].plot(epochs, hist["confidence"], "o-", label="generated")
    ax[1].axhline(reference["confidence"], color="k", ls="--", label="real test digits")
    ax[1].axhline(TARGET_CONFIDENCE, color="r", ls=":", label="target")
    ax[2].plot(epochs, hist["entropy_bits"], "o-", label="class entropy (bits)")
    ax[2].plot(epochs, hist["classes_5pct"], "s-", label="classes with >= 5%")
    ax[2].axhline(np.log2(10), color="k", ls="--", label="log2 10")
    for a, title in zip(ax, ("adversarial losses", "LeNet judge: mean confidence", "spread of predicted classes")):
        a.set_title(title)
        a.set_xlabel("epoch")
        a.legend(fontsize=8)
        a.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))


def _judge(args: argparse.Namespace, log: Any) -> tuple[Any, dict[str, Any]]:
    from deepnum.apps._gan_judge import load_judge, train_judge

    if args.judge is not None:
        return load_judge(args.judge), {"judge": os.fspath(args.judge)}
    judge, accuracy = train_judge(args.seed, args.judge_epochs, args.limit)
    log(f"judge: LeNet-5 trained {args.judge_epochs} epochs, test accuracy {accuracy:.4f}")
    return judge, {"judge": "lenet5 trained here", "judge_test_accuracy": accuracy}


def run(args: argparse.Namespace) -> int:
    from deepnum._cli_common import CLIError
    from deepnum.apps._gan_judge import judge_scores, predict_proba
    from deepnum.data.datasets import load_dataset
    from deepnum.io import save

    if not 0.0 <= args.beta1 < 1.0:
        raise CLIError(f"--beta1 must be in [0, 1), got {args.beta1}")
    if not 0.0 <= args.smooth < 0.5:
        raise CLIError(f"--smooth must be in [0, 0.5), got {args.smooth}")
    available = len(load_dataset("mnist", "train"))
    if args.batch_size > min(available, args.limit or available):
        raise CLIError(f"--batch-size {args.batch_size} is larger than the {min(available, args.limit or available)} "
                       "training digits")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    judge, info = _judge(args, print)
    if args.judge is None:
        from deepnum._cli_common import model_metadata

        save(judge.state_dict(), out / "judge.safetensors",
             model_metadata("lenet5", {}, "mnist", [str(d) for d in range(10)]))
    reference = judge_scores(predict_proba(judge, load_dataset("mnist", "test").data))
    print(f"real test digits: judge confidence {reference['confidence']:.3f}, classes>=5% "
          f"{reference['classes_5pct']}, entropy {reference['entropy_bits']:.2f} bits")
    result = train_gan(args, judge, out)
    hist = result["history"]
    meta = {"nz": str(args.nz), "ngf": str(args.ngf), "ndf": str(args.ndf)}
    save(result["generator"].state_dict(), out / "generator.safetensors", meta)
    save(result["discriminator"].state_dict(), out / "discriminator.safetensors", meta)
    plot_curves(hist, reference, out / "curves.png")
    final = {k: hist[k][-1] for k in ("confidence", "entropy_bits", "classes_5pct", "histogram")}
    reached = final["confidence"] >= TARGET_CONFIDENCE and final["classes_5pct"] >= TARGET_CLASSES
    metrics = {"config": {k: v for k, v in vars(args).items() if isinstance(v, str | int | float | None)},
               **info, "real_test": reference, "final": final, "target_reached": reached,
               "wall_s": time.perf_counter() - start, "history": hist}
    from deepnum.io.safetensors import atomic_write

    atomic_write(out / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(metrics, indent=1)))
    print(f"final: judge confidence {final['confidence']:.3f} (target >= {TARGET_CONFIDENCE}), classes with >= 5% "
          f"{final['classes_5pct']} (target >= {TARGET_CLASSES}), entropy {final['entropy_bits']:.2f} bits; "
          f"target {'reached' if reached else 'NOT reached'}; {metrics['wall_s']:.0f} s; outputs in {out}")
    return 0
