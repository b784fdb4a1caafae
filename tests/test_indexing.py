"""Indexing ops against PyTorch: ``x[index]`` in all its forms, ``__setitem__``, gather, scatter_add,
index_select, take_along_dim and masked_fill (values, dtypes, gradients, gradcheck, errors)."""
import numpy as np
import pytest
import torch

import deepnum as dn
from tests.helpers import Const, check_op

RNG = np.random.default_rng(1234)

# ----------------------------------------------------------------------------- getitem
BASIC = [
    1, -1, (1, -2), (-1, 5), slice(1, None), slice(None, None, 2), (slice(1, -1, 2), slice(None, None, 4)),
    (slice(None), slice(10, None)), (Ellipsis, 1), (None, Ellipsis, None), (slice(None), None, slice(1, 3)),
    (), Ellipsis, (slice(-3, None), -2), (np.int64(2), slice(None, 3)),
]


@pytest.mark.parametrize("index", BASIC, ids=repr)
def test_getitem_basic(index):
    check_op(lambda x: x[index], (4, 6))


@pytest.mark.parametrize("index", [None, Ellipsis, (), True, False, (None, None)], ids=repr)
def test_getitem_of_0d(index):
    check_op(lambda x: x[index], ())


ADVANCED = [
    [0, 0, 2], np.array([2, -1, 2]), ([0, 2], [1, 1]), np.array([[0, 1], [2, 2]]), [], np.array([], dtype=np.int64),
    (slice(1, None), [0, 0, 2]), ([0, 2], slice(None), [1, 1]), (Ellipsis, [1, 0, 1]), ([[0], [2]], [1, 3]),
    (np.array([1, 1], dtype=np.int32), slice(None, None, 2)),
    # PyTorch applies integer indices before index arrays (NumPy would broadcast them together)
    (0, slice(None), [1, 1]), (slice(None), 0, [1, 1, 1]), (0, None, [1, 1]), ([1, 1], 0, None, [0, 1]),
    (Ellipsis, 0, [4, 4]), ([2, 1], Ellipsis, 0), (True, 0, [1, 1]), (1, [0, 3], slice(1, 3)),
]


@pytest.mark.parametrize("index", ADVANCED, ids=repr)
def test_getitem_advanced(index):
    check_op(lambda x: x[index], (3, 4, 5))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_getitem_list_of_lists_reads_as_tuple():
    check_op(lambda x: x[[[0, 2], [1, 1]]], (3, 4))


def test_getitem_tensor_indices():
    check_op(lambda x, i: x[i], (4, 3), Const(np.array([0, 3, 3, -1])))
    check_op(lambda x, i: x[i], (4, 3), Const(np.array([[1, 1], [0, 2]])))
    check_op(lambda x, i, j: x[i, :, j], (3, 2, 4), Const(np.array([2, 2, 0])), Const(np.array([3, 3, 1])))
    check_op(lambda x, i: x[i, 0, i], (3, 2, 4), Const(np.array(1)))  # 0-d tensors select like ints
    check_op(lambda x, i: x[i], (4, 3), Const(np.array([1, 0, 3], dtype=np.int32)))


def test_getitem_masks():
    mask = np.array([True, False, True, True])
    check_op(lambda x, m: x[m], (4, 3), Const(mask))
    check_op(lambda x: x[mask], (4, 3))
    check_op(lambda x: x[:, mask], (2, 4))
    check_op(lambda x: x[x > 0], (3, 4))
    check_op(lambda x, m: x[m], (3, 4, 2), Const(RNG.uniform(size=(3, 4)) > 0.5))
    check_op(lambda x: x[mask[:3], :, [0, 1]], (3, 4, 5))
    check_op(lambda x: x[0, mask, None], (3, 4, 5))
    check_op(lambda x: x[np.zeros(3, dtype=bool)], (3, 2))


def test_getitem_0d_results():
    check_op(lambda x: x[1, 2, 3], (2, 3, 4))
    check_op(lambda x: x[-1, -1, -4], (2, 3, 4))
    check_op(lambda x: x[2], (3,))


def test_getitem_repeated_indices_accumulate():
    x = dn.arange(4.0).requires_grad_()
    x[[0, 0, 0, 2]].sum().backward()
    np.testing.assert_array_equal(x.grad.data, [3, 0, 1, 0])
    y = dn.ones(3, 3, requires_grad=True)
    (y[[1, 1], [2, 2]] * dn.tensor([2.0, 5.0])).sum().backward()
    assert y.grad.data[1, 2] == 7 and y.grad.data.sum() == 7


