"""The fused GRU layer on raw arrays (one direction of one layer), forward over time and BPTT in
reverse, with the same tricks and layout as ``_rnn_kernels.py`` (one GEMM for the input projection
of all steps, sigmoid through one tanh on halved rows, whole-array backward factors, one GEMM per
weight gradient). Gate order (r, z, n) as PyTorch (Cho et al. 2014):

    r = σ(W_ir x + b_ir + W_hr h + b_hr)        z = σ(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
    h' = (1 - z) ⊙ n + z ⊙ h = n + z ⊙ (h - n)
"""
from __future__ import annotations

from deepnum.backend import get_array_module
from deepnum.functional._rnn_kernels import (
    Saved,
    buffers,
    gate_scale,
    project,
    sigmoid_from_tanh,
    steps,
    time_major,
    weight_grads,
)


def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, *, reverse, batch_first, sizes, save):
    """Forward over time. The (r, z) parts of b_hh join the input projection; b_hn stays inside
    r ⊙ (W_hn h + b_hn). Saves the activated gates, W_hn h + b_hn and h_{t-1}."""
    xp = get_array_module(x)
    hidden = w_hh.shape[1]
    h2 = 2 * hidden
    scale = gate_scale(xp, x.dtype, hidden, (0.5, 0.5, 1.0))
    bias = None
    if b_ih is not None:
        bias = b_ih.copy()
        bias[:h2] += b_hh[:h2]
        bias *= scale
    gates = project(x, w_ih, bias, scale)
    whh_t, b_hn = w_hh.T * scale, None if b_hh is None else b_hh[h2:]
    masked = sizes is not None
    out = buffers(xp, x, hidden, 1, masked)[0]
    gt, ot = time_major(gates, batch_first), time_major(out, batch_first)
    h = h0.copy()
    n = h.shape[0]
    tmp, rgh = xp.empty((n, 3 * hidden), x.dtype), xp.empty_like(h)
    if save:
        hp, ghn = buffers(xp, x, hidden, 2, masked)
        hpt, ghnt = time_major(hp, batch_first), time_major(ghn, batch_first)
    for t in steps(gt.shape[0], reverse):
        b = n if sizes is None else sizes[t]
        hb, g, gh = h[:b], gt[t, :b], tmp[:b]
        if save:
            hpt[t, :b] = hb
        xp.matmul(hb, whh_t, out=gh)
        rz, ghn_t = g[:, :h2], gh[:, h2:]
        rz += gh[:, :h2]
        xp.tanh(rz, out=rz)
        sigmoid_from_tanh(rz)
        if b_hn is not None:
            ghn_t += b_hn
        if save:
            ghnt[t, :b] = ghn_t
        xp.multiply(g[:, :hidden], ghn_t, out=rgh[:b])
        new = g[:, h2:]
        new += rgh[:b]
        xp.tanh(new, out=new)
        hb -= new
        hb *= g[:, hidden:h2]
        hb += new
        ot[t, :b] = hb
    s = None
    if save:
        s = Saved()
        s.gates, s.hp, s.ghn = gates, hp, ghn
    return out, h, s


def _gru_factors(xp, s: Saved):
    """dz_n = dh ⊙ P with P = (1-z)(1-n²); dz_z = dh ⊙ (h_{t-1} - n) z(1-z); dz_r = dh ⊙ P·(W_hn h + b_hn)·r(1-r);
    the W_hh side of n gets dh ⊙ P·r. Returns (factors of the W_hh gate gradients (T, N, 3, H), P)."""
    g3 = s.gates.reshape(s.gates.shape[:2] + (3, -1))
    r, z, new = (g3[..., k, :] for k in range(3))
    factors = xp.empty_like(g3)
    fr, fz, fn = (factors[..., k, :] for k in range(3))
    p = new * new
    xp.subtract(1, p, out=p)
    xp.subtract(1, z, out=fz)
    p *= fz
    fz *= z
    fz *= xp.subtract(s.hp, new, out=fn)
    xp.subtract(1, r, out=fr)
    fr *= r
    fr *= s.ghn
    fr *= p
    xp.multiply(p, r, out=fn)
    return factors, p


def gru_backward(s: Saved, g_out, g_h, needs: dict) -> dict:
    """BPTT: dh_t = dy_t + dgh_{t+1} W_hh + dh_{t+1} ⊙ z_{t+1}, where dgh (the gradient of
    h_{t-1} W_hhᵀ + b_hh) = dh ⊙ factors; the W_ih side equals it except dz_n = dh ⊙ P."""
    xp = get_array_module(g_out)
    factors, p = _gru_factors(xp, s)
    shape, bf = s.gates.shape, s.batch_first
    make = xp.zeros if s.sizes is not None else xp.empty
    dgh, dgi = make(shape, s.gates.dtype), make(shape, s.gates.dtype)
    h1, h2 = shape[-1] // 3, 2 * (shape[-1] // 3)
    ft, pt, gt = time_major(factors, bf), time_major(p, bf), time_major(g_out, bf)
    zt = time_major(s.gates[..., h1:h2], bf)
    dght, dgh4, dgin = time_major(dgh, bf), time_major(dgh.reshape(shape[:2] + (3, -1)), bf), time_major(
        dgi[..., h2:], bf)
    dh = g_h.copy()
    n = dh.shape[0]
    tmp = xp.empty_like(dh)
    for t in steps(dght.shape[0], not s.reverse):
        b = n if s.sizes is None else s.sizes[t]
        dhb = dh[:b]
        dhb += gt[t, :b]
        xp.multiply(dhb[:, None, :], ft[t, :b], out=dgh4[t, :b])
        xp.multiply(dhb, pt[t, :b], out=dgin[t, :b])
        xp.multiply(dhb, zt[t, :b], out=tmp[:b])
        xp.matmul(dght[t, :b], s.w_hh, out=dhb)
        dhb += tmp[:b]
    dgi[..., :h2] = dgh[..., :h2]
    grads = weight_grads(xp, s, dgi, {k: needs.get(k) for k in ("x", "w_ih", "b_ih")}, {"h0": dh}, ("b_ih",))
    return weight_grads(xp, s, dgh, {k: needs.get(k) for k in ("w_hh", "b_hh")}, grads, ("b_hh",))
