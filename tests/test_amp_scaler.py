"""GradScaler against torch.amp.GradScaler step by step, its errors, and training with AMP (fit,
`deepnum train --amp`, and the slow check of the main job's accuracy)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import deepnum as dn
from deepnum import nn
from deepnum.amp import GradScaler, autocast
from deepnum.data import DataLoader, Subset
from deepnum.data.datasets import load_dataset
from deepnum.models import create_model
from deepnum.train import evaluate, fit


def _models(seed: int = 0):
    dn.manual_seed(seed)
    ours = nn.Linear(4, 3)
    theirs = torch.nn.Linear(4, 3)
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    return ours, theirs


def test_grad_scaler_matches_torch_step_by_step():
    """Scale sequence, skipped steps on injected inf/NaN, growth after growth_interval clean steps."""
    ours, theirs = _models()
    opt, topt = dn.optim.SGD(ours.parameters(), lr=0.1), torch.optim.SGD(theirs.parameters(), lr=0.1)
    kwargs = dict(init_scale=2.0**10, growth_factor=2.0, backoff_factor=0.5, growth_interval=3)
    scaler, tscaler = GradScaler("cpu", **kwargs), torch.amp.GradScaler("cpu", **kwargs)
    rng = np.random.default_rng(1)
    overflow = {2, 3, 8, 13}
    scales, skipped = [], []
    for step in range(16):
        x = rng.standard_normal((5, 4)).astype(np.float32)
        if step in overflow:
            x[0, 1] = np.inf if step % 2 else np.nan
        before = ours.weight.detach().numpy().copy()
        for model, o, s, make in ((ours, opt, scaler, dn.tensor), (theirs, topt, tscaler, torch.tensor)):
            o.zero_grad()
            loss = (model(make(x)) ** 2).mean()
            s.scale(loss).backward()
            s.step(o)
            s.update()
        skipped.append(bool(np.array_equal(before, ours.weight.detach().numpy())))
        scales.append(scaler.get_scale())
        assert scaler.get_scale() == tscaler.get_scale(), step
        assert scaler.state_dict() == tscaler.state_dict(), step
        np.testing.assert_allclose(ours.weight.detach().numpy(), theirs.weight.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ours.bias.detach().numpy(), theirs.bias.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert skipped == [step in overflow for step in range(16)]
    # 1024 → 512 → 256 (two overflows), three clean steps → 512, overflow at 8 → 256, ...
    assert scales[:8] == [1024, 1024, 512, 256, 256, 256, 512, 512]


def test_unscale_clip_and_the_order_of_calls():
    ours, theirs = _models()
    opt, topt = dn.optim.SGD(ours.parameters(), lr=0.1), torch.optim.SGD(theirs.parameters(), lr=0.1)
    scaler, tscaler = GradScaler(init_scale=8.0), torch.amp.GradScaler("cpu", init_scale=8.0)
    x = np.random.default_rng(2).standard_normal((5, 4)).astype(np.float32)
    scaler.scale(ours(dn.tensor(x)).sum()).backward()
    tscaler.scale(theirs(torch.tensor(x)).sum()).backward()
    np.testing.assert_allclose(ours.weight.grad.numpy(), 8 * theirs.weight.grad.numpy() / 8, rtol=1e-6)
    scaler.unscale_(opt)
    tscaler.unscale_(topt)
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-6)
    with pytest.raises(RuntimeError, match="already been called on this optimizer"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        scaler.step(opt)
    with pytest.raises(RuntimeError, match="unscale_\\(\\) is being called after step"):
        scaler.unscale_(opt)
    scaler.update()
    with pytest.raises(RuntimeError, match="no inf checks were recorded"):
        scaler.update()


def test_state_dict_round_trip_disabled_scaler_and_errors():
    scaler = GradScaler(init_scale=4.0, growth_interval=7)
    ours, _ = _models()
    opt = dn.optim.SGD(ours.parameters(), lr=0.1)
    scaler.scale(ours(dn.ones(2, 4)).sum()).backward()
    scaler.step(opt)
    scaler.update()
    other = GradScaler()
    other.load_state_dict(scaler.state_dict())
    assert other.state_dict() == scaler.state_dict() == {
        "scale": 4.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 7, "_growth_tracker": 1}
    with pytest.raises(RuntimeError, match="state dict is empty"):
        GradScaler().load_state_dict({})
    off = GradScaler(enabled=False)
    loss = ours(dn.ones(2, 4)).sum()
    assert off.scale(loss) is loss and off.get_scale() == 1.0 and off.state_dict() == {}
    with pytest.raises(TypeError, match="floating point Tensor"):
        scaler.scale(dn.tensor([1, 2]))
    half = nn.Linear(2, 2).half()
    half(dn.ones(1, 2).half()).sum().backward()
    fresh = GradScaler()
    fresh.scale(dn.ones(1))
    with pytest.raises(ValueError, match="float16"):
        fresh.unscale_(dn.optim.SGD(half.parameters(), lr=0.1))


def test_float16_overflow_skips_steps_and_backs_off_until_steps_succeed():
    """A scale of 2^40 overflows the float16 gradients of the autocast region: the step is skipped and
    the scale halves until the scaled gradients fit; the float32 weights move only then."""
    dn.manual_seed(0)
    model = nn.Linear(8, 4)
    opt = dn.optim.SGD(model.parameters(), lr=0.01)
    scaler = GradScaler(init_scale=2.0**40)
    x = dn.randn(16, 8)
    start = model.weight.detach().numpy().copy()
    steps = 0
    while scaler.get_scale() == 2.0**40 or np.array_equal(start, model.weight.detach().numpy()):
        opt.zero_grad()
        with autocast("cpu"):
            loss = model(x).float().pow(2).mean()
        with np.errstate(over="ignore", invalid="ignore"):  # float16 overflow (inf, inf - inf) is expected here
            scaler.scale(loss).backward()
        assert model.weight.grad.dtype == dn.float32
        scaler.step(opt)
        scaler.update()
        steps += 1
        assert steps < 40
    assert 2.0**10 <= scaler.get_scale() < 2.0**40 and steps > 1


# ----------------------------------------------------------------------------- training
def _mnist_subset(n: int, seed: int):
    data = load_dataset("mnist", split="train")
    idx = np.random.default_rng(seed).permutation(len(data))[:n]
    return Subset(data, idx.tolist())


def _train(amp: bool) -> tuple[float, float]:
    dn.manual_seed(0)
    model = create_model("lenet5")
    train = DataLoader(_mnist_subset(768, 0), batch_size=32, shuffle=True, generator=dn.Generator().manual_seed(1))
    test = DataLoader(Subset(load_dataset("mnist", split="test"), list(range(300))), batch_size=100)
    history = fit(model, train, epochs=3, optimizer=dn.optim.Adam(model.parameters(), lr=3e-3),
                  loss_fn=nn.CrossEntropyLoss(), progress=False, amp=amp)
    assert all(p.dtype == dn.float32 for p in model.parameters())
    return history.last()["loss"], evaluate(model, test)["accuracy"]


def test_fit_with_amp_converges_like_float32_on_a_mnist_subset():
    loss32, acc32 = _train(amp=False)
    loss16, acc16 = _train(amp=True)
    assert loss16 < 0.6 and acc16 > 0.8, (loss16, acc16)
    assert abs(acc16 - acc32) < 0.05 and abs(loss16 - loss32) < 0.1, (acc16, acc32, loss16, loss32)


def test_train_cli_amp_records_and_checkpoints_the_scaler(tmp_path):
    from deepnum.cli import main

    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--limit", "128", "--quiet", "--amp", "--output", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["amp"] is True and config["status"] == "done"
    from deepnum.io import load_checkpoint

    info = load_checkpoint(out / "checkpoint.safetensors", model=create_model("lenet5"))
    assert info["extra"]["grad_scaler"]["scale"] == 2.0**16 and info["extra"]["grad_scaler"]["_growth_tracker"] == 2


@pytest.mark.slow
def test_main_job_with_amp_is_within_half_a_point_of_float32(tmp_path):
    """`deepnum train` (LeNet-5, bundled MNIST, 20 epochs) with and without --amp: the test accuracies
    differ by at most 0.5 points (docs/amp.md records the numbers)."""
    accuracy = {}
    for flag in ("", "--amp"):
        out = tmp_path / (flag or "fp32")
        result = subprocess.run([sys.executable, "-m", "deepnum", "train", "--quiet", "--output", str(out),
                                 *([flag] if flag else [])], capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr
        accuracy[flag] = json.loads((out / "config.json").read_text())["test_accuracy"]
    assert accuracy[""] >= 0.975 and abs(accuracy["--amp"] - accuracy[""]) <= 0.005, accuracy
