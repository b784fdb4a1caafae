"""Scaled dot-product attention (Vaswani et al. 2017, "Attention is all you need", eq. 1):

    Attention(Q, K, V) = softmax(Q Kᵀ · scale + B) V,     scale = 1/√E by default,

for queries Q (..., L, E), keys K (..., S, E) and values V (..., S, Ev); every query takes a convex
combination of the values, weighted by how well it matches each key. B is the attention bias: an
additive float mask, or -∞ where a boolean mask is False (PyTorch's ``attn_mask`` convention: True
means "takes part") or above the diagonal for ``is_causal`` (top-left aligned, as PyTorch).

``ScaledDotProductAttention`` is one fused Function: the forward computes the scores, a row-wise
softmax in place and the product with V on raw arrays, keeping only the probabilities for backward
(no separate mask/scale/softmax nodes, about half the passes over the (L, S) score array). A row
whose keys are all masked gets zero weights, as ``torch.nn.functional.scaled_dot_product_attention``
(a "safe" softmax); ``MultiheadAttention`` with ``need_weights=True`` instead gets NaN there, as
PyTorch's, through ``safe=False``. The backward is written with Tensor ops, and with
``create_graph=True`` the probabilities are recomputed from the inputs with differentiable ops
(``attention_probs``), so second derivatives are exact.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from deepnum.autograd.autocast_state import Autocast
from deepnum.autograd.function import Function
from deepnum.autograd.grad_mode import is_grad_enabled
from deepnum.backend import get_array_module
from deepnum.functional._half import is_host_half
from deepnum.functional.activation import softmax
from deepnum.functional.array import expand, reshape, sum_to, unsqueeze
from deepnum.functional.dropout import _check_p, _mask
from deepnum.functional.indexing import masked_fill
from deepnum.functional.linalg import matmul
from deepnum.functional.reduction import sum
from deepnum.tensor import Tensor

__all__ = ["scaled_dot_product_attention"]


def _softmax_rows(s: Any, safe: bool) -> Any:
    """Row-wise softmax of the scores ``s`` in place. Rows with every entry -∞ (all keys masked)
    become 0 (``safe``) or NaN (plain softmax, as PyTorch's ``softmax``)."""
    xp = get_array_module(s)
    if s.shape[-1] == 0:  # no keys: nothing to normalise (the output is an empty sum, 0)
        return s, None
    top = s.max(axis=-1, keepdims=True)
    dead = xp.isneginf(top)
    has_dead = bool(dead.any())
    if has_dead:
        top[dead] = 0  # exp(-inf - 0) = 0 for the whole row, no NaN warning
    s -= top
    xp.exp(s, out=s)
    total = s.sum(axis=-1, keepdims=True)
    if has_dead:
        total[dead] = 1 if safe else np.nan
    s /= total
    return s, (dead if has_dead and safe else None)


def _matmul_in_order(a: Any, b: Any, order: tuple[int, ...]) -> Any:
    """a @ b as usual, but stored so that ``result.transpose(order)`` is C-contiguous: the GEMMs
    write straight into the layout the caller permutes to next (``MultiheadAttention`` merges the
    heads as (N, L, heads·Ev)), which then needs no copy."""
    xp = get_array_module(a)
    shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
    stored = xp.empty(tuple(shape[i] for i in order), dtype=np.result_type(a.dtype, b.dtype))
    return xp.matmul(a, b, out=stored.transpose(tuple(np.argsort(order).tolist())))


class ScaledDotProductAttention(Function):
    """Fused attention. Forward: S = (scale·Q) Kᵀ + B, P = softmax(S) over the keys, Pd = P ∘ M
    (M: the inverted-dropout mask, when given), O = Pd V; outputs O, and Pd when ``need_weights``.
    Backward: dV = Pdᵀ dO; dPd = dO Vᵀ (+ the weights' own gradient); dP = dPd ∘ M;
    dS = P ∘ (dP - Σ_keys dP ∘ P) (the softmax Jacobian); dQ = scale · dS K; dK = scale · dSᵀ Q;
    dB = dS summed to the mask's shape. Inputs: q, k, v and optionally an additive float mask;
    a boolean ``keep`` array (False: the key is masked out) and ``drop`` mask are constants."""

    def __init__(self, scale: float, keep: Any = None, drop: Any = None, safe: bool = True,
                 need_weights: bool = False, out_order: tuple[int, ...] | None = None):
        self.scale, self.keep, self.drop = scale, keep, drop
        self.safe, self.need_weights, self.out_order = safe, need_weights, out_order

    def forward(self, q, k, v, mask=None):
        if is_host_half(q):
            return self._forward_half(q, k, v, mask)
        xp = get_array_module(q)
        s = (q * q.dtype.type(self.scale)) @ k.swapaxes(-1, -2)
        if mask is not None:
            s = s + mask if np.broadcast_shapes(s.shape, mask.shape) != s.shape else xp.add(s, mask, out=s)
        if self.keep is not None:
            if np.broadcast_shapes(s.shape, self.keep.shape) != s.shape:
                s = xp.broadcast_to(s, np.broadcast_shapes(s.shape, self.keep.shape)).copy()
            xp.copyto(s, -np.inf, where=~self.keep)
        p, self.dead = _softmax_rows(s, self.safe)
        self.p = p
        pd = p if self.drop is None else p * self.drop
        out = pd @ v if self.out_order is None else _matmul_in_order(pd, v, self.out_order)
        if not self.need_weights:
            return out
        return out, (pd.copy() if pd is p else pd)  # the returned weights must not alias the saved P

    def _forward_half(self, *arrays):
        """float16 on NumPy: the products and the softmax in float32 (see ``_half``), the outputs
        and the saved probabilities rounded to float16."""
        out = self.forward(*(None if a is None else a.astype(np.float32) for a in arrays))
        self.p = self.p.astype(np.float16)
        return tuple(o.astype(np.float16) for o in out) if isinstance(out, tuple) else out.astype(np.float16)

    def backward(self, g_out, g_weights=None):
        q, k, v = self.inputs[:3]
        mask = self.inputs[3] if len(self.inputs) > 3 else None
        needs = self.needs_input_grad
        if is_grad_enabled():  # create_graph: P as a differentiable function of the inputs
            p = attention_probs(q, k, mask, self.keep, self.scale, self.dead)
        else:
            p = Tensor._make(self.p)
        drop = None if self.drop is None else Tensor._make(self.drop)
        pd = p if drop is None else p * drop
        grads = [None] * len(self.inputs)
        if needs[2]:
            grads[2] = sum_to(matmul(pd.mT, g_out), v.shape)
        if needs[0] or needs[1] or (mask is not None and needs[3]):
            gp = matmul(g_out, v.mT)
            if g_weights is not None:
                gp = gp + g_weights
            if drop is not None:
                gp = gp * drop
            gs = p * (gp - sum(gp * p, -1, keepdim=True))
            if needs[0]:
                grads[0] = sum_to(matmul(gs, k) * self.scale, q.shape)
            if needs[1]:
                grads[1] = sum_to(matmul(gs.mT, q) * self.scale, k.shape)
            if mask is not None and needs[3]:
                grads[3] = sum_to(gs, mask.shape)
        return tuple(grads)


def attention_probs(q: Tensor, k: Tensor, mask: Tensor | None = None, keep: Any = None,
                    scale: float = 1.0, dead: Any = None) -> Tensor:
    """softmax((scale·Q) Kᵀ + B) with differentiable deepnum ops (the fused op's reference and its
    double-backward path); ``dead`` marks the all-masked rows that the safe softmax sets to 0."""
    s = matmul(q * scale, k.mT)
    if mask is not None:
        s = s + mask
    if keep is not None:
        s = masked_fill(s, Tensor._make(~keep), -math.inf)
    if dead is not None:
        s = masked_fill(s, Tensor._make(dead), 0.0)
    p = softmax(s, -1)
    return p if dead is None else masked_fill(p, Tensor._make(dead), 0.0)


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, keep: Any = None, *,
              scale: float, dropout_p: float = 0.0, safe: bool = True, need_weights: bool = False,
              out_order: tuple[int, ...] | None = None) -> Tensor | tuple[Tensor, Tensor]:
    """The fused op on validated inputs (shared with ``MultiheadAttention``): ``mask`` is an additive
    float Tensor of q's dtype, ``keep`` a boolean array (True: attend), both broadcast to the scores.
    ``out_order``: the permutation the caller applies to the output next, which is then contiguous."""
    drop = None
    if dropout_p > 0:
        shape = np.broadcast_shapes(q.shape[:-1] + (k.shape[-2],), k.shape[:-2] + (1, 1), v.shape[:-2] + (1, 1),
                                    *(() if mask is None else (mask.shape,)),
                                    *(() if keep is None else (keep.shape,)))
        drop = _mask(shape, dropout_p, q)
    fn = ScaledDotProductAttention(scale, keep, drop, safe, need_weights, out_order)
    return fn(q, k, v) if mask is None else fn(q, k, v, mask)


