"""Parity of the elementwise ops (``deepnum/functional/math.py`` and ``activation.py``) with PyTorch:
method form, function form and operators, over broadcasting, 0-d and empty shapes; broadcasting
property tests; second-order gradients; error messages."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import deepnum as dn
from tests.helpers import Const, assert_close, check_op


def both(name: str):
    """The function form: ``deepnum.name`` on deepnum tensors, ``torch.name`` on torch tensors."""

    def fn(*args, **kwargs):
        lib = dn if any(isinstance(a, dn.Tensor) for a in args) else torch
        return getattr(lib, name)(*args, **kwargs)

    return fn


def check_values(fn, *values, torch_fn=None, seed: int = 0) -> None:
    """Parity on fixed float64 inputs (ties, values exactly on a bound): outputs and the gradients of
    sum(out · g), where finite differences do not apply because the inputs sit on kinks."""
    torch_fn = torch_fn or fn
    dn_args = [dn.tensor(np.asarray(v, dtype=np.float64), requires_grad=True) for v in values]
    torch_args = [torch.tensor(np.asarray(v, dtype=np.float64), requires_grad=True) for v in values]
    out, expected = fn(*dn_args), torch_fn(*torch_args)
    assert_close(out, expected, 1e-12, 1e-12, "output")
    assert str(out.dtype) == str(expected.dtype).removeprefix("torch.")
    g = np.random.default_rng(seed).standard_normal(expected.shape)
    (out * dn.tensor(g)).sum().backward()
    (expected * torch.tensor(g)).sum().backward()
    for i, (a, b) in enumerate(zip(dn_args, torch_args)):
        expected_grad = np.zeros(b.shape) if b.grad is None else b.grad
        actual_grad = np.zeros(a.shape) if a.grad is None else a.grad
        assert_close(actual_grad, expected_grad, 1e-12, 1e-12, f"gradient of input {i}")


# ----------------------------------------------------------------------------------- unary ops
UNARY = [  # name, input range valid for the op (and its gradcheck)
    ("exp", -2, 2), ("log", 0.5, 3), ("log1p", -0.5, 2), ("sqrt", 0.5, 3), ("rsqrt", 0.5, 3),
    ("reciprocal", 0.5, 3), ("square", -2, 2), ("abs", -2, 2), ("neg", -2, 2), ("sign", -2, 2),
    ("sin", -3, 3), ("cos", -3, 3), ("tanh", -3, 3), ("sigmoid", -4, 4), ("relu", -2, 2),
    ("floor", -3, 3), ("ceil", -3, 3), ("round", -3, 3),
]
UNARY_SHAPES = [(3, 4), (), (0, 3), (2, 1, 3)]


@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=str)
@pytest.mark.parametrize(("name", "low", "high"), UNARY, ids=[u[0] for u in UNARY])
def test_unary(name, low, high, shape):
    check_op(lambda x: getattr(x, name)(), shape, low=low, high=high)
    check_op(both(name), shape, low=low, high=high)


@pytest.mark.parametrize(("name", "low", "high"), UNARY, ids=[u[0] for u in UNARY])
def test_unary_negative_and_far_inputs(name, low, high):
    """The same ops on a shifted range (negative inputs for 1/x, large ones for exp/sigmoid)."""
    shift = {"reciprocal": -4.0, "rsqrt": 10.0, "sqrt": 10.0, "log": 10.0, "exp": 5.0, "sigmoid": -10.0}
    check_op(lambda x: getattr(x + shift.get(name, 0.5), name)(), (5,), low=low, high=high)


@pytest.mark.parametrize("name", [u[0] for u in UNARY])
def test_unary_on_integers(name):
    """Integer inputs: exp/log/sqrt/... give the default float dtype, abs/neg/sign/floor... stay int64."""
    tol = {"atol": 1e-6, "rtol": 1e-6, "dtypes": (np.float32,)}  # float32 results: ulp-level libm differences
    check_op(lambda x: getattr(x, name)(), Const([[1, 2, 3], [4, 5, 9]]), grad=False, **tol)
    if name not in ("log", "log1p", "sqrt", "rsqrt", "reciprocal"):
        check_op(both(name), Const([-3, 0, 2, 7]), grad=False, **tol)


def test_unary_operators():
    check_op(lambda x: -x, (3, 4))
    check_op(lambda x: abs(x), (2, 3))
    check_op(lambda x: +x * 2, (3,))


def test_round_decimals_and_half_to_even():
    check_op(lambda x: x.round(decimals=2), (3, 4), low=-5, high=5)
    check_values(lambda x: x.round(), [0.5, 1.5, 2.5, -0.5, -1.5, 0.49])


def test_abs_sign_relu_at_zero():
    check_values(lambda x: x.abs() + x.relu() + x.sign() * x, [-1.0, 0.0, 2.0])


# ----------------------------------------------------------------------------------- binary ops
def _div_floor(a, b):
    return a.div(b - 2.5, rounding_mode="floor")


BINARY = [  # id, fn(a, b) written with names both libraries share, low, high
    ("add", lambda a, b: a + b, -2, 2),
    ("add_method", lambda a, b: a.add(b), -2, 2),
    ("add_fn", both("add"), -2, 2),
    ("add_alpha", lambda a, b: a.add(b, alpha=2.5), -2, 2),
    ("add_fn_alpha", lambda a, b: both("add")(a, b, alpha=-3), -2, 2),
    ("sub", lambda a, b: a - b, -2, 2),
    ("sub_alpha", lambda a, b: a.sub(b, alpha=0.5), -2, 2),
    ("sub_fn", both("sub"), -2, 2),
    ("mul", lambda a, b: a * b, -2, 2),
    ("mul_method", lambda a, b: a.mul(b), -2, 2),
    ("mul_fn", both("mul"), -2, 2),
    ("div", lambda a, b: a / b, 0.5, 2),
    ("div_negative", lambda a, b: a.div(b - 3), -2, 2),
    ("div_fn", both("div"), 0.5, 2),
    ("div_floor", _div_floor, -2, 2),
    ("div_floor_positive", lambda a, b: both("div")(a, b + 2.5, rounding_mode="floor"), -2, 2),
    ("div_trunc", lambda a, b: a.div(b - 2.5, rounding_mode="trunc"), -2, 2),
    ("div_trunc_fn", lambda a, b: both("div")(a * 3, b + 2.5, rounding_mode="trunc"), -2, 2),
    ("pow", lambda a, b: a ** b, 0.5, 2),
    ("pow_method", lambda a, b: a.pow(b - 1), 0.5, 2),
    ("pow_fn", both("pow"), 0.5, 2),
    ("maximum", lambda a, b: a.maximum(b), -2, 2),
    ("maximum_fn", both("maximum"), -2, 2),
    ("minimum", lambda a, b: a.minimum(b), -2, 2),
    ("minimum_fn", both("minimum"), -2, 2),
    ("remainder", lambda a, b: a % (b + 2.5), -2, 2),
    ("remainder_negative", lambda a, b: a.remainder(b - 2.5), -2, 2),
    ("remainder_fn", lambda a, b: both("remainder")(a * 3, b + 2.5), -2, 2),
]
BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 1, 4), (2, 4)), ((), (3,)), ((2, 3), ()), ((0, 3), (1, 3)), ((), ())]


@pytest.mark.parametrize("shapes", BINARY_SHAPES, ids=str)
@pytest.mark.parametrize(("name", "fn", "low", "high"), BINARY, ids=[b[0] for b in BINARY])
def test_binary(name, fn, low, high, shapes):
    check_op(fn, *shapes, low=low, high=high)


@pytest.mark.parametrize("shapes", BINARY_SHAPES, ids=str)
def test_floor_divide(shapes):
    """Float floor division, Python's rounding; torch has no derivative for it, so values only."""
    check_op(lambda a, b: a // (b + 2.5), *shapes, grad=False)
    check_op(lambda a, b: a.floor_divide(b - 2.5), *shapes, grad=False)
    check_op(lambda a, b: both("floor_divide")(a * 4, b + 2.5), *shapes, grad=False)


def test_integer_division_and_remainder():
    a, b = Const([[-7, 7, -6, 1], [5, -5, 0, 9]]), Const([2, -2, 3, -4])
    for mode in (None, "floor", "trunc"):
        check_op(lambda x, y, m=mode: both("div")(x, y, rounding_mode=m), a, b, grad=False)
    check_op(lambda x, y: (x // y, x % y, x.remainder(y), x.floor_divide(y)), a, b, grad=False)
    check_op(lambda x: (7 // x, -7 % x, x // 3, x % -3), b, grad=False)


SCALAR_OPS = [  # id, fn(x) with a Python number on either side, low, high, differentiable
    ("radd", lambda x: 1.5 + x, -2, 2, True),
    ("rsub", lambda x: 2.5 - x, -2, 2, True),
    ("rmul", lambda x: 3 * x, -2, 2, True),
    ("rdiv", lambda x: 2 / x, 0.5, 2, True),
    ("rpow", lambda x: 2 ** x, -2, 2, True),
    ("rpow_float", lambda x: 0.5 ** x, -2, 2, True),
    ("rpow_fn", lambda x: both("pow")(2.5, x), -2, 2, True),
    ("rmod", lambda x: 5.5 % x, 0.5, 2, False),  # torch has no derivative for number % tensor
    ("rfloordiv", lambda x: 5 // x, 0.5, 2, False),
    ("add", lambda x: x + 2, -2, 2, True),
    ("add_alpha", lambda x: x.add(3.0, alpha=2), -2, 2, True),
    ("sub", lambda x: x - 0.5, -2, 2, True),
    ("sub_alpha", lambda x: x.sub(2, alpha=-1.5), -2, 2, True),
    ("mul", lambda x: x * -1.5, -2, 2, True),
    ("div", lambda x: x / 4, -2, 2, True),
    ("div_floor", lambda x: x.div(0.7, rounding_mode="floor"), -2, 2, True),
    ("div_trunc", lambda x: x.div(-0.7, rounding_mode="trunc"), -2, 2, True),
    ("mod", lambda x: x % 0.7, -2, 2, True),
    ("mod_negative", lambda x: x % -0.7, -2, 2, True),
    ("floordiv", lambda x: x // 0.7, -2, 2, False),
    ("pow3", lambda x: x ** 3, -2, 2, True),
    ("pow2", lambda x: x ** 2, -2, 2, True),
    ("pow0", lambda x: x ** 0, -2, 2, True),
    ("pow_half", lambda x: x ** 0.5, 0.5, 2, True),
    ("pow_negative", lambda x: x ** -1.5, 0.5, 2, True),
    ("pow_int_negative", lambda x: x ** -2, 0.5, 2, True),
    ("pow_method", lambda x: x.pow(3), -2, 2, True),
    ("pow_fn", lambda x: both("pow")(x, 2.5), 0.5, 2, True),
]


@pytest.mark.parametrize("shape", [(3, 4), (), (0, 2)], ids=str)
@pytest.mark.parametrize(("name", "fn", "low", "high", "grad"), SCALAR_OPS, ids=[s[0] for s in SCALAR_OPS])
def test_with_python_numbers(name, fn, low, high, grad, shape):
    check_op(fn, shape, low=low, high=high, grad=grad)


def test_pow_edge_values():
    check_values(lambda x: x ** 0 + x ** 2 + x ** 3, [0.0, -1.5, 2.0])
    check_values(lambda a, b: a ** b, [0.0, 2.0, 3.0], [2.0, 0.0, 1.5])


@pytest.mark.parametrize(("a", "b"), [((3, 4), (4, 5)), ((3, 4), (4,)), ((4,), (4, 3)), ((2, 1, 3, 4), (5, 4, 2)),
                                      ((0, 4), (4, 2))], ids=str)
def test_matmul(a, b):
    check_op(lambda x, y: x @ y, a, b)
    check_op(lambda x, y: x.matmul(y), a, b, gradcheck=False)
    check_op(both("matmul"), a, b, gradcheck=False)


# ----------------------------------------------------------------------------------- clamp
CLAMPS = [
    ("both", lambda x: x.clamp(-0.5, 0.8)),
    ("min_only", lambda x: x.clamp(min=-0.5)),
    ("max_only", lambda x: x.clamp(max=0.3)),
    ("clip", lambda x: x.clip(-1, 1)),
    ("fn", lambda x: both("clamp")(x, -0.5, 0.5)),
    ("fn_clip_max", lambda x: both("clip")(x, max=0.2)),
    ("min_above_max", lambda x: x.clamp(1.0, -1.0)),
]


@pytest.mark.parametrize("shape", [(3, 4), (), (0, 3)], ids=str)
@pytest.mark.parametrize(("name", "fn"), CLAMPS, ids=[c[0] for c in CLAMPS])
def test_clamp_number_bounds(name, fn, shape):
    check_op(fn, shape)


TENSOR_CLAMPS = [
    ("both", lambda x, lo, hi: x.clamp(lo - 1, hi + 1)),
    ("min_only", lambda x, lo, hi: x.clamp(min=lo) + hi),
    ("max_only", lambda x, lo, hi: x.clamp(max=hi) * lo),
    ("fn", lambda x, lo, hi: both("clamp")(x, lo - 0.5, hi)),
    ("clip", lambda x, lo, hi: both("clip")(x, min=lo, max=hi + 1)),
]


def _expanded_first(fn):
    """torch's clamp backward fails when the bounds broadcast ``x`` to a larger shape, so torch gets x
    expanded to the result shape first (the same function; the expand sums the gradient back)."""

    def torch_fn(x, lo, hi):
        return fn(x.expand(torch.broadcast_shapes(x.shape, lo.shape, hi.shape)), lo, hi)

    return torch_fn


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4), (3, 4)), ((3, 1, 4), (2, 4), (4,)), ((), (3,), ())], ids=str)
@pytest.mark.parametrize(("name", "fn"), TENSOR_CLAMPS, ids=[c[0] for c in TENSOR_CLAMPS])
def test_clamp_tensor_bounds(name, fn, shapes):
    check_op(fn, *shapes, torch_fn=_expanded_first(fn))


def test_clamp_values_on_bounds():
    """Values exactly on a bound keep their gradient (PyTorch's ``min <= x <= max``)."""
    x = [-1.0, -0.5, 0.0, 0.5, 1.0, 2.0]
    check_values(lambda t: t.clamp(-0.5, 0.5), x)
    check_values(lambda t: t.clamp(min=0.5), x)
    check_values(lambda t: t.clamp(max=-0.5), x)
    check_values(lambda t: t.clamp(0.5, 0.5), x)
    lo, hi = [-0.5, -0.5, 0.5, 0.0, 1.0, 3.0], [0.5, -0.5, 0.5, 1.0, 0.0, 2.0]
    check_values(lambda t, a, b: t.clamp(a, b), x, lo, hi)
    check_values(lambda t, a: t.clamp(min=a), x, lo)
    check_values(lambda t, b: t.clamp(max=b), x, hi)


# ----------------------------------------------------------------------------------- maximum / minimum / where
def test_maximum_minimum_ties():
    """Where both are equal the gradient is split evenly, as in PyTorch."""
    a, b = [1.0, 2.0, 3.0, -2.0], [2.0, 2.0, 1.0, -2.0]
    check_values(lambda x, y: x.maximum(y), a, b)
    check_values(lambda x, y: both("minimum")(x, y), a, b)
    check_values(lambda x, y: x.maximum(y) * 2 + x.minimum(y), [[1.0, 0.0, 3.0], [0.0, 0.0, 0.0]], [0.0, 0.0, 3.0])


def _mask(shape, seed=3):
    return Const(np.random.default_rng(seed).random(shape) > 0.5)


@pytest.mark.parametrize(("cond", "a", "b"), [((3, 4), (3, 4), (3, 4)), ((3, 1, 4), (2, 4), (4,)), ((2, 1), (), (3,)),
                                              ((), (2, 3), (2, 3)), ((0, 3), (3,), ())], ids=str)
def test_where(cond, a, b):
    check_op(lambda c, x, y: both("where")(c, x, y), _mask(cond), a, b)
    check_op(lambda c, x, y: x.where(c, y), _mask(cond), a, b)
    check_op(lambda c, x: both("where")(c, x, 0.0), _mask(cond), a)
    check_op(lambda c, y: both("where")(c, 1.5, y), _mask(cond), b)


def test_where_from_comparison():
    check_op(lambda x: both("where")(x > 0, x, x * 0.1), (3, 4))


# ----------------------------------------------------------------------------------- comparisons, logic, tests
COMPARISONS = [
    ("eq", lambda a, b: a == b), ("ne", lambda a, b: a != b), ("lt", lambda a, b: a < b),
    ("le", lambda a, b: a <= b), ("gt", lambda a, b: a > b), ("ge", lambda a, b: a >= b),
]


@pytest.mark.parametrize(("name", "op"), COMPARISONS, ids=[c[0] for c in COMPARISONS])
def test_comparisons(name, op):
    for shapes in BINARY_SHAPES:
        check_op(op, *shapes, grad=False)
        check_op(lambda a, b: getattr(a, name)(b), *shapes, grad=False)
        check_op(both(name), *shapes, grad=False)
    check_op(lambda a: (op(a, 0.3), op(0.3, a), op(a, 1)), (3, 4), grad=False)
    ties_a, ties_b = Const([[1, 2, 3], [3, 3, 0]]), Const([3, 2, 1])
    check_op(op, ties_a, ties_b, grad=False)
    check_op(lambda a, b: op(a, b.float() * 1.5), ties_a, ties_b, grad=False)


def test_logical():
    a, b = Const([[True, False, True], [False, False, True]]), Const([0.0, 2.5, -1.0])
    check_op(lambda x, y: (x.logical_and(y), x.logical_or(y), y.logical_not(), x.logical_not()), a, b, grad=False)
    check_op(lambda x, y: (both("logical_and")(y, x), both("logical_or")(y, y), both("logical_not")(x)), a, b,
             grad=False)
    check_op(lambda x, y: (x & (y > 0), x | (y > 0), ~x), a, b, grad=False)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # log of negatives and overflow are intended here
def test_isnan_isinf_isfinite():
    values = Const([[np.nan, np.inf, -np.inf], [0.0, 1.5, -2.0]])
    for name in ("isnan", "isinf", "isfinite"):
        check_op(lambda x, n=name: getattr(x, n)(), values, grad=False)
        check_op(both(name), values, grad=False)
        check_op(both(name), Const([1, -2, 0]), grad=False)
    check_op(lambda x: (x.log().isnan(), (x * 1e308 * 10).isinf()), (3, 2), grad=False)


# ----------------------------------------------------------------------------------- softmax
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -2])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax(name, dim):
    check_op(lambda x: getattr(x, name)(dim), (2, 3, 4))
    check_op(lambda x: both(name)(x, dim), (2, 3, 4), gradcheck=False)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_large_inputs_and_edge_shapes(name):
    check_op(lambda x: getattr(x, name)(-1), (3, 4), low=990, high=1010)
    check_op(lambda x: getattr(x * 1000, name)(0), (3, 4))
    check_op(lambda x: getattr(x - 1000, name)(1), (2, 5))
    check_op(lambda x: getattr(x, name)(0), ())
    check_op(lambda x: getattr(x, name)(-1), ())
    check_op(lambda x: getattr(x, name)(0), (0, 3))
    check_op(lambda x: getattr(x, name)(-1), (0, 3))
    check_op(lambda x: getattr(x, name)(dim=1), (3, 1))
    check_op(lambda x: getattr(x, name)(-1, dtype=dn.float64), (2, 3),
             torch_fn=lambda x: getattr(x, name)(-1, dtype=torch.float64))


# ----------------------------------------------------------------------------------- broadcasting properties
BROADCAST_OPS = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "maximum": lambda a, b: a.maximum(b),
}


