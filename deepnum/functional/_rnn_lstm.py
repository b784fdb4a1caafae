"""The fused LSTM layer on raw arrays (one direction of one layer): the forward loop over time and
backpropagation through time (BPTT) as an explicit reverse loop. ``deepnum.functional.rnn`` wraps it
into an autograd Function; the Elman RNN and GRU live in ``_rnn_kernels.py`` and ``_rnn_gru.py``.

    (i, f, g, o) = (σ, σ, tanh, σ)(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh)
    c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)   (or (o ⊙ tanh(c_t)) W_hrᵀ with a projection)

How the time loop is kept cheap:

- Internal buffers are in *step order*, (T, N, ·) with row block k the k-th step taken (t = k, or
  T-1-k in reverse), so every per-step slice is contiguous. The input projection of all steps is ONE
  GEMM over the (T·N, I) rows; a step only adds h_{k} W_hhᵀ and applies the nonlinearities in place.
- Gates are kept internally in the order (i, f, o, g), the rows of W_ih, W_hh and b that feed a
  sigmoid halved once per call (exact: a power of two): sigmoid(z) = ½·tanh(z/2) + ½, so one
  ``tanh`` covers all four gates and one multiply-add turns the contiguous (i, f, o) block into
  sigmoids.
- The hidden states h_0 … h_T live in one (T+1, N, ·) buffer: step k reads row block k and writes
  k+1, so nothing is copied to save h_{t-1} for the weight gradient.
- With ``save`` (a backward will follow), the step also writes the per-element factors of the
  gate gradients while its values are in cache (PyTorch's gate order):
      F = (g·i(1-i), c_{t-1}·f(1-f), i·(1-g²), tanh(c_t)·o(1-o)),   B = o·(1 - tanh²(c_t)),
  so that BPTT is dh_t = dy_t + dz_{t+1} W_hh, dc_t = dc_{t+1} ⊙ f_{t+1} + dm_t ⊙ B_t,
  dz_{i,f,g} = dc_t ⊙ F_{i,f,g}, dz_o = dm_t ⊙ F_o (dm_t = dh_t, or dh_t W_hr with a projection):
  six small multiplies and one GEMM per step. Nothing else of the forward is kept (the cell
  states and the activated gates are not needed).
- The gate gradients of all steps land in one (T, N, 4H) buffer, and dW_ih = dZᵀX, dW_hh = dZᵀH,
  db = Σ dZ and dX = dZ W_ih are each ONE product.
- Over an embedding look-up x = E[ids] with a small table (a character or word model; found by
  ``rnn.py``'s ``_embedding_lookup`` while E is unchanged since the look-up), the projection of the
  T·N rows is a gather from the projected table E W_ihᵀ (V rows: one small GEMM), and, when V is
  below the embedding width, dW_ih = Sᵀ E with S the gate gradients summed per token (a one-hot
  product). The same arithmetic, regrouped: dX = dZ W_ih is still
  returned for x, so hooks, ``retain_grad`` and ``autograd.grad`` see the usual gradient.
- The large buffers (gates, factors, states, gradients) come from ``_rnn_workspace``: they are reused
  from call to call once nothing refers to them, instead of page-faulting fresh memory every step.

Variable lengths: ``sizes[t]`` rows are active at step t, the batch sorted by decreasing length (the
packed-sequence convention); the other rows keep their state, get zero output and zero gate
gradients, which serves both directions.
"""
from __future__ import annotations

from typing import Any

from deepnum.backend import get_array_module
from deepnum.functional._rnn_kernels import Saved, time_major
from deepnum.functional._rnn_workspace import take


def _step_major(a: Any, batch_first: bool, reverse: bool) -> Any:
    """A (T, N, ·) view of ``a`` (input layout) in step order."""
    a = time_major(a, batch_first)
    return a[::-1] if reverse else a