def test_getitem_double_backward():
    x = dn.tensor(RNG.standard_normal((4, 3)), requires_grad=True)
    assert dn.autograd.gradgradcheck(lambda t: (t[[0, 0, 3], 1:] ** 2), [x])


def test_getitem_errors():
    x = dn.zeros(3, 4)
    with pytest.raises(IndexError, match=r"\(3, 4\)"):
        x[3]
    with pytest.raises(IndexError):
        x[[0, 4]]
    with pytest.raises(IndexError):
        x[dn.tensor([1.0])]
    with pytest.raises(IndexError):
        x[dn.tensor([True, False])]
    with pytest.raises(ValueError, match="step must be greater than zero"):
        x[::-1]


# ----------------------------------------------------------------------------- __setitem__
SETITEMS = [
    (1, 5.0), ((slice(None), [0, 0]), 2.0), ((0, slice(None), [1, 1]), np.arange(6.0).reshape(3, 2)),
    ((Ellipsis, 1), np.arange(12.0).reshape(4, 3)), ([2, 0], np.ones((2, 3, 2))), ((-1, -1, -1), -3.0),
]


@pytest.mark.parametrize(("index", "value"), SETITEMS, ids=repr)
def test_setitem_matches_torch(index, value):
    base = RNG.standard_normal((4, 3, 2))
    x, t = dn.tensor(base), torch.tensor(base)
    x[index] = dn.tensor(value) if isinstance(value, np.ndarray) else value
    t[index] = torch.tensor(value) if isinstance(value, np.ndarray) else value
    np.testing.assert_array_equal(x.data, t.numpy())


def test_setitem_masks_tensors_and_casts():
    x, t = dn.zeros(2, 3, dtype=dn.int64), torch.zeros(2, 3, dtype=torch.int64)
    x[dn.tensor([[True, False, True], [False, False, True]])] = 2.7
    t[torch.tensor([[True, False, True], [False, False, True]])] = 2.7
    x[dn.tensor([1]), dn.tensor(0)] = dn.tensor(9)
    t[torch.tensor([1]), torch.tensor(0)] = torch.tensor(9)
    np.testing.assert_array_equal(x.data, t.numpy())
    assert x.dtype == dn.int64
    version = x._version
    x[0] = 1
    assert x._version == version + 1


def test_setitem_on_leaf_that_requires_grad():
    w = dn.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Tensor that requires grad"):
        w[0] = 1.0
    with dn.no_grad():
        w[[0, 2]] = dn.tensor([1.0, 2.0])
    np.testing.assert_array_equal(w.data, [1, 0, 2])
    y = w * 2
    with pytest.raises(RuntimeError, match="in-place"):
        y[0] = 1.0


# ----------------------------------------------------------------------------- gather
def _index(high, shape, seed=0):
    return Const(np.random.default_rng(seed).integers(0, high, size=shape))


GATHERS = [
    ((3, 4), 1, _index(4, (3, 6))), ((3, 4), 0, _index(3, (2, 4))), ((3, 4), -1, _index(4, (2, 2))),
    ((2, 3, 4), -2, _index(3, (2, 5, 3))), ((5,), 0, _index(5, (7,))), ((), 0, Const(np.array(0))),
    ((), -1, Const(np.array([0, 0]))), ((3, 4), 1, Const(np.zeros((3, 0), dtype=np.int64))),
    ((0, 4), 1, Const(np.zeros((0, 2), dtype=np.int64))), ((3, 4), 0, _index(3, (3, 4)).value.astype(np.int32)),
]


@pytest.mark.parametrize(("shape", "dim", "index"), GATHERS, ids=repr)
def test_gather(shape, dim, index):
    index = index if isinstance(index, Const) else Const(index)
    check_op(lambda x, i: x.gather(dim, i), shape, index)
    check_op(lambda x, i: dn.gather(x, dim, i), shape, index, torch_fn=lambda x, i: torch.gather(x, dim, i),
             dtypes=(np.float32,))


def test_gather_repeated_indices_accumulate():
    x = dn.zeros(2, 3, requires_grad=True)
    x.gather(1, dn.tensor([[2, 2, 2, 0], [1, 1, 0, 0]])).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[1, 0, 3], [2, 2, 0]])


def test_gather_double_backward():
    x = dn.tensor(RNG.standard_normal((3, 4)), requires_grad=True)
    index = dn.tensor([[0, 0, 3], [1, 2, 1], [3, 3, 3]])
    assert dn.autograd.gradgradcheck(lambda t: t.gather(1, index) ** 2, [x])


