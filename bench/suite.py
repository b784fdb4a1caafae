"""The benchmark suite: every workload and micro-benchmark, deepnum against PyTorch in the same process.

For each one both libraries build the same model with the same weights (torch first, deepnum copies
its weights), and each runs one step: those first outputs (the loss of a training step) are compared
where the step is deterministic. Then ``bench.harness.measure`` warms both up and alternates rounds of
``iterations`` steps with the same thread count; the table gives the median milliseconds per step of
each, and the median and min–max of the per-round ratios deepnum/torch (round i of deepnum against
round i of torch, which ran right after it, so both saw the same machine state). With ``--memory``
each library runs each workload alone in a fresh process for its peak memory (``bench/memory.py``).

Run: ``python -m bench [--threads 2] [--only W3,W6|micro] [--rounds R] [--quick] [--memory|--no-memory]
[--json bench/results.json] [--markdown]``
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.harness import THREAD_VARS, pin_threads

DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"
TIMING = ("median ms per step of each library over alternating rounds (same process, same thread count, "
          "warm-up first); ratio = median of the per-round ratios deepnum/torch, spread = their min-max "
          "(their interquartile range in the JSON)")
MATCH_RTOL = 1e-3  # float32 in two libraries with different summation orders


@dataclass(frozen=True)
class Workload:
    """One benchmark: ``build(lib_name, reference=None) -> (step, model)``; ``step()`` returns the loss
    (training steps) or the output. ``deterministic``: equal weights give equal first outputs."""

    key: str
    name: str
    build: Callable
    target: float | None = None
    iterations: int = 5
    rounds: int = 9
    warmup: int = 3
    deterministic: bool = True
    kind: str = "workload"
    memory_steps: int = 4  # steps in the memory measurement (0: not measured)


def workloads() -> list[Workload]:
    """W1-W7 and the micro-benchmarks, in table order (imports the builders: call it after the thread
    counts are pinned)."""
    from bench import layers, micro, mlp, sequences, vit, zoo

    items = [
        Workload("W1", "MLP 784-256-256-10 train step, batch 128, SGD", mlp.build, 1.2, 20, 15, 5),
        Workload("W2", "LeNet-5 train step, batch 64, SGD momentum", layers.build_lenet_step, 1.2, 10, 9, 3),
        Workload("W3", "ResNet-20 train step, batch 128, SGD momentum", zoo.build_resnet20_train, 2.0, 2, 7, 2),
        Workload("W4", "LSTM char LM train step (emb 65→128, LSTM 256, seq 64, batch 32), Adam",
                 sequences.build_lstm_step, 1.3, 5, 9, 3),
        Workload("W5", "transformer classifier train step (seq 64, d 128, 4 heads, 2 layers, ffn 512, "
                 "batch 32, dropout 0.1), Adam", sequences.build_transformer_step, 1.3, 5, 9, 3,
                 deterministic=False),
        Workload("W6", "ResNet-20 inference, batch 128, eval, no_grad", zoo.build_resnet20_inference, 1.5, 3, 9, 3),
        Workload("W7", "ViT vit_tiny_patch4_32 train step, 3x32x32, batch 128, AdamW", vit.build_vit_step,
                 1.5, 1, 5, 1, memory_steps=2),
    ]
    items += [Workload(key, name, build, None, 5, 9, 3, kind="micro", memory_steps=0)
              for key, name, build in micro.MICRO]
    return items


class UnknownWorkloadError(ValueError):
    """``--only`` named a workload the suite does not have."""


def select(items: list[Workload], only: list[str] | None) -> list[Workload]:
    """The workloads named in ``only`` (keys, case-insensitive; "micro" for all micro-benchmarks)."""
    if not only:
        return items
    wanted = {name.strip().lower() for name in only if name.strip()}
    known = {w.key.lower() for w in items} | {"micro"}
    unknown = sorted(wanted - known)
    if unknown:
        raise UnknownWorkloadError(f"bench: unknown workload(s) {', '.join(unknown)}; known: "
                         f"{', '.join(w.key for w in items)}, micro")
    return [w for w in items if w.key.lower() in wanted or (w.kind == "micro" and "micro" in wanted)]


@contextmanager
def pinned_threads(threads: int) -> Iterator[None]:
    """Pin the environment, NumPy's BLAS (threadpoolctl) and torch to ``threads``; restore them after."""
    saved_env = {v: os.environ.get(v) for v in THREAD_VARS}
    pin_threads(threads)
    import torch

    saved_torch = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(threads)
    except ImportError:
        limiter = None
    try:
        yield
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
        torch.set_num_threads(saved_torch)
        for var, value in saved_env.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def _numpy(out):
    import numpy as np

    out = out[0] if isinstance(out, tuple) else out
    return np.asarray(out.detach().numpy(), dtype=np.float64)


