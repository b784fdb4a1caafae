"""``Parameter``: a Tensor that a Module registers as something to learn (weights and biases)."""
from __future__ import annotations

from typing import Any

from deepnum.tensor import Tensor


class Parameter(Tensor):
    """A leaf Tensor that requires grad by default and is collected by ``Module.parameters()``
    when assigned as a Module attribute, as ``torch.nn.Parameter``. Wrapping a Tensor shares its data."""

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = []
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Buffer(Tensor):
    """Marks a Tensor to be registered as a buffer on assignment (``torch.nn.Buffer``): saved in the
    state_dict and moved by ``to()``, but not learned (BatchNorm's running statistics)."""

    __slots__ = ("persistent",)

    def __init__(self, data: Any, persistent: bool = True) -> None:
        super().__init__(data.data if isinstance(data, Tensor) else data)
        self.persistent = persistent
