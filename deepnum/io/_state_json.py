"""Python state (optimizer param groups, scheduler attributes, RNG states, user extras) as strict JSON
for the safetensors metadata, with its tensors and arrays moved to the file's tensor section.

JSON alone would lose types that state dicts rely on, so those are tagged with a ``"__deepnum__"`` key:
tuples (Adam's ``betas``), dicts with non-string keys or of another type (the optimizer's
``{0: {...}}``, ``MultiStepLR``'s ``Counter`` of milestones), non-finite floats (``ReduceLROnPlateau``'s
``inf``), NumPy scalars (dtype and exact bytes), and Tensors/arrays (a reference to a file entry
named by the value's path, e.g. ``optimizer.state.0.exp_avg``). Anything else (a function, a lambda,
an arbitrary object) is refused with the path of the value, before anything is written.
"""
from __future__ import annotations

import collections
import math
from typing import Any

import numpy as np

from deepnum import backend
from deepnum.io.safetensors import contiguous
from deepnum.tensor import Tensor

TAG = "__deepnum__"
_DICT_TYPES: dict[str, type] = {"dict": dict, "OrderedDict": collections.OrderedDict,
                                "Counter": collections.Counter}


def encode(value: Any, path: str, tensors: dict[str, np.ndarray], what: str) -> Any:
    """``value`` as JSON-compatible data; Tensors and arrays go into ``tensors`` under their path."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else {TAG: "float", "value": repr(float(value))}
    if isinstance(value, Tensor | np.ndarray) or backend.device_of(value) == "cuda":
        key = path
        while key in tensors:  # a dict key holding "." could collide with a nested path
            key += "_"
        data = backend.to_device(value.detach().data if isinstance(value, Tensor) else value, "cpu")
        tensors[key] = contiguous(np.asarray(data))
        return {TAG: "tensor" if isinstance(value, Tensor) else "ndarray", "key": key}
    if isinstance(value, np.generic):
        return {TAG: "scalar", "dtype": value.dtype.str, "hex": np.asarray(value).tobytes().hex()}
    if isinstance(value, list):
        return [encode(v, f"{path}.{i}", tensors, what) for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {TAG: "tuple", "items": [encode(v, f"{path}.{i}", tensors, what) for i, v in enumerate(value)]}
    if isinstance(value, dict):
        return _encode_dict(value, path, tensors, what)
    kind = "a function" if callable(value) else f"a {type(value).__name__} object"
    raise TypeError(f"cannot save {what} in a checkpoint: {path!r} holds {kind} ({value!r:.80}); only numbers, "
                    "strings, None, lists, tuples, dicts, Tensors and arrays can be stored. Keep functions out of "
                    "the state (LambdaLR stores plain functions as None and rebuilds them from your code)")


def _encode_dict(value: dict, path: str, tensors: dict[str, np.ndarray], what: str) -> Any:
    kind = type(value).__name__
    if kind not in _DICT_TYPES:
        kind = "dict"  # defaultdict and other dict subclasses come back as plain dicts
    if kind == "dict" and TAG not in value and all(isinstance(k, str) for k in value):
        return {k: encode(v, f"{path}.{k}", tensors, what) for k, v in value.items()}
    items = [[encode(k, f"{path}.<key>", {}, what), encode(v, f"{path}.{k}", tensors, what)]
             for k, v in value.items()]
    return {TAG: "dict", "type": kind, "items": items}


def decode(value: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    """Inverse of ``encode``: ``arrays`` holds the file's tensors. Raises ValueError on a broken tag."""
    if isinstance(value, list):
        return [decode(v, arrays, where) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(TAG)
    if tag is None:
        return {k: decode(v, arrays, where) for k, v in value.items()}
    if tag == "float":
        return float(value["value"])
    if tag in ("tensor", "ndarray"):
        key = value["key"]
        if key not in arrays:
            raise ValueError(f"{where} refers to the tensor {key!r}, which the file does not contain")
        return Tensor._make(arrays[key].copy()) if tag == "tensor" else arrays[key].copy()
    if tag == "scalar":
        return np.frombuffer(bytes.fromhex(value["hex"]), dtype=np.dtype(value["dtype"]))[0]
    if tag == "tuple":
        return tuple(decode(v, arrays, where) for v in value["items"])
    if tag == "dict":
        cls = _DICT_TYPES[value["type"]]
        return cls({decode(k, arrays, where): decode(v, arrays, where) for k, v in value["items"]})
    raise ValueError(f"{where} has an unknown tag {tag!r}")
