"""``autocast``: run matrix products in float16 and precision-sensitive ops in float32, as ``torch.autocast``.

Mixed precision (Micikevicius et al. 2018, "Mixed Precision Training", arXiv:1710.03740): the ops
that do most of the arithmetic and whose saved inputs take most of the memory (matrix products,
convolutions, attention) take float16 operands, while ops whose results suffer from float16's
10-bit mantissa and narrow range (sums over many terms, exp/log, softmax, normalisation statistics,
losses) take float32. The parameters stay float32 ("master weights"); an op casts them on the way in
with a differentiable cast, so their gradients come back in float32.

The policy is the table ``POLICY`` below, consulted by the ops' entry points through
``deepnum.autograd.autocast_state.Autocast`` (one global read per op while autocast is off).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from deepnum import backend
from deepnum.autograd.autocast_state import Autocast
from deepnum.autograd.grad_mode import is_grad_enabled
from deepnum.functional.array import cast
from deepnum.tensor import Tensor

__all__ = ["autocast", "is_autocast_enabled", "get_autocast_dtype", "POLICY", "LOWER", "FLOAT32"]

LOWER, FLOAT32 = "lower", "float32"

# op name (as the entry point names itself) -> what autocast does to its floating inputs.
# LOWER: cast to the autocast dtype (float16). FLOAT32: cast float16 inputs up to float32.
# float64 inputs are never cast (as PyTorch). Ops not listed run in their inputs' dtype.
POLICY: dict[str, str] = {
    **dict.fromkeys((
        "matmul",  # also mm and bmm, which call it
        "linear",  # nn.Linear, and MultiheadAttention's / the transformer's fused projections
        "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
        "scaled_dot_product_attention",
    ), LOWER),
    **dict.fromkeys((
        "softmax", "log_softmax", "batch_norm", "layer_norm", "group_norm",
        "loss",  # every loss in deepnum.nn.functional (cross_entropy, nll_loss, mse_loss, ...)
        "exp", "log", "log1p", "sum", "prod", "cumsum", "logsumexp", "norm",
    ), FLOAT32),
}

_DEVICES = ("cpu", "cuda")
# The autocast dtype per device, None where autocast is off there.
_active: dict[str, Any] = dict.fromkeys(_DEVICES)
_nesting = [0]
# Casts of leaf tensors that require grad (the parameters), made once per outermost autocast region:
# a weight used by several ops (an RNN's steps, tied embeddings) is cast once, as PyTorch's cache.
_cache: dict[tuple[int, Any], tuple[Tensor, Tensor]] = {}
_cache_on = [True]


def _cast_one(t: Any, target: Any, cache: bool) -> Any:
    if not isinstance(t, Tensor) or t.dtype == target or t.dtype.kind != "f" or t.dtype == backend.float64:
        return t
    if not cache or not (t.is_leaf and t.requires_grad and is_grad_enabled()):
        return cast(t, target)
    key = (id(t), target)
    hit = _cache.get(key)
    if hit is None:
        hit = _cache[key] = (t, cast(t, target))
    return hit[1]


def _cast_inputs(op: str, *tensors: Any) -> tuple:
    """The inputs of ``op`` as the policy says, for the devices where autocast is on."""
    policy = POLICY.get(op)
    if policy is None:
        return tensors
    out = []
    for t in tensors:
        dtype = _active.get(t.device) if isinstance(t, Tensor) else None
        if dtype is not None:
            t = _cast_one(t, dtype if policy == LOWER else backend.float32, _cache_on[0])
        out.append(t)
    return tuple(out)


Autocast.cast = staticmethod(_cast_inputs)


def _check_device(device_type: Any, who: str) -> str:
    if device_type not in _DEVICES:
        raise ValueError(f"{who}: device_type must be 'cpu' or 'cuda', got {device_type!r}")
    return device_type


def is_autocast_enabled(device_type: str | None = None) -> bool:
    """Whether autocast is on for ``device_type`` ('cpu' or 'cuda'); for any device when None."""
    if device_type is None:
        return Autocast.enabled
    return _active[_check_device(device_type, "is_autocast_enabled")] is not None


def get_autocast_dtype(device_type: str) -> Any:
    """The dtype autocast casts to on ``device_type`` (float16: deepnum has no bfloat16, NumPy has none)."""
    _check_device(device_type, "get_autocast_dtype")
    return backend.float16


class autocast:  # noqa: N801  (PyTorch's name)
    """``with autocast('cpu'):`` (or ``@autocast('cpu')``) runs the ops of ``POLICY`` in mixed
    precision on that device's tensors; ``enabled=False`` turns it off inside (nesting restores the
    outer state on exit). ``dtype``: float16, the only lower precision NumPy has. ``cache_enabled``:
    cast each parameter once per outermost region. Wrap only the forward pass and the loss; run
    ``backward`` outside, where each op's backward runs in the dtypes its forward used."""

    def __init__(self, device_type: str, dtype: Any = None, enabled: bool = True,
                 cache_enabled: bool | None = None) -> None:
        self.device_type = _check_device(device_type, "autocast")
        if dtype is not None:
            try:
                dtype = backend.as_dtype(dtype)
            except (TypeError, ValueError, KeyError):
                dtype = np.dtype(object)
            if dtype != backend.float16:
                raise ValueError(f"autocast: dtype must be float16 (NumPy has no bfloat16), got {dtype!r}")
        self.fast_dtype = backend.float16
        self._enabled = bool(enabled)
        self._cache_enabled = True if cache_enabled is None else bool(cache_enabled)

    def __enter__(self) -> autocast:
        self._prev = (_active[self.device_type], Autocast.enabled, _cache_on[0])
        _active[self.device_type] = self.fast_dtype if self._enabled else None
        Autocast.enabled = any(v is not None for v in _active.values())
        _cache_on[0] = self._cache_enabled
        _nesting[0] += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        _nesting[0] -= 1
        if _nesting[0] == 0:
            _cache.clear()
        _active[self.device_type], Autocast.enabled, _cache_on[0] = self._prev

    def __call__(self, func: Callable) -> Callable:
        """As a decorator: every call of ``func`` runs inside a fresh ``autocast`` with these arguments."""
        args = (self.device_type, self.fast_dtype, self._enabled, self._cache_enabled)

        @functools.wraps(func)
        def wrapper(*a: Any, **kw: Any) -> Any:
            with autocast(*args):
                return func(*a, **kw)

        return wrapper
