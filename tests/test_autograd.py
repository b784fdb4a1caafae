"""The autograd engine against PyTorch doing the same thing: accumulation, graph retention, higher
order gradients, ``autograd.grad``, grad modes, hooks, in-place rules and custom ``Function``s."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import deepnum as dn
from deepnum.autograd import Function, GradcheckError
from tests.helpers import assert_close

TOL = {"atol": 1e-10, "rtol": 1e-8}


@pytest.fixture(autouse=True)
def _grad_mode_restored():
    """A failing grad-mode test must not leave recording switched off for the tests after it."""
    yield
    dn.set_grad_enabled(True)


def twins(values, dtype=np.float64, requires_grad=True):
    """The same leaf values in deepnum and torch."""
    array = np.asarray(values, dtype=dtype)
    return dn.tensor(array, requires_grad=requires_grad), torch.tensor(array, requires_grad=requires_grad)


# ---------------------------------------------------------------- accumulation and graph shapes
def test_tensor_used_twice_sums_both_paths():
    x, xt = twins([1.0, -2.0, 0.5])
    (x * x + x).sum().backward()
    (xt * xt + xt).sum().backward()
    assert_close(x.grad, xt.grad, **TOL, what="x*x + x")


def test_diamond_graph():
    x, xt = twins([0.3, -1.2])
    for t in (x, xt):
        a = t * 3
        b, c = a.exp(), a.sin()  # two branches from a, joined again in d
        d = b * c + a
        d.sum().backward()
    assert_close(x.grad, xt.grad, **TOL, what="diamond")


def test_deep_chain_and_reuse_across_layers():
    x, xt = twins(np.linspace(-1, 1, 6).reshape(2, 3))
    w, wt = twins(np.linspace(0.5, -0.5, 12).reshape(3, 4))
    for a, b in ((x, w), (xt, wt)):
        h = a @ b
        h = h.tanh() * h + (h @ b.T @ b).sigmoid()
        (h * h).mean().backward()
    assert_close(x.grad, xt.grad, **TOL, what="x")
    assert_close(w.grad, wt.grad, **TOL, what="w")


def test_grad_accumulates_across_backward_calls():
    x, xt = twins([1.0, 2.0])
    for _ in range(2):
        (x.exp() * x).sum().backward()
        (xt.exp() * xt).sum().backward()
    assert_close(x.grad, xt.grad, **TOL, what="two backward calls")
    assert_close(x.grad, 2 * (np.exp([1.0, 2.0]) * (1 + np.array([1.0, 2.0]))), **TOL, what="closed form")


def test_backward_on_leaf_itself():
    x, xt = twins(3.0)
    x.backward()
    xt.backward()
    assert_close(x.grad, xt.grad, **TOL, what="leaf")


# ---------------------------------------------------------------- retain_graph
def test_retain_graph_allows_second_backward():
    x, xt = twins([0.5, 1.5])
    y, yt = (x.exp() * x).sum(), (xt.exp() * xt).sum()
    y.backward(retain_graph=True)
    yt.backward(retain_graph=True)
    y.backward()
    yt.backward()
    assert_close(x.grad, xt.grad, **TOL, what="retain_graph")


def test_second_backward_through_freed_graph_raises():
    x, xt = twins([0.5, 1.5])
    y, yt = (x.exp() * x).sum(), (xt.exp() * xt).sum()
    y.backward()
    yt.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        yt.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_freed_shared_subgraph_raises():
    x = dn.tensor([1.0, 2.0], requires_grad=True)
    h = x.sin()
    h.sum().backward()  # frees sin's node, which the next loss also goes through
    with pytest.raises(RuntimeError, match="retain_graph"):
        (h * 2).sum().backward()


# ---------------------------------------------------------------- higher order
def test_third_derivative_of_x4():
    x, xt = twins(1.5)
    derivs, derivs_t = [], []
    y, yt = x ** 4, xt ** 4
    for _ in range(3):
        (y,) = dn.autograd.grad(y, x, create_graph=True)
        (yt,) = torch.autograd.grad(yt, xt, create_graph=True)
        derivs.append(y)
        derivs_t.append(yt)
    for order, (a, b) in enumerate(zip(derivs, derivs_t), start=1):
        assert_close(a, b, **TOL, what=f"derivative {order}")
    assert_close(derivs[2], 24 * 1.5, **TOL, what="24x")
    assert derivs[2].grad_fn is not None


def test_gradient_of_tanh_gradient():
    x, xt = twins([0.3, -0.7, 1.1])
    (g,) = dn.autograd.grad(x.tanh().sum(), x, create_graph=True)
    (gt,) = torch.autograd.grad(xt.tanh().sum(), xt, create_graph=True)
    assert_close(g, gt, **TOL, what="tanh'")
    (g * g).sum().backward()
    (gt * gt).sum().backward()
    assert_close(x.grad, xt.grad, **TOL, what="d/dx (tanh')^2")


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_backward_create_graph_gives_differentiable_grad():
    x, xt = twins([0.4, 0.9])
    (x ** 3).sum().backward(create_graph=True)
    (xt ** 3).sum().backward(create_graph=True)
    assert x.grad.grad_fn is not None and xt.grad.grad_fn is not None
    (gg,) = dn.autograd.grad(x.grad.sum(), x)
    (ggt,) = torch.autograd.grad(xt.grad.sum(), xt)
    assert_close(gg, ggt, **TOL, what="6x")


def test_mixed_second_derivative():
    x, xt = twins([0.2, 0.5])
    y, yt = twins([1.5, -0.5])
    (gx,) = dn.autograd.grad((x * y.exp() * x).sum(), x, create_graph=True)
    (gxt,) = torch.autograd.grad((xt * yt.exp() * xt).sum(), xt, create_graph=True)
    (gxy,) = dn.autograd.grad(gx.sum(), y)
    (gxyt,) = torch.autograd.grad(gxt.sum(), yt)
    assert_close(gxy, gxyt, **TOL, what="d2/dxdy")


# ---------------------------------------------------------------- autograd.grad
def test_grad_non_leaf_and_leaf_inputs():
    x, xt = twins([1.0, -2.0, 3.0])
    h, ht = x * 2, xt * 2
    z, zt = (h ** 2 * x).sum(), (ht ** 2 * xt).sum()
    got = dn.autograd.grad(z, [h, x])
    want = torch.autograd.grad(zt, [ht, xt])
    for a, b in zip(got, want):
        assert_close(a, b, **TOL, what="grad")
    assert x.grad is None and h.grad is None  # grad() returns, never accumulates


def test_grad_multiple_outputs_with_grad_outputs():
    x, xt = twins([[1.0, 2.0], [0.5, -1.0]])
    w, wt = twins([0.3, -0.4])
    gos = [np.array([[1.0, -1.0], [2.0, 0.5]]), np.array([3.0, -2.0])]
    got = dn.autograd.grad([x * w, (x.exp() * w).sum(0)], [x, w], [dn.tensor(g) for g in gos])
    want = torch.autograd.grad([xt * wt, (xt.exp() * wt).sum(0)], [xt, wt], [torch.tensor(g) for g in gos])
    for a, b in zip(got, want):
        assert_close(a, b, **TOL, what="multi-output grad")


def test_grad_multiple_scalar_outputs_sum():
    x, xt = twins([1.0, 2.0])
    (g,) = dn.autograd.grad([x.sum(), (x * x).sum()], x)
    (gt,) = torch.autograd.grad([xt.sum(), (xt * xt).sum()], xt)
    assert_close(g, gt, **TOL, what="sum of outputs")


def test_grad_unused_input():
    a, at = twins(1.0)
    b, bt = twins(2.0)
    with pytest.raises(RuntimeError, match="allow_unused"):
        torch.autograd.grad(at * 2, [at, bt])
    with pytest.raises(RuntimeError, match="allow_unused"):
        dn.autograd.grad(a * 2, [a, b])
    ga, gb = dn.autograd.grad(a * 2, [a, b], allow_unused=True)
    gat, gbt = torch.autograd.grad(at * 2, [at, bt], allow_unused=True)
    assert gb is None and gbt is None
    assert_close(ga, gat, **TOL, what="used input")


def test_grad_retain_graph_and_create_graph_defaults():
    x = dn.tensor([1.0, 2.0], dtype=dn.float64, requires_grad=True)
    y = (x.sin() * x).sum()
    g1 = dn.autograd.grad(y, x, retain_graph=True)
    g2 = dn.autograd.grad(y, x)  # the graph survived the first call
    assert_close(g1[0], g2[0], **TOL, what="same gradient twice")
    assert g2[0].grad_fn is None and not g2[0].requires_grad
    with pytest.raises(RuntimeError, match="retain_graph"):
        dn.autograd.grad(y, x)
    z = (x.sin() * x).sum()
    (gz,) = dn.autograd.grad(z, x, create_graph=True)  # retain_graph defaults to create_graph
    dn.autograd.grad(z, x)
    assert gz.requires_grad


def test_grad_input_must_require_grad():
    x = dn.tensor([1.0, 2.0])
    w = dn.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="does not require grad"):
        dn.autograd.grad((x * w).sum(), x)


def test_backward_inputs_restricts_accumulation():
    a, at = twins(1.5)
    b, bt = twins(2.0)
    h, ht = a * b, at * bt
    (h * a).backward(inputs=[a])
    (ht * at).backward(inputs=[at])
    assert_close(a.grad, at.grad, **TOL, what="a")
    assert b.grad is None and bt.grad is None


def test_backward_inputs_non_leaf():
    x, xt = twins([1.0, 3.0])
    h, ht = x.exp(), xt.exp()
    (h * h).sum().backward(inputs=[h])
    (ht * ht).sum().backward(inputs=[ht])
    assert_close(h.grad, ht.grad, **TOL, what="non-leaf input")
    assert x.grad is None and xt.grad is None


# ---------------------------------------------------------------- grad modes
def test_no_grad_context_and_decorator():
    x = dn.tensor([1.0, 2.0], requires_grad=True)
    assert dn.is_grad_enabled()
    with dn.no_grad():
        assert not dn.is_grad_enabled()
        y = x * 2
    assert dn.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf

    @dn.no_grad()
    def f(t):
        return t * 2, dn.is_grad_enabled()

    @dn.no_grad
    def g(t):
        return t * 3

    out, mode = f(x)
    assert not out.requires_grad and not mode and not g(x).requires_grad
    assert f.__name__ == "f" and g.__name__ == "g"
    assert dn.is_grad_enabled()


def test_enable_grad_inside_no_grad():
    x = dn.tensor([1.0, 2.0], requires_grad=True)
    with dn.no_grad():
        with dn.enable_grad():
            assert dn.is_grad_enabled()
            y = x * 2
        assert not dn.is_grad_enabled()
        z = x * 2
    assert y.requires_grad and y.grad_fn is not None
    assert not z.requires_grad

    @dn.enable_grad()
    def f(t):
        return t * 2

    with dn.no_grad():
        assert f(x).requires_grad


def test_set_grad_enabled_forms():
    x = dn.tensor([1.0, 2.0], requires_grad=True)
    try:
        dn.set_grad_enabled(False)  # called as a function it switches immediately, as torch's
        assert not dn.is_grad_enabled() and not (x * 2).requires_grad
    finally:
        dn.set_grad_enabled(True)
    assert dn.is_grad_enabled()
    with dn.set_grad_enabled(False):
        assert not (x * 2).requires_grad
        with dn.set_grad_enabled(True):
            assert (x * 2).requires_grad
    assert dn.is_grad_enabled()

    @dn.set_grad_enabled(False)
    def f(t):
        return t * 2

    assert dn.is_grad_enabled()  # decorating does not switch the mode outside the function
    assert not f(x).requires_grad
    assert dn.is_grad_enabled()


def test_no_grad_restores_mode_after_exception():
    with pytest.raises(ValueError), dn.no_grad():
        raise ValueError("boom")
    assert dn.is_grad_enabled()


# ---------------------------------------------------------------- hooks and retain_grad
def test_non_leaf_hook_modifies_upstream_gradient():
    x, xt = twins([1.0, 2.0])
    h, ht = x * 2, xt * 2
    remove = h.register_hook(lambda g: g * 10)
    ht.register_hook(lambda g: g * 10)
    (h * h).sum().backward(retain_graph=True)
    (ht * ht).sum().backward()
    assert_close(x.grad, xt.grad, **TOL, what="hooked")
    assert_close(x.grad, 10 * 8 * np.array([1.0, 2.0]), **TOL, what="80x")
    remove()
    x.grad = None
    (h * h).sum().backward()
    assert_close(x.grad, 8 * np.array([1.0, 2.0]), **TOL, what="after removal")


def test_hook_returning_none_sees_gradient_and_leaves_it():
    x, xt = twins([1.0, -2.0])
    seen, seen_t = [], []
    h, ht = x.sin(), xt.sin()
    h.register_hook(lambda g: seen.append(g))
    ht.register_hook(lambda g: seen_t.append(g.clone()))
    (h * x).sum().backward()
    (ht * xt).sum().backward()
    assert len(seen) == 1
    assert_close(seen[0], seen_t[0], **TOL, what="hook argument")
    assert_close(x.grad, xt.grad, **TOL, what="unchanged gradient")


def test_leaf_hooks_chain_in_order():
    x, xt = twins([1.0, 2.0])
    for t in (x, xt):
        t.register_hook(lambda g: g + 1)
        t.register_hook(lambda g: g * 3)
        (t * 5).sum().backward()
    assert_close(x.grad, xt.grad, **TOL, what="(5 + 1) * 3")
    assert_close(x.grad, [18.0, 18.0], **TOL, what="18")


def test_hook_requires_grad():
    with pytest.raises(RuntimeError):
        torch.tensor([1.0]).register_hook(lambda g: g)
    with pytest.raises(RuntimeError, match="require"):
        dn.tensor([1.0]).register_hook(lambda g: g)


def test_retain_grad_on_non_leaf():
    x, xt = twins([1.0, 2.0, -1.0])
    h, ht = x.exp(), xt.exp()
    h2, h2t = h * 3, ht * 3
    h.retain_grad()
    ht.retain_grad()
    assert h.retains_grad and not h2.retains_grad
    (h2 * h).sum().backward()
    (h2t * ht).sum().backward()
    assert_close(h.grad, ht.grad, **TOL, what="retained grad")
    assert h2.grad is None and h.grad.grad_fn is None
    assert_close(x.grad, xt.grad, **TOL, what="leaf")


def test_retain_grad_sees_hooked_gradient():
    x, xt = twins([1.0, 2.0])
    h, ht = x * 2, xt * 2
    for t in (h, ht):
        t.retain_grad()
        t.register_hook(lambda g: g * 0.5)
    h.sum().backward()
    ht.sum().backward()
    assert_close(h.grad, ht.grad, **TOL, what="retain_grad after hook")


# ---------------------------------------------------------------- leaves, detach, requires_grad
def test_detach_shares_data_without_grad():
    x = dn.tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    d.add_(1)  # allowed: d does not require grad; the change shows in x, as in torch
    assert_close(x.detach(), [2.0, 3.0], **TOL, what="shared data")
    y = (x * 2).detach()
    assert y.grad_fn is None and not y.requires_grad


def test_requires_grad_and_is_leaf():
    x = dn.tensor([1.0, 2.0])
    assert x.is_leaf and not x.requires_grad and x.grad_fn is None
    assert x.requires_grad_() is x and x.requires_grad and x.is_leaf
    y = x * 2
    assert not y.is_leaf and y.grad_fn is not None and y.requires_grad
    assert (dn.tensor([1.0]) * 2).is_leaf  # no grad needed: the result is a leaf, as in torch
    with pytest.raises(RuntimeError):
        torch.tensor([1.0], requires_grad=True).mul(2).requires_grad_(False)
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad_(False)
    x.requires_grad_(False)
    assert not x.requires_grad


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(RuntimeError):
        torch.tensor([1, 2]).requires_grad_()
    with pytest.raises(RuntimeError, match="floating point"):
        dn.tensor([1, 2]).requires_grad_()
    with pytest.raises(RuntimeError, match="floating point"):
        dn.tensor([1, 2], requires_grad=True)


def test_integer_outputs_carry_no_gradient():
    x = dn.tensor([1.0, 3.0, 2.0], requires_grad=True)
    assert not x.argmax().requires_grad
    assert not (x > 1).requires_grad


# ---------------------------------------------------------------- in-place ops
def test_inplace_updates_under_no_grad_like_an_optimizer():
    w, wt = twins([1.0, -2.0, 3.0])
    for t, lib in ((w, dn), (wt, torch)):
        with lib.no_grad():
            t.add_(lib.tensor([0.5, 0.5, 0.5], dtype=t.dtype), alpha=2)
            t.mul_(2)
            t.clamp_(-3.0, 7.0)
            t[0] = 4.0
            t[1:] = lib.tensor([0.25, -0.25], dtype=t.dtype)
        assert t.requires_grad and t.is_leaf
    assert_close(w.detach(), wt, **TOL, what="updated weights")
    (w * w).sum().backward()  # still a usable leaf afterwards
    (wt * wt).sum().backward()
    assert_close(w.grad, wt.grad, **TOL, what="grad after update")


def test_inplace_fill_zero_copy_under_no_grad():
    w = dn.tensor([1.0, 2.0], requires_grad=True)
    with dn.no_grad():
        w.fill_(3.0)
        assert w.tolist() == [3.0, 3.0]
        w.copy_(dn.tensor([5.0, 6.0]))
        assert w.tolist() == [5.0, 6.0]
        w.copy_(np.array([7.0, 8.0]))
        assert w.tolist() == [7.0, 8.0]
        w.zero_()
        assert w.tolist() == [0.0, 0.0]
        w.clamp_(min=1.0)
        assert w.tolist() == [1.0, 1.0]
    assert w.dtype == dn.float32


@pytest.mark.parametrize("op", [
    lambda t: t.add_(1), lambda t: t.mul_(2), lambda t: t.zero_(), lambda t: t.fill_(1.0),
    lambda t: t.copy_(t.detach() * 2), lambda t: t.clamp_(0, 1), lambda t: t.__setitem__(0, 5.0),
])
def test_inplace_on_leaf_requiring_grad_raises_in_grad_mode(op):
    wt = torch.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        op(wt)
    w = dn.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        op(w)
    assert w.tolist() == [1.0, 2.0]


def test_inplace_on_graph_tensor_raises_in_grad_mode():
    # deepnum keeps in-place ops outside the graph: with grad mode on, a tensor in the graph refuses them
    h = dn.tensor([1.0, 2.0], requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="in-place"):
        h.mul_(2)


def test_inplace_allowed_on_tensors_without_grad():
    c = dn.tensor([1.0, 2.0])
    c.add_(1).mul_(3)
    assert c.tolist() == [6.0, 9.0]


def test_modified_saved_input_raises_at_backward():
    x, xt = twins([0.5, 1.0])
    a, at = x * 1, xt * 1
    b, bt = a.sin(), at.sin()  # sin saves its input
    with torch.no_grad():
        at.add_(1)
    with pytest.raises(RuntimeError, match="inplace"):
        bt.sum().backward()
    with dn.no_grad():
        a.add_(1)
    with pytest.raises(RuntimeError, match="in place"):
        b.sum().backward()


def test_modified_saved_output_raises_at_backward():
    x, xt = twins([0.5, 1.0])
    y, yt = x.exp(), xt.exp()  # exp saves its output; here no later op holds y to notice the change
    with torch.no_grad():
        yt.mul_(2)
    with pytest.raises(RuntimeError, match="inplace"):
        yt.backward(torch.ones(2, dtype=torch.float64))
    with dn.no_grad():
        y.mul_(2)
    with pytest.raises(RuntimeError, match="in place"):
        y.backward(dn.ones(2, dtype=dn.float64))


def test_modified_constant_operand_raises_at_backward():
    x, xt = twins([0.5, 1.0])
    c, ct = twins([2.0, 3.0], requires_grad=False)
    y, yt = (x * c).sum(), (xt * ct).sum()  # mul saves the constant to form x's gradient
    c.mul_(2)
    ct.mul_(2)
    with pytest.raises(RuntimeError, match="inplace"):
        yt.backward()
    with pytest.raises(RuntimeError, match="in place"):
        y.backward()


def test_modifying_an_input_that_backward_does_not_read_is_allowed():
    """add, reshape and sum need only shapes in backward, so (as in torch) changing their input in
    place afterwards does not invalidate the graph."""
    x, xt = twins([0.5, 1.0])
    a, at = x * 1, xt * 1
    b, bt = (a + 1).reshape(2, 1).sum(), (at + 1).reshape(2, 1).sum()
    with dn.no_grad():
        a.add_(1)
    with torch.no_grad():
        at.add_(1)
    b.backward()
    bt.backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy())
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])


# ---------------------------------------------------------------- gradient arguments and dtypes
def test_backward_non_scalar_needs_gradient():
    x, xt = twins([1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match="scalar"):
        (xt * 2).backward()
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()
    g = np.array([1.0, -1.0, 0.5])
    (x * x).backward(gradient=dn.tensor(g))
    (xt * xt).backward(gradient=torch.tensor(g))
    assert_close(x.grad, xt.grad, **TOL, what="vector-Jacobian product")
    with pytest.raises(RuntimeError, match="shape"):
        (x * x).backward(gradient=dn.ones(2, dtype=dn.float64))


def test_backward_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        dn.tensor([1.0]).sum().backward()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_dtype_matches_tensor(dtype):
    x, xt = twins([0.5, 1.5, -2.0], dtype=dtype)
    (x.tanh() * x.exp() + 0.5 * x).sum().backward()
    (xt.tanh() * xt.exp() + 0.5 * xt).sum().backward()
    assert x.grad.dtype == dtype
    assert_close(x.grad, xt.grad, atol=1e-6, rtol=1e-5, what=str(dtype))


def test_float64_seed_keeps_float32_gradient():
    x, xt = twins([1.0, 2.0], dtype=np.float32)
    (x * 2).backward(dn.ones(2, dtype=dn.float64))
    (xt * 2).backward(torch.ones(2, dtype=torch.float64))
    assert x.grad.dtype == dn.float32 and xt.grad.dtype == torch.float32
    (g,) = dn.autograd.grad(x * 3, x, dn.ones(2, dtype=dn.float64))
    assert g.dtype == dn.float32


# ---------------------------------------------------------------- custom Functions and gradcheck
class Cube(Function):
    """y = x³, dy/dx = 3x² (written with Tensor ops, so it can be differentiated again)."""

    def forward(self, x):
        return x ** 3

    def backward(self, gy):
        (x,) = self.inputs
        return gy * 3 * x * x


class WrongCube(Cube):
    """A deliberately wrong derivative (2x² instead of 3x²): gradcheck must catch it."""

    def backward(self, gy):
        (x,) = self.inputs
        return gy * 2 * x * x


class ScaledProduct(Function):
    """z = a·b·scale with a parameter set in ``__init__``; skips gradients nobody needs."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def forward(self, a, b):
        return a * b * self.scale

    def backward(self, gz):
        a, b = self.inputs
        ga = gz * b * self.scale if self.needs_input_grad[0] else None
        gb = gz * a * self.scale if self.needs_input_grad[1] else None
        return ga, gb


