"""Dropout: masks cannot be compared with torch's, so these tests check the statistics (fraction
zeroed within a binomial tolerance, kept values scaled exactly by 1/(1-p), mean preserved), the
identity in evaluation, p = 0 and p = 1, gradient = mask·scale, reproducibility under manual_seed,
channel-wise masks for dropout1d/2d/3d, in-place use, the modules' repr and errors."""
import math
import warnings

import numpy as np
import pytest
import torch

import deepnum as dn
import deepnum.nn as nn
from deepnum.nn import functional as F

N_BIG = 400_000


def ones(*shape, dtype=np.float32, requires_grad=False):
    return dn.tensor(np.ones(shape, dtype=dtype), requires_grad=requires_grad)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_statistics_and_exact_scale(p, dtype):
    dn.manual_seed(0)
    x = dn.tensor(np.random.default_rng(0).uniform(1, 2, N_BIG).astype(dtype))
    y = F.dropout(x, p).numpy()
    assert y.dtype == dtype and y.shape == (N_BIG,)
    zeroed = y == 0
    sigma = math.sqrt(p * (1 - p) / N_BIG)
    assert abs(zeroed.mean() - p) < 5 * sigma, f"fraction zeroed {zeroed.mean()} vs p={p}"
    scale = np.asarray(1 / (1 - p), dtype=dtype)
    np.testing.assert_array_equal(y[~zeroed], x.numpy()[~zeroed] * scale)
    mean_y = F.dropout(ones(N_BIG, dtype=dtype), p).numpy().mean()
    assert abs(mean_y - 1) < 5 * math.sqrt(p / (1 - p) / N_BIG), "the expected activation is kept"


def test_mask_comes_from_the_global_generator_in_float32():
    dn.manual_seed(123)
    y = F.dropout(ones(50, 40), 0.3).numpy()
    expected = np.random.default_rng(123).random((50, 40), dtype=np.float32) >= 0.3
    np.testing.assert_array_equal(y != 0, expected)
    dn.manual_seed(123)
    y64 = F.dropout(ones(50, 40, dtype=np.float64), 0.3).numpy()
    np.testing.assert_array_equal(y64 != 0, expected)  # the same draws whatever the dtype


def test_reproducible_with_manual_seed():
    x = dn.randn(30, 30)
    dn.manual_seed(7)
    a = F.dropout(x, 0.5).numpy()
    b = F.dropout(x, 0.5).numpy()
    dn.manual_seed(7)
    np.testing.assert_array_equal(F.dropout(x, 0.5).numpy(), a)
    np.testing.assert_array_equal(F.dropout(x, 0.5).numpy(), b)
    assert not np.array_equal(a != 0, b != 0)  # successive calls draw fresh masks


def test_eval_is_identity_and_p_zero():
    x = dn.randn(4, 5, requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert F.dropout2d(dn.randn(2, 3, 4, 4), 0.7, training=False).shape == (2, 3, 4, 4)
    layer = nn.Dropout(0.9)
    layer.eval()
    assert layer(x) is x
    t = torch.ones(2)
    assert torch.nn.functional.dropout(t, 0.0) is t and torch.nn.functional.dropout(t, training=False) is t


def test_p_one_zeroes_everything_with_zero_gradient():
    x = dn.randn(6, 7, requires_grad=True)
    y = F.dropout(x, 1.0)
    np.testing.assert_array_equal(y.detach().numpy(), 0)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 0)
    assert not np.any(np.isnan(x.grad.numpy()))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_is_mask_times_scale(dtype):
    p = 0.25
    x = dn.tensor(np.random.default_rng(1).uniform(0.5, 1.5, (40, 30)).astype(dtype), requires_grad=True)
    dn.manual_seed(2)
    y = F.dropout(x, p)
    g = np.random.default_rng(3).standard_normal((40, 30)).astype(dtype)
    y.backward(dn.tensor(g))
    mask = (y.detach().numpy() != 0).astype(dtype) * np.asarray(1 / (1 - p), dtype=dtype)
    assert x.grad.dtype == dtype
    np.testing.assert_array_equal(x.grad.numpy(), g * mask)


def test_gradcheck_and_double_backward_with_fixed_seed():
    x = dn.tensor(np.random.default_rng(4).standard_normal((5, 4)), requires_grad=True)

    def fn(x):
        dn.manual_seed(5)
        return F.dropout(x, 0.4) * x  # the mask is a constant, so the second derivative is 2·mask
    assert dn.autograd.gradcheck(fn, [x])
    assert dn.autograd.gradgradcheck(fn, [x])


def test_invalid_p():
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
            F.dropout(dn.randn(3), bad)
        with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
            F.dropout2d(dn.randn(2, 3, 2, 2), bad)
        with pytest.raises(ValueError, match=r"Dropout2d: dropout probability .* got"):
            nn.Dropout2d(bad)


def test_integer_input_in_training_raises():
    with pytest.raises(RuntimeError, match="floating point"):
        F.dropout(dn.tensor([1, 2, 3]), 0.5)


