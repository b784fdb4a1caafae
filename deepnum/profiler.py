"""``deepnum.profiler``: where the time of a training step goes, per op, as ``torch.profiler`` shows it.

    with deepnum.profiler.profile() as prof:
        with deepnum.profiler.record_function("forward"):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    print(prof.key_averages().table(sort_by="total", row_limit=20))

While a profile is active, every autograd ``Function`` called on the thread that entered it records
its forward time (``time.perf_counter_ns`` around ``Function.__call__``), the time of its backward
(around ``Function.backward`` in the engine), the number of calls and the bytes of its outputs
(forward) and of the gradients it returns (backward), outputs that are views of the op's inputs
(reshape, transpose, expand) counting zero, grouped by op name (the Function class name)
and, with ``record_shapes=True`` and ``key_averages(group_by_input_shape=True)``, by input shapes.
``record_function(name)`` labels a region (a context manager or a decorator), shown as its own row;
``Optimizer.step`` is such a region, named ``Optimizer.step#SGD.step`` as in torch.

Times nest: a backward written with Tensor ops runs ops of its own, which appear as forward calls
of those ops (as torch's ``aten::mul`` under ``MulBackward0``); a row's total time includes what ran
inside it, its self time does not, so the self times add up to the time spent inside ops and regions.

Cost: when no profile is active the hooks are one global read and two ``is None`` tests per op;
when active about a microsecond per op. Profiles do not nest (one active at a time, a clear error
otherwise), and only the thread that entered the profile is recorded: ops run by other threads
(DataLoader worker threads, for instance) are not counted.
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from deepnum._profiler_table import EventList, KeyAverage
from deepnum.autograd import engine as _engine
from deepnum.autograd import function as _function

__all__ = ["profile", "record_function", "load_json", "EventList", "KeyAverage"]

_FIELDS = ("count", "forward_ns", "forward_self_ns", "forward_bytes",
           "backward_count", "backward_ns", "backward_self_ns", "backward_bytes")


def _root(array: Any) -> Any:
    """The array that owns the memory ``array`` views (itself if it owns its memory)."""
    base = getattr(array, "base", None)
    while base is not None:
        array, base = base, getattr(base, "base", None)
    return array


def _allocated(outputs: Any, sources: tuple) -> int:
    """Bytes of the distinct arrays among ``outputs`` (Tensors or None) that are not views of the
    arrays of ``sources``: a reshape, transpose or expand of an input allocates nothing."""
    if not isinstance(outputs, tuple):
        outputs = (outputs,)
    owners: set[int] | None = None
    seen: dict[int, int] = {}
    for out in outputs:
        if out is None:
            continue
        array = out.data
        if array.base is not None or any(array is t.data for t in sources if t is not None):
            if owners is None:
                owners = {id(_root(t.data)) for t in sources if t is not None}
            if id(_root(array)) in owners:
                continue
        seen[id(array)] = array.nbytes
    return sum(seen.values())


class _Recorder:
    """The object the hooks in ``Function.__call__`` and the engine talk to while a profile is active.

    ``enter()`` opens a frame (an op call, a backward or a region) and returns a token, the frame's
    depth and start time; closing it adds its elapsed time to its row and to the parent frame's
    child time, so self time = elapsed - time of the frames nested inside. A frame left open by an
    op that raised is dropped when its parent closes: the ops that ran after it count as the parent's
    children, the failed op's own time as the parent's self time."""

    def __init__(self, record_shapes: bool) -> None:
        self.thread = threading.get_ident()
        self.record_shapes = record_shapes
        self.stack: list[list[int]] = []  # per open frame: [time of nested frames, bytes of nested ops]
        self.rows: dict[Any, KeyAverage] = {}  # by Function class (and shapes), or ("region", name)
        self.top_ns = 0  # time inside top-level frames

    def top_level_ns(self) -> int:
        """Time inside top-level frames, including what ran inside frames still open (left open by
        an op that raised at top level, or open while a profile is read before it ends)."""
        return self.top_ns + sum(frame[0] for frame in self.stack)

    def enter(self) -> tuple[int, int] | None:
        if threading.get_ident() != self.thread:
            return None
        self.stack.append([0, 0])
        return len(self.stack), time.perf_counter_ns()

    def _close(self, token: tuple[int, int], nbytes: int) -> tuple[int, int, int]:
        """(elapsed, self time, bytes of the ops nested inside) of the frame ``token`` opened."""
        end = time.perf_counter_ns()
        depth, start = token
        stack = self.stack
        if len(stack) < depth:  # the profile was cleared under it
            return end - start, end - start, 0
        child_ns, child_bytes = stack[depth - 1]
        for stale in stack[depth:]:  # frames of ops that raised inside this one: keep what ran inside them
            child_ns += stale[0]
            child_bytes += stale[1]
        del stack[depth - 1:]
        elapsed = end - start
        if stack:
            stack[-1][0] += elapsed
            stack[-1][1] += child_bytes + nbytes
        else:
            self.top_ns += elapsed
        return elapsed, elapsed - child_ns, child_bytes

    def _row(self, key: Any, kind: str, name: str, shapes: tuple) -> KeyAverage:
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = KeyAverage(name, kind, shapes)
        return row

    def _op_row(self, fn: Any, inputs: tuple) -> Any:
        """The row of ``fn``'s op: one per Function class, or per (class, input shapes) with ``record_shapes``."""
        cls = type(fn)
        if self.record_shapes:
            shapes = tuple(tuple(t.shape) for t in inputs)
            return self._row((cls, shapes), "op", cls.__name__, shapes)
        return self.rows.get(cls) or self._row(cls, "op", cls.__name__, ())

    def forward_done(self, fn: Any, inputs: tuple, results: tuple, token: tuple[int, int] | None) -> None:
        if token is None:
            return
        nbytes = _allocated(results, inputs)
        elapsed, own, _ = self._close(token, nbytes)
        row = self._op_row(fn, inputs)
        row.count += 1
        row.forward_ns += elapsed
        row.forward_self_ns += own
        row.forward_bytes += nbytes

    def backward_done(self, fn: Any, grad_outputs: list, grads: Any, token: tuple[int, int] | None) -> None:
        if token is None:
            return
        nbytes = _allocated(grads, tuple(grad_outputs))
        elapsed, own, _ = self._close(token, nbytes)
        row = self._op_row(fn, fn.inputs)
        row.backward_count += 1
        row.backward_ns += elapsed
        row.backward_self_ns += own
        row.backward_bytes += nbytes

    def region_done(self, name: str, token: tuple[int, int] | None) -> None:
        if token is None:
            return
        elapsed, own, inner_bytes = self._close(token, 0)
        row = self._row(("region", name), "region", name, ())
        row.count += 1
        row.forward_ns += elapsed
        row.forward_self_ns += own
        row.forward_bytes += inner_bytes


