"""The rows of ``deepnum.profiler``: one ``KeyAverage`` per op (or per op and input shapes) or per
labelled region, the ``EventList`` that ``profile.key_averages()`` returns, and its text table.

Times are kept in integer nanoseconds (``time.perf_counter_ns``) and shown in milliseconds; torch's
attribute names (``count``, ``cpu_time_total``, ``self_cpu_time_total`` in microseconds,
``cpu_memory_usage`` in bytes) are provided too, so code written for ``torch.profiler`` reads them.
"""
from __future__ import annotations

from dataclasses import dataclass

NS_PER_MS = 1_000_000

# sort key -> (attribute, descending); torch's names map onto ours
SORT_KEYS: dict[str, tuple[str, bool]] = {
    "total": ("total_ns", True), "self": ("self_ns", True),
    "forward": ("forward_ns", True), "backward": ("backward_ns", True),
    "avg": ("avg_ns", True), "calls": ("count", True), "bytes": ("bytes", True), "name": ("name", False),
    "cpu_time_total": ("total_ns", True), "self_cpu_time_total": ("self_ns", True),
    "cpu_time": ("avg_ns", True), "count": ("count", True),
    "cpu_memory_usage": ("bytes", True), "self_cpu_memory_usage": ("bytes", True),
}


@dataclass
class KeyAverage:
    """Totals of one op (``kind="op"``, named after its Function class) or one ``record_function``
    region (``kind="region"``). ``forward_ns``/``backward_ns`` include the ops nested inside (a
    backward written with Tensor ops runs them); ``forward_self_ns``/``backward_self_ns`` exclude them.
    A region's time is in ``forward_*`` (it has no backward); its bytes are those of the ops inside."""

    name: str
    kind: str = "op"
    input_shapes: tuple | None = None
    count: int = 0
    forward_ns: int = 0
    forward_self_ns: int = 0
    forward_bytes: int = 0
    backward_count: int = 0
    backward_ns: int = 0
    backward_self_ns: int = 0
    backward_bytes: int = 0
    wall_ns: int = 0  # the profiled wall time, the denominator of the percentages

    def add(self, other: KeyAverage) -> None:
        for field in ("count", "forward_ns", "forward_self_ns", "forward_bytes", "backward_count",
                      "backward_ns", "backward_self_ns", "backward_bytes"):
            setattr(self, field, getattr(self, field) + getattr(other, field))

    # ----------------------------------------------------------------- derived values
    @property
    def key(self) -> str:
        return self.name

    @property
    def total_ns(self) -> int:
        return self.forward_ns + self.backward_ns

    @property
    def self_ns(self) -> int:
        return self.forward_self_ns + self.backward_self_ns

    @property
    def avg_ns(self) -> float:
        return self.total_ns / max(self.count or self.backward_count, 1)

    @property
    def bytes(self) -> int:
        return self.forward_bytes + self.backward_bytes

    @property
    def forward_total_ms(self) -> float:
        return self.forward_ns / NS_PER_MS

    @property
    def forward_avg_ms(self) -> float:
        return self.forward_ns / NS_PER_MS / max(self.count, 1)

    @property
    def backward_total_ms(self) -> float:
        return self.backward_ns / NS_PER_MS

    @property
    def backward_avg_ms(self) -> float:
        return self.backward_ns / NS_PER_MS / max(self.backward_count, 1)

    @property
    def total_ms(self) -> float:
        return self.total_ns / NS_PER_MS

    @property
    def self_ms(self) -> float:
        return self.self_ns / NS_PER_MS

    @property
    def percent(self) -> float:
        """Self time as a percentage of the profiled wall time (the rows' percentages add up to the
        share of the wall time spent inside ops and regions)."""
        return 100.0 * self.self_ns / self.wall_ns if self.wall_ns else 0.0

    @property
    def total_percent(self) -> float:
        return 100.0 * self.total_ns / self.wall_ns if self.wall_ns else 0.0

    # ----------------------------------------------------------------- torch.profiler's names
    @property
    def cpu_time_total(self) -> float:
        return self.total_ns / 1000

    @property
    def self_cpu_time_total(self) -> float:
        return self.self_ns / 1000

    @property
    def cpu_time(self) -> float:
        return self.avg_ns / 1000

    @property
    def cpu_memory_usage(self) -> int:
        return self.bytes

    @property
    def self_cpu_memory_usage(self) -> int:
        return self.bytes


