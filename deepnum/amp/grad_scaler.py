"""``GradScaler``: dynamic loss scaling for float16 training, as ``torch.amp.GradScaler``.

Float16 cannot represent magnitudes below about 6e-8, and many activation gradients are smaller, so
they would flush to zero. Loss scaling (Micikevicius et al. 2018, "Mixed Precision Training", §3.2)
multiplies the loss by S before backward, which multiplies every gradient by S (the chain rule is
linear), and divides the float32 parameter gradients by S before the optimizer step. S is chosen
dynamically: when a step's gradients contain inf/NaN the step is skipped and S is multiplied by
``backoff_factor``; after ``growth_interval`` consecutive finite steps S is multiplied by
``growth_factor``. So S hovers just below the largest value that does not overflow.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from deepnum.autograd.grad_mode import no_grad
from deepnum.backend import get_array_module
from deepnum.tensor import Tensor

__all__ = ["GradScaler"]

_READY, _UNSCALED, _STEPPED = "ready", "unscaled", "stepped"


def _positive(who: str, name: str, value: Any, above_one: bool | None = None) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{who}: {name} must be a positive finite number, got {value!r}")
    if above_one is True and value <= 1.0:
        raise ValueError(f"{who}: {name} should be > 1, got {value!r}")
    if above_one is False and value >= 1.0:
        raise ValueError(f"{who}: {name} should be < 1, got {value!r}")
    return float(value)


class GradScaler:
    """Scale the loss, unscale the gradients, skip steps with inf/NaN gradients, adapt the scale.

    ``scaler.scale(loss).backward(); scaler.step(optimizer); scaler.update()``; call
    ``scaler.unscale_(optimizer)`` before ``step`` to clip or inspect the true gradients.
    The scale is a float32 number, as PyTorch's (so its sequence matches PyTorch's bit for bit).
    """

    def __init__(self, device: str = "cpu", init_scale: float = 2.0**16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True) -> None:
        who = "GradScaler"
        if device not in ("cpu", "cuda"):
            raise ValueError(f"{who}: device must be 'cpu' or 'cuda', got {device!r}")
        self._init_scale = _positive(who, "init_scale", init_scale)
        self._growth_factor = _positive(who, "growth_factor", growth_factor, above_one=True)
        self._backoff_factor = _positive(who, "backoff_factor", backoff_factor, above_one=False)
        if not isinstance(growth_interval, int) or isinstance(growth_interval, bool) or growth_interval <= 0:
            raise ValueError(f"{who}: growth_interval must be a positive int, got {growth_interval!r}")
        self._device = device
        self._growth_interval = growth_interval
        self._enabled = bool(enabled)
        self._scale: np.float32 | None = None
        self._growth_tracker = 0
        self._per_optimizer: dict[int, dict[str, Any]] = {}

    # ------------------------------------------------------------------ state
    def is_enabled(self) -> bool:
        return self._enabled

    def _lazy_init(self) -> None:
        if self._scale is None:
            self._scale = np.float32(self._init_scale)
            self._growth_tracker = 0

    def _state(self, optimizer: Any) -> dict[str, Any]:
        return self._per_optimizer.setdefault(id(optimizer), {"stage": _READY, "found_inf": None})

    def get_scale(self) -> float:
        """The current scale (1.0 when disabled)."""
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else float(self._scale)

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        self._growth_factor = _positive("GradScaler.set_growth_factor", "new_factor", new_factor, above_one=True)

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = _positive("GradScaler.set_backoff_factor", "new_factor", new_factor, above_one=False)

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        if not isinstance(new_interval, int) or new_interval <= 0:
            raise ValueError(f"GradScaler.set_growth_interval: expected a positive int, got {new_interval!r}")
        self._growth_interval = new_interval

    # ------------------------------------------------------------------ the loop
    def scale(self, outputs: Any) -> Any:
        """``outputs`` times the scale: a Tensor, or a list/tuple (nested) of Tensors."""
        if not self._enabled:
            return outputs
        self._lazy_init()
        if isinstance(outputs, Tensor):
            if outputs.dtype.kind != "f":
                raise TypeError(f"GradScaler.scale: expected a floating point Tensor, got {outputs.dtype}")
            return outputs * float(self._scale)
        if isinstance(outputs, list | tuple):
            return type(outputs)(self.scale(o) for o in outputs)
        raise TypeError(f"GradScaler.scale: outputs must be a Tensor or an iterable of Tensors, got "
                        f"{type(outputs).__name__}")

    def _grads(self, optimizer: Any) -> list[Tensor]:
        return [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]

    def unscale_(self, optimizer: Any) -> None:
        """Divide ``optimizer``'s gradients by the scale in place and record whether any is inf/NaN.
        At most once per optimizer between ``update`` calls."""
        if not self._enabled:
            return
        state = self._state(optimizer)
        if state["stage"] is _UNSCALED:
            raise RuntimeError("GradScaler.unscale_() has already been called on this optimizer since the last "
                               "update().")
        if state["stage"] is _STEPPED:
            raise RuntimeError("GradScaler.unscale_() is being called after step().")
        if self._scale is None:
            raise RuntimeError("GradScaler.unscale_(): no scale yet: call scale(loss) and backward first")
        grads = self._grads(optimizer)
        for g in grads:
            if g.dtype == np.float16:
                raise ValueError(f"GradScaler.unscale_(): a gradient of shape {tuple(g.shape)} is float16; keep "
                                 f"the parameters float32 (master weights) and let autocast cast them")
        inv_scale = np.float32(1.0 / np.float64(self._scale))  # as PyTorch: reciprocal in double, then float
        found = False
        with no_grad():
            for g in grads:
                xp = get_array_module(g.data)
                if not found and not bool(xp.isfinite(g.data).all()):
                    found = True
                xp.multiply(g.data, g.data.dtype.type(inv_scale), out=g.data)
        state["found_inf"] = found
        state["stage"] = _UNSCALED

    def step(self, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
        """``optimizer.step()`` unless the (unscaled) gradients contain inf/NaN; returns its result,
        or None when the step was skipped."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("GradScaler.step: closure use is not supported while GradScaler is enabled.")
        state = self._state(optimizer)
        if state["stage"] is _STEPPED:
            raise RuntimeError("GradScaler.step() has already been called since the last update().")
        if state["stage"] is _READY:
            self.unscale_(optimizer)
        result = None if state["found_inf"] else optimizer.step(*args, **kwargs)
        state["stage"] = _STEPPED
        return result

    def update(self, new_scale: float | Tensor | None = None) -> None:
        """Back off after an overflow, grow after ``growth_interval`` clean steps (or set ``new_scale``)."""
        if not self._enabled:
            return
        if self._scale is None:
            raise RuntimeError("GradScaler.update(): no scale yet: call scale(loss) first")
        if new_scale is not None:
            value = new_scale.item() if isinstance(new_scale, Tensor) else new_scale
            self._scale = np.float32(_positive("GradScaler.update", "new_scale", value))
        else:
            found = [s["found_inf"] for s in self._per_optimizer.values() if s["found_inf"] is not None]
            if not found:
                raise RuntimeError("GradScaler.update(): no inf checks were recorded prior to update "
                                   "(call step(optimizer) or unscale_(optimizer) first).")
            self._update_scale(any(found))
        self._per_optimizer.clear()

    def _update_scale(self, found_inf: bool) -> None:
        """PyTorch's ``_amp_update_scale_``: float32 arithmetic; growth only while the result is finite."""
        if found_inf:
            self._scale = np.float32(self._scale * np.float32(self._backoff_factor))
            self._growth_tracker = 0
            return
        successful = self._growth_tracker + 1
        if successful == self._growth_interval:
            with np.errstate(over="ignore"):
                grown = np.float32(self._scale * np.float32(self._growth_factor))
            if np.isfinite(grown):
                self._scale = grown
            successful = 0
        self._growth_tracker = successful

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """``scale``, ``growth_factor``, ``backoff_factor``, ``growth_interval``, ``_growth_tracker``
        (empty when disabled), PyTorch's keys."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("GradScaler.load_state_dict: the state dict is empty, possibly because it was saved "
                               "from a disabled GradScaler.")
        missing = [k for k in ("scale", "growth_factor", "backoff_factor", "growth_interval") if k not in state_dict]
        if missing:
            raise KeyError(f"GradScaler.load_state_dict: missing keys {missing}")
        scale = _positive("GradScaler.load_state_dict", "scale", float(state_dict["scale"]))
        growth = _positive("GradScaler.load_state_dict", "growth_factor", float(state_dict["growth_factor"]), True)
        backoff = _positive("GradScaler.load_state_dict", "backoff_factor", float(state_dict["backoff_factor"]), False)
        interval = int(state_dict["growth_interval"])
        if interval <= 0:
            raise ValueError(f"GradScaler.load_state_dict: growth_interval must be positive, got {interval}")
        self._init_scale, self._growth_factor, self._backoff_factor = scale, growth, backoff
        self._growth_interval = interval
        self._scale = np.float32(scale)
        self._growth_tracker = int(state_dict.get("_growth_tracker", 0))
