"""Dropout layers, as torch.nn.modules.dropout: active in training mode, the identity in evaluation
mode (inverted dropout, Srivastava et al. 2014)."""
from __future__ import annotations

from deepnum.functional.dropout import dropout, dropout1d, dropout2d, dropout3d, stochastic_depth
from deepnum.nn.modules.module import Module
from deepnum.tensor import Tensor

__all__ = ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "StochasticDepth"]


class _DropoutNd(Module):
    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """Zero each element with probability p during training and scale the rest by 1/(1 - p)."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return dropout(input, self.p, self.training, self.inplace)


class Dropout1d(_DropoutNd):
    """Zero whole channels of (N, C, L) or (C, L) inputs with probability p during training."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return dropout1d(input, self.p, self.training, self.inplace)


class Dropout2d(_DropoutNd):
    """Zero whole feature maps of (N, C, H, W) inputs with probability p during training (Tompson
    et al. 2015): neighbouring pixels are correlated, so element-wise dropout barely regularises."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return dropout2d(input, self.p, self.training, self.inplace)


class Dropout3d(_DropoutNd):
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) inputs with probability p during training."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return dropout3d(input, self.p, self.training, self.inplace)


class StochasticDepth(Module):
    """Stochastic depth (Huang et al. 2016) on a residual branch, as ``torchvision.ops.StochasticDepth``:
    in training, drop the branch for each sample (``mode="row"``) or for the whole batch
    (``mode="batch"``) with probability p and scale what survives by 1/(1 - p); the identity in
    evaluation. ConvNeXt, Swin and EfficientNet raise p linearly with depth."""

    def __init__(self, p: float, mode: str) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"StochasticDepth: drop probability has to be between 0 and 1, but got {p}")
        if mode not in ("batch", "row"):
            raise ValueError(f"StochasticDepth(p={p}): mode has to be either 'batch' or 'row', but got {mode!r}")
        self.p, self.mode = p, mode

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return stochastic_depth(input, self.p, self.mode, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"
