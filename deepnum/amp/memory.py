"""``saved_tensor_bytes``: how much memory the graph behind a result holds for backward.

Mixed precision saves memory because the activations that the backward pass needs are kept in
float16. This counts them: every array that the graph's Functions hold (their non-leaf inputs and
the arrays they saved, such as masks and probabilities), each underlying buffer once.
"""
from __future__ import annotations

from typing import Any

from deepnum.tensor import Tensor

__all__ = ["saved_tensor_bytes"]


def _root(a: Any) -> Any:
    while getattr(a, "base", None) is not None and hasattr(a.base, "nbytes"):
        a = a.base
    return a


def _arrays(value: Any) -> list[Any]:
    if hasattr(value, "nbytes") and hasattr(value, "dtype") and not isinstance(value, Tensor):
        return [value]
    if isinstance(value, tuple | list):
        return [a for v in value for a in _arrays(v)]
    return []


def saved_tensor_bytes(output: Tensor) -> int:
    """Bytes of the distinct buffers held for backward by the graph that produced ``output``
    (leaves, such as parameters and the input batch, are not counted: they exist anyway)."""
    seen_fns: set[int] = set()
    buffers: dict[int, int] = {}
    stack = [output.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen_fns:
            continue
        seen_fns.add(id(fn))
        for t in getattr(fn, "inputs", None) or ():
            if not t.is_leaf:
                root = _root(t.data)
                buffers[id(root)] = root.nbytes
            stack.append(t.grad_fn)
        for name, value in vars(fn).items():
            if name != "inputs":
                for a in _arrays(value):
                    root = _root(a)
                    buffers[id(root)] = root.nbytes
    return sum(buffers.values())
