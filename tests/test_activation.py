"""Activations against PyTorch: the erf they rest on (against ``math.erf``), every function of
``deepnum.functional.activation`` (values, dtypes, gradients, gradcheck, the kinks, the tails),
second derivatives, ``inplace``, and the ``deepnum.nn`` modules (outputs, gradients, repr)."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import deepnum as dn
import deepnum.nn as nn
import deepnum.nn.functional as F
from deepnum.functional._erf import erf, erfc, ndtr
from tests.helpers import assert_close, check_op

# ----------------------------------------------------------------------------------- erf


def _relative_error(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return np.max(np.abs(actual - expected) / np.abs(expected))


def _erf_points():
    rng = np.random.default_rng(0)
    edges = [0.5, 4.0, np.nextafter(0.5, 1), np.nextafter(4.0, 5), 1e-300, 1e-10, 1e-3]
    points = np.concatenate([rng.uniform(-6, 6, 4000), rng.uniform(-0.6, 0.6, 1000), np.linspace(-26, 26, 4001),
                             edges, np.negative(edges)])
    return points[points != 0]


def test_erf_float64_matches_math_erf_to_1e_15():
    x = _erf_points()
    assert _relative_error(erf(x), [math.erf(v) for v in x]) < 1e-15
    expected = np.array([math.erfc(v) for v in x])
    normal = expected > 1e-300  # relative error is meaningless among the subnormals
    assert _relative_error(erfc(x)[normal], expected[normal]) < 1e-15
    assert erfc(x).dtype == erf(x).dtype == np.float64


def test_erf_float32_stays_float32_and_is_accurate():
    x = _erf_points().astype(np.float32)
    x = x[x != 0]  # 1e-300 underflows
    x64 = x.astype(np.float64)
    assert erf(x).dtype == erfc(x).dtype == np.float32
    assert _relative_error(erf(x), [math.erf(v) for v in x64]) < 5 * np.finfo(np.float32).eps
    expected = np.array([math.erfc(v) for v in x64])
    normal = expected > 1e-37
    assert _relative_error(erfc(x)[normal], expected[normal]) < 10 * np.finfo(np.float32).eps
    assert erf(np.array([0.3, -2.0], dtype=np.float16)).dtype == np.float16


def test_erf_special_values_and_shapes():
    np.testing.assert_array_equal(erf(np.array([0.0, np.inf, -np.inf])), [0.0, 1.0, -1.0])
    np.testing.assert_array_equal(erfc(np.array([np.inf, -np.inf, 30.0])), [0.0, 2.0, 0.0])
    assert np.isnan(erf(np.array([np.nan]))).all() and np.isnan(erfc(np.array([np.nan]))).all()
    assert erf(np.array(0.25)).shape == () and math.isclose(float(erf(np.array(0.25))), math.erf(0.25))
    assert erf(np.ones((2, 0))).shape == (2, 0) and erfc(np.ones((0,))).shape == (0,)
    strided = np.linspace(-3, 3, 24).reshape(4, 6)[:, ::2]
    np.testing.assert_allclose(erf(strided), np.vectorize(math.erf)(strided), rtol=1e-15)
    tail = np.array([-10.0, -20.0, -37.0])  # Φ in the far lower tail, relatively accurate (the same
    # rounded argument x·(-√½) for both: Φ's condition number there is x², ~1e3)
    np.testing.assert_allclose(ndtr(tail), [0.5 * math.erfc(v * -math.sqrt(0.5)) for v in tail], rtol=1e-14)


# ----------------------------------------------------------------------------------- function parity

def call(name, **kwargs):
    """``F.name(x, **kwargs)`` on deepnum tensors, ``torch.nn.functional.name`` on torch tensors."""

    def fn(x):
        return (getattr(F, name) if isinstance(x, dn.Tensor) else getattr(TF, name))(x, **kwargs)

    fn.__name__ = name
    return fn


CASES = [  # name, kwargs, input ranges
    ("relu", {}, [(-2, 2)]),
    ("leaky_relu", {}, [(-2, 2)]),
    ("leaky_relu", {"negative_slope": 0.2}, [(-5, 5)]),
    ("leaky_relu", {"negative_slope": -0.5}, [(-5, 5)]),
    ("elu", {}, [(-3, 3), (-40, -10)]),
    ("elu", {"alpha": 0.5}, [(-3, 3)]),
    ("elu", {"alpha": 2.0}, [(-6, 6)]),
    ("gelu", {}, [(-3, 3), (-12, -4), (4, 12)]),
    ("gelu", {"approximate": "tanh"}, [(-3, 3), (-12, -4), (4, 12)]),
    ("silu", {}, [(-4, 4), (-50, -10), (10, 50)]),
    ("mish", {}, [(-4, 4), (-30, -10), (10, 30)]),
    ("sigmoid", {}, [(-4, 4), (-40, -10)]),
    ("softplus", {}, [(-4, 4), (-30, -5), (15, 25)]),
    ("softplus", {"beta": 2.0, "threshold": 5.0}, [(-4, 4), (1, 4)]),
    ("softplus", {"beta": 0.5, "threshold": 1.0}, [(-4, 4)]),
    ("hardswish", {}, [(-5, 5)]),
    ("hardsigmoid", {}, [(-5, 5)]),
    ("relu6", {}, [(-2, 8)]),
    ("hardtanh", {}, [(-2, 2)]),
    ("hardtanh", {"min_val": -0.5, "max_val": 3.0}, [(-2, 4)]),
]


@pytest.mark.parametrize(("name", "kwargs", "ranges"), CASES, ids=lambda v: str(v))
def test_function_parity(name, kwargs, ranges):
    for low, high in ranges:
        check_op(call(name, **kwargs), (4, 7), low=low, high=high)


@pytest.mark.parametrize(("name", "kwargs"), [(n, k) for n, k, _ in CASES], ids=str)
def test_zero_dim_and_empty_inputs(name, kwargs):
    check_op(call(name, **kwargs), ())
    check_op(call(name, **kwargs), (0, 3))


def test_tanh_and_softmax_family_are_reachable():
    check_op(lambda x: F.tanh(x) if isinstance(x, dn.Tensor) else torch.tanh(x), (3, 4))
    check_op(lambda x: dn.functional.activation.tanh(x) if isinstance(x, dn.Tensor) else torch.tanh(x), (5,))
    check_op(call("softmax", dim=1), (3, 4))
    check_op(call("log_softmax", dim=0), (3, 4))
    for name in ("relu", "sigmoid", "softmax", "log_softmax"):
        assert getattr(dn, name) is getattr(F, name)


# PyTorch's hardsigmoid backward multiplies by the float32 constant 1.0f/6.0f also in float64 (relative
# error 3e-8); deepnum uses 1/6 in the tensor's dtype, checked exactly in test_hardsigmoid_slope_is_exact.
HARDSIGMOID_RTOL = 1e-7


def test_hardsigmoid_slope_is_exact():
    x = dn.tensor(np.array([-4.0, -1.0, 0.0, 2.5, 3.0]), requires_grad=True)
    F.hardsigmoid(x).sum().backward()
    assert x.grad.data.tolist() == [0.0, 1 / 6, 1 / 6, 1 / 6, 0.0]


def check_values(fn, values, torch_fn):
    """Outputs and gradients on fixed float64 inputs (kinks, where finite differences do not apply)."""
    x = dn.tensor(np.asarray(values, np.float64), requires_grad=True)
    xt = torch.tensor(np.asarray(values, np.float64), requires_grad=True)
    out, expected = fn(x), torch_fn(xt)
    assert_close(out, expected, 1e-12, 1e-12, "output")
    g = np.random.default_rng(0).standard_normal(len(values))
    (out * dn.tensor(g)).sum().backward()
    (expected * torch.tensor(g)).sum().backward()
    assert_close(x.grad, xt.grad, 1e-12, 1e-12 if fn.__name__ != "hardsigmoid" else HARDSIGMOID_RTOL, "gradient")


@pytest.mark.parametrize(("name", "kwargs"), [
    ("relu", {}), ("leaky_relu", {}), ("leaky_relu", {"negative_slope": 0.3}), ("elu", {}),
    ("elu", {"alpha": 0.5}), ("hardswish", {}), ("hardsigmoid", {}), ("relu6", {}), ("hardtanh", {}),
    ("softplus", {"threshold": 2.0}), ("softplus", {"beta": 2.0, "threshold": 4.0}), ("gelu", {}),
    ("silu", {}), ("mish", {}),
])
def test_kinks_and_thresholds_follow_torch(name, kwargs):
    """PyTorch's gradient choices where the function has a corner (ReLU6 at 0 and 6: 0; hardswish at
    ±3: its middle formula; ELU at 0: α) and on both sides of softplus's threshold."""
    values = [-6.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0, 6.0, 7.0, -1e-300, 1e-300]
    check_values(call(name, **kwargs), values, call(name, **kwargs))


