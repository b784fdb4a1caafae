"""The Tensor object itself, against torch.Tensor: properties, conversions, repr, operators."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import deepnum as dn
from deepnum import backend
from tests.helpers import assert_close, check_op, to_torch_dtype

VALUES = [[1.5, -2.0, 3.25], [0.0, 4.0, -5.5]]


def twins(values=VALUES, dtype=np.float32):
    array = np.asarray(values, dtype=dtype)
    return dn.tensor(array), torch.tensor(array)


# ---------------------------------------------------------------- properties
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3), (2, 0, 4), (1, 2, 3, 1)])
def test_shape_properties(shape):
    x, xt = dn.zeros(shape), torch.zeros(shape)
    assert x.shape == tuple(xt.shape) and x.size() == tuple(xt.size())
    assert x.ndim == xt.ndim and x.dim() == xt.dim()
    assert x.numel() == xt.numel() and dn.numel(x) == torch.numel(xt)
    for d in range(-len(shape), len(shape)):
        assert x.size(d) == xt.size(d)
    assert x.dtype == dn.float32 and x.device == "cpu" and not x.is_cuda
    assert x.element_size() == xt.element_size()


def test_size_dim_out_of_range():
    with pytest.raises(IndexError):
        torch.zeros(2, 3).size(2)
    with pytest.raises(IndexError):
        dn.zeros(2, 3).size(2)


def test_len_and_iteration():
    x, xt = twins()
    assert len(x) == len(xt) == 2
    rows = list(x)
    assert len(rows) == 2 and all(isinstance(r, dn.Tensor) for r in rows)
    for r, rt in zip(rows, xt):
        assert_close(r, rt, 0, 0, what="row")
    assert [e.item() for e in dn.tensor([1, 2, 3])] == [1, 2, 3]
    assert len(dn.zeros(0, 3)) == 0 and list(dn.zeros(0, 3)) == []
    for fn in (len, iter):
        with pytest.raises(TypeError):
            fn(torch.tensor(1.0))
        with pytest.raises(TypeError, match="0-d"):
            fn(dn.tensor(1.0))


def test_iteration_keeps_the_graph():
    x = dn.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    total = None
    for i, row in enumerate(x):
        term = (row * (i + 1)).sum()
        total = term if total is None else total + term
    total.backward()
    assert x.grad.tolist() == [[1.0, 1.0], [2.0, 2.0]]


# ---------------------------------------------------------------- conversion
def test_numpy_shares_memory_and_refuses_grad():
    x = dn.tensor([1.0, 2.0])
    array = x.numpy()
    assert isinstance(array, np.ndarray) and array.dtype == np.float32
    array[0] = 7.0
    assert x.tolist() == [7.0, 2.0]
    w = dn.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError):
        torch.tensor([1.0], requires_grad=True).numpy()
    with pytest.raises(RuntimeError, match="detach"):
        w.numpy()
    assert w.detach().numpy().tolist() == [1.0]


@pytest.mark.parametrize("value", [3.5, 3, True, -0.0])
def test_item_types(value):
    x, xt = dn.tensor(value), torch.tensor(value)
    assert x.item() == xt.item() and type(x.item()) is type(xt.item())
    assert dn.tensor([[value]]).item() == torch.tensor([[value]]).item()


def test_item_of_many_elements_raises():
    with pytest.raises(RuntimeError):
        torch.tensor([1.0, 2.0]).item()
    with pytest.raises(RuntimeError, match="2 elements"):
        dn.tensor([1.0, 2.0]).item()


@pytest.mark.parametrize("values", [VALUES, 2.5, [True, False], [[1, 2], [3, 4]], [], [[]]])
def test_tolist(values):
    x, xt = dn.tensor(values), torch.tensor(values)
    assert x.tolist() == xt.tolist()
    assert type(x.tolist()) is type(xt.tolist())


def test_python_number_conversions():
    assert float(dn.tensor([2])) == float(torch.tensor([2])) == 2.0
    assert int(dn.tensor(3.7)) == int(torch.tensor(3.7)) == 3
    assert int(dn.tensor(-3.7)) == int(torch.tensor(-3.7)) == -3
    assert [10, 20, 30][dn.tensor(1)] == 20  # __index__
    assert bool(dn.tensor([0.0])) is bool(torch.tensor([0.0])) is False
    assert bool(dn.tensor(2.0)) is True


def test_bool_of_many_elements_raises():
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(torch.tensor([1.0, 2.0]))
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(dn.tensor([1.0, 2.0]))
    with pytest.raises(RuntimeError, match="ambiguous"):
        if dn.tensor([1.0, 2.0]) > 0:
            pass


@pytest.mark.parametrize("method", ["float", "half", "double", "long", "int", "bool"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
def test_dtype_methods(method, dtype):
    values = [[1.5, -2.7, 0.0], [3.0, 0.25, -1.0]] if dtype != np.bool_ else [[True, False, True]]
    array = np.asarray(values).astype(dtype)
    x, xt = dn.tensor(array), torch.tensor(array)
    out, outt = getattr(x, method)(), getattr(xt, method)()
    assert to_torch_dtype(out.dtype) == outt.dtype
    assert out.tolist() == outt.tolist()
    assert (out is x) == (outt is xt)  # no copy when the dtype already matches


def test_to_dtype_device_and_other():
    x, xt = twins()
    assert x.to(dn.float64).dtype == dn.float64
    assert x.to("float64").dtype == dn.float64
    assert x.to(dtype=dn.int64).tolist() == xt.to(dtype=torch.int64).tolist()
    assert x.to("cpu") is x and x.cpu() is x and x.to(dn.float32) is x
    assert x.to("cpu", dn.float64).dtype == dn.float64
    assert x.to(device="cpu", dtype=dn.float16).dtype == dn.float16
    assert x.to(dn.tensor([1], dtype=dn.int32)).dtype == dn.int32
    assert x.type_as(dn.tensor([1.0], dtype=dn.float64)).dtype == dn.float64
    assert x.type_as(dn.tensor([1])).tolist() == xt.type_as(torch.tensor([1])).tolist()


def test_dtype_conversion_is_differentiable():
    check_op(lambda t: t.double() * 3, (2, 3), dtypes=(np.float32,))
    check_op(lambda t: t.float() * 3, (2, 3), dtypes=(np.float64,), gradcheck=False)
    check_op(lambda t: t.to(dn.float64) * t, (2, 3), torch_fn=lambda t: t.to(torch.float64) * t)
    x = dn.tensor([1.0, 2.0], requires_grad=True)
    (x.double() * 3).sum().backward()
    assert x.grad.dtype == dn.float32 and x.grad.tolist() == [3.0, 3.0]


def test_cuda_without_cupy_names_the_gpu_extra(monkeypatch):
    monkeypatch.setattr(backend, "_cupy", lambda: None)  # as on a machine without CuPy
    x = dn.tensor([1.0])
    for make in (lambda: x.to("cuda"), lambda: x.cuda(), lambda: x.to("cuda:0"),
                 lambda: dn.zeros(2, device="cuda"), lambda: dn.tensor([1.0], device="cuda")):
        with pytest.raises(RuntimeError, match=r"deepnum\[gpu\]"):
            make()


def test_unknown_device_raises():
    with pytest.raises((TypeError, ValueError), match="tpu"):
        dn.tensor([1.0]).to("tpu")


# ---------------------------------------------------------------- repr
@pytest.mark.parametrize("values", [
    [[1.5, 2.25], [-3.125, 4.0]], [0.1, 0.2], [1e-5, 1.0], [1e10, 1.0], [1.0, 2000.0], [1.0, 2.0], 2.5, -0.5,
    3.0, [float("nan"), 1.5], [[1, 2], [3, 4]], 7, [True, False], [],
])
def test_repr_matches_torch(values):
    assert repr(dn.tensor(values)) == repr(torch.tensor(values))


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.uint8])
def test_repr_names_non_default_dtype(dtype):
    array = np.array([1, 2], dtype=dtype)
    assert repr(dn.tensor(array)) == repr(torch.tensor(array)).replace("torch.", "deepnum.")


@pytest.mark.parametrize("shape", [(2, 0), (0, 3), (1, 0, 2)])
def test_repr_empty_shows_size(shape):
    assert repr(dn.zeros(shape)) == repr(torch.zeros(shape))


def test_repr_shows_requires_grad_and_grad_fn():
    x = dn.tensor([1.0, 2.0], requires_grad=True)
    assert repr(x) == repr(torch.tensor([1.0, 2.0], requires_grad=True)) == "tensor([1., 2.], requires_grad=True)"
    y = x * 2
    assert repr(y) == "tensor([2., 4.], grad_fn=<MulBackward>)"
    assert "grad_fn=<MulBackward0>" in repr(torch.tensor([1.0, 2.0], requires_grad=True) * 2)
    z = dn.tensor([1.0, 2.0], dtype=dn.float64, requires_grad=True)
    assert repr(z) == "tensor([1., 2.], dtype=deepnum.float64, requires_grad=True)"


def test_repr_summarises_large_tensors():
    text = repr(dn.arange(2000))
    assert text.startswith("tensor([   0,    1,    2,") and "..." in text and text.endswith("1999])")
    assert len(text) < 100


# ---------------------------------------------------------------- transposes
@pytest.mark.parametrize("shape", [(3,), (2, 3), (2, 3, 4)])
def test_T(shape):
    check_op(lambda t: t.T, shape, torch_fn=lambda t: t.permute(*range(t.ndim - 1, -1, -1)))


@pytest.mark.parametrize("shape", [(2, 3), (4, 2, 3), (2, 1, 3, 2)])
def test_mT(shape):
    check_op(lambda t: t.mT, shape)


# ---------------------------------------------------------------- comparisons and hashing
@pytest.mark.parametrize("op", [
    lambda a, b: a == b, lambda a, b: a != b, lambda a, b: a < b, lambda a, b: a <= b,
    lambda a, b: a > b, lambda a, b: a >= b,
])
def test_comparisons_return_bool_tensors(op):
    a_np = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], dtype=np.float32)
    b_np = np.array([2.0, 2.0, 2.0], dtype=np.float32)
    a, b = dn.tensor(a_np), dn.tensor(b_np)
    at, bt = torch.tensor(a_np), torch.tensor(b_np)
    for got, want in [(op(a, b), op(at, bt)), (op(a, 2.0), op(at, 2.0)), (op(2, a), op(2, at)),
                      (op(a, dn.tensor(2)), op(at, torch.tensor(2))), (op(a[0, 0], a), op(at[0, 0], at))]:
        assert got.dtype == dn.bool_ and want.dtype == torch.bool
        assert got.tolist() == want.tolist()
        assert not got.requires_grad


def test_comparison_of_grad_tensor_has_no_grad():
    x = dn.tensor([1.0, 2.0], requires_grad=True)
    assert not (x > 1).requires_grad and (x > 1).grad_fn is None


def test_hash_is_identity():
    a, b = dn.tensor([1.0, 2.0]), dn.tensor([1.0, 2.0])
    seen = {a, b, a}
    assert len(seen) == 2 and a in seen
    table = {a: "a", b: "b"}
    assert table[a] == "a" and table[b] == "b"
    assert hash(a) == hash(a) and hash(a) != hash(b)


class _GpuLikeArray(np.ndarray):
    """A NumPy array that reports itself as living on the GPU (its class module starts with
    'cupy'), so the device check can be exercised on a machine without CuPy."""

    __module__ = "cupy._fake"


def test_op_on_tensors_of_different_devices_names_op_and_shapes():
    cpu = dn.ones(2, 3)
    gpu = dn.Tensor._make(np.ones((2, 3), dtype=np.float32).view(_GpuLikeArray))
    assert gpu.device == "cuda"
    expected = r"add: expected all tensors on the same device, got cpu\(2, 3\), cuda\(2, 3\)"
    with pytest.raises(RuntimeError, match=expected):
        cpu + gpu
    with pytest.raises(RuntimeError, match=r"matmul: expected all tensors on the same device"):
        cpu @ gpu.mT


@pytest.mark.parametrize("weight", [0.0, 0.1, 0.49, 0.5, 0.75, 0.999, 1.0, -0.3, 1.5])
def test_lerp_in_place_equals_torch(weight):
    """PyTorch switches to end − (end − self)·(1 − w) for |w| ≥ 0.5, so w = 1 lands exactly on ``end``
    (torch's kernel fuses the multiply-add, so other weights may differ in the last bit)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 4096)).astype(np.float32)
    expected = torch.from_numpy(a.copy()).lerp_(torch.from_numpy(b), weight).numpy()
    got = dn.tensor(a.copy()).lerp_(dn.tensor(b), weight).numpy()
    if weight in (0.0, 1.0):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(got, expected, rtol=3e-7, atol=3e-7)
