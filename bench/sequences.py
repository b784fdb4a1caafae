"""Benchmarks of sequence workloads, deepnum vs PyTorch in the same process (see bench/harness.py),
same weights in both:

- LSTM language-model training step: batch 32 of 64 character ids, Embedding(65, 128) →
  LSTM(128, 256, batch_first) → Linear(256, 65), cross-entropy over every position, backward, Adam.
- Transformer-encoder classifier training step: batch 32 of 64 token ids, Embedding(65, 128) plus a
  learned positional embedding → TransformerEncoder (2 layers, d_model 128, 4 heads, ffn 512,
  dropout 0.1, batch_first) → mean over positions → Linear(128, 10), cross-entropy, backward, Adam.

Run: ``.venv/bin/python -m bench.sequences [--threads N] [--rounds R]``
"""
from __future__ import annotations

import sys

import numpy as np

from bench.harness import compare, start
from bench.layers import _libs, _same_weights

VOCAB, EMBED, HIDDEN, SEQ, BATCH = 65, 128, 256, 64, 32
HEADS, LAYERS, FFN, CLASSES = 4, 2, 512, 10


def lstm_lm(nn):
    """Embedding → LSTM → Linear, as ``deepnum.models`` char LSTM (a plain container here, so the
    same code builds both libraries' models)."""
    return nn.ModuleDict({"embed": nn.Embedding(VOCAB, EMBED), "lstm": nn.LSTM(EMBED, HIDDEN, batch_first=True),
                          "head": nn.Linear(HIDDEN, VOCAB)})


def transformer_classifier(lib, nn):
    layer = nn.TransformerEncoderLayer(EMBED, HEADS, FFN, dropout=0.1, batch_first=True)
    model = nn.ModuleDict({"embed": nn.Embedding(VOCAB, EMBED), "encoder": nn.TransformerEncoder(layer, LAYERS),
                           "head": nn.Linear(EMBED, CLASSES)})
    model.pos = nn.Parameter(lib.zeros(1, SEQ, EMBED))
    return model


def _batch(lib, classes: int, per_position: bool):
    rng = np.random.default_rng(0)
    x = lib.tensor(rng.integers(0, VOCAB, (BATCH, SEQ)))
    y = lib.tensor(rng.integers(0, classes, (BATCH, SEQ) if per_position else BATCH))
    return x, y


def build_lstm_step(lib_name: str, reference=None):
    lib, nn, functional, optim = _libs(lib_name)
    model = lstm_lm(nn)
    if reference is not None:
        _same_weights(model, reference)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    x, y = _batch(lib, VOCAB, per_position=True)

    def step():
        opt.zero_grad()
        out, _ = model["lstm"](model["embed"](x))
        loss = functional.cross_entropy(model["head"](out).reshape(-1, VOCAB), y.reshape(-1))
        loss.backward()
        opt.step()
        return loss

    return step, model


def build_transformer_step(lib_name: str, reference=None):
    lib, nn, functional, optim = _libs(lib_name)
    model = transformer_classifier(lib, nn)
    if reference is not None:
        _same_weights(model, reference)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    x, y = _batch(lib, CLASSES, per_position=False)

    def step():
        opt.zero_grad()
        h = model["encoder"](model["embed"](x) + model.pos)
        loss = functional.cross_entropy(model["head"](h.mean(1)), y)
        loss.backward()
        opt.step()
        return loss

    return step, model


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = start(__doc__.splitlines()[0], argv, rounds=10)
    ratios = {}
    for name, build in (("LSTM LM step (emb 65→128, LSTM 256, seq 64, batch 32)", build_lstm_step),
                        ("transformer classifier step (seq 64, d 128, 4 heads, 2 layers, ffn 512, batch 32)",
                         build_transformer_step)):
        torch_step, reference = build("torch")
        deepnum_step, _ = build("deepnum", reference)
        ratios[name] = compare(name, deepnum_step, torch_step, rounds=args.rounds, iterations=5, warmup=3)
    return ratios


if __name__ == "__main__":
    main(sys.argv[1:])