def _check_inputs(query: Tensor, key: Tensor, value: Tensor, attn_mask: Any, enable_gqa: bool) -> None:
    shapes = f"query {tuple(query.shape)}, key {tuple(key.shape)}, value {tuple(value.shape)}"
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise RuntimeError(f"scaled_dot_product_attention: query, key and value need at least 2 dims "
                           f"(..., L, E), got {shapes}")
    if not (query.dtype == key.dtype == value.dtype) or query.dtype.kind != "f":
        raise RuntimeError(f"scaled_dot_product_attention: query, key and value need one floating dtype, got "
                           f"{query.dtype}, {key.dtype} and {value.dtype}")
    if key.shape[-1] != query.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise RuntimeError(f"scaled_dot_product_attention: expected query (..., L, E), key (..., S, E) and "
                           f"value (..., S, Ev), got {shapes}")
    if enable_gqa and query.ndim >= 3:
        hq, hk, hv = query.shape[-3], key.shape[-3], value.shape[-3]
        if hk != hv or hq % hk:
            raise RuntimeError(f"scaled_dot_product_attention: with enable_gqa the key and value heads (dim -3) "
                               f"must be equal and divide the query heads, got {shapes}")
    if attn_mask is not None:
        m = attn_mask
        if not isinstance(m, Tensor):
            raise TypeError(f"scaled_dot_product_attention: attn_mask must be a Tensor, got {type(m).__name__}")
        if m.dtype != np.bool_ and m.dtype != query.dtype:
            raise RuntimeError(f"scaled_dot_product_attention: attn_mask must be bool or of query's dtype "
                               f"{query.dtype}, got {m.dtype}")
        scores = query.shape[:-1] + (key.shape[-2],)
        try:
            np.broadcast_shapes(scores, tuple(m.shape))
        except ValueError:
            raise RuntimeError(f"scaled_dot_product_attention: attn_mask of shape {tuple(m.shape)} does not "
                               f"broadcast to the scores (..., L, S) = {scores}; {shapes}") from None


