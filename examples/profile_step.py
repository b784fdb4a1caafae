"""Profile a few training steps of a benchmark workload with ``deepnum.profiler`` and print where the
time goes, per op (forward, backward, calls, bytes), with the step's phases as labelled regions.

Workloads (as in ``bench/``): ``resnet20`` (CIFAR ResNet-20, batch 128 of 3×32×32, SGD momentum),
``lstm`` (char LM: Embedding(65, 128) → LSTM(128, 256) → Linear(256, 65), batch 32 × seq 64, Adam),
``transformer`` (2-layer encoder classifier, d_model 128, 4 heads, ffn 512, batch 32 × seq 64, Adam),
``mlp`` (784-256-256-10, batch 128, SGD).

Run: ``.venv/bin/python examples/profile_step.py --model resnet20 [--steps 3] [--threads 1] [--shapes]``
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

MODELS = ("resnet20", "lstm", "transformer", "mlp")


def _pin_threads(threads: int) -> None:
    """One thread count for NumPy's BLAS, set before NumPy is imported (and through threadpoolctl
    if it is installed and NumPy already was)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:
        pass


def build(model_name: str, batch: int | None = None) -> tuple[Callable[[], Any], Any]:
    """``(step, model)``: one training step of ``model_name`` (forward, loss, backward, optimizer
    step, each in its own ``record_function`` region) on a fixed random batch."""
    import numpy as np

    import deepnum as dn
    from deepnum import nn, optim
    from deepnum.nn import functional as F
    from deepnum.profiler import record_function

    dn.manual_seed(0)
    rng = np.random.default_rng(0)
    if model_name == "resnet20":
        from deepnum.models.resnet import resnet20

        model, batch = resnet20(), batch or 128
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = dn.tensor(rng.standard_normal((batch, 3, 32, 32)).astype(np.float32))
        y = dn.tensor(rng.integers(0, 10, batch))
    elif model_name == "mlp":
        model, batch = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                                     nn.Linear(256, 10)), batch or 128
        opt = optim.SGD(model.parameters(), lr=0.01)
        x = dn.tensor(rng.standard_normal((batch, 784)).astype(np.float32))
        y = dn.tensor(rng.integers(0, 10, batch))
    elif model_name in ("lstm", "transformer"):
        model, batch = _sequence_model(model_name, dn, nn), batch or 32
        opt = optim.Adam(model.parameters(), lr=1e-3)
        x = dn.tensor(rng.integers(0, 65, (batch, 64)))
        y = dn.tensor(rng.integers(0, 65, (batch, 64)) if model_name == "lstm" else rng.integers(0, 10, batch))
    else:
        raise ValueError(f"profile_step: unknown model {model_name!r}; choose one of {MODELS}")
    model.train()

    def step() -> Any:
        with record_function("zero_grad"):
            opt.zero_grad()
        with record_function("forward"):
            out = model(x)
        with record_function("loss"):
            loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
        with record_function("backward"):
            loss.backward()
        opt.step()  # its own region, Optimizer.step#SGD.step / #Adam.step
        return loss

    return step, model


def _sequence_model(name: str, dn: Any, nn: Any) -> Any:
    """The LSTM LM or the transformer classifier of ``bench/sequences.py``, as one Module."""

    class LSTMLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed, self.lstm, self.head = nn.Embedding(65, 128), nn.LSTM(128, 256, batch_first=True), \
                nn.Linear(256, 65)

        def forward(self, x: Any) -> Any:
            return self.head(self.lstm(self.embed(x))[0])

    class Classifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layer = nn.TransformerEncoderLayer(128, 4, 512, dropout=0.1, batch_first=True)
            self.embed, self.encoder, self.head = nn.Embedding(65, 128), nn.TransformerEncoder(layer, 2), \
                nn.Linear(128, 10)
            self.pos = nn.Parameter(dn.zeros(1, 64, 128))

        def forward(self, x: Any) -> Any:
            return self.head(self.encoder(self.embed(x) + self.pos).mean(1))

    return LSTMLM() if name == "lstm" else Classifier()


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODELS, default="resnet20")
    parser.add_argument("--steps", type=int, default=3, help="profiled steps (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=None, help="default: the benchmark's batch")
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: as the environment sets)")
    parser.add_argument("--sort", default="total", help="total, self, forward, backward, calls, bytes, "
                                                         "or torch's cpu_time_total, self_cpu_time_total, ...")
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--shapes", action="store_true", help="one row per op and input shapes")
    parser.add_argument("--json", default=None, help="also write the profile as JSON here")
    args = parser.parse_args(argv)
    if args.threads is not None:
        _pin_threads(args.threads)
    from deepnum import profiler

    step, _ = build(args.model, args.batch)
    for _ in range(args.warmup):
        step()
    with profiler.profile(record_shapes=args.shapes) as prof:
        for _ in range(args.steps):
            step()
    table = prof.key_averages(group_by_input_shape=args.shapes).table(sort_by=args.sort, row_limit=args.rows)
    batch = f"batch {args.batch}" if args.batch else "benchmark batch"
    threads = f"{args.threads} thread(s)" if args.threads is not None else "default threads"
    print(f"{args.model}: {args.steps} training steps ({batch}, {threads}), "
          f"{prof.wall_ns / 1e6 / max(args.steps, 1):.1f} ms per step while profiled")
    print(table)
    if args.json:
        prof.export_json(args.json)
    return table


if __name__ == "__main__":
    main(sys.argv[1:])