def test_gelu_tails_are_relatively_accurate():
    """x·Φ(x) through erfc, so the lower tail keeps its digits (1 + erf(x/√2) would cancel to 0)."""
    x = np.array([-5.0, -10.0, -20.0, -35.0])
    expected = [v * 0.5 * math.erfc(v * -math.sqrt(0.5)) for v in x]
    np.testing.assert_allclose(F.gelu(dn.tensor(x)).data, expected, rtol=1e-14)
    tanh_form = F.gelu(dn.tensor(x), approximate="tanh").data
    u = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
    np.testing.assert_allclose(tanh_form, x * np.exp(2 * u) / (1 + np.exp(2 * u)), rtol=1e-13)
    assert np.all(tanh_form[:3] < 0)  # x·σ(2u): no cancellation to 0 (at -35, σ(2u) < 1e-1300 underflows)


def test_gelu_float32_fast_path_is_accurate_across_blocks():
    """float32 GELU runs the blocked fitted-erfc kernel: values within a few float32 ulp of x·Φ(x)
    for |x| ≤ 5 and relatively accurate also in the lower tail, the slope Φ + x·φ within 3e-7; the rows of a long input
    cross block boundaries, odd widths included; eval (no grad) gives the same values."""
    from deepnum.functional._activation_smooth import _BLOCK

    grid = np.concatenate([np.linspace(-14, 14, 20001), [0.0, -0.0, 1e-30, -1e-30, 30.0, -30.0, 1e4]])
    rows = -(-(_BLOCK + 1000) // 7)
    x32 = np.resize(grid, (rows, 7)).astype(np.float32)
    xd = dn.tensor(x32, requires_grad=True)
    y = F.gelu(xd)
    y.backward(dn.ones(x32.shape))
    x64 = x32.astype(np.float64).reshape(-1)
    cdf = np.array([0.5 * math.erfc(v * -math.sqrt(0.5)) for v in x64[:len(grid)]])
    expected = np.resize(x64[:len(grid)] * cdf, x64.shape)
    pdf = np.exp(-x64[:len(grid)] ** 2 / 2) / math.sqrt(2 * math.pi)
    slope = np.resize(cdf + x64[:len(grid)] * pdf, x64.shape)
    got = y.data.reshape(-1).astype(np.float64)
    big = np.abs(expected) > 1e-37  # below, float32 is denormal
    assert y.dtype == xd.grad.dtype == np.float32
    relative = np.abs(got[big] - expected[big]) / np.abs(expected[big])
    assert np.max(relative[np.abs(x64[big]) <= 5]) < 1e-6
    assert np.max(relative) < 1e-5  # far in the lower tail: the float32 rounding of x² in e^(-x²/2)
    assert np.max(np.abs(got[~big] - expected[~big])) < 1e-37
    assert np.max(np.abs(xd.grad.data.reshape(-1) - slope)) < 3e-7
    with dn.no_grad():
        np.testing.assert_array_equal(F.gelu(dn.tensor(x32)).data, y.data)
    # a double backward in float32 recomputes Φ with the exact formula
    xs = dn.tensor(np.linspace(-4, 4, 9).astype(np.float32), requires_grad=True)
    (g,) = dn.autograd.grad(F.gelu(xs).sum(), xs, create_graph=True)
    (gg,) = dn.autograd.grad(g.sum(), xs)
    xt = torch.tensor(xs.data, requires_grad=True)
    (gt,) = torch.autograd.grad(TF.gelu(xt).sum(), xt, create_graph=True)
    (ggt,) = torch.autograd.grad(gt.sum(), xt)
    assert_close(g, gt, 1e-6, 1e-5, "first derivative")
    assert_close(gg, ggt, 1e-6, 1e-5, "second derivative")


def test_large_inputs_do_not_overflow():
    x = dn.tensor(np.array([-1e4, -800.0, 800.0, 1e4]), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("sigmoid", "silu", "mish", "softplus", "elu", "gelu"):
            for dtype in (np.float64, np.float32):
                xd = dn.tensor(x.data.astype(dtype), requires_grad=True)
                out = getattr(F, name)(xd)
                out.sum().backward()
                assert np.isfinite(out.data).all() and np.isfinite(xd.grad.data).all(), name
                expected = getattr(TF, name)(torch.tensor(x.data.astype(dtype)))
                np.testing.assert_allclose(out.data, expected.numpy(), rtol=1e-6, atol=1e-30)


# ----------------------------------------------------------------------------------- second order

SMOOTH = [("gelu", {}), ("gelu", {"approximate": "tanh"}), ("silu", {}), ("elu", {}), ("elu", {"alpha": 0.4}),
          ("softplus", {}), ("softplus", {"beta": 3.0, "threshold": 4.0}), ("mish", {}), ("sigmoid", {}),
          ("hardswish", {})]


@pytest.mark.parametrize(("name", "kwargs"), SMOOTH, ids=str)
def test_second_derivative_matches_torch(name, kwargs):
    fn = call(name, **kwargs)
    rng = np.random.default_rng(1)
    values = rng.uniform(-4, 4, (3, 5))
    g, h = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    x = dn.tensor(values, requires_grad=True)
    xt = torch.tensor(values, requires_grad=True)
    (gx,) = dn.autograd.grad(fn(x), x, dn.tensor(g), create_graph=True)
    (gxt,) = torch.autograd.grad(fn(xt), xt, torch.tensor(g), create_graph=True)
    assert_close(gx, gxt, 1e-12, 1e-10, "first derivative")
    (ggx,) = dn.autograd.grad(gx, x, dn.tensor(h))
    (ggxt,) = torch.autograd.grad(gxt, xt, torch.tensor(h))
    assert_close(ggx, ggxt, 1e-12, 1e-10, "second derivative")
    assert dn.autograd.gradgradcheck(fn, [dn.tensor(values, requires_grad=True)])


# ----------------------------------------------------------------------------------- inplace, errors

@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu", "silu", "mish", "hardswish", "hardsigmoid",
                                  "relu6", "hardtanh"])
