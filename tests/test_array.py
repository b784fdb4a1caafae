"""Shape, joining and padding ops against PyTorch: values, dtypes, gradients, gradcheck, double
backward and the error messages for shapes that do not fit."""
import gc

import numpy as np
import pytest
import torch

import deepnum as dn
from tests.helpers import Const, check_op

PAD = {dn: dn.pad, torch: torch.nn.functional.pad}


def par(f, *specs, **kwargs):
    """check_op for code written once as f(lib, *tensors), lib being deepnum or torch."""
    check_op(lambda *a: f(dn, *a), *specs, torch_fn=lambda *a: f(torch, *a), **kwargs)


def ints(*shape, seed=0):
    return Const(np.random.default_rng(seed).integers(-5, 5, size=shape))


# ----------------------------------------------------------------- existing view ops
@pytest.mark.parametrize("shape, target", [
    ((2, 3, 4), (-1, 4)), ((2, 3, 4), (4, -1)), ((2, 3, 4), (24,)), ((6,), (2, 1, 3)),
    ((1,), ()), ((), (1, 1)), ((), (-1,)), ((0, 3), (3, 0)), ((0, 3), (-1,)), ((2, 0), (0, 5, 3)), ((2, 0), (-1, 5)),
])
def test_reshape_and_view(shape, target):
    check_op(lambda x: x.reshape(target) * 2, shape)
    check_op(lambda x: x.view(target) + 1, shape)
    if target:
        check_op(lambda x: x.view(*target), shape)
    par(lambda lib, x: lib.reshape(x, target), shape)


def test_view_as_reshape_as():
    check_op(lambda x, y: x.view_as(y) * y, (2, 6), (3, 4))
    check_op(lambda x, y: x.reshape_as(y) - y, (12,), (3, 2, 2))


@pytest.mark.parametrize("shape, start, end", [
    ((2, 3, 4), 0, -1), ((2, 3, 4), 1, 2), ((2, 3, 4), -2, -1), ((2, 3, 4, 5), 1, -2), ((2, 3, 4), 1, 1),
    ((), 0, -1), ((3,), 0, 0), ((2, 0, 3), 1, 2),
])
def test_flatten(shape, start, end):
    par(lambda lib, x: lib.flatten(x, start, end), shape)
    check_op(lambda x: x.flatten(start_dim=start, end_dim=end), shape)


@pytest.mark.parametrize("shape, dim", [
    ((1, 3, 1, 2), None), ((1, 3, 1, 2), 0), ((1, 3, 1, 2), -2), ((1, 3, 1, 2), 1), ((1, 3, 1, 2), (0, 2)),
    ((1, 3, 1, 2), (-4, 1)), ((), None), ((), 0), ((), -1), ((1, 0, 1), None), ((1, 0, 1), (0, -1)),
])
def test_squeeze(shape, dim):
    check_op(lambda x: x.squeeze() if dim is None else x.squeeze(dim), shape)


@pytest.mark.parametrize("shape, dim", [((2, 3), 0), ((2, 3), 2), ((2, 3), -1), ((2, 3), -3), ((), 0),
                                        ((), -1), ((0, 2), 1)])
def test_unsqueeze(shape, dim):
    check_op(lambda x: x.unsqueeze(dim), shape)
    par(lambda lib, x: lib.unsqueeze(x, dim=dim), shape)


@pytest.mark.parametrize("shape, d0, d1", [((2, 3), 0, 1), ((2, 3, 4), -1, 0), ((2, 3, 4), 1, 1), ((), 0, -1),
                                           ((2, 0, 3), 0, 2)])
def test_transpose_and_swap(shape, d0, d1):
    check_op(lambda x: x.transpose(d0, d1), shape)
    check_op(lambda x: x.swapaxes(d0, d1), shape)
    par(lambda lib, x: lib.swapdims(x, d0, d1), shape)


@pytest.mark.parametrize("shape, dims", [((2, 3, 4), (2, 0, 1)), ((2, 3, 4), (-1, -3, 1)), ((2, 3), (0, 1)),
                                         ((), ()), ((0, 2, 3), (1, 2, 0))])
