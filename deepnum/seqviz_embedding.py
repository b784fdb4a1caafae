"""Learned character embeddings (``deepnum.seqviz``): nearest neighbours and a 2-D PCA picture.

An ``nn.Embedding`` of a character language model maps each of the V characters to a learned vector
(row i of its weight, V × D). Characters that can stand in the same contexts get similar gradients
and so drift towards similar vectors (the distributional hypothesis behind word2vec: Mikolov et al.
2013), so the geometry of the rows shows what the model learned: one expects vowels near vowels,
the upper- and lower-case forms of a letter close together, digits together and punctuation
together. Nearness is measured by cosine similarity ``cos(a, b) = a·b / (‖a‖‖b‖)`` (the direction,
not the length, which tracks frequency), and the whole table is drawn on its first two principal
components (PCA by the SVD of the centred matrix).
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from deepnum.viz import TITLE_PX, _new_figure, _save, _suptitle, _to_numpy

__all__ = ["CHAR_CLASSES", "char_class", "embedding_neighbours", "embedding_pca", "plot_embeddings"]

CHAR_CLASSES = ("lower vowel", "lower consonant", "upper vowel", "upper consonant", "digit", "punctuation",
                "whitespace")
_COLOURS = dict(zip(CHAR_CLASSES, ("tab:red", "tab:blue", "tab:orange", "tab:cyan", "tab:green", "tab:purple",
                                   "tab:gray"), strict=True))


def char_class(char: str) -> str:
    """The class of a character, one of ``CHAR_CLASSES`` (vowels are a, e, i, o, u and y)."""
    if char.isalpha():
        vowel = char.lower() in "aeiouy"
        return ("lower " if char.islower() else "upper ") + ("vowel" if vowel else "consonant")
    if char.isdigit():
        return "digit"
    if char.isspace():
        return "whitespace"
    return "punctuation"


def _weight_matrix(weight: Any) -> np.ndarray:
    """An ``nn.Embedding``, Tensor or array as a float64 (V, D) NumPy matrix."""
    weight = getattr(weight, "weight", weight)
    matrix = np.asarray(_to_numpy(weight), dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] < 2:
        raise ValueError(f"embedding: expected a (num_embeddings, embedding_dim) weight with at least 2 rows, got "
                         f"shape {matrix.shape}")
    return matrix


def _vocab_list(vocab: str | Sequence[str], rows: int) -> list[str]:
    chars = list(vocab)
    if len(chars) != rows:
        raise ValueError(f"embedding: the vocabulary has {len(chars)} entries but the weight has {rows} rows")
    if len(set(chars)) != len(chars):
        raise ValueError("embedding: the vocabulary has repeated entries")
    return chars


def embedding_neighbours(weight: Any, vocab: str | Sequence[str], queries: Iterable[str], k: int = 5,
                         metric: str = "cosine") -> dict[str, list[tuple[str, float]]]:
    """The ``k`` nearest entries of each query in a learned embedding: ``{query: [(entry, score),
    ...]}`` nearest first, the query itself left out.

    ``weight``: the (V, D) matrix (an ``nn.Embedding``, a Tensor or an array), row i the vector of
    ``vocab[i]`` (a string of V characters or a sequence of V tokens). ``metric="cosine"`` ranks by
    the cosine similarity of the rows (score = similarity, higher is nearer; a zero row has
    similarity 0 to everything), ``"euclidean"`` by the distance (score = distance, lower is
    nearer). All queries are scored by one matrix product; ties keep the vocabulary order. Unknown
    queries raise a ValueError naming them."""
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"embedding_neighbours: metric must be 'cosine' or 'euclidean', got {metric!r}")
    if int(k) != k or k < 1:
        raise ValueError(f"embedding_neighbours: k must be a positive integer, got {k!r}")
    w = _weight_matrix(weight)
    chars = _vocab_list(vocab, w.shape[0])
    index = {c: i for i, c in enumerate(chars)}
    queries = list(queries)
    unknown = [q for q in queries if q not in index]
    if unknown:
        raise ValueError(f"embedding_neighbours: {', '.join(map(repr, unknown))} not in the vocabulary of "
                         f"{len(chars)} entries")
    rows = np.array([index[q] for q in queries], dtype=np.int64)
    if metric == "cosine":
        norms = np.linalg.norm(w, axis=1, keepdims=True)
        unit = w / np.where(norms > 0, norms, 1.0)
        scores = unit[rows] @ unit.T
        order_key = -scores
    else:
        sq = (w ** 2).sum(axis=1)
        scores = np.sqrt(np.maximum(sq[rows, None] + sq[None, :] - 2 * w[rows] @ w.T, 0.0))
        order_key = scores.copy()
    order_key[np.arange(rows.size), rows] = np.inf      # never the query itself
    order = np.argsort(order_key, axis=1, kind="stable")[:, :min(int(k), w.shape[0] - 1)]
    return {q: [(chars[j], float(scores[i, j])) for j in order[i]] for i, q in enumerate(queries)}


def embedding_pca(weight: Any, n_components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Principal components of the embedding rows: ``(coords (V, n_components), explained (n_components,))``.

    The rows are centred, ``X = W − mean(W)``, and factored by the SVD ``X = U S Vᵀ``; the
    coordinates are ``U S`` (the projections on the principal directions, largest variance first)
    and ``explained`` is each component's share of the total variance, ``S² / ΣS²``. Each
    component's sign is fixed so that its largest-magnitude coordinate is positive (the SVD's sign is
    arbitrary). float64 NumPy arrays."""
    w = _weight_matrix(weight)
    if int(n_components) != n_components or not 1 <= n_components <= min(w.shape):
        raise ValueError(f"embedding_pca: n_components must be in [1, {min(w.shape)}], got {n_components!r}")
    x = w - w.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    coords = u[:, :n_components] * s[:n_components]
    peak = coords[np.abs(coords).argmax(axis=0), np.arange(n_components)]
    coords *= np.where(peak < 0, -1.0, 1.0)
    total = float((s ** 2).sum())
    explained = (s[:n_components] ** 2) / (total if total > 0 else 1.0)
    return coords, explained