def test_inplace(name):
    values = np.linspace(-4, 7, 12).astype(np.float32)
    expected = getattr(TF, name)(torch.tensor(values)).numpy()
    x = dn.tensor(values.copy())
    out = getattr(F, name)(x, inplace=True)
    assert out is x and x._version == 1
    np.testing.assert_allclose(x.data, expected, rtol=1e-6)
    # in the graph: a new tensor, the input unchanged, the gradient right
    leaf = dn.tensor(values.copy(), requires_grad=True)
    out = getattr(F, name)(leaf * 1, inplace=True)
    np.testing.assert_allclose(out.data, expected, rtol=1e-6)
    np.testing.assert_array_equal(leaf.data, values)
    out.sum().backward()
    xt = torch.tensor(values, requires_grad=True)
    getattr(TF, name)(xt).sum().backward()
    np.testing.assert_allclose(leaf.grad.data, xt.grad.numpy(), rtol=1e-6)
    assert F.relu_(dn.tensor([-1.0, 2.0])).data.tolist() == [0.0, 2.0]


def test_bad_arguments_raise():
    with pytest.raises(RuntimeError, match="approximate"):
        F.gelu(dn.ones(2), approximate="fast")
    with pytest.raises(ValueError, match="min_val"):
        F.hardtanh(dn.ones(2), 2.0, 1.0)
    with pytest.raises(ValueError, match="beta"):
        F.softplus(dn.ones(2), beta=0)
    with pytest.raises(ValueError, match="GELU.*approximate"):
        nn.GELU("fast")
    with pytest.raises(ValueError, match="Hardtanh.*min_val=2"):
        nn.Hardtanh(2.0, 1.0)


