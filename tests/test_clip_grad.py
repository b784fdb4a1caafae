"""Gradient clipping against torch.nn.utils: the returned total norm and the clipped gradients for
several norm types and thresholds, in float64 and float32, with None gradients, non-finite norms,
and inside a training loop."""
import math
import warnings

import numpy as np
import pytest
import torch

import deepnum as dn
import deepnum.nn
import deepnum.optim  # noqa: F401

TOL = {np.float64: dict(rtol=1e-12, atol=1e-14), np.float32: dict(rtol=2e-6, atol=1e-7)}
SHAPES = [(3, 4), (5,), (), (2, 1, 3), (4,)]


def twins(dtype, seed=0, none_at=(3,), scale=1.0):
    """Parameters with the same gradients in deepnum and torch; those at ``none_at`` have no grad."""
    rng = np.random.default_rng(seed)
    d_params, t_params = [], []
    for i, shape in enumerate(SHAPES):
        value = rng.standard_normal(shape).astype(dtype)
        d, t = dn.nn.Parameter(dn.tensor(value)), torch.nn.Parameter(torch.tensor(value))
        if i not in none_at:
            grad = (scale * rng.standard_normal(shape)).astype(dtype)
            d.grad, t.grad = dn.tensor(grad), torch.tensor(grad)
        d_params.append(d)
        t_params.append(t)
    return d_params, t_params


def assert_same_grads(d_params, t_params, dtype):
    for d, t in zip(d_params, t_params, strict=True):
        if t.grad is None:
            assert d.grad is None
            continue
        assert d.grad.dtype == dtype
        np.testing.assert_allclose(d.grad.data, t.grad.numpy(), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("norm_type", [2.0, 1, 3.0, 0.5, math.inf, -math.inf, 0, "inf"])
@pytest.mark.parametrize("max_norm", [0.05, 1.0, 1e4])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, dtype):
    d_params, t_params = twins(dtype)
    d_norm = dn.nn.utils.clip_grad_norm_(d_params, max_norm, norm_type)
    t_norm = torch.nn.utils.clip_grad_norm_(t_params, max_norm, norm_type)
    assert isinstance(d_norm, dn.Tensor) and d_norm.shape == () and d_norm.dtype == dtype
    np.testing.assert_allclose(d_norm.data, t_norm.numpy(), **TOL[dtype])
    assert_same_grads(d_params, t_params, dtype)
    if max_norm == 1e4:  # below the threshold: the gradients are unchanged
        untouched, _ = twins(dtype)
        for d, u in zip(d_params, untouched):
            if u.grad is not None:
                np.testing.assert_array_equal(d.grad.data, u.grad.data)


