"""``History``: what ``fit`` records once per epoch, as Keras's ``History`` object.

``history.epoch`` is the list of epoch indices (0-based, as Keras); ``history.history`` maps each
logged quantity to one value per epoch: ``loss`` and the training metrics (``accuracy``...), the same
with a ``val_`` prefix when there is validation data, ``lr`` (the first parameter group's learning rate
at the start of the epoch, i.e. the one its first step used) and ``time`` (seconds the epoch took,
validation included). A quantity missing from an epoch is NaN there.
"""
from __future__ import annotations

import csv
import json
import math
import os
from typing import Any

__all__ = ["History"]


class History:
    """Per-epoch logs of a training run, with CSV/JSON export and a plot."""

    def __init__(self) -> None:
        self.epoch: list[int] = []
        self.history: dict[str, list[float]] = {}

    def __len__(self) -> int:
        return len(self.epoch)

    def __repr__(self) -> str:
        keys = ", ".join(self.history)
        return f"History(epochs={len(self.epoch)}, keys=[{keys}])"

    def append(self, epoch: int, logs: dict[str, Any]) -> None:
        """Record one epoch's logs (numbers only; other values are ignored)."""
        n = len(self.epoch)
        self.epoch.append(int(epoch))
        for key, value in logs.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    continue
            self.history.setdefault(key, [math.nan] * n).append(float(value))
        for values in self.history.values():
            if len(values) == n:
                values.append(math.nan)

    def last(self) -> dict[str, float]:
        """The logs of the latest epoch."""
        return {k: v[-1] for k, v in self.history.items()} if self.epoch else {}

    # ------------------------------------------------------------------ export
    def save_csv(self, path: str | os.PathLike) -> None:
        """One row per epoch: ``epoch`` then every key; floats written with repr (exact round trip)."""
        keys = list(self.history)
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["epoch", *keys])
            for i, epoch in enumerate(self.epoch):
                writer.writerow([epoch, *(repr(self.history[k][i]) for k in keys)])

    def to_dict(self) -> dict[str, Any]:
        """``{"epoch": [...], "history": {key: [...]}}`` with NaN as None (strict JSON)."""
        clean = {k: [None if math.isnan(v) else v for v in values] for k, values in self.history.items()}
        return {"epoch": list(self.epoch), "history": clean}

    def save_json(self, path: str | os.PathLike) -> None:
        """The ``to_dict()`` form as JSON (NaN written as null)."""
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=1, allow_nan=False)

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> History:
        """Read a file written by ``save_json``."""
        with open(path) as f:
            data = json.load(f)
        h = cls()
        h.load_state_dict(data)
        return h

    def plot(self, path: str | os.PathLike, **kwargs: Any) -> str:
        """Loss and accuracy curves, training and validation, as a PNG (needs matplotlib)."""
        from deepnum.train.plots import plot_history

        return plot_history(self, path, **kwargs)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {"epoch": list(self.epoch), "history": {k: list(v) for k, v in self.history.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = [int(e) for e in state["epoch"]]
        self.history = {k: [math.nan if v is None else float(v) for v in values]
                        for k, values in state["history"].items()}