def test_integer_inputs():
    ints = np.array([-3, 0, 2, 9])
    assert F.relu(dn.tensor(ints)).dtype == np.int64
    assert F.relu6(dn.tensor(ints)).data.tolist() == TF.relu6(torch.tensor(ints)).tolist()
    assert F.hardtanh(dn.tensor(ints)).data.tolist() == TF.hardtanh(torch.tensor(ints)).tolist()
    assert F.gelu(dn.tensor(ints)).dtype == dn.get_default_dtype()  # torch refuses integers here


# ----------------------------------------------------------------------------------- modules

MODULES = [  # (args, kwargs) for both libraries
    ("ReLU", (), {}), ("ReLU", (True,), {}), ("LeakyReLU", (), {}), ("LeakyReLU", (0.2, True), {}),
    ("ELU", (), {}), ("ELU", (), {"alpha": 0.5, "inplace": True}), ("GELU", (), {}), ("GELU", ("tanh",), {}),
    ("SiLU", (), {}), ("SiLU", (True,), {}), ("Mish", (), {}), ("Mish", (True,), {}), ("Sigmoid", (), {}),
    ("Tanh", (), {}), ("Softmax", (), {"dim": 1}), ("Softmax", (-1,), {}), ("LogSoftmax", (), {"dim": 0}),
    ("Hardtanh", (), {}), ("Hardtanh", (-2, 2, True), {}), ("ReLU6", (), {}), ("ReLU6", (True,), {}),
    ("Hardsigmoid", (), {}), ("Hardsigmoid", (True,), {}), ("Hardswish", (), {}), ("Hardswish", (True,), {}),
    ("Softplus", (), {}), ("Softplus", (2, 10), {}), ("Softplus", (), {"beta": 0.5, "threshold": 3.0}),
]


