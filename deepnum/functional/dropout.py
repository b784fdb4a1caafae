"""Dropout (Srivastava et al. 2014), inverted: in training each unit (or each whole channel, for the
feature variants) is zeroed with probability p and the survivors are scaled by 1/(1 - p), so the
expected activation is unchanged and evaluation is the identity.

Masks are drawn in float32 from deepnum's global generator (``deepnum.manual_seed`` makes them
reproducible); a unit is kept where its uniform draw u ∈ [0, 1) satisfies u ≥ p.
"""
from __future__ import annotations

import warnings
from typing import Any

from deepnum import backend
from deepnum.autograd.function import Function
from deepnum.autograd.grad_mode import is_grad_enabled
from deepnum.random import default_generator
from deepnum.tensor import Tensor

__all__ = ["dropout", "dropout1d", "dropout2d", "dropout3d", "drop_path", "stochastic_depth"]


class Dropout(Function):
    """y = x·m with m = keep/(1 - p) (keep ~ Bernoulli(1 - p), broadcast over the dims it does not
    cover); dy/dx = m, so the backward multiplies by the same mask."""

    saves_inputs = False

    def __init__(self, mask: Any):
        self.mask = mask

    def forward(self, x):
        return x * self.mask

    def backward(self, gy):
        return gy * Tensor._make(self.mask)


def _check_p(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _mask(shape: tuple[int, ...], p: float, x: Tensor) -> Any:
    """Keep-mask scaled by 1/(1 - p), in x's dtype and on x's device (all zeros when p = 1)."""
    keep = default_generator.rng.random(shape, dtype=backend.float32) >= p
    mask = backend.to_device(keep.astype(x.dtype), x.device)
    if p < 1:
        mask *= 1.0 / (1.0 - p)
    return mask


def _apply(input: Tensor, p: float, training: bool, inplace: bool, mask_shape: tuple[int, ...]) -> Tensor:  # noqa: A002
    if not training or p == 0 or input.numel() == 0:
        return input
    if input.dtype.kind not in "fc":
        raise RuntimeError(f"dropout(): expected a floating point input, got {input.dtype} of shape "
                           f"{tuple(input.shape)}")
    mask = _mask(mask_shape, p, input)
    if inplace and not (is_grad_enabled() and input.requires_grad):
        return input.mul_(mask)
    # In place on a tensor in the graph would lose the values backward needs: compute out of place.
    return Dropout(mask)(input)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:  # noqa: A002
    """Zero each element with probability p and scale the rest by 1/(1 - p) (training); the input
    itself in evaluation or when p = 0. ``inplace`` writes into ``input`` when it is not part of a
    graph that needs its gradient (otherwise the result is a new tensor)."""
    _check_p(p)
    return _apply(input, p, training, inplace, tuple(input.shape))


def _feature_dropout(input: Tensor, p: float, training: bool, inplace: bool, name: str) -> Tensor:  # noqa: A002
    """Drop whole channels: one draw per (n, c), broadcast over the remaining dims."""
    if input.ndim < 2:
        raise RuntimeError(f"{name}(): feature dropout requires at least 2 dimensions in the input, "
                           f"got shape {tuple(input.shape)}")
    return _apply(input, p, training, inplace, tuple(input.shape[:2]) + (1,) * (input.ndim - 2))


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:  # noqa: A002
    """Channel-wise dropout of (N, C, L) or unbatched (C, L) inputs: whole length-L rows are zeroed."""
    _check_p(p)
    if input.ndim not in (2, 3):
        raise RuntimeError(f"dropout1d(): expected a 2D (C, L) or 3D (N, C, L) input, got shape {tuple(input.shape)}")
    if input.ndim == 2:
        mask_shape = (input.shape[0], 1)
        return _apply(input, p, training, inplace, mask_shape)
    return _feature_dropout(input, p, training, inplace, "dropout1d")


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:  # noqa: A002
    """Channel-wise dropout (Tompson et al. 2015) of (N, C, H, W) inputs: whole feature maps are
    zeroed. As in PyTorch, a 3-D input is read as (N, C, L) (with a warning), so each of its
    (dim 0, dim 1) rows is one channel."""
    _check_p(p)
    if input.ndim not in (3, 4):
        warnings.warn(f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is deprecated; use dropout "
                      "instead (dropout2d expects (N, C, H, W) inputs)", stacklevel=2)
    elif input.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                      "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel "
                      "dim (as PyTorch); use dropout1d for that", stacklevel=2)
    return _feature_dropout(input, p, training, inplace, "dropout2d")


def dropout3d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:  # noqa: A002
    """Channel-wise dropout of (N, C, D, H, W) or unbatched (C, D, H, W) inputs."""
    _check_p(p)
    if input.ndim not in (4, 5):
        warnings.warn(f"dropout3d: Received a {input.ndim}-D input to dropout3d, which is deprecated; use dropout "
                      "instead (dropout3d expects (N, C, D, H, W) or (C, D, H, W) inputs)", stacklevel=2)
    if input.ndim == 4:
        return _apply(input, p, training, inplace, (input.shape[0], 1, 1, 1))
    return _feature_dropout(input, p, training, inplace, "dropout3d")


def stochastic_depth(input: Tensor, p: float, mode: str, training: bool = True) -> Tensor:  # noqa: A002
    """Stochastic depth (Huang et al. 2016, "Deep networks with stochastic depth"), as
    ``torchvision.ops.stochastic_depth``: applied to a residual branch, it drops the whole branch
    with probability p and scales the survivors by 1/(1 - p), so x + stochastic_depth(f(x)) keeps its
    expectation and evaluation is the identity. ``mode="row"`` draws one keep/drop per sample (the
    mask has shape (N, 1, ..., 1)); ``mode="batch"`` one for the whole batch. p = 1 zeroes the input."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"stochastic_depth(): drop probability has to be between 0 and 1, but got {p}")
    if mode not in ("batch", "row"):
        raise ValueError(f"stochastic_depth(): mode has to be either 'batch' or 'row', but got {mode!r}")
    if mode == "row" and input.ndim < 1:
        raise ValueError("stochastic_depth(): mode='row' needs an input with a batch dim, got a 0-d tensor")
    mask_shape = (input.shape[0],) + (1,) * (input.ndim - 1) if mode == "row" else (1,) * input.ndim
    return _apply(input, p, training, False, mask_shape)


def drop_path(input: Tensor, drop_prob: float = 0.0, training: bool = False) -> Tensor:  # noqa: A002
    """"DropPath" (timm's name, as in the ConvNeXt and Swin code): per-sample stochastic depth,
    ``stochastic_depth(input, drop_prob, "row", training)``."""
    return stochastic_depth(input, drop_prob, "row", training)
