"""Loss functions: parity with torch.nn.functional (values, dtypes, input and target gradients, in
float64 and float32, plus float64 gradcheck) for every reduction and option; second derivatives of
the fused cross-entropy; mathematical relations between the losses."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import deepnum as dn
from deepnum.nn import functional as F
from tests.helpers import Const, check_op

REDUCTIONS = ["none", "mean", "sum"]
RNG = np.random.default_rng(1234)
W5 = RNG.uniform(0.2, 2.0, 5)  # class weights for C = 5


def both(build):
    """The same loss written once for both libraries: ``build(functional_module)`` returns the callable."""
    return build(F), build(TF)


def targets(shape, n_classes, ignored=0, seed=0):
    t = np.random.default_rng(seed).integers(0, n_classes, shape)
    t.reshape(-1)[:ignored] = -100
    return t


# ----------------------------------------------------------------------------- cross-entropy
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignored", [0, 2])
def test_cross_entropy_class_indices(reduction, smoothing, weighted, ignored):
    t = targets((6,), 5, ignored)
    extra = (Const(W5),) if weighted else ()
    fn, torch_fn = both(lambda f: lambda x, t, *w: f.cross_entropy(
        x, t, *w, reduction=reduction, label_smoothing=smoothing))
    check_op(fn, (6, 5), Const(t), *extra, torch_fn=torch_fn, low=-3, high=3)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_k_dimensional(reduction, smoothing, weighted):
    t = targets((2, 3, 2), 5, ignored=3, seed=1)
    kwargs = {"weight": W5} if weighted else {}
    fn, torch_fn = both(lambda f: lambda x, t, *w: f.cross_entropy(
        x, t, *w, ignore_index=-100, reduction=reduction, label_smoothing=smoothing))
    check_op(fn, (2, 5, 3, 2), Const(t), *(Const(v) for v in kwargs.values()), torch_fn=torch_fn)


def test_cross_entropy_unbatched_and_custom_ignore_index():
    fn, torch_fn = both(lambda f: lambda x, t: f.cross_entropy(x, t, label_smoothing=0.1))
    check_op(fn, (7,), Const(np.array(3)), torch_fn=torch_fn)
    t = np.array([0, 4, 2, 4, 1])
    fn, torch_fn = both(lambda f: lambda x, t, w: f.cross_entropy(x, t, w, ignore_index=4, reduction="none"))
    check_op(fn, (5, 5), Const(t), Const(W5), torch_fn=torch_fn)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_probability_targets(reduction, smoothing, weighted):
    """Soft targets of the input's shape; the target gets a gradient too (as in distillation)."""
    extra = (Const(W5),) if weighted else ()
    fn, torch_fn = both(lambda f: lambda x, p, *w: f.cross_entropy(
        x, p, *w, reduction=reduction, label_smoothing=smoothing))
    check_op(fn, (4, 5), (4, 5), *extra, torch_fn=torch_fn, low=0.0, high=1.0)
    fn, torch_fn = both(lambda f: lambda x, p: f.cross_entropy(x, p.softmax(1), reduction=reduction))
    check_op(fn, (2, 5, 3), (2, 5, 3), torch_fn=torch_fn)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_all_ignored_gives_nan_and_zero_gradient(smoothing, weighted):
    x = RNG.standard_normal((3, 5))
    t = np.full(3, -100)
    dx, tx = dn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    w_dn, w_t = (dn.tensor(W5), torch.tensor(W5)) if weighted else (None, None)
    for fn_dn, fn_t, kw in ((F.cross_entropy, TF.cross_entropy, {"label_smoothing": smoothing}),
                            (F.nll_loss, TF.nll_loss, {})):
        dx.grad, tx.grad = None, None
        a = fn_dn(dx, dn.tensor(t), w_dn, **kw)
        b = fn_t(tx, torch.tensor(t), w_t, **kw)
        assert np.isnan(a.item()) and np.isnan(b.item())
        a.backward()
        b.backward()
        np.testing.assert_array_equal(dx.grad.numpy(), tx.grad.numpy())
        assert not np.any(dx.grad.numpy())
        assert F.cross_entropy(dx, dn.tensor(t), w_dn, reduction="sum").item() == 0