@pytest.mark.parametrize(("name", "args", "kwargs"), MODULES, ids=str)
def test_module_parity(name, args, kwargs):
    layer, torch_layer = getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    assert repr(layer) == repr(torch_layer)
    assert list(layer.state_dict()) == list(torch_layer.state_dict()) == []
    for attr in ("inplace", "negative_slope", "alpha", "approximate", "dim", "min_val", "max_val", "beta",
                 "threshold"):
        assert getattr(layer, attr, None) == getattr(torch_layer, attr, None), attr
    rtol64 = HARDSIGMOID_RTOL if name == "Hardsigmoid" else 1e-10
    for dtype, tol in ((np.float64, (1e-12, rtol64)), (np.float32, (2e-6, 2e-5))):
        values = np.random.default_rng(0).uniform(-5, 5, (4, 6, 3)).astype(dtype)
        x, xt = dn.tensor(values, requires_grad=True), torch.tensor(values, requires_grad=True)
        out, expected = layer(x * 1), torch_layer(xt * 1)  # * 1: in the graph, as after a layer
        assert_close(out, expected, *tol, what=f"{name} output ({dtype.__name__})")
        assert out.dtype == dtype
        g = np.random.default_rng(1).standard_normal(values.shape).astype(dtype)
        (out * dn.tensor(g)).sum().backward()
        (expected * torch.tensor(g)).sum().backward()
        assert_close(x.grad, xt.grad, *tol, what=f"{name} input gradient ({dtype.__name__})")


@pytest.mark.parametrize("name", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("shape", [(5,), (2, 3), (2, 3, 4), (2, 3, 4, 2)])
def test_softmax_implicit_dim_warns_like_torch(name, shape):
    values = np.random.default_rng(0).standard_normal(shape)
    with pytest.warns(UserWarning, match="Implicit dimension"):
        out = getattr(nn, name)()(dn.tensor(values))
    with pytest.warns(UserWarning, match="Implicit dimension"):
        expected = getattr(torch.nn, name)()(torch.tensor(values))
    assert_close(out, expected, 1e-12, 1e-12, name)


def test_modules_are_in_the_nn_namespace():
    for name in ("ReLU", "LeakyReLU", "ELU", "GELU", "SiLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax",
                 "Hardswish", "Hardsigmoid", "ReLU6", "Softplus", "Mish", "Hardtanh"):
        assert issubclass(getattr(nn, name), nn.Module)
    assert isinstance(nn.ReLU6(), nn.Hardtanh) and (nn.ReLU6().min_val, nn.ReLU6().max_val) == (0.0, 6.0)
    model = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 2), nn.LogSoftmax(dim=1))
    assert "(1): GELU(approximate='none')" in repr(model)
    model(dn.randn(5, 3)).sum().backward()
