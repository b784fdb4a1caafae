"""Fused recurrent layers on raw arrays: one direction of one layer of an Elman RNN, the forward
pass over time and backpropagation through time (BPTT) as an explicit reverse loop, and the helpers
the GRU (``_rnn_gru.py``) shares. The LSTM lives in ``_rnn_lstm.py``; ``deepnum.functional.rnn``
wraps them all into autograd Functions.

How the time loop is kept cheap:

- The input projection of every time step is ONE matrix product, X W_ihᵀ + b over all (T·N) rows,
  written into the gates buffer; a step only adds h_{t-1} W_hhᵀ and applies the nonlinearities in
  place on slices of that buffer.
- sigmoid(z) = ½·tanh(z/2) + ½. The rows of W_ih, W_hh and b that feed a sigmoid gate are halved
  once per call (exact: a power of two), so one ``tanh`` covers every gate of a step.
- Backward first turns what the forward saved into per-element factors with whole-array ops
  (e.g. ∂L/∂z_o = ∂L/∂h ⊙ tanh(c)·o(1-o)), so the reverse loop does only a few multiplies and the one
  product dh_{t-1} = dz_t W_hh per step. The gate gradients of all steps land in one (T, N, G·H)
  buffer, and dW_ih = dZᵀX, dW_hh = dZᵀH_prev, db = Σ dZ and dX = dZ W_ih are each ONE product.

Layout: arrays are (T, N, ·) or, with ``batch_first``, (N, T, ·); every internal (T, N, ·) buffer is
allocated in the input's layout and read through a time-major view (``time_major``), so batch_first
costs no transposes. Variable lengths: ``sizes[t]`` rows are active at step t, the batch sorted by
decreasing length (the packed-sequence convention); the other rows keep their state and get zero
output, which serves both directions (the reverse direction starts each sequence at its own last
element because its rows only become active there).
"""
from __future__ import annotations

from typing import Any

from deepnum.backend import get_array_module


class Saved:
    """What a forward keeps for its backward (arrays and the step schedule)."""


def time_major(a: Any, batch_first: bool) -> Any:
    return a.swapaxes(0, 1) if batch_first else a


def steps(length: int, reverse: bool) -> range:
    return range(length - 1, -1, -1) if reverse else range(length)


def gate_scale(xp: Any, dtype: Any, hidden: int, factors: tuple[float, ...]) -> Any:
    """Per-row multipliers of the stacked gate weights: ½ for a sigmoid gate, 1 for a tanh gate."""
    return xp.repeat(xp.asarray(factors, dtype=dtype), hidden)


def project(x: Any, w_ih: Any, bias: Any, scale: Any) -> Any:
    """X W_ihᵀ (+ bias) for every time step at once: one GEMM over the (T·N, I) rows."""
    w_t = w_ih.T if scale is None else w_ih.T * scale
    p = x.reshape(-1, x.shape[-1]) @ w_t
    if bias is not None:
        p += bias
    return p.reshape(x.shape[:2] + (w_ih.shape[0],))


def sigmoid_from_tanh(a: Any) -> None:
    """a = tanh(z/2) → sigmoid(z) = ½·a + ½, in place."""
    a *= 0.5
    a += 0.5


def buffers(xp: Any, like: Any, width: int, count: int, zeroed: bool) -> list:
    """``count`` arrays shaped like ``like``'s first two dims with a last dim ``width``."""
    make = xp.zeros if zeroed else xp.empty
    return [make(like.shape[:2] + (width,), like.dtype) for _ in range(count)]


def weight_grads(xp: Any, s: Saved, dz: Any, needs: dict, grads: dict, biases: tuple[str, ...]) -> dict:
    """dX = dZ W_ih, dW_ih = dZᵀ X, dW_hh = dZᵀ H_prev, db = Σ dZ: one product each over all steps,
    for the inputs named in ``needs``; added to ``grads`` (``biases``: the bias names dZ feeds)."""
    dz2 = dz.reshape(-1, dz.shape[-1])
    if needs.get("x"):
        grads["x"] = (dz2 @ s.w_ih).reshape(s.x.shape)
    if needs.get("w_ih"):
        grads["w_ih"] = dz2.T @ s.x.reshape(-1, s.x.shape[-1])
    if needs.get("w_hh"):
        grads["w_hh"] = dz2.T @ s.hp.reshape(-1, s.hp.shape[-1])
    if any(needs.get(b) for b in biases):
        db = dz2.sum(0)
        # b_ih and b_hh get equal gradients, but never one shared array (in-place updates of .grad)
        grads.update({b: db if i == 0 else db.copy() for i, b in enumerate(biases)})
    return grads


def _save(s: Saved, **arrays: Any) -> Saved:
    for k, v in arrays.items():
        setattr(s, k, v)
    return s


# ----------------------------------------------------------------------------- Elman RNN
def rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, *, relu, reverse, batch_first, sizes, save):
    """h_t = act(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh). The gates buffer becomes the output."""
    xp = get_array_module(x)
    bias = None if b_ih is None else b_ih + b_hh
    out = project(x, w_ih, bias, None)
    ot, whh_t = time_major(out, batch_first), w_hh.T
    h = h0.copy()
    n = h.shape[0]
    tmp = xp.empty_like(h)
    hp = buffers(xp, out, h.shape[1], 1, sizes is not None)[0] if save else None
    hpt = time_major(hp, batch_first) if save else None
    for t in steps(ot.shape[0], reverse):
        b = n if sizes is None else sizes[t]
        hb, g = h[:b], ot[t, :b]
        if save:
            hpt[t, :b] = hb
        xp.matmul(hb, whh_t, out=tmp[:b])
        g += tmp[:b]
        if relu:
            xp.maximum(g, 0, out=g)
        else:
            xp.tanh(g, out=g)
        hb[...] = g
        if b < n:
            ot[t, b:] = 0
    s = _save(Saved(), y=out, hp=hp, relu=relu) if save else None
    return out, h, s


def rnn_backward(s: Saved, g_out, g_h, needs):
    """dz_t = (dy_t + dh_t) ⊙ act'(z_t) with act' = 1 - y² (tanh) or [y > 0] (ReLU);
    dh_{t-1} = dz_t W_hh."""
    xp = get_array_module(g_out)
    y = s.y
    factor = (y > 0).astype(y.dtype) if s.relu else 1 - y * y
    dz = buffers(xp, y, y.shape[-1], 1, s.sizes is not None)[0]
    ft, dzt, gt = (time_major(a, s.batch_first) for a in (factor, dz, g_out))
    dh = g_h.copy()
    n = dh.shape[0]
    for t in steps(dzt.shape[0], not s.reverse):
        b = n if s.sizes is None else s.sizes[t]
        dhb = dh[:b]
        dhb += gt[t, :b]
        xp.multiply(dhb, ft[t, :b], out=dzt[t, :b])
        xp.matmul(dzt[t, :b], s.w_hh, out=dhb)
    return weight_grads(xp, s, dz, needs, {"h0": dh}, ("b_ih", "b_hh"))
