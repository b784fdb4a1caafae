"""Benchmark: one training step of an MLP 784-256-256-10 (ReLU), batch 128, cross-entropy written
with tensor ops, backward, and a plain SGD update — in deepnum and in PyTorch, same weights.

Run: ``.venv/bin/python -m bench.mlp [--threads N]``
"""
from __future__ import annotations

import sys

from bench.harness import compare, start

SIZES = (784, 256, 256, 10)
BATCH = 128
LR = 0.01


def make_weights(seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    layers = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:], strict=True):
        bound = 1 / np.sqrt(fan_in)
        layers.append((rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32),
                       rng.uniform(-bound, bound, fan_out).astype(np.float32)))
    x = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], BATCH)
    return layers, x, y


def mlp_step(lib, params, x, y):
    """Forward, cross-entropy (log-softmax and a pick of the target's log-probability), backward, SGD.
    Works for both libraries: only names they share are used."""
    h = x
    for i in range(0, len(params), 2):
        h = h @ params[i].T + params[i + 1]
        if i + 2 < len(params):
            h = h.relu()
    loss = -h.log_softmax(1)[lib.arange(len(y)), y].mean()
    loss.backward()
    with lib.no_grad():
        for p in params:
            p.sub_(p.grad * LR)
            p.grad = None
    return loss


def build(lib_name: str, reference=None):
    """``(step, params)`` for ``lib_name`` ("deepnum" or "torch"). Both libraries start from the same
    seeded weights, so ``reference`` (the other library's parameters) is not needed."""
    layers, x, y = make_weights()
    if lib_name == "torch":
        import torch as lib
    else:
        import deepnum as lib
    params = []
    for w, b in layers:
        params += [lib.tensor(w, requires_grad=True), lib.tensor(b, requires_grad=True)]
    xt, yt = lib.tensor(x), lib.tensor(y)
    return (lambda: mlp_step(lib, params, xt, yt)), params


def main(argv: list[str] | None = None) -> float:
    args = start(__doc__.splitlines()[0], argv, rounds=15)
    return compare("MLP 784-256-256-10 train step, batch 128", build("deepnum")[0], build("torch")[0],
                   rounds=args.rounds)


if __name__ == "__main__":
    main(sys.argv[1:])