def test_zero_total_weight_matches_torch():
    """Non-ignored targets whose class weight is 0: 0/0 = nan, and nan gradients where PyTorch has them."""
    x = RNG.standard_normal((3, 4))
    w = np.array([0.0, 0.0, 1.0, 1.0])
    t = np.array([0, 1, -100])
    for name in ("cross_entropy", "nll_loss"):
        dx, tx = dn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        a = getattr(F, name)(dx, dn.tensor(t), dn.tensor(w))
        b = getattr(TF, name)(tx, torch.tensor(t), torch.tensor(w))
        a.backward()
        b.backward()
        assert np.isnan(a.item()) and np.isnan(b.item())
        np.testing.assert_array_equal(np.isnan(dx.grad.numpy()), np.isnan(tx.grad.numpy()))
        finite = ~np.isnan(tx.grad.numpy())
        np.testing.assert_array_equal(dx.grad.numpy()[finite], tx.grad.numpy()[finite])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
def test_cross_entropy_second_derivative_matches_torch(reduction, smoothing):
    """d/dx of (∂L/∂x · v), through the fused backward's own backward, equals torch's double backward;
    the gradient of ∂L/∂x with respect to the incoming gradient is checked by gradgradcheck."""
    x = RNG.standard_normal((4, 5, 2))
    t = targets((4, 2), 5, ignored=2, seed=3)
    v = RNG.standard_normal(x.shape)
    scale = RNG.standard_normal((4, 2) if reduction == "none" else ())
    results = []
    for lib, f in ((dn, F), (torch, TF)):
        xx = lib.tensor(x, requires_grad=True)
        loss = f.cross_entropy(xx, lib.tensor(t), lib.tensor(W5), reduction=reduction, label_smoothing=smoothing)
        if lib is dn:
            (g,) = dn.autograd.grad([(loss * dn.tensor(scale)).sum()], [xx], create_graph=True)
            (gg,) = dn.autograd.grad([(g * dn.tensor(v)).sum()], [xx])
        else:
            (g,) = torch.autograd.grad((loss * torch.tensor(scale)).sum(), xx, create_graph=True)
            (gg,) = torch.autograd.grad((g * torch.tensor(v)).sum(), xx)
        results.append((g.detach().numpy(), gg.numpy()))
    for ours, theirs in zip(*results, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    xs = dn.tensor(x[:2, :, :1], requires_grad=True)
    assert dn.autograd.gradgradcheck(
        lambda x: F.cross_entropy(x, dn.tensor(t[:2, :1]), dn.tensor(W5), reduction=reduction,
                                  label_smoothing=smoothing), [xs])


def test_cross_entropy_gradgradcheck_variants():
    x = dn.tensor(RNG.standard_normal((3, 4)), requires_grad=True)
    t = dn.tensor(np.array([1, -100, 3]))
    assert dn.autograd.gradgradcheck(lambda x: F.cross_entropy(x, t, reduction="none"), [x])
    assert dn.autograd.gradgradcheck(lambda x: F.cross_entropy(x, t, label_smoothing=0.3), [x])
    p = dn.tensor(RNG.uniform(0, 1, (3, 4)), requires_grad=True)
    assert dn.autograd.gradgradcheck(lambda x, p: F.cross_entropy(x, p, label_smoothing=0.1), [x, p])


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradient_of_the_gradient_wrt_the_incoming_gradient(name, reduction):
    """The fused backward is linear in the incoming gradient g; d(∂L/∂x · u)/dg equals torch's."""
    x = RNG.standard_normal((4, 5))
    t = np.array([0, -100, 4, 2])
    g = RNG.standard_normal((4,) if reduction == "none" else ())
    u = RNG.standard_normal((4, 5))
    out = []
    for lib, f in ((dn, F), (torch, TF)):
        xx, gg = lib.tensor(x, requires_grad=True), lib.tensor(g, requires_grad=True)
        loss = getattr(f, name)(xx, lib.tensor(t), lib.tensor(W5), reduction=reduction)
        if lib is dn:
            (gx,) = dn.autograd.grad([loss], [xx], [gg], create_graph=True)
            (ggg,) = dn.autograd.grad([(gx * dn.tensor(u)).sum()], [gg])
        else:
            (gx,) = torch.autograd.grad(loss, xx, gg, create_graph=True)
            (ggg,) = torch.autograd.grad((gx * torch.tensor(u)).sum(), gg)
        out.append(ggg.numpy())
    np.testing.assert_allclose(out[0], out[1], rtol=1e-10, atol=1e-13)


# ----------------------------------------------------------------------------- nll
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(6, 5), (2, 5, 2, 3), (5,)])
def test_nll_loss(reduction, weighted, shape):
    tshape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    t = targets(tshape, 5, ignored=2 if tshape else 0, seed=4)
    extra = (Const(W5),) if weighted else ()
    fn, torch_fn = both(lambda f: lambda x, t, *w: f.nll_loss(x, t, *w, reduction=reduction))
    check_op(fn, shape, Const(t), *extra, torch_fn=torch_fn, low=-4, high=0)


