"""Dropout (inverted: scale kept units by 1/(1-p) in training, identity in evaluation)."""
from __future__ import annotations

__all__: list[str] = []
