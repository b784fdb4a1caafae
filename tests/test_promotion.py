"""Type promotion matches PyTorch: every case is one expression run on both libraries (``m`` is the
``deepnum`` or the ``torch`` module), and the result dtype and values must agree."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import deepnum as dn


def ints(m, dtype=None):
    return m.tensor([[1, -2, 3], [4, 5, -6]], dtype=dtype or m.int64)


def floats(m, dtype=None):
    return m.tensor([[0.5, -1.25, 2.0], [3.5, -0.75, 1.0]], dtype=dtype or m.float32)


def bools(m):
    return m.tensor([[True, False, True], [False, False, True]])


def scalar(m, value, dtype):
    return m.tensor(value, dtype=dtype)


CASES = {
    # Python numbers never widen a tensor of the same category; a higher category takes the default
    "int64 + float": lambda m: ints(m) + 1.5,
    "float + int64": lambda m: 2.5 * ints(m),
    "float32 + float": lambda m: floats(m) + 1.5,
    "float64 + float": lambda m: floats(m, m.float64) - 0.25,
    "float16 + float": lambda m: floats(m, m.float16) * 3.0,
    "float32 + int": lambda m: floats(m) + 2,
    "int32 + int": lambda m: ints(m, m.int32) + 7,
    "int64 * bool scalar": lambda m: ints(m) * True,
    "bool + int": lambda m: bools(m) + 1,
    "bool * float": lambda m: bools(m) * 2.5,
    "uint8 + int": lambda m: ints(m, m.uint8) + 3,
    # dimensioned tensors of one category: the wider type
    "float32 + float64": lambda m: floats(m) + floats(m, m.float64),
    "float16 + float32": lambda m: floats(m, m.float16) + floats(m),
    "int32 + int64": lambda m: ints(m, m.int32) + ints(m),
    "int8 + uint8": lambda m: ints(m, m.int8) + ints(m, m.uint8),
    "bool + bool": lambda m: bools(m) + bools(m),
    # different categories: the higher category's dtype as is (not NumPy's float64)
    "int64 + float16 tensors": lambda m: ints(m) + floats(m, m.float16),
    "int32 * float32 tensors": lambda m: ints(m, m.int32) * floats(m),
    "int64 - float32 tensors": lambda m: ints(m) - floats(m),
    "bool + int64 tensors": lambda m: bools(m) + ints(m),
    "bool + int32 tensors": lambda m: bools(m) + ints(m, m.int32),
    "bool * float16 tensors": lambda m: bools(m) * floats(m, m.float16),
    # 0-d tensors count only when of a higher category than the dimensioned operands
    "float32 + float64 0-d": lambda m: floats(m) + scalar(m, 2.5, m.float64),
    "float64 0-d + float32": lambda m: scalar(m, 2.5, m.float64) * floats(m),
    "float16 + float64 0-d": lambda m: floats(m, m.float16) + scalar(m, 2.5, m.float64),
    "int32 + int64 0-d": lambda m: ints(m, m.int32) + scalar(m, 3, m.int64),
    "int64 + float64 0-d": lambda m: ints(m) + scalar(m, 0.5, m.float64),
    "int64 + float32 0-d": lambda m: ints(m) + scalar(m, 0.5, m.float32),
    "int32 + float16 0-d": lambda m: ints(m, m.int32) + scalar(m, 0.5, m.float16),
    "bool + int32 0-d": lambda m: bools(m) + scalar(m, 3, m.int32),
    "float16 + int64 0-d": lambda m: floats(m, m.float16) + scalar(m, 3, m.int64),
    "0-d + 0-d": lambda m: scalar(m, 1.5, m.float32) + scalar(m, 2.5, m.float64),
    "0-d int + 0-d float16": lambda m: scalar(m, 2, m.int64) * scalar(m, 2.5, m.float16),
    "0-d int + float": lambda m: scalar(m, 2, m.int32) + 0.5,
    # division, powers and friends
    "int / int": lambda m: ints(m) / ints(m, m.int32),
    "int / number": lambda m: ints(m) / 4,
    "number / int": lambda m: 4 / ints(m),
    "int32 / int32": lambda m: ints(m, m.int32) / ints(m, m.int32),
    "int // int": lambda m: ints(m) // 3,
    "int % float": lambda m: ints(m) % 2.5,
    "int div floor": lambda m: ints(m).div(4, rounding_mode="floor"),
    "int div trunc": lambda m: ints(m).div(ints(m, m.int32) + 10, rounding_mode="trunc"),
    "float16 div trunc": lambda m: floats(m, m.float16).div(0.3, rounding_mode="trunc"),
    "int ** 2": lambda m: ints(m) ** 2,
    "int ** float": lambda m: ints(m).abs() ** 0.5,
    "float ** int tensor": lambda m: 1.5 ** ints(m),
    "float32 ** float64 0-d": lambda m: floats(m).abs() ** scalar(m, 2.0, m.float64),
    "int ** float32 tensor": lambda m: ints(m).abs() ** floats(m),
    # unary ops on integers
    "exp int": lambda m: ints(m).exp(),
    "sqrt int": lambda m: ints(m).abs().sqrt(),
    "sigmoid int32": lambda m: ints(m, m.int32).sigmoid(),
    "abs int32": lambda m: ints(m, m.int32).abs(),
    "neg int": lambda m: -ints(m),
    "square int32": lambda m: ints(m, m.int32).square(),
    "floor int": lambda m: ints(m).floor(),
    "softmax int → float": lambda m: ints(m).float().softmax(-1),
    # comparisons and logic give bool
    "float32 < float64": lambda m: floats(m) < floats(m, m.float64),
    "int == float": lambda m: ints(m) == floats(m),
    "int > float number": lambda m: ints(m) > 1.5,
    "float16 <= int 0-d": lambda m: floats(m, m.float16) <= scalar(m, 1, m.int64),
    "bool != int": lambda m: bools(m) != ints(m),
    "logical_and int float": lambda m: ints(m).logical_and(floats(m)),
    "isnan int": lambda m: ints(m).isnan(),
    # ops with two operands follow the same rules
    "maximum int float": lambda m: m.maximum(ints(m), floats(m)),
    "minimum float16 float64 0-d": lambda m: m.minimum(floats(m, m.float16), scalar(m, 0.0, m.float64)),
    "where int float number": lambda m: m.where(bools(m), ints(m), 2.5),
    "where float32 float64": lambda m: m.where(bools(m), floats(m), floats(m, m.float64)),
    "where float16 number": lambda m: m.where(bools(m), floats(m, m.float16), 0.0),
    "where int32 int number": lambda m: m.where(bools(m), ints(m, m.int32), 0),
    "clamp int float": lambda m: ints(m).clamp(min=1.5),
    "clamp int int": lambda m: ints(m).clamp(-1, 2),
    "clamp float32 float64 tensors": lambda m: floats(m).clamp(min=floats(m, m.float64) - 1),
    "clamp int float 0-d": lambda m: ints(m).clamp(max=scalar(m, 1.5, m.float32)),
    "remainder int32 int64": lambda m: ints(m, m.int32).remainder(ints(m) + 10),
    "add alpha int": lambda m: ints(m).add(ints(m, m.int32), alpha=3),
    "sub alpha float16": lambda m: floats(m, m.float16).sub(floats(m, m.float16), alpha=2),
    "matmul int": lambda m: ints(m) @ ints(m).T,
}


@pytest.mark.parametrize("case", list(CASES))
def test_result_dtype_matches_torch(case):
    expr = CASES[case]
    result, expected = expr(dn), expr(torch)
    expected_dtype = str(expected.dtype).removeprefix("torch.")
    assert str(result.dtype) == expected_dtype, f"{case}: deepnum gives {result.dtype}, torch {expected_dtype}"
    assert result.shape == tuple(expected.shape)
    np.testing.assert_allclose(np.asarray(result.data, dtype=np.float64),
                               expected.detach().numpy().astype(np.float64), rtol=1e-3, atol=1e-3)


def test_float_promotion_keeps_gradient_dtype():
    """Mixed float32/float64 operands: the result is float64, each gradient keeps its input's dtype."""
    a = dn.tensor([1.0, 2.0], requires_grad=True)
    b = dn.tensor([3.0, 4.0], dtype=dn.float64, requires_grad=True)
    out = a * b + 0.5
    assert out.dtype == dn.float64
    out.sum().backward()
    assert a.grad.dtype == dn.float32 and b.grad.dtype == dn.float64
    np.testing.assert_allclose(a.grad.data, [3.0, 4.0])
    np.testing.assert_allclose(b.grad.data, [1.0, 2.0])