class profile:  # noqa: N801  (torch.profiler.profile)
    """Record per-op times, calls and bytes while the ``with`` block runs (see the module docstring).

    ``record_shapes=True`` also keeps the input shapes of every call, for
    ``key_averages(group_by_input_shape=True)``; ``enabled=False`` records nothing."""

    def __init__(self, *, record_shapes: bool = False, enabled: bool = True) -> None:
        self.record_shapes, self.enabled = record_shapes, enabled
        self._recorder: _Recorder | None = None
        self._start_ns: int | None = None
        self._wall_ns = 0
        self._used = False

    def __enter__(self) -> profile:
        if self._used:
            raise RuntimeError("deepnum.profiler.profile: this profile was already used; create a new one")
        self._used = True
        if not self.enabled:
            return self
        if _function._PROFILER is not None:
            raise RuntimeError("deepnum.profiler.profile: another profile is already recording; profiles do not "
                               "nest (label parts of one profile with deepnum.profiler.record_function instead)")
        self._recorder = _Recorder(self.record_shapes)
        self._start_ns = time.perf_counter_ns()
        _function._PROFILER = _engine._PROFILER = self._recorder
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._start_ns is not None and _function._PROFILER is self._recorder:
            _function._PROFILER = _engine._PROFILER = None
            self._wall_ns = time.perf_counter_ns() - self._start_ns
            self._recorder.top_ns = self._recorder.top_level_ns()
            self._recorder.stack.clear()
        self._start_ns = None

    @property
    def active(self) -> bool:
        return self._start_ns is not None

    @property
    def wall_ns(self) -> int:
        """The profiled wall time (so far, while the profile is active)."""
        return time.perf_counter_ns() - self._start_ns if self._start_ns is not None else self._wall_ns

    def key_averages(self, group_by_input_shape: bool = False) -> EventList:
        """One row per op (Function class) and per region, or per op and input shapes."""
        if group_by_input_shape and not self.record_shapes:
            raise ValueError("key_averages(group_by_input_shape=True) needs the shapes: profile with "
                             "deepnum.profiler.profile(record_shapes=True)")
        rows: dict[tuple, KeyAverage] = {}
        wall = self.wall_ns
        for row in (self._recorder.rows.values() if self._recorder else ()):
            key = (row.kind, row.name, row.input_shapes if group_by_input_shape else None)
            merged = rows.get(key)
            if merged is None:
                merged = rows[key] = KeyAverage(row.name, row.kind, key[2], wall_ns=wall)
            merged.add(row)
        top = self._recorder.top_level_ns() if self._recorder else 0
        return EventList(list(rows.values()), wall, top, group_by_input_shape)

    def table(self, sort_by: str = "total", row_limit: int = 20, group_by_input_shape: bool = False) -> str:
        """``key_averages(group_by_input_shape).table(sort_by, row_limit)``."""
        return self.key_averages(group_by_input_shape).table(sort_by=sort_by, row_limit=row_limit)

    # ----------------------------------------------------------------- export
    def to_dict(self) -> dict[str, Any]:
        """Everything recorded, as JSON-ready data (times in integer nanoseconds)."""
        rows = self._recorder.rows.values() if self._recorder else ()
        return {"format": "deepnum.profiler/1", "wall_ns": self.wall_ns, "record_shapes": self.record_shapes,
                "top_ns": self._recorder.top_level_ns() if self._recorder else 0,
                "rows": [{"name": r.name, "kind": r.kind, "input_shapes": [list(s) for s in r.input_shapes],
                          **{f: getattr(r, f) for f in _FIELDS}} for r in rows]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> profile:
        """A finished profile rebuilt from ``to_dict()`` (or ``export_json``) output."""
        if data.get("format") != "deepnum.profiler/1":
            raise ValueError(f"profile.from_dict: not a deepnum profile (format={data.get('format')!r})")
        prof = cls(record_shapes=bool(data["record_shapes"]))
        prof._used = True
        prof._wall_ns = int(data["wall_ns"])
        recorder = prof._recorder = _Recorder(prof.record_shapes)
        recorder.top_ns = int(data["top_ns"])
        for r in data["rows"]:
            shapes = tuple(tuple(s) for s in r["input_shapes"])
            recorder.rows[(r["kind"], r["name"], shapes)] = KeyAverage(
                r["name"], r["kind"], shapes, **{f: int(r[f]) for f in _FIELDS})
        return prof

    def export_json(self, path: str | Path) -> None:
        """Write ``to_dict()`` as JSON; ``deepnum.profiler.load_json(path)`` reads it back."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))


def load_json(path: str | Path) -> profile:
    """The profile ``profile.export_json(path)`` wrote."""
    return profile.from_dict(json.loads(Path(path).read_text()))


class record_function(contextlib.ContextDecorator):  # noqa: N801  (torch.profiler.record_function)
    """A labelled region, shown as its own row ``[name]`` with its total time (the ops inside
    included), self time (not inside any op or nested region) and the bytes of the ops inside.
    Usable as ``with record_function("data"): ...`` or as a decorator; free when no profile is active."""

    def __init__(self, name: str, args: str | None = None) -> None:
        self.name, self.args = name, args
        self._open: list[tuple[_Recorder, tuple[int, int] | None]] = []

    def __enter__(self) -> record_function:
        recorder = _function._PROFILER
        if recorder is not None:
            self._open.append((recorder, recorder.enter()))
        else:
            self._open.append((None, None))
        return self

    def __exit__(self, *exc_info: object) -> None:
        recorder, token = self._open.pop()
        if recorder is not None and recorder is _function._PROFILER:
            recorder.region_done(self.name, token)


def _optimizer_step_region(step: Callable) -> Callable:
    """Wrap ``Optimizer.step`` in a region ``Optimizer.step#<class>.step`` (torch's name) while a
    profile is active; one ``is None`` test otherwise."""
    @wraps(step)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _function._PROFILER is None:
            return step(self, *args, **kwargs)
        name = type(self).__name__
        with record_function(f"Optimizer.step#{name}.step"):
            return step(self, *args, **kwargs)
    return wrapper
