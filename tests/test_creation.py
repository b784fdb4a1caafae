"""Making tensors, against torch: ``tensor`` and its dtype inference, memory sharing, factories,
random sampling with seeds and generators, and the default dtype."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import deepnum as dn
from tests.helpers import assert_close, to_torch_dtype

NUMPY_DTYPES = [np.float16, np.float32, np.float64, np.int8, np.uint8, np.int16, np.int32, np.int64, np.bool_]


def same_dtype(x: dn.Tensor, xt: torch.Tensor) -> bool:
    return to_torch_dtype(x.dtype) == xt.dtype


# ---------------------------------------------------------------- tensor()
@pytest.mark.parametrize("data", [
    [1, 2, 3], [1.0, 2, 3], [True, False], [1, True], [[1, 2.5], [3, 4]], 3, 3.5, True, [], [[]],
    [2**40, -1], [[True], [False]], [1e-30, 1e30],
])
def test_tensor_infers_dtype_from_python_data(data):
    x, xt = dn.tensor(data), torch.tensor(data)
    assert same_dtype(x, xt), f"{x.dtype} vs {xt.dtype}"
    assert x.shape == tuple(xt.shape)
    assert_close(x, xt, 0, 1e-7, what="values")


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_tensor_keeps_numpy_dtype(dtype):
    array = np.array([[0, 1, 2], [3, 4, 5]]).astype(dtype)
    for x, xt in [(dn.tensor(array), torch.tensor(array)), (dn.as_tensor(array), torch.as_tensor(array)),
                  (dn.from_numpy(array), torch.from_numpy(array)), (dn.tensor(array[0, 0]), torch.tensor(array[0, 0]))]:
        assert same_dtype(x, xt), f"{x.dtype} vs {xt.dtype}"
        assert x.tolist() == xt.tolist()


def test_tensor_with_dtype_argument():
    for data in ([1, 2], [1.5, 2.5], np.array([1.5, -2.5])):
        for dt, tdt in [(dn.float64, torch.float64), (dn.int32, torch.int32), (dn.float16, torch.float16),
                        (dn.bool_, torch.bool)]:
            x, xt = dn.tensor(data, dtype=dt), torch.tensor(data, dtype=tdt)
            assert same_dtype(x, xt) and x.tolist() == xt.tolist()


def test_tensor_copies_data():
    array = np.ones(3, dtype=np.float32)
    x = dn.tensor(array)
    array[0] = 5.0
    assert x.tolist() == [1.0, 1.0, 1.0]
    y = dn.tensor(x)
    x.add_(1)
    assert y.tolist() == [1.0, 1.0, 1.0] and not np.shares_memory(x.data, y.data)


def test_tensor_requires_grad_makes_a_leaf():
    x = dn.tensor([1.0, 2.0], requires_grad=True)
    assert x.requires_grad and x.is_leaf
    source = dn.tensor([1.0], requires_grad=True) * 2
    y = dn.tensor(source)  # a copy of the values, cut from the graph
    assert not y.requires_grad and y.is_leaf


def test_tensor_rejects_bad_data():
    with pytest.raises(TypeError, match="str"):
        dn.tensor("abc")
    with pytest.raises(ValueError):
        dn.tensor([[1], [1, 2]])


def test_as_tensor_and_from_numpy_share_memory():
    for make in (dn.as_tensor, dn.from_numpy):
        array = np.zeros(3, dtype=np.float64)
        x = make(array)
        array[1] = 4.0
        assert x.tolist() == [0.0, 4.0, 0.0]
        with dn.no_grad():
            x[0] = 2.0
        assert array[0] == 2.0
    t = dn.tensor([1.0])
    assert dn.as_tensor(t) is t
    converted = dn.as_tensor(np.zeros(2, dtype=np.float64), dtype=dn.float32)
    assert converted.dtype == dn.float32
    with pytest.raises(TypeError, match="ndarray"):
        torch.from_numpy([1.0])
    with pytest.raises(TypeError, match="ndarray"):
        dn.from_numpy([1.0])


def test_as_tensor_from_list_infers_like_tensor():
    assert same_dtype(dn.as_tensor([1, 2]), torch.as_tensor([1, 2]))
    assert same_dtype(dn.as_tensor([1.0, 2]), torch.as_tensor([1.0, 2]))


# ---------------------------------------------------------------- constant factories
@pytest.mark.parametrize("name", ["zeros", "ones", "empty"])
@pytest.mark.parametrize("size", [(2, 3), ((2, 3),), ([4],), (0,), ((),), (1, 0, 2)])
def test_constant_factories(name, size):
    x, xt = getattr(dn, name)(*size), getattr(torch, name)(*size)
    assert x.shape == tuple(xt.shape) and same_dtype(x, xt)
    if name != "empty":
        assert x.tolist() == xt.tolist()


@pytest.mark.parametrize("name", ["zeros", "ones", "empty"])
def test_constant_factories_dtype_and_grad(name):
    x = getattr(dn, name)(2, 2, dtype=dn.int64)
    assert x.dtype == dn.int64
    y = getattr(dn, name)(3, dtype=dn.float64, requires_grad=True)
    assert y.dtype == dn.float64 and y.requires_grad and y.is_leaf
    with pytest.raises(RuntimeError, match="floating point"):
        getattr(dn, name)(3, dtype=dn.int64, requires_grad=True)


@pytest.mark.parametrize("fill", [1, 1.5, True, False, -7, 2**40])
def test_full_infers_dtype_from_fill(fill):
    x, xt = dn.full((2, 3), fill), torch.full((2, 3), fill)
    assert same_dtype(x, xt) and x.tolist() == xt.tolist()
    x, xt = dn.full([2], fill, dtype=dn.float64), torch.full([2], fill, dtype=torch.float64)
    assert same_dtype(x, xt) and x.tolist() == xt.tolist()


def test_full_int_dtype_truncates():
    assert dn.full((2,), 2.7, dtype=dn.int64).tolist() == torch.full((2,), 2.7, dtype=torch.int64).tolist()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.bool_])
def test_like_factories(dtype):
    array = np.ones((2, 3)).astype(dtype)
    x, xt = dn.tensor(array), torch.tensor(array)
    for name in ("zeros_like", "ones_like", "empty_like"):
        out, outt = getattr(dn, name)(x), getattr(torch, name)(xt)
        assert out.shape == tuple(outt.shape) and same_dtype(out, outt)
        if name != "empty_like":
            assert out.tolist() == outt.tolist()
        assert getattr(dn, name)(x, dtype=dn.float64).dtype == dn.float64
    for fill in (7, 2.5, True):
        out, outt = dn.full_like(x, fill), torch.full_like(xt, fill)
        assert same_dtype(out, outt) and out.tolist() == outt.tolist()


def test_like_factories_requires_grad():
    x = dn.zeros(2, 2)
    y = dn.ones_like(x, requires_grad=True)
    assert y.requires_grad and y.is_leaf and not x.requires_grad


# ---------------------------------------------------------------- ranges
@pytest.mark.parametrize("args", [
    (5,), (1, 4), (0, 1, 0.25), (1.0, 4), (5, 0, -1), (5, 0, -1.5), (0, 10, 3), (1, 2.5, 0.5), (0.0,),
    (0,), (3, 3), (-1, 1, 0.3), (0, 1, 0.1), (-5, 5, 2), (10, -10, -3),
])
def test_arange_matches_torch(args):
    x, xt = dn.arange(*args), torch.arange(*args)
    assert same_dtype(x, xt), f"{x.dtype} vs {xt.dtype}"
    assert x.shape == tuple(xt.shape)
    assert_close(x, xt, 1e-6, 1e-6, what=f"arange{args}")


@pytest.mark.parametrize("dtype", [dn.float64, dn.int32, dn.float16])
def test_arange_dtype(dtype):
    tdt = to_torch_dtype(dtype)
    integral = np.dtype(dtype).kind == "i"  # (torch truncates a float step to an integer one there)
    for args in ((5,), (2, 9, 3), (6, -2, -2)) if integral else ((5,), (1, 2.5, 0.1), (0, 3, 0.5)):
        x, xt = dn.arange(*args, dtype=dtype), torch.arange(*args, dtype=tdt)
        assert same_dtype(x, xt) and x.shape == tuple(xt.shape)
        assert_close(x, xt, 1e-3, 1e-3, what=f"arange{args} {dtype}")


def test_arange_bad_step():
    for args in ((0, 5, 0), (0, 5, -1), (5, 0, 1), (-3,)):
        with pytest.raises(RuntimeError):
            torch.arange(*args)
        with pytest.raises(RuntimeError, match="step"):
            dn.arange(*args)


def test_arange_requires_grad():
    x = dn.arange(0.0, 3.0, requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.tolist() == [0.0, 2.0, 4.0]


@pytest.mark.parametrize("args", [(0, 1, 5), (-1, 1, 1), (2, 3, 0), (0, 10, 4), (3, -3, 7), (0.5, 0.75, 2)])
def test_linspace_matches_torch(args):
    x, xt = dn.linspace(*args), torch.linspace(*args)
    assert same_dtype(x, xt) and x.shape == tuple(xt.shape)
    assert_close(x, xt, 1e-6, 1e-6, what=f"linspace{args}")
    x, xt = dn.linspace(*args, dtype=dn.float64), torch.linspace(*args, dtype=torch.float64)
    assert same_dtype(x, xt)
    assert_close(x, xt, 1e-12, 1e-12, what=f"linspace{args} float64")


def test_linspace_integer_dtype_and_errors():
    for steps in (4, 5):
        assert dn.linspace(0, 10, steps, dtype=dn.int64).tolist() == \
            torch.linspace(0, 10, steps, dtype=torch.int64).tolist()
    with pytest.raises(RuntimeError):
        torch.linspace(0, 1, -1)
    with pytest.raises(RuntimeError, match="steps"):
        dn.linspace(0, 1, -1)


@pytest.mark.parametrize("args", [(3,), (2, 3), (3, 2), (0,), (1, 4)])
def test_eye(args):
    x, xt = dn.eye(*args), torch.eye(*args)
    assert same_dtype(x, xt) and x.tolist() == xt.tolist()
    x, xt = dn.eye(*args, dtype=dn.int64), torch.eye(*args, dtype=torch.int64)
    assert same_dtype(x, xt) and x.tolist() == xt.tolist()


# ---------------------------------------------------------------- random
@pytest.mark.parametrize("name", ["rand", "randn"])
def test_rand_randn_shapes_and_dtypes(name):
    dn.manual_seed(0)
    fn, tfn = getattr(dn, name), getattr(torch, name)
    for size in [(2, 3), ((2, 3),), ([4],), ((),), (0,)]:
        x, xt = fn(*size), tfn(*size)
        assert x.shape == tuple(xt.shape) and same_dtype(x, xt)
    for dt in (dn.float64, dn.float16):
        assert fn(3, dtype=dt).dtype == dt
    x = fn(3, requires_grad=True)
    assert x.requires_grad and x.is_leaf
    with pytest.raises(TypeError, match="floating"):
        fn(3, dtype=dn.int64)


def test_rand_range_and_moments():
    dn.manual_seed(1)
    u = dn.rand(20000).numpy()
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005
    z = dn.randn(20000, dtype=dn.float64).numpy()
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1.0) < 0.03


def test_randint():
    dn.manual_seed(2)
    for x, xt in [(dn.randint(0, 10, (3, 4)), torch.randint(0, 10, (3, 4))),
                  (dn.randint(5, (2, 2)), torch.randint(5, (2, 2))),
                  (dn.randint(-3, 3, size=(6,)), torch.randint(-3, 3, size=(6,))),
                  (dn.randint(3, 5, (2,), dtype=dn.int32), torch.randint(3, 5, (2,), dtype=torch.int32)),
                  (dn.randint(0, 10, (3,), dtype=dn.float32), torch.randint(0, 10, (3,), dtype=torch.float32))]:
        assert x.shape == tuple(xt.shape) and same_dtype(x, xt)
    values = dn.randint(-3, 3, (5000,)).numpy()
    assert set(values.tolist()) == set(range(-3, 3))
    assert set(dn.randint(4, (1000,)).numpy().tolist()) == {0, 1, 2, 3}
    with pytest.raises(RuntimeError):
        torch.randint(5, 5, (3,))
    with pytest.raises(RuntimeError, match="low < high"):
        dn.randint(5, 5, (3,))


def test_randperm():
    dn.manual_seed(3)
    for n in (0, 1, 10):
        p, pt = dn.randperm(n), torch.randperm(n)
        assert same_dtype(p, pt) and sorted(p.tolist()) == list(range(n))
    assert dn.randperm(5, dtype=dn.int32).dtype == dn.int32
    assert any(dn.randperm(20).tolist() != list(range(20)) for _ in range(3))


def test_normal_with_numbers():
    dn.manual_seed(4)
    x, xt = dn.normal(2.0, 3.0, (2, 2)), torch.normal(2.0, 3.0, (2, 2))
    assert x.shape == tuple(xt.shape) and same_dtype(x, xt)
    big = dn.normal(2.0, 3.0, size=(20000,), dtype=dn.float64).numpy()
    assert abs(big.mean() - 2.0) < 0.1 and abs(big.std() - 3.0) < 0.1
    with pytest.raises(RuntimeError, match="std"):
        dn.normal(0.0, -1.0, (2,))


def test_normal_with_tensors():
    dn.manual_seed(5)
    mean = dn.tensor([[0.0], [100.0]], dtype=dn.float64)
    std = dn.tensor([0.0, 1e-3, 1.0])
    x = dn.normal(mean, std)
    xt = torch.normal(torch.tensor([[0.0], [100.0]], dtype=torch.float64), torch.tensor([0.0, 1e-3, 1.0]))
    assert x.shape == tuple(xt.shape) == (2, 3) and same_dtype(x, xt)
    assert x.numpy()[0, 0] == 0.0 and x.numpy()[1, 0] == 100.0  # std 0: exactly the mean
    assert np.all(np.abs(x.numpy()[:, 1] - [0.0, 100.0]) < 0.01)
    y, yt = dn.normal(dn.zeros(3), 2.0), torch.normal(torch.zeros(3), 2.0)
    assert y.shape == tuple(yt.shape) and same_dtype(y, yt)
    z, zt = dn.normal(1.0, dn.ones(4, dtype=dn.float64)), torch.normal(1.0, torch.ones(4, dtype=torch.float64))
    assert z.shape == tuple(zt.shape) and same_dtype(z, zt)


@pytest.mark.parametrize("name", ["rand_like", "randn_like"])
def test_random_like(name):
    dn.manual_seed(6)
    for dt in (dn.float32, dn.float64):
        x, xt = dn.zeros(2, 3, dtype=dt), torch.zeros(2, 3, dtype=to_torch_dtype(dt))
        out, outt = getattr(dn, name)(x), getattr(torch, name)(xt)
        assert out.shape == tuple(outt.shape) and same_dtype(out, outt)
    assert getattr(dn, name)(dn.zeros(2), dtype=dn.float64).dtype == dn.float64
    assert getattr(dn, name)(dn.zeros(2), requires_grad=True).requires_grad
    with pytest.raises(TypeError, match="floating"):
        getattr(dn, name)(dn.zeros(2, dtype=dn.int64))


@pytest.mark.parametrize("draw", [
    lambda **k: dn.rand(4, 3, **k), lambda **k: dn.randn(5, **k), lambda **k: dn.randint(0, 100, (6,), **k),
    lambda **k: dn.randperm(8, **k), lambda **k: dn.normal(1.0, 2.0, (3,), **k),
])
def test_manual_seed_reproduces(draw):
    dn.manual_seed(123)
    first = draw().tolist()
    dn.manual_seed(123)
    assert draw().tolist() == first
    dn.manual_seed(124)
    assert draw().tolist() != first
    gen = dn.Generator().manual_seed(123)
    assert draw(generator=gen).tolist() == first  # the same stream as the global generator with that seed


def test_generator_is_independent_of_global():
    dn.manual_seed(7)
    expected = dn.randn(5).tolist()
    dn.manual_seed(7)
    gen = dn.Generator().manual_seed(99)
    dn.randn(100, generator=gen)  # drawing from gen does not advance the global stream
    assert dn.randn(5).tolist() == expected
    a = dn.rand(3, generator=dn.Generator().manual_seed(1)).tolist()
    dn.manual_seed(55)
    b = dn.rand(3, generator=dn.Generator().manual_seed(1)).tolist()
    assert a == b  # nor does the global seed affect gen
    assert dn.manual_seed(3) is dn.default_generator and dn.default_generator.initial_seed() == 3


def test_generator_state_round_trip():
    gen = dn.Generator().manual_seed(11)
    state = gen.get_state()
    first = dn.randn(4, generator=gen).tolist()
    gen.set_state(state)
    assert dn.randn(4, generator=gen).tolist() == first


def test_float64_draws_are_not_float32_values():
    dn.manual_seed(8)
    x = dn.rand(1000, dtype=dn.float64).numpy()
    assert x.dtype == np.float64 and np.any(x != x.astype(np.float32).astype(np.float64))


# ---------------------------------------------------------------- default dtype
def test_set_default_dtype():
    assert dn.get_default_dtype() == dn.float32 and torch.get_default_dtype() == torch.float32
    try:
        dn.set_default_dtype(dn.float64)
        assert dn.get_default_dtype() == dn.float64
        for x in (dn.tensor([1.5]), dn.tensor(2.0), dn.zeros(2), dn.ones(2), dn.full((2,), 1.5), dn.arange(0.0, 2),
                  dn.linspace(0, 1, 3), dn.eye(2), dn.rand(2), dn.randn(2), dn.normal(0.0, 1.0, (2,)), dn.empty(1)):
            assert x.dtype == dn.float64
        assert dn.tensor([1, 2]).dtype == dn.int64 and dn.arange(3).dtype == dn.int64
        assert dn.tensor(np.zeros(2, dtype=np.float32)).dtype == dn.float32  # arrays keep their dtype
        assert dn.tensor([1.0]).to(float).dtype == dn.float64
    finally:
        dn.set_default_dtype(dn.float32)
    assert dn.get_default_dtype() == dn.float32 and dn.zeros(1).dtype == dn.float32


def test_set_default_dtype_rejects_integers():
    with pytest.raises(TypeError):
        torch.set_default_dtype(torch.int64)
    with pytest.raises(TypeError, match="floating"):
        dn.set_default_dtype(dn.int64)
    assert dn.get_default_dtype() == dn.float32