def test_gather_errors():
    x = dn.zeros(3, 4)
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        x.gather(1, dn.tensor([0, 1]))
    with pytest.raises(RuntimeError, match="index 4 is out of bounds for dimension 1 with size 4"):
        x.gather(1, dn.tensor([[4]]))
    with pytest.raises(RuntimeError, match="index -1 is out of bounds"):
        x.gather(1, dn.tensor([[-1]]))
    with pytest.raises(RuntimeError, match="no larger than input"):
        x.gather(1, dn.zeros(4, 1, dtype=dn.int64))
    with pytest.raises(RuntimeError, match="int32 or int64"):
        x.gather(1, dn.zeros(3, 1))
    with pytest.raises(IndexError, match="dimension out of range"):
        x.gather(2, dn.zeros(3, 1, dtype=dn.int64))


# ----------------------------------------------------------------------------- scatter_add
SCATTERS = [
    ((3, 4), 0, _index(3, (5, 4)), (5, 4)), ((3, 4), 1, _index(4, (3, 6)), (3, 6)),
    ((2, 3, 4), -1, _index(4, (2, 3, 2)), (2, 3, 2)), ((4,), 0, Const(np.array([1, 1, 1, 3])), (4,)),
    ((), 0, Const(np.array(0)), ()), ((3, 4), 1, Const(np.zeros((3, 0), dtype=np.int64)), (3, 0)),
]


@pytest.mark.parametrize(("shape", "dim", "index", "src"), SCATTERS, ids=repr)
def test_scatter_add(shape, dim, index, src):
    check_op(lambda x, i, s: x.scatter_add(dim, i, s), shape, index, src)
    check_op(lambda x, i, s: dn.scatter_add(x, dim, i, s), shape, index, src, dtypes=(np.float32,),
             torch_fn=lambda x, i, s: torch.scatter_add(x, dim, i, s))


def test_scatter_add_index_smaller_than_src():
    # torch computes this forward but its backward fails on the shape; the gradient is gy gathered,
    # zero for the src entries the index does not reach
    x, src = np.arange(6.0).reshape(2, 3), np.arange(10.0, 22.0).reshape(3, 4)
    index = np.array([[1, 0], [1, 1]])
    check_op(lambda a, i, s: a.scatter_add(0, i, s), Const(x), Const(index), Const(src), grad=False)
    s = dn.tensor(src, requires_grad=True)
    out = dn.tensor(x).scatter_add(0, dn.tensor(index), s)
    gy = np.arange(6.0).reshape(2, 3)
    out.backward(dn.tensor(gy))
    expected = np.zeros((3, 4))
    expected[:2, :2] = np.take_along_axis(gy[:, :2], index, 0)
    np.testing.assert_array_equal(s.grad.data, expected)
    assert dn.autograd.gradcheck(lambda t: dn.tensor(x).scatter_add(0, dn.tensor(index), t), [s])


def test_scatter_add_double_backward():
    x, s = (dn.tensor(RNG.standard_normal(shape), requires_grad=True) for shape in ((2, 3), (3, 3)))
    index = dn.tensor([[0, 1, 1], [1, 1, 0], [0, 0, 0]])
    assert dn.autograd.gradgradcheck(lambda a, b: a.scatter_add(0, index, b) ** 2, [x, s])


def test_scatter_add_errors():
    x = dn.zeros(3, 3)
    with pytest.raises(RuntimeError, match="dtype"):
        x.scatter_add(0, dn.zeros(3, 3, dtype=dn.int64), dn.ones(3, 3, dtype=dn.float64))
    with pytest.raises(RuntimeError, match=r"no larger than src.*\(3, 4\)"):
        x.scatter_add(0, dn.zeros(3, 4, dtype=dn.int64), dn.ones(3, 3))
    with pytest.raises(RuntimeError, match="index 3 is out of bounds for dimension 0 with size 3"):
        x.scatter_add(0, dn.tensor([[3]]), dn.ones(1, 1))


# ----------------------------------------------------------------------------- index_select
SELECTS = [
    ((4, 3), 0, Const(np.array([3, 0, 3]))), ((4, 3), -1, Const(np.array([2, 2, 0, 1]))),
    ((2, 3, 4), 1, Const(np.array(2))), ((4, 3), 1, Const(np.zeros(0, dtype=np.int64))),
    ((), 0, Const(np.array([0]))), ((), 0, Const(np.array(0))), ((0, 3), 1, Const(np.array([1, 1]))),
    ((4, 3), 0, Const(np.array([1, 1], dtype=np.int32))),
]