def _internal_weights(xp: Any, w: Any, hidden: int) -> Any:
    """W (4H, ·) with the rows in the order (i, f, o, g) and the sigmoid rows (i, f, o) halved."""
    h2, h3 = 2 * hidden, 3 * hidden
    out = take(xp, w.shape, w.dtype)
    out[:h2] = w[:h2]
    out[h2:h3] = w[h3:]
    out[h3:] = w[h2:h3]
    out[:h3] *= 0.5
    return out


def _project(xp: Any, xs: Any, w_ih: Any, b_ih: Any, b_hh: Any, hidden: int, ids: Any = None,
             table: Any = None) -> Any:
    """The (T, N, 4H) pre-activations of every step from the input alone, in the internal gate
    order: one GEMM over the T·N rows; or, for an embedding look-up x = table[ids] (``ids`` in step
    order), one GEMM over the V rows of the table and a gather of its rows."""
    steps_, n, width = xs.shape
    w = _internal_weights(xp, w_ih, hidden)
    bias = None
    if b_ih is not None:
        half, h2, h3 = (b_ih + b_hh) * 0.5, 2 * hidden, 3 * hidden
        bias = xp.concatenate((half[:h2], half[h3:], half[h2:h3] * 2))
    gates = take(xp, (steps_, n, 4 * hidden), xs.dtype)
    rows = gates.reshape(-1, 4 * hidden)
    if ids is None:
        xp.matmul(xs.reshape(-1, width), w.T, out=rows)
        if bias is not None:
            gates += bias
        return gates
    projected = xp.matmul(table, w.T, out=take(xp, (table.shape[0], 4 * hidden), xs.dtype))
    if bias is not None:
        projected += bias
    xp.take(projected, ids.reshape(-1), axis=0, out=rows, mode="clip")  # ids are in range: checked by embedding
    return gates


class _Work:
    """The small per-step arrays of one call (N rows, sliced to the active rows)."""

    def __init__(self, xp: Any, n: int, hidden: int, dtype: Any):
        self.tmp = xp.empty((n, 4 * hidden), dtype)
        self.ig, self.tc, self.m = (xp.empty((n, hidden), dtype) for _ in range(3))
        self.d3 = xp.empty((n, 3 * hidden), dtype)


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr=None, *, reverse, batch_first, sizes, save, lookup=None):
    """Forward over time (see the module docstring): returns (output, h_n, c_n, saved or None).
    ``lookup``: (table, ids) when x = table[ids] is an embedding look-up of a small table."""
    xp = get_array_module(x)
    hidden, n, steps_ = c0.shape[1], h0.shape[0], time_major(x, batch_first).shape[0]
    xs = _step_major(x, batch_first, reverse)
    if not xs.flags.c_contiguous:
        xs = take(xp, xs.shape, x.dtype)
        xs[...] = _step_major(x, batch_first, reverse)
    table, ids = (None, None) if lookup is None else lookup
    if ids is not None:
        ids = xp.ascontiguousarray(_step_major(ids, batch_first, reverse))
    gates = _project(xp, xs, w_ih, b_ih, b_hh, hidden, ids, table)
    w_rec = _internal_weights(xp, w_hh, hidden).T
    hs = take(xp, (steps_ + 1,) + h0.shape, x.dtype)
    hs[0] = h0
    c, c_next = c0.copy(), xp.empty_like(c0)
    s = Saved()
    s.xs, s.hs, s.lookup = xs, hs, None if ids is None else (table, ids)
    if save:
        s.factors = take(xp, gates.shape, x.dtype)
        s.b, s.f = (take(xp, (steps_, n, hidden), x.dtype) for _ in range(2))
        s.m = take(xp, (steps_, n, hidden), x.dtype, zero=sizes is not None) if w_hr is not None else None
    work = _Work(xp, n, hidden, x.dtype)
    for k in range(steps_):
        b = n if sizes is None else sizes[steps_ - 1 - k if reverse else k]
        _forward_step(xp, k, b, gates[k], hs, c, c_next, w_rec, w_hr, work, s if save else None)
        if b < n:
            hs[k + 1, b:] = hs[k, b:]
            c_next[b:] = c[b:]
        c, c_next = c_next, c
    out = take(xp, x.shape[:-1] + h0.shape[-1:], x.dtype)
    ot = _step_major(out, batch_first, reverse)
    ot[...] = hs[1:]
    if sizes is not None:
        for k in range(steps_):
            ot[k, sizes[steps_ - 1 - k if reverse else k]:] = 0
    return out, hs[steps_].copy(), c, (s if save else None)