def _first_step(workload: Workload, ours: Callable, theirs: Callable) -> dict:
    """One step of each on equal weights (also the first warm-up step): compare the outputs."""
    import numpy as np

    a, b = _numpy(ours()), _numpy(theirs())
    diff = float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-12)) if a.shape == b.shape else float("inf")
    result = {"deterministic": workload.deterministic, "max_rel_diff": diff,
              "match": (diff <= MATCH_RTOL) if workload.deterministic else None}
    if a.size == 1:
        result.update(deepnum=float(a.reshape(())), torch=float(b.reshape(())))
    return result


def run_one(workload: Workload, quick: bool = False, rounds: int | None = None) -> dict:
    """Build, check the first step and time one workload (in this process)."""
    import torch

    import deepnum
    from bench.harness import measure

    torch.manual_seed(0)
    deepnum.manual_seed(0)
    torch_step, reference = workload.build("torch")
    ours_step, _ = workload.build("deepnum", reference)
    first = _first_step(workload, ours_step, torch_step)
    n_rounds = rounds if rounds is not None else (1 if quick else workload.rounds)
    iterations = min(workload.iterations, 2) if quick else workload.iterations
    warmup = 0 if quick else workload.warmup - 1
    ours, theirs = measure(ours_step, torch_step, n_rounds, iterations, warmup)
    ratios = [o / t for o, t in zip(ours, theirs, strict=True)]
    ratio = statistics.median(ratios)
    q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratio, ratio, ratio)
    return {"key": workload.key, "name": workload.name, "kind": workload.kind, "target": workload.target,
            "rounds": n_rounds, "iterations": iterations, "warmup": warmup + 1,
            "deepnum_ms": statistics.median(ours) * 1e3, "torch_ms": statistics.median(theirs) * 1e3,
            "ratio": ratio, "ratio_min": min(ratios), "ratio_max": max(ratios),
            "ratio_iqr": [q1, q3],
            "meets_target": None if workload.target is None else ratio <= workload.target,
            "rounds_ms": {"deepnum": [t * 1e3 for t in ours], "torch": [t * 1e3 for t in theirs]},
            "first_step": first, "memory": None}


def _memory(workload: Workload, threads: int, quick: bool) -> dict:
    from bench.memory import measure

    steps = min(workload.memory_steps, 2) if quick else workload.memory_steps
    return {lib: measure(workload.key, lib, threads, steps) for lib in ("deepnum", "torch")}


def _environment(threads: int) -> dict:
    from bench.harness import settings_dict

    return {"date": datetime.datetime.now().isoformat(timespec="seconds"), "python": platform.python_version(),
            "platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "threads": threads, "settings": settings_dict()}


def _mem_cell(result: dict, lib: str) -> str:
    memory = result.get("memory")
    if not memory:
        return "-"
    entry = memory.get(lib, {})
    return "error" if "error" in entry else f"{entry['peak_mb']:.1f}"


def _check_cell(first: dict) -> str:
    if not first["deterministic"]:
        return f"not compared (random), {first['max_rel_diff']:.1e}"
    return f"{'equal' if first['match'] else 'DIFFERENT'} ({first['max_rel_diff']:.1e})"


def _rows(results: list[dict]) -> list[list[str]]:
    rows = []
    for r in results:
        target = "-" if r["target"] is None else f"≤ {r['target']:.1f} {'yes' if r['meets_target'] else 'NO'}"
        rows.append([r["key"], r["name"], f"{r['deepnum_ms']:.2f}", f"{r['torch_ms']:.2f}", f"{r['ratio']:.2f}",
                     f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f}", target, _mem_cell(r, "deepnum"),
                     _mem_cell(r, "torch"), _check_cell(r["first_step"])])
    return rows


HEADER = ["key", "workload", "deepnum ms", "torch ms", "ratio", "spread", "target", "peak RSS MB deepnum",
          "peak RSS MB torch", "first step"]


