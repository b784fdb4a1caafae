"""deepnum's own losses: focal loss (Lin et al. 2017) and asymmetric loss (Ridnik et al. 2021), checked
against the papers' formulas written out independently in NumPy float64, and against the same
formulas written in torch ops (values, input and target gradients in float64/float32, gradcheck)."""
import numpy as np
import pytest
import torch

import deepnum as dn
from deepnum.nn import functional as F
from tests.helpers import Const, check_op

RNG = np.random.default_rng(2017)
REDUCTIONS = ["none", "mean", "sum"]


def np_reduce(loss, reduction):
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


# ----------------------------------------------------------------------------- focal loss, binary
def np_binary_focal(x, y, alpha, gamma):
    """FL = -α_t (1 - p_t)^γ log p_t with p = σ(x), for y ∈ {0, 1} (paper, eq. 5)."""
    p = 1 / (1 + np.exp(-x))
    p_t = np.where(y == 1, p, 1 - p)
    alpha_t = 1.0 if alpha is None else np.where(y == 1, alpha, 1 - alpha)
    return -alpha_t * (1 - p_t) ** gamma * np.log(p_t)


def torchvision_focal(x, y, alpha, gamma, reduction):
    """torchvision.ops.sigmoid_focal_loss, written out in torch ops (torchvision is not installed)."""
    p = torch.sigmoid(x)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * (1 - p_t) ** gamma
    if alpha is not None:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("alpha", [0.25, None, 0.9])
@pytest.mark.parametrize("gamma", [0.0, 1.5, 2.0])
def test_binary_focal_matches_paper_formula(reduction, alpha, gamma):
    x = RNG.uniform(-6, 6, (5, 7))
    y = RNG.integers(0, 2, (5, 7)).astype(np.float64)
    out = F.focal_loss(dn.tensor(x), dn.tensor(y), alpha=alpha, gamma=gamma, reduction=reduction)
    np.testing.assert_allclose(out.numpy(), np_reduce(np_binary_focal(x, y, alpha, gamma), reduction), rtol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("alpha", [0.25, None])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_binary_focal_matches_torchvision(reduction, alpha, gamma):
    def fn(x, y):
        return F.focal_loss(x, y, alpha=alpha, gamma=gamma, reduction=reduction)

    def torch_fn(x, y):
        return torchvision_focal(x, y, alpha, gamma, reduction)

    check_op(fn, (4, 5), Const(RNG.integers(0, 2, (4, 5)).astype(float)), torch_fn=torch_fn, low=-4, high=4)
    check_op(fn, (4, 5), (4, 5), torch_fn=torch_fn, low=0, high=1)  # soft targets, with their gradient


def test_binary_focal_defaults_and_extremes():
    """Defaults α = 0.25, γ = 2 as the paper; ±60 logits stay finite (1 - p_t has no cancellation)."""
    x = np.array([-60.0, 60.0, -60.0, 60.0, 0.0])
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    out = F.focal_loss(dn.tensor(x), dn.tensor(y), reduction="none").numpy()
    expected = np_binary_focal(np.array([0.0, 3.0, -3.0]), np.array([1.0, 1.0, 1.0]), 0.25, 2.0)
    np.testing.assert_allclose(F.focal_loss(dn.tensor([0.0, 3.0, -3.0]), dn.tensor([1.0, 1.0, 1.0]),
                                            reduction="none").numpy(), expected, rtol=1e-6)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[:2], 0.0, atol=1e-40)
    np.testing.assert_allclose(out[2:4], [0.25 * 60, 0.75 * 60], rtol=1e-12)


def test_focal_with_gamma_zero_is_cross_entropy():
    x = dn.tensor(RNG.standard_normal((6, 4)))
    y = dn.tensor(RNG.integers(0, 2, (6, 4)).astype(np.float64))
    np.testing.assert_allclose(F.focal_loss(x, y, alpha=None, gamma=0).item(),
                               F.binary_cross_entropy_with_logits(x, y).item(), rtol=1e-12)
    t = dn.tensor(RNG.integers(0, 4, 6))
    np.testing.assert_allclose(F.focal_loss(x, t, alpha=None, gamma=0).item(), F.cross_entropy(x, t).item(),
                               rtol=1e-12)


# ----------------------------------------------------------------------------- focal loss, multi-class
def np_multiclass_focal(x, t, alpha, gamma):
    """FL = -α_t (1 - p_t)^γ log p_t with p = softmax over dim 1, for logits (N, C, ...)."""
    shifted = x - x.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_pt = np.take_along_axis(log_p, t[:, None], axis=1)[:, 0]
    if alpha is None:
        a = 1.0
    elif np.isscalar(alpha):
        a = alpha
    else:
        a = np.asarray(alpha)[t]
    return -a * (1 - np.exp(log_pt)) ** gamma * log_pt


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("alpha", [0.25, None, "per-class"])
@pytest.mark.parametrize("shape", [(6, 4), (2, 4, 3, 2)])
def test_multiclass_focal_matches_paper_formula(reduction, alpha, shape):
    alpha = [0.1, 0.4, 0.2, 0.3] if alpha == "per-class" else alpha
    x = RNG.uniform(-4, 4, shape)
    t = RNG.integers(0, 4, shape[:1] + shape[2:])
    out = F.focal_loss(dn.tensor(x), dn.tensor(t), alpha=alpha, gamma=2.0, reduction=reduction)
    np.testing.assert_allclose(out.numpy(), np_reduce(np_multiclass_focal(x, t, alpha, 2.0), reduction), rtol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_multiclass_focal_gradients(reduction, gamma):
    alpha = np.array([0.1, 0.4, 0.2, 0.3])
    t = RNG.integers(0, 4, (5, 2))

    def fn(x, t):
        return F.focal_loss(x, t, alpha=dn.tensor(alpha), gamma=gamma, reduction=reduction)

    def torch_fn(x, t):
        log_pt = torch.log_softmax(x, 1).gather(1, t[:, None])[:, 0]
        loss = -torch.tensor(alpha, dtype=x.dtype)[t] * (1 - log_pt.exp()) ** gamma * log_pt
        return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]

    check_op(fn, (5, 4, 2), Const(t), torch_fn=torch_fn)