@pytest.mark.parametrize("name", list(BROADCAST_OPS))
@settings(max_examples=20, deadline=None, derandomize=True)
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=1, max_side=3))
def test_broadcasting_property(name, shapes):
    """Forward values and both input gradients (summed over broadcast axes) equal torch's."""
    a, b = shapes.input_shapes
    check_op(BROADCAST_OPS[name], a, b, low=0.5, high=2.0, gradcheck=False)
    assert dn.ones(*a).add(dn.ones(*b)).shape == shapes.result_shape


# ----------------------------------------------------------------------------------- second order
SECOND_ORDER = [
    ("tanh", lambda x: x.tanh(), -2, 2), ("sigmoid", lambda x: x.sigmoid(), -3, 3), ("exp", lambda x: x.exp(), -2, 2),
    ("cube", lambda x: x ** 3, -2, 2), ("log_softmax", lambda x: x.log_softmax(-1), -2, 2),
    ("softmax", lambda x: x.softmax(0), -2, 2), ("sqrt", lambda x: x.sqrt(), 0.5, 2),
    ("reciprocal", lambda x: 1 / x, 0.5, 2), ("sin", lambda x: x.sin(), -3, 3), ("log", lambda x: x.log(), 0.5, 2),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("name", "fn", "low", "high"), SECOND_ORDER, ids=[s[0] for s in SECOND_ORDER])
