"""Pooling layers, as ``torch.nn.modules.pooling``: max, average and adaptive pooling in 1-D/2-D/3-D,
plus deepnum's own min pooling. They hold no parameters; each calls its function in
``deepnum.functional.pooling`` and names itself (``MaxPool2d(kernel_size=2)``) in error messages.

Global average pooling (the classifier head of ResNet-style networks) is ``AdaptiveAvgPool2d(1)``:
each channel's whole H×W map is averaged to one number; ``AdaptiveMaxPool2d(1)`` is global max
pooling.
"""
from __future__ import annotations

from typing import Any

from deepnum.functional.pooling import (
    Who,
    adaptive_average_pool,
    adaptive_extreme_pool,
    average_pool,
    extreme_pool,
)
from deepnum.nn.modules.module import Module
from deepnum.tensor import Tensor

__all__ = [
    "MaxPool1d", "MaxPool2d", "MaxPool3d", "MinPool1d", "MinPool2d", "MinPool3d",
    "AvgPool1d", "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
]


def _single(value: Any) -> tuple:
    return tuple(value) if isinstance(value, list | tuple) else (value,)


class _ExtremePoolNd(Module):
    """Shared by max and min pooling: torch's ``_MaxPoolNd`` arguments and repr."""

    dims = 2
    largest = True

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input: Tensor) -> Any:  # noqa: A002
        who = Who(type(self).__name__, kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                  dilation=self.dilation, ceil_mode=self.ceil_mode)
        return extreme_pool(input, self.dims, self.kernel_size, self.stride, self.padding, self.dilation,
                            self.ceil_mode, self.return_indices, self.largest, who)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_ExtremePoolNd):
    """y[n, c, o] = max over the window o·s − p + a·d (a < kernel_size) of x; −inf padding."""

    dims = 1


class MaxPool2d(_ExtremePoolNd):
    """2-D max pooling over kernel_size windows (LeNet/AlexNet/VGG's downsampling step)."""

    dims = 2


class MaxPool3d(_ExtremePoolNd):
    """3-D max pooling (volumetric CNNs)."""

    dims = 3


class MinPool1d(_ExtremePoolNd):
    """deepnum's own (PyTorch has no min pooling): the window minimum, −MaxPool1d(−x)."""

    dims, largest = 1, False


class MinPool2d(_ExtremePoolNd):
    """deepnum's own 2-D min pooling: −MaxPool2d(−x), with the same arguments and indices."""

    dims, largest = 2, False


class MinPool3d(_ExtremePoolNd):
    """deepnum's own 3-D min pooling: −MaxPool3d(−x)."""

    dims, largest = 3, False


class _AvgPoolNd(Module):
    """torch's ``AvgPool2d``/``AvgPool3d`` arguments and repr (AvgPool1d stores 1-tuples)."""

    dims = 2

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        who = Who(type(self).__name__, kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                  ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad,
                  divisor_override=self.divisor_override)
        return average_pool(input, self.dims, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override, who)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """y[n, c, o] = Σ over the window of x / divisor (zero padding; see ``avg_pool1d``)."""

    dims = 1

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True) -> None:
        super().__init__(_single(kernel_size), _single(stride if stride is not None else kernel_size),
                         _single(padding), ceil_mode, count_include_pad)


class AvgPool2d(_AvgPoolNd):
    """2-D average pooling; divisor: the window clipped to the padded input, the count of input
    elements (count_include_pad=False) or divisor_override."""

    dims = 2


class AvgPool3d(_AvgPoolNd):
    """3-D average pooling."""

    dims = 3


class _AdaptiveAvgPoolNd(Module):
    dims = 2

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return adaptive_average_pool(input, self.dims, self.output_size,
                                     Who(type(self).__name__, output_size=self.output_size))

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Average over output_size bins [floor(iL/out), ceil((i+1)L/out)) of the length dim."""

    dims = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Average over an output_size grid of bins (None keeps a dim); ``AdaptiveAvgPool2d(1)`` is
    global average pooling."""

    dims = 2


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """3-D adaptive average pooling."""

    dims = 3


class _AdaptiveMaxPoolNd(Module):
    dims = 2

    def __init__(self, output_size: Any, return_indices: bool = False) -> None:
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, input: Tensor) -> Any:  # noqa: A002
        return adaptive_extreme_pool(input, self.dims, self.output_size, self.return_indices,
                                     Who(type(self).__name__, output_size=self.output_size))

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """Maximum over output_size bins of the length dim."""

    dims = 1


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """Maximum over an output_size grid of bins; ``AdaptiveMaxPool2d(1)`` is global max pooling."""

    dims = 2


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """3-D adaptive max pooling."""

    dims = 3
