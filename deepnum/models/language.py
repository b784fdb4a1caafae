"""Character-level language models: a recurrent one and a GPT-style causal transformer, both
predicting the next character from the previous ones (trained with ``deepnum.train.lm``, sampled with
``generate``).

``char_lstm`` (``CharLSTM``) is the char-rnn of A. Karpathy ("The unreasonable effectiveness of
recurrent neural networks", 2015) with the LSTM of S. Hochreiter and J. Schmidhuber ("Long short-term
memory", Neural Computation 1997) as in A. Graves ("Generating sequences with recurrent neural
networks", arXiv:1308.0850, 2013)::

    ids (N, T) → Embedding(V, E) → LSTM(E, H, num_layers, batch_first) → Dropout → Linear(H, V) → logits

``forward(x, state=None)`` returns ``(logits (N, T, V), (h, c))``; passing the returned state into the
next call continues the text (truncated backpropagation through time in the trainer, one character at
a time in ``generate``).

``char_gpt`` (``CharGPT``) is a small decoder-only transformer in the manner of GPT (A. Radford,
K. Narasimhan, T. Salimans, I. Sutskever, "Improving language understanding by generative
pre-training", 2018) and GPT-2 (A. Radford et al., "Language models are unsupervised multitask
learners", 2019)::

    ids (N, T) → Embedding(V, d) + learned positions (block_size, d) → Dropout
               → n_layer × TransformerEncoderLayer(d, n_head, 4d, gelu, norm_first, batch_first) with a causal mask
               → LayerNorm(d) → Linear(d, V, bias=False) → logits (N, T, V)

The blocks are PyTorch's pre-norm encoder layers (``x + SA(LN(x))``, ``x + FF(LN(x))``, the GPT-2
layout); the causal mask (True above the diagonal: position t attends to positions ≤ t) makes them a
decoder. Initialisation as GPT-2: every weight matrix and embedding N(0, 0.02), biases zero, and the
two projections that write into the residual stream (``self_attn.out_proj``, ``linear2``) N(0,
0.02/√(2·n_layer)). ``tie_weights=True`` shares the token embedding with the output layer (Press &
Wolf 2017). ``attention_maps(x)`` recomputes every layer's per-head attention weights for plots.
"""
from __future__ import annotations

import math
from typing import Any

from deepnum.autograd.grad_mode import no_grad
from deepnum.backend import get_array_module
from deepnum.creation import empty
from deepnum.models import register_model
from deepnum.nn import init
from deepnum.nn.modules.container import ModuleList
from deepnum.nn.modules.dropout import Dropout
from deepnum.nn.modules.linear import Linear
from deepnum.nn.modules.module import Module
from deepnum.nn.modules.normalization import LayerNorm
from deepnum.nn.modules.rnn import LSTM
from deepnum.nn.modules.sparse import Embedding
from deepnum.nn.modules.transformer import TransformerEncoderLayer
from deepnum.nn.parameter import Parameter
from deepnum.tensor import Tensor

__all__ = ["CharGPT", "CharLSTM", "DEFAULT_VOCAB_SIZE", "char_gpt", "char_lstm", "generate"]

# The vocabulary of the bundled Shakespeare corpus (``deepnum.data.datasets.shakespeare``, 7 plays):
# the builders' default, so ``deepnum models`` can count their parameters.
DEFAULT_VOCAB_SIZE = 73
_LSTM_PAPER = "Hochreiter & Schmidhuber 1997; Graves 2013; Karpathy 2015 (char-rnn)"
_GPT_PAPER = "Radford et al. 2018 (GPT), 2019 (GPT-2)"