def plot_embeddings(weight: Any, vocab: str | Sequence[str], path: str | os.PathLike, *, title: str | None = None,
                    size: int = 640) -> np.ndarray:
    """Scatter the embedding rows on their first two principal components (``embedding_pca``), each
    point drawn as its character (``char_label``: a space as ␣, a newline as ↵), coloured by
    ``char_class``. The PNG is ``size × (size + TITLE_PX)`` pixels. Returns the coordinates (V, 2)."""
    from deepnum.seqviz_attention import char_label

    if int(size) != size or size < 128:
        raise ValueError(f"plot_embeddings: size must be an integer number of pixels >= 128, got {size!r}")
    w = _weight_matrix(weight)
    chars = _vocab_list(vocab, w.shape[0])
    coords, explained = embedding_pca(w, 2)
    fig = _new_figure(int(size), int(size) + TITLE_PX)
    top = 1 - TITLE_PX / (size + TITLE_PX)
    _suptitle(fig, title or f"character embeddings ({w.shape[0]}×{w.shape[1]}) on their first two principal "
                            f"components")
    ax = fig.add_axes((0.09, 0.08, 0.88, top - 0.10))
    classes = [char_class(c) if len(c) == 1 else "punctuation" for c in chars]
    for cls in CHAR_CLASSES:
        pick = [i for i, c in enumerate(classes) if c == cls]
        if pick:
            ax.scatter(coords[pick, 0], coords[pick, 1], s=0, label=cls)   # invisible: legend entries only
            for i in pick:
                ax.text(coords[i, 0], coords[i, 1], char_label(chars[i]), color=_COLOURS[cls], fontsize=7,
                        ha="center", va="center", fontweight="bold")
    pad = 0.06 * (coords.max(axis=0) - coords.min(axis=0) + 1e-12)
    ax.set_xlim(coords[:, 0].min() - pad[0], coords[:, 0].max() + pad[0])
    ax.set_ylim(coords[:, 1].min() - pad[1], coords[:, 1].max() + pad[1])
    ax.set_xlabel(f"PC 1 ({100 * explained[0]:.1f}% of the variance)", fontsize=7)
    ax.set_ylabel(f"PC 2 ({100 * explained[1]:.1f}% of the variance)", fontsize=7)
    ax.tick_params(labelsize=6)
    legend = ax.legend(fontsize=6, loc="best", markerscale=0, handlelength=0)
    for text, cls in zip(legend.get_texts(), [c for c in CHAR_CLASSES if c in classes], strict=True):
        text.set_color(_COLOURS[cls])
    _save(fig, path)
    return coords

