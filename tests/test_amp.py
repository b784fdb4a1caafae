"""Mixed precision (deepnum.amp): autocast's per-op dtype policy against torch.autocast, float16
products with float32 accumulation, gradients reaching float32 master weights, nesting, and
GradScaler step by step against torch.amp.GradScaler."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import deepnum as dn
import deepnum.nn.functional as F
from deepnum import nn
from deepnum.amp import GradScaler, autocast, get_autocast_dtype, is_autocast_enabled
from deepnum.functional._half import gemm

RNG = np.random.default_rng(0)


def _pair(*shape, scale=1.0):
    a = (RNG.standard_normal(shape) * scale).astype(np.float32)
    return dn.tensor(a), torch.tensor(a)


def _close16(ours, theirs, tol=2e-2):
    np.testing.assert_allclose(ours.detach().numpy().astype(np.float32), theirs.detach().float().numpy(),
                               rtol=tol, atol=tol)


# ----------------------------------------------------------------------------- ops cast to float16
LOWER_CASES = {
    "linear": (lambda d, w, b: F.linear(d, w, b), lambda t, w, b: TF.linear(t, w, b), (6, 8), (5, 8), (5,)),
    "matmul": (lambda d, w, b: d @ w.mT, lambda t, w, b: t @ w.mT, (2, 6, 8), (5, 8), None),
    "mm": (lambda d, w, b: dn.mm(d, w.mT), lambda t, w, b: torch.mm(t, w.mT), (6, 8), (5, 8), None),
    "bmm": (lambda d, w, b: dn.bmm(d, w), lambda t, w, b: torch.bmm(t, w), (3, 4, 8), (3, 8, 5), None),
    "conv1d": (lambda d, w, b: F.conv1d(d, w, b, padding=1), lambda t, w, b: TF.conv1d(t, w, b, padding=1),
               (2, 3, 9), (4, 3, 3), (4,)),
    "conv2d": (lambda d, w, b: F.conv2d(d, w, b, stride=2), lambda t, w, b: TF.conv2d(t, w, b, stride=2),
               (2, 3, 9, 9), (4, 3, 3, 3), (4,)),
    "conv3d": (lambda d, w, b: F.conv3d(d, w, b), lambda t, w, b: TF.conv3d(t, w, b), (1, 2, 5, 5, 5),
               (3, 2, 2, 2, 2), (3,)),
    "conv_transpose1d": (lambda d, w, b: F.conv_transpose1d(d, w, b, stride=2),
                         lambda t, w, b: TF.conv_transpose1d(t, w, b, stride=2), (2, 3, 7), (3, 4, 3), (4,)),
    "conv_transpose2d": (lambda d, w, b: F.conv_transpose2d(d, w, b, padding=1),
                         lambda t, w, b: TF.conv_transpose2d(t, w, b, padding=1), (2, 3, 6, 6), (3, 4, 3, 3), (4,)),
    "conv_transpose3d": (lambda d, w, b: F.conv_transpose3d(d, w, b), lambda t, w, b: TF.conv_transpose3d(t, w, b),
                         (1, 2, 3, 3, 3), (2, 3, 2, 2, 2), (3,)),
    "sdpa": (lambda d, w, b: F.scaled_dot_product_attention(d, w, w, is_causal=True),
             lambda t, w, b: TF.scaled_dot_product_attention(t, w, w, is_causal=True), (2, 5, 8), (2, 5, 8), None),
}


@pytest.mark.parametrize("name", sorted(LOWER_CASES))
def test_lower_precision_ops_match_torch_autocast(name):
    ours, theirs, xs, ws, bs = LOWER_CASES[name]
    x, tx = _pair(*xs)
    w, tw = _pair(*ws, scale=0.5)
    b, tb = _pair(*bs) if bs else (None, None)
    with autocast("cpu"):
        y = ours(x, w, b)
    with torch.autocast("cpu", dtype=torch.float16):
        ty = theirs(tx, tw, tb)
    assert y.dtype == dn.float16 and ty.dtype == torch.float16
    _close16(y, ty)
    y32 = ours(x, w, b)  # outside autocast: float32 again
    assert y32.dtype == dn.float32


def test_multihead_attention_projections_run_in_float16_like_torch():
    dn.manual_seed(0)
    ours = nn.MultiheadAttention(8, 2, batch_first=True)
    theirs = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    x, tx = _pair(2, 5, 8)
    with autocast("cpu"):
        y, _ = ours(x, x, x, need_weights=False)
    with torch.autocast("cpu", dtype=torch.float16):
        ty, _ = theirs(tx, tx, tx, need_weights=False)
    assert y.dtype == dn.float16 and ty.dtype == torch.float16
    _close16(y, ty)
    assert all(p.dtype == dn.float32 for p in ours.parameters())


# ----------------------------------------------------------------------------- ops kept in float32
LOSSES = {
    "mse_loss": (lambda x, t: F.mse_loss(x, t), lambda x, t: TF.mse_loss(x, t)),
    "l1_loss": (lambda x, t: F.l1_loss(x, t), lambda x, t: TF.l1_loss(x, t)),
    "smooth_l1_loss": (lambda x, t: F.smooth_l1_loss(x, t), lambda x, t: TF.smooth_l1_loss(x, t)),
    "huber_loss": (lambda x, t: F.huber_loss(x, t), lambda x, t: TF.huber_loss(x, t)),
    "bce_with_logits": (lambda x, t: F.binary_cross_entropy_with_logits(x, t.sigmoid()),
                        lambda x, t: TF.binary_cross_entropy_with_logits(x, t.sigmoid())),
    "kl_div": (lambda x, t: F.kl_div(x, t.softmax(-1), reduction="batchmean"),
               lambda x, t: TF.kl_div(x, t.softmax(-1), reduction="batchmean")),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_of_float16_inputs_are_float32_like_torch_autocast(name):
    ours, theirs = LOSSES[name]
    x, tx = _pair(6, 5)
    t, tt = _pair(6, 5)
    with autocast("cpu"):
        loss = ours(x.half(), t)
    with torch.autocast("cpu", dtype=torch.float16):
        tloss = theirs(tx.half(), tt)
    assert loss.dtype == dn.float32 and tloss.dtype == torch.float32
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-5, atol=1e-6)


def test_cross_entropy_and_nll_of_float16_logits_are_float32_like_torch():
    x, tx = _pair(8, 10, scale=3.0)
    target = RNG.integers(0, 10, 8)
    with autocast("cpu"):
        ce = F.cross_entropy(x.half(), dn.tensor(target))
        nll = F.nll_loss(x.half(), dn.tensor(target))
    with torch.autocast("cpu", dtype=torch.float16):
        tce = TF.cross_entropy(tx.half(), torch.tensor(target))
        tnll = TF.nll_loss(tx.half(), torch.tensor(target))
    assert ce.dtype == nll.dtype == dn.float32 and tce.dtype == tnll.dtype == torch.float32
    np.testing.assert_allclose([ce.item(), nll.item()], [tce.item(), tnll.item()], rtol=1e-5)


# torch's CPU autocast leaves these in float16; deepnum follows torch's CUDA list (softmax, norms,
# exp/log, sums: float32) plus batch norm, so the reference is torch's op on the upcast input.
FLOAT32_CASES = {
    "softmax": (lambda x: F.softmax(x, -1), lambda x: TF.softmax(x, -1)),
    "log_softmax": (lambda x: F.log_softmax(x, -1), lambda x: TF.log_softmax(x, -1)),
    "layer_norm": (lambda x: F.layer_norm(x, (6,)), lambda x: TF.layer_norm(x, (6,))),
    "group_norm": (lambda x: F.group_norm(x, 2), lambda x: TF.group_norm(x, 2)),
    "batch_norm": (lambda x: F.batch_norm(x, None, None, training=True),
                   lambda x: TF.batch_norm(x, None, None, training=True)),
    "exp": (dn.exp, torch.exp),
    "log": (lambda x: dn.log(x.abs()), lambda x: torch.log(x.abs())),
    "log1p": (lambda x: dn.log1p(x.abs()), lambda x: torch.log1p(x.abs())),
    "sum": (lambda x: x.sum(), torch.sum),
    "prod": (lambda x: dn.prod(x, 1), lambda x: torch.prod(x, 1)),
    "cumsum": (lambda x: dn.cumsum(x, 1), lambda x: torch.cumsum(x, 1)),
    "logsumexp": (lambda x: dn.logsumexp(x, 1), lambda x: torch.logsumexp(x, 1)),
    "norm": (lambda x: dn.norm(x), torch.norm),
}


@pytest.mark.parametrize("name", sorted(FLOAT32_CASES))
def test_precision_sensitive_ops_upcast_float16_inputs(name):
    ours, theirs = FLOAT32_CASES[name]
    x, tx = _pair(4, 6)
    with autocast("cpu"):
        y = ours(x.half())
    assert y.dtype == dn.float32
    reference = theirs(tx.half().float())
    np.testing.assert_allclose(y.numpy(), reference.numpy(), rtol=1e-5, atol=1e-5)
    assert ours(x.half()).dtype == dn.float16  # outside autocast an op keeps its input's dtype


def test_unlisted_ops_keep_the_dtype_and_float64_is_never_cast():
    x = dn.tensor(RNG.standard_normal((3, 4)))  # float64
    w = dn.tensor(RNG.standard_normal((5, 4)))
    with autocast("cpu"):
        assert F.linear(x, w).dtype == dn.float64 and dn.exp(x).dtype == dn.float64
        h = F.linear(x.float(), w.float())
        assert h.dtype == dn.float16 and F.relu(h).dtype == dn.float16 and (h * 2).dtype == dn.float16


# ----------------------------------------------------------------------------- numerics
def test_float16_gemm_accumulates_in_float32():
    """A sum of many float16 products: exact float32 accumulation then one rounding, not float16 sums."""
    a = RNG.standard_normal((3, 4096)).astype(np.float16)
    b = RNG.standard_normal((4096, 2)).astype(np.float16)
    got = gemm(a, b)
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, (a.astype(np.float32) @ b.astype(np.float32)).astype(np.float16))
    exact = a.astype(np.float64) @ b.astype(np.float64)
    assert np.abs(got - exact).max() <= np.abs(exact).max() * 2.0**-10  # one float16 rounding


def test_float16_convolution_takes_the_general_path_and_matches_float32():
    """Channels enough for Winograd in float32: float16 must give the float32 result rounded."""
    x = dn.tensor(RNG.standard_normal((2, 32, 10, 10)).astype(np.float16))
    w = dn.tensor((RNG.standard_normal((32, 32, 3, 3)) * 0.1).astype(np.float16))
    tx, tw = (torch.tensor(t.numpy().astype(np.float32), requires_grad=True) for t in (x, w))
    x.requires_grad_(True)
    w.requires_grad_(True)
    y = F.conv2d(x, w, padding=1)
    ty = TF.conv2d(tx, tw, padding=1)
    assert y.dtype == dn.float16
    np.testing.assert_allclose(y.detach().numpy().astype(np.float32), ty.detach().numpy(), rtol=2e-3, atol=2e-3)
    g = RNG.standard_normal(y.shape).astype(np.float16)
    y.backward(dn.tensor(g))
    ty.backward(torch.tensor(g.astype(np.float32)))
    assert x.grad.dtype == w.grad.dtype == dn.float16
    np.testing.assert_allclose(x.grad.numpy().astype(np.float32), tx.grad.numpy(), rtol=5e-3, atol=5e-3)
    scale = np.abs(tw.grad.numpy()).max()
    np.testing.assert_allclose(w.grad.numpy().astype(np.float32), tw.grad.numpy(), rtol=5e-3, atol=5e-3 * scale)


def test_gradients_reach_float32_master_weights_as_float32_like_torch():
    dn.manual_seed(0)
    ours = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                 torch.nn.Linear(4 * 6 * 6, 3))
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    x, tx = _pair(5, 1, 8, 8)
    target = RNG.integers(0, 3, 5)
    with autocast("cpu"):
        out = ours(x)
        loss = F.cross_entropy(out, dn.tensor(target))
    with torch.autocast("cpu", dtype=torch.float16):
        tout = theirs(tx)
        tloss = TF.cross_entropy(tout, torch.tensor(target))
    assert out.dtype == dn.float16 and loss.dtype == dn.float32
    loss.backward()
    tloss.backward()
    for (name, p), tp in zip(ours.named_parameters(), theirs.parameters()):
        assert p.dtype == dn.float32 and p.grad.dtype == dn.float32, name
        scale = tp.grad.abs().max().item()
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=2e-2, atol=2e-2 * scale, err_msg=name)


# ----------------------------------------------------------------------------- the context manager
def test_nested_disabled_and_decorated_autocast():
    x, w = dn.randn(2, 3), dn.randn(4, 3)
    assert not is_autocast_enabled()
    with autocast("cpu"):
        assert is_autocast_enabled() and is_autocast_enabled("cpu") and not is_autocast_enabled("cuda")
        with autocast("cpu", enabled=False):
            assert not is_autocast_enabled("cpu") and F.linear(x, w).dtype == dn.float32
            with autocast("cpu"):
                assert F.linear(x, w).dtype == dn.float16
            assert F.linear(x, w).dtype == dn.float32
        assert F.linear(x, w).dtype == dn.float16
    assert not is_autocast_enabled() and F.linear(x, w).dtype == dn.float32
    with autocast("cuda"):  # another device's autocast leaves CPU tensors alone
        assert is_autocast_enabled("cuda") and F.linear(x, w).dtype == dn.float32

    @autocast("cpu")
    def forward(a):
        return F.linear(a, w)

    assert forward(x).dtype == dn.float16 and not is_autocast_enabled()
    assert get_autocast_dtype("cpu") == dn.float16


def test_autocast_restores_the_state_after_an_exception():
    with pytest.raises(RuntimeError), autocast("cpu"):
        F.linear(dn.randn(2, 3), dn.randn(4, 5))
    assert not is_autocast_enabled()


def test_a_weight_used_twice_is_cast_once_per_region():
    lin = nn.Linear(3, 3)
    x = dn.randn(2, 3)
    with autocast("cpu"):
        y = lin(lin(x))
    cast_nodes = set()
    stack = [y.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None:
            continue
        if type(fn).__name__ == "Cast" and fn.inputs[0] is lin.weight:
            cast_nodes.add(id(fn))
        stack.extend(f for f, _ in fn.next_functions)
    assert len(cast_nodes) == 1
    y.sum().backward()
    assert lin.weight.grad.dtype == dn.float32


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="device_type must be 'cpu' or 'cuda'"):
        autocast("tpu")
    with pytest.raises(ValueError, match="dtype must be float16"):
        autocast("cpu", dtype=dn.float32)
    with pytest.raises(ValueError, match="dtype must be float16"):
        autocast("cpu", dtype="bfloat16")
    with pytest.raises(ValueError, match="growth_factor should be > 1"):
        GradScaler(growth_factor=0.5)
    with pytest.raises(ValueError, match="growth_interval must be a positive int"):
        GradScaler(growth_interval=0)


# ----------------------------------------------------------------------------- memory
def test_amp_halves_the_activations_lenet_saves_for_backward():
    """LeNet-5 on an MNIST-sized batch: the arrays its graph holds for backward, float32 vs AMP."""
    from deepnum.amp.memory import saved_tensor_bytes
    from deepnum.models import create_model

    dn.manual_seed(0)
    model = create_model("lenet5")
    x, y = dn.randn(16, 1, 28, 28), dn.randint(0, 10, (16,))
    full = saved_tensor_bytes(F.cross_entropy(model(x), y))
    with autocast("cpu"):
        mixed = saved_tensor_bytes(F.cross_entropy(model(x), y))
    conv1_out = 16 * 6 * 28 * 28  # elements of the first convolution's output, the largest activation
    assert full >= 4 * conv1_out and mixed < 0.6 * full, (full, mixed)


def test_densenet_shared_buffer_and_recomputed_bottleneck_under_autocast():
    """The block buffer widens the float16 layer outputs (cat's promotion); memory_efficient=True
    recomputes its bottleneck under the autocast state of the forward pass, so both modes agree."""
    from deepnum.models import create_model

    grads = []
    for efficient in (False, True):
        dn.manual_seed(0)
        model = create_model("densenet_bc_22_12", in_chans=3, memory_efficient=efficient)
        x = dn.randn(2, 3, 32, 32, generator=dn.Generator().manual_seed(3))
        with autocast("cpu"):
            out = model(x)
        assert out.dtype == dn.float16
        out.float().pow(2).mean().backward()
        assert {p.grad.dtype for p in model.parameters()} == {dn.float32}
        grads.append([p.grad.numpy() for p in model.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)