# ----------------------------------------------------------------------------- channel-wise
def _channel_zeroed(y, lead):
    """Per channel (the first ``lead`` dims): all zero or none zero; returns the zeroed map."""
    flat = y.reshape(y.shape[:lead] + (-1,))
    zero = np.all(flat == 0, axis=-1)
    assert np.all(zero | np.all(flat != 0, axis=-1)), "a channel is partly zeroed"
    return zero


@pytest.mark.parametrize("p", [0.2, 0.6])
def test_dropout2d_zeroes_whole_channels(p):
    dn.manual_seed(8)
    x = dn.tensor(np.random.default_rng(8).uniform(1, 2, (200, 100, 3, 2)).astype(np.float32), requires_grad=True)
    y = F.dropout2d(x, p)
    zero = _channel_zeroed(y.detach().numpy(), 2)
    assert abs(zero.mean() - p) < 5 * math.sqrt(p * (1 - p) / zero.size)
    kept = ~zero
    scale = np.float32(1 / (1 - p))
    np.testing.assert_array_equal(y.detach().numpy()[kept], x.detach().numpy()[kept] * scale)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.broadcast_to((kept * scale)[..., None, None], x.shape))


def test_dropout2d_3d_input_is_read_as_n_c_l_like_torch():
    dn.manual_seed(9)
    x = ones(20, 30, 8)
    with pytest.warns(UserWarning, match="3D input to dropout2d"):
        y = F.dropout2d(x, 0.5).numpy()
    _channel_zeroed(y, 2)  # one draw per (dim 0, dim 1) pair, as torch's feature dropout
    with pytest.warns(UserWarning, match="3D input to dropout2d"):
        t = torch.nn.functional.dropout2d(torch.ones(20, 30, 8), 0.5).numpy()
    _channel_zeroed(t, 2)
    with pytest.raises(RuntimeError, match="at least 2 dimensions"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        F.dropout2d(ones(5), 0.5)


def test_dropout1d_and_dropout3d_channel_masks():
    dn.manual_seed(10)
    _channel_zeroed(F.dropout1d(ones(10, 20, 7), 0.5).numpy(), 2)
    _channel_zeroed(F.dropout1d(ones(40, 7), 0.5).numpy(), 1)  # unbatched (C, L)
    _channel_zeroed(F.dropout3d(ones(6, 8, 2, 3, 2), 0.5).numpy(), 2)
    _channel_zeroed(F.dropout3d(ones(30, 2, 3, 2), 0.5).numpy(), 1)  # unbatched (C, D, H, W)
    with pytest.raises(RuntimeError, match="dropout1d"):
        F.dropout1d(ones(2, 3, 4, 5), 0.5)


# ----------------------------------------------------------------------------- in place, modules
def test_inplace():
    dn.manual_seed(11)
    x = ones(100, 10)
    y = F.dropout(x, 0.5, inplace=True)
    assert y is x and np.any(x.numpy() == 0) and x._version == 1
    leaf = ones(100, 10, requires_grad=True)
    y = nn.Dropout(0.5, inplace=True)(leaf)  # in the graph: computed out of place, the leaf unchanged
    assert y is not leaf and np.all(leaf.detach().numpy() == 1)
    y.sum().backward()
    np.testing.assert_array_equal(leaf.grad.numpy(), y.detach().numpy())
    maps = ones(4, 5, 2, 2, requires_grad=True)
    with dn.no_grad():
        assert F.dropout2d(maps, 0.5, inplace=True) is maps
    _channel_zeroed(maps.detach().numpy(), 2)


@pytest.mark.parametrize("name", ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d"])
def test_modules_repr_state_and_modes(name):
    for kwargs in (dict(), dict(p=0.3), dict(p=0.25, inplace=True)):
        ours, theirs = getattr(nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs)
        assert repr(ours) == repr(theirs)
        assert list(ours.state_dict()) == list(theirs.state_dict()) == []
    layer = getattr(nn, name)(0.5)
    shape = {"Dropout": (50, 40), "Dropout1d": (50, 40, 3), "Dropout2d": (50, 40, 3, 3),
             "Dropout3d": (50, 40, 2, 2, 2)}[name]
    dn.manual_seed(12)
    y = layer(ones(*shape)).numpy()
    assert set(np.unique(y)) == {0.0, 2.0}
    assert abs((y == 0).mean() - 0.5) < 0.1
    layer.eval()
    np.testing.assert_array_equal(layer(ones(*shape)).numpy(), 1)


def test_dropout_in_a_model_trains_and_evaluates():
    dn.manual_seed(13)
    model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.5), nn.Linear(16, 1))
    x = dn.randn(32, 8)
    a, b = model(x), model(x)
    assert not np.allclose(a.detach().numpy(), b.detach().numpy())
    model.eval()
    np.testing.assert_array_equal(model(x).detach().numpy(), model(x).detach().numpy())