def test_cross_entropy_equals_nll_of_log_softmax():
    x = dn.tensor(RNG.standard_normal((8, 6, 3)), requires_grad=True)
    t = dn.tensor(targets((8, 3), 6, ignored=4, seed=5))
    w = dn.tensor(RNG.uniform(0.5, 2, 6))
    for reduction in REDUCTIONS:
        a = F.cross_entropy(x, t, w, reduction=reduction)
        b = F.nll_loss(F.log_softmax(x, 1), t, w, reduction=reduction)
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-12)
        (ga,) = dn.autograd.grad([a.sum()], [x])
        (gb,) = dn.autograd.grad([b.sum()], [x])
        np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-10, atol=1e-14)


# ----------------------------------------------------------------------------- binary cross-entropy
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight", [None, (5,), (3, 1)])
def test_binary_cross_entropy(reduction, weight):
    extra = (Const(RNG.uniform(0.2, 2, weight)),) if weight else ()
    fn, torch_fn = both(lambda f: lambda x, y, *w: f.binary_cross_entropy(x, y, *w, reduction=reduction))
    check_op(fn, (3, 5), (3, 5), *extra, torch_fn=torch_fn, low=0.05, high=0.95)


def test_binary_cross_entropy_at_zero_and_one_is_clamped():
    x = np.array([0.0, 1.0, 0.0, 1.0, 1e-60])
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.7])
    for dtype in (np.float64, np.float32):
        a = F.binary_cross_entropy(dn.tensor(x.astype(dtype)), dn.tensor(y.astype(dtype)), reduction="none")
        b = TF.binary_cross_entropy(torch.tensor(x.astype(dtype)), torch.tensor(y.astype(dtype)), reduction="none")
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
        assert a.dtype == dtype and np.all(np.isfinite(a.numpy()))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("pos_weight", [None, (5,), (3, 5)])
def test_binary_cross_entropy_with_logits(reduction, weighted, pos_weight):
    extra = [Const(RNG.uniform(0.2, 2, (5,)))] if weighted else [None]
    if pos_weight:
        extra.append(Const(RNG.uniform(0.5, 3, pos_weight)))
    fn, torch_fn = both(lambda f: lambda x, y, w=None, p=None: f.binary_cross_entropy_with_logits(
        x, y, w, reduction=reduction, pos_weight=p))
    check_op(fn, (3, 5), Const(RNG.uniform(0, 1, (3, 5))), *extra, torch_fn=torch_fn, low=-4, high=4)
    check_op(fn, (3, 5), (3, 5), *extra, torch_fn=torch_fn, low=0, high=1)  # target gradient


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("pos_weight", [None, 2.5])
def test_binary_cross_entropy_with_logits_extreme_logits(dtype, pos_weight):
    x = np.array([-100.0, 100.0, -100.0, 100.0, -40.0, 40.0, 0.0], dtype=dtype)
    y = np.array([0.0, 1.0, 1.0, 0.0, 0.3, 0.9, 1.0], dtype=dtype)
    pw_dn = None if pos_weight is None else dn.tensor(np.full(7, pos_weight, dtype=dtype))
    pw_t = None if pos_weight is None else torch.tensor(np.full(7, pos_weight, dtype=dtype))
    dx, tx = dn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    a = F.binary_cross_entropy_with_logits(dx, dn.tensor(y), reduction="none", pos_weight=pw_dn)
    b = TF.binary_cross_entropy_with_logits(tx, torch.tensor(y), reduction="none", pos_weight=pw_t)
    a.sum().backward()
    b.sum().backward()
    for ours, theirs in ((a, b), (dx.grad, tx.grad)):
        ours = ours.detach().numpy()
        assert np.all(np.isfinite(ours)) and ours.dtype == dtype
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-6, atol=1e-6)