def test_permute(shape, dims):
    check_op(lambda x: x.permute(dims), shape)
    if dims:
        check_op(lambda x: x.permute(*dims), shape)


@pytest.mark.filterwarnings("ignore:.*Tensor.T is deprecated:UserWarning")
@pytest.mark.filterwarnings("ignore:The use of `x.T`:UserWarning")
@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 4), (4,), (), (0, 3)])
def test_T(shape):
    check_op(lambda x: x.T * 1.5, shape)


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 4), (0, 2, 3)])
def test_mT(shape):
    check_op(lambda x: x.mT, shape)


@pytest.mark.parametrize("shape, sizes", [((1, 3), (4, 3)), ((1, 3), (4, -1)), ((3,), (2, 4, 3)), ((2, 1), (2, 5)),
                                          ((2, 1, 1), (-1, 3, 2)), ((), (3, 2)), ((1, 3), (0, 3)), ((3,), (3,))])
def test_expand(shape, sizes):
    check_op(lambda x: x.expand(*sizes), shape)
    check_op(lambda x: x.expand(sizes) * 2, shape)


def test_expand_as():
    check_op(lambda x, y: x.expand_as(y) * y, (3, 1), (2, 3, 4))
    check_op(lambda x, y: x.expand_as(y) + y, (), (2, 2))


@pytest.mark.parametrize("shape", [(2, 3), (), (0, 4)])
def test_to_dtype_casts_and_gradients(shape):
    # float -> other float and back: the gradient arrives in the input's dtype
    par(lambda lib, x: x.to(lib.float32) * 3, shape, gradcheck=False, atol=1e-6, rtol=1e-6)
    par(lambda lib, x: x.to(lib.float64) * x.to(lib.float64), shape)
    par(lambda lib, x: x.float().double() + x.double(), shape, gradcheck=False, atol=1e-6, rtol=1e-6)
    par(lambda lib, x: x.type_as(x.float()) * 2, shape, gradcheck=False, atol=1e-6, rtol=1e-6)
    # to an integer type: values truncate toward zero, no gradient flows
    par(lambda lib, x: x.to(lib.int64), shape, low=-5, high=5)
    par(lambda lib, x: x.to(dtype=lib.int32) * x, shape, low=-5, high=5)
    par(lambda lib, x: (x > 0).to(lib.float64) + x, shape)


def test_cast_from_integer_and_bool():
    par(lambda lib, x: x.to(lib.float32), ints(2, 3))
    par(lambda lib, x: x.bool().long() * 2, ints(4))


def test_clone():
    check_op(lambda x: x.clone() * x, (2, 3))
    check_op(lambda x: x.clone(), ())
    check_op(lambda x: x.clone(), (0, 2))
    x = dn.ones(2, 2)
    y = x.clone()
    y.data[0, 0] = 5
    assert x.data[0, 0] == 1, "clone must copy the data"


# ----------------------------------------------------------------- repeat
@pytest.mark.parametrize("shape, sizes", [((2, 3), (2, 1)), ((2, 3), (1, 2, 3)), ((3,), (2, 2)), ((), (2, 3)),
                                          ((2, 1), (3, 2)), ((2, 3), (0, 2)), ((0, 2), (2, 2)), ((2, 3), (1, 1)),
                                          ((), (1,)), ((1, 2, 1), (2, 1, 3, 2))])
def test_repeat(shape, sizes):
    check_op(lambda x: x.repeat(*sizes), shape)
    check_op(lambda x: x.repeat(sizes), shape)


def test_repeat_integer():
    par(lambda lib, x: x.repeat(2, 2), ints(2, 3))


# ----------------------------------------------------------------- cat / stack
@pytest.mark.parametrize("shapes, dim", [
    (((2, 3), (4, 3)), 0), (((2, 3), (2, 1), (2, 2)), 1), (((2, 3), (2, 4)), -1), (((2, 3, 2), (2, 1, 2)), -2),
    (((3,), (2,)), 0), (((0, 3), (2, 3)), 0), (((2, 0), (2, 3)), 1), (((2, 3),), 0), (((2, 3), (0,)), 1),
    (((0,), (0,)), 0),
])
def test_cat(shapes, dim):
    par(lambda lib, *xs: lib.cat(xs, dim), *shapes)
    par(lambda lib, *xs: lib.concat(list(xs), dim=dim) * 2, *shapes)