def test_focal_errors():
    x = dn.tensor(RNG.standard_normal((3, 4)))
    with pytest.raises(ValueError, match=r"focal_loss: binary focal loss takes alpha in \[0, 1\] or None"):
        F.focal_loss(x, dn.zeros(3, 4), alpha=1.5)
    with pytest.raises(IndexError, match=r"focal_loss: target 4 is out of bounds.*\[0, 4\)"):
        F.focal_loss(x, dn.tensor(np.array([0, 1, 4])))
    with pytest.raises(ValueError, match=r"focal_loss: expected alpha of shape \(4,\), got \(3,\)"):
        F.focal_loss(x, dn.tensor(np.array([0, 1, 3])), alpha=[0.1, 0.2, 0.3])


# ----------------------------------------------------------------------------- asymmetric loss
def np_asymmetric(x, y, gamma_neg, gamma_pos, m, eps):
    """ASL = -[y (1 - p)^γ+ log p + (1 - y) p_m^γ- log(1 - p_m)], p_m = max(p - m, 0) (paper, eq. 4),
    with the logs floored at eps as the reference implementation."""
    p = 1 / (1 + np.exp(-x))
    p_m = np.maximum(p - m, 0) if m else p
    positive = (1 - p) ** gamma_pos * np.log(np.maximum(p, eps))
    negative = p_m ** gamma_neg * np.log(np.maximum(1 - p_m, eps))
    return -(y * positive + (1 - y) * negative)


def torch_asymmetric_reference(x, y, gamma_neg, gamma_pos, clip, eps, detach):
    """The reference implementation's steps (clip via min(1 - p + m, 1), eps clamps), in torch ops,
    with the paper's per-term focusing weights and the sum over all elements."""
    p = torch.sigmoid(x)
    q = 1 - p
    if clip:
        q = (q + clip).clamp(max=1)
    pos = torch.log(p.clamp(min=eps))
    neg = torch.log(q.clamp(min=eps))
    with torch.set_grad_enabled(not detach):
        w_pos, w_neg = (1 - p) ** gamma_pos, (1 - q) ** gamma_neg
    return -(y * pos * w_pos + (1 - y) * neg * w_neg).sum()


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("gamma_neg", "gamma_pos", "clip", "eps"),
                         [(4, 0, 0.05, 1e-8), (2, 1, 0.2, 1e-8), (3, 0, 0.0, 1e-3), (0, 0, None, 1e-8)])
def test_asymmetric_matches_paper_formula(reduction, gamma_neg, gamma_pos, clip, eps):
    x = np.concatenate([RNG.uniform(-5, 5, 30), [-30.0, 30.0, 0.0]]).reshape(3, 11)
    y = RNG.integers(0, 2, (3, 11)).astype(np.float64)
    out = F.asymmetric_loss(dn.tensor(x), dn.tensor(y), gamma_neg, gamma_pos, clip, eps, reduction)
    expected = np_asymmetric(x, y, gamma_neg, gamma_pos, clip, eps)
    np.testing.assert_allclose(out.numpy(), np_reduce(expected, reduction), rtol=1e-9, atol=1e-12)


def test_asymmetric_soft_targets_use_per_term_weights():
    x, y = RNG.uniform(-3, 3, (4, 5)), RNG.uniform(0, 1, (4, 5))
    out = F.asymmetric_loss(dn.tensor(x), dn.tensor(y), reduction="none")
    np.testing.assert_allclose(out.numpy(), np_asymmetric(x, y, 4, 0, 0.05, 1e-8), rtol=1e-12)


@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize(("gamma_neg", "gamma_pos", "clip"), [(4, 0, 0.05), (2, 1, 0.1), (1, 2, 0.0)])
def test_asymmetric_gradients(detach, gamma_neg, gamma_pos, clip):
    y = RNG.integers(0, 2, (3, 6))

    def fn(x, y):
        return F.asymmetric_loss(x, y, gamma_neg, gamma_pos, clip, reduction="sum", detach_focusing=detach)

    def torch_fn(x, y):
        return torch_asymmetric_reference(x, y, gamma_neg, gamma_pos, clip, 1e-8, detach)

    check_op(fn, (3, 6), Const(y), torch_fn=torch_fn, low=-4, high=4, gradcheck=not detach)


def test_asymmetric_gradient_flows_through_focusing_weight():
    """With the weights' gradient (default), the result is the exact derivative of the formula."""
    x = dn.tensor(np.array([[0.3, -1.2, 2.0]]), requires_grad=True)
    y = dn.tensor(np.array([[0.0, 1.0, 0.0]]))
    assert dn.autograd.gradcheck(lambda x: F.asymmetric_loss(x, y, 4, 1, 0.05, reduction="sum"), [x])
    full = dn.autograd.grad([F.asymmetric_loss(x, y, 4, 1, 0.05)], [x])[0].numpy()
    detached = dn.autograd.grad([F.asymmetric_loss(x, y, 4, 1, 0.05, detach_focusing=True)], [x])[0].numpy()
    assert not np.allclose(full, detached)
