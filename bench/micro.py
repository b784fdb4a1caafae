"""Per-layer micro-benchmarks, forward + backward (the output's gradient is a fixed random array),
deepnum vs PyTorch with the same weights and inputs (see bench/harness.py):

- conv3×3 (no bias, padding 1), batch 128, at 16 channels on 32×32, 32 on 16×16, 64 on 8×8 (the
  three stages of ResNet-20 on CIFAR);
- max pooling 2×2 (stride 2) of (128, 16, 32, 32);
- BatchNorm2d(16) in training mode on (128, 16, 32, 32);
- scaled-dot-product attention, query/key/value (N=32, heads 4, L=64, E=32).

Each builder returns ``(step, model)``; ``step()`` returns the forward output. ``python -m bench``
runs them with the workloads (``--only micro`` for these alone).
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from bench.layers import _libs, _same_weights

BATCH = 128


def _arrays(shape: tuple[int, ...], count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(count)]


def build_layer_step(lib_name: str, reference=None, *, factory: Callable, shape: tuple[int, ...]):
    """``(step, layer)``: forward of ``factory(nn)`` on a fixed input of ``shape`` and backward of a fixed
    output gradient into the input and the parameters; ``reference`` gives the weights."""
    lib, nn, _, _ = _libs(lib_name)
    layer = factory(nn)
    if reference is not None:
        _same_weights(layer, reference)
    layer.train()
    (x,) = _arrays(shape, 1, seed=0)
    x = lib.tensor(x, requires_grad=True)
    with lib.no_grad():
        out_shape = tuple(layer(x).shape)
    (g,) = _arrays(out_shape, 1, seed=1)
    g = lib.tensor(g)

    def step():
        layer.zero_grad()
        x.grad = None
        out = layer(x)
        out.backward(g)
        return out

    return step, layer


def build_attention_step(lib_name: str, reference=None, *, shape: tuple[int, ...] = (32, 4, 64, 32)):
    """``(step, None)``: ``scaled_dot_product_attention(q, k, v)`` forward and backward into q, k and v."""
    lib, _, functional, _ = _libs(lib_name)
    q, k, v = (lib.tensor(a, requires_grad=True) for a in _arrays(shape, 3, seed=0))
    (g,) = _arrays(shape, 1, seed=1)
    g = lib.tensor(g)

    def step():
        for t in (q, k, v):
            t.grad = None
        out = functional.scaled_dot_product_attention(q, k, v)
        out.backward(g)
        return out

    return step, None


def _conv(channels: int, nn):
    return nn.Conv2d(channels, channels, 3, padding=1, bias=False)


def _pool(nn):
    return nn.MaxPool2d(2)


def _batchnorm(nn):
    return nn.BatchNorm2d(16)


#: (key, description, builder) of every micro-benchmark, in table order.
MICRO: list[tuple[str, str, Callable]] = [
    *[(f"conv{c}", f"conv3x3 {c}ch {s}x{s}, batch 128, fwd+bwd",
       partial(build_layer_step, factory=partial(_conv, c), shape=(BATCH, c, s, s)))
      for c, s in ((16, 32), (32, 16), (64, 8))],
    ("maxpool", "max pool 2x2 of 128x16x32x32, fwd+bwd", partial(build_layer_step, factory=_pool,
                                                                 shape=(BATCH, 16, 32, 32))),
    ("batchnorm", "BatchNorm2d(16) train, 128x16x32x32, fwd+bwd",
     partial(build_layer_step, factory=_batchnorm, shape=(BATCH, 16, 32, 32))),
    ("attention", "scaled_dot_product_attention N32 h4 L64 E32, fwd+bwd", build_attention_step),
]