def test_cat_type_promotion():
    par(lambda lib, a, b: lib.cat([a, b]), (2, 3), ints(2, 3))
    par(lambda lib, a, b: lib.cat([b, a], 1), (2, 3), ints(2, 2))
    par(lambda lib, a, b: lib.cat([a.float(), b]), (2, 3), (1, 3), gradcheck=False, atol=1e-6, rtol=1e-6)
    par(lambda lib, a, b: lib.cat([a.bool(), b.to(lib.uint8)]), ints(3), ints(2, seed=1))
    par(lambda lib, a, b: lib.cat([a, b.to(lib.int32)]), ints(3), ints(2, seed=1))
    par(lambda lib, a, b: lib.cat([a.to(lib.float64), b.to(lib.float32)]), ints(0), ints(2, 2))
    par(lambda lib, a, b: lib.stack([a, b.to(lib.int32)], 1), (3,), ints(3))


@pytest.mark.parametrize("shape, n, dim", [((2, 3), 2, 0), ((2, 3), 3, 2), ((2, 3), 2, -1), ((2, 3), 2, -3),
                                           ((), 3, 0), ((), 2, -1), ((0, 2), 2, 1), ((3,), 1, 0)])
def test_stack(shape, n, dim):
    par(lambda lib, *xs: lib.stack(xs, dim), *[shape] * n)
    par(lambda lib, *xs: lib.stack(list(xs), dim=dim).sum(0), *[shape] * n)


# ----------------------------------------------------------------- split / chunk / unbind
@pytest.mark.parametrize("shape, size, dim", [
    ((5, 3), 2, 0), ((5, 3), 1, 1), ((5, 3), 5, 0), ((5, 3), 7, -2), ((5, 3), [1, 0, 4], 0), ((5, 3), (2, 1), -1),
    ((0, 3), 2, 0), ((0, 3), 0, 0), ((2, 6, 1), [3, 3], 1), ((4,), [4], 0),
])
def test_split(shape, size, dim):
    check_op(lambda x: x.split(size, dim), shape)
    par(lambda lib, x: lib.split(x, size, dim=dim), shape)


@pytest.mark.parametrize("shape, chunks, dim", [((6, 2), 3, 0), ((5, 2), 3, 0), ((2, 6), 4, 1), ((2, 3), 5, -1),
                                                ((0,), 3, 0), ((3, 0), 2, 1), ((2, 3), 1, 0)])
def test_chunk(shape, chunks, dim):
    check_op(lambda x: x.chunk(chunks, dim), shape)


@pytest.mark.parametrize("shape, dim", [((3, 2), 0), ((3, 2), 1), ((2, 3, 2), -1), ((1,), 0), ((0, 3), 1),
                                        ((0, 3), 0)])
def test_unbind(shape, dim):
    check_op(lambda x: x.unbind(dim), shape)


def test_multi_output_gradient_with_only_some_outputs_used():
    # unused outputs are freed (split) or kept alive without a gradient (unbind, chunk)
    check_op(lambda x: x.split(2, 1)[1] * 3, (2, 5))
    check_op(lambda x: x.split([1, 3], 0)[0].exp(), (4, 2))
    check_op(lambda x: x.unbind(1)[2] * x.unbind(1)[0], (2, 4))
    check_op(lambda x: x.chunk(3, 0)[-1], (5, 2))
    rng = np.random.default_rng(0)
    value = rng.standard_normal((3, 4))
    x, xt = dn.tensor(value, requires_grad=True), torch.tensor(value, requires_grad=True)
    parts, parts_t = x.unbind(0), xt.unbind(0)
    (parts[1] * 2).sum().backward()
    (parts_t[1] * 2).sum().backward()
    np.testing.assert_allclose(x.grad.data, xt.grad.numpy())
    assert len(parts) == 3
    y = x.split(1, 1)[3]
    gc.collect()
    g = dn.autograd.grad(y.sum(), x)[0]
    np.testing.assert_array_equal(g.data, np.eye(4)[3][None].repeat(3, 0))


