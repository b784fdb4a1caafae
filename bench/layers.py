"""Benchmarks of layer workloads, deepnum vs PyTorch in the same process (see bench/harness.py):

- LeNet-5 training step: batch 64 of 1×28×28, conv5×5(6)-pool-conv5×5(16)-pool-120-84-10 with
  ReLU, cross-entropy, backward, SGD step.
- conv3×3 + BatchNorm + ReLU block, forward + backward, batch 128, at 16/32/64 channels on
  32×32 / 16×16 / 8×8 inputs (the stages of a small ResNet on CIFAR-sized images).

Run: ``.venv/bin/python -m bench.layers [--threads N]``
"""
from __future__ import annotations

import sys

import numpy as np

from bench.harness import classification_step, compare, start


def _libs(name: str):
    if name == "torch":
        import torch

        return torch, torch.nn, torch.nn.functional, torch.optim
    import deepnum
    import deepnum.nn
    import deepnum.nn.functional
    import deepnum.optim

    return deepnum, deepnum.nn, deepnum.nn.functional, deepnum.optim


def lenet5(nn):
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def conv_block(nn, channels: int):
    return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                         nn.ReLU())


def _same_weights(ours, theirs) -> None:
    import deepnum as dn

    ours.load_state_dict({k: dn.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})


def build_lenet_step(lib_name: str, reference=None):
    lib, nn, functional, optim = _libs(lib_name)
    model = lenet5(nn)
    if reference is not None:
        _same_weights(model, reference)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = lib.tensor(rng.standard_normal((64, 1, 28, 28)).astype(np.float32))
    y = lib.tensor(rng.integers(0, 10, 64))

    return classification_step(functional, model, opt, x, y), model


def build_block_step(lib_name: str, channels: int, size: int, reference=None):
    lib, nn, _, _ = _libs(lib_name)
    block = conv_block(nn, channels)
    if reference is not None:
        _same_weights(block, reference)
    x = lib.tensor(np.random.default_rng(0).standard_normal((128, channels, size, size)).astype(np.float32),
                   requires_grad=True)

    def step():
        block.zero_grad()
        x.grad = None
        block(x).sum().backward()

    return step, block


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = start(__doc__.splitlines()[0], argv, rounds=9)
    import torch

    torch.manual_seed(0)
    ratios = {}
    torch_step, torch_model = build_lenet_step("torch")
    ours_step, _ = build_lenet_step("deepnum", reference=torch_model)
    ratios["lenet5"] = compare("LeNet-5 train step, batch 64", ours_step, torch_step, rounds=args.rounds,
                               iterations=10)
    for channels, size in ((16, 32), (32, 16), (64, 8)):
        torch_step, torch_block = build_block_step("torch", channels, size)
        ours_step, _ = build_block_step("deepnum", channels, size, reference=torch_block)
        ratios[f"block{channels}"] = compare(
            f"conv3x3+BN+ReLU {channels}ch {size}x{size}, batch 128, fwd+bwd", ours_step, torch_step,
            rounds=args.rounds, iterations=5)
    return ratios


if __name__ == "__main__":
    main(sys.argv[1:])
