"""Attention maps of transformers (``deepnum.seqviz``): capture the per-head attention weights of a
model for one input and draw them as query × key heat maps labelled with the tokens.

Self-attention (Vaswani et al. 2017, "Attention is all you need") gives every query position i a
probability distribution over the key positions j, ``A = softmax(QKᵀ/√d_k + M)``: row i of a head's
map says where position i reads from (each row sums to 1). A causal (decoder, GPT-style) model masks
the future, ``M_ij = −∞`` for j > i, so its maps are zero above the diagonal. Heads learn different
patterns: attending to the previous character, to the start of the word, to the last space or
newline, or spread evenly (averaging).
"""
from __future__ import annotations

import inspect
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepnum.autograd.grad_mode import no_grad
from deepnum.nn.modules.module import Module
from deepnum.viz import TITLE_PX, _new_figure, _save, _suptitle, _to_numpy

__all__ = ["attention_statistics", "attention_tile", "capture_attention", "char_label", "plot_attention",
           "stack_attention"]

_SHOWN = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}


def char_label(token: str) -> str:
    """How a token is printed on an axis: a space as ␣, a newline as ↵, a tab as ⇥, other control
    characters by their escape (``repr`` without quotes); anything else as it is."""
    if token in _SHOWN:
        return _SHOWN[token]
    if len(token) == 1 and not token.isprintable():
        return repr(token)[1:-1]
    return token


def _wrap_attention(mha: Module, captured: list[Any]) -> Any:
    """A replacement ``forward`` of one ``MultiheadAttention`` that always asks for per-head weights,
    records them and returns what the caller asked for."""
    original = mha.forward

    def forward(query: Any, key: Any, value: Any, key_padding_mask: Any = None, need_weights: bool = True,
                attn_mask: Any = None, average_attn_weights: bool = True, is_causal: bool = False) -> Any:
        out, weights = original(query, key, value, key_padding_mask=key_padding_mask, need_weights=True,
                                attn_mask=attn_mask, average_attn_weights=False, is_causal=is_causal)
        captured.append(weights)
        if not need_weights:
            return out, None
        return out, (weights.mean(-3) if average_attn_weights else weights)

    return forward


def _own_attention_maps(model: Module) -> Any:
    """``model.attention_maps`` when it takes the input (``CharGPT.attention_maps(x)``), else None."""
    method = getattr(model, "attention_maps", None)
    if not callable(method):
        return None
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return None
    return method if params else None


def capture_attention(model: Module, *inputs: Any, **kwargs: Any) -> list[np.ndarray]:
    """The attention weights of every attention layer of ``model`` for one forward pass on
    ``inputs``, as float32 NumPy arrays (N, heads, L, S), first layer first.

    A model that computes its own maps, ``model.attention_maps(x)`` (``deepnum.models.language.CharGPT``),
    is asked directly. Otherwise each ``nn.MultiheadAttention`` inside it (e.g. the ``self_attn`` of
    ``nn.TransformerEncoderLayer``, which calls it with ``need_weights=False``) has its ``forward``
    replaced for the duration of the pass by one that also computes the per-head weights and records
    them; the layer's own output and the caller's masks are unchanged. The pass runs in eval mode
    (no dropout) without gradients, and every module's mode is restored afterwards."""
    from deepnum.nn.modules.attention import MultiheadAttention

    modes = {m: m.training for m in model.modules()}
    own = _own_attention_maps(model)
    attentions = [m for m in model.modules() if isinstance(m, MultiheadAttention)]
    if own is None and not attentions:
        raise ValueError(f"capture_attention: {type(model).__name__} has no nn.MultiheadAttention layer and no "
                         "attention_maps(x) method, so it has no attention to show")
    captured: list[Any] = []
    try:
        model.eval()
        with no_grad():
            if own is not None:
                captured = list(own(*inputs, **kwargs))
            else:
                for mha in attentions:
                    object.__setattr__(mha, "forward", _wrap_attention(mha, captured))
                model(*inputs, **kwargs)
    finally:
        for mha in attentions:
            mha.__dict__.pop("forward", None)
        for m, mode in modes.items():
            object.__setattr__(m, "training", mode)
    maps = [_to_numpy(w).astype(np.float32, copy=False) for w in captured]
    return [m[None] if m.ndim == 3 else m for m in maps]  # unbatched (heads, L, S) → (1, heads, L, S)


