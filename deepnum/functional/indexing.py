"""Indexing and gathering: ``x[idx]`` with ints, slices, None, Ellipsis, integer and boolean arrays;
``gather``, ``scatter_add``, ``index_select``, ``take_along_dim`` and ``masked_fill``.

The backward of reading elements is writing the gradient back to where they came from. With
integer-array indices an element can be read several times, so the write must *add*
(``np.add.at``), never assign; plain assignment would keep only the last copy's gradient.
``gather`` and ``index_select`` are reads of this kind (an advanced index built from the index
tensor), so they share ``getitem``'s backward; ``scatter_add`` is the adjoint write.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from deepnum.autograd.function import Function
from deepnum.backend import get_array_module
from deepnum.functional._operands import raw
from deepnum.functional.array import broadcast_to, cast, reshape, sum_to
from deepnum.tensor import Tensor

__all__ = ["getitem", "unwrap_index", "gather", "scatter_add", "index_select", "take_along_dim", "masked_fill"]


# ----------------------------------------------------------------------------- x[index]
def _reads_as_tuple(seq: list) -> bool:
    """PyTorch (like NumPy before 1.23) reads a short list that holds a Tensor, a sequence, a slice,
    None or Ellipsis as a tuple of per-dimension indices (``x[[[0, 1], [2, 3]]]`` is ``x[[0, 1], [2, 3]]``)."""
    return len(seq) < 32 and any(
        isinstance(s, Tensor | list | tuple | slice | np.ndarray) or s is None or s is Ellipsis for s in seq)


def _list_array(seq: list | tuple) -> np.ndarray:
    """A nested list of ints/bools (or 0-d Tensors) as an index array; an empty list indexes nothing."""
    array = np.asarray([_list_array(s) if isinstance(s, list | tuple) else raw(s) for s in seq])
    return array.astype(np.int64) if array.size == 0 else array


def _unwrap_one(part: Any) -> Any:
    if isinstance(part, Tensor):
        part = part.data
    elif isinstance(part, list | tuple):
        part = _list_array(part)
    elif isinstance(part, slice) and part.step is not None and part.step <= 0:
        raise ValueError(f"index {part}: step must be greater than zero")
    if getattr(part, "dtype", None) == np.uint8:  # PyTorch's deprecated byte masks
        part = part.astype(bool)
    return part


def unwrap_index(index: Any) -> Any:
    """Replace Tensors inside an index by their arrays (lists become integer/bool arrays), with
    PyTorch's reading of lists, byte masks and slice steps."""
    if isinstance(index, list) and _reads_as_tuple(index):
        index = tuple(index)
    if isinstance(index, tuple):
        return tuple(_unwrap_one(i) for i in index)
    return _unwrap_one(index)


def _on_module(index: Any, xp: Any) -> Any:
    """Move the host arrays of an index to the data's array module (CuPy indexes with CuPy arrays)."""
    if xp is np:
        return index
    if isinstance(index, tuple):
        return tuple(_on_module(i, xp) for i in index)
    return xp.asarray(index) if isinstance(index, np.ndarray) else index


