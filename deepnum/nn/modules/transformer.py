"""The transformer (Vaswani et al. 2017, "Attention is all you need") as ``torch.nn.modules.transformer``.

An encoder layer is self-attention followed by a position-wise feed-forward network
FFN(x) = W₂ act(W₁ x + b₁) + b₂, each sublayer wrapped in a residual connection, dropout and a
LayerNorm. A decoder layer adds attention from the target to the encoder's output ("memory") between
the two. Two placements of the LayerNorm:

- post-norm (``norm_first=False``, the original paper): x = LN(x + Sublayer(x));
- pre-norm (``norm_first=True``, Xiong et al. 2020, "On layer normalization in the transformer
  architecture"): x = x + Sublayer(LN(x)), which keeps an identity path from input to output and
  trains without a learning-rate warm-up.

Modules, parameters (``self_attn``, ``multihead_attn``, ``linear1``/``linear2``, ``norm1``-``norm3``,
``dropout``/``dropout1``-``dropout3``), state_dict keys, masks and defaults follow ``torch.nn``:
``src_mask``/``tgt_mask``/``memory_mask`` are boolean (True: may not attend) or additive float masks
of shape (L, S) or (N·nhead, L, S); ``*_key_padding_mask`` (N, S) marks padding keys (True or -∞);
``is_causal`` is a hint that the mask is the causal one. PyTorch's inference "fast path" (and the
nested tensors of ``enable_nested_tensor``) are an implementation detail there; deepnum computes the
same numbers the ordinary way, so those options are accepted and have no effect, except that torch's
nested-tensor path returns zeros at padded positions of an encoder in ``eval`` under ``no_grad``
where deepnum returns the layer's values (only the padded positions, which are meaningless, differ).

The feed-forward block uses the fused ``linear + bias + activation`` of ``_transformer_ops`` when the
activation is relu or gelu (one Function instead of three: fewer passes over the (N, L, ffn) array).
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from deepnum import backend
from deepnum.creation import tensor
from deepnum.functional.activation import gelu, relu
from deepnum.nn.modules._transformer_ops import fused_linear
from deepnum.nn.modules.activation import GELU, ReLU
from deepnum.nn.modules.attention import MultiheadAttention
from deepnum.nn.modules.container import ModuleList
from deepnum.nn.modules.dropout import Dropout
from deepnum.nn.modules.linear import Linear
from deepnum.nn.modules.module import Module
from deepnum.nn.modules.normalization import LayerNorm
from deepnum.tensor import Tensor

__all__ = ["Transformer", "TransformerDecoder", "TransformerDecoderLayer", "TransformerEncoder",
           "TransformerEncoderLayer"]


# ----------------------------------------------------------------------------- helpers
def _get_activation_fn(activation: str | Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    if isinstance(activation, str):
        if activation == "relu":
            return relu
        if activation == "gelu":
            return gelu
        raise RuntimeError(f"activation should be relu/gelu, not {activation}")
    if not callable(activation):
        raise TypeError(f"activation should be 'relu', 'gelu' or a callable, got {type(activation).__name__}")
    return activation


def _relu_or_gelu(activation: Callable) -> int:
    """PyTorch's ``activation_relu_or_gelu`` flag: 1 for relu, 2 for (exact) gelu, 0 otherwise."""
    if activation is relu or isinstance(activation, ReLU):
        return 1
    if activation is gelu or isinstance(activation, GELU):
        return 2
    return 0


def _generate_square_subsequent_mask(sz: int, device: Any = None, dtype: Any = None) -> Tensor:
    """The causal mask: -∞ above the diagonal (position i may not attend to j > i), 0 elsewhere."""
    dtype = backend.get_default_dtype() if dtype is None else backend.as_dtype(dtype)
    mask = np.triu(np.full((sz, sz), -np.inf, dtype=dtype), 1)
    return tensor(mask, device=device)


def _detect_is_causal_mask(mask: Tensor | None, is_causal: bool | None, size: int) -> bool:
    """``is_causal`` if given; else (None) whether ``mask`` is exactly the square causal mask
    (float -∞ above the diagonal, or boolean True there)."""
    if is_causal is not None:
        return bool(is_causal)
    if mask is None or tuple(mask.shape) != (size, size):
        return False
    above = np.triu(np.ones((size, size), dtype=bool), 1)
    m = backend.to_device(mask.data, "cpu") if mask.device != "cpu" else mask.data
    if m.dtype == np.bool_:
        return bool(np.array_equal(m, above))
    return bool(np.all(np.isneginf(m) == above) and np.all(m[~above] == 0))


def _get_clones(module: Module, n: int) -> ModuleList:
    return ModuleList([copy.deepcopy(module) for _ in range(n)])


