"""Every op family on each device ('cpu', and 'cuda': real CuPy on a GPU, else the CPU simulation of
CuPy in tests/_fake_cupy.py, which refuses any NumPy call on device data): forward values and input
gradients equal PyTorch's (float32), and on 'cuda' they also equal deepnum's own CPU results."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import deepnum as dn
import deepnum.nn.functional as F
from deepnum.data import DataLoader, TensorDataset
from tests.helpers import Const

ATOL, RTOL = 2e-5, 2e-4


def host(t: Any) -> np.ndarray:
    """A tensor's values as a NumPy array, from any device."""
    return t.detach().cpu().numpy() if isinstance(t, dn.Tensor) else t.detach().numpy()


def _inputs(specs: tuple, seed: int) -> list:
    rng = np.random.default_rng(seed)
    values = []
    for spec in specs:
        if isinstance(spec, tuple):
            values.append(rng.uniform(-2, 2, size=spec).astype(np.float32))
        else:
            values.append(spec)
    return values


def _run_deepnum(fn: Callable, values: list, device: str, g_seed: int) -> tuple[list, list]:
    args = []
    for v in values:
        if isinstance(v, Const):
            args.append(dn.tensor(np.asarray(v.value), device=device))
        else:
            args.append(dn.tensor(v, device=device, requires_grad=True))
    outs = fn(dn, F, *args)
    outs = list(outs) if isinstance(outs, tuple | list) else [outs]
    for o in outs:
        assert o.device == device, f"an output is on {o.device}, expected {device}"
    rng = np.random.default_rng(g_seed)
    loss = sum((o * dn.tensor(rng.standard_normal(o.shape).astype(np.float32), device=device)).sum()
                for o in outs if o.requires_grad)
    loss.backward()
    grads = [a.grad for a in args if a.requires_grad]
    for g in grads:
        assert g.device == device, f"a gradient is on {g.device}, expected {device}"
    return [host(o) for o in outs], [host(g) for g in grads]


def _run_torch(fn: Callable, values: list, g_seed: int) -> tuple[list, list]:
    args = [torch.tensor(np.asarray(v.value)) if isinstance(v, Const) else torch.tensor(v, requires_grad=True)
            for v in values]
    outs = fn(torch, torch.nn.functional, *args)
    outs = list(outs) if isinstance(outs, tuple | list) else [outs]
    rng = np.random.default_rng(g_seed)
    loss = sum((o * torch.tensor(rng.standard_normal(tuple(o.shape)).astype(np.float32))).sum()
               for o in outs if o.requires_grad)
    loss.backward()
    return [host(o) for o in outs], [host(a.grad) for a in args if a.requires_grad]


def check_on_device(fn: Callable, *specs: Any, device: str, seed: int = 0, torch_fn: Callable | None = None,
                    atol: float = ATOL, rtol: float = RTOL) -> None:
    """fn(module, functional, *tensors) on ``device``: outputs and gradients equal torch's, and on
    'cuda' equal deepnum's CPU run."""
    values = _inputs(specs, seed)
    outs, grads = _run_deepnum(fn, values, device, seed + 1)
    ref_outs, ref_grads = _run_torch(torch_fn or fn, values, seed + 1)
    for i, (a, b) in enumerate(zip(outs + grads, ref_outs + ref_grads, strict=True)):
        assert a.shape == b.shape, f"{i}: shape {a.shape} != torch's {b.shape}"
        np.testing.assert_allclose(a, b, atol=atol, rtol=rtol, err_msg=f"result {i} on {device} vs torch")
    if device != "cpu":
        cpu_outs, cpu_grads = _run_deepnum(fn, values, "cpu", seed + 1)
        for i, (a, b) in enumerate(zip(outs + grads, cpu_outs + cpu_grads, strict=True)):
            np.testing.assert_allclose(a, b, atol=atol, rtol=rtol, err_msg=f"result {i} on {device} vs cpu")


IDX = Const(np.array([[0, 2], [1, 1], [3, 0], [2, 2]], dtype=np.int64))
LABELS = Const(np.array([0, 2, 1, 2], dtype=np.int64))
TOKENS = Const(np.array([[1, 4, 0], [2, 2, 3]], dtype=np.int64))

