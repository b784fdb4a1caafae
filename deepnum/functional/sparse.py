"""Embedding look-ups and one_hot.

An embedding is a table W of shape (num_embeddings, embedding_dim) read by integer indices:
y[..., :] = W[idx[...], :]. Its gradient scatter-adds the rows of the output gradient into the
rows they were read from, so an index used k times gets the sum of its k gradients.
"""
from __future__ import annotations

from typing import Any

from deepnum.autograd.function import Function
from deepnum.autograd.grad_mode import no_grad
from deepnum.backend import get_array_module, int32, int64
from deepnum.tensor import Tensor

__all__ = ["embedding", "one_hot"]


class Embedding(Function):
    """y = W[idx] (whole rows of the table); the gradient goes back through ``EmbeddingGrad``. The
    table's version at the look-up is kept for ``lookup_source``."""

    saves_inputs = False

    def __init__(self, indices: Any, row_scale: Any = None, padding_idx: int | None = None):
        self.indices, self.row_scale, self.padding_idx = indices, row_scale, padding_idx

    def __call__(self, weight: Tensor) -> Tensor:
        self.weight_version = weight._version
        return super().__call__(weight)

    def forward(self, weight):
        self.num_embeddings, self.table = weight.shape[0], weight
        return get_array_module(weight).take(weight, self.indices, axis=0)

    def backward(self, gy):
        return EmbeddingGrad(self.indices, self.num_embeddings, self.row_scale, self.padding_idx)(gy)


class EmbeddingGrad(Function):
    """dW[i] = s_i·Σ_{positions p with idx[p] = i} g[p]: a scatter-add of gradient rows, then a
    per-row factor s (0 for ``padding_idx``, 1/count for ``scale_grad_by_freq``). The scatter runs as
    one ``add.at`` over flat element indices (NumPy's fast 1-D path, several times quicker than
    scattering whole rows). Its backward is the look-up again with the ``padding_idx`` row zeroed,
    but without the frequency scaling, as PyTorch's ``embedding_dense_double_backward`` (the scaling
    is a heuristic, not a derivative; PyTorch's double backward is followed rather than its adjoint)."""

    saves_inputs = False

    def __init__(self, indices: Any, num_embeddings: int, row_scale: Any = None, padding_idx: int | None = None):
        self.indices, self.num_embeddings = indices, num_embeddings
        self.row_scale, self.padding_idx = row_scale, padding_idx

    def forward(self, gy):
        xp = get_array_module(gy)
        dim = gy.shape[-1]
        size = self.num_embeddings * dim
        index_dtype = int32 if size < 2**31 else int64
        rows = self.indices.reshape(-1).astype(index_dtype, copy=False)
        flat = (rows[:, None] * index_dtype.type(dim) + xp.arange(dim, dtype=index_dtype)).reshape(-1)
        out = xp.zeros(size, dtype=gy.dtype)
        xp.add.at(out, flat, gy.reshape(-1))
        out = out.reshape(self.num_embeddings, dim)
        if self.row_scale is not None:
            out *= self.row_scale[:, None]
        return out

    def backward(self, ggw):
        if self.padding_idx is not None:
            keep = get_array_module(ggw.data).ones((self.num_embeddings, 1), dtype=ggw.dtype)
            keep[self.padding_idx] = 0
            ggw = ggw * Tensor._make(keep)
        return Embedding(self.indices)(ggw)


def lookup_source(x: Tensor) -> tuple[Tensor, Any] | None:
    """(W, idx) when ``x`` is, unmodified, the recorded output of an embedding look-up x = W[idx]
    and W is unchanged since (same array, same version); else None. An op that multiplies x by a
    matrix can then work on the V rows of the table instead of the rows of x (the LSTM's input
    projection does: ``deepnum.functional._rnn_lstm``)."""
    fn = x.grad_fn
    if type(fn) is not Embedding or x._version != 0 or getattr(fn, "_freed", False):
        return None
    table = fn.inputs[0]
    if table._version != fn.weight_version or table.data is not fn.table:
        return None
    return table, fn.indices


