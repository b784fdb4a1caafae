"""Train a small MLP with nothing but deepnum tensors and autograd on a synthetic 3-class spiral
and print the loss as it falls. (The data/training issue replaces this with a CNN on MNIST.)

Run: ``.venv/bin/python examples/train_mlp_synthetic.py``
"""
from __future__ import annotations

import math

import numpy as np

import deepnum as dn


def spiral(points_per_class: int = 200, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three interleaved spiral arms: not linearly separable, so the hidden layer has to learn."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(classes):
        radius = np.linspace(0.0, 1.0, points_per_class)
        angle = np.linspace(c * 4.0, (c + 1) * 4.0, points_per_class) + rng.normal(0, 0.2, points_per_class)
        xs.append(np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1))
        ys.append(np.full(points_per_class, c))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


def init_layer(fan_in: int, fan_out: int) -> list[dn.Tensor]:
    """He-uniform weights (He et al. 2015) for ReLU layers, zero bias."""
    bound = math.sqrt(6.0 / fan_in)
    weight = (dn.rand(fan_out, fan_in) * 2 - 1) * bound
    return [weight.requires_grad_(), dn.zeros(fan_out, requires_grad=True)]


def main(epochs: int = 300, lr: float = 1.0, hidden: int = 64) -> float:
    dn.manual_seed(0)
    x_np, y_np = spiral()
    x, y = dn.tensor(x_np), dn.tensor(y_np)
    params = init_layer(2, hidden) + init_layer(hidden, 3)
    for epoch in range(epochs + 1):
        h = (x @ params[0].T + params[1]).relu()
        logits = h @ params[2].T + params[3]
        loss = -logits.log_softmax(dim=1)[dn.arange(len(y)), y].mean()  # cross-entropy
        loss.backward()
        with dn.no_grad():
            for p in params:
                p.sub_(p.grad, alpha=lr)
                p.grad = None
        if epoch % 50 == 0:
            accuracy = (logits.argmax(dim=1) == y).float().mean().item()
            print(f"epoch {epoch:4d}  loss {loss.item():.4f}  train accuracy {accuracy:.3f}")
    return loss.item()


if __name__ == "__main__":
    main()