OPS: dict[str, tuple] = {
    "arithmetic": (lambda m, f, x, y: x * y + x / (y.abs() + 1) - y ** 2 + m.maximum(x, y) + m.where(x > y, x, y),
                   (4, 5), (4, 5)),
    "unary": (lambda m, f, x: x.exp() + x.sin() * x.cos() + x.tanh() + (x.abs() + 0.5).log() + x.clamp(-1, 1)
              + (x * x + 1).sqrt() + x.sigmoid(), (3, 6)),
    "activations": (lambda m, f, x: (f.relu(x), f.gelu(x), f.gelu(x, approximate="tanh"), f.silu(x),
                                     f.softplus(x), f.elu(x), f.leaky_relu(x, 0.1), f.hardswish(x), f.mish(x),
                                     f.relu6(x * 4), f.hardsigmoid(x)), (4, 7)),
    "softmax": (lambda m, f, x: (f.softmax(x, dim=-1), f.log_softmax(x, dim=1)), (3, 4, 5)),
    "reductions": (lambda m, f, x: (x.sum(1), x.mean(0), x.var(1), x.std(), x.amax(1), x.amin(0),
                                    x.logsumexp(1), x.cumsum(1), x.prod(1), x.norm(), x.max(), x.min()),
                   (4, 5)),
    "matmul": (lambda m, f, a, b, c: (a @ b, m.matmul(c, b), m.einsum("bij,jk->bik", c, b)),
               (3, 4), (4, 5), (2, 3, 4)),
    "linear": (lambda m, f, x, w, b: f.linear(x, w, b), (6, 8), (3, 8), (3,)),
    "indexing": (lambda m, f, x, i: (x[1:3, ::2], x[x > 0], x.gather(1, i), x.index_select(0, i[:, 0]),
                                     x.masked_fill(x < 0, 0.5), x[i[:, 0]]),
                 (4, 5), IDX),
    "scatter_add": (lambda m, f, x, s, i: x.scatter_add(1, i, s), (4, 5), (4, 2), IDX),
    "joining": (lambda m, f, x, y: (m.cat([x, y], 0), m.stack([x, y], 1), f.pad(x, (1, 2, 0, 1)),
                                    *x.split(2, dim=1), *y.chunk(2, 0)), (4, 5), (4, 5)),
    "shape": (lambda m, f, x: (x.reshape(6, 4), x.permute(2, 0, 1), x.transpose(0, 1), x.flip(1),
                               x.roll(1, 2), x.tril(), x.unsqueeze(0).expand(2, 2, 3, 4), x.repeat(1, 2, 1)),
              (2, 3, 4)),
    "conv1d": (lambda m, f, x, w, b: f.conv1d(x, w, b, stride=2, padding=1, dilation=2), (2, 3, 11), (4, 3, 3), (4,)),
    "conv2d": (lambda m, f, x, w, b: (f.conv2d(x, w, b, padding=1), f.conv2d(x, w, None, stride=2)),
               (2, 3, 8, 8), (4, 3, 3, 3), (4,)),
    "conv2d_wide": (lambda m, f, x, w: f.conv2d(x, w, padding=1), (2, 32, 8, 8), (32, 32, 3, 3)),
    "conv2d_groups": (lambda m, f, x, w: f.conv2d(x, w, groups=2, padding=(0, 1)), (2, 4, 6, 6), (6, 2, 3, 3)),
    "conv3d": (lambda m, f, x, w, b: f.conv3d(x, w, b, padding=1, stride=(1, 2, 2)), (1, 2, 5, 6, 6),
               (3, 2, 3, 3, 3), (3,)),
    "conv_transpose": (lambda m, f, x, w, w1, w3: (f.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
                                                   f.conv_transpose1d(x[:, :, 0], w1, stride=2),
                                                   f.conv_transpose3d(x[:, :, None], w3, padding=1)),
                       (2, 3, 5, 5), (3, 4, 3, 3), (3, 2, 3), (3, 2, 3, 3, 3)),
    "pooling": (lambda m, f, x: (f.max_pool2d(x, 2), f.avg_pool2d(x, 3, stride=2, padding=1),
                                 f.max_pool1d(x[:, :, 0], 3, stride=2), f.adaptive_avg_pool2d(x, (3, 2)),
                                 f.adaptive_max_pool2d(x, 3), f.max_pool3d(x[:, None], 2), f.avg_pool1d(x[:, 0], 2)),
                (2, 3, 8, 8)),
    "norms": (lambda m, f, x, w, b: (f.layer_norm(x, (8,), w[:8], b[:8]), f.group_norm(x.reshape(2, 4, 2, 4), 2),
                                     f.batch_norm(x.reshape(2, 4, 2, 4), None, None, w[:4], b[:4], training=True)),
              (2, 4, 8), (8,), (8,)),
    "embedding": (lambda m, f, w, i: f.embedding(i, w), (5, 3), TOKENS),
    "losses": (lambda m, f, x, y, t: (f.cross_entropy(x, t), f.cross_entropy(x, t, label_smoothing=0.1),
                                      f.nll_loss(f.log_softmax(x, 1), t), f.mse_loss(x, y), f.l1_loss(x, y),
                                      f.smooth_l1_loss(x, y), f.huber_loss(x, y, delta=0.5),
                                      f.binary_cross_entropy_with_logits(x, y.sigmoid()),
                                      f.binary_cross_entropy(x.sigmoid(), y.sigmoid()),
                                      f.kl_div(f.log_softmax(x, 1), f.softmax(y, 1), reduction="batchmean"),
                                      f.cross_entropy(x, f.softmax(y, 1))),
               (4, 3), (4, 3), LABELS),
    "attention": (lambda m, f, q, k, v: (f.scaled_dot_product_attention(q, k, v),
                                         f.scaled_dot_product_attention(q, k, v, is_causal=True),
                                         f.scaled_dot_product_attention(q, k, v, attn_mask=q[0, 0] @ k[0, 0].T > 0)),
                  (2, 2, 5, 4), (2, 2, 5, 4), (2, 2, 5, 4)),
    "pooling_more": (lambda m, f, x: (f.adaptive_avg_pool1d(x[:, :, 0], 3), f.adaptive_max_pool1d(x[:, :, 1], 5),
                                      f.avg_pool3d(x[:, None], 2), f.adaptive_avg_pool3d(x[:, None], (1, 2, 3)),
                                      f.adaptive_max_pool3d(x[:, None], 2), f.max_pool2d(x, 3, 2, 1, ceil_mode=True),
                                      f.avg_pool2d(x, 2, count_include_pad=False, padding=1)),
                     (2, 3, 8, 8)),
    "pad_modes": (lambda m, f, x: (f.pad(x, (2, 1, 1, 2), mode="reflect"), f.pad(x, (1, 1, 2, 0), mode="replicate"),
                                   f.pad(x, (1, 2, 1, 1), mode="circular"), f.pad(x, (1, 1), value=0.5)),
                  (2, 3, 5, 5)),
    "misc": (lambda m, f, x, i: (f.hardtanh(x, -0.5, 0.5), x.argmax(1), x.argmin(0), m.isfinite(x / (x + 1e9)),
                                 x.take_along_dim(i, 1), x.floor() + x.ceil() + x.round(),
                                 x.sign() * (x.abs() + 0.1).rsqrt(),
                                 m.logsumexp(x, 0), x.remainder(0.7), m.bmm(x[None], x.T[None]),
                                 f.one_hot(i[:, 0], 5)),
             (4, 5), IDX),
    "class_losses": (lambda m, f, x, t, w: (f.cross_entropy(x, t, weight=w, reduction="sum"),
                                            f.cross_entropy(x, t, ignore_index=1),
                                            f.nll_loss(f.log_softmax(x, 1), t, reduction="none")),
                     (4, 3), LABELS, Const(np.array([0.5, 1.0, 2.0], dtype=np.float32))),
    "interpolate": (lambda m, f, x: (f.interpolate(x, scale_factor=2, mode="nearest"),
                                     f.interpolate(x, size=(7, 5), mode="bilinear", align_corners=False),
                                     f.interpolate(x, size=(6, 6), mode="bilinear", align_corners=True),
                                     f.interpolate(x, size=(2, 3), mode="area"),
                                     f.interpolate(x[:, :, 0], size=9, mode="linear"),
                                     f.interpolate(x[:, None], size=(3, 4, 4), mode="trilinear")),
                    (2, 3, 4, 4)),
}