def _check_mask(owner: str, name: str, mask: Any, shapes: tuple[tuple[int, ...], ...]) -> None:
    """A mask must be a bool or floating Tensor of one of ``shapes``."""
    if mask is None:
        return
    if not isinstance(mask, Tensor):
        raise TypeError(f"{owner}: {name} must be a Tensor, got {type(mask).__name__}")
    if mask.dtype != np.bool_ and mask.dtype.kind != "f":
        raise RuntimeError(f"{owner}: only bool and floating types of {name} are supported, got {mask.dtype}")
    if tuple(mask.shape) not in shapes:
        want = " or ".join(str(s) for s in shapes)
        raise RuntimeError(f"{owner}: expected {name} of shape {want}, got {tuple(mask.shape)}")


def _plain(module: Module) -> bool:
    """A Linear exactly (not a subclass or a replacement) without hooks: safe to run fused."""
    return type(module) is Linear and not module._forward_hooks and not module._forward_pre_hooks


def _layout(batch_first: bool) -> str:
    return "(N, L, E)" if batch_first else "(L, N, E)"


# ----------------------------------------------------------------------------- layers
class _Layer(Module):
    """What the encoder and decoder layers share: the feed-forward block, the input checks."""

    def _init_common(self, d_model: int, nhead: int, dropout: float, bias: bool, batch_first: bool,
                     kw: dict) -> None:
        """Validate the configuration (before anything is built), then build ``self_attn``."""
        name = f"{type(self).__name__}(d_model={d_model}, nhead={nhead})"
        if d_model <= 0 or nhead <= 0 or d_model % nhead:
            raise ValueError(f"{name}: d_model must be a positive multiple of nhead")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{name}: dropout probability has to be between 0 and 1, but got {dropout}")
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            **kw)

    def _init_ffn(self, d_model: int, dim_feedforward: int, dropout: float, bias: bool, kw: dict) -> None:
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **kw)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **kw)

    def _name(self) -> str:
        a = self.self_attn
        return f"{type(self).__name__}(d_model={a.embed_dim}, nhead={a.num_heads})"

    def _check_sequence(self, name: str, x: Any) -> bool:
        """``x`` must be (L, N, E) / (N, L, E) or unbatched (L, E) with E = d_model; returns batched."""
        e = self.self_attn.embed_dim
        if not isinstance(x, Tensor):
            raise TypeError(f"{self._name()}: {name} must be a Tensor, got {type(x).__name__}")
        if x.ndim not in (2, 3) or x.shape[-1] != e:
            layout = _layout(self.self_attn.batch_first).replace("E", str(e))
            raise RuntimeError(f"{self._name()}: expected {name} {layout} or unbatched (L, {e}), "
                               f"got {tuple(x.shape)}")
        return x.ndim == 3

    def _dims(self, x: Tensor) -> tuple[int, int]:
        """(batch size or 0 for unbatched, sequence length)."""
        if x.ndim == 2:
            return 0, x.shape[0]
        bf = self.self_attn.batch_first
        return x.shape[0 if bf else 1], x.shape[1 if bf else 0]

    def _check_masks(self, n: int, length: int, src: int, attn_mask: Any, attn_name: str, padding_mask: Any,
                     padding_name: str) -> None:
        h = self.self_attn.num_heads
        _check_mask(self._name(), attn_name, attn_mask, ((length, src), ((n or 1) * h, length, src)))
        _check_mask(self._name(), padding_name, padding_mask, ((n, src),) if n else ((src,),))

    def _ff_block(self, x: Tensor) -> Tensor:
        """linear2(dropout(act(linear1(x)))); plain Linears (no hooks, not replaced) run as the fused
        act(x Wᵀ + b) op of ``_transformer_ops``, the ReLU or exact GELU included."""
        l1, l2, act = self.linear1, self.linear2, self.activation
        if not (_plain(l1) and _plain(l2)):
            return l2(self.dropout(act(l1(x))))
        name = "relu" if act is relu else "gelu" if act is gelu else None
        h = fused_linear(x, l1.weight, l1.bias, name) if name else act(fused_linear(x, l1.weight, l1.bias))
        return fused_linear(self.dropout(h), l2.weight, l2.bias)


