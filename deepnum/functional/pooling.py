"""Pooling (max, average, min; 1-D/2-D/3-D; adaptive and global) over sliding windows."""
from __future__ import annotations

__all__: list[str] = []