@pytest.mark.parametrize("name", list(OPS))
def test_op_family_on_device_equals_torch(name: str, device: str) -> None:
    fn, *specs = OPS[name]
    check_on_device(fn, *specs, device=device)


def test_dropout_with_seeded_generator_on_device_equals_cpu(device: str) -> None:
    x = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    results = []
    for dev in ("cpu", device):
        dn.manual_seed(7)
        t = dn.tensor(x, device=dev, requires_grad=True)
        y = F.dropout(t, 0.3, training=True) + F.dropout2d(t.reshape(8, 8, 4, 8), 0.5).reshape(64, 32)
        y.sum().backward()
        assert y.device == dev and t.grad.device == dev
        results.append((host(y), host(t.grad)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    kept = results[1][1] != 0
    assert 0.6 < kept.mean() < 0.9  # keep rate of the first mask (0.7) mixed with the channel mask's (0.5)


def test_fake_cupy_refuses_numpy_on_device_data(fake_cupy) -> None:
    """The simulation's point: every implicit host conversion or NumPy call on device data fails."""
    a = fake_cupy.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    for call in (lambda: np.asarray(a), lambda: np.exp(a), lambda: np.sum(a), lambda: a + np.ones(3, np.float32),
                 lambda: np.matmul(a, a.T), lambda: np.zeros(3) + a):
        with pytest.raises(TypeError):
            call()
    np.testing.assert_array_equal(fake_cupy.asnumpy(fake_cupy.exp(a)), np.exp(np.arange(6, dtype=np.float32)
                                                                            ).reshape(2, 3))
    assert type(a.sum()).__module__ == "cupy" and float(a.sum()) == 15.0
    assert dn.backend.get_array_module(a) is fake_cupy


def test_cuda_module_on_simulated_device(fake_cupy) -> None:
    assert dn.cuda.is_available() and dn.cuda.device_count() == 1 and dn.cuda.current_device() == 0
    assert "fake CuPy" in dn.cuda.get_device_name()
    before = dn.cuda.memory_allocated()
    x = dn.zeros(1000, 250, device="cuda")
    assert dn.cuda.memory_allocated() - before == 1000 * 250 * 4
    dn.cuda.synchronize()
    dn.cuda.manual_seed(3)
    a = dn.randn(4, device="cuda")
    dn.manual_seed(3)
    b = dn.randn(4)
    np.testing.assert_array_equal(host(a), host(b))
    del x


def test_to_cuda_without_cupy_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy raises ImportError
    assert not dn.cuda.is_available() and dn.cuda.device_count() == 0
    model = dn.nn.Linear(3, 2)
    weight = model.weight
    with pytest.raises(RuntimeError, match=r"CuPy, which is not installed: pip install 'deepnum\[gpu\]'"):
        model.to("cuda")
    assert model.weight is weight and model.weight.device == "cpu"
    with pytest.raises(RuntimeError, match="not installed"):
        dn.ones(2).cuda()
    with pytest.raises(RuntimeError, match="not installed"):
        dn.cuda.get_device_name()


def test_to_cuda_without_a_device_says_so(fake_cupy, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_device() -> int:
        raise fake_cupy.cuda.runtime.CUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    monkeypatch.setattr(fake_cupy.cuda.runtime, "getDeviceCount", no_device)
    monkeypatch.setattr(dn.backend, "_CHECKED", [])  # forget a device found by an earlier test
    assert not dn.cuda.is_available()
    with pytest.raises(RuntimeError, match=r"finds no CUDA device.*deepnum\[gpu\]"):
        dn.tensor([1.0, 2.0], device="cuda")
    with pytest.raises(RuntimeError, match="finds no CUDA device"):
        DataLoader(TensorDataset(dn.ones(4, 2)), batch_size=2, device="cuda")


def test_mixing_devices_raises_a_clear_error(cuda: str) -> None:
    a = dn.ones(2, 3, device="cpu")
    b = dn.ones(2, 3, device=cuda)
    with pytest.raises(RuntimeError, match=r"add: expected all tensors on the same device, got cpu\(2, 3\), cuda"):
        a + b
    model = dn.nn.Linear(3, 4)
    with pytest.raises(RuntimeError, match="same device"):
        model(b)
    model.to(cuda)
    with pytest.raises(RuntimeError, match="same device"):
        model(a)
    assert model(b).device == "cuda"


def test_deepnum_only_ops_on_device_equal_cpu(cuda: str) -> None:
    """Ops PyTorch lacks (tested against formulas elsewhere): on the device they equal the CPU run."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3, 6, 6)).astype(np.float32)
    t = np.array([0, 2, 1, 2])
    results = []
    for dev in ("cpu", cuda):
        dn.manual_seed(11)
        a = dn.tensor(x, device=dev, requires_grad=True)
        logits = a.mean((2, 3))
        labels = dn.tensor(t, device=dev)
        outs = [F.min_pool2d(a, 2), F.min_pool1d(a[:, 0], 3), F.min_pool3d(a[:, None], 2),
                F.focal_loss(logits, labels, gamma=2.0), F.asymmetric_loss(logits, F.one_hot(labels, 3).float()),
                F.drop_path(a, 0.5, training=True), F.stochastic_depth(a, 0.3, "row", training=True)]
        sum(o.sum() * (k + 1) for k, o in enumerate(outs)).backward()
        assert all(o.device == dev for o in outs) and a.grad.device == dev
        results.append([host(o) for o in outs] + [host(a.grad)])
    for k, (c, d) in enumerate(zip(*results, strict=True)):
        np.testing.assert_allclose(d, c, atol=1e-6, rtol=1e-5, err_msg=f"output {k}")