class TransformerEncoderLayer(_Layer):
    """Self-attention and a feed-forward network, each in a residual block (see the module docstring):
    post-norm x = LN₂(y + FFN(y)), y = LN₁(x + SA(x)) (Vaswani et al. 2017), or with ``norm_first``
    x = y + FFN(LN₂(y)), y = x + SA(LN₁(x)) (Xiong et al. 2020). ``activation`` is 'relu', 'gelu' or
    a callable (a Module is registered as the submodule ``activation``)."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str | Callable[[Tensor], Tensor] = relu, layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        activation = _get_activation_fn(activation)
        self._init_common(d_model, nhead, dropout, bias, batch_first, kw)
        self._init_ffn(d_model, dim_feedforward, dropout, bias, kw)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation_relu_or_gelu = _relu_or_gelu(activation)
        self.activation = activation

    def forward(self, src: Tensor, src_mask: Tensor | None = None, src_key_padding_mask: Tensor | None = None,
                is_causal: bool = False) -> Tensor:
        self._check_sequence("src", src)
        n, length = self._dims(src)
        self._check_masks(n, length, length, src_mask, "src_mask", src_key_padding_mask, "src_key_padding_mask")
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self.dropout2(self._ff_block(self.norm2(x)))
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self.dropout2(self._ff_block(x)))

    def _sa_block(self, x: Tensor, attn_mask: Tensor | None, key_padding_mask: Tensor | None,
                  is_causal: bool) -> Tensor:
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)


class TransformerDecoderLayer(_Layer):
    """Self-attention on the target, attention from the target to the memory (the encoder's output)
    and a feed-forward network, each in a residual block, post-norm (Vaswani et al. 2017) or with
    ``norm_first`` pre-norm (Xiong et al. 2020)."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str | Callable[[Tensor], Tensor] = relu, layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        activation = _get_activation_fn(activation)
        self._init_common(d_model, nhead, dropout, bias, batch_first, kw)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=batch_first,
                                                 bias=bias, **kw)
        self._init_ffn(d_model, dim_feedforward, dropout, bias, kw)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = activation

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask: Tensor | None = None,
                memory_mask: Tensor | None = None, tgt_key_padding_mask: Tensor | None = None,
                memory_key_padding_mask: Tensor | None = None, tgt_is_causal: bool = False,
                memory_is_causal: bool = False) -> Tensor:
        self._check_inputs(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask)
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            return x + self.dropout3(self._ff_block(self.norm3(x)))
        x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
        x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
        return self.norm3(x + self.dropout3(self._ff_block(x)))

    def _check_inputs(self, tgt: Any, memory: Any, tgt_mask: Any, memory_mask: Any, tgt_key_padding_mask: Any,
                      memory_key_padding_mask: Any) -> None:
        batched = self._check_sequence("tgt", tgt)
        if self._check_sequence("memory", memory) != batched or \
                (batched and self._dims(tgt)[0] != self._dims(memory)[0]):
            layout = _layout(self.self_attn.batch_first)
            raise RuntimeError(f"{self._name()}: tgt and memory must both be batched {layout} with the same batch "
                               f"size N, or both unbatched (L, E); got tgt "
                               f"{tuple(tgt.shape)} and memory {tuple(memory.shape)}")
        n, length = self._dims(tgt)
        source = self._dims(memory)[1]
        self._check_masks(n, length, length, tgt_mask, "tgt_mask", tgt_key_padding_mask, "tgt_key_padding_mask")
        self._check_masks(n, length, source, memory_mask, "memory_mask", memory_key_padding_mask,
                          "memory_key_padding_mask")

    def _sa_block(self, x: Tensor, attn_mask: Tensor | None, key_padding_mask: Tensor | None,
                  is_causal: bool) -> Tensor:
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, is_causal=is_causal,
                           need_weights=False)[0]
        return self.dropout1(x)

    def _mha_block(self, x: Tensor, mem: Tensor, attn_mask: Tensor | None, key_padding_mask: Tensor | None,
                   is_causal: bool) -> Tensor:
        x = self.multihead_attn(x, mem, mem, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                is_causal=is_causal, need_weights=False)[0]
        return self.dropout2(x)