def test_second_order(name, fn, low, high, dtype):
    """g = d(Σ w1·f(x))/dx with create_graph=True, then backward of Σ w2·g, both compared with torch."""
    rng = np.random.default_rng(0)
    x0 = rng.uniform(low, high, (3, 4)).astype(dtype)
    w1, w2 = (rng.standard_normal((3, 4)).astype(dtype) for _ in range(2))
    results = []
    for lib in (dn, torch):
        x = lib.tensor(x0, requires_grad=True)
        (g,) = lib.autograd.grad((fn(x) * lib.tensor(w1)).sum(), x, create_graph=True)
        (g * lib.tensor(w2)).sum().backward()
        results.append((g, x.grad))
    (g_dn, gg_dn), (g_torch, gg_torch) = results
    atol, rtol = (1e-10, 1e-8) if dtype == np.float64 else (1e-4, 1e-4)
    assert_close(g_dn, g_torch, atol, rtol, "first derivative")
    assert_close(gg_dn, gg_torch, atol, rtol, "second derivative")
    assert gg_dn.dtype == np.dtype(dtype)


GRADGRAD = [
    ("tanh", lambda x: x.tanh(), (3, 2)), ("mul", lambda a, b: a * b, (2, 3), (3,)),
    ("div", lambda a, b: a / (b + 3), (2, 3), (3,)), ("pow", lambda a, b: (a + 3) ** b, (2, 2), (2,)),
    ("log_softmax", lambda x: x.log_softmax(1), (2, 3)), ("softmax", lambda x: x.softmax(0), (3, 2)),
    ("sigmoid_sqrt", lambda x: (x.sigmoid() + 1).sqrt().rsqrt(), (4,)),
    ("where_clamp", lambda x, y: both("where")(x > 0, x ** 2, y.clamp(-1, 1) * x), (3,), (3,)),
]