def test_split_and_unbind_integer():
    par(lambda lib, x: x.split([1, 2], 1), ints(2, 3))
    par(lambda lib, x: x.unbind(1), ints(2, 3))


# ----------------------------------------------------------------- flip / roll / tril / triu / movedim / narrow
@pytest.mark.parametrize("shape, dims", [((2, 3), (0,)), ((2, 3), (0, 1)), ((2, 3, 4), (-1, 0)), ((2, 3), ()),
                                         ((), (0,)), ((0, 3), (1,))])
def test_flip(shape, dims):
    check_op(lambda x: x.flip(dims), shape)
    par(lambda lib, x: lib.flip(x, dims=dims), shape)
    if dims:
        check_op(lambda x: x.flip(*dims), shape)


@pytest.mark.parametrize("shape, shifts, dims", [
    ((2, 3), 1, None), ((2, 3), -4, None), ((2, 3), 1, 0), ((2, 3), (1, -1), (0, 1)), ((2, 3, 4), (5,), (-1,)),
    ((2, 3), [2, 1], [1, 1]), ((), 3, None), ((0, 3), 1, 0), ((4,), 0, 0),
])
def test_roll(shape, shifts, dims):
    check_op(lambda x: x.roll(shifts, dims), shape)
    par(lambda lib, x: lib.roll(x, shifts=shifts, dims=dims), shape)


@pytest.mark.parametrize("shape, diagonal", [((3, 3), 0), ((3, 4), 1), ((4, 3), -1), ((2, 3, 4), 2), ((3, 3), -5),
                                             ((3, 3), 5), ((0, 3), 0), ((2, 0, 0), 0)])
def test_tril_triu(shape, diagonal):
    check_op(lambda x: x.tril(diagonal), shape)
    check_op(lambda x: x.triu(diagonal), shape)
    par(lambda lib, x: lib.tril(x, diagonal=diagonal) + lib.triu(x, diagonal), shape)


def test_tril_triu_integer_and_bool():
    par(lambda lib, x: lib.tril(x), ints(3, 3))
    par(lambda lib, x: lib.triu(x > 0, 1), ints(3, 3))


@pytest.mark.parametrize("shape, source, destination", [
    ((2, 3, 4), 0, 2), ((2, 3, 4), -1, 0), ((2, 3, 4), (0, 1), (2, 0)), ((2, 3, 4, 5), (0, 3), (-1, 1)),
    ((2, 3), 1, 1), ((), 0, -1), ((0, 2, 3), [0], [2]),
])
def test_movedim(shape, source, destination):
    check_op(lambda x: x.movedim(source, destination), shape)
    par(lambda lib, x: lib.movedim(x, source, destination), shape)


@pytest.mark.parametrize("shape, dim, start, length", [((4, 5), 1, 1, 3), ((4, 5), 0, -2, 2), ((4, 5), -1, 0, 5),
                                                       ((4, 5), 1, 5, 0), ((4, 5), 1, -5, 1), ((0, 3), 1, 1, 2)])
def test_narrow(shape, dim, start, length):
    check_op(lambda x: x.narrow(dim, start, length), shape)
    check_op(lambda x, s: x.narrow(dim, s, length), shape, Const(start))