def test_python_number_keeps_float32_gradient():
    x = dn.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 0.1 + 1e-300) ** 2.5 / 3.0
    assert y.dtype == dn.float32
    y.sum().backward()
    assert x.grad.dtype == dn.float32


DEFAULT_DTYPE_CASES = {
    "tensor from floats": lambda m: m.tensor([1.0, 2.5]),
    "tensor from ints": lambda m: m.tensor([1, 2]),
    "int + float": lambda m: m.tensor([1, 2]) + 0.5,
    "int / int": lambda m: m.tensor([1, 2]) / 2,
    "int.exp()": lambda m: m.tensor([1, 2]).exp(),
    "bool * float": lambda m: m.tensor([True, False]) * 1.5,
    "ones": lambda m: m.ones(2),
    "float32 + float": lambda m: m.tensor([1.0], dtype=m.float32) + 0.5,
}


@pytest.mark.parametrize("case", list(DEFAULT_DTYPE_CASES))
def test_set_default_dtype(case):
    """``set_default_dtype(float64)`` changes float inference and int-to-float promotion, as in torch;
    both libraries are restored afterwards even if the test fails."""
    expr = DEFAULT_DTYPE_CASES[case]
    assert dn.get_default_dtype() == dn.float32
    try:
        dn.set_default_dtype(dn.float64)
        torch.set_default_dtype(torch.float64)
        assert dn.get_default_dtype() == dn.float64
        result, expected = expr(dn), expr(torch)
        assert str(result.dtype) == str(expected.dtype).removeprefix("torch.")
    finally:
        dn.set_default_dtype(dn.float32)
        torch.set_default_dtype(torch.float32)
    assert dn.get_default_dtype() == dn.float32
    assert dn.tensor([1.0]).dtype == dn.float32
    assert str(expr(dn).dtype) == str(expr(torch).dtype).removeprefix("torch.")


def test_set_default_dtype_rejects_integers():
    with pytest.raises(TypeError, match="int64"):
        dn.set_default_dtype(dn.int64)
    assert dn.get_default_dtype() == dn.float32