def test_binary_and_categorical_cross_entropy_relations():
    """Two classes: softmax CE on logits (a, b) is BCE-with-logits on b - a. Any C: the summed BCE of
    softmax probabilities against one-hot targets is CE plus the negatives' terms -log(1 - p_c)."""
    x = RNG.standard_normal((10, 2))
    t = RNG.integers(0, 2, 10)
    ce = F.cross_entropy(dn.tensor(x), dn.tensor(t), reduction="none")
    bce = F.binary_cross_entropy_with_logits(dn.tensor(x[:, 1] - x[:, 0]), dn.tensor(t.astype(float)), reduction="none")
    np.testing.assert_allclose(ce.numpy(), bce.numpy(), rtol=1e-12)
    x = dn.tensor(RNG.standard_normal((10, 6)))
    t = RNG.integers(0, 6, 10)
    onehot = np.eye(6)[t]
    p = F.softmax(x, 1)
    bce = F.binary_cross_entropy(p, dn.tensor(onehot), reduction="sum").item()
    negatives = -np.sum(np.log1p(-p.numpy()) * (1 - onehot))
    ce = F.cross_entropy(x, dn.tensor(t), reduction="sum").item()
    np.testing.assert_allclose(bce, ce + negatives, rtol=1e-12)
    assert bce > ce
    np.testing.assert_allclose(F.cross_entropy(x, dn.tensor(onehot)).item(), ce / 10, rtol=1e-12)


# ----------------------------------------------------------------------------- KL divergence
@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")  # torch's notice about a future change
@pytest.mark.parametrize("reduction", REDUCTIONS + ["batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target):
    fn, torch_fn = both(lambda f: lambda x, y: f.kl_div(
        x.log_softmax(-1), y if log_target else y * y + 0.05, reduction=reduction, log_target=log_target))
    check_op(fn, (3, 4), (3, 4), torch_fn=torch_fn)
    check_op(fn, (4,), (4,), torch_fn=torch_fn)


def test_kl_div_zero_target_and_broadcast():
    x = np.log(np.array([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]]))
    y = np.array([0.0, 0.6, 0.4])
    fn, torch_fn = both(lambda f: lambda x, y: f.kl_div(x, y, reduction="sum"))
    check_op(fn, Const(x), Const(y), torch_fn=torch_fn, grad=False)
    dx = dn.tensor(x, requires_grad=True)
    F.kl_div(dx, dn.tensor(y), reduction="batchmean").backward()
    np.testing.assert_allclose(dx.grad.numpy(), -np.broadcast_to(y, x.shape) / 2)


# ----------------------------------------------------------------------------- regression losses
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_mse_and_l1(reduction, name):
    fn, torch_fn = both(lambda f: lambda x, y: getattr(f, name)(x, y, reduction=reduction))
    check_op(fn, (3, 4), (3, 4), torch_fn=torch_fn)
    fn, torch_fn = both(lambda f: lambda x, y, w: getattr(f, name)(x, y, reduction=reduction, weight=w))
    check_op(fn, (3, 4), (3, 4), Const(RNG.uniform(0.1, 2, (3, 4))), torch_fn=torch_fn)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 2.5])
def test_smooth_l1(reduction, beta):
    fn, torch_fn = both(lambda f: lambda x, y: f.smooth_l1_loss(x, y, reduction=reduction, beta=beta))
    check_op(fn, (4, 5), (4, 5), torch_fn=torch_fn, low=-3, high=3)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("delta", [0.3, 1.0, 2.5])
def test_huber(reduction, delta):
    fn, torch_fn = both(lambda f: lambda x, y: f.huber_loss(x, y, reduction=reduction, delta=delta))
    check_op(fn, (4, 5), (4, 5), torch_fn=torch_fn, low=-3, high=3)
    fn, torch_fn = both(lambda f: lambda x, y, w: f.huber_loss(x, y, reduction=reduction, delta=delta, weight=w))
    check_op(fn, (4, 5), (4, 5), Const(RNG.uniform(0.1, 2, (4, 5))), torch_fn=torch_fn, low=-3, high=3)


