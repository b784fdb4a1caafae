"""Loss functions with reductions none/mean/sum, as torch.nn.functional."""
from __future__ import annotations

__all__: list[str] = []