@pytest.mark.parametrize(("shape", "dim", "index"), SELECTS, ids=repr)
def test_index_select(shape, dim, index):
    check_op(lambda x, i: x.index_select(dim, i), shape, index)
    check_op(lambda x, i: dn.index_select(x, dim, i), shape, index, dtypes=(np.float32,),
             torch_fn=lambda x, i: torch.index_select(x, dim, i))


def test_index_select_errors():
    x = dn.zeros(3, 4)
    with pytest.raises(IndexError, match="vector"):
        x.index_select(0, dn.tensor([[1]]))
    with pytest.raises(IndexError, match="out of bounds"):
        x.index_select(0, dn.tensor([3]))
    with pytest.raises(IndexError, match="out of bounds"):
        x.index_select(1, dn.tensor([-1]))
    with pytest.raises(RuntimeError, match="int32 or int64"):
        x.index_select(0, dn.tensor([0.0]))
    with pytest.raises(IndexError, match="dimension out of range"):
        x.index_select(2, dn.tensor([0]))


def test_index_select_double_backward():
    x = dn.tensor(RNG.standard_normal((3, 2)), requires_grad=True)
    assert dn.autograd.gradgradcheck(lambda t: t.index_select(0, dn.tensor([2, 2, 0])) ** 3, [x])


# ----------------------------------------------------------------------------- take_along_dim
TAKES = [
    ((3, 4), Const(np.array([0, 11, 11, 5])), None), ((3, 4), _index(4, (3, 2)), 1),
    ((3, 1, 4), _index(4, (1, 5, 2)), 2), ((3, 4), _index(3, (5, 1)), -2), ((2, 3), _index(6, (2, 2)), None),
]


@pytest.mark.parametrize(("shape", "indices", "dim"), TAKES, ids=repr)
def test_take_along_dim(shape, indices, dim):
    check_op(lambda x, i: dn.take_along_dim(x, i, dim), shape, indices,
             torch_fn=lambda x, i: torch.take_along_dim(x, i, dim))
    check_op(lambda x, i: x.take_along_dim(i, dim), shape, indices, dtypes=(np.float32,))


def test_take_along_dim_errors():
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        dn.take_along_dim(dn.zeros(3, 4), dn.tensor([0]), 1)
    with pytest.raises(RuntimeError, match="do not broadcast"):
        dn.take_along_dim(dn.zeros(3, 4), dn.zeros(2, 1, dtype=dn.int64), 1)


# ----------------------------------------------------------------------------- masked_fill
def _mask(shape, seed=0):
    return Const(np.random.default_rng(seed).uniform(size=shape) > 0.5)


MASKS = [((3, 4), _mask((3, 4))), ((3, 4), _mask((4,))), ((3, 4), _mask((2, 3, 1))), ((), _mask(())),
         ((0, 4), _mask((0, 4))), ((2, 1), _mask((2, 5)))]


@pytest.mark.parametrize(("shape", "mask"), MASKS, ids=repr)
@pytest.mark.parametrize("value", [-1.5, 0])
def test_masked_fill(shape, mask, value):
    check_op(lambda x, m: x.masked_fill(m, value), shape, mask)


@pytest.mark.parametrize(("shape", "mask"), MASKS[:4], ids=repr)
def test_masked_fill_tensor_value_gets_gradient(shape, mask):
    check_op(lambda x, m, v: x.masked_fill(m, v), shape, mask, ())
    check_op(lambda x, m, v: dn.masked_fill(x, m, v), shape, mask, Const(np.array(3.0)), dtypes=(np.float32,),
             torch_fn=lambda x, m, v: torch.masked_fill(x, m, v))


def test_masked_fill_dtypes():
    mask = np.array([True, False, True])
    check_op(lambda x, m: x.masked_fill(m, 1.7), Const(np.array([4, 5, 6])), Const(mask), grad=False)
    check_op(lambda x, m: x.masked_fill(m, 0), Const(np.array([True, True, False])), Const(mask), grad=False)
    check_op(lambda x, m: x.masked_fill(m, float("-inf")), (3,), Const(mask), gradcheck=False)
    out = dn.zeros(3).masked_fill(dn.tensor(mask), dn.tensor(2.5, dtype=dn.float64))
    assert out.dtype == dn.float32


def test_masked_fill_errors():
    x = dn.zeros(3)
    with pytest.raises(RuntimeError, match="boolean masks"):
        x.masked_fill(dn.ones(3), 1.0)
    with pytest.raises(RuntimeError, match="0-dimensional value"):
        x.masked_fill(dn.ones(3, dtype=dn.bool), dn.tensor([1.0]))
    with pytest.raises(RuntimeError, match=r"mask of shape \(4,\)"):
        x.masked_fill(dn.ones(4, dtype=dn.bool), 1.0)