def _index_array(op: str, input: Any, num_embeddings: int) -> Any:  # noqa: A002
    """The indices as an integer array, checked to lie in [0, num_embeddings)."""
    if not isinstance(input, Tensor) or input.dtype not in (int64, int32):
        dtype = input.dtype if isinstance(input, Tensor) else type(input).__name__
        raise RuntimeError(f"{op}(): expected indices of dtype int64 or int32, got {dtype}")
    idx = input.data
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= num_embeddings):
        bad = int(idx.min()) if int(idx.min()) < 0 else int(idx.max())
        raise IndexError(f"{op}(): index {bad} is out of range for a table of {num_embeddings} rows")
    return idx


def _renorm_(weight: Tensor, idx: Any, max_norm: float, norm_type: float) -> None:
    """Rescale, in place, each row that idx reads whose p-norm exceeds ``max_norm`` to norm
    max_norm (factor max_norm/(norm + 1e-7), as PyTorch's ``embedding_renorm_``)."""
    xp = get_array_module(weight.data)
    rows = xp.unique(idx)
    values = weight.data[rows]
    norms = xp.linalg.norm(values, ord=norm_type, axis=1) if values.size else values.sum(axis=1)
    too_long = norms > max_norm
    if bool(too_long.any()):
        scale = xp.where(too_long, max_norm / (norms + 1e-7), 1).astype(weight.dtype, copy=False)
        with no_grad():
            weight[rows] = values * scale[:, None]


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None,  # noqa: A002
              max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
              sparse: bool = False) -> Tensor:
    """Rows of ``weight`` at the integer ``input`` indices: output shape (*input.shape, embedding_dim).
    ``padding_idx``: that row gets no gradient. ``max_norm``: rows read are first renormalised in
    place to p-norm at most max_norm. ``scale_grad_by_freq``: each row's gradient is divided by how
    often its index occurs in ``input``. ``sparse`` is accepted for PyTorch compatibility; the
    gradient is always a dense tensor."""
    if not isinstance(weight, Tensor) or weight.ndim != 2:
        shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise RuntimeError(f"embedding(): expected a 2-D weight (num_embeddings, embedding_dim), got {shape}")
    num = weight.shape[0]
    if padding_idx is not None:
        if not -num <= padding_idx < num:
            raise AssertionError(f"embedding(): padding_idx {padding_idx} must be within num_embeddings ({num})")
        padding_idx %= num
    idx = _index_array("embedding", input, num)
    if max_norm is not None:
        _renorm_(weight, idx, max_norm, norm_type)
    row_scale = None
    if padding_idx is not None or scale_grad_by_freq:
        xp = get_array_module(weight.data)
        row_scale = xp.ones(num, dtype=weight.dtype)
        if scale_grad_by_freq:
            counts = xp.bincount(idx.reshape(-1), minlength=num)
            row_scale /= xp.maximum(counts, 1).astype(weight.dtype)
        if padding_idx is not None:
            row_scale[padding_idx] = 0
    return Embedding(idx, row_scale, padding_idx)(weight)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """An int64 tensor of shape (*tensor.shape, num_classes) with a 1 at each index and 0 elsewhere;
    ``num_classes=-1`` uses max(tensor) + 1."""
    if not isinstance(tensor, Tensor) or tensor.dtype != int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor (int64), got "
                           f"{tensor.dtype if isinstance(tensor, Tensor) else type(tensor).__name__}")
    data = tensor.data
    xp = get_array_module(data)
    if num_classes == -1:
        if data.size == 0:
            raise RuntimeError("one_hot: can not infer total number of classes from empty tensor")
        num_classes = int(data.max()) + 1
    elif num_classes < -1:
        raise RuntimeError(f"one_hot: num_classes should be -1 or non-negative, got {num_classes}")
    if data.size and int(data.min()) < 0:
        raise RuntimeError(f"one_hot: class values must be non-negative, got {int(data.min())}")
    if data.size and int(data.max()) >= num_classes:
        raise RuntimeError(f"one_hot: class values must be smaller than num_classes={num_classes}, "
                           f"got {int(data.max())}")
    return Tensor._make((data[..., None] == xp.arange(num_classes)).astype(int64))