# ----------------------------------------------------------------- pad
@pytest.mark.parametrize("shape, widths, value", [
    ((2, 3), (1, 2), None), ((2, 3), (1, 0, 0, 2), 1.5), ((2, 3, 4), (0, 1, 2, 0, 1, 1), -2.0), ((2, 3), (), None),
    ((2, 5), (-1, 2), 0.5), ((2, 5), (-2, -3), None), ((3, 4), (1, -1, -2, 1), 3.0), ((2, 0), (1, 1), 2.0),
    ((0, 2), (0, 0, 1, 0), None), ((3,), (2, 2), None),
])
def test_pad_constant(shape, widths, value):
    par(lambda lib, x: PAD[lib](x, widths, value=value), shape)
    par(lambda lib, x: PAD[lib](x, list(widths), "constant", value), shape)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("shape, widths", [
    ((2, 5), (2, 3)), ((1, 2, 4), (3, 1)), ((1, 2, 4), (-1, 2)), ((2, 3, 4), (1, 2, 2, 0)),
    ((1, 2, 3, 4), (0, 1, 2, 1)), ((1, 1, 3, 3, 3), (1, 1, 1, 0, 0, 2)), ((2, 4, 3), (1, 1, 0, 0)), ((0, 2, 3), (1, 2)),
])
def test_pad_index_modes(mode, shape, widths):
    par(lambda lib, x: PAD[lib](x, widths, mode), shape)


def test_pad_large_replicate_and_integer_values():
    par(lambda lib, x: PAD[lib](x, (6, 0), "replicate"), (1, 2, 3))
    par(lambda lib, x: PAD[lib](x, (1, 1), value=2.7), ints(2, 3))
    par(lambda lib, x: PAD[lib](x, (2, 1), "reflect"), ints(2, 4))
    par(lambda lib, x: PAD[lib](x > 0, (1, 1), value=1), ints(2, 3))


# ----------------------------------------------------------------- double backward
@pytest.mark.parametrize("fn", [
    lambda x: dn.pad(x, (1, 2, 0, 1), value=0.5) ** 2,
    lambda x: dn.pad(x, (-1, 2), "reflect") ** 2,
    lambda x: dn.pad(x, (2, 1), "replicate") ** 2,
    lambda x: dn.pad(x, (1, 2, 1, 0), "circular") ** 2,
    lambda x: dn.cat([x, x * x, x.sin()], -1) ** 2,
    lambda x: dn.stack(x.unbind(1), 0) ** 3,
    lambda x: tuple(p ** 2 for p in x.split([2, 1], 2)),
    lambda x: x.split(2, 2)[0].exp(),
    lambda x: x.repeat(2, 1, 2) ** 2,
    lambda x: x.roll(1, 2).flip(0).tril() ** 2 + x.narrow(2, 1, 2).sum() ** 2,
])
def test_double_backward(fn):
    x = dn.tensor(np.random.default_rng(3).standard_normal((1, 2, 3)), requires_grad=True)
    assert dn.autograd.gradgradcheck(fn, [x])


