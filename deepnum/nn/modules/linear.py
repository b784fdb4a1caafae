"""``Linear``, ``Identity``, ``Flatten``, ``Unflatten``: y = x Wᵀ + b and the shape adapters."""
from __future__ import annotations

import math
from typing import Any

from deepnum import functional as F
from deepnum.autograd.autocast_state import Autocast
from deepnum.creation import empty
from deepnum.nn import init
from deepnum.nn.modules.module import Module
from deepnum.nn.parameter import Parameter
from deepnum.tensor import Tensor


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:  # noqa: A002
    """y = x Wᵀ + b with W of shape (out_features, in_features), PyTorch's layout."""
    if Autocast.enabled:
        input, weight, bias = Autocast.cast("linear", input, weight, bias)
    out = F.matmul(input, weight.mT if weight.ndim == 2 else weight)
    return out if bias is None else out + bias


class Identity(Module):
    """Returns its input (a placeholder, e.g. for a removed classifier head)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Any) -> Any:  # noqa: A002
        return input


class Linear(Module):
    """A fully connected layer: every output is a weighted sum of every input plus a bias.
    Initialised as PyTorch: W ~ kaiming_uniform(a=√5), i.e. U(-1/√in, 1/√in), and b ~ U(-1/√in, 1/√in)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: Any = None,
                 device: Any = None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(empty(out_features, in_features, dtype=dtype, device=device))
        self.register_parameter("bias", Parameter(empty(out_features, dtype=dtype, device=device)) if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        if input.ndim == 0 or input.shape[-1] != self.in_features:
            raise ValueError(f"Linear({self.in_features}→{self.out_features}): expected input (*, {self.in_features}), "
                             f"got {tuple(input.shape)}")
        return linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Flatten(Module):
    """Merge dims start_dim..end_dim (default: all but the batch dim)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dim ``dim`` into ``unflattened_size``."""

    def __init__(self, dim: int, unflattened_size: tuple[int, ...]) -> None:
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        d = self.dim % input.ndim
        return F.reshape(input, input.shape[:d] + self.unflattened_size + input.shape[d + 1:])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"

