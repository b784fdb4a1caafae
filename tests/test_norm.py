"""Normalisation against PyTorch: batch_norm (training and evaluation, running statistics over
several steps, momentum=None, affine=False, track_running_stats=False), layer_norm over 1-3 dims,
group_norm with 1, C and in-between groups; the BatchNorm1d/2d/3d, LayerNorm and GroupNorm modules
(outputs, input and parameter gradients, buffers, state_dict keys, repr, init, errors); second
derivatives (gradgradcheck, and against torch's double backward)."""
import numpy as np
import pytest
import torch

import deepnum as dn
import deepnum.nn as nn
from deepnum.nn import functional as F
from tests.helpers import TOLERANCES, Const, assert_close, check_op

TF = torch.nn.functional
TOL32 = (1e-4, 1e-4)  # float32 sums over a few hundred elements


def both(f, *specs, **kwargs):
    """check_op for code written against a functional module: f(F, ...) vs f(torch.nn.functional, ...)."""
    check_op(lambda *a: f(F, *a), *specs, torch_fn=lambda *a: f(TF, *a), **kwargs)


def tolerance(dtype):
    return TOLERANCES[np.dtype(dtype)] if np.dtype(dtype) == np.float64 else TOL32


def to_dn_state(torch_module):
    return {k: dn.tensor(v.detach().numpy()) for k, v in torch_module.state_dict().items()}


