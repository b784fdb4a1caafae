"""Upsampling / interpolation: nearest and (bi)linear, as torch.nn.functional.interpolate."""
from __future__ import annotations

__all__: list[str] = []