def format_table(report: dict) -> str:
    """The plain-text table with the settings it was measured under."""
    rows = [HEADER] + [[row[0], row[1][:56]] + row[2:] for row in _rows(report["results"])]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(_notes(report) + [""] + lines)


def format_markdown(report: dict) -> str:
    """The table in Markdown (for docs/performance.md), with the settings below it."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(report["results"])]
    return "\n".join(lines + [""] + [f"- {note}" for note in _notes(report)])


def _pool_text(pool: dict) -> str:
    """One threadpoolctl entry: "openblas 0.3.31 (Haswell, 2 threads, libscipy_openblas64_.so)"."""
    detail = [pool.get("architecture") or pool.get("user_api"), f"{pool.get('num_threads')} threads"]
    if pool.get("filepath"):
        detail.append(Path(pool["filepath"]).name)
    version = f" {pool['version']}" if pool.get("version") else ""
    return f"{pool.get('internal_api')}{version} ({', '.join(str(d) for d in detail)})"


def _notes(report: dict) -> list[str]:
    env = report["environment"]
    blas = "; ".join(_pool_text(b) for b in env["settings"]["blas"])
    s = env["settings"]
    load = env["load_average"]
    return [f"{env['date']}, {env['platform']}, {env['cpus']} CPUs, load average before "
            f"{' '.join(f'{x:.2f}' for x in load) if load else 'unknown'}; mode {report['mode']}",
            f"numpy {s['numpy']}; thread pools (threadpoolctl) {blas}; "
            f"torch {s['torch']} with {s['torch_threads']} threads; "
            f"threads {s['threads']}; allocator {s['allocator']}; OPENBLAS_CORETYPE={s['openblas_coretype']}",
            f"time: {report['timing']}",
            f"peak RSS MB: {report['memory_method'] if report['memory_method'] else 'not measured (--memory)'}"]


def run(only: list[str] | None = None, threads: int = 2, rounds: int | None = None, quick: bool = False,
        memory: bool | None = None, json_path: str | Path | None = DEFAULT_JSON,
        echo: Callable[[str], object] | None = print) -> dict:
    """Run the selected workloads and return the report (also written to ``json_path`` unless None);
    ``echo`` gets a line per workload as it finishes. ``memory`` defaults to on, off with ``quick``."""
    memory = (not quick) if memory is None else memory
    with pinned_threads(threads):
        chosen = select(workloads(), only)
        report = {"environment": _environment(threads), "mode": "quick" if quick else "full", "timing": TIMING,
                  "memory_method": None, "results": []}
        if memory:
            from bench.memory import METHOD

            report["memory_method"] = METHOD
        for workload in chosen:
            result = run_one(workload, quick, rounds)
            if memory and workload.memory_steps:
                result["memory"] = _memory(workload, threads, quick)
            report["results"].append(result)
            if echo is not None:
                row = _rows([result])[0]
                echo(f"{row[0]}: deepnum {row[2]} ms, torch {row[3]} ms, ratio {row[4]} ({row[5]}), "
                     f"peak RSS MB {row[7]} / {row[8]}, first step {row[9]}")
        report["environment"]["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    if json_path is not None:
        Path(json_path).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    return report


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="threads for both libraries (default 2)")
    parser.add_argument("--only", default=None, help="comma-separated keys, e.g. W3,W6 or conv16,micro")
    parser.add_argument("--rounds", type=int, default=None, help="rounds for every workload (default: per workload)")
    parser.add_argument("--quick", action="store_true", help="1 round of at most 2 steps, no memory (smoke run)")
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=None,
                        help="measure peak memory in fresh processes (default: on, off with --quick)")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="where to write the results (default %(default)s)")
    parser.add_argument("--markdown", action="store_true", help="also print the table in Markdown")
    args = parser.parse_args(argv)
    if args.threads < 1 or (args.rounds is not None and args.rounds < 1):
        parser.error("--threads and --rounds must be at least 1")
    pin_threads(args.threads)  # before numpy or torch is imported
    only = args.only.split(",") if args.only else None
    try:
        report = run(only, args.threads, args.rounds, args.quick, args.memory, json_path=args.json)
    except UnknownWorkloadError as err:
        parser.error(str(err))
    print()
    print(format_table(report))
    if args.markdown:
        print()
        print(format_markdown(report))
    print(f"\nresults written to {args.json}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
