"""What the notes say about sequence models, measured and drawn: the vanishing (and exploding)
gradient of recurrent networks, attention maps of transformers, and the neighbourhoods of learned
character embeddings.

- ``gradient_through_time(model_or_kind, seq_len)``: how much of the gradient of a loss at the last
  step reaches each earlier input, for a vanilla RNN, an LSTM or a GRU (Bengio, Simard & Frasconi
  1994; Hochreiter & Schmidhuber 1997; Pascanu, Mikolov & Bengio 2013), and
  ``plot_gradient_through_time`` that draws the curves on a log axis against the distance;
  ``exploding_gradient_table``: the gradient norm of RNNs whose recurrent weights are scaled up, and
  what ``nn.utils.clip_grad_norm_`` does to the update.
- ``capture_attention(model, *inputs)`` and ``plot_attention(maps, tokens, path)``
  (``deepnum/seqviz_attention.py``): per-head attention weights, drawn as query × key heat maps.
- ``embedding_neighbours(weight, vocab, queries)``, ``embedding_pca`` and ``plot_embeddings``
  (``deepnum/seqviz_embedding.py``): nearest characters by cosine similarity and a 2-D PCA scatter.
- ``load_language_model(run)``: a model written by ``deepnum lm``
  with its vocabulary (``deepnum/seqviz_runs.py``).

Figures are drawn as in ``deepnum.viz`` (matplotlib's Agg canvas at ``viz.DPI``, a title band of
``viz.TITLE_PX`` pixels, exact documented sizes, atomic writes); matplotlib is optional: ``pip install
matplotlib`` (``deepnum[plot]``). ``examples/sequences_explained.py`` makes the figures of
``docs/sequences.md``; ``deepnum viz vanishing-gradient|text-attention|neighbours`` draws them from
the command line.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from deepnum.autograd.functional_api import grad
from deepnum.autograd.grad_mode import no_grad
from deepnum.nn.modules.module import Module
from deepnum.random import Generator, manual_seed, randn
from deepnum.seqviz_attention import (
    attention_statistics,
    capture_attention,
    char_label,
    format_attention_statistics,
    plot_attention,
)
from deepnum.seqviz_embedding import char_class, embedding_neighbours, embedding_pca, plot_embeddings
from deepnum.seqviz_runs import LanguageModelError, LanguageRun, embedding_of, load_language_model
from deepnum.tensor import Tensor
from deepnum.viz import TITLE_PX, _new_figure, _save, _suptitle

__all__ = ["KINDS", "LanguageModelError", "LanguageRun", "attention_statistics", "capture_attention", "char_class",
           "char_label", "embedding_neighbours", "embedding_of", "embedding_pca", "exploding_gradient_table",
           "format_attention_statistics",
           "gradient_figure_size", "gradient_through_time", "load_language_model", "make_recurrent", "plot_attention",
           "plot_embeddings", "plot_gradient_through_time"]

KINDS = ("rnn", "lstm", "gru")


# ----------------------------------------------------------------- gradient through time
def make_recurrent(kind: str, input_size: int = 8, hidden_size: int = 64, seed: int = 0,
                   forget_bias: float = 0.0) -> Module:
    """A one-layer ``batch_first`` ``nn.RNN`` (tanh), ``nn.LSTM`` or ``nn.GRU`` at PyTorch's default
    initialisation (every weight uniform in ±1/√hidden_size), its weights drawn after
    ``manual_seed(seed)``. ``forget_bias`` (LSTM only) is added to the forget gate's input bias
    (rows H…2H of ``bias_ih_l0``, gate order i, f, g, o): a forget gate that starts near 1 keeps the
    cell state, and its gradient, over long spans (Gers, Schmidhuber & Cummins 2000; Jozefowicz,
    Zaremba & Sutskever 2015 recommend 1)."""
    from deepnum import nn

    layers = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
    if kind not in layers:
        raise ValueError(f"make_recurrent: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if input_size < 1 or hidden_size < 1:
        raise ValueError(f"make_recurrent: input_size and hidden_size must be >= 1, got {input_size}, {hidden_size}")
    if forget_bias and kind != "lstm":
        raise ValueError(f"make_recurrent: forget_bias is for an LSTM, not {kind!r}")
    manual_seed(seed)
    layer = layers[kind](input_size, hidden_size, batch_first=True)
    if forget_bias:
        layer.bias_ih_l0.data[hidden_size:2 * hidden_size] += forget_bias
    return layer


def _model_and_dtype(model_or_kind: Module | str, input_size: int, hidden_size: int, seed: int) -> tuple[Module, Any]:
    model = make_recurrent(model_or_kind, input_size, hidden_size, seed) if isinstance(model_or_kind, str) \
        else model_or_kind
    if not isinstance(model, Module):
        raise TypeError(f"gradient_through_time: expected a recurrent Module or one of {', '.join(KINDS)}, got "
                        f"{type(model_or_kind).__name__}")
    params = list(model.parameters())
    if not params or not hasattr(model, "input_size"):
        raise TypeError(f"gradient_through_time: {type(model).__name__} is not a recurrent layer (nn.RNN, nn.LSTM or "
                        "nn.GRU)")
    return model, params[0].dtype


def _as_tensor(values: Any, dtype: Any) -> Any:
    from deepnum.creation import tensor

    return tensor(np.asarray(values.numpy() if isinstance(values, Tensor) else values), dtype=dtype)


def gradient_through_time(model_or_kind: Module | str, seq_len: int = 100, *, batch_size: int = 32,
                          input_size: int = 8, hidden_size: int = 64, seed: int = 0, inputs: Any = None,
                          readout: Any = None) -> np.ndarray:
    """How much gradient reaches each earlier time step: ``norms[d]`` is the batch mean of
    ``‖∂L/∂x_{T-d}‖`` for a loss ``L`` at the last step T, d = 0 … T-1 the distance back.

    Backpropagation through time multiplies one Jacobian per step, ``∂h_T/∂h_t = Π_{s=t+1..T}
    ∂h_s/∂h_{s-1}``; for a tanh RNN each factor is ``diag(1 - h_s²) W_hh``, so when its norm stays
    below 1 the gradient decays geometrically with the distance, and explodes when it stays above 1
    (Bengio, Simard & Frasconi 1994, "Learning long-term dependencies with gradient descent is
    difficult"; Pascanu, Mikolov & Bengio 2013, "On the difficulty of training recurrent neural
    networks"). The LSTM's cell state is updated additively, ``c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t``, so
    along it the factor is the forget gate itself, which the network can hold near 1 (Hochreiter &
    Schmidhuber 1997, "Long short-term memory": the "constant error carousel").

    ``model_or_kind``: ``"rnn"``, ``"lstm"`` or ``"gru"`` (built by ``make_recurrent`` with
    ``input_size``, ``hidden_size`` and ``seed``), or a one-directional recurrent layer (``nn.RNN``,
    ``nn.LSTM``, ``nn.GRU``; ``batch_first`` or not). ``inputs`` (N, T, input_size) batch-first
    defaults to standard normal values from ``Generator().manual_seed(seed)``, ``readout`` (N,
    hidden) to standard normal values drawn after them. The loss is the readout of the last output,
    ``L = Σ_n u_n · h_T,n``; with Gaussian ``u`` the mean of ``‖∂L/∂x_t‖²`` equals the squared
    Frobenius norm of the Jacobian ``∂h_T/∂x_t``, so one backward pass measures the whole Jacobian
    on average. Returns the float64 NumPy array ``norms`` of length T (index = distance)."""
    model, dtype = _model_and_dtype(model_or_kind, input_size, hidden_size, seed)
    if getattr(model, "bidirectional", False):
        raise ValueError("gradient_through_time: a bidirectional layer has no single last step; use a "
                         "one-directional one")
    gen = Generator().manual_seed(seed)
    if inputs is None:
        if seq_len < 1 or batch_size < 1:
            raise ValueError(f"gradient_through_time: seq_len and batch_size must be >= 1, got {seq_len}, "
                             f"{batch_size}")
        x = randn(batch_size, seq_len, model.input_size, generator=gen, dtype=dtype)
    else:
        x = _as_tensor(inputs, dtype)
        if x.ndim != 3 or x.shape[2] != model.input_size:
            raise ValueError(f"gradient_through_time: inputs must be (N, T, {model.input_size}) batch-first, got "
                             f"{tuple(x.shape)}")
    x.requires_grad_(True)
    batch_first = getattr(model, "batch_first", False)
    output = model(x if batch_first else x.transpose(0, 1))[0]
    last = output[:, -1] if batch_first else output[-1]
    u = randn(*last.shape, generator=gen, dtype=dtype) if readout is None else _as_tensor(readout, dtype)
    if tuple(u.shape) != tuple(last.shape):
        raise ValueError(f"gradient_through_time: readout must be {tuple(last.shape)}, got {tuple(u.shape)}")
    (dx,) = grad((last * u).sum(), [x])      # only ∂L/∂x: the layer's parameters get no .grad
    grad_x = np.asarray(dx.numpy(), dtype=np.float64)
    return np.sqrt((grad_x ** 2).sum(axis=2)).mean(axis=0)[::-1].copy()


def _total_grad_norm(params: Sequence[Any]) -> float:
    return math.sqrt(sum(float((np.asarray(p.grad.numpy(), dtype=np.float64) ** 2).sum()) for p in params
                         if p.grad is not None))


def exploding_gradient_table(scales: Sequence[float] = (1.0, 2.0, 3.0, 4.0), *, seq_len: int = 100,
                             batch_size: int = 32, input_size: int = 8, hidden_size: int = 64, max_norm: float = 1.0,
                             lr: float = 0.1, seed: int = 0) -> list[dict[str, float]]:
    """Exploding gradients and gradient clipping: for each factor in ``scales`` a tanh ``nn.RNN``
    (``make_recurrent("rnn", ...)``) with ``weight_hh_l0`` multiplied by it and a ``nn.Linear(hidden,
    1)`` head regress a random target from the last step (mean squared error, fixed seeded batch).

    Once the recurrent Jacobians have norms above 1 the gradient grows geometrically with the
    sequence length (Pascanu et al. 2013), and one SGD step of size ``lr · ‖g‖`` throws the weights
    far away. ``nn.utils.clip_grad_norm_(params, max_norm)`` rescales g by ``min(1, max_norm/‖g‖)``:
    the same direction, a bounded step. Returns one row per scale: ``scale``, ``grad_norm`` (before
    clipping), ``clipped_norm`` (after), ``step`` and ``clipped_step`` (the SGD update norms
    ``lr·‖g‖`` without and with clipping), ``loss`` (before the step), ``loss_after`` and
    ``loss_after_clipped`` (after one step without and with clipping)."""
    from deepnum import nn
    from deepnum.nn.utils import clip_grad_norm_

    gen = Generator().manual_seed(seed + 1)
    x = randn(batch_size, seq_len, input_size, generator=gen)
    y = randn(batch_size, 1, generator=gen)
    rows = []
    for scale in scales:
        row: dict[str, float] = {"scale": float(scale)}
        for clip in (False, True):
            rnn = make_recurrent("rnn", input_size, hidden_size, seed)
            head = nn.Linear(hidden_size, 1)
            with no_grad():
                rnn.weight_hh_l0.mul_(float(scale))
            params = list(rnn.parameters()) + list(head.parameters())

            def loss_fn(rnn: Module = rnn, head: Module = head) -> Any:
                return ((head(rnn(x)[0][:, -1]) - y) ** 2).mean()

            loss = loss_fn()
            loss.backward()
            norm = float(clip_grad_norm_(params, max_norm if clip else math.inf).item())
            after = _total_grad_norm(params)
            with no_grad():
                for p in params:
                    p.sub_(lr * p.grad)
                loss_after = float(loss_fn().item())
            if clip:
                row.update(clipped_norm=after, clipped_step=lr * after, loss_after_clipped=loss_after)
            else:
                row.update(grad_norm=norm, step=lr * after, loss=float(loss.item()), loss_after=loss_after)
        rows.append(row)
    return rows


def gradient_study(seq_len: int = 100, *, hidden_size: int = 64, batch_size: int = 32, input_size: int = 8,
                   seed: int = 0, exploding: bool = True, scales: Sequence[float] = (1.0, 2.0, 3.0, 4.0)
                   ) -> dict[str, Any]:
    """The measurements behind ``docs/sequences_vanishing_gradient.png`` (``plot_gradient_through_time``):
    ``curves``: ``gradient_through_time`` of a tanh RNN, an LSTM and an LSTM with forget-gate bias 1
    (``make_recurrent(..., forget_bias=1)``), all at PyTorch's default initialisation and the same seed;
    with ``exploding``, also ``exploding``: the curves of tanh RNNs with ``weight_hh_l0`` multiplied by
    each of ``scales`` (except 1), and ``clipping``: ``exploding_gradient_table(scales)``."""
    common = {"input_size": input_size, "hidden_size": hidden_size, "seed": seed}
    measure = {"seq_len": seq_len, "batch_size": batch_size, "seed": seed}
    curves = {"tanh RNN": gradient_through_time(make_recurrent("rnn", **common), **measure),
              "LSTM": gradient_through_time(make_recurrent("lstm", **common), **measure),
              "LSTM, forget bias 1": gradient_through_time(make_recurrent("lstm", forget_bias=1.0, **common),
                                                           **measure)}
    study: dict[str, Any] = {"curves": curves}
    if exploding:
        study["exploding"] = {}
        for scale in scales:
            rnn = make_recurrent("rnn", **common)
            rnn.weight_hh_l0.data *= scale
            study["exploding"][f"tanh RNN, W_hh ×{scale:g}"] = gradient_through_time(rnn, **measure)
        study["clipping"] = exploding_gradient_table(scales, seq_len=seq_len, batch_size=batch_size,
                                                     input_size=input_size, hidden_size=hidden_size, seed=seed)
    return study


def gradient_figure_size(panels: int, panel_px: int = 448) -> tuple[int, int]:
    """(width, height) in pixels of ``plot_gradient_through_time``: ``panels · panel_px`` ×
    ``3·panel_px/4 + TITLE_PX`` (``panel_px`` a multiple of 4)."""
    return panels * panel_px, 3 * panel_px // 4 + TITLE_PX


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _power_label(value: float, _: Any = None) -> str:
    """A log-axis tick label 10ⁿ in Unicode superscripts (matplotlib's default, mathtext, looks for
    fonts that are often not installed and logs a warning for each)."""
    if value <= 0:
        return ""
    exponent = math.log10(value)
    return f"10{str(round(exponent)).translate(_SUPERSCRIPT)}" if abs(exponent - round(exponent)) < 1e-6 else ""


def _log_y(ax: Any) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=9))
    ax.yaxis.set_major_formatter(FuncFormatter(_power_label))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))


def _curve_panel(ax: Any, curves: Mapping[str, np.ndarray], title: str) -> None:
    for name, norms in curves.items():
        norms = np.asarray(norms, dtype=np.float64)
        shown = np.where(norms > 0, norms, np.nan)  # an exact 0 (underflow) has no place on a log axis
        ratio = f" (d50/d1: {norms[50] / norms[1]:.1e})" if norms.size > 50 and norms[1] > 0 else ""
        ax.plot(np.arange(norms.size), shown, label=name + ratio, linewidth=1.2)
    _log_y(ax)
    ax.set_xlabel("distance T − t (steps back from the loss)", fontsize=6)
    ax.set_ylabel("mean ‖∂L/∂x_t‖", fontsize=6)
    ax.set_title(title, fontsize=7)
    ax.tick_params(labelsize=5)
    ax.grid(True, which="major", linewidth=0.3, alpha=0.5)
    ax.legend(fontsize=5, loc="best")


def _clipping_panel(ax: Any, table: Sequence[Mapping[str, float]]) -> None:
    labels = [f"×{row['scale']:g}" for row in table]
    pos = np.arange(len(table))
    before = [row["grad_norm"] for row in table]
    after = [row["clipped_norm"] for row in table]
    ax.bar(pos - 0.2, before, 0.4, label="‖g‖ before clipping")
    ax.bar(pos + 0.2, after, 0.4, label="after clip_grad_norm_")
    _log_y(ax)
    ax.set_xticks(pos, labels)
    for p, b in zip(pos, before, strict=True):
        ax.annotate(f"{b:.2g}", (p - 0.2, b), ha="center", va="bottom", fontsize=5)
    ax.set_xlabel("recurrent weights W_hh scaled by", fontsize=6)
    ax.set_ylabel("total parameter-gradient norm", fontsize=6)
    ax.set_title("clipping bounds the update", fontsize=7)
    ax.tick_params(labelsize=5)
    ax.legend(fontsize=5, loc="upper left")


def plot_gradient_through_time(curves: Mapping[str, np.ndarray], path: str | os.PathLike, *,
                               exploding: Mapping[str, np.ndarray] | None = None,
                               clipping: Sequence[Mapping[str, float]] | None = None, title: str | None = None,
                               panel_px: int = 448) -> str:
    """Draw gradient-norm curves (``{label: norms}`` from ``gradient_through_time``) on a log y-axis
    against the distance T − t (the legend gives each curve's ratio between distances 50 and 1 when
    it is that long); optionally a second panel of ``exploding`` curves (RNNs with scaled-up
    recurrent weights) and a third of the ``clipping`` rows of ``exploding_gradient_table`` (bars:
    gradient norm before and after ``clip_grad_norm_``). The PNG is ``gradient_figure_size(panels,
    panel_px)`` pixels; returns the path written."""
    if not curves:
        raise ValueError("plot_gradient_through_time: expected at least one curve")
    if int(panel_px) != panel_px or panel_px < 128 or panel_px % 4:
        raise ValueError(f"plot_gradient_through_time: panel_px must be a multiple of 4 >= 128, got {panel_px!r}")
    panels = 1 + (exploding is not None) + (clipping is not None)
    width, height = gradient_figure_size(panels, int(panel_px))
    fig = _new_figure(width, height)
    top = 1 - TITLE_PX / height
    _suptitle(fig, title or "gradient reaching earlier time steps (vanishing and exploding gradients)")
    boxes = iter([((i + 0.17) / panels, 0.12, 0.78 / panels, top - 0.19) for i in range(panels)])
    _curve_panel(fig.add_axes(next(boxes)), curves, "default initialisation")
    if exploding is not None:
        _curve_panel(fig.add_axes(next(boxes)), exploding, "tanh RNN, W_hh scaled up: exploding")
    if clipping is not None:
        _clipping_panel(fig.add_axes(next(boxes)), clipping)
    return _save(fig, path)
