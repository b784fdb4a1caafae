"""Upsampling layers, as ``torch.nn.modules.upsampling``: ``Upsample`` resizes with
``deepnum.functional.interpolate`` (nearest, (bi/tri)linear...); ``UpsamplingNearest2d`` and
``UpsamplingBilinear2d`` (align_corners=True, as PyTorch) are its fixed-mode forms."""
from __future__ import annotations

from typing import Any

from deepnum.functional.upsampling import resize
from deepnum.nn.modules.module import Module
from deepnum.tensor import Tensor

__all__ = ["Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d"]


class Upsample(Module):
    """Resize the spatial dims to ``size`` or by ``scale_factor`` (out = floor(in·scale_factor)); see
    ``interpolate`` for the index rules of each mode."""

    def __init__(self, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                 align_corners: bool | None = None, recompute_scale_factor: bool | None = None) -> None:
        super().__init__()
        self.name = type(self).__name__
        self.size = size
        if isinstance(scale_factor, tuple):
            self.scale_factor = tuple(float(factor) for factor in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor else None
        self.mode, self.align_corners = mode, align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return resize(input, self.size, self.scale_factor, self.mode, self.align_corners,
                      self.recompute_scale_factor, False, f"{self.name}({self.extra_repr()})")

    def extra_repr(self) -> str:
        info = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return f"{info}, mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """Nearest-neighbour 2-D upsampling: ``Upsample(size, scale_factor, mode='nearest')``."""

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """Bilinear 2-D upsampling with ``align_corners=True`` (as PyTorch's layer; ``interpolate``'s
    default is False): the corner pixels of input and output coincide."""

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)