def _repeat_heads(x: Tensor, groups: int) -> Tensor:
    """x (..., H, S, E) → (..., H·groups, S, E), each head repeated ``groups`` times in a row
    (``repeat_interleave`` on dim -3)."""
    shape = tuple(x.shape)
    wide = expand(unsqueeze(x, -3), *shape[:-2], groups, *shape[-2:])
    return reshape(wide, *shape[:-3], shape[-3] * groups, *shape[-2:])


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, *, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """softmax(Q Kᵀ · scale + B) V over the last two dims (batch dims broadcast), as
    ``torch.nn.functional.scaled_dot_product_attention``: ``attn_mask`` is boolean (True: attend)
    or an additive float mask of query's dtype (it receives a gradient if it requires one);
    ``is_causal`` masks key j > query i; ``dropout_p`` drops attention weights (always, as PyTorch:
    pass 0 in evaluation); ``scale`` defaults to 1/√E; ``enable_gqa`` repeats key/value heads
    (dim -3) to match the query heads (grouped-query attention, Ainslie et al. 2023)."""
    if Autocast.enabled:
        query, key, value, attn_mask = Autocast.cast("scaled_dot_product_attention", query, key, value, attn_mask)
    _check_p(dropout_p)
    _check_inputs(query, key, value, attn_mask, enable_gqa)
    if is_causal and attn_mask is not None:
        raise RuntimeError("scaled_dot_product_attention: an explicit attn_mask must not be given with "
                           "is_causal=True")
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        groups = query.shape[-3] // key.shape[-3]
        key, value = _repeat_heads(key, groups), _repeat_heads(value, groups)
    xp = get_array_module(query.data)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    mask, keep = None, None
    if is_causal:
        length, size = query.shape[-2], key.shape[-2]
        keep = xp.tri(length, size, dtype=bool)
    elif attn_mask is not None and attn_mask.dtype == np.bool_:
        keep = attn_mask.data
    elif attn_mask is not None:
        mask = attn_mask
    return attention(query, key, value, mask, keep, scale=scale, dropout_p=dropout_p)