def test_huber_is_delta_times_smooth_l1():
    x, y = dn.tensor(RNG.standard_normal(50) * 3), dn.tensor(RNG.standard_normal(50))
    for delta in (0.5, 2.0):
        np.testing.assert_allclose(F.huber_loss(x, y, delta=delta).item(),
                                   delta * F.smooth_l1_loss(x, y, beta=delta).item(), rtol=1e-12)


def test_legacy_size_average_and_reduce():
    x, y = dn.tensor(RNG.standard_normal(6)), dn.tensor(RNG.standard_normal(6))
    tx, ty = torch.tensor(x.numpy()), torch.tensor(y.numpy())
    for size_average, reduce in ((False, None), (None, False), (True, True)):
        with pytest.warns(UserWarning, match="deprecated"):
            a = F.mse_loss(x, y, size_average=size_average, reduce=reduce)
        with pytest.warns(UserWarning):
            b = TF.mse_loss(tx, ty, size_average=size_average, reduce=reduce)
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)


# ----------------------------------------------------------------------------- errors
def test_errors_name_the_loss_and_the_shapes():
    x = dn.tensor(RNG.standard_normal((8, 10)))
    with pytest.raises(ValueError, match=r"cross_entropy: expected target \(8,\) of class indices in \[0, 10\) "
                                         r"or probabilities \(8, 10\), got \(8, 3\)$"):
        F.cross_entropy(x, dn.tensor(np.zeros((8, 3), dtype=np.int64)))
    with pytest.raises(IndexError, match=r"cross_entropy: target 10 is out of bounds.*\[0, 10\)"):
        F.cross_entropy(x, dn.tensor(np.full(8, 10)))
    with pytest.raises(IndexError, match=r"nll_loss: target -3 is out of bounds"):
        F.nll_loss(x, dn.tensor(np.full(8, -3)))
    with pytest.raises(TypeError, match=r"nll_loss: expected target \(8,\) of class indices .* integer tensor"):
        F.nll_loss(x, dn.tensor(np.zeros(8)))
    with pytest.raises(ValueError, match=r"cross_entropy: expected weight of shape \(10,\), got \(3,\)"):
        F.cross_entropy(x, dn.tensor(np.zeros(8, dtype=np.int64)), weight=dn.tensor(np.ones(3)))
    with pytest.raises(ValueError, match=r"mse_loss: expected target of the input's shape \(8, 10\), got \(10,\)"):
        F.mse_loss(x, dn.tensor(np.zeros(10)))
    with pytest.raises(ValueError, match=r"mse_loss: reduction must be one of 'none', 'mean', 'sum', got 'avg'"):
        F.mse_loss(x, x, reduction="avg")
    with pytest.raises(RuntimeError, match=r"binary_cross_entropy: all elements of input should be between 0 and 1"):
        F.binary_cross_entropy(x, x)
    with pytest.raises(RuntimeError, match="pos_weight is not differentiable"):
        F.binary_cross_entropy_with_logits(x, x, pos_weight=dn.ones(10, requires_grad=True))
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        F.cross_entropy(x, dn.tensor(np.zeros(8, dtype=np.int64)), label_smoothing=1.5)
    with pytest.raises(TypeError, match="floating point input"):
        F.l1_loss(dn.tensor(np.zeros(3, dtype=np.int64)), dn.tensor(np.zeros(3)))


def test_integer_target_dtypes_agree():
    """Class indices in any integer dtype (PyTorch takes int64 and uint8) give the int64 result."""
    x = dn.tensor(RNG.standard_normal((4, 3)).astype(np.float32))
    t = np.array([0, 1, 2, 1])
    expected = F.cross_entropy(x, dn.tensor(t), label_smoothing=0.1).item()
    for dtype in (np.uint8, np.int32, np.int16):
        out = F.cross_entropy(x, dn.tensor(t.astype(dtype)), label_smoothing=0.1)
        assert out.dtype == np.float32 and out.item() == expected
        assert F.nll_loss(x, dn.tensor(t.astype(dtype)), ignore_index=1).item() == \
            F.nll_loss(x, dn.tensor(t), ignore_index=1).item()
