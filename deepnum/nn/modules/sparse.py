"""Embedding tables, as torch.nn.modules.sparse: ``Embedding`` maps integer ids (words, tokens,
categories) to learned vectors."""
from __future__ import annotations

from typing import Any

from deepnum.autograd.grad_mode import no_grad
from deepnum.backend import int32, int64
from deepnum.creation import empty
from deepnum.functional.sparse import embedding
from deepnum.nn import init
from deepnum.nn.modules.module import Module
from deepnum.nn.parameter import Parameter
from deepnum.tensor import Tensor

__all__ = ["Embedding"]


class Embedding(Module):
    """A lookup table of ``num_embeddings`` vectors of size ``embedding_dim``, initialised N(0, 1)
    as PyTorch; the row ``padding_idx`` starts at zero and never receives a gradient."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight: Tensor | None = None, _freeze: bool = False, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise AssertionError(f"Embedding({num_embeddings}, {embedding_dim}): padding_idx {padding_idx} "
                                     "must be within num_embeddings")
            padding_idx %= num_embeddings
        self.padding_idx, self.max_norm, self.norm_type = padding_idx, max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            weight = empty(num_embeddings, embedding_dim, dtype=dtype, device=device)
            self.weight = Parameter(weight, requires_grad=not _freeze)
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise AssertionError(f"Embedding({num_embeddings}, {embedding_dim}): shape of weight "
                                     f"{tuple(_weight.shape)} does not match num_embeddings and embedding_dim")
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        self._fill_padding_idx_with_zero()

    def _fill_padding_idx_with_zero(self) -> None:
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx] = 0

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        if not isinstance(input, Tensor) or input.dtype not in (int64, int32):
            got = input.dtype if isinstance(input, Tensor) else type(input).__name__
            raise RuntimeError(f"{self._name()}: expected integer indices (int64 or int32), got {got}")
        if input.numel() and (int(input.data.min()) < 0 or int(input.data.max()) >= self.num_embeddings):
            bad = int(input.data.min()) if int(input.data.min()) < 0 else int(input.data.max())
            raise IndexError(f"{self._name()}: index {bad} is out of range [0, {self.num_embeddings}) "
                             f"(input of shape {tuple(input.shape)})")
        return embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                         self.scale_grad_by_freq, self.sparse)

    def _name(self) -> str:
        return f"Embedding({self.num_embeddings}, {self.embedding_dim})"

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq is not False:
            s += f", scale_grad_by_freq={self.scale_grad_by_freq}"
        if self.sparse is not False:
            s += ", sparse=True"
        return s

    @classmethod
    def from_pretrained(cls, embeddings: Tensor, freeze: bool = True, padding_idx: int | None = None,
                        max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                        sparse: bool = False) -> Embedding:
        """An Embedding whose table is ``embeddings`` (shared, not copied; the padding row is kept
        as given), frozen (no gradient) unless ``freeze=False``."""
        if embeddings.ndim != 2:
            raise AssertionError(f"Embedding.from_pretrained: embeddings must be 2-dimensional, "
                                 f"got shape {tuple(embeddings.shape)}")
        rows, cols = embeddings.shape
        return cls(rows, cols, padding_idx=padding_idx, max_norm=max_norm, norm_type=norm_type,
                   scale_grad_by_freq=scale_grad_by_freq, sparse=sparse, _weight=embeddings, _freeze=freeze)