def stack_attention(maps: Any, sample: int = 0) -> np.ndarray:
    """Attention maps as one float32 array (layers, heads, L, S): a 3-D array is one layer's heads
    (heads, L, S), a 4-D array is (layers, heads, L, S); a list holds one layer each, (heads, L, S)
    or (N, heads, L, S) of which sample ``sample`` is taken (what ``capture_attention`` returns)."""
    if isinstance(maps, (list, tuple)):
        if not maps:
            raise ValueError("plot_attention: expected attention maps, got an empty list")
        layers = []
        for i, m in enumerate(maps):
            m = _to_numpy(m)
            if m.ndim == 4:
                if not -m.shape[0] <= sample < m.shape[0]:
                    raise ValueError(f"plot_attention: sample {sample} is out of range for a batch of {m.shape[0]}")
                m = m[sample]
            if m.ndim != 3 or (layers and m.shape != layers[0].shape):
                raise ValueError(f"plot_attention: layer {i} has attention of shape {m.shape}; expected (heads, L, "
                                 f"S) or (N, heads, L, S), the same for every layer")
            layers.append(m)
        out = np.stack(layers)
    else:
        out = _to_numpy(maps)
        out = out[None] if out.ndim == 3 else out
        if out.ndim != 4:
            raise ValueError(f"plot_attention: expected maps (heads, L, S) or (layers, heads, L, S), got "
                             f"{out.shape}")
    return out.astype(np.float32, copy=False)


def attention_tile(length: int) -> int:
    """The pixel size of one head's tile for ``length`` tokens: about 11 pixels per token plus room
    for the labels, ``clamp(16·ceil((11·length + 48)/16), 160, 640)``."""
    return int(min(640, max(160, 16 * math.ceil((11 * length + 48) / 16))))


def _ticks(ax: Any, labels: Sequence[str], axis: str, px_per_token: float) -> None:
    """Label every token when there is room, else every k-th: a label needs about 5 pixels of height
    (y axis) or its width, ~0.6 em per character plus a 3-pixel gap (x axis)."""
    n = len(labels)
    size = float(min(6.5, max(3.0, 0.8 * px_per_token * 72 / 128)))
    widest = max((len(label) for label in labels), default=1)
    need = 0.6 * size * 128 / 72 * widest + 3 if axis == "x" else 5.0
    step = max(1, math.ceil(need / px_per_token))
    pos = np.arange(0, n, step)
    if axis == "x":
        ax.set_xticks(pos, [labels[i] for i in pos], fontsize=size, rotation=0)
    else:
        ax.set_yticks(pos, [labels[i] for i in pos], fontsize=size)
    ax.tick_params(axis=axis, length=0, pad=1)


