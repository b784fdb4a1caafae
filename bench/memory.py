"""Peak memory of a workload's step, measured the same way for deepnum and PyTorch: each library
runs the workload alone in a fresh Python process (only its own library imported, the same thread
count), and we read the kernel's resident-set counters of the process (/proc/self/status). In MB
(10⁶ bytes):

1. **Library warm-up.** The same tiny program in either library (``library_warmup``: a conv/BN/
   pool/linear net, an embedding + LSTM, attention + LayerNorm + GELU, a step of SGD with momentum,
   Adam and AdamW, a no_grad forward) pays for one-time initialisation that is no part of a training
   step: lazily imported modules (torch imports ~70 MB of ``torch._dynamo`` on an optimizer's first
   step), the autograd engine, oneDNN's and OpenBLAS's set-up. Its shapes are tiny, so it fills no
   workspace or cache of the workload's sizes.
2. **Measurement.** Build the workload, ``gc.collect()``, ``base`` = VmRSS; reset the peak (VmHWM) by
   writing 5 to /proc/self/clear_refs; run the first step; ``gc.collect()``, reset the peak again and
   run the remaining steps. ``peak_mb`` = the highest VmHWM − ``base``: everything the training step
   needs on top of the built model and data (the number in the table): activations, gradients,
   optimizer state, workspaces and caches a library keeps (deepnum's buffer pools, oneDNN's kernels
   for these shapes), allocator slack; ``step_peak_mb``: the peak of the later steps above the
   resident set between steps; ``retained_mb``: resident between steps above ``base``;
   ``warmup_mb``: what the library warm-up added; ``imported_during_steps``: modules the steps still
   imported (a large number means the warm-up missed a lazy import).

RSS counts what both libraries really touch, including memory their allocators keep (both allocate
through glibc malloc: torch's CPU allocator and NumPy alike). Where the peak cannot be reset (no
/proc, e.g. macOS), ``getrusage``'s ru_maxrss is used and ``method`` says so: then only ``peak_mb``
is given, a lower bound.

Run one measurement: ``python -m bench.memory W3 deepnum [--threads 2] [--steps 4]`` (prints JSON).
``bench/suite.py`` runs it for every workload with ``--memory``.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METHOD = ("peak resident set (VmHWM) of a fresh process per library and workload over its steps, minus the "
          "resident set after building the model and data, after the same tiny warm-up program in either "
          "library (bench/memory.py); MB = 1e6 bytes")


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset VmHWM to the current resident set (Linux ≥ 4.0); False where it cannot be done."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _maxrss_kb() -> int:
    import resource

    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value // 1024 if sys.platform == "darwin" else value  # bytes on macOS, kB on Linux


def _limit_threads(lib_name: str, threads: int) -> None:
    from bench.harness import pin_threads

    pin_threads(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:
        pass
    if lib_name == "torch":
        import torch

        torch.set_num_threads(threads)
        torch.manual_seed(0)
    else:
        import deepnum

        deepnum.manual_seed(0)


def _run_steps(step, steps: int) -> dict:
    """The peaks of the first step and of the following ones (VmHWM reset before each), above the
    resident set before the first."""
    gc.collect()
    base = _status_kb("VmRSS")
    _reset_peak()
    step()
    first = _status_kb("VmHWM")
    gc.collect()
    warm = _status_kb("VmRSS")
    _reset_peak()
    for _ in range(steps - 1):
        step()
    steady = _status_kb("VmHWM") if steps > 1 else first
    mb = 1.024e-3
    return {"peak_mb": (max(first, steady) - base) * mb, "step_peak_mb": (steady - warm) * mb,
            "retained_mb": (warm - base) * mb, "base_mb": base * mb}


def library_warmup(lib_name: str) -> None:
    """A tiny program touching every op family and optimizer of the workloads, in ``lib_name``."""
    import numpy as np

    from bench.layers import _libs

    lib, nn, functional, optim = _libs(lib_name)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(32, 3))
    embed, lstm = nn.Embedding(5, 3), nn.LSTM(3, 4, batch_first=True)
    attention, norm = nn.MultiheadAttention(4, 2, batch_first=True), nn.LayerNorm(4)
    modules = (net, embed, lstm, attention, norm)
    rng = np.random.default_rng(0)
    x = lib.tensor(rng.standard_normal((2, 1, 8, 8)).astype(np.float32))
    tokens, y = lib.tensor(rng.integers(0, 5, (2, 3))), lib.tensor(rng.integers(0, 3, 2))
    params = [p for m in modules for p in m.parameters()]
    for opt in (optim.SGD(params, lr=0.01, momentum=0.9), optim.Adam(params), optim.AdamW(params)):
        opt.zero_grad()
        h = lstm(embed(tokens))[0]
        h = norm(h + attention(h, h, h, need_weights=False)[0])
        loss = functional.cross_entropy(net(x), y) + functional.gelu(h).mean()
        loss.backward()
        opt.step()
    with lib.no_grad():
        net.eval()(x)


def _workload(key: str):
    from bench.suite import workloads

    (workload,) = [w for w in workloads() if w.key == key]
    return workload


def measure_here(key: str, lib_name: str, steps: int) -> dict:
    """Warm the library up, build workload ``key`` of ``lib_name`` and measure its steps (see the module
    doc). Meaningful only in a fresh process that has imported nothing else heavy."""
    workload = _workload(key)
    before = _status_kb("VmRSS")
    library_warmup(lib_name)
    warmed = _status_kb("VmRSS")
    step, _ = workload.build(lib_name)
    if before is None or not _reset_peak():
        start = _maxrss_kb()
        for _ in range(steps):
            step()
        return {"method": "ru_maxrss (lower bound)", "steps": steps, "peak_mb": max(_maxrss_kb() - start, 0) * 1.024e-3}
    known = set(sys.modules)
    result = {"method": "VmHWM", "steps": steps, **_run_steps(step, steps)}
    other = "deepnum" if lib_name == "torch" else "torch"
    result.update(warmup_mb=(warmed - before) * 1.024e-3,
                  imported_during_steps=sum(name not in known for name in sys.modules),
                  other_library_loaded=other in sys.modules)
    return result


def _subprocess(args: list[str], threads: int, timeout: float) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    command = [sys.executable, "-m", "bench.memory", *args, "--threads", str(threads)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return {"error": f"unreadable output: {done.stdout[-200:]!r}"}


def measure(key: str, lib_name: str, threads: int = 2, steps: int = 4, timeout: float = 900) -> dict:
    """:func:`measure_here` in a fresh process: its result, or ``{"error": ...}`` if it failed."""
    return _subprocess([key, lib_name, "--steps", str(steps), "--here"], threads, timeout)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="Peak memory of one workload's step in one library")
    parser.add_argument("key", help="workload key, e.g. W3")
    parser.add_argument("lib", choices=("deepnum", "torch"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--here", action="store_true", help="measure in this process (it must be a fresh one)")
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2 (a first step and a steady one)")
    if args.here:
        _limit_threads(args.lib, args.threads)
        result = measure_here(args.key, args.lib, args.steps)
    else:  # by hand: in a fresh process all the same
        result = measure(args.key, args.lib, args.threads, args.steps)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