class BadShape(Function):
    """Returns a gradient of the wrong shape."""

    def forward(self, x):
        return x.sum()

    def backward(self, gy):
        return gy


def _x(values):
    return dn.tensor(values, dtype=dn.float64, requires_grad=True)


def test_custom_function_forward_backward():
    x = _x([1.0, -2.0, 0.5])
    y = Cube()(x)
    assert isinstance(y, dn.Tensor) and repr(y.grad_fn) == "<CubeBackward>"
    y.sum().backward()
    assert_close(x.grad, 3 * np.array([1.0, -2.0, 0.5]) ** 2, **TOL, what="3x^2")


def test_gradcheck_passes_correct_function():
    assert dn.autograd.gradcheck(lambda t: Cube()(t), [_x([0.3, -1.1, 2.0])])
    assert dn.autograd.gradgradcheck(lambda t: Cube()(t), [_x([0.3, -1.1])])
    a, b = _x([[0.5, 1.0], [2.0, -1.0]]), _x([[1.5, -0.5], [0.7, 1.2]])
    assert dn.autograd.gradcheck(lambda p, q: ScaledProduct(2.5)(p, q), [a, b])


def test_gradcheck_catches_wrong_backward():
    x = _x([0.3, -1.1, 2.0])
    with pytest.raises(GradcheckError, match="mismatch"):
        dn.autograd.gradcheck(lambda t: WrongCube()(t), [x])
    assert dn.autograd.gradcheck(lambda t: WrongCube()(t), [x], raise_exception=False) is False


def test_gradcheck_requires_float64():
    x = dn.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(GradcheckError, match="float64"):
        dn.autograd.gradcheck(lambda t: Cube()(t), [x])


def test_custom_function_needs_input_grad():
    a = _x([1.0, 2.0])
    b = dn.tensor([3.0, 4.0], dtype=dn.float64)
    fn = ScaledProduct(2.0)
    z = fn(a, b)
    assert fn.needs_input_grad == (True, False)
    z.sum().backward()
    assert_close(a.grad, [6.0, 8.0], **TOL, what="ga")
    assert b.grad is None


def test_custom_function_wrong_gradient_shape_is_reported():
    x = _x([1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match=r"shape \(\) for input 0, whose shape is \(3,\)"):
        BadShape()(x).backward()


def test_function_without_grad_inputs_records_nothing():
    x = dn.tensor([1.0, 2.0], dtype=dn.float64)
    y = Cube()(x)
    assert y.grad_fn is None and not y.requires_grad
    assert_close(y, [1.0, 8.0], **TOL, what="forward only")
