"""Moving weights between deepnum and PyTorch without importing torch: deepnum's ``state_dict`` keys
and weight layouts are PyTorch's, so only the array type changes.

``torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in torch_state_dict(model).items()})``
and ``load_torch_state_dict(model, torch_model.state_dict())``.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from deepnum.io.safetensors import host_array
from deepnum.tensor import Tensor


def torch_state_dict(module: Any) -> OrderedDict[str, np.ndarray]:
    """The module's parameters and persistent buffers as contiguous NumPy arrays (copies, on the host),
    ready for ``torch.from_numpy``; int64 buffers such as ``num_batches_tracked`` stay int64."""
    return OrderedDict((k, host_array(v, k).copy()) for k, v in module.state_dict().items())


def _to_numpy(value: Any, key: str) -> np.ndarray:
    """A host NumPy array from a torch tensor (anything with ``.numpy()``), a deepnum Tensor or an array."""
    if isinstance(value, Tensor):
        return host_array(value, key)
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray | np.generic):
        for name in ("detach", "cpu"):  # torch: leave the graph, leave the GPU
            if hasattr(value, name):
                value = getattr(value, name)()
        try:
            return np.array(value.numpy())
        except (TypeError, RuntimeError) as exc:  # e.g. bfloat16, which NumPy has no dtype for
            raise TypeError(f"load_torch_state_dict: cannot convert {key!r} ({getattr(value, 'dtype', '?')}) to "
                            f"NumPy: {exc}; convert it first, e.g. tensor.float()") from exc
    if hasattr(value, "__array__") or isinstance(value, np.generic | list | int | float):
        return np.array(value)
    raise TypeError(f"load_torch_state_dict: the value of {key!r} is a {type(value).__name__}, expected a tensor "
                    "or an array")


def load_torch_state_dict(module: Any, state: Mapping[str, Any], strict: bool = True) -> Any:
    """Load a PyTorch ``state_dict`` (torch tensors, NumPy arrays or deepnum Tensors) into ``module``;
    keys, shapes and dtypes are checked by ``Module.load_state_dict`` before anything is copied."""
    if not isinstance(state, Mapping):
        raise TypeError(f"load_torch_state_dict: expected a dict of name -> tensor, got {type(state).__name__}")
    arrays = {k: Tensor._make(_to_numpy(v, k)) for k, v in state.items()}
    return module.load_state_dict(arrays, strict=strict)