# ----------------------------------------------------------------------------- stacks
class TransformerEncoder(Module):
    """``num_layers`` deep copies of ``encoder_layer`` (``layers.0`` ... ``layers.{N-1}``, independent
    weights) applied in turn, then the optional final ``norm`` (needed after pre-norm layers).
    ``enable_nested_tensor`` and ``mask_check`` concern PyTorch's nested-tensor inference path and
    have no effect here (see the module docstring). ``is_causal=None`` detects the causal mask."""

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int, norm: Module | None = None,
                 enable_nested_tensor: bool = True, mask_check: bool = True) -> None:
        super().__init__()
        if not isinstance(encoder_layer, Module):
            raise TypeError(f"TransformerEncoder: encoder_layer must be a Module, got {type(encoder_layer).__name__}")
        self.layers = _get_clones(encoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm
        self.enable_nested_tensor = enable_nested_tensor
        self.use_nested_tensor = False  # no nested tensors in deepnum: the ordinary path always
        self.mask_check = mask_check

    def forward(self, src: Tensor, mask: Tensor | None = None, src_key_padding_mask: Tensor | None = None,
                is_causal: bool | None = None) -> Tensor:
        first = self.layers[0] if len(self.layers) else None
        if first is not None and isinstance(src, Tensor):
            batch_first = first.self_attn.batch_first if hasattr(first, "self_attn") else False
            length = src.shape[0] if src.ndim == 2 else src.shape[1 if batch_first else 0]
            is_causal = _detect_is_causal_mask(mask, is_causal, length) if src.ndim in (2, 3) else bool(is_causal)
        output = src
        for mod in self.layers:
            output = mod(output, src_mask=mask, is_causal=bool(is_causal), src_key_padding_mask=src_key_padding_mask)
        return output if self.norm is None else self.norm(output)


class TransformerDecoder(Module):
    """``num_layers`` deep copies of ``decoder_layer`` applied in turn to the target, each attending
    to the same ``memory``, then the optional final ``norm``. ``tgt_is_causal=None`` detects the causal mask."""

    def __init__(self, decoder_layer: TransformerDecoderLayer, num_layers: int, norm: Module | None = None) -> None:
        super().__init__()
        if not isinstance(decoder_layer, Module):
            raise TypeError(f"TransformerDecoder: decoder_layer must be a Module, got {type(decoder_layer).__name__}")
        self.layers = _get_clones(decoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask: Tensor | None = None, memory_mask: Tensor | None = None,
                tgt_key_padding_mask: Tensor | None = None, memory_key_padding_mask: Tensor | None = None,
                tgt_is_causal: bool | None = None, memory_is_causal: bool = False) -> Tensor:
        first = self.layers[0] if len(self.layers) else None
        if first is not None and isinstance(tgt, Tensor) and tgt.ndim in (2, 3):
            batch_first = first.self_attn.batch_first if hasattr(first, "self_attn") else False
            length = tgt.shape[0] if tgt.ndim == 2 else tgt.shape[1 if batch_first else 0]
            tgt_is_causal = _detect_is_causal_mask(tgt_mask, tgt_is_causal, length)
        output = tgt
        for mod in self.layers:
            output = mod(output, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                         tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                         tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal)
        return output if self.norm is None else self.norm(output)


class Transformer(Module):
    """The encoder-decoder transformer of Vaswani et al. 2017: an encoder stack over the source, a
    decoder stack over the target attending to the encoder's output, each closed by a LayerNorm.
    Every parameter of more than one dim is re-initialised Xavier-uniform (Glorot & Bengio 2010), as
    PyTorch (and the paper's reference code); biases and LayerNorms keep their initialisation."""

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6, num_decoder_layers: int = 6,
                 dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str | Callable[[Tensor], Tensor] = relu, custom_encoder: Any | None = None,
                 custom_decoder: Any | None = None, layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        args = (d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first, norm_first, bias)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            self.encoder = TransformerEncoder(TransformerEncoderLayer(*args, **kw), num_encoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            self.decoder = TransformerDecoder(TransformerDecoderLayer(*args, **kw), num_decoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw))
        self._reset_parameters()
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first

    def _reset_parameters(self) -> None:
        from deepnum.nn import init

        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)

    @staticmethod
    def generate_square_subsequent_mask(sz: int, device: Any = None, dtype: Any = None) -> Tensor:
        """The (sz, sz) causal mask: -∞ above the diagonal, 0 elsewhere (float, the default dtype)."""
        return _generate_square_subsequent_mask(sz, device=device, dtype=dtype)

    def forward(self, src: Tensor, tgt: Tensor, src_mask: Tensor | None = None, tgt_mask: Tensor | None = None,
                memory_mask: Tensor | None = None, src_key_padding_mask: Tensor | None = None,
                tgt_key_padding_mask: Tensor | None = None, memory_key_padding_mask: Tensor | None = None,
                src_is_causal: bool | None = None, tgt_is_causal: bool | None = None,
                memory_is_causal: bool = False) -> Tensor:
        name = f"Transformer(d_model={self.d_model}, nhead={self.nhead})"
        if not isinstance(src, Tensor) or not isinstance(tgt, Tensor):
            raise TypeError(f"{name}: src and tgt must be Tensors, got {type(src).__name__} and {type(tgt).__name__}")
        batch = 0 if self.batch_first else 1
        if src.ndim == 3 and tgt.ndim == 3 and src.shape[batch] != tgt.shape[batch]:
            raise RuntimeError(f"{name}: the batch number of src and tgt must be equal, got src {tuple(src.shape)} "
                               f"and tgt {tuple(tgt.shape)} ({_layout(self.batch_first)})")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise RuntimeError(f"{name}: the feature number of src and tgt must be equal to d_model={self.d_model}, "
                               f"got src {tuple(src.shape)} and tgt {tuple(tgt.shape)}")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                            memory_is_causal=memory_is_causal)
