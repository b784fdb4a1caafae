"""The switch that ``deepnum.amp.autocast`` turns on, read by the ops' entry points.

Why it lives here: ``deepnum.functional`` and ``deepnum.nn`` sit above ``deepnum.amp`` in the import
order (amp needs Tensor ops and optimizers), so they cannot import amp's policy table. They import
this small module instead (as they import ``grad_mode``) and, at their entry points, do

    if Autocast.enabled:
        x, w = Autocast.cast("linear", x, w)

which costs one global read per op while autocast is off. ``deepnum.amp`` installs ``Autocast.cast``
(its policy table: which ops run in float16, which in float32) when it is imported, and only
``deepnum.amp.autocast`` sets ``enabled``; so the decision per op is made in one place, deepnum/amp.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _not_installed(op: str, *tensors: Any) -> tuple:
    raise RuntimeError(f"{op}: autocast is enabled but deepnum.amp (which installs its policy) was not imported")


class Autocast:
    """Global autocast state: ``enabled`` is True while any device's autocast is on; ``cast(op,
    *tensors)`` returns the tensors cast as ``op``'s policy says (``None`` and non-tensors pass)."""

    enabled: bool = False
    cast: Callable[..., tuple] = staticmethod(_not_installed)
