"""Per-sample normalisation layers, as torch.nn.modules.normalization: ``LayerNorm`` (Ba et al. 2016)
and ``GroupNorm`` (Wu & He 2018). Unlike batch norm they keep no running statistics and behave the
same in training and evaluation."""
from __future__ import annotations

from typing import Any

from deepnum.creation import empty
from deepnum.functional.normalization import group_norm, layer_norm
from deepnum.nn import init
from deepnum.nn.modules.module import Module
from deepnum.nn.parameter import Parameter
from deepnum.tensor import Tensor

__all__ = ["LayerNorm", "GroupNorm"]


def _affine(module: Module, shape: tuple[int, ...], affine: bool, bias: bool, dtype: Any, device: Any) -> None:
    """Register γ (``weight``) and β (``bias``) of ``shape``, or None for each one that is off."""
    if affine:
        module.weight = Parameter(empty(shape, dtype=dtype, device=device))
        module.register_parameter("bias", Parameter(empty(shape, dtype=dtype, device=device)) if bias else None)
    else:
        module.register_parameter("weight", None)
        module.register_parameter("bias", None)


def _reset_affine(module: Module) -> None:
    """γ = 1, β = 0: the layer starts as a pure standardisation."""
    if module.weight is not None:
        init.ones_(module.weight)
    if module.bias is not None:
        init.zeros_(module.bias)


class LayerNorm(Module):
    """Standardise each sample over its trailing ``normalized_shape`` dims, then scale by γ and shift
    by β (elementwise, of shape ``normalized_shape``) when ``elementwise_affine``."""

    def __init__(self, normalized_shape: int | tuple[int, ...] | list[int], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(n) for n in normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        _affine(self, self.normalized_shape, elementwise_affine, bias, dtype, device)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_affine(self)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        k = len(self.normalized_shape)
        if not isinstance(input, Tensor) or input.ndim < k or tuple(input.shape[input.ndim - k:]) != \
                self.normalized_shape:
            got = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise ValueError(f"LayerNorm({self.normalized_shape}): expected input "
                             f"(*, {', '.join(map(str, self.normalized_shape))}), got {got}")
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class GroupNorm(Module):
    """Split the C channels into ``num_groups`` groups and standardise each sample's group over its
    channels and positions, then scale and shift per channel (γ, β of shape (C,)) when ``affine``."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 device: Any = None, dtype: Any = None, *, bias: bool = True) -> None:
        super().__init__()
        if num_groups <= 0 or num_channels % num_groups != 0:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        _affine(self, (num_channels,), affine, bias, dtype, device)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_affine(self)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        if not isinstance(input, Tensor) or input.ndim < 2 or input.shape[1] != self.num_channels:
            got = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise ValueError(f"GroupNorm({self.num_groups}, {self.num_channels}): expected input "
                             f"(N, {self.num_channels}, *), got {got}")
        return group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")