def _forward_step(xp, k, b, g, hs, c, c_next, w_rec, w_hr, work, s) -> None:
    """One step on the b active rows: gates, c_{k+1} into c_next, h_{k+1} into hs[k+1], and with
    ``s`` the backward factors F, B and the forget gate of this step."""
    hidden = c.shape[1]
    h1, h2, h3 = hidden, 2 * hidden, 3 * hidden
    g, c, c_next, h_next = g[:b], c[:b], c_next[:b], hs[k + 1, :b]
    tmp, ig, tc = work.tmp[:b], work.ig[:b], work.tc[:b]
    xp.matmul(hs[k, :b], w_rec, out=tmp)
    g += tmp
    xp.tanh(g, out=g)
    sig = g[:, :h3]
    sig *= 0.5
    sig += 0.5
    i, f, o, gg = g[:, :h1], g[:, h1:h2], g[:, h2:h3], g[:, h3:]
    xp.multiply(f, c, out=c_next)
    xp.multiply(i, gg, out=ig)
    c_next += ig
    xp.tanh(c_next, out=tc)
    if w_hr is None:
        xp.multiply(o, tc, out=h_next)
    else:
        m = work.m[:b] if s is None else s.m[k, :b]
        xp.multiply(o, tc, out=m)
        xp.matmul(m, w_hr.T, out=h_next)
    if s is None:
        return
    d3, fk, bk = work.d3[:b], s.factors[k, :b], s.b[k, :b]
    xp.subtract(1, sig, out=d3)
    d3 *= sig  # σ'(z) = σ(1 - σ) for (i, f, o)
    xp.multiply(d3[:, :h1], gg, out=fk[:, :h1])
    xp.multiply(d3[:, h1:h2], c, out=fk[:, h1:h2])
    fg = fk[:, h2:h3]
    xp.multiply(gg, gg, out=fg)
    xp.subtract(1, fg, out=fg)
    fg *= i
    xp.multiply(d3[:, h2:], tc, out=fk[:, h3:])
    xp.multiply(tc, tc, out=bk)
    xp.subtract(1, bk, out=bk)
    bk *= o
    s.f[k, :b] = f


def lstm_backward(s: Saved, g_out, g_h, g_c, needs: dict) -> dict:
    """BPTT (see the module docstring) and the weight gradients; returns a dict of the gradients
    named in ``needs`` (and those of h0 and c0)."""
    xp = get_array_module(g_out)
    factors, steps_ = s.factors, s.factors.shape[0]
    n, hidden = g_c.shape
    proj = s.w_hr is not None
    dz = take(xp, factors.shape, factors.dtype, zero=s.sizes is not None)
    f4, dz4 = factors.reshape(steps_, n, 4, hidden), dz.reshape(steps_, n, 4, hidden)
    dys = _step_major(g_out, s.batch_first, s.reverse)
    dh, dc = g_h.copy(), g_c.copy()
    tmp, dm = xp.empty_like(dc), xp.empty_like(dc)
    dhs = take(xp, (steps_,) + dh.shape, dh.dtype, zero=s.sizes is not None) if proj else None
    for k in range(steps_ - 1, -1, -1):
        b = n if s.sizes is None else s.sizes[steps_ - 1 - k if s.reverse else k]
        dhb, dcb = dh[:b], dc[:b]
        dhb += dys[k, :b]
        dmb = dhb
        if proj:
            dhs[k, :b] = dhb
            dmb = xp.matmul(dhb, s.w_hr, out=dm[:b])
        xp.multiply(dmb, s.b[k, :b], out=tmp[:b])
        dcb += tmp[:b]
        xp.multiply(dcb[:, None, :], f4[k, :b, :3], out=dz4[k, :b, :3])
        xp.multiply(dmb, f4[k, :b, 3], out=dz4[k, :b, 3])
        dcb *= s.f[k, :b]
        xp.matmul(dz[k, :b], s.w_hh, out=dhb)
    grads = {"h0": dh, "c0": dc}
    if proj and needs.get("w_hr"):
        grads["w_hr"] = _product(xp, dhs, s.m, True)
    return _weight_grads(xp, s, dz, needs, grads)


