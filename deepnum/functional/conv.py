"""Convolutions (conv1d/2d/3d, conv_transpose1d/2d) built on im2col: as_strided windows + one matmul."""
from __future__ import annotations

__all__: list[str] = []