def twins(dn_layer, torch_layer, dtype, seed=0):
    """Randomise torch's parameters and running statistics, copy them into deepnum's layer, cast both."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in torch_layer.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif t.dtype.is_floating_point:
                t.copy_(torch.randn(t.shape, generator=gen))
    torch_layer.to(torch.float64 if np.dtype(dtype) == np.float64 else torch.float32)
    dn_layer.to(np.dtype(dtype))
    dn_layer.load_state_dict(to_dn_state(torch_layer))
    return dn_layer, torch_layer


def step(dn_layer, torch_layer, x, dtype, seed=0):
    """One forward and backward of both layers on x; compare outputs, input and parameter
    gradients and every state_dict entry (buffers after their update)."""
    tol = tolerance(dtype)
    x = np.asarray(x, dtype=dtype)
    xd, xt = dn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yd, yt = dn_layer(xd), torch_layer(xt)
    assert yd.dtype == np.dtype(dtype)
    assert_close(yd, yt, *tol, what="output")
    g = np.random.default_rng(seed + 1).standard_normal(yt.shape).astype(dtype)
    (yd * dn.tensor(g)).sum().backward()
    (yt * torch.tensor(g)).sum().backward()
    assert xd.grad.dtype == np.dtype(dtype)
    assert_close(xd.grad, xt.grad, *tol, what="input gradient")
    params = dict(dn_layer.named_parameters())
    assert list(params) == [n for n, _ in torch_layer.named_parameters()]
    for name, p in torch_layer.named_parameters():
        assert_close(params[name].grad, p.grad, *tol, what=f"gradient of {name}")
        assert params[name].grad.dtype == np.dtype(dtype)
    state = dn_layer.state_dict()
    for name, t in torch_layer.state_dict().items():
        assert_close(state[name], t, *tol, what=name)
        assert state[name].dtype == np.dtype(str(t.dtype).removeprefix("torch."))
    return yd, yt


# ----------------------------------------------------------------------------- functional batch_norm
BN_SHAPES = [(5, 3), (4, 3, 2), (3, 2, 3, 2), (2, 2, 2, 2, 3)]


@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
def test_batch_norm_training_functional(shape, affine):
    c = (shape[1],)
    if affine == "both":
        both(lambda f, x, w, b: f.batch_norm(x, None, None, w, b, training=True), shape, c, c)
    elif affine == "weight":
        both(lambda f, x, w: f.batch_norm(x, None, None, w, training=True), shape, c)
    else:
        both(lambda f, x: f.batch_norm(x, None, None, training=True, eps=1e-3), shape)


@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batch_norm_eval_functional(shape):
    c = shape[1]
    rng = np.random.default_rng(1)
    rm, rv = Const(rng.standard_normal(c)), Const(rng.uniform(0.5, 2.0, c))
    both(lambda f, x, m, v, w, b: f.batch_norm(x, m, v, w, b, training=False), shape, rm, rv, (c,), (c,))
    both(lambda f, x, m, v: f.batch_norm(x, m, v), shape, rm, rv)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("momentum", [0.1, 0.5])
def test_batch_norm_functional_updates_running_stats_in_place(dtype, momentum):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((6, 3, 4)) * 3 + 1).astype(dtype)
    ours = [dn.tensor(np.zeros(3, dtype)), dn.tensor(np.ones(3, dtype))]
    torch_dtype = torch.float64 if dtype == np.float64 else torch.float32
    theirs = [torch.zeros(3, dtype=torch_dtype), torch.ones(3, dtype=torch_dtype)]
    versions = [t._version for t in ours]
    F.batch_norm(dn.tensor(x), *ours, training=True, momentum=momentum)
    TF.batch_norm(torch.tensor(x), *theirs, training=True, momentum=momentum)
    for a, b in zip(ours, theirs, strict=True):
        assert_close(a, b, *tolerance(dtype), what="running statistic")
    assert all(t._version > v for t, v in zip(ours, versions, strict=True))  # updated in place


def test_batch_norm_functional_errors():
    x = dn.randn(4, 3, 2)
    with pytest.raises(RuntimeError, match="running_mean should contain 3 elements not 4"):
        F.batch_norm(x, dn.zeros(4), dn.ones(3))
    with pytest.raises(RuntimeError, match="weight should contain 3 elements not 2"):
        F.batch_norm(x, None, None, dn.ones(2), training=True)
    with pytest.raises(ValueError, match=r"more than 1 value per channel when training, got input size \(1, 3\)"):
        F.batch_norm(dn.randn(1, 3), None, None, training=True)
    with pytest.raises(RuntimeError, match="must be defined in evaluation mode"):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, C, \*\), got \(3,\)"):
        F.batch_norm(dn.randn(3), None, None, training=True)
    with pytest.raises(RuntimeError, match="floating point"):
        F.batch_norm(dn.tensor([[1, 2], [3, 4]]), None, None, training=True)


# ----------------------------------------------------------------------------- BatchNorm modules
MODULE_SHAPES = [("BatchNorm1d", (6, 4)), ("BatchNorm1d", (5, 4, 3)), ("BatchNorm2d", (3, 4, 5, 2)),
                 ("BatchNorm2d", (2, 4, 3, 3)), ("BatchNorm3d", (2, 4, 2, 3, 2)), ("BatchNorm3d", (3, 4, 1, 2, 2))]


@pytest.mark.parametrize("name,shape", MODULE_SHAPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batchnorm_module_train_and_eval(name, shape, dtype):
    ours, theirs = twins(getattr(nn, name)(4), getattr(torch.nn, name)(4), dtype)
    rng = np.random.default_rng(3)
    step(ours, theirs, rng.standard_normal(shape) * 2 + 0.5, dtype)
    ours.eval()
    theirs.eval()
    step(ours, theirs, rng.standard_normal(shape), dtype)


@pytest.mark.parametrize("name,shape", MODULE_SHAPES[::2] + [("BatchNorm2d", (2, 4, 3, 3))])
@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batchnorm_several_training_steps_then_eval(name, shape, momentum, dtype):
    ours, theirs = twins(getattr(nn, name)(4, momentum=momentum), getattr(torch.nn, name)(4, momentum=momentum),
                         dtype)
    rng = np.random.default_rng(4)
    for i in range(5):
        batch = rng.standard_normal(shape) * (i + 1) + i
        step(ours, theirs, batch, dtype, seed=i)
        assert int(ours.num_batches_tracked.item()) == int(theirs.num_batches_tracked) == i + 1
    ours.eval()
    theirs.eval()
    for i in range(2):
        step(ours, theirs, rng.standard_normal(shape) * 3, dtype, seed=10 + i)
    assert int(ours.num_batches_tracked.item()) == 5  # evaluation leaves the buffers alone


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batchnorm_affine_false_and_bias_false(dtype):
    ours, theirs = twins(nn.BatchNorm2d(3, affine=False), torch.nn.BatchNorm2d(3, affine=False), dtype)
    assert ours.weight is None and ours.bias is None
    x = np.random.default_rng(5).standard_normal((2, 3, 4, 4))
    step(ours, theirs, x, dtype)
    ours, theirs = twins(nn.BatchNorm1d(3, bias=False), torch.nn.BatchNorm1d(3, bias=False), dtype)
    step(ours, theirs, x[:, :, 0], dtype)
    assert list(ours.state_dict()) == list(theirs.state_dict())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batchnorm_without_running_stats_uses_batch_stats_in_eval(dtype):
    ours, theirs = twins(nn.BatchNorm2d(3, track_running_stats=False),
                         torch.nn.BatchNorm2d(3, track_running_stats=False), dtype)
    assert ours.running_mean is None and ours.running_var is None and ours.num_batches_tracked is None
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight", "bias"]
    rng = np.random.default_rng(6)
    step(ours, theirs, rng.standard_normal((2, 3, 3, 2)) + 2, dtype)
    ours.eval()
    theirs.eval()
    step(ours, theirs, rng.standard_normal((2, 3, 3, 2)) - 1, dtype)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        ours(dn.randn(1, 3, 1, 1))


def test_batchnorm_state_dict_repr_and_init():
    configs = [dict(), dict(momentum=None), dict(affine=False), dict(track_running_stats=False),
               dict(eps=1e-3, momentum=0.2), dict(bias=False)]
    for name in ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d"):
        for kwargs in configs:
            ours, theirs = getattr(nn, name)(5, **kwargs), getattr(torch.nn, name)(5, **kwargs)
            assert repr(ours) == repr(theirs)
            assert list(ours.state_dict()) == list(theirs.state_dict())
            for key, t in theirs.state_dict().items():
                assert_close(ours.state_dict()[key], t, 0, 0, what=key)
                assert ours.state_dict()[key].dtype == np.dtype(str(t.dtype).removeprefix("torch."))
    bn = nn.BatchNorm2d(3)
    assert bn.weight.requires_grad and bn.num_batches_tracked.dtype == np.int64 and bn.num_batches_tracked.ndim == 0
    assert nn.BatchNorm2d(3, dtype=dn.float64).weight.dtype == np.float64


def test_batchnorm_reset_running_stats_and_parameters():
    bn = nn.BatchNorm1d(3)
    bn(dn.randn(8, 3) * 4 + 2)
    with dn.no_grad():
        bn.weight.mul_(3)
        bn.bias.add_(1)
    assert int(bn.num_batches_tracked.item()) == 1 and np.all(bn.running_mean.numpy() != 0)
    bn.reset_running_stats()
    np.testing.assert_array_equal(bn.running_mean.numpy(), 0)
    np.testing.assert_array_equal(bn.running_var.numpy(), 1)
    assert int(bn.num_batches_tracked.item()) == 0
    assert np.all(bn.weight.detach().numpy() == 3)
    bn(dn.randn(8, 3) + 5)
    bn.reset_parameters()
    np.testing.assert_array_equal(bn.running_mean.numpy(), 0)
    np.testing.assert_array_equal(bn.weight.detach().numpy(), 1)
    np.testing.assert_array_equal(bn.bias.detach().numpy(), 0)
    nn.BatchNorm1d(3, track_running_stats=False).reset_running_stats()  # nothing to reset


def test_batchnorm_errors_name_the_layer_and_change_nothing():
    with pytest.raises(ValueError, match=r"BatchNorm2d\(16\): expected input \(N, 16, H, W\), got \(8, 3, 32, 32\)"):
        nn.BatchNorm2d(16)(dn.randn(8, 3, 32, 32))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\): expected input \(N, 3, H, W\), got \(8, 3, 32\)"):
        nn.BatchNorm2d(3)(dn.randn(8, 3, 32))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(4\): expected input \(N, 4\) or \(N, 4, L\), got \(2, 3\)"):
        nn.BatchNorm1d(4)(dn.randn(2, 3))
    with pytest.raises(ValueError, match=r"BatchNorm3d\(4\): expected input \(N, 4, D, H, W\)"):
        nn.BatchNorm3d(4)(dn.randn(2, 4, 3, 3))
    bn = nn.BatchNorm1d(4)
    with pytest.raises(ValueError, match=r"BatchNorm1d\(4\): Expected more than 1 value per channel when training, "
                                         r"got input size \(1, 4\)"):
        bn(dn.randn(1, 4))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        bn(dn.randn(1, 4, 1))
    assert int(bn.num_batches_tracked.item()) == 0
    np.testing.assert_array_equal(bn.running_mean.numpy(), 0)
    bn(dn.randn(1, 4, 2))  # two values per channel are enough, as in torch
    bn.eval()
    assert bn(dn.randn(1, 4)).shape == (1, 4)  # running statistics: one sample is fine


def test_batchnorm_in_sequential_with_double_and_no_grad():
    ours = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ours.load_state_dict(to_dn_state(theirs))
    x = np.random.default_rng(7).standard_normal((5, 3)).astype(np.float32)
    with dn.no_grad():
        yd = ours(dn.tensor(x))
    with torch.no_grad():
        yt = theirs(torch.tensor(x))
    assert_close(yd, yt, *TOL32, what="output")
    assert_close(ours[1].running_var, theirs[1].running_var, *TOL32, what="running_var")


# ----------------------------------------------------------------------------- layer norm
LN_CASES = [((4, 5), (5,)), ((2, 3, 4), (4,)), ((2, 3, 4), (3, 4)), ((2, 2, 3, 2), (2, 3, 2)), ((3,), (3,))]


@pytest.mark.parametrize("shape,norm_shape", LN_CASES)
def test_layer_norm_functional(shape, norm_shape):
    both(lambda f, x, w, b: f.layer_norm(x, norm_shape, w, b), shape, norm_shape, norm_shape)
    both(lambda f, x, w: f.layer_norm(x, norm_shape, w, None, 1e-3), shape, norm_shape)
    both(lambda f, x: f.layer_norm(x, norm_shape), shape)


@pytest.mark.parametrize("shape,norm_shape", LN_CASES[:4])
@pytest.mark.parametrize("kwargs", [dict(), dict(elementwise_affine=False), dict(bias=False), dict(eps=1e-2)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layernorm_module(shape, norm_shape, kwargs, dtype):
    ours, theirs = twins(nn.LayerNorm(norm_shape, **kwargs), torch.nn.LayerNorm(norm_shape, **kwargs), dtype)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    step(ours, theirs, np.random.default_rng(8).standard_normal(shape) * 3 + 1, dtype)


def test_layernorm_init_int_shape_and_errors():
    ln = nn.LayerNorm(6)
    assert ln.normalized_shape == (6,) and repr(ln) == repr(torch.nn.LayerNorm(6))
    np.testing.assert_array_equal(ln.weight.detach().numpy(), np.ones(6, np.float32))
    np.testing.assert_array_equal(ln.bias.detach().numpy(), np.zeros(6, np.float32))
    assert ln.weight.dtype == np.float32
    with pytest.raises(ValueError, match=r"LayerNorm\(\(6,\)\): expected input \(\*, 6\), got \(2, 5\)"):
        ln(dn.randn(2, 5))
    with pytest.raises(ValueError, match=r"LayerNorm\(\(2, 3\)\): expected input \(\*, 2, 3\), got \(3,\)"):
        nn.LayerNorm([2, 3])(dn.randn(3))
    with pytest.raises(RuntimeError, match=r"normalized_shape=\[4\].*size \(2, 3\)"):
        F.layer_norm(dn.randn(2, 3), [4])
    with pytest.raises(RuntimeError, match="weight of shape"):
        F.layer_norm(dn.randn(2, 3), [3], dn.ones(2))


# ----------------------------------------------------------------------------- group norm
GN_CASES = [((3, 6), 1), ((3, 6), 2), ((2, 6, 4), 6), ((2, 6, 4), 2), ((2, 6, 3, 2), 3), ((2, 4, 2, 2, 2), 2)]


@pytest.mark.parametrize("shape,groups", GN_CASES)
def test_group_norm_functional(shape, groups):
    c = (shape[1],)
    both(lambda f, x, w, b: f.group_norm(x, groups, w, b), shape, c, c)
    both(lambda f, x: f.group_norm(x, groups, eps=1e-3), shape)


@pytest.mark.parametrize("shape,groups", GN_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_groupnorm_module(shape, groups, dtype):
    for kwargs in (dict(), dict(affine=False)):
        ours, theirs = twins(nn.GroupNorm(groups, shape[1], **kwargs), torch.nn.GroupNorm(groups, shape[1], **kwargs),
                             dtype)
        assert repr(ours) == repr(theirs)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        step(ours, theirs, np.random.default_rng(9).standard_normal(shape) * 2 - 1, dtype)


def test_groupnorm_init_and_errors():
    gn = nn.GroupNorm(2, 6, bias=False)
    assert repr(gn) == repr(torch.nn.GroupNorm(2, 6, bias=False)) and gn.bias is None
    np.testing.assert_array_equal(gn.weight.detach().numpy(), np.ones(6, np.float32))
    with pytest.raises(ValueError, match=r"num_channels \(6\) must be divisible by num_groups \(4\)"):
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match=r"GroupNorm\(2, 6\): expected input \(N, 6, \*\), got \(2, 4, 3\)"):
        gn(dn.randn(2, 4, 3))
    with pytest.raises(RuntimeError, match="divisible by num_groups"):
        F.group_norm(dn.randn(2, 6), 4)


def test_norm_submodule_does_not_hide_the_norm_function():
    """Importing the normalization layers' ops (deepnum.nn does) must leave ``deepnum.functional.norm``,
    the vector/matrix norm behind ``Tensor.norm``, a function."""
    import deepnum.functional
    import deepnum.functional.normalization  # noqa: F401

    assert callable(deepnum.functional.norm) and callable(dn.norm)
    np.testing.assert_allclose(dn.tensor([3.0, 4.0]).norm().item(), 5.0)


# ----------------------------------------------------------------------------- large inputs
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_inputs_processed_in_several_blocks(dtype):
    """More than 2**18 elements: the elementwise passes run in cache-sized blocks of rows (with an
    uneven last block); the statistics of batch norm span the blocks."""
    rng = np.random.default_rng(11)
    cases = [(nn.BatchNorm2d(4), torch.nn.BatchNorm2d(4), (9, 4, 100, 80)),
             (nn.LayerNorm(512), torch.nn.LayerNorm(512), (3, 200, 512)),
             (nn.GroupNorm(2, 6), torch.nn.GroupNorm(2, 6), (5, 6, 100, 100))]
    for ours, theirs, shape in cases:
        ours, theirs = twins(ours, theirs, dtype)
        step(ours, theirs, rng.standard_normal(shape) * 2 + 3, dtype)
        ours.eval()
        theirs.eval()
        step(ours, theirs, rng.standard_normal(shape), dtype)


def test_float32_accuracy_against_float64():
    """Two-pass statistics in float32 stay close to the float64 result, even with a large mean."""
    x = np.random.default_rng(12).standard_normal((64, 8, 16, 16)) * 0.1 + 100
    exact = F.batch_norm(dn.tensor(x), None, None, training=True).numpy()
    approx = F.batch_norm(dn.tensor(x.astype(np.float32)), None, None, training=True).numpy()
    torch_approx = TF.batch_norm(torch.tensor(x.astype(np.float32)), None, None, training=True).numpy()
    assert approx.dtype == np.float32
    assert np.abs(approx - exact).max() < 1.5e-4  # 2.1e-4 with a float32-accumulated mean
    assert np.abs(approx - exact).max() <= 2 * np.abs(torch_approx - exact).max()


# ----------------------------------------------------------------------------- second derivatives
def _tiny(*shape, seed=0):
    return dn.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def test_gradgradcheck_batch_norm_training():
    x, w, b = _tiny(3, 2, 2), _tiny(2, seed=1), _tiny(2, seed=2)
    assert dn.autograd.gradgradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [x, w, b])
    assert dn.autograd.gradgradcheck(lambda x: F.batch_norm(x, None, None, training=True), [_tiny(4, 2)])
    rm, rv = dn.tensor(np.zeros(2)), dn.tensor(np.ones(2))
    assert dn.autograd.gradgradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b), [x, w, b])


def test_gradgradcheck_layer_norm_and_group_norm():
    x, w, b = _tiny(2, 3), _tiny(3, seed=1), _tiny(3, seed=2)
    assert dn.autograd.gradgradcheck(lambda x, w, b: F.layer_norm(x, (3,), w, b), [x, w, b])
    assert dn.autograd.gradgradcheck(lambda x: F.layer_norm(x, (2, 2)), [_tiny(2, 2, 2)])
    x, w, b = _tiny(2, 4, 2), _tiny(4, seed=1), _tiny(4, seed=2)
    assert dn.autograd.gradgradcheck(lambda x, w, b: F.group_norm(x, 2, w, b), [x, w, b])


@pytest.mark.parametrize("which", ["batch", "layer", "group"])
def test_double_backward_matches_torch(which):
    """d/d(x, w) of Σ (dL/dx)² for L = Σ y·c: the gradient-penalty pattern (WGAN-GP)."""
    rng = np.random.default_rng(10)
    x, w, b, c = rng.standard_normal((4, 4, 3)), rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal(
        (4, 4, 3))
    call = {"batch": lambda f, x, w, b: f.batch_norm(x, None, None, w, b, training=True),
            "layer": lambda f, x, w, b: f.layer_norm(x.transpose(1, 2), (4,), w, b),
            "group": lambda f, x, w, b: f.group_norm(x, 2, w, b)}[which]
    results = []
    for lib, f, make in ((dn, F, dn.tensor), (torch, TF, torch.tensor)):
        xs = [make(a, requires_grad=True) for a in (x, w, b)]
        y = call(f, *xs)
        (gx,) = lib.autograd.grad((y * make(c if which != "layer" else c.transpose(0, 2, 1))).sum(), [xs[0]],
                                  create_graph=True)
        (gx * gx).sum().backward()
        results.append([t.grad for t in xs])
    for a, e in zip(*results, strict=True):
        assert_close(a, e, 1e-9, 1e-7, what="second derivative")
