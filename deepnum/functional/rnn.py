"""Recurrent networks: the cells (one time step, written with differentiable Tensor ops, the form to
read) and the fused layer op ``rnn_layer`` (one direction of one layer over a whole sequence, the
form that runs fast).

The cells, with x the input, h the previous hidden state, σ the logistic sigmoid, ⊙ the elementwise
product and PyTorch's weight layout (the gate blocks stacked along the rows of W_ih and W_hh):

- Elman RNN (Elman 1990, "Finding structure in time"): h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
  (or ReLU).
- LSTM (Hochreiter & Schmidhuber 1997, "Long short-term memory"; the forget gate of Gers, Schmidhuber
  & Cummins 2000), gates in the order i, f, g, o:
      i = σ(W_ii x + b_ii + W_hi h + b_hi)      input gate: how much of the candidate to write
      f = σ(W_if x + b_if + W_hf h + b_hf)      forget gate: how much of the old cell to keep
      g = tanh(W_ig x + b_ig + W_hg h + b_hg)   candidate cell values
      o = σ(W_io x + b_io + W_ho h + b_ho)      output gate: how much of the cell to show
      c' = f ⊙ c + i ⊙ g                         the cell: an additive path through time, so
      h' = o ⊙ tanh(c')                          gradients need not vanish along it
- GRU (Cho et al. 2014, "Learning phrase representations using RNN encoder-decoder"), gates r, z, n:
      r = σ(W_ir x + b_ir + W_hr h + b_hr)      reset gate
      z = σ(W_iz x + b_iz + W_hz h + b_hz)      update gate
      n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
      h' = (1 - z) ⊙ n + z ⊙ h

``RNNLayer`` runs one direction of one layer as ONE Function whose forward loops over time on raw
arrays and whose backward is backpropagation through time as an explicit reverse loop (see
``_rnn_kernels.py``, ``_rnn_lstm.py``). With ``create_graph=True`` its backward recomputes the
layer with the cells above and differentiates that (``reference_layer``), so second derivatives
are exact.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deepnum.autograd.function import Function
from deepnum.autograd.functional_api import grad
from deepnum.autograd.grad_mode import _GradMode, is_grad_enabled
from deepnum.backend import get_array_module
from deepnum.functional._rnn_gru import gru_backward, gru_forward
from deepnum.functional._rnn_kernels import rnn_backward, rnn_forward, steps
from deepnum.functional._rnn_lstm import lstm_backward, lstm_forward
from deepnum.functional.activation import relu, sigmoid
from deepnum.functional.array import transpose
from deepnum.functional.joining import cat, chunk, stack
from deepnum.functional.linalg import matmul
from deepnum.functional.math import tanh
from deepnum.functional.sparse import lookup_source
from deepnum.tensor import Tensor

__all__ = ["rnn_tanh_cell", "rnn_relu_cell", "lstm_cell", "gru_cell", "rnn_layer", "reference_layer", "MODES"]

MODES = ("RNN_TANH", "RNN_RELU", "LSTM", "GRU")


def _affine(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """x Wᵀ + b, PyTorch's (out, in) weight layout."""
    y = matmul(x, w.mT)
    return y if b is None else y + b


# ----------------------------------------------------------------------------- cells
def rnn_tanh_cell(input: Tensor, hx: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None,  # noqa: A002
                  b_hh: Tensor | None = None) -> Tensor:
    """Elman RNN step: h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)."""
    return tanh(_affine(input, w_ih, b_ih) + _affine(hx, w_hh, b_hh))


def rnn_relu_cell(input: Tensor, hx: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None,  # noqa: A002
                  b_hh: Tensor | None = None) -> Tensor:
    """Elman RNN step with ReLU: h' = max(0, x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)."""
    return relu(_affine(input, w_ih, b_ih) + _affine(hx, w_hh, b_hh))