def plot_attention(maps: Any, tokens: Sequence[str], path: str | os.PathLike, *,
                   key_tokens: Sequence[str] | None = None, title: str | None = None, sample: int = 0,
                   tile: int | None = None, cmap: str = "viridis") -> np.ndarray:
    """Heat maps of attention weights, one tile per head: rows are the queries (labelled with
    ``tokens``), columns the keys (``key_tokens``, default the same tokens); brighter = more weight,
    each map scaled to its own maximum. ``maps``: see ``stack_attention``; the grid has one row per
    layer and one column per head. Characters are shown with ``char_label`` (a space as ␣, a
    newline as ↵). The PNG is ``(heads·tile) × (layers·tile + TITLE_PX)`` pixels, ``tile`` defaulting
    to ``attention_tile(max(L, S))``. Returns the maps drawn (layers, heads, L, S) float32."""
    stacked = stack_attention(maps, sample)
    layers, heads, length, keys = stacked.shape
    key_tokens = tokens if key_tokens is None else key_tokens
    if len(tokens) != length or len(key_tokens) != keys:
        raise ValueError(f"plot_attention: maps have {length} queries and {keys} keys but {len(tokens)} query and "
                         f"{len(key_tokens)} key tokens were given")
    tile = attention_tile(max(length, keys)) if tile is None else int(tile)
    if tile < 64:
        raise ValueError(f"plot_attention: tile must be at least 64 pixels, got {tile}")
    width, height = heads * tile, layers * tile + TITLE_PX
    fig = _new_figure(width, height)
    top = 1 - TITLE_PX / height
    _suptitle(fig, title or f"attention weights: {layers} layer(s) × {heads} head(s), rows = queries, "
                            f"columns = keys")
    cell_w, cell_h = 1 / heads, top / layers
    margin = 0.11
    q_labels, k_labels = [char_label(t) for t in tokens], [char_label(t) for t in key_tokens]
    for layer in range(layers):
        for head in range(heads):
            ax = fig.add_axes((head * cell_w + margin * cell_w, top - (layer + 1) * cell_h + margin * cell_h,
                               (1 - 1.4 * margin) * cell_w, (1 - 1.8 * margin) * cell_h))
            m = stacked[layer, head]
            peak = float(m.max())
            ax.imshow(m, cmap=cmap, vmin=0, vmax=peak if peak > 0 else 1, interpolation="nearest", aspect="auto")
            ax.set_title(f"layer {layer}, head {head}" if layers > 1 else f"head {head}", fontsize=6, pad=2)
            _ticks(ax, q_labels, "y", (1 - 1.8 * margin) * tile / length)
            _ticks(ax, k_labels, "x", (1 - 1.4 * margin) * tile / keys)
    _save(fig, path)
    return stacked


def attention_statistics(maps: Any, sample: int = 0) -> dict[str, np.ndarray]:
    """Per-head summaries of self-attention maps (``stack_attention`` layouts), each a (layers, heads)
    float64 array averaged over the queries: ``self`` (weight on the query's own position),
    ``previous`` (on the position just before it; queries from position 1 on), ``first`` (on
    position 0), ``distance`` (the expected distance back ``Σ_j A_ij·(i − j)``) and ``entropy`` (of
    each row, in nats; ln S for uniform attention over S keys, 0 for attention on one key); and
    ``offset`` (layers, heads, K), K = min(L, 8): the mean weight on the position d steps back,
    ``A_{i,i−d}`` averaged over the queries i ≥ d (``offset[..., 0]`` is ``self``, ``offset[..., 1]``
    is ``previous``), which shows heads that look a fixed number of characters back."""
    a = stack_attention(maps, sample).astype(np.float64)
    length, keys = a.shape[2], a.shape[3]
    if length != keys:
        raise ValueError(f"attention_statistics: self-attention maps must be square, got {length} queries and "
                         f"{keys} keys")
    idx = np.arange(length)
    previous = a[:, :, idx[1:], idx[1:] - 1].mean(axis=-1) if length > 1 else np.zeros(a.shape[:2])
    logs = np.log(np.where(a > 0, a, 1.0))
    offset = np.stack([a[:, :, idx[d:], idx[d:] - d].mean(axis=-1) for d in range(min(length, 8))], axis=-1)
    return {"self": a[:, :, idx, idx].mean(axis=-1), "previous": previous, "offset": offset,
            "first": a[:, :, :, 0].mean(axis=-1),
            "distance": (a * (idx[:, None] - idx[None, :])).sum(axis=-1).mean(axis=-1),
            "entropy": -(a * logs).sum(axis=-1).mean(axis=-1)}


def format_attention_statistics(stats: dict[str, np.ndarray], indent: str = "  ") -> str:
    """``attention_statistics`` as a text table, one row per layer and head."""
    lines = [f"{indent}layer head   self  previous  first  distance back  entropy  most weight d back"]
    for layer in range(stats["self"].shape[0]):
        for head in range(stats["self"].shape[1]):
            offsets = stats["offset"][layer, head]
            lines.append(f"{indent}{layer:>5} {head:>4}  {stats['self'][layer, head]:5.2f}  "
                         f"{stats['previous'][layer, head]:8.2f}  {stats['first'][layer, head]:5.2f}  "
                         f"{stats['distance'][layer, head]:13.2f}  {stats['entropy'][layer, head]:7.2f}  "
                         f"d={int(offsets.argmax())} ({offsets.max():.2f})")
    return "\n".join(lines)
