"""Progress display for ``fit``: a tqdm bar per epoch (live loss/accuracy in its postfix) on a
terminal, one concise line per epoch otherwise (logs, CI), or nothing.

``progress=None`` (the default) chooses the bar when stderr is a terminal and the lines when it is
not (or when tqdm is not installed); ``True`` forces the bar (tqdm required: ``pip install tqdm``);
``False`` prints nothing."""
from __future__ import annotations

import math
import sys
from typing import Any


def _tqdm() -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError as error:
        raise ImportError("the progress bar needs tqdm: pip install tqdm (or pip install 'deepnum[data]'); "
                          "pass progress=False to train without it") from error
    return tqdm


def _format_value(value: float) -> str:
    if isinstance(value, float) and (value == 0 or math.isnan(value) or 1e-3 <= abs(value) < 1e4):
        return f"{value:.4f}"
    return f"{value:.4g}"


def format_logs(logs: dict[str, Any], keys: list[str] | None = None) -> str:
    """``loss: 0.1234 - accuracy: 0.9500 - ...`` (learning rate in short scientific form)."""
    parts = []
    for key in keys if keys is not None else list(logs):
        if key in ("time", "batch", "size") or key not in logs:
            continue
        value = logs[key]
        parts.append(f"{key}: {value:.3g}" if key == "lr" else f"{key}: {_format_value(float(value))}")
    return " - ".join(parts)


class Progress:
    """The display chosen by ``mode`` (see the module docstring)."""

    def __init__(self, mode: bool | None, epochs: int) -> None:
        if mode not in (None, True, False):
            raise ValueError(f"fit: progress must be None, True or False, got {mode!r}")
        self.epochs, self.bar, self.tqdm = epochs, None, None
        if mode is False:
            self.kind = "off"
        elif mode is True:
            self.kind, self.tqdm = "bar", _tqdm()
        elif _isatty(sys.stderr):
            try:
                self.kind, self.tqdm = "bar", _tqdm()
            except ImportError:
                self.kind = "lines"
        else:
            self.kind = "lines"

    def epoch_begin(self, epoch: int, total: int | None, initial: int) -> None:
        if self.kind == "bar":
            self.bar = self.tqdm(total=total, initial=initial, desc=f"Epoch {epoch + 1}/{self.epochs}",
                                 unit="batch", file=sys.stderr, dynamic_ncols=True, leave=True)

    def batch_end(self, logs: dict[str, Any]) -> None:
        if self.bar is not None:
            keys = [k for k in logs if k not in ("batch", "size", "batch_loss")]
            self.bar.set_postfix_str(format_logs(logs, keys).replace(" - ", ", "), refresh=False)
            self.bar.update(1)

    def epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(format_logs(logs).replace(" - ", ", "), refresh=True)
            self.close()
        elif self.kind == "lines":
            print(f"Epoch {epoch + 1}/{self.epochs} - {logs.get('time', 0.0):.1f}s - {format_logs(logs)}",
                  flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
