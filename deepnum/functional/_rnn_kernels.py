"""Fused recurrent layers on raw arrays: one direction of one layer of an Elman RNN or an LSTM, the
forward pass over time and backpropagation through time (BPTT) as an explicit reverse loop. The GRU
lives in ``_rnn_gru.py``; ``deepnum.functional.rnn`` wraps both into autograd Functions.

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


# ----------------------------------------------------------------------------- LSTM
def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr=None, *, reverse, batch_first, sizes, save):
    """Gates (i, f, g, o) = (σ, σ, tanh, σ)(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh);
    c_t = f ⊙ c_{t-1} + i ⊙ g; h_t = o ⊙ tanh(c_t), or with a projection (Sak et al. 2014)
    h_t = (o ⊙ tanh(c_t)) W_hrᵀ."""
    xp = get_array_module(x)
    hidden = c0.shape[1]
    h1, h2, h3 = hidden, 2 * hidden, 3 * hidden
    scale = gate_scale(xp, x.dtype, hidden, (0.5, 0.5, 1.0, 0.5))
    gates = project(x, w_ih, None if b_ih is None else (b_ih + b_hh) * scale, scale)
    whh_t = w_hh.T * scale
    masked = sizes is not None
    out = buffers(xp, x, h0.shape[1], 1, masked)[0]
    gt, ot = time_major(gates, batch_first), time_major(out, batch_first)
    h, c = h0.copy(), c0.copy()
    n = h.shape[0]
    tmp, ig, m = xp.empty((n, 4 * hidden), x.dtype), xp.empty_like(c), xp.empty_like(c)
    if save:
        hp, = buffers(xp, x, h0.shape[1], 1, masked)
        cp, tc = buffers(xp, x, hidden, 2, masked)
        hpt, cpt, tct = (time_major(a, batch_first) for a in (hp, cp, tc))
    for t in steps(gt.shape[0], reverse):
        b = n if sizes is None else sizes[t]
        hb, cb, g = h[:b], c[:b], gt[t, :b]
        if save:
            hpt[t, :b] = hb
            cpt[t, :b] = cb
        xp.matmul(hb, whh_t, out=tmp[:b])
        g += tmp[:b]
        xp.tanh(g, out=g)
        sigmoid_from_tanh(g[:, :h2])
        sigmoid_from_tanh(g[:, h3:])
        cb *= g[:, h1:h2]
        xp.multiply(g[:, :h1], g[:, h2:h3], out=ig[:b])
        cb += ig[:b]
        th = tct[t, :b] if save else ig[:b]
        xp.tanh(cb, out=th)
        if w_hr is None:
            xp.multiply(g[:, h3:], th, out=hb)
        else:
            xp.multiply(g[:, h3:], th, out=m[:b])
            xp.matmul(m[:b], w_hr.T, out=hb)
        ot[t, :b] = hb
    s = _save(Saved(), gates=gates, hp=hp, cp=cp, tc=tc) if save else None
    return out, h, c, s


def _lstm_factors(xp: Any, s: Saved) -> tuple[Any, Any]:
    """Per-element factors, whole-array: F = (g·i(1-i), c_{t-1}·f(1-f), i·(1-g²), tanh(c)·o(1-o))
    so that dz_{i,f,g} = dc ⊙ F_{i,f,g} and dz_o = dh ⊙ F_o; and B = o·(1-tanh²(c)), the path
    dh → dc."""
    g4 = s.gates.reshape(s.gates.shape[:2] + (4, -1))
    i, f, g, o = (g4[..., k, :] for k in range(4))
    factors = xp.empty_like(g4)
    fi, ff, fg, fo = (factors[..., k, :] for k in range(4))
    sig = factors[..., :2, :]
    xp.subtract(1, g4[..., :2, :], out=sig)
    sig *= g4[..., :2, :]
    fi *= g
    ff *= s.cp
    xp.multiply(g, g, out=fg)
    xp.subtract(1, fg, out=fg)
    fg *= i
    xp.subtract(1, o, out=fo)
    fo *= o
    fo *= s.tc
    dc_from_h = s.tc * s.tc
    xp.subtract(1, dc_from_h, out=dc_from_h)
    dc_from_h *= o
    return factors, dc_from_h


def lstm_backward(s: Saved, g_out, g_h, g_c, needs: dict) -> dict:
    """BPTT: dh_t = dy_t + dz_{t+1} W_hh; dc_t = dc_{t+1} ⊙ f_{t+1} + dm_t ⊙ o·(1-tanh²(c_t));
    dz_{i,f,g} = dc_t ⊙ F, dz_o = dm_t ⊙ F_o (see ``_lstm_factors``), where dm_t = dh_t, or
    dh_t W_hr with a projection (then dW_hr = Σ_t dh_tᵀ m_t, one product)."""
    xp = get_array_module(g_out)
    factors, dc_from_h = _lstm_factors(xp, s)
    shape, bf, proj = s.gates.shape, s.batch_first, s.w_hr is not None
    make = xp.zeros if s.sizes is not None else xp.empty
    dz = make(shape, s.gates.dtype)
    ft, bt, gt = time_major(factors, bf), time_major(dc_from_h, bf), time_major(g_out, bf)
    forget = time_major(s.gates.reshape(shape[:2] + (4, -1))[..., 1, :], bf)
    dzt, dz4 = time_major(dz, bf), time_major(dz.reshape(shape[:2] + (4, -1)), bf)
    dh, dc = g_h.copy(), g_c.copy()
    n = dh.shape[0]
    tmp, dm = xp.empty_like(dc), xp.empty_like(dc)
    if proj:
        dhs = make(g_out.shape, g_out.dtype)
        dhst = time_major(dhs, bf)
    for t in steps(dzt.shape[0], not s.reverse):
        b = n if s.sizes is None else s.sizes[t]
        dhb, dcb = dh[:b], dc[:b]
        dhb += gt[t, :b]
        dmb = dhb
        if proj:
            dhst[t, :b] = dhb
            dmb = xp.matmul(dhb, s.w_hr, out=dm[:b])
        xp.multiply(dmb, bt[t, :b], out=tmp[:b])
        dcb += tmp[:b]
        xp.multiply(dcb[:, None, :], ft[t, :b, :3], out=dz4[t, :b, :3])
        xp.multiply(dmb, ft[t, :b, 3], out=dz4[t, :b, 3])
        dcb *= forget[t, :b]
        xp.matmul(dzt[t, :b], s.w_hh, out=dhb)
    grads = {"h0": dh, "c0": dc}
    if proj and needs.get("w_hr"):
        m = s.gates.reshape(shape[:2] + (4, -1))[..., 3, :] * s.tc  # m_t = o ⊙ tanh(c_t)
        grads["w_hr"] = dhs.reshape(-1, dhs.shape[-1]).T @ m.reshape(-1, m.shape[-1])
    return weight_grads(xp, s, dz, needs, grads, ("b_ih", "b_hh"))
