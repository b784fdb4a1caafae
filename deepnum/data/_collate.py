"""``default_collate`` and ``default_convert``: turning a list of samples into one batch, as
``torch.utils.data.default_collate``, with errors that name the field that does not fit.

Collation follows the structure of the first sample: Tensors and NumPy arrays are stacked along a
new first dim (their dtype kept), Python numbers become one tensor (bools → bool, ints → int64,
floats → the default dtype, float32 unless changed: PyTorch gives float64 here, deepnum keeps to
its no-silent-float64 rule), NumPy scalars keep their dtype, strings stay a list, and mappings,
named tuples and sequences are collated field by field (tuples come back as lists, as PyTorch's).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from deepnum import backend
from deepnum.functional import stack
from deepnum.tensor import Tensor

__all__ = ["default_collate", "default_convert"]

_ARRAY_KINDS = "biufc"  # bool, signed/unsigned int, float, complex: what a Tensor can hold


def _where(path: str) -> str:
    return f"field {path} of the samples" if path else "the samples"


def _is_array(x: Any) -> bool:
    return isinstance(x, np.ndarray) or backend.device_of(x) == "cuda"


def _unsupported(kind: str, path: str) -> TypeError:
    return TypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
                     f"found {kind} in {_where(path)}")


def _same_type(batch: list, kinds: Any, name: str, path: str) -> None:
    for i, x in enumerate(batch):
        if not isinstance(x, kinds):
            raise TypeError(f"default_collate: {_where(path)} mix types: sample 0 is a {name} but sample {i} is "
                            f"a {type(x).__name__}")


def _stack(arrays: list, path: str) -> Any:
    """One stacked array, after checking every shape equals the first sample's."""
    first = arrays[0].shape
    for i, a in enumerate(arrays):
        if a.shape != first:
            raise RuntimeError(f"default_collate: {_where(path)} do not stack: sample 0 has shape {tuple(first)} "
                               f"but sample {i} has shape {tuple(a.shape)}")
    return backend.get_array_module(arrays[0]).stack(arrays)


def _collate_tensors(batch: list, path: str) -> Tensor:
    _same_type(batch, Tensor, "Tensor", path)
    if any(t.requires_grad for t in batch) or len({t.dtype for t in batch}) > 1:
        _stack([t.data for t in batch], path)  # the shape check and its message
        return stack(batch)  # autograd and PyTorch's type promotion
    return Tensor._make(_stack([t.data for t in batch], path))


def _collate_numbers(batch: list, path: str) -> Tensor:
    for i, x in enumerate(batch):
        if not isinstance(x, int | float | complex | np.generic) or isinstance(x, str | bytes | np.str_):
            raise TypeError(f"default_collate: {_where(path)} mix types: sample 0 is a number but sample {i} is "
                            f"a {type(x).__name__}")
    if isinstance(batch[0], np.generic):
        array = np.asarray(batch)  # NumPy scalars keep their dtype, as PyTorch's as_tensor
        if array.dtype.kind not in _ARRAY_KINDS:
            raise _unsupported(str(array.dtype), path)
        return Tensor._make(array)
    return Tensor._make(backend.asarray(batch))


def _collate_sequences(batch: list, path: str) -> Any:
    elem = batch[0]
    _same_type(batch, Sequence, type(elem).__name__, path)
    for i, x in enumerate(batch):
        if len(x) != len(elem):
            raise RuntimeError(f"default_collate: each element in list of batch should be of equal size: "
                               f"{_where(path)} have length {len(elem)} in sample 0 but {len(x)} in sample {i}")
    fields = [_collate(list(column), f"{path}[{j}]") for j, column in enumerate(zip(*batch))]
    if isinstance(elem, tuple):
        return type(elem)(*fields) if hasattr(elem, "_fields") else fields  # named tuple; tuples → lists
    try:
        return type(elem)(fields)
    except TypeError:
        return fields


def _collate_mappings(batch: list, path: str) -> Any:
    elem = batch[0]
    _same_type(batch, Mapping, type(elem).__name__, path)
    out = {}
    for key in elem:
        column = []
        for i, d in enumerate(batch):
            if key not in d:
                raise KeyError(f"default_collate: sample {i} has no key {key!r} in {_where(path)} "
                               f"(sample 0 has keys {list(elem)})")
            column.append(d[key])
        out[key] = _collate(column, f"{path}[{key!r}]")
    try:
        return type(elem)(out)
    except TypeError:
        return out


def _collate(batch: list, path: str) -> Any:
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _collate_tensors(batch, path)
    if _is_array(elem):
        if elem.dtype.kind not in _ARRAY_KINDS:
            raise _unsupported(str(elem.dtype), path)
        for i, x in enumerate(batch):
            if not _is_array(x):
                raise TypeError(f"default_collate: {_where(path)} mix types: sample 0 is an array but sample {i} "
                                f"is a {type(x).__name__}")
        return Tensor._make(_stack(batch, path))
    if isinstance(elem, str | bytes):
        return batch
    if isinstance(elem, int | float | complex | np.generic):
        return _collate_numbers(batch, path)
    if isinstance(elem, Mapping):
        return _collate_mappings(batch, path)
    if isinstance(elem, Sequence):
        return _collate_sequences(batch, path)
    raise _unsupported(str(type(elem)), path)


def default_collate(batch: Sequence[Any]) -> Any:
    """Merge a list of samples into one batch, following the structure of the samples (see the
    module docstring); raises an error naming the field (``[0]['image']``) and the samples' shapes
    when they do not stack."""
    batch = list(batch)
    if not batch:
        raise ValueError("default_collate: got an empty batch")
    return _collate(batch, "")


def default_convert(data: Any) -> Any:
    """What the loader applies to each sample when batching is off (``batch_size=None``): NumPy
    arrays and scalars become Tensors (sharing memory), containers are converted field by field
    (tuples become lists, as PyTorch's), everything else is returned unchanged."""
    if isinstance(data, Tensor | str | bytes):
        return data
    if _is_array(data) or isinstance(data, np.generic):
        array = np.asarray(data) if isinstance(data, np.generic) else data
        return Tensor._make(array) if array.dtype.kind in _ARRAY_KINDS else data
    if isinstance(data, Mapping):
        converted = {key: default_convert(value) for key, value in data.items()}
        try:
            return type(data)(converted)
        except TypeError:
            return converted
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, Sequence):
        converted = [default_convert(d) for d in data]
        try:
            return type(data)(converted)
        except TypeError:
            return converted
    return data