def _check_ids(name: str, x: Any, vocab_size: int, block_size: int | None = None) -> None:
    """Raise unless ``x`` is an (N, T) integer Tensor of ids in [0, vocab_size) with 1 ≤ T ≤ block_size."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected an (N, T) Tensor of character ids, got {type(x).__name__}")
    if x.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer character ids (int64), got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"{name}: expected ids of shape (N, T) with T ≥ 1, got {tuple(x.shape)}")
    if block_size is not None and x.shape[1] > block_size:
        raise ValueError(f"{name}: the sequence length {x.shape[1]} exceeds block_size={block_size} (input "
                         f"{tuple(x.shape)}); crop the context to the last {block_size} characters")
    if x.numel():
        low, high = int(x.data.min()), int(x.data.max())
        if low < 0 or high >= vocab_size:
            raise IndexError(f"{name}: character ids must be in [0, {vocab_size}), got values in [{low}, {high}] "
                             f"(input {tuple(x.shape)})")


def _check_positive(name: str, **values: int) -> None:
    bad = {k: v for k, v in values.items() if not isinstance(v, int) or isinstance(v, bool) or v < 1}
    if bad:
        raise ValueError(f"{name}: expected positive integers, got " + ", ".join(f"{k}={v!r}" for k, v in bad.items()))


class CharLSTM(Module):
    """Embedding → LSTM → Dropout → Linear over characters (see the module docstring).

    ``forward(x, state=None)``: ``x`` (N, T) int64 ids, ``state`` None (zeros) or ``(h, c)`` each
    (num_layers, N, hidden_size); returns ``(logits (N, T, vocab_size), (h, c))``."""

    recurrent = True

    def __init__(self, vocab_size: int, embed_dim: int = 128, hidden_size: int = 256, num_layers: int = 1,
                 dropout: float = 0.0) -> None:
        _check_positive("CharLSTM", vocab_size=vocab_size, embed_dim=embed_dim, hidden_size=hidden_size,
                        num_layers=num_layers)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"CharLSTM: dropout must be in [0, 1), got {dropout}")
        super().__init__()
        self.vocab_size, self.embed_dim, self.hidden_size = vocab_size, embed_dim, hidden_size
        self.num_layers, self.dropout = num_layers, float(dropout)
        self.embedding = Embedding(vocab_size, embed_dim)
        self.lstm = LSTM(embed_dim, hidden_size, num_layers, batch_first=True,
                         dropout=dropout if num_layers > 1 else 0.0)
        self.drop = Dropout(dropout)
        self.head = Linear(hidden_size, vocab_size)

    def _name(self) -> str:
        return f"CharLSTM(vocab {self.vocab_size}, {self.num_layers}×LSTM {self.hidden_size})"

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        _check_ids(self._name(), x, self.vocab_size)
        if state is not None:
            want = (self.num_layers, x.shape[0], self.hidden_size)
            if (not isinstance(state, tuple | list) or len(state) != 2
                    or any(not isinstance(s, Tensor) or tuple(s.shape) != want for s in state)):
                got = ([tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__ for s in state]
                       if isinstance(state, tuple | list) else type(state).__name__)
                raise ValueError(f"{self._name()}: state must be a pair (h, c) of shape {want} for input "
                                 f"{tuple(x.shape)}, got {got}")
            state = tuple(state)
        out, state = self.lstm(self.embedding(x), state)
        return self.head(self.drop(out)), state


class CharGPT(Module):
    """A GPT-style causal transformer over characters (see the module docstring).

    ``forward(x)``: ``x`` (N, T) int64 ids with T ≤ block_size; returns logits (N, T, vocab_size)
    where position t depends only on ``x[:, :t+1]``."""

    recurrent = False

    def __init__(self, vocab_size: int, block_size: int = 128, d_model: int = 128, n_layer: int = 4,
                 n_head: int = 4, dropout: float = 0.0, tie_weights: bool = False) -> None:
        _check_positive("CharGPT", vocab_size=vocab_size, block_size=block_size, d_model=d_model, n_layer=n_layer,
                        n_head=n_head)
        if d_model % n_head:
            raise ValueError(f"CharGPT: d_model={d_model} must be divisible by n_head={n_head}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"CharGPT: dropout must be in [0, 1), got {dropout}")
        super().__init__()
        self.vocab_size, self.block_size, self.d_model = vocab_size, block_size, d_model
        self.n_layer, self.n_head, self.dropout, self.tie_weights = n_layer, n_head, float(dropout), bool(tie_weights)
        self.embedding = Embedding(vocab_size, d_model)
        self.position_embedding = Parameter(empty(block_size, d_model))
        self.drop = Dropout(dropout)
        self.blocks = ModuleList([
            TransformerEncoderLayer(d_model, n_head, dim_feedforward=4 * d_model, dropout=dropout, activation="gelu",
                                    batch_first=True, norm_first=True)
            for _ in range(n_layer)])
        self.ln_f = LayerNorm(d_model)
        self.head = Linear(d_model, vocab_size, bias=False)
        if self.tie_weights:
            self.head.weight = self.embedding.weight
        self._masks: dict[tuple[int, str], Tensor] = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2's initialisation (see the module docstring)."""
        residual_std = 0.02 / math.sqrt(2 * self.n_layer)
        init.normal_(self.embedding.weight, std=0.02)
        init.normal_(self.position_embedding, std=0.02)
        for block in self.blocks:
            init.normal_(block.self_attn.in_proj_weight, std=0.02)
            init.zeros_(block.self_attn.in_proj_bias)
            init.normal_(block.self_attn.out_proj.weight, std=residual_std)
            init.zeros_(block.self_attn.out_proj.bias)
            init.normal_(block.linear1.weight, std=0.02)
            init.zeros_(block.linear1.bias)
            init.normal_(block.linear2.weight, std=residual_std)
            init.zeros_(block.linear2.bias)
        if not self.tie_weights:
            init.normal_(self.head.weight, std=0.02)

    def _name(self) -> str:
        return (f"CharGPT(vocab {self.vocab_size}, block {self.block_size}, d_model {self.d_model}, "
                f"{self.n_layer} layers, {self.n_head} heads)")

    def causal_mask(self, length: int, like: Tensor) -> Tensor:
        """The (T, T) boolean mask, True above the diagonal (a position may not attend to later ones),
        cached per length and device."""
        key = (length, like.device)
        if key not in self._masks:
            xp = get_array_module(like.data)
            self._masks[key] = Tensor._make(xp.triu(xp.ones((length, length), dtype=bool), 1))
        return self._masks[key]

    def _embed(self, x: Tensor) -> Tensor:
        _check_ids(self._name(), x, self.vocab_size, self.block_size)
        return self.drop(self.embedding(x) + self.position_embedding[: x.shape[1]])

    def forward(self, x: Tensor) -> Tensor:
        h = self._embed(x)
        mask = self.causal_mask(x.shape[1], h)
        for block in self.blocks:
            h = block(h, src_mask=mask, is_causal=True)
        return self.head(self.ln_f(h))

    def attention_maps(self, x: Tensor) -> list[Tensor]:
        """Every layer's self-attention weights for ids ``x`` (N, T): a list of n_layer detached
        Tensors (N, n_head, T, T), row t the distribution position t attends with (zero after t).
        Computed in eval mode (no dropout) under ``no_grad``, each from the layer's own normalised
        input ``norm1(h)`` (pre-norm), the mode restored afterwards."""
        was_training = self.training
        self.eval()
        maps = []
        try:
            with no_grad():
                h = self._embed(x)
                mask = self.causal_mask(x.shape[1], h)
                for block in self.blocks:
                    y = block.norm1(h)
                    _, weights = block.self_attn(y, y, y, attn_mask=mask, need_weights=True,
                                                 average_attn_weights=False, is_causal=True)
                    maps.append(weights.detach())
                    h = block(h, src_mask=mask, is_causal=True)
        finally:
            self.train(was_training)
        return maps


@register_model(family="language", paper=_LSTM_PAPER)
def char_lstm(vocab_size: int = DEFAULT_VOCAB_SIZE, embed_dim: int = 128, hidden_size: int = 256, num_layers: int = 1,
              dropout: float = 0.0) -> CharLSTM:
    """Character-level LSTM language model (``CharLSTM``); 73 characters by default (the bundled
    Shakespeare corpus): 423,369 parameters with the defaults."""
    return CharLSTM(vocab_size, embed_dim, hidden_size, num_layers, dropout)


@register_model(family="language", paper=_GPT_PAPER)
def char_gpt(vocab_size: int = DEFAULT_VOCAB_SIZE, block_size: int = 128, d_model: int = 128, n_layer: int = 4,
             n_head: int = 4, dropout: float = 0.0, tie_weights: bool = False) -> CharGPT:
    """Character-level GPT-style causal transformer (``CharGPT``); 73 characters by default: 828,416
    parameters with the defaults."""
    return CharGPT(vocab_size, block_size, d_model, n_layer, n_head, dropout, tie_weights)


from deepnum.models.language_sampling import generate  # noqa: E402  (uses the models' ``recurrent`` flag only)
