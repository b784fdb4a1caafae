"""``MultiheadAttention`` (Vaswani et al. 2017, "Attention is all you need", section 3.2.2):

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W_O,   head_i = Attention(Q W_Q^i, K W_K^i, V W_V^i),

h scaled dot-product attentions on learned projections of width embed_dim/h, run in parallel and
mixed by an output projection. Parameters, masks and outputs follow ``torch.nn.MultiheadAttention``:

- ``in_proj_weight`` (3E, E) packs W_Q, W_K, W_V (or ``q_proj_weight`` (E, E), ``k_proj_weight``
  (E, kdim), ``v_proj_weight`` (E, vdim) when kdim/vdim differ from E), ``in_proj_bias`` (3E),
  ``out_proj`` a Linear(E, E); ``add_bias_kv`` appends a learned key and value (``bias_k``,
  ``bias_v``) to the sequence, ``add_zero_attn`` a zero key and value after the projection.
- Inputs are (L, N, E) or, with ``batch_first``, (N, L, E); unbatched (L, E) works too.
- ``key_padding_mask`` (N, S): True (or -∞ in a float mask) ignores that key; ``attn_mask`` (L, S)
  or (N·num_heads, L, S): True forbids attending (the opposite of ``scaled_dot_product_attention``'s
  boolean mask), a float mask is added to the scores. ``is_causal`` is a hint that ``attn_mask`` is
  the causal mask (required with it, as PyTorch).
- Returns (output, weights): weights (N, L, S) averaged over heads, or (N, num_heads, L, S) with
  ``average_attn_weights=False``, after dropout; None with ``need_weights=False``. A query whose keys
  are all masked gives NaN with ``need_weights=True`` and zeros without, as in PyTorch.

The attention itself is the fused op of ``deepnum.functional.attention``; internally the heads are
laid out (N, num_heads, L, head_dim) and one batched product covers all of them. The projections
run as the fused x Wᵀ + b of ``_transformer_ops`` (one GEMM, the bias added in place; one packed
(3E, E) product for self-attention); ``out_proj`` runs as its module when it carries hooks.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from deepnum import functional as F
from deepnum.backend import get_array_module
from deepnum.creation import empty
from deepnum.functional.attention import attention
from deepnum.functional.joining import pad, split
from deepnum.nn import init
from deepnum.nn.modules._transformer_ops import fused_linear
from deepnum.nn.modules.linear import Linear
from deepnum.nn.modules.module import Module
from deepnum.nn.parameter import Parameter
from deepnum.tensor import Tensor

__all__ = ["MultiheadAttention"]


class NonDynamicallyQuantizableLinear(Linear):
    """A plain Linear under PyTorch's name for MultiheadAttention's ``out_proj`` (so the repr matches)."""


class MultiheadAttention(Module):
    """Multi-head attention as ``torch.nn.MultiheadAttention`` (see the module docstring).
    Initialised as PyTorch: Xavier-uniform input projections, zero biases, ``out_proj.weight`` as a
    Linear's, Xavier-normal ``bias_k``/``bias_v``."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device: Any = None, dtype: Any = None) -> None:
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be greater than 0, got "
                             f"embed_dim={embed_dim} and num_heads={num_heads} instead")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim must be divisible by num_heads, got "
                             f"embed_dim={embed_dim} and num_heads={num_heads}")
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout, self.batch_first = dropout, batch_first
        self.head_dim = embed_dim // num_heads
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, **kw))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = Parameter(empty(embed_dim, embed_dim, **kw))
            self.k_proj_weight = Parameter(empty(embed_dim, self.kdim, **kw))
            self.v_proj_weight = Parameter(empty(embed_dim, self.vdim, **kw))
            self.register_parameter("in_proj_weight", None)
        self.register_parameter("in_proj_bias", Parameter(empty(3 * embed_dim, **kw)) if bias else None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, **kw)
        if add_bias_kv:
            self.bias_k = Parameter(empty(1, 1, embed_dim, **kw))
            self.bias_v = Parameter(empty(1, 1, embed_dim, **kw))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    reset_parameters = _reset_parameters

    def _name(self) -> str:
        dims = "" if self._qkv_same_embed_dim else f", kdim={self.kdim}, vdim={self.vdim}"
        first = ", batch_first=True" if self.batch_first else ""
        return f"MultiheadAttention(embed_dim={self.embed_dim}, num_heads={self.num_heads}{dims}{first})"

    # ------------------------------------------------------------------------- validation
    def _check_inputs(self, query: Tensor, key: Tensor, value: Tensor) -> bool:
        """Raise on shapes that do not fit; return whether the input is batched."""
        e, kd, vd = self.embed_dim, self.kdim, self.vdim
        layout = ("N, L", "N, S") if self.batch_first else ("L, N", "S, N")
        got = f"query {tuple(query.shape)}, key {tuple(key.shape)}, value {tuple(value.shape)}"
        if query.ndim == 3 and key.ndim == 3 and value.ndim == 3:
            q_batch = query.shape[0 if self.batch_first else 1]
            k_lead = key.shape[:2]
            ok = (query.shape[2] == e and key.shape[2] == kd and value.shape[2] == vd
                  and value.shape[:2] == k_lead and key.shape[0 if self.batch_first else 1] == q_batch)
            if not ok:
                raise RuntimeError(f"{self._name()}: expected query ({layout[0]}, {e}), key ({layout[1]}, {kd}) "
                                   f"and value ({layout[1]}, {vd}), got {got}")
            return True
        if query.ndim == 2 and key.ndim == 2 and value.ndim == 2:
            if query.shape[1] != e or key.shape[1] != kd or value.shape[1] != vd or key.shape[0] != value.shape[0]:
                raise RuntimeError(f"{self._name()}: expected unbatched query (L, {e}), key (S, {kd}) and "
                                   f"value (S, {vd}), got {got}")
            return False
        raise RuntimeError(f"{self._name()}: expected batched 3-D ({layout[0]}, E) or unbatched 2-D (L, E) query, "
                           f"key and value of the same number of dims, got {got}")

    def _check_mask(self, mask: Any, name: str, shapes: tuple[tuple[int, ...], ...], dtype: Any) -> None:
        if mask is None:
            return
        if not isinstance(mask, Tensor):
            raise TypeError(f"{self._name()}: {name} must be a Tensor, got {type(mask).__name__}")
        if mask.dtype != np.bool_ and mask.dtype.kind != "f":
            raise RuntimeError(f"{self._name()}: only bool and floating types of {name} are supported, "
                               f"got {mask.dtype}")
        if mask.dtype.kind == "f" and mask.dtype != dtype:
            raise RuntimeError(f"{self._name()}: a float {name} must have the query's dtype {dtype}, got {mask.dtype}")
        if tuple(mask.shape) not in shapes:
            want = " or ".join(str(s) for s in shapes)
            raise RuntimeError(f"{self._name()}: expected {name} of shape {want}, got {tuple(mask.shape)}")

    # ------------------------------------------------------------------------- forward
    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        batched = self._check_inputs(query, key, value)
        n = query.shape[0 if self.batch_first else 1] if batched else 1
        length = query.shape[(1 if self.batch_first else 0) if batched else 0]
        src = key.shape[(1 if self.batch_first else 0) if batched else 0]
        h = self.num_heads
        if batched:
            self._check_mask(key_padding_mask, "key_padding_mask", ((n, src),), query.dtype)
            self._check_mask(attn_mask, "attn_mask", ((length, src), (n * h, length, src)), query.dtype)
        else:
            self._check_mask(key_padding_mask, "key_padding_mask", ((src,),), query.dtype)
            self._check_mask(attn_mask, "attn_mask", ((length, src), (h, length, src)), query.dtype)
        if is_causal and attn_mask is None:
            raise RuntimeError(f"{self._name()}: is_causal is a hint that attn_mask is the causal mask; pass "
                               "attn_mask too (e.g. nn.Transformer.generate_square_subsequent_mask(L))")
        if not batched:
            query, key, value, key_padding_mask = self._batch(query, key, value, key_padding_mask)
        causal = is_causal and key_padding_mask is None and not need_weights
        if causal:
            attn_mask = None  # PyTorch's rule: the hint then replaces the mask
        q, k, v = (self._heads(t) for t in self._project(query, key, value))
        extra = 0
        if self.bias_k is not None:
            k = F.cat([k, self._heads_const(self.bias_k, n)], 2)
            v = F.cat([v, self._heads_const(self.bias_v, n)], 2)
            extra += 1
        if self.add_zero_attn:
            zeros = Tensor._make(get_array_module(q.data).zeros((n, h, 1, self.head_dim), dtype=q.dtype))
            k, v = F.cat([k, zeros], 2), F.cat([v, zeros], 2)
            extra += 1
        mask, keep = self._merge_masks(attn_mask, key_padding_mask, n, extra)
        if causal:
            keep = get_array_module(q.data).tri(length, k.shape[2], dtype=bool)
        p = self.dropout if self.training else 0.0
        result = attention(q, k, v, mask, keep, scale=1.0 / math.sqrt(self.head_dim), dropout_p=p,
                           safe=not need_weights, need_weights=need_weights, out_order=self._merge_order())
        out, weights = result if need_weights else (result, None)
        out = self._out(self._merge_heads(out, n, length))
        if weights is not None and average_attn_weights:
            weights = F.mean(weights, 1)
        if not batched:
            out = F.squeeze(out, 0 if self.batch_first else 1)
            weights = None if weights is None else F.squeeze(weights, 0)
        return out, weights

    def _batch(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None) -> tuple:
        """Unbatched inputs as a batch of one, keeping ``query is key is value`` (self-attention)."""
        d = 0 if self.batch_first else 1
        q = F.unsqueeze(query, d)
        k = q if key is query else F.unsqueeze(key, d)
        v = k if value is key else (q if value is query else F.unsqueeze(value, d))
        kpm = None if key_padding_mask is None else F.unsqueeze(key_padding_mask, 0)
        return q, k, v, kpm

    def _project(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Q W_Qᵀ + b_Q, K W_Kᵀ + b_K, V W_Vᵀ + b_V; one product for self-attention."""
        e, b = self.embed_dim, self.in_proj_bias
        if self._qkv_same_embed_dim and query is key and key is value:
            return split(fused_linear(query, self.in_proj_weight, b), e, dim=-1)
        if self._qkv_same_embed_dim:
            wq, wk, wv = split(self.in_proj_weight, e)
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        bq, bk, bv = split(b, e) if b is not None else (None, None, None)
        return fused_linear(query, wq, bq), fused_linear(key, wk, bk), fused_linear(value, wv, bv)

    def _out(self, x: Tensor) -> Tensor:
        """``out_proj``: the fused x Wᵀ + b when it is the plain Linear without hooks."""
        p = self.out_proj
        if type(p) is NonDynamicallyQuantizableLinear and not p._forward_hooks and not p._forward_pre_hooks:
            return fused_linear(x, p.weight, p.bias)
        return p(x)

    def _heads(self, x: Tensor) -> Tensor:
        """(N, S, E) or (S, N, E) → (N, heads, S, head_dim)."""
        a, b, _ = x.shape
        x = F.reshape(x, a, b, self.num_heads, self.head_dim)
        return F.permute(x, (0, 2, 1, 3) if self.batch_first else (1, 2, 0, 3))

    def _heads_const(self, bias: Tensor, n: int) -> Tensor:
        """A learned (1, 1, E) key or value as one more position of every sequence: (N, heads, 1, head_dim)."""
        x = F.permute(F.reshape(bias, 1, 1, self.num_heads, self.head_dim), (0, 2, 1, 3))
        return F.expand(x, n, self.num_heads, 1, self.head_dim)

    def _merge_order(self) -> tuple[int, ...]:
        """The permutation of (N, heads, L, head_dim) that ``_merge_heads`` applies; the attention op
        stores its output in that order, so the permute is contiguous and the reshape copies nothing."""
        return (0, 2, 1, 3) if self.batch_first else (2, 0, 1, 3)

    def _merge_heads(self, out: Tensor, n: int, length: int) -> Tensor:
        """(N, heads, L, head_dim) → (N, L, E) or (L, N, E)."""
        first, second = (n, length) if self.batch_first else (length, n)
        return F.reshape(F.permute(out, self._merge_order()), first, second, self.embed_dim)

    def _merge_masks(self, attn_mask: Tensor | None, key_padding_mask: Tensor | None, n: int,
                     extra: int) -> tuple[Tensor | None, Any]:
        """Both masks as scores-shaped (broadcastable to (N, heads, L, S)) terms: an additive float
        Tensor from the float masks and a boolean ``keep`` array (False: masked) from the boolean
        ones, each padded by ``extra`` unmasked columns for bias_kv / zero_attn."""
        masks = []
        if attn_mask is not None:
            m = attn_mask if attn_mask.ndim == 2 else F.reshape(attn_mask, n, self.num_heads, *attn_mask.shape[1:])
            masks.append(m)
        if key_padding_mask is not None:
            masks.append(F.reshape(key_padding_mask, n, 1, 1, key_padding_mask.shape[-1]))
        if len(masks) == 2 and masks[0].dtype != masks[1].dtype:
            warnings.warn("Support for mismatched key_padding_mask and attn_mask is deprecated. Use same type "
                          "for both instead.", UserWarning, stacklevel=3)
        mask, keep = None, None
        for m in masks:
            if m.dtype == np.bool_:
                allowed = ~m.data
                if extra:
                    allowed = get_array_module(allowed).pad(allowed, [(0, 0)] * (m.ndim - 1) + [(0, extra)],
                                                            constant_values=True)
                keep = allowed if keep is None else keep & allowed
            else:
                m = pad(m, (0, extra)) if extra else m
                mask = m if mask is None else mask + m
        return mask, keep