def lstm_cell(input: Tensor, hx: Sequence[Tensor], w_ih: Tensor, w_hh: Tensor,  # noqa: A002
              b_ih: Tensor | None = None, b_hh: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """LSTM step (gates i, f, g, o; see the module docstring): returns (h', c')."""
    h, c = hx
    i, f, g, o = chunk(_affine(input, w_ih, b_ih) + _affine(h, w_hh, b_hh), 4, -1)
    c_next = sigmoid(f) * c + sigmoid(i) * tanh(g)
    return sigmoid(o) * tanh(c_next), c_next


def gru_cell(input: Tensor, hx: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None,  # noqa: A002
             b_hh: Tensor | None = None) -> Tensor:
    """GRU step (gates r, z, n; see the module docstring): returns h'."""
    xr, xz, xn = chunk(_affine(input, w_ih, b_ih), 3, -1)
    hr, hz, hn = chunk(_affine(hx, w_hh, b_hh), 3, -1)
    r, z = sigmoid(xr + hr), sigmoid(xz + hz)
    n = tanh(xn + r * hn)
    return n + z * (hx - n)


def _weight_names(mode: str, count: int) -> tuple[str, ...]:
    """PyTorch's per-layer parameter order: w_ih, w_hh, (b_ih, b_hh), (w_hr: LSTM projection)."""
    names = {2: ("w_ih", "w_hh"), 4: ("w_ih", "w_hh", "b_ih", "b_hh")}
    if mode == "LSTM":
        names.update({3: ("w_ih", "w_hh", "w_hr"), 5: ("w_ih", "w_hh", "b_ih", "b_hh", "w_hr")})
    if count not in names:
        raise ValueError(f"rnn_layer: {count} weights do not fit mode {mode}: expected (w_ih, w_hh), "
                         "(w_ih, w_hh, b_ih, b_hh)" + (" and optionally w_hr" if mode == "LSTM" else ""))
    return names[count]


def _step(mode: str, x: Tensor, state: tuple[Tensor, ...], weights: Sequence[Tensor]) -> tuple[Tensor, ...]:
    w = dict(zip(_weight_names(mode, len(weights)), weights))
    args = (w["w_ih"], w["w_hh"], w.get("b_ih"), w.get("b_hh"))
    if mode == "LSTM":
        h, c = lstm_cell(x, state, *args)
        return (h if "w_hr" not in w else matmul(h, w["w_hr"].mT)), c
    cell = {"RNN_TANH": rnn_tanh_cell, "RNN_RELU": rnn_relu_cell, "GRU": gru_cell}[mode]
    return (cell(x, state[0], *args),)


def reference_layer(mode: str, x: Tensor, state: Sequence[Tensor], weights: Sequence[Tensor], *,
                    reverse: bool = False, batch_first: bool = False,
                    sizes: Sequence[int] | None = None) -> tuple[Tensor, ...]:
    """One direction of one layer, step by step with the cells: (output, h_n[, c_n]). Rows at or
    beyond ``sizes[t]`` keep their state at step t and output zeros (see ``rnn_layer``)."""
    xt = transpose(x, 0, 1) if batch_first else x
    length, batch = xt.shape[0], xt.shape[1]
    state, outs = tuple(state), [None] * length
    for t in steps(length, reverse):
        b = batch if sizes is None else sizes[t]
        if b == batch:
            state = _step(mode, xt[t], state, weights)
            outs[t] = state[0]
            continue
        part = _step(mode, xt[t][:b], tuple(s[:b] for s in state), weights)
        state = tuple(cat([p, s[b:]], 0) for p, s in zip(part, state))
        outs[t] = cat([part[0], state[0][b:] * 0], 0)
    out = stack(outs, 0)
    return (transpose(out, 0, 1) if batch_first else out,) + state


# ----------------------------------------------------------------------------- the fused layer
class RNNLayer(Function):
    """One direction of one recurrent layer over the whole sequence. Inputs, named by ``names``:
    x, h0, (c0 for the LSTM), w_ih, w_hh, optionally b_ih, b_hh, and w_hr (LSTM projection);
    outputs: the output sequence, h_n (and c_n). Forward and BPTT run on raw arrays
    (``_rnn_kernels``, ``_rnn_lstm``, ``_rnn_gru``)."""

    def __init__(self, mode: str, names: tuple[str, ...], reverse: bool, batch_first: bool,
                 sizes: list[int] | None, save: bool, lookup: tuple[Tensor, Any] | None = None):
        self.mode, self.names, self.reverse, self.batch_first = mode, names, reverse, batch_first
        self.sizes, self.save = sizes, save
        # x = table[ids] (``_embedding_lookup``): the table, its array and version now, and the ids
        self.lookup = None if lookup is None else (lookup[0], lookup[0].data, lookup[0]._version, lookup[1])

    @property
    def name(self) -> str:
        return f"{self.mode.lower()}_layer"

    def forward(self, *arrays):
        a = dict(zip(self.names, arrays))
        opts = {"reverse": self.reverse, "batch_first": self.batch_first, "sizes": self.sizes, "save": self.save}
        args = (a["w_ih"], a["w_hh"], a.get("b_ih"), a.get("b_hh"))
        if self.mode == "LSTM":
            lookup = None if self.lookup is None else self.lookup[1:2] + self.lookup[3:]
            out, h, c, self.saved = lstm_forward(a["x"], a["h0"], a["c0"], *args, a.get("w_hr"), **opts,
                                                 lookup=lookup)
            return out, h, c
        if self.mode == "GRU":
            out, h, self.saved = gru_forward(a["x"], a["h0"], *args, **opts)
        else:
            out, h, self.saved = rnn_forward(a["x"], a["h0"], *args, relu=self.mode == "RNN_RELU", **opts)
        return out, h

    def backward(self, *grads):
        if is_grad_enabled():  # create_graph=True: differentiate the cell-by-cell recomputation
            return self._backward_by_cells(grads)
        inputs = dict(zip(self.names, self.inputs))
        s = self.saved
        s.x, s.w_ih, s.w_hh = inputs["x"].data, inputs["w_ih"].data, inputs["w_hh"].data
        s.w_hr = inputs["w_hr"].data if "w_hr" in inputs else None
        s.sizes, s.batch_first, s.reverse = self.sizes, self.batch_first, self.reverse
        if self.lookup is not None:
            table, array, version, _ = self.lookup
            if table._version != version or table.data is not array:  # changed since forward: use x itself
                s.lookup = None
        needs = dict(zip(self.names, self.needs_input_grad))
        g = [t.data for t in grads]
        if self.mode == "LSTM":
            result = lstm_backward(s, g[0], g[1], g[2], needs)
        elif self.mode == "GRU":
            result = gru_backward(s, g[0], g[1], needs)
        else:
            result = rnn_backward(s, g[0], g[1], needs)
        return tuple(Tensor._make(result[n]) if need and result.get(n) is not None else None
                     for n, need in zip(self.names, self.needs_input_grad))

    def _backward_by_cells(self, grads):
        k = 3 if self.mode == "LSTM" else 2
        inputs = self.inputs
        outs = reference_layer(self.mode, inputs[0], inputs[1:k], inputs[k:], reverse=self.reverse,
                               batch_first=self.batch_first, sizes=self.sizes)
        wanted = [t for t, need in zip(inputs, self.needs_input_grad) if need]
        found = iter(grad(list(outs), wanted, list(grads), create_graph=True, allow_unused=True))
        return tuple(next(found) if need else None for need in self.needs_input_grad)


def rnn_layer(mode: str, input: Tensor, state: Sequence[Tensor], weights: Sequence[Tensor], *,  # noqa: A002
              reverse: bool = False, batch_first: bool = False,
              sizes: Sequence[int] | None = None) -> tuple[Tensor, ...]:
    """One direction of one recurrent layer (``mode`` in ``MODES``), fused: ``input`` (T, N, I) or
    (N, T, I) with ``batch_first``; ``state`` (h0,) or, for the LSTM, (h0, c0), each (N, H);
    ``weights`` (w_ih, w_hh) or (w_ih, w_hh, b_ih, b_hh) in PyTorch's layout, then for an LSTM with
    projections w_hr (P, H) (h0 and the output then have P features). Returns (output,
    h_n) or (output, h_n, c_n). ``sizes[t]``: how many leading batch rows are still running at step
    t (the batch sorted by decreasing length, as a packed sequence); the others hold their state and
    output zeros. ``reverse`` runs from the last step to the first. Inputs are not validated here:
    the ``nn`` modules do that."""
    if mode not in MODES:
        raise ValueError(f"rnn_layer: unknown mode {mode!r}, expected one of {MODES}")
    names = ("x", "h0", "c0")[:len(state) + 1] + _weight_names(mode, len(weights))
    tensors = (input, *state, *weights)
    save = _GradMode.enabled and any(t._requires_grad for t in tensors)
    sizes = None if sizes is None else [int(b) for b in sizes]
    lookup = _embedding_lookup(input) if mode == "LSTM" and save else None
    return RNNLayer(mode, names, reverse, batch_first, sizes, save, lookup)(*tensors)


def _embedding_lookup(x: Tensor) -> tuple[Tensor, Any] | None:
    """(table, ids) when x is an embedding look-up x = table[ids] (``lookup_source``) of a table
    with at most a quarter as many rows as x: the LSTM then projects the V table rows instead of the
    T·N rows of x, and gets dW_ih from per-token sums of the gate gradients (see ``_rnn_lstm``)."""
    found = lookup_source(x)
    if found is None:
        return None
    table, ids = found
    if ids.shape != tuple(x.shape[:-1]) or table.dtype != x.dtype or 4 * table.shape[0] > ids.size:
        return None
    return found


def zeros_state(like: Tensor, batch: int, hidden: int) -> Tensor:
    """A (batch, hidden) zero state in ``like``'s dtype and device (outside the graph)."""
    return Tensor._make(get_array_module(like.data).zeros((batch, hidden), like.dtype))