def _has_array(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(hasattr(p, "dtype") and getattr(p, "ndim", 0) > 0 for p in parts)


class GetItem(Function):
    """y = x[index]; the gradient goes back to the positions read (``GetItemGrad``)."""

    saves_inputs = False

    def __init__(self, index: Any):
        self.index = index

    def forward(self, x):
        self.in_shape = x.shape
        return x[self.index]

    def backward(self, gy):
        return GetItemGrad(self.index, self.in_shape)(gy)


class GetItemGrad(Function):
    """Scatter-add the gradient of ``x[index]`` into zeros of x's shape; its own backward is
    ``getitem`` again (the two are adjoint linear maps)."""

    saves_inputs = False

    def __init__(self, index: Any, shape: tuple[int, ...]):
        self.index, self.shape = index, shape

    def forward(self, gy):
        xp = get_array_module(gy)
        gx = xp.zeros(self.shape, dtype=gy.dtype)
        if _has_array(self.index):
            xp.add.at(gx, self.index, gy)
        else:
            gx[self.index] = gy
        return gx

    def backward(self, ggx):
        return getitem(ggx, self.index)


def _is_int(part: Any) -> bool:
    if isinstance(part, bool | np.bool_):
        return False
    return isinstance(part, int | np.integer) or (getattr(part, "ndim", 1) == 0 and part.dtype.kind in "iu")


def _ints_first(index: tuple) -> tuple[tuple, tuple]:
    """PyTorch applies integer indices as plain selections before any index array, so they never
    join the arrays' broadcast group as in NumPy (``x[0, :, [1, 1]]`` has shape (4, 2) for x of
    shape (3, 4, 5), not NumPy's (2, 4)). Split the index into those selections and the rest."""
    selections, rest = [], []
    for part in index:
        if _is_int(part):
            selections.append(int(part))  # a plain int keeps the selection a view (a 0-d array copies)
        elif part is None or isinstance(part, bool | np.bool_):
            rest.append(part)
        else:
            width = part.ndim if getattr(part, "dtype", None) == np.bool_ else 1
            selections.extend([part] if part is Ellipsis else [slice(None)] * width)
            rest.append(part)
    return tuple(selections), tuple(rest)


def getitem(input: Tensor, index: Any) -> Tensor:
    """``input[index]`` (basic indexing gives a view of the data, advanced indexing a copy)."""
    index = _on_module(unwrap_index(index), get_array_module(input.data))
    try:
        if isinstance(index, tuple) and _has_array(index) and any(_is_int(p) for p in index):
            selections, rest = _ints_first(index)
            return GetItem(rest)(GetItem(selections)(input))
        return GetItem(index)(input)
    except IndexError as err:
        shape = tuple(input.shape)
        raise IndexError(f"getitem: index {index!r} does not fit a tensor of shape {shape}: {err}") from None


def assign_index(data: Any, index: Any, value: Any) -> None:
    """``data[index] = value`` in place (``Tensor.__setitem__``), reading ``index`` as ``getitem`` does."""
    index = _on_module(unwrap_index(index), get_array_module(data))
    if isinstance(index, tuple) and _has_array(index) and any(_is_int(p) for p in index):
        selections, rest = _ints_first(index)
        data[selections][rest] = value
    else:
        data[index] = value


# ----------------------------------------------------------------------------- gather family
def _index_array(op: str, index: Any, xp: Any) -> Any:
    data = raw(index)
    if not hasattr(data, "dtype"):
        data = np.asarray(data)
    if data.dtype.kind not in "iu":
        raise RuntimeError(f"{op}(): expected an int32 or int64 index, got dtype {data.dtype}")
    return data if xp is np else xp.asarray(data)


def _dim(op: str, dim: int, ndim: int) -> int:
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"{op}(): dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim})")
    return dim % n


def _check_bounds(op: str, index: Any, dim: int, size: int, error: type = RuntimeError) -> None:
    if index.size:
        low, high = int(index.min()), int(index.max())
        if low < 0 or high >= size:
            bad = low if low < 0 else high
            raise error(f"{op}(): index {bad} is out of bounds for dimension {dim} with size {size}")


def _along_dim(index: Any, dim: int) -> tuple:
    """The advanced index that reads ``x[i0, .., index[i0, .., ik, ..], .., in]`` at each position
    of ``index``: the index values along ``dim``, a broadcast arange along every other dimension."""
    xp = get_array_module(index)
    ndim = index.ndim
    return tuple(index if d == dim else xp.arange(n).reshape((1,) * d + (n,) + (1,) * (ndim - d - 1))
                 for d, n in enumerate(index.shape))


class Gather(GetItem):
    """y[i][j][k] = x[i][index[i][j][k]][k] (for dim=1): a read through an advanced index, so the
    backward scatter-adds (repeated indices accumulate)."""


