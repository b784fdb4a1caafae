"""Layers, whole models, optimizers, data loading, saving and the command line on the 'cuda' device
(real CuPy on a GPU, else the CPU simulation tests/_fake_cupy.py): layers equal PyTorch's with the
same weights; training steps, optimizer states and loaders equal the same run on the CPU."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import deepnum as dn
from deepnum import nn
from deepnum.data import DataLoader, TensorDataset
from deepnum.models import create_model


def host(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, dn.Tensor) else t.detach().numpy()


def _torch_twin(module: nn.Module, twin: torch.nn.Module) -> torch.nn.Module:
    twin.load_state_dict({k: torch.tensor(host(v)) for k, v in module.state_dict().items()})
    return twin


LAYERS = {
    "lstm": (lambda: nn.LSTM(4, 6, num_layers=2, batch_first=True, bidirectional=True),
             lambda: torch.nn.LSTM(4, 6, num_layers=2, batch_first=True, bidirectional=True), (3, 5, 4)),
    "gru": (lambda: nn.GRU(4, 5, batch_first=True), lambda: torch.nn.GRU(4, 5, batch_first=True), (2, 6, 4)),
    "batchnorm": (lambda: nn.BatchNorm2d(3), lambda: torch.nn.BatchNorm2d(3), (4, 3, 5, 5)),
    "layernorm": (lambda: nn.LayerNorm(6), lambda: torch.nn.LayerNorm(6), (3, 4, 6)),
    "groupnorm": (lambda: nn.GroupNorm(2, 4), lambda: torch.nn.GroupNorm(2, 4), (2, 4, 3, 3)),
    "mha": (lambda: nn.MultiheadAttention(8, 2, batch_first=True),
            lambda: torch.nn.MultiheadAttention(8, 2, batch_first=True), (2, 5, 8)),
    "encoder_layer": (lambda: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True),
                      lambda: torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True), (2, 5, 8)),
    "conv_bn_relu": (lambda: nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                           nn.MaxPool2d(2)),
                     lambda: torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                                                 torch.nn.ReLU(), torch.nn.MaxPool2d(2)), (2, 3, 8, 8)),
}


def _first(out: Any) -> Any:
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_on_device_equals_torch(name: str, device: str) -> None:
    make, make_torch, shape = LAYERS[name]
    dn.manual_seed(0)
    layer = make()
    twin = _torch_twin(layer, make_torch())
    layer.to(device)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    xd, xt = dn.tensor(x, device=device, requires_grad=True), torch.tensor(x, requires_grad=True)
    args = (xd, xd, xd) if name == "mha" else (xd,)
    targs = (xt, xt, xt) if name == "mha" else (xt,)
    out, ref = _first(layer(*args)), _first(twin(*targs))
    assert out.device == device
    np.testing.assert_allclose(host(out), host(ref), atol=3e-5, rtol=3e-4)
    g = np.random.default_rng(2).standard_normal(tuple(ref.shape)).astype(np.float32)
    (out * dn.tensor(g, device=device)).sum().backward()
    (ref * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(host(xd.grad), host(xt.grad), atol=3e-5, rtol=3e-4)
    grads = dict(twin.named_parameters())
    for key, p in layer.named_parameters():
        assert p.device == device and p.grad.device == device, key
        np.testing.assert_allclose(host(p.grad), host(grads[key].grad), atol=5e-5, rtol=3e-4, err_msg=key)
    for key, b in layer.named_buffers():
        assert b.device == device, key


def _train_steps(name: str, device: str, shape: tuple, classes: int, steps: int = 2) -> tuple[list, dict]:
    dn.manual_seed(0)
    model = create_model(name, num_classes=classes).to(device)
    opt = dn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(steps):
        x = dn.tensor(rng.standard_normal((4,) + shape).astype(np.float32), device=device)
        y = dn.tensor(rng.integers(0, classes, 4), device=device)
        loss = dn.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, {k: host(v) for k, v in model.state_dict().items()}


@pytest.mark.parametrize(("name", "shape"), [("lenet5", (1, 28, 28)), ("resnet20", (3, 16, 16))])
def test_training_steps_on_device_equal_cpu(name: str, shape: tuple, cuda: str) -> None:
    losses, state = _train_steps(name, cuda, shape, 10)
    cpu_losses, cpu_state = _train_steps(name, "cpu", shape, 10)
    np.testing.assert_allclose(losses, cpu_losses, rtol=1e-5)
    assert losses[1] != losses[0]
    for key, value in cpu_state.items():
        np.testing.assert_allclose(state[key], value, atol=2e-5, rtol=1e-4, err_msg=key)


OPTIMIZERS = {
    "sgd": (lambda p: dn.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True), ["momentum_buffer"]),
    "adam": (lambda p: dn.optim.Adam(p, lr=0.01, amsgrad=True), ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]),
    "adamw": (lambda p: dn.optim.AdamW(p, lr=0.01, weight_decay=0.1), ["exp_avg", "exp_avg_sq"]),
    "rmsprop": (lambda p: dn.optim.RMSprop(p, lr=0.01, momentum=0.5, centered=True),
                ["square_avg", "momentum_buffer", "grad_avg"]),
    "adagrad": (lambda p: dn.optim.Adagrad(p, lr=0.1, initial_accumulator_value=0.1), ["sum"]),
}


def _optimize(name: str, device: str) -> tuple[nn.Module, Any]:
    dn.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2)).to(device)
    opt = OPTIMIZERS[name][0](model.parameters())  # after .to, as in PyTorch (Adagrad makes its state here)
    x = dn.tensor(np.random.default_rng(3).standard_normal((6, 5)).astype(np.float32), device=device)
    for _ in range(3):
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
    return model, opt


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_state_on_the_parameters_device(name: str, cuda: str) -> None:
    model, opt = _optimize(name, cuda)
    cpu_model, cpu_opt = _optimize(name, "cpu")
    for p, q in zip(model.parameters(), cpu_model.parameters(), strict=True):
        assert p.device == cuda
        np.testing.assert_allclose(host(p), host(q), atol=1e-6, rtol=1e-5)
        for key in OPTIMIZERS[name][1]:
            assert opt.state[p][key].device == cuda, key
            np.testing.assert_allclose(host(opt.state[p][key]), host(cpu_opt.state[q][key]), atol=1e-6, rtol=1e-5)
    saved = opt.state_dict()
    fresh = OPTIMIZERS[name][0](model.parameters())
    fresh.load_state_dict(saved)
    p = next(model.parameters())
    assert all(fresh.state[p][key].device == cuda for key in OPTIMIZERS[name][1])


def test_module_to_moves_parameters_in_place(cuda: str) -> None:
    model = nn.Linear(3, 2)
    weight = model.weight
    opt = dn.optim.SGD(model.parameters(), lr=0.5)
    model.to(cuda)
    assert model.weight is weight and weight.device == cuda and model.bias.device == cuda
    before = host(weight)
    model(dn.ones(4, 3, device=cuda)).sum().backward()
    opt.step()  # the optimizer made before the move updates the moved parameters
    np.testing.assert_allclose(host(weight), before - 0.5 * 4.0, rtol=1e-6)


def test_state_dict_saves_to_host_and_loads_back(cuda: str, tmp_path: Any) -> None:
    dn.manual_seed(0)
    model = create_model("lenet5", num_classes=10).to(cuda)
    path = tmp_path / "lenet.safetensors"
    dn.save(model.state_dict(), path)
    loaded = dn.load(path)
    assert all(v.device == "cpu" for v in loaded.values())
    dn.manual_seed(1)
    other = create_model("lenet5", num_classes=10).to(cuda)
    other.load_state_dict(loaded)
    for (k, a), b in zip(model.state_dict().items(), other.state_dict().values(), strict=True):
        assert b.device == cuda, k
        np.testing.assert_array_equal(host(a), host(b), err_msg=k)


def test_dataloader_moves_batches_to_the_device(cuda: str) -> None:
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    y = np.arange(10)
    data = TensorDataset(dn.tensor(x), dn.tensor(y))
    for loader in (DataLoader(data, batch_size=4, device=cuda),
                   DataLoader(data, batch_size=4, device=cuda, prefetch=True)):
        batches = list(loader)
        assert [b[0].device for b in batches] == ["cuda"] * 3 and all(b[1].device == "cuda" for b in batches)
        np.testing.assert_array_equal(np.concatenate([host(b[0]) for b in batches]), x)
        np.testing.assert_array_equal(np.concatenate([host(b[1]) for b in batches]), y)


def test_fit_moves_cpu_batches_to_the_models_device(cuda: str) -> None:
    from deepnum.train import evaluate, fit

    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    results = []
    for dev in (cuda, "cpu"):
        dn.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2)).to(dev)
        loader = DataLoader(TensorDataset(dn.tensor(x), dn.tensor(y)), batch_size=8, shuffle=True,
                            generator=dn.Generator().manual_seed(1))
        history = fit(model, loader, epochs=2, optimizer=dn.optim.Adam(model.parameters(), lr=0.01),
                      loss_fn=nn.CrossEntropyLoss(), progress=False)
        assert model[0].weight.device == dev
        results.append((history.history["loss"], evaluate(model, loader, loss_fn=nn.CrossEntropyLoss())))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    assert results[0][1]["accuracy"] == results[1][1]["accuracy"]


ZOO = [("convnext_mini", {"in_chans": 3, "num_classes": 5}, (2, 3, 32, 32)),
       ("densenet_bc_22_12", {"num_classes": 3, "in_chans": 2}, (2, 2, 16, 16)),
       ("mobilenet_v2_cifar", {"width_mult": 0.35}, (2, 3, 16, 16)),
       ("swin_micro", {"num_classes": 5}, (2, 1, 16, 16)),
       ("vit_mini_patch7_28", {}, (2, 1, 28, 28)),
       ("voxnet_small", {"num_classes": 5}, (2, 1, 16, 16, 16)),
       ("xception_cifar", {"in_chans": 1}, (2, 1, 16, 16)),
       ("googlenet_small", {}, (2, 3, 32, 32)),
       ("se_resnet20", {}, (2, 3, 16, 16)),
       ("gru_classifier", {}, (2, 1, 20)),
       ("transformer_classifier", {}, (2, 1, 20)),
       ("char_gpt", {"vocab_size": 20, "n_layer": 2}, (2, 12))]


def _zoo_run(name: str, kwargs: dict, shape: tuple, device: str) -> list[np.ndarray]:
    dn.manual_seed(0)
    model = create_model(name, **kwargs).to(device, "float64")
    rng = np.random.default_rng(0)
    data = rng.integers(0, 20, shape) if name == "char_gpt" else rng.standard_normal(shape)
    out = model(dn.tensor(data, device=device))
    out = out[0] if isinstance(out, tuple) else out
    out.square().mean().backward()
    model.eval()
    with dn.no_grad():
        evaluated = model(dn.tensor(data, device=device))
    evaluated = evaluated[0] if isinstance(evaluated, tuple) else evaluated
    assert out.device == evaluated.device == device
    return [host(out), host(evaluated)] + [host(p.grad) for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize(("name", "kwargs", "shape"), ZOO, ids=[z[0] for z in ZOO])
def test_zoo_model_on_device_equals_cpu(name: str, kwargs: dict, shape: tuple, cuda: str) -> None:
    """Forward (train and eval mode) and every parameter gradient of a zoo model, in float64: small
    inputs make batch norm ill-conditioned (batches of 2 at 1×1), so float32 runs of the two paths
    (e.g. Winograd on the CPU, im2col on the device) differ by more than rounding would suggest."""
    on_device, on_cpu = _zoo_run(name, kwargs, shape, cuda), _zoo_run(name, kwargs, shape, "cpu")
    assert len(on_device) == len(on_cpu) > 2
    for k, (a, b) in enumerate(zip(on_device, on_cpu, strict=True)):
        np.testing.assert_allclose(a, b, atol=1e-9, rtol=1e-7, err_msg=f"{name}: result {k}")


def test_init_and_clip_grad_on_device(cuda: str) -> None:
    results = []
    for dev in ("cpu", cuda):
        dn.manual_seed(4)
        w = dn.empty(6, 5, device=dev)
        dn.nn.init.kaiming_normal_(w)
        u = dn.empty(3, 4, device=dev)
        dn.nn.init.orthogonal_(u)
        v = dn.empty(4, 4, device=dev)
        dn.nn.init.trunc_normal_(v, std=0.5)
        p = dn.nn.Parameter(dn.ones(3, device=dev))
        p.grad = dn.tensor([3.0, 4.0, 12.0], device=dev)
        norm = dn.nn.utils.clip_grad_norm_([p], max_norm=1.0)
        assert w.device == u.device == v.device == p.grad.device == dev
        results.append([host(w), host(u), host(v), host(p.grad), float(norm)])
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(results[1][3], np.array([3, 4, 12]) / 13, rtol=1e-5)


def test_language_model_training_and_sampling_on_device_equal_cpu(cuda: str) -> None:
    from deepnum.models.language_sampling import generate
    from deepnum.train.lm import evaluate_language_model, train_language_model

    ids = np.random.default_rng(0).integers(0, 12, 600)
    runs = []
    for dev in (cuda, "cpu"):
        dn.manual_seed(0)
        model = create_model("char_lstm", vocab_size=12, embed_dim=8, hidden_size=16).to(dev)
        train_language_model(model, ids[:500], ids[500:], seq_len=10, batch_size=4, steps=6, warmup_steps=2,
                             eval_every=3, eval_tokens=None, progress=False)
        assert all(p.device == dev for p in model.parameters())
        nll = evaluate_language_model(model, ids[500:], seq_len=10)
        text = generate(model, [1, 2, 3], 8, temperature=0.8, generator=dn.Generator().manual_seed(5))
        runs.append((nll, host(text)))
    assert runs[0][0] == pytest.approx(runs[1][0], rel=1e-5)
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_cli_train_on_device_equals_cpu(cuda: str, tmp_path: Any, capsys: Any) -> None:
    """`deepnum train --device cuda`: the weights it saves (on the host) equal a CPU run's."""
    from deepnum.cli import main

    fast = ["train", "--limit", "64", "--epochs", "1", "--batch-size", "32", "--no-augment", "--quiet"]
    for dev in ("cpu", cuda):
        assert main([*fast, "--device", dev, "--output", str(tmp_path / dev)]) == 0
    capsys.readouterr()
    a, b = dn.load(tmp_path / "cpu" / "model.safetensors"), dn.load(tmp_path / cuda / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(host(b[key]), host(a[key]), atol=1e-5, rtol=1e-4, err_msg=key)


def test_cli_train_device_cuda_without_gpu_explains(monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
                                                    capsys: Any) -> None:
    import sys

    from deepnum.cli import main

    monkeypatch.setitem(sys.modules, "cupy", None)
    code = main(["train", "--limit", "64", "--epochs", "1", "--device", "cuda", "--output", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code != 0 and "--device cuda: no usable GPU" in err and "deepnum[gpu]" in err
    assert not (tmp_path / "r").exists()


def test_cpu_fast_paths_are_not_taken_on_the_device(cuda: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Winograd, the fused batch-norm/residual blocks and the CPU thread budget are for NumPy arrays:
    a ResNet-20 step on the device calls none of them (the same step on the CPU calls each)."""
    from deepnum.functional import conv_ops, normalization
    from deepnum.models import resnet
    from deepnum.nn.modules import batchnorm

    calls: dict[str, int] = {}

    def spy(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[label] = calls.get(label, 0) + 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    spy(conv_ops.winograd, "conv3x3", "winograd")
    spy(conv_ops, "cpu_threads", "cpu_threads")
    spy(normalization, "BatchNormRows", "fused batch norm")
    spy(batchnorm, "AddReLU", "fused add+relu")
    spy(resnet, "SubsamplePad", "fused shortcut")
    _train_steps("resnet20", cuda, (3, 16, 16), 10, steps=1)
    assert calls == {}, f"CPU fast paths taken on {cuda}: {calls}"
    _train_steps("resnet20", "cpu", (3, 16, 16), 10, steps=1)
    assert {"cpu_threads", "fused batch norm", "fused shortcut", "winograd"} <= set(calls), calls
    calls.clear()
    spy(batchnorm, "folded_conv3x3", "folded conv+bn")
    for dev in (cuda, "cpu"):  # inference: batch norm folded into a Winograd convolution on the CPU only
        dn.manual_seed(0)
        model = create_model("resnet20", num_classes=10).to(dev).eval()
        with dn.no_grad():
            model(dn.ones(2, 3, 16, 16, device=dev))
        assert ("folded conv+bn" in calls) == (dev == "cpu"), (dev, calls)
    calls.clear()
    for dev in (cuda, "cpu"):  # the end of a residual block: one fused op on the CPU only
        out = batchnorm.add_relu(nn.ReLU(), dn.ones(2, 3, device=dev), -dn.ones(2, 3, device=dev) * 3)
        np.testing.assert_array_equal(host(out), np.zeros((2, 3), np.float32))
        assert list(calls) == ([] if dev == cuda else ["fused add+relu"]), (dev, calls)


def test_mixed_precision_step_on_device_matches_cpu(cuda: str) -> None:
    """autocast + GradScaler on the device: the float16 forward's loss and the updated weights agree
    with the CPU's AMP step to float16 accuracy (the CPU multiplies float16 via float32, CuPy directly)."""
    from deepnum.amp import GradScaler, autocast

    results = []
    for dev in (cuda, "cpu"):
        dn.manual_seed(0)
        model = create_model("lenet5").to(dev)
        opt = dn.optim.SGD(model.parameters(), lr=0.1)
        scaler = GradScaler(dev)
        rng = np.random.default_rng(0)
        x = dn.tensor(rng.standard_normal((8, 1, 28, 28)).astype(np.float32), device=dev)
        y = dn.tensor(rng.integers(0, 10, 8), device=dev)
        with autocast(dev):
            loss = dn.nn.functional.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        assert all(p.device == dev and p.dtype == np.float32 for p in model.parameters())
        results.append((loss.item(), [host(p) for p in model.parameters()]))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-2)
    for a, b in zip(results[0][1], results[1][1], strict=True):
        np.testing.assert_allclose(a, b, atol=2e-3, rtol=2e-2)
