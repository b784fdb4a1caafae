"""Switches for recording the graph: ``no_grad``, ``enable_grad``, ``set_grad_enabled``.

Inside ``no_grad()`` ops run on arrays and build no graph (evaluation, optimizer updates); the
backward pass itself runs that way unless ``create_graph=True`` asks for higher-order gradients.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


class _GradMode:
    enabled = True


def is_grad_enabled() -> bool:
    return _GradMode.enabled


class set_grad_enabled:
    """Context manager (and decorator) that turns graph recording on or off, as ``torch.set_grad_enabled``."""

    def __init__(self, mode: bool) -> None:
        self.prev = _GradMode.enabled
        self.mode = bool(mode)
        _GradMode.enabled = self.mode

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        _GradMode.enabled = self.prev

    def __call__(self, func: Callable) -> Callable:
        """As a decorator the mode applies only inside ``func``: undo the switch made by ``__init__``."""
        _GradMode.enabled = self.prev
        mode = self.mode

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with set_grad_enabled(mode):
                return func(*args, **kwargs)

        return wrapper


class _GradSwitch:
    mode = True

    def __new__(cls, func: Callable | None = None) -> Any:
        """``@no_grad`` without parentheses decorates ``func`` directly, as in PyTorch."""
        if func is None:
            return super().__new__(cls)
        return cls()(func)

    def __enter__(self) -> None:
        self.prev = _GradMode.enabled
        _GradMode.enabled = self.mode

    def __exit__(self, *exc: Any) -> None:
        _GradMode.enabled = self.prev

    def __call__(self, func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.__class__():
                return func(*args, **kwargs)

        return wrapper


class no_grad(_GradSwitch):
    """Run without recording a graph: ``with dn.no_grad(): ...`` or ``@dn.no_grad()``."""

    mode = False


class enable_grad(_GradSwitch):
    """Record the graph again inside a ``no_grad`` block."""

    mode = True