@pytest.mark.parametrize(("name", "fn", "shapes"), [(g[0], g[1], g[2:]) for g in GRADGRAD],
                         ids=[g[0] for g in GRADGRAD])
def test_gradgradcheck(name, fn, shapes):
    rng = np.random.default_rng(1)
    inputs = [dn.tensor(rng.uniform(-2, 2, s), requires_grad=True) for s in shapes]
    assert dn.autograd.gradgradcheck(fn, inputs)


def test_gradgradcheck_detects_wrong_second_derivative():
    """The checker is not vacuous: a backward that is not differentiable through its own graph fails."""

    class DetachedSquare(dn.autograd.Function):
        def forward(self, x):
            return x * x

        def backward(self, gy):
            return gy * 2 * self.inputs[0].detach()

    x = dn.tensor([0.5, -1.0], dtype=dn.float64, requires_grad=True)
    with pytest.raises(dn.autograd.GradcheckError, match="Jacobian mismatch"):
        dn.autograd.gradgradcheck(lambda t: DetachedSquare()(t) * t, [x])


# ----------------------------------------------------------------------------------- error messages
def test_broadcast_error_names_op_and_shapes():
    with pytest.raises(RuntimeError, match=r"add.*\(2, 3\).*\(4,\)"):
        dn.ones(2, 3) + dn.ones(4)
    with pytest.raises(RuntimeError, match=r"mul.*\(2, 3\).*\(3, 2\)"):
        dn.ones(2, 3) * dn.ones(3, 2)
    with pytest.raises(RuntimeError, match=r"maximum.*\(5,\).*\(2, 4\)"):
        dn.maximum(dn.ones(5), dn.ones(2, 4))


def test_matmul_error_names_shapes():
    with pytest.raises(RuntimeError, match=r"matmul.*\(2, 3\).*\(4, 5\)"):
        dn.ones(2, 3) @ dn.ones(4, 5)
    with pytest.raises(RuntimeError, match=r"\(2, 3, 4\).*\(5, 4, 2\)"):
        dn.ones(2, 3, 4) @ dn.ones(5, 4, 2)


def test_backward_non_scalar_names_shape():
    y = dn.ones(2, 3, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"\(2, 3\)"):
        y.backward()