def test_second_derivative_against_torch():
    value = np.random.default_rng(4).standard_normal((1, 2, 4))
    out = []
    for lib, t in ((dn, dn.tensor(value, requires_grad=True)), (torch, torch.tensor(value, requires_grad=True))):
        y = (PAD[lib](t, (2, 1), "reflect") ** 3).sum() + (lib.cat([t, t.flip(-1)], 1) ** 2 * t.sum()).sum()
        (g,) = (dn.autograd.grad if lib is dn else torch.autograd.grad)(y, t, create_graph=True)
        (gg,) = (dn.autograd.grad if lib is dn else torch.autograd.grad)((g * g).sum(), t)
        out.append(np.asarray(gg.data if lib is dn else gg.detach().numpy()))
    np.testing.assert_allclose(out[0], out[1], rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------- errors
def test_cat_errors_name_op_dim_and_shapes():
    a, b = dn.ones(2, 3), dn.ones(3, 4)
    with pytest.raises(RuntimeError, match=r"cat: .*dim 1.*\(2, 3\).*\(3, 4\)"):
        dn.cat([a, b], 1)
    with pytest.raises(RuntimeError, match=r"cat: .*dim 0.*\(2, 3\).*\(2, 3, 1\)"):
        dn.cat([a, dn.ones(2, 3, 1)])
    with pytest.raises(RuntimeError, match="cat: the zero-dimensional tensor"):
        dn.cat([dn.tensor(1.0), dn.tensor(2.0)])
    with pytest.raises(IndexError, match="cat: dim 2 is out of range"):
        dn.cat([a, a], 2)
    with pytest.raises(TypeError, match="cat: expected a non-empty"):
        dn.cat([])
    with pytest.raises(RuntimeError, match=r"stack: .*\(2, 3\) at entry 0 .*\(3, 4\) at entry 1"):
        dn.stack([a, b])


def test_reshape_errors_name_op_and_shapes():
    x = dn.ones(2, 3)
    with pytest.raises(RuntimeError, match=r"reshape: shape \[4, 2\] is invalid for input of shape \(2, 3\)"):
        x.reshape(4, 2)
    with pytest.raises(RuntimeError, match=r"reshape: shape \[4, -1\] .*\(2, 3\)"):
        x.view(4, -1)
    with pytest.raises(RuntimeError, match="only one dimension can be inferred"):
        x.reshape(-1, -1)
    with pytest.raises(RuntimeError, match="reshape: .*negative"):
        x.reshape(-2, -3)
    with pytest.raises(RuntimeError, match="reshape: .*cannot be inferred"):
        dn.ones(0, 3).reshape(-1, 0)


def test_other_shape_errors():
    x = dn.ones(2, 3)
    cases = [
        (RuntimeError, "split: split sizes \\[1, 1\\]", lambda: x.split([1, 1], 1)),
        (RuntimeError, "split: split_size 0", lambda: x.split(0)),
        (RuntimeError, "split: expects at least a 1-dimensional", lambda: dn.tensor(1.0).split(1)),
        (RuntimeError, "chunk: expects `chunks`", lambda: x.chunk(0)),
        (IndexError, "unbind: dim 2 is out of range", lambda: x.unbind(2)),
        (RuntimeError, "expand: size 3 must match .* dim 0", lambda: x.expand(3, 3)),
        (RuntimeError, "expand: sizes \\[-1, 2, 3\\]", lambda: x.expand(-1, 2, 3)),
        (RuntimeError, "repeat: sizes \\[2\\]", lambda: x.repeat(2)),
        (RuntimeError, "flip: dim .* more than once", lambda: x.flip(0, -2)),
        (RuntimeError, "roll: shifts .* same length", lambda: x.roll((1, 2), 0)),
        (RuntimeError, "tril: .*at least 2 dimensions", lambda: dn.ones(3).tril()),
        (RuntimeError, "movedim: dim .* more than once", lambda: x.movedim((0, 0), (1, 0))),
        (RuntimeError, "narrow: start \\(1\\) \\+ length \\(3\\) exceeds", lambda: x.narrow(1, 1, 3)),
        (IndexError, "narrow: start 4", lambda: x.narrow(1, 4, 0)),
        (RuntimeError, "pad: padding length must be divisible", lambda: dn.pad(x, (1,))),
        (RuntimeError, "pad: padding length 6 .*\\(2, 3\\)", lambda: dn.pad(x, (1,) * 6)),
        (RuntimeError, "pad: padding \\(-3, -1\\) gives a negative size", lambda: dn.pad(x, (-3, -1))),
        (RuntimeError, "pad: in reflect mode .*\\(3, 0\\)", lambda: dn.pad(x, (3, 0), "reflect")),
        (RuntimeError, "pad: in circular mode", lambda: dn.pad(x, (4, 0), "circular")),
        (NotImplementedError, "pad: padding of length 4", lambda: dn.pad(x, (1, 1, 1, 1), "replicate")),
        (NotImplementedError, "pad: unrecognised padding mode 'foo'", lambda: dn.pad(x, (1, 1), "foo")),
        (IndexError, "squeeze: dim 2 is out of range", lambda: x.squeeze(2)),
        (IndexError, "unsqueeze: dim 3 is out of range", lambda: x.unsqueeze(3)),
        (RuntimeError, "flatten: start_dim 1 comes after end_dim 0", lambda: x.flatten(1, 0)),
        (RuntimeError, "permute: dims \\(0,\\)", lambda: x.permute(0)),
        (IndexError, "transpose: dim -3", lambda: x.transpose(-3, 0)),
    ]
    for error, pattern, call in cases:
        with pytest.raises(error, match=pattern):
            call()