def gather(input: Tensor, dim: int, index: Tensor, *, sparse_grad: bool = False) -> Tensor:
    """Pick values along ``dim`` at the positions in ``index``; the result has ``index``'s shape.
    ``sparse_grad`` is accepted for PyTorch compatibility; the gradient is always dense."""
    xp = get_array_module(input.data)
    idx = _index_array("gather", index, xp)
    if max(idx.ndim, 1) != max(input.ndim, 1):
        raise RuntimeError(f"gather(): index of shape {tuple(idx.shape)} must have the same number of "
                           f"dimensions as input of shape {tuple(input.shape)}")
    dim = _dim("gather", dim, input.ndim)
    x = reshape(input, 1) if input.ndim == 0 else input
    flat = idx.reshape(-1) if idx.ndim == 0 else idx
    for d, (n, m) in enumerate(zip(flat.shape, x.shape)):
        if d != dim and n > m:
            raise RuntimeError(f"gather(): index of shape {tuple(idx.shape)} must be no larger than input of "
                               f"shape {tuple(input.shape)} apart from dimension {dim}")
    _check_bounds("gather", flat, dim, x.shape[dim])
    out = Gather(_along_dim(flat, dim))(x)
    return reshape(out, idx.shape) if out.shape != idx.shape else out


class ScatterAdd(Function):
    """y = x, then y[i][index[i][j]] += src[i][j] (for dim=1). dy/dx = identity; dy/dsrc reads the
    gradient back through the same index (a gather), zero where ``src`` was not used."""

    saves_inputs = False

    def __init__(self, index: tuple, used: tuple):
        self.index, self.used = index, used

    def forward(self, x, src):
        self.src_shape = src.shape
        out = x.copy()
        get_array_module(x).add.at(out, self.index, src[self.used])
        return out

    def backward(self, gy):
        gsrc = None
        if self.needs_input_grad[1]:
            gsrc = getitem(gy, self.index)
            if gsrc.shape != self.src_shape:
                gsrc = GetItemGrad(self.used, self.src_shape)(gsrc)
        return gy, gsrc