def test_clipped_norm_equals_max_norm_and_grad_versions_move():
    d_params, _ = twins(np.float64, scale=10.0)
    versions = [p.grad._version for p in d_params if p.grad is not None]
    arrays = [p.grad.data for p in d_params if p.grad is not None]
    total = dn.nn.utils.clip_grad_norm_(d_params, 2.0)
    assert total.item() > 2.0
    grads = [p.grad for p in d_params if p.grad is not None]
    assert all(g.data is a and g._version > v for g, a, v in zip(grads, arrays, versions))
    np.testing.assert_allclose(dn.nn.utils.clip_grad_norm_(d_params, 2.0).item(), 2.0, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_single_tensor_and_generator_inputs(dtype):
    d_params, t_params = twins(dtype, none_at=())
    d_norm = dn.nn.utils.clip_grad_norm_(d_params[0], 0.5, norm_type=1)
    t_norm = torch.nn.utils.clip_grad_norm_(t_params[0], 0.5, norm_type=1)
    np.testing.assert_allclose(d_norm.data, t_norm.numpy(), **TOL[dtype])
    d_norm = dn.nn.utils.clip_grad_norm_((p for p in d_params), 0.5)
    t_norm = torch.nn.utils.clip_grad_norm_((p for p in t_params), 0.5)
    np.testing.assert_allclose(d_norm.data, t_norm.numpy(), **TOL[dtype])
    assert_same_grads(d_params, t_params, dtype)


def test_no_gradients_at_all():
    params = [dn.nn.Parameter(dn.ones(3)), dn.nn.Parameter(dn.ones(2))]
    norm = dn.nn.utils.clip_grad_norm_(params, 1.0)
    assert norm.item() == 0.0 and norm.dtype == dn.get_default_dtype() and norm.shape == ()
    assert all(p.grad is None for p in params)
    dn.nn.utils.clip_grad_value_(params, 1.0)
    assert all(p.grad is None for p in params)
    with pytest.warns(UserWarning, match="empty generator"):
        assert dn.nn.utils.clip_grad_norm_((p for p in []), 1.0).item() == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dn.nn.utils.clip_grad_norm_([], 1.0)


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize("norm_type", [2.0, math.inf, 1.0])
def test_nonfinite_norm(bad, norm_type):
    d_params, t_params = twins(np.float64)
    d_params[0].grad.data[1, 2] = bad
    t_params[0].grad[1, 2] = bad
    with pytest.raises(RuntimeError, match=f"total norm of order {norm_type} .* is non-finite"):
        dn.nn.utils.clip_grad_norm_(d_params, 1.0, norm_type, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="non-finite"):
        torch.nn.utils.clip_grad_norm_(t_params, 1.0, norm_type, error_if_nonfinite=True)
    np.testing.assert_array_equal(d_params[1].grad.data, t_params[1].grad.numpy())  # unchanged by the error
    d_norm = dn.nn.utils.clip_grad_norm_(d_params, 1.0, norm_type)
    t_norm = torch.nn.utils.clip_grad_norm_(t_params, 1.0, norm_type)
    np.testing.assert_array_equal(d_norm.data, t_norm.numpy())
    for d, t in zip(d_params, t_params):
        if t.grad is not None:
            np.testing.assert_array_equal(d.grad.data, t.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("clip_value", [0.0, 0.1, 0.7, 100, 2])
def test_clip_grad_value_matches_torch(clip_value, dtype):
    d_params, t_params = twins(dtype, scale=2.0)
    assert dn.nn.utils.clip_grad_value_(d_params, clip_value) is None
    torch.nn.utils.clip_grad_value_(t_params, clip_value)
    assert_same_grads(d_params, t_params, dtype)
    assert all(np.abs(p.grad.data).max() <= clip_value for p in d_params if p.grad is not None)
    d_one, t_one = twins(dtype, seed=1)
    dn.nn.utils.clip_grad_value_(d_one[0], clip_value)
    torch.nn.utils.clip_grad_value_(t_one[0], clip_value)
    np.testing.assert_array_equal(d_one[0].grad.data, t_one[0].grad.numpy())


@pytest.mark.parametrize("norm_type", [2.0, math.inf, 1.5])
def test_get_total_norm_and_clip_grads_with_norm(norm_type):
    d_params, t_params = twins(np.float32)
    d_grads = [p.grad for p in d_params if p.grad is not None]
    t_grads = [p.grad for p in t_params if p.grad is not None]
    d_norm = dn.nn.utils.get_total_norm(d_grads, norm_type)
    t_norm = torch.nn.utils.get_total_norm(t_grads, norm_type)
    np.testing.assert_allclose(d_norm.data, t_norm.numpy(), **TOL[np.float32])
    dn.nn.utils.clip_grads_with_norm_(d_params, 0.3, d_norm)
    torch.nn.utils.clip_grads_with_norm_(t_params, 0.3, t_norm)
    assert_same_grads(d_params, t_params, np.float32)


def test_clipping_inside_training_matches_torch():
    """Large-lr SGD with momentum on a linear model, gradients clipped to norm 1 at each step."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 6)), rng.standard_normal((32, 2)) * 5
    torch.manual_seed(0)
    t_layer = torch.nn.Linear(6, 2).double()
    d_layer = dn.nn.Linear(6, 2, dtype=dn.float64)
    d_layer.load_state_dict({k: dn.tensor(v.detach().numpy()) for k, v in t_layer.state_dict().items()})
    d_opt = dn.optim.SGD(d_layer.parameters(), lr=0.3, momentum=0.9)
    t_opt = torch.optim.SGD(t_layer.parameters(), lr=0.3, momentum=0.9)
    for _ in range(20):
        for layer, opt, lib, clip in ((d_layer, d_opt, dn, dn.nn.utils), (t_layer, t_opt, torch, torch.nn.utils)):
            opt.zero_grad()
            ((layer(lib.tensor(x)) - lib.tensor(y)) ** 2).mean().backward()
            clip.clip_grad_norm_(layer.parameters(), 1.0)
            opt.step()
    np.testing.assert_allclose(d_layer.weight.data, t_layer.weight.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(d_layer.bias.data, t_layer.bias.detach().numpy(), rtol=1e-10, atol=1e-12)
