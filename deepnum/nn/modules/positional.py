"""Positional encodings: attention is permutation-equivariant, so a transformer sees word order only
through position information added to its input embeddings. Not part of ``torch.nn`` (PyTorch's
tutorials define them by hand); deepnum additions with PyTorch's conventions (``batch_first``,
(L, N, E) by default, unbatched (L, E)).

- ``PositionalEncoding``: the fixed sinusoids of Vaswani et al. 2017, section 3.5,

      PE[pos, 2i] = sin(pos / 10000^(2i/d)),     PE[pos, 2i+1] = cos(pos / 10000^(2i/d)),

  one frequency per pair of dims, wavelengths in a geometric progression from 2π to 10000·2π, so
  PE[pos + k] is a linear function (a rotation) of PE[pos] for every offset k. The table is a
  non-persistent buffer ``pe`` (max_len, d_model): recomputed at construction, absent from the
  state_dict. An odd d_model gets the sine on its extra last column.
- ``LearnedPositionalEmbedding``: a learned table ``weight`` (max_len, d_model), initialised
  N(0, 0.02²) as GPT-2 and BERT (Radford et al. 2019; Devlin et al. 2019).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from deepnum import backend
from deepnum.creation import empty, tensor
from deepnum.nn import init
from deepnum.nn.modules.dropout import Dropout
from deepnum.nn.modules.module import Module
from deepnum.nn.parameter import Parameter
from deepnum.tensor import Tensor

__all__ = ["LearnedPositionalEmbedding", "PositionalEncoding"]


def sinusoidal_table(max_len: int, d_model: int, dtype: Any = np.float64) -> np.ndarray:
    """The (max_len, d_model) sinusoidal table of Vaswani et al. 2017 §3.5, computed in float64."""
    pos = np.arange(max_len, dtype=np.float64)[:, None]
    inv_freq = np.exp(np.arange(0, d_model, 2, dtype=np.float64) * (-math.log(10000.0) / d_model))
    angles = pos * inv_freq  # (max_len, ceil(d/2)): column i is the angle of dims 2i and 2i+1
    table = np.empty((max_len, d_model), dtype=np.float64)
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : d_model // 2])
    return table.astype(dtype, copy=False)


def _positions(module: Module, x: Any, max_len: int, d_model: int) -> int:
    """Check x is (L, N, E), (N, L, E) with batch_first, or (L, E), and return L."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{module._name()}: expected a Tensor, got {type(x).__name__}")
    layout = "(N, L, E)" if module.batch_first else "(L, N, E)"
    if x.ndim not in (2, 3) or x.shape[-1] != d_model:
        raise ValueError(f"{module._name()}: expected input {layout.replace('E', str(d_model))} or unbatched "
                         f"(L, {d_model}), got {tuple(x.shape)}")
    length = x.shape[1] if x.ndim == 3 and module.batch_first else x.shape[0]
    if length > max_len:
        raise ValueError(f"{module._name()}: the sequence length {length} of the input {tuple(x.shape)} is larger "
                         f"than max_len={max_len}; build the module with a larger max_len")
    return length


def _aligned(table: Tensor, x: Tensor, batch_first: bool) -> Tensor:
    """The (L, E) table rows shaped to broadcast against x: (L, 1, E) for (L, N, E) input."""
    return table.unsqueeze(1) if x.ndim == 3 and not batch_first else table


class PositionalEncoding(Module):
    """x + PE[:L] (the fixed sinusoidal table, see the module docstring), then dropout (the paper
    uses 0.1 on the sum). ``pe`` is a non-persistent buffer, so the state_dict is empty."""

    def __init__(self, d_model: int, dropout: float = 0.0, max_len: int = 5000, batch_first: bool = False,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        if d_model <= 0 or max_len <= 0:
            raise ValueError(f"PositionalEncoding: d_model and max_len must be positive, got d_model={d_model}, "
                             f"max_len={max_len}")
        self.d_model, self.max_len, self.batch_first = d_model, max_len, batch_first
        self.dropout = Dropout(dropout)
        dtype = backend.get_default_dtype() if dtype is None else backend.as_dtype(dtype)
        self.register_buffer("pe", tensor(sinusoidal_table(max_len, d_model, dtype), device=device),
                             persistent=False)
        self._table_dtype = self.pe.dtype  # the precision the table was computed in

    def _name(self) -> str:
        return f"PositionalEncoding(d_model={self.d_model}, max_len={self.max_len})"

    def forward(self, x: Tensor) -> Tensor:
        length = _positions(self, x, self.max_len, self.d_model)
        if self.pe.dtype != self._table_dtype:  # cast by .to()/.double(): recompute at full precision once
            self.pe = tensor(sinusoidal_table(self.max_len, self.d_model, self.pe.dtype), device=self.pe.device)
            self._table_dtype = self.pe.dtype
        if self.pe.dtype == x.dtype:
            pe = self.pe[:length]
        else:  # another input dtype: the rows in that dtype, computed in float64 (no rounding via the buffer's)
            pe = tensor(sinusoidal_table(length, self.d_model, x.dtype), device=x.device)
        return self.dropout(x + _aligned(pe, x, self.batch_first))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}, batch_first={self.batch_first}"


class LearnedPositionalEmbedding(Module):
    """x + W[:L] with a learned table W = ``weight`` (max_len, d_model), initialised N(0, 0.02²)
    (GPT-2 / BERT); only the first L rows receive gradient."""

    def __init__(self, max_len: int, d_model: int, batch_first: bool = False, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        if d_model <= 0 or max_len <= 0:
            raise ValueError(f"LearnedPositionalEmbedding: max_len and d_model must be positive, got "
                             f"max_len={max_len}, d_model={d_model}")
        self.max_len, self.d_model, self.batch_first = max_len, d_model, batch_first
        self.weight = Parameter(empty(max_len, d_model, dtype=dtype, device=device))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight, 0.0, 0.02)

    def _name(self) -> str:
        return f"LearnedPositionalEmbedding(max_len={self.max_len}, d_model={self.d_model})"

    def forward(self, x: Tensor) -> Tensor:
        length = _positions(self, x, self.max_len, self.d_model)
        return x + _aligned(self.weight[:length], x, self.batch_first)

    def extra_repr(self) -> str:
        return f"{self.max_len}, {self.d_model}, batch_first={self.batch_first}"
