"""Mixed precision on the CPU: memory and time of one training step, float32 against AMP
(``deepnum.amp.autocast`` + ``GradScaler``), for LeNet-5 (batch 64, MNIST-sized) and ResNet-20
(batch 32, CIFAR-sized). Reported per model and mode:

- ``saved_mb``: the arrays the graph holds for backward after the forward pass and the loss
  (``deepnum.amp.memory.saved_tensor_bytes``: non-leaf inputs of every op plus the arrays the ops
  saved, each buffer once), in MiB;
- ``peak_mb``: tracemalloc's peak of NumPy allocations during forward + backward, in MiB;
- ``step_ms``: the median time of a whole step (forward, loss, backward, AdamW), in ms.

Run: ``.venv/bin/python -m bench.amp [--steps 10]`` (prints a table; docs/amp.md records one).
"""
from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc


def _setup(name: str, shape: tuple[int, ...]):
    import deepnum as dn
    from deepnum.models import create_model

    dn.manual_seed(0)
    model = create_model(name)
    x, y = dn.randn(*shape), dn.randint(0, 10, (shape[0],))
    return model, dn.optim.AdamW(model.parameters(), lr=1e-3), x, y


def _loss(model, x, y, amp: bool):
    import contextlib

    import deepnum.nn.functional as F
    from deepnum.amp import autocast

    with autocast("cpu") if amp else contextlib.nullcontext():
        return F.cross_entropy(model(x), y)


def measure(name: str, shape: tuple[int, ...], amp: bool, steps: int) -> dict[str, float]:
    import numpy as np

    from deepnum.amp import GradScaler
    from deepnum.amp.memory import saved_tensor_bytes

    model, opt, x, y = _setup(name, shape)
    scaler = GradScaler(enabled=amp)

    def step() -> None:
        opt.zero_grad()
        loss = _loss(model, x, y, amp)
        with np.errstate(over="ignore", invalid="ignore"):
            scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    step()
    saved = saved_tensor_bytes(_loss(model, x, y, amp))
    tracemalloc.start()
    opt.zero_grad()
    scaler.scale(_loss(model, x, y, amp)).backward()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"saved_mb": saved / 2**20, "peak_mb": peak / 2**20, "step_ms": 1e3 * statistics.median(times)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)
    print(f"{'model':<10} {'mode':<8} {'saved MiB':>10} {'peak MiB':>10} {'step ms':>9}")
    for name, shape in (("lenet5", (64, 1, 28, 28)), ("resnet20", (32, 3, 32, 32))):
        for amp in (False, True):
            r = measure(name, shape, amp, args.steps)
            print(f"{name:<10} {'AMP' if amp else 'float32':<8} {r['saved_mb']:>10.2f} {r['peak_mb']:>10.2f} "
                  f"{r['step_ms']:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
