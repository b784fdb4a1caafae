"""ResNet-20 training step on a GPU: deepnum on CuPy vs PyTorch on CUDA, same process, alternating
rounds (see bench/harness.py), batch 128 of 3×32×32, cross-entropy, backward, SGD with momentum.

Every timed step ends with a device synchronisation (``deepnum.cuda.synchronize`` /
``torch.cuda.synchronize``), so a round measures finished GPU work, not queued kernels. Before
timing, one step of each runs from the same weights and their losses are compared.

Runs only where a GPU exists: without CuPy and a CUDA device it says so and exits with status 2
(no numbers are made up); without a CUDA build of torch it times deepnum alone.

Run: ``python -m bench.gpu [--rounds N] [--batch B] [--json PATH]`` (or ``bash bench/gpu_check.sh``,
which first runs the device tests on real CuPy).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable

import numpy as np

from bench.harness import classification_step, measure, time_per_iteration


def _torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _synchronized(step: Callable[[], object], sync: Callable[[], None]) -> Callable[[], object]:
    def run() -> object:
        out = step()
        sync()
        return out

    return run


def build_steps(batch: int, with_torch: bool) -> tuple[Callable, Callable | None, float, float | None]:
    """(deepnum step, torch step or None, deepnum's first loss, torch's first loss)."""
    import deepnum as dn
    from bench.zoo import torch_cifar_resnet
    from deepnum.models.resnet import resnet20

    dn.manual_seed(0)
    model = resnet20()
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    model.to("cuda").train()
    opt = dn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x_host = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    y_host = rng.integers(0, 10, batch)
    x, y = dn.tensor(x_host, device="cuda"), dn.tensor(y_host, device="cuda")

    ours = classification_step(dn.nn.functional, model, opt, x, y)
    first_ours = float(ours().item())
    theirs, first_theirs = None, None
    if with_torch:
        import torch

        twin = torch_cifar_resnet(3)
        twin.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
        twin.to("cuda").train()
        topt = torch.optim.SGD(twin.parameters(), lr=0.01, momentum=0.9)
        tx, ty = torch.tensor(x_host, device="cuda"), torch.tensor(y_host, device="cuda")
        theirs_step = classification_step(torch.nn.functional, twin, topt, tx, ty)
        first_theirs = float(theirs_step().item())
        theirs = _synchronized(theirs_step, torch.cuda.synchronize)
    return _synchronized(ours, dn.cuda.synchronize), theirs, first_ours, first_theirs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    import deepnum as dn

    if not dn.cuda.is_available():
        print("bench.gpu: no GPU here (deepnum.cuda.is_available() is False: CuPy is missing or finds no CUDA "
              "device); nothing was measured. Run it on a machine with an NVIDIA GPU after "
              "pip install 'deepnum[gpu]'.")
        return 2
    import cupy

    with_torch = _torch_cuda()
    device = dn.cuda.get_device_name()
    print(f"device: {device}; CuPy {cupy.__version__}; torch CUDA: {'yes' if with_torch else 'no (deepnum only)'}")
    ours, theirs, loss_ours, loss_theirs = build_steps(args.batch, with_torch)
    result = {"device": device, "cupy": cupy.__version__, "batch": args.batch, "rounds": args.rounds,
              "iterations": args.iterations, "first_loss_deepnum": loss_ours, "first_loss_torch": loss_theirs}
    if theirs is None:
        times = [time_per_iteration(ours, args.iterations) for _ in range(args.rounds + 1)][1:]
        result["deepnum_ms"] = 1e3 * statistics.median(times)
        print(f"ResNet-20 train step (batch {args.batch}): deepnum {result['deepnum_ms']:.2f} ms")
    else:
        import torch

        result["torch"] = torch.__version__
        print(f"first-step loss: deepnum {loss_ours:.6f}, torch {loss_theirs:.6f} (same weights and batch)")
        mine, yours = measure(ours, theirs, rounds=args.rounds, iterations=args.iterations, warmup=3)
        result["deepnum_ms"], result["torch_ms"] = 1e3 * statistics.median(mine), 1e3 * statistics.median(yours)
        result["ratio"] = result["deepnum_ms"] / result["torch_ms"]
        print(f"ResNet-20 train step (batch {args.batch}): deepnum {result['deepnum_ms']:.2f} ms, torch "
              f"{result['torch_ms']:.2f} ms, ratio deepnum/torch = {result['ratio']:.2f}x")
    result["deepnum_images_per_s"] = args.batch / (result["deepnum_ms"] / 1e3)
    result["memory_allocated_mb"] = dn.cuda.memory_allocated() / 2**20
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
