"""``deepnum mae``: masked-autoencoder pre-training (He et al. 2022, "Masked autoencoders are scalable
vision learners") of a small ViT on MNIST, judged by a linear probe.

75% of the 4×4-pixel patches of each digit are removed at random; the ViT encoder sees only the
visible quarter, a light decoder fills in the rest, and the loss is the squared error on the removed
patches (``deepnum/apps/_mae_model.py``). No label is used. Then the decoder is dropped and a linear
probe — logistic regression (one ``Linear`` layer, cross-entropy, trained with deepnum) on the frozen
encoder's standardised, mean-pooled features — is trained on the labelled training images, for the
pre-trained encoder and for the same encoder at its random initialisation; the gap between the two
test accuracies is what pre-training learned. The figure shows masked inputs, reconstructions (the
visible patches pasted back, as in the paper's figures) and the originals.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from typing import Any

import numpy as np

HELP = "masked-autoencoder pre-training of a small ViT on MNIST, judged by a linear probe"
DESCRIPTION = __doc__.split("\n\n", 1)[1] if __doc__ else HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, default=15, help="pre-training epochs (default 15)")
    parser.add_argument("--batch-size", type=int, default=32, help="(default 32: many small steps)")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW peak learning rate (default 1e-3)")
    parser.add_argument("--mask-ratio", type=float, default=0.75, help="share of patches removed (default 0.75)")
    parser.add_argument("--patch-size", type=int, default=4, help="patch side in pixels, divides 28 (default 4)")
    parser.add_argument("--norm-pix-loss", action="store_true", help="predict per-patch normalised pixels")
    parser.add_argument("--train-size", type=int, default=4000, help="training images (default all 4,000)")
    parser.add_argument("--test-size", type=int, default=1000, help="test images for the probe (default 1,000)")
    parser.add_argument("--probe-steps", type=int, default=300, help="full-batch Adam steps of the probe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="runs/mae", help="output folder (default runs/mae)")


def mnist(split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``size`` images of a fixed shuffle of a split (so a small size still has every class)."""
    from deepnum.data.datasets.mnist import mnist_arrays

    x, y = mnist_arrays(split)
    if not 1 <= size <= len(y):
        raise SystemExit(f"deepnum mae: --{split}-size must be in 1..{len(y)}, got {size}")
    idx = np.sort(np.random.default_rng(1234).permutation(len(y))[:size])
    return np.ascontiguousarray(x[idx]), np.ascontiguousarray(y[idx])


def pretrain(model: Any, images: np.ndarray, args: argparse.Namespace) -> list[float]:
    """AdamW (β₂ = 0.95, weight decay 0.05, as the paper) with a linear warm-up over the first epoch
    and a cosine decay; returns the mean masked-patch loss of each epoch."""
    import deepnum as dn
    from deepnum.optim.lr_scheduler import LambdaLR

    rng = np.random.default_rng(args.seed)
    steps_per_epoch = math.ceil(len(images) / args.batch_size)
    total = steps_per_epoch * args.epochs
    opt = dn.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.05)
    sched = LambdaLR(opt, lambda s: (s + 1) / steps_per_epoch if s < steps_per_epoch
                     else 0.5 * (1 + math.cos(math.pi * (s - steps_per_epoch) / max(1, total - steps_per_epoch))))
    losses = []
    model.train()
    for epoch in range(args.epochs):
        order, running = rng.permutation(len(images)), 0.0
        for i in range(0, len(images), args.batch_size):
            batch = dn.tensor(images[order[i:i + args.batch_size]])
            opt.zero_grad()
            loss, _, _ = model(batch, rng)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.item() * batch.shape[0]
        losses.append(running / len(images))
        print(f"epoch {epoch + 1}/{args.epochs}: masked-patch loss {losses[-1]:.4f}")
    return losses


def encode(model: Any, images: np.ndarray, batch: int = 500) -> np.ndarray:
    """The encoder's (N, D) features of whole images, in eval mode without gradients."""
    import deepnum as dn

    model.eval()
    with dn.no_grad():
        return np.concatenate([model.features(dn.tensor(images[i:i + batch])).numpy()
                               for i in range(0, len(images), batch)])


def linear_probe(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], steps: int,
                 seed: int) -> float:
    """Test accuracy of logistic regression on standardised features (the paper's probe puts a
    BatchNorm without affine parameters before the linear layer; this is its fixed, full-data form)."""
    import deepnum as dn

    mu, sd = train[0].mean(0), train[0].std(0) + 1e-6
    xs = [dn.tensor(((f - mu) / sd).astype(np.float32)) for f in (train[0], test[0])]
    dn.manual_seed(seed)
    probe = dn.nn.Linear(xs[0].shape[1], 10)
    opt = dn.optim.Adam(probe.parameters(), lr=1e-2)
    target, loss_fn = dn.tensor(train[1]), dn.nn.CrossEntropyLoss()
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(probe(xs[0]), target).backward()
        opt.step()
    with dn.no_grad():
        return float((probe(xs[1]).numpy().argmax(1) == test[1]).mean())


def run(args: argparse.Namespace) -> int:
    import deepnum as dn
    from deepnum.apps._mae_model import MaskedAutoencoder
    from deepnum.apps._mae_plots import plot_loss, plot_reconstructions

    if args.epochs < 1 or args.probe_steps < 1 or 28 % args.patch_size or not 0 < args.mask_ratio < 1:
        raise SystemExit("deepnum mae: need --epochs >= 1, --probe-steps >= 1, --patch-size dividing 28 and "
                         "0 < --mask-ratio < 1")
    os.makedirs(args.output, exist_ok=True)
    start = time.perf_counter()
    train, test = mnist("train", args.train_size), mnist("test", args.test_size)
    dn.manual_seed(args.seed)
    model = MaskedAutoencoder(patch_size=args.patch_size, mask_ratio=args.mask_ratio,
                              norm_pix_loss=args.norm_pix_loss)
    probe_random = linear_probe((encode(model, train[0]), train[1]), (encode(model, test[0]), test[1]),
                                args.probe_steps, args.seed)
    losses = pretrain(model, train[0], args)
    probe_mae = linear_probe((encode(model, train[0]), train[1]), (encode(model, test[0]), test[1]),
                             args.probe_steps, args.seed)
    print(f"linear probe test accuracy: MAE pre-trained encoder {probe_mae:.4f}, random encoder {probe_random:.4f}")
    dn.save(model.state_dict(), os.path.join(args.output, "mae.safetensors"))
    shown = [np.flatnonzero(test[1] == d)[0] for d in range(10) if (test[1] == d).any()]
    plot_reconstructions(model, test[0][shown], np.random.default_rng(args.seed + 1),
                         os.path.join(args.output, "reconstructions.png"))
    plot_loss(losses, os.path.join(args.output, "loss.png"))
    result = {"probe_accuracy_mae": probe_mae, "probe_accuracy_random": probe_random,
              "mae_beats_random": probe_mae > probe_random, "pretrain_loss": losses, "seed": args.seed,
              "parameters": int(sum(p.numel() for p in model.parameters())),
              "wall_s": time.perf_counter() - start}
    with open(os.path.join(args.output, "results.json"), "w") as fh:
        json.dump(result, fh, indent=1)
    print(f"wrote {args.output}/results.json, reconstructions.png, loss.png, mae.safetensors "
          f"({result['wall_s']:.0f} s)")
    return 0
