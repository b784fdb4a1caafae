"""What the notes explain about sequence models, measured on deepnum's own layers (``deepnum.seqviz``):

1. The vanishing gradient: the norm of the gradient of a loss at the last of 100 steps with
   respect to each earlier input, for a tanh RNN, an LSTM and an LSTM with forget-gate bias 1, at
   PyTorch's default initialisation; and exploding gradients (RNNs with scaled-up recurrent weights)
   with what ``clip_grad_norm_`` does to them → ``docs/sequences_vanishing_gradient.png``.
2. Attention maps of a character GPT on a line of Shakespeare, one heat map per head →
   ``docs/sequences_attention.png``; and of the transformer time-series classifier on an MNIST-1D
   series → ``docs/sequences_attention_encoder.png``.
3. Nearest neighbours of the learned character embeddings of a character LSTM, and their 2-D PCA →
   ``docs/sequences_embeddings.png``.

The language models come from ``deepnum lm`` runs (``--gpt-run DIR``, ``--lstm-run DIR``); without
them the script trains small ones itself for ``--steps`` steps (a few hundred: minutes on a CPU) and
says so in the figure titles.

Run: ``OPENBLAS_NUM_THREADS=1 .venv/bin/python examples/sequences_explained.py [--gpt-run DIR]
[--lstm-run DIR] [--steps 300] [--output-dir docs]``
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

import deepnum as dn
import deepnum.models.language  # noqa: F401  (registers char_lstm, char_gpt)
import deepnum.models.timeseries  # noqa: F401  (registers transformer_classifier)
from deepnum import seqviz
from deepnum.seqviz_attention import char_label

DOCS = Path(__file__).resolve().parent.parent / "docs"
LINE = "To be, or not to be, that is the question:"
QUERIES = "aeiouAEtTs.,;:!?3 "


# ----------------------------------------------------------------- 1. vanishing gradient
def vanishing_gradient(out: Path, seq_len: int, seed: int) -> dict[str, Any]:
    study = seqviz.gradient_study(seq_len, hidden_size=64, batch_size=32, seed=seed)
    print(f"\n1. gradient through time (T = {seq_len}, hidden 64, batch 32, seed {seed}): mean ‖∂L/∂x_t‖")
    print(f"   {'model':<26} {'d=1':>10} {'d=10':>10} {'d=50':>10} {'d=50 / d=1':>12}")
    ratios = {}
    for name, norms in {**study["curves"], **study["exploding"]}.items():
        ratios[name] = float(norms[50] / norms[1])
        print(f"   {name:<26} {norms[1]:10.3e} {norms[10]:10.3e} {norms[50]:10.3e} {ratios[name]:12.3e}")
    print("   exploding gradients and clip_grad_norm_(max_norm=1), one SGD step with lr 0.1:")
    print(f"   {'W_hh':>6} {'‖g‖':>10} {'clipped':>8} {'‖Δθ‖':>10} {'clipped':>8} {'loss':>7} {'after':>9} "
          f"{'after (clipped)':>15}")
    for r in study["clipping"]:
        print(f"   ×{r['scale']:<5g} {r['grad_norm']:10.3e} {r['clipped_norm']:8.3f} {r['step']:10.3e} "
              f"{r['clipped_step']:8.3f} {r['loss']:7.3f} {r['loss_after']:9.3f} {r['loss_after_clipped']:15.3f}")
    path = out / "sequences_vanishing_gradient.png"
    seqviz.plot_gradient_through_time(study["curves"], path, exploding=study["exploding"], clipping=study["clipping"],
                                      title=f"gradient reaching earlier inputs, loss at step T = {seq_len} (hidden 64, "
                                            "PyTorch's default init; batch mean of 32)")
    print(f"   wrote {path}")
    return {"ratio_d50_d1": ratios, "clipping": study["clipping"]}


# ----------------------------------------------------------------- language models
def _shakespeare() -> tuple[Any, np.ndarray, np.ndarray]:
    from deepnum.data.datasets import load_shakespeare

    train, val = load_shakespeare("train"), load_shakespeare("val")
    return train.vocab, train.ids, val.ids


def _train_briefly(kind: str, steps: int, seed: int) -> tuple[Any, str, str]:
    """(model, vocabulary, how it was made) for a character model trained ``steps`` steps here."""
    from deepnum.models import create_model
    from deepnum.train.lm import train_language_model

    vocab, train_ids, val_ids = _shakespeare()
    dn.manual_seed(seed)
    if kind == "char_gpt":
        model = create_model("char_gpt", vocab_size=len(vocab), block_size=64, d_model=64, n_layer=2, n_head=4)
    else:
        model = create_model("char_lstm", vocab_size=len(vocab), embed_dim=32, hidden_size=256)
    start = time.perf_counter()
    history = train_language_model(model, train_ids, val_ids, seq_len=64, batch_size=32, steps=steps, lr=3e-3,
                                   warmup_steps=min(50, steps // 4), eval_every=None, final_eval_tokens=20_000,
                                   generator=dn.Generator().manual_seed(seed), progress=False)
    loss = float(history.final.get("val_loss", float("nan")))
    note = f"trained here for {steps} steps ({time.perf_counter() - start:.0f} s), val loss {loss:.2f} nats/char"
    print(f"   {kind}: {note}")
    model.eval()
    return model, "".join(vocab.chars), note


def language_model(kind: str, run: str | None, steps: int, seed: int) -> tuple[Any, str, str]:
    if run is not None:
        loaded = seqviz.load_language_model(run)
        if loaded.name != kind:
            raise SystemExit(f"{run} holds {loaded.name}, expected {kind}")
        note = "a `deepnum lm` run"
        config_file = loaded.path.parent / "config.json"
        if config_file.is_file():
            config = json.loads(config_file.read_text())
            if "val_loss" in config:
                note += (f": {config.get('steps_done', '?')} steps, {config.get('train_seconds', 0) / 60:.0f} min, "
                         f"val loss {config['val_loss']:.2f} nats/char")
        print(f"   {kind}: loaded from {loaded.path} ({note})")
        return loaded.model, loaded.vocab, note
    return _train_briefly(kind, steps, seed)


# ----------------------------------------------------------------- 2. attention maps
def gpt_attention(out: Path, run: str | None, steps: int, seed: int) -> dict[str, Any]:
    print("\n2. attention maps of a character GPT")
    model, vocab, note = language_model("char_gpt", run, steps, seed)
    ids = dn.tensor(np.array([vocab.index(c) for c in LINE], dtype=np.int64)[None])
    maps = seqviz.capture_attention(model, ids)
    stats = seqviz.attention_statistics(maps)
    _print_stats(stats)
    path = out / "sequences_attention.png"
    seqviz.plot_attention(maps, list(LINE), path, title=f"char_gpt ({note}): attention on {LINE!r}; rows = query "
                                                         "characters, columns = keys")
    print(f"   wrote {path}")
    return {"model": note, "stats": {k: v.round(3).tolist() for k, v in stats.items()}}


def _print_stats(stats: dict[str, np.ndarray]) -> None:
    print(seqviz.format_attention_statistics(stats, indent="   "))


def encoder_attention(out: Path, epochs: int, seed: int) -> dict[str, Any]:
    """The transformer time-series classifier trained briefly on MNIST-1D, attention on one test series."""
    from deepnum.data.datasets import load_dataset
    from deepnum.models import create_model

    print(f"\n2b. attention maps of transformer_classifier on MNIST-1D ({epochs} epochs here)")
    train, test = load_dataset("mnist1d", "train"), load_dataset("mnist1d", "test")
    dn.manual_seed(seed)
    model = create_model("transformer_classifier", num_classes=10, in_chans=1)
    opt = dn.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    gen = np.random.default_rng(seed)
    x_all, y_all = train.data.astype(np.float32), train.targets.astype(np.int64)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for batch in np.array_split(gen.permutation(len(y_all)), len(y_all) // 64):
            loss = dn.nn.functional.cross_entropy(model(dn.tensor(x_all[batch])), dn.tensor(y_all[batch]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with dn.no_grad():
        pred = model(dn.tensor(test.data.astype(np.float32))).numpy().argmax(1)
    accuracy = float((pred == test.targets).mean())
    note = f"{epochs} epochs ({time.perf_counter() - start:.0f} s), test accuracy {100 * accuracy:.1f}%"
    print(f"   {note}")
    sample = test.data[:1].astype(np.float32)
    maps = seqviz.capture_attention(model, dn.tensor(sample))
    stats = seqviz.attention_statistics(maps)
    _print_stats(stats)
    path = out / "sequences_attention_encoder.png"
    seqviz.plot_attention(maps, [str(t) for t in range(sample.shape[2])], path,
                          title=f"transformer_classifier on MNIST-1D ({note}): test series 0 (label "
                                f"{int(test.targets[0])}), rows = query time steps, columns = keys")
    print(f"   wrote {path}")
    return {"model": note, "stats": {k: v.round(3).tolist() for k, v in stats.items()}}


# ----------------------------------------------------------------- 3. embeddings
def _share(table: dict[str, list[tuple[str, float]]], members: list[str], size: int) -> tuple[float, float]:
    """(mean fraction of the members' neighbours that are members too, the same fraction by chance)."""
    if len(members) < 2:
        return float("nan"), float("nan")
    hits = np.mean([np.mean([n in members for n, _ in table[c]]) for c in members])
    return float(hits), (len(members) - 1) / (size - 1)


def _pattern_summary(weight: Any, vocab: str, k: int) -> dict[str, float]:
    """How often the expected neighbours show up among the k nearest, against chance: the other case
    of a letter; vowels among the neighbours of (lower-case) vowels; punctuation of punctuation;
    upper-case letters of upper-case letters; digits of digits."""
    table = seqviz.embedding_neighbours(weight, vocab, vocab, k=k)
    classes = {c: seqviz.char_class(c) for c in vocab}
    letters = [c for c in vocab if c.isalpha() and c.swapcase() in classes and c.swapcase() != c]
    summary = {"case partner": (float(np.mean([c.swapcase() in [n for n, _ in table[c]] for c in letters])),
                                k / (len(vocab) - 1))}
    groups = {"lower vowels": [c for c in vocab if classes[c] == "lower vowel"],
              "upper-case": [c for c in vocab if classes[c].startswith("upper")],
              "punctuation": [c for c in vocab if classes[c] == "punctuation"],
              "digits": [c for c in vocab if classes[c] == "digit"]}
    for name, members in groups.items():
        summary[name] = _share(table, members, len(vocab))
    return {name: {"observed": round(v[0], 3), "chance": round(v[1], 3)} for name, v in summary.items()}


def embeddings(out: Path, run: str | None, steps: int, seed: int, k: int = 5) -> dict[str, Any]:
    print("\n3. nearest neighbours of the character embeddings of a character LSTM")
    model, vocab, note = language_model("char_lstm", run, steps, seed)
    emb = seqviz.embedding_of(model)
    queries = [c for c in QUERIES if c in vocab]
    table = seqviz.embedding_neighbours(emb, vocab, queries, k=k)
    for q, near in table.items():
        print(f"   {char_label(q):>2} → " + "  ".join(f"{char_label(c)} {s:+.2f}" for c, s in near))
    summary = _pattern_summary(emb, vocab, k)
    print(f"   among the {k} nearest (observed vs chance): " + "; ".join(
        f"{name} {v['observed']:.2f} vs {v['chance']:.2f}" for name, v in summary.items()))
    path = out / "sequences_embeddings.png"
    coords = seqviz.plot_embeddings(emb, vocab, path, title=f"char_lstm ({note}): {emb.weight.shape[0]} character "
                                                             f"embeddings of dimension {emb.weight.shape[1]}, first "
                                                             "two principal components")
    _, explained = seqviz.embedding_pca(emb, 2)
    print(f"   PCA: the first two components explain {100 * explained.sum():.1f}% of the variance; wrote {path}")
    return {"model": note, "neighbours": {q: [[c, round(s, 3)] for c, s in near] for q, near in table.items()},
            "pattern": summary, "pca_explained": explained.round(4).tolist(), "points": int(coords.shape[0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpt-run", metavar="DIR", help="a `deepnum lm` run of char_gpt (default: train one here)")
    parser.add_argument("--lstm-run", metavar="DIR", help="a `deepnum lm` run of char_lstm (default: train one here)")
    parser.add_argument("--steps", type=int, default=300, help="training steps of the models trained here (300)")
    parser.add_argument("--encoder-epochs", type=int, default=8, help="epochs of the MNIST-1D transformer (8)")
    parser.add_argument("--seq-len", type=int, default=100, help="sequence length of the gradient study (100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=str(DOCS), help="where the PNGs go (default docs/)")
    parser.add_argument("--only", choices=("gradient", "attention", "encoder", "embeddings"), action="append",
                        help="run only these parts (repeatable)")
    args = parser.parse_args()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = args.only or ["gradient", "attention", "encoder", "embeddings"]
    results: dict[str, Any] = {}
    if "gradient" in parts:
        results["gradient"] = vanishing_gradient(out, args.seq_len, args.seed)
    if "attention" in parts:
        results["attention"] = gpt_attention(out, args.gpt_run, args.steps, args.seed)
    if "encoder" in parts:
        results["encoder"] = encoder_attention(out, args.encoder_epochs, args.seed)
    if "embeddings" in parts:
        results["embeddings"] = embeddings(out, args.lstm_run, args.steps, args.seed)
    print("\n" + json.dumps(results, default=str)[:2000])


if __name__ == "__main__":
    main()
