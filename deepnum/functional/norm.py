"""Normalisation: batch_norm (running statistics), layer_norm, group_norm."""
from __future__ import annotations

__all__: list[str] = []