def _ms(ns: float) -> str:
    return f"{ns / NS_PER_MS:.3f}"


def _size(nbytes: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.2f} {unit}"
    return f"{nbytes} B"


def _cells(row: KeyAverage, shapes: bool) -> list[str]:
    op = row.kind == "op"
    fwd = [_ms(row.forward_ns), _ms(row.forward_ns / max(row.count, 1))] if op else ["-", "-"]
    if op and row.backward_count:
        bwd = [str(row.backward_count), _ms(row.backward_ns), _ms(row.backward_ns / row.backward_count)]
    else:
        bwd = ["-", "-", "-"]
    cells = [row.name if op else f"[{row.name}]", str(row.count), *fwd, *bwd, _ms(row.self_ns),
             f"{row.percent:.2f}%", _ms(row.total_ns), f"{row.total_percent:.2f}%", _size(row.bytes)]
    if shapes:
        cells.append(str(list(row.input_shapes or ())))
    return cells


HEADER = ["Name", "Calls", "Fwd total ms", "Fwd avg ms", "Bwd calls", "Bwd total ms", "Bwd avg ms",
          "Self ms", "Self %", "Total ms", "Total %", "Bytes"]


class EventList(list):
    """The rows of ``profile.key_averages()`` (a list of ``KeyAverage``), with the profiled wall time
    and the time spent inside top-level ops and regions."""

    def __init__(self, rows: list[KeyAverage], wall_ns: int, top_ns: int, grouped_by_shape: bool) -> None:
        super().__init__(rows)
        self.wall_ns, self.top_ns, self.grouped_by_shape = wall_ns, top_ns, grouped_by_shape

    def sorted(self, sort_by: str = "total") -> list[KeyAverage]:
        """The rows sorted by ``sort_by`` (largest first; ``"name"`` alphabetically): total, self,
        forward, backward, avg, calls, bytes, name, or torch's cpu_time_total, self_cpu_time_total,
        cpu_time, count, cpu_memory_usage, self_cpu_memory_usage."""
        if sort_by not in SORT_KEYS:
            raise ValueError(f"key_averages().table: unknown sort_by={sort_by!r}; use one of {sorted(SORT_KEYS)}")
        attr, descending = SORT_KEYS[sort_by]
        by_name = sorted(self, key=lambda r: (r.name, r.kind, str(r.input_shapes)))
        return sorted(by_name, key=lambda r: getattr(r, attr), reverse=descending)

    def table(self, sort_by: str = "total", row_limit: int = 20, header: str | None = None) -> str:
        """The rows as a text table, sorted by ``sort_by`` (see ``sorted``), at most ``row_limit``
        rows (all when negative). Regions appear as ``[name]``."""
        rows = self.sorted(sort_by)
        if row_limit is not None and row_limit >= 0:
            rows = rows[:row_limit]
        head = HEADER + (["Input shapes"] if self.grouped_by_shape else [])
        body = [_cells(r, self.grouped_by_shape) for r in rows]
        widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]

        left = {0, len(HEADER)}  # the name and the input shapes

        def fmt(line: list[str]) -> str:
            return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                             for i, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip()

        rule = "-" * len(fmt(head))
        lines = ([header] if header else []) + [rule, fmt(head), rule] + [fmt(b) for b in body] + [rule]
        share = 100.0 * self.top_ns / self.wall_ns if self.wall_ns else 0.0
        lines.append(f"Profiled wall time: {_ms(self.wall_ns)} ms; inside ops and regions: {_ms(self.top_ns)} ms "
                     f"({share:.1f}%); the rest, and a region's self time, is Python outside any op "
                     "(module calls, glue, data).")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()