def scatter_add(input: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """Out-of-place ``input.scatter_add_(dim, index, src)``: add ``src`` values into a copy of
    ``input`` at the positions ``index`` names along ``dim``; repeated positions add up."""
    xp = get_array_module(input.data)
    idx = _index_array("scatter_add", index, xp)
    shapes = f"input {tuple(input.shape)}, index {tuple(idx.shape)} and src {tuple(src.shape)}"
    if not isinstance(src, Tensor) or src.dtype != input.dtype:
        raise RuntimeError(f"scatter_add(): expected src to be a Tensor of input's dtype {input.dtype}, "
                           f"got {getattr(src, 'dtype', type(src).__name__)}")
    if len({max(idx.ndim, 1), max(input.ndim, 1), max(src.ndim, 1)}) != 1:
        raise RuntimeError(f"scatter_add(): {shapes} must have the same number of dimensions")
    dim = _dim("scatter_add", dim, input.ndim)
    x = reshape(input, 1) if input.ndim == 0 else input
    s = reshape(src, 1) if src.ndim == 0 else src
    flat = idx.reshape(-1) if idx.ndim == 0 else idx
    if any(n > m for n, m in zip(flat.shape, s.shape)) or any(
            d != dim and n > m for d, (n, m) in enumerate(zip(flat.shape, x.shape))):
        raise RuntimeError(f"scatter_add(): index must be no larger than src in every dimension and no larger "
                           f"than input apart from dimension {dim}; got {shapes}")
    _check_bounds("scatter_add", flat, dim, x.shape[dim])
    out = ScatterAdd(_along_dim(flat, dim), tuple(slice(0, n) for n in flat.shape))(x, s)
    return reshape(out, input.shape) if out.shape != input.shape else out


class IndexSelect(GetItem):
    """y = x[:, .., index, ..] (index at ``dim``): whole slices picked by a 1-D index; the backward
    scatter-adds them back (``index_add``)."""

    def __init__(self, index: tuple, dim: int):
        super().__init__(index)
        self.dim = dim

    def forward(self, x):
        self.in_shape = x.shape
        return get_array_module(x).take(x, self.index[self.dim], axis=self.dim)


def index_select(input: Tensor, dim: int, index: Tensor) -> Tensor:
    """The slices of ``input`` along ``dim`` at the positions in the 1-D (or 0-d) ``index``."""
    xp = get_array_module(input.data)
    idx = _index_array("index_select", index, xp)
    if idx.ndim > 1:
        raise IndexError(f"index_select(): index is supposed to be a vector, got shape {tuple(idx.shape)}")
    dim = _dim("index_select", dim, input.ndim)
    idx = idx.reshape(-1)
    if input.ndim == 0:
        if idx.size != 1:
            raise RuntimeError(f"index_select(): index to a 0-d input can have only 1 value, got {idx.size}")
        _check_bounds("index_select", idx, dim, 1, IndexError)
        return reshape(index_select(reshape(input, 1), 0, idx), ())
    _check_bounds("index_select", idx, dim, input.shape[dim], IndexError)
    return IndexSelect((slice(None),) * dim + (idx,), dim)(input)


def take_along_dim(input: Tensor, indices: Tensor, dim: int | None = None) -> Tensor:
    """``gather`` with broadcasting: ``input`` and ``indices`` broadcast in every dimension but ``dim``;
    with ``dim=None`` both are flattened first."""
    xp = get_array_module(input.data)
    idx = _index_array("take_along_dim", indices, xp)
    if dim is None:
        return gather(reshape(input, -1), 0, idx.reshape(-1))
    if input.ndim != idx.ndim:
        raise RuntimeError(f"take_along_dim(): input of shape {tuple(input.shape)} and indices of shape "
                           f"{tuple(idx.shape)} should have the same number of dimensions")
    if input.ndim == 0:
        raise IndexError("take_along_dim(): dimension specified as 0 but the tensor has no dimensions")
    dim = _dim("take_along_dim", dim, input.ndim)
    others = [s if d != dim else 1 for d, s in enumerate(input.shape)]
    try:
        common = list(np.broadcast_shapes(tuple(others), tuple(1 if d == dim else s for d, s in enumerate(idx.shape))))
    except ValueError:
        raise RuntimeError(f"take_along_dim(): input of shape {tuple(input.shape)} and indices of shape "
                           f"{tuple(idx.shape)} do not broadcast apart from dimension {dim}") from None
    x_shape = tuple(common[:dim] + [input.shape[dim]] + common[dim + 1:])
    i_shape = tuple(common[:dim] + [idx.shape[dim]] + common[dim + 1:])
    return gather(broadcast_to(input, x_shape), dim, xp.broadcast_to(idx, i_shape))


# ----------------------------------------------------------------------------- masked_fill
class MaskedFill(Function):
    """y = mask ? value : x (broadcast). dy/dx = 1 where the mask is off; dy/dvalue sums the gradient
    where it is on (only when ``value`` is a 0-d Tensor input)."""

    def __init__(self, mask: Any, value: Any = None):
        self.mask, self.value = mask, value

    def forward(self, x, value=None):
        xp = get_array_module(x)
        fill = xp.asarray(self.value if value is None else value).astype(x.dtype)
        self.in_shape = x.shape
        return xp.where(self.mask, fill, x)

    def backward(self, gy):
        from deepnum.functional.math import where

        mask = Tensor._make(self.mask)
        gx = sum_to(where(mask, 0.0, gy), self.in_shape) if self.needs_input_grad[0] else None
        if len(self.inputs) == 1:
            return gx
        gv = where(mask, gy, 0.0).sum() if self.needs_input_grad[1] else None
        return gx, gv


def masked_fill(input: Tensor, mask: Tensor, value: Any) -> Tensor:
    """A copy of ``input`` with ``value`` where the boolean ``mask`` (broadcast) is True; ``value`` is
    a number or a 0-d Tensor (which then receives a gradient)."""
    m = raw(mask)
    if getattr(m, "dtype", None) != np.bool_:
        raise RuntimeError(f"masked_fill(): only boolean masks are supported, got mask with dtype "
                           f"{getattr(m, 'dtype', type(m).__name__)}")
    try:
        np.broadcast_shapes(tuple(input.shape), tuple(m.shape))
    except ValueError:
        raise RuntimeError(f"masked_fill(): mask of shape {tuple(m.shape)} does not broadcast with input of "
                           f"shape {tuple(input.shape)}") from None
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise RuntimeError(f"masked_fill(): only a 0-dimensional value tensor is supported, got shape "
                               f"{tuple(value.shape)}")
        if value.requires_grad and input.dtype.kind in "fc":
            return MaskedFill(m)(input, cast(value, input.dtype))
        value = value.data
    return MaskedFill(m, value)(input)