def _product(xp: Any, a: Any, b: Any, transpose_a: bool) -> Any:
    """aᵀ b (or a b) over the flattened (T·N) rows, into a pooled array."""
    a2, b2 = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    a2 = a2.T if transpose_a else a2
    return xp.matmul(a2, b2, out=take(xp, (a2.shape[0], b2.shape[1]), a.dtype))


def _weight_grads(xp: Any, s: Saved, dz: Any, needs: dict, grads: dict) -> dict:
    """dX = dZ W_ih (back into the input's layout), dW_ih = dZᵀ X, dW_hh = dZᵀ H_prev and
    db_ih = db_hh = Σ dZ: one product each over all steps."""
    if needs.get("x"):
        dx = take(xp, s.x.shape, s.x.dtype)
        _step_major(dx, s.batch_first, s.reverse)[...] = _product(xp, dz, s.w_ih, False).reshape(s.xs.shape)
        grads["x"] = dx
    if needs.get("w_ih") and s.lookup is not None and _per_token_is_cheaper(*s.lookup):
        grads["w_ih"] = _lookup_weight_grad(xp, dz, *s.lookup)
    elif needs.get("w_ih"):
        grads["w_ih"] = _product(xp, dz, s.xs, True)
    if needs.get("w_hh"):
        grads["w_hh"] = _product(xp, dz, s.hs[:-1], True)
    if needs.get("b_ih") or needs.get("b_hh"):
        db = dz.reshape(-1, dz.shape[-1]).sum(0)
        grads.update(b_ih=db, b_hh=db.copy())  # equal values, never one shared array (in-place updates)
    return grads


def _per_token_is_cheaper(table: Any, ids: Any) -> bool:
    """Whether ``_lookup_weight_grad`` beats dZᵀX: its product costs V/I of dZᵀX's arithmetic
    (V table rows, I features), plus building the (V, T·N) one-hot matrix, kept small here."""
    rows, features = table.shape
    return 4 * rows <= 3 * features and rows * ids.size <= 1 << 22


def _lookup_weight_grad(xp: Any, dz: Any, table: Any, ids: Any) -> Any:
    """dW_ih = Σ_rows dZ_rowᵀ x_row for x = table[ids]: the rows of dZ summed per token first
    (S = onehot(ids) dZ, a (V, T·N) @ (T·N, 4H) product), then dW_ih = Sᵀ table (a small product):
    V/I of the arithmetic of dZᵀX (a character model: 65 tokens, 128 features)."""
    rows = ids.size
    onehot = take(xp, (table.shape[0], rows), dz.dtype, zero=True)
    onehot[ids.reshape(-1), xp.arange(rows)] = 1
    per_token = xp.matmul(onehot, dz.reshape(rows, -1), out=take(xp, (table.shape[0], dz.shape[-1]), dz.dtype))
    return xp.matmul(per_token.T, table, out=take(xp, (dz.shape[-1], table.shape[1]), dz.dtype))
