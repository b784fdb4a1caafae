"""``deepnum caption``: image captioning in the manner of Show and Tell (Vinyals et al., CVPR 2015), with
the soft attention of Show, Attend and Tell (Xu et al., ICML 2015), on canvases of one to three real
MNIST digits (``deepnum/apps/canvas.py``).

Each canvas gets a sentence from a small grammar (``_captioning_data.py``: "a 3 left of an 8", "a 3 ,
a 1 and a 7 from left to right"); a CNN encoder, pre-trained as a digit classifier, gives a grid of
features whose mean starts an attention LSTM decoder (``_captioning_model.py``), trained with teacher
forcing (cross-entropy of every next word, ``<pad>`` ignored). Held-out canvases
are built from MNIST's *test* digits only; captions are decoded greedily and by beam search and
scored with corpus BLEU-4 (``text_metrics.py``) and exact match.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np

import deepnum as dn
import deepnum.nn.functional as F
from deepnum.apps._captioning_data import Vocabulary, caption, encode_captions
from deepnum.apps._captioning_model import Captioner, beam_search, greedy_decode
from deepnum.apps.text_metrics import corpus_bleu, exact_match

__all__ = ["decode", "evaluate", "pretrain_encoder", "train_captioner"]

HELP = "image captioning (CNN encoder + attention LSTM decoder) on multi-digit MNIST canvases"
DESCRIPTION = """\
Train a captioner on canvases of 1-3 real MNIST digits with sentences such as "a 3 left of an 8"
or "a 3 , a 1 and a 7 from left to right": a CNN (pre-trained as a digit classifier) encodes the
canvas into a grid of features whose mean starts an LSTM, which writes the sentence word by word,
attending to the grid at every word (Show, Attend and Tell); teacher forcing in training.
Held-out canvases use MNIST's test digits only. Reports corpus BLEU-4 and exact match for greedy
decoding and beam search, and writes captions.png, loss.png, metrics.json and model.safetensors."""

MAX_WORDS = 12   # the longest sentence: "a 3 , a 1 and a 7 from left to right"


def _sentences(canvases: Any) -> list[list[str]]:
    return [caption(canvases.describe(i)) for i in range(len(canvases))]


def _scatter(digits: np.ndarray, field: int, rng: np.random.Generator) -> np.ndarray:
    """28×28 digits (N, 1, 28, 28) pasted at random positions into black ``field``×``field`` images."""
    out = np.zeros((len(digits), 1, field, field), np.float32)
    ys, xs = rng.integers(0, field - 27, (2, len(digits)))
    for i, (y, x) in enumerate(zip(ys, xs, strict=True)):
        out[i, 0, y:y + 28, x:x + 28] = digits[i, 0]
    return out


def pretrain_encoder(model: Captioner, images: np.ndarray, labels: np.ndarray, *, epochs: int = 2,
                     batch_size: int = 64, lr: float = 2e-3, field: int = 48, seed: int = 0) -> float:
    """Train the encoder's convolutions as a digit classifier (global max pooling and a linear layer on
    top, both dropped afterwards), as Show and Tell starts from a CNN pre-trained on ImageNet
    classification. Each 28×28 digit is pasted at a random place in a ``field``-pixel image, so the
    features recognise a digit wherever it lies on a canvas (with centred digits only, a classifier on
    the canvases learned half as fast). Returns the last epoch's training accuracy."""
    classifier = dn.nn.Sequential(model.features, dn.nn.AdaptiveMaxPool2d(1), dn.nn.Flatten(),
                                  dn.nn.Linear(model.channels[-1], 10))
    opt = dn.optim.Adam(classifier.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    classifier.train()
    correct = 0
    for _ in range(epochs):
        order, correct = rng.permutation(len(images)), 0
        for start in range(0, len(images), batch_size):
            b = order[start:start + batch_size]
            logits = classifier(dn.tensor(_scatter(images[b], field, rng)))
            loss = F.cross_entropy(logits, dn.tensor(labels[b]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            correct += int((logits.detach().numpy().argmax(axis=1) == labels[b]).sum())
    return correct / len(images)


def _by_count(refs: list[list[str]], candidates: list[list[str]], canvases: Any) -> dict[str, float]:
    """Exact match of the canvases with 1, 2 and 3 digits separately."""
    out = {}
    for k in (1, 2, 3):
        idx = [i for i in range(len(refs)) if len(canvases.describe(i)) == k]
        out[str(k)] = exact_match([refs[i] for i in idx], [candidates[i] for i in idx])
    return out


def train_captioner(model: Captioner, images: np.ndarray, sentences: list[list[str]], vocab: Vocabulary, *,
                    epochs: int, batch_size: int = 64, lr: float = 2e-3, seed: int = 0,
                    on_epoch: Any = None) -> list[float]:
    """Teacher forcing with Adam (one-cycle learning rate, gradients clipped to norm 5); returns the
    mean training loss (nats per word) of each epoch. ``on_epoch(epoch, loss)`` runs after each epoch."""
    inputs, targets = encode_captions(sentences, vocab, MAX_WORDS + 1)
    opt = dn.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(images) // batch_size)
    sched = dn.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    rng = np.random.default_rng(seed)
    losses = []
    for epoch in range(epochs):
        model.train()
        total, count = 0.0, 0
        order = rng.permutation(len(images))
        for start in range(0, len(images), batch_size):
            b = order[start:start + batch_size]
            logits = model(dn.tensor(images[b]), dn.tensor(inputs[b]))
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), dn.tensor(targets[b].reshape(-1)),
                                   ignore_index=vocab.pad)
            opt.zero_grad()
            loss.backward()
            dn.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            total, count = total + float(loss.item()) * len(b), count + len(b)
        losses.append(total / count)
        if on_epoch is not None:
            on_epoch(epoch + 1, losses[-1])
    return losses


def decode(model: Captioner, images: np.ndarray, vocab: Vocabulary, beam_width: int = 1,
           batch_size: int = 250) -> list[list[str]]:
    """Captions of ``images`` as word lists: greedy for ``beam_width=1``, else beam search."""
    model.eval()
    out: list[list[str]] = []
    for start in range(0, len(images), batch_size):
        x = dn.tensor(images[start:start + batch_size])
        ids = greedy_decode(model, x, vocab.bos, vocab.eos, MAX_WORDS + 1) if beam_width == 1 else beam_search(
            model, x, vocab.bos, vocab.eos, beam_width, MAX_WORDS + 1)
        out += [vocab.decode(row) for row in ids]
    return out


def evaluate(references: list[list[str]], candidates: list[list[str]]) -> dict[str, float]:
    """Corpus BLEU-4 (one reference per canvas) and exact match."""
    return {"bleu4": corpus_bleu([[r] for r in references], candidates), "exact_match": exact_match(references,
                                                                                                     candidates)}


# ----------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    from deepnum._cli_common import _nonnegative_int, _positive_float, _positive_int

    parser.add_argument("--train-canvases", type=_positive_int, default=6000,
                        help="training canvases, from MNIST's 4,000 training digits (default 6000)")
    parser.add_argument("--test-canvases", type=_positive_int, default=500,
                        help="held-out canvases, from the 1,000 test digits (default 500)")
    parser.add_argument("--size", type=_positive_int, default=64, help="canvas size, a multiple of 8 (default 64)")
    parser.add_argument("--pretrain-epochs", type=_nonnegative_int, default=2,
                        help="epochs of pre-training the CNN as a digit classifier (default 2; 0: none)")
    parser.add_argument("--epochs", type=_positive_int, default=8, help="captioning epochs (default 8)")
    parser.add_argument("--batch-size", type=_positive_int, default=64, help="default 64")
    parser.add_argument("--lr", type=_positive_float, default=3e-3, help="peak learning rate of Adam (default 3e-3)")
    parser.add_argument("--hidden", type=_positive_int, default=256, help="LSTM hidden size (default 256)")
    parser.add_argument("--beam-width", type=_positive_int, default=3, help="beam search width (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--output", metavar="DIR", default="runs/caption", help="output folder (default runs/caption)")


def run(args: argparse.Namespace) -> int:
    from deepnum._cli_common import CLIError
    from deepnum.apps._captioning_plots import plot_captions, plot_loss
    from deepnum.apps.canvas import load_canvas_split
    from deepnum.data.datasets.mnist import mnist_arrays

    if args.size % 8 or args.size < 32:
        raise CLIError(f"--size must be a multiple of 8 and at least 32 (a digit is 28 px), got {args.size}")
    dn.manual_seed(args.seed)
    began = time.perf_counter()
    train = load_canvas_split("train", args.train_canvases, args.size, (1, 3), args.seed)
    test = load_canvas_split("test", args.test_canvases, args.size, (1, 3), args.seed + 1)
    vocab = Vocabulary()
    model = Captioner(len(vocab), vocab.pad, size=args.size, hidden_size=args.hidden)
    if args.pretrain_epochs:
        digits, labels = mnist_arrays("train")
        acc = pretrain_encoder(model, np.asarray(digits, np.float32).reshape(-1, 1, 28, 28), np.asarray(labels),
                               epochs=args.pretrain_epochs, seed=args.seed)
        print(f"pre-trained the CNN as a digit classifier: training accuracy {acc:.4f}")
    refs, held_out = _sentences(test), []

    def on_epoch(epoch: int, loss: float) -> None:
        held_out.append(evaluate(refs, decode(model, test.images, vocab, 1))["exact_match"])
        print(f"epoch {epoch}/{args.epochs}: training loss {loss:.4f} nats/word, held-out exact match (greedy) "
              f"{held_out[-1]:.4f}")

    losses = train_captioner(model, train.images, _sentences(train), vocab, epochs=args.epochs,
                             batch_size=args.batch_size, lr=args.lr, seed=args.seed, on_epoch=on_epoch)
    train_seconds = time.perf_counter() - began
    greedy = decode(model, test.images, vocab, 1)
    beam = decode(model, test.images, vocab, args.beam_width)
    metrics: dict[str, Any] = {"greedy": evaluate(refs, greedy), f"beam{args.beam_width}": evaluate(refs, beam),
                               "train_loss": losses, "held_out_exact_match_per_epoch": held_out,
                               "train_seconds": round(train_seconds, 1),
                               "test_canvases": len(test), "train_canvases": len(train), "seed": args.seed,
                               "greedy_exact_match_by_digits": _by_count(refs, greedy, test)}
    os.makedirs(args.output, exist_ok=True)
    dn.io.save(model.state_dict(), os.path.join(args.output, "model.safetensors"))
    wrong = [i for i in range(len(refs)) if beam[i] != refs[i]][:4]
    shown = [i for i in range(len(refs)) if i not in wrong][:12 - len(wrong)] + wrong
    plot_captions(test.images[shown], [refs[i] for i in shown], [beam[i] for i in shown],
                  os.path.join(args.output, "captions.png"))
    plot_loss(losses, held_out, os.path.join(args.output, "loss.png"))
    tmp = os.path.join(args.output, "metrics.json.tmp")
    with open(tmp, "w") as f:
        json.dump(metrics, f, indent=1)
    os.replace(tmp, os.path.join(args.output, "metrics.json"))
    for name in ("greedy", f"beam{args.beam_width}"):
        m = metrics[name]
        print(f"{name:>7}: BLEU-4 {m['bleu4']:.4f}, exact match {m['exact_match']:.4f} "
              f"on {len(test)} held-out canvases")
    for i in range(3):
        print(f"  reference: {' '.join(refs[i])!r}  beam: {' '.join(beam[i])!r}")
    print(f"trained in {train_seconds:.0f} s; captions.png, loss.png, metrics.json, model.safetensors in {args.output}")
    return 0
