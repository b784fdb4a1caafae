"""Automatic mixed precision, as ``torch.amp``: ``autocast`` (float16 matrix products and
convolutions, float32 reductions, softmax, norms and losses) and ``GradScaler`` (dynamic loss
scaling). See docs/amp.md.

    scaler = GradScaler()
    with autocast("cpu"):
        loss = loss_fn(model(x), y)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
"""
from deepnum.amp.autocast_mode import autocast, get_autocast_dtype, is_autocast_enabled
from deepnum.amp.grad_scaler import GradScaler

__all__ = ["autocast", "is_autocast_enabled", "get_autocast_dtype", "GradScaler"]
