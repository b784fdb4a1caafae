"""Pooling against PyTorch: max (values, indices, gradients), average (count_include_pad, ceil mode,
divisor_override), min pooling against −max_pool(−x), adaptive pooling with bins that do not divide
the input, unbatched inputs, ties/NaN/−inf, double backward, the layers (repr, state_dict, errors).

Both strategies of the kernels run on every case of the main grids: the per-offset column passes
(many windows) and the im2col rows (few windows), by moving the switch-over thresholds."""
import itertools
import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import deepnum as dn
import deepnum.functional._windows as windows_module
import deepnum.nn as dnn
import deepnum.nn.functional as F
from tests.helpers import Const, check_op

# torch's pooling kernels split even tiny inputs across threads; on a busy 2-core machine that made
# each oracle call ~10× slower. One thread changes no result.


@pytest.fixture(params=["columns", "rows"])
def strategy(request, monkeypatch):
    """Force the column-pass kernels (threshold 0) or the im2col-rows kernels (huge threshold)."""
    force(monkeypatch, request.param)
    return request.param


def force(monkeypatch, strategy):
    """Force the column-pass kernels (threshold 0) or the im2col-rows kernels (huge threshold)."""
    limit = 0 if strategy == "columns" else 10**12
    monkeypatch.setattr(windows_module, "_FEW_WINDOWS_MAX", limit)
    monkeypatch.setattr(windows_module, "_FEW_WINDOWS_SUM", limit)


def grid(*axes):
    """The product of the axes, each case tagged with a strategy; the two alternate so that each
    one meets every value of every axis."""
    cases = list(itertools.product(*axes))
    return [case + (("columns", "rows")[zlib.crc32(repr(case).encode()) % 2],) for case in cases]


def valid(kernel, padding):
    return padding <= kernel // 2


def both_raise(dn_fn, torch_fn, shape, match=None):
    x = np.zeros(shape)
    with pytest.raises(RuntimeError):
        torch_fn(torch.tensor(x))
    with pytest.raises(RuntimeError, match=match):
        dn_fn(dn.tensor(x))


# ----------------------------------------------------------------------------- max pooling
@pytest.mark.parametrize("kernel,stride,padding,dilation,ceil_mode,strategy",
                         grid([1, 2, 3], [None, 1, 2, 3], [0, 1], [1, 2], [False, True]))
def test_max_pool2d_grid(monkeypatch, kernel, stride, padding, dilation, ceil_mode, strategy):
    """Odd sizes (7×9), overlapping windows (stride < kernel: gradients accumulate), padding,
    dilation and ceil mode; values, indices and the input gradient against torch."""
    force(monkeypatch, strategy)
    args = (kernel, stride, padding, dilation, ceil_mode)
    if not valid(kernel, padding):
        both_raise(lambda x: F.max_pool2d(x, *args), lambda x: TF.max_pool2d(x, *args), (2, 3, 7, 9), "padding")
        return
    check_op(lambda x: F.max_pool2d(x, *args, return_indices=True), (2, 3, 7, 9),
             torch_fn=lambda x: TF.max_pool2d(x, *args, return_indices=True), gradcheck=False)


@pytest.mark.parametrize("kernel,stride,padding,dilation,ceil_mode", [
    ((2, 3), (1, 2), (1, 0), (1, 2), True), (3, 2, 1, 1, True), ((3, 2), 1, (1, 1), (2, 1), False),
    (2, 1, 0, 1, False), (3, (2, 3), 1, 2, True)])
def test_max_pool2d_gradcheck(strategy, kernel, stride, padding, dilation, ceil_mode):
    check_op(lambda x: F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode), (1, 2, 6, 7),
             torch_fn=lambda x: TF.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode))


@pytest.mark.parametrize("kernel,stride,padding,dilation,ceil_mode,strategy", [
    c for c in grid([1, 2, 3], [None, 1, 2], [0, 1], [1, 2], [False, True]) if valid(c[0], c[2])])
def test_max_pool1d_grid(monkeypatch, kernel, stride, padding, dilation, ceil_mode, strategy):
    force(monkeypatch, strategy)
    args = (kernel, stride, padding, dilation, ceil_mode)
    check_op(lambda x: F.max_pool1d(x, *args, return_indices=True), (2, 3, 11),
             torch_fn=lambda x: TF.max_pool1d(x, *args, return_indices=True), gradcheck=kernel == 3)


@pytest.mark.parametrize("kernel,stride,padding,dilation,ceil_mode", [
    (2, None, 0, 1, False), (3, 1, 1, 1, False), ((3, 2, 2), (2, 1, 2), (1, 0, 1), (1, 2, 1), True),
    (2, 3, 1, 2, True), (1, 2, 0, 1, True)])
def test_max_pool3d(strategy, kernel, stride, padding, dilation, ceil_mode):
    args = (kernel, stride, padding, dilation, ceil_mode)
    check_op(lambda x: F.max_pool3d(x, *args, return_indices=True), (2, 2, 5, 6, 7),
             torch_fn=lambda x: TF.max_pool3d(x, *args, return_indices=True), gradcheck=False)
    check_op(lambda x: F.max_pool3d(x, *args), (1, 1, 4, 5, 5),
             torch_fn=lambda x: TF.max_pool3d(x, *args))


@pytest.mark.parametrize("name,shape", [("max_pool1d", (3, 9)), ("max_pool2d", (3, 7, 9)),
                                        ("max_pool3d", (2, 5, 4, 6))])
def test_max_pool_unbatched(name, shape):
    check_op(lambda x: getattr(F, name)(x, 3, 2, 1, return_indices=True), shape,
             torch_fn=lambda x: getattr(TF, name)(x, 3, 2, 1, return_indices=True))


@pytest.mark.parametrize("name", ["max_pool1d", "max_pool2d", "max_pool3d"])
def test_min_pool_is_negated_max_pool(strategy, name):
    """deepnum's min pooling against −torch.max_pool(−x), indices included."""
    shape = {"max_pool1d": (2, 3, 10), "max_pool2d": (2, 3, 7, 9), "max_pool3d": (1, 2, 5, 6, 5)}[name]
    mine = getattr(F, name.replace("max", "min"))
    for args in [(2,), (3, 1, 1), (3, 2, 1, 2, True)]:
        def torch_min(x, args=args):
            values, indices = getattr(TF, name)(-x, *args, return_indices=True)
            return -values, indices
        check_op(lambda x, args=args: mine(x, *args, return_indices=True), shape, torch_fn=torch_min,
                 gradcheck=False)
    check_op(lambda x: mine(x, 3, 2, 1), shape[:2] + (4,) * (len(shape) - 2),
             torch_fn=lambda x: -getattr(TF, name)(-x, 3, 2, 1))


def test_max_pool_ties_follow_torch(strategy):
    """With deliberate ties torch (CPU) keeps the first maximum in window order; so does deepnum,
    for the indices and for where the gradient goes."""
    values = np.random.default_rng(3).integers(0, 3, size=(2, 3, 7, 9)).astype(np.float64)
    for args in [(2,), (3, 1, 1), (3, 2, 1, 2, True), ((2, 3), (1, 2))]:
        check_op(lambda x, args=args: F.max_pool2d(x + dn.tensor(values.astype(x.dtype)), *args, return_indices=True),
                 (2, 3, 7, 9), torch_fn=lambda x, args=args: TF.max_pool2d(
                     x - x.detach() + torch.tensor(values, dtype=x.dtype), *args, return_indices=True),
                 gradcheck=False, low=0, high=0)
    check_op(lambda x: F.adaptive_max_pool2d(x + dn.tensor(values.astype(x.dtype)), (3, 4), True), (2, 3, 7, 9),
             torch_fn=lambda x: TF.adaptive_max_pool2d(x - x.detach() + torch.tensor(values, dtype=x.dtype),
                                                       (3, 4), True), gradcheck=False, low=0, high=0)


def test_max_pool_nan_and_minus_inf(strategy):
    """A window with NaNs returns NaN at its last NaN; a window of −inf (with padding around) points
    at its first element inside the input: both as torch."""
    x = np.random.default_rng(4).standard_normal((1, 2, 6, 7))
    x[0, 0, 1, 1] = x[0, 0, 1, 2] = x[0, 1, 4, 5] = np.nan
    x[0, 1, :3, :3] = -np.inf
    for args in [(3, 2, 1), (3, 1, 1, 2, True), (2,)]:
        a, ia = F.max_pool2d(dn.tensor(x), *args, return_indices=True)
        b, ib = TF.max_pool2d(torch.tensor(x), *args, return_indices=True)
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(ia.numpy(), ib.numpy())
    a, ia = F.adaptive_max_pool2d(dn.tensor(x), (4, 3), return_indices=True)
    b, ib = TF.adaptive_max_pool2d(torch.tensor(x), (4, 3), return_indices=True)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(ia.numpy(), ib.numpy())


def test_max_pool_integers():
    x = np.random.default_rng(5).integers(-50, 50, size=(2, 3, 7, 9))
    for args in [(2,), (3, 2, 1, 1, True)]:
        check_op(lambda x, args=args: F.max_pool2d(x, *args, return_indices=True), Const(x),
                 torch_fn=lambda x, args=args: TF.max_pool2d(x, *args, return_indices=True))
    check_op(lambda x: F.min_pool2d(x, 3, 2, 1), Const(x), torch_fn=lambda x: -TF.max_pool2d(-x, 3, 2, 1))


# ----------------------------------------------------------------------------- average pooling
@pytest.mark.parametrize("kernel,stride,padding,ceil_mode,count_include_pad,strategy",
                         grid([1, 2, 3], [None, 1, 2, 3], [0, 1], [False, True], [True, False]))
def test_avg_pool2d_grid(monkeypatch, kernel, stride, padding, ceil_mode, count_include_pad, strategy):
    force(monkeypatch, strategy)
    args = (kernel, stride, padding, ceil_mode, count_include_pad)
    if not valid(kernel, padding):
        both_raise(lambda x: F.avg_pool2d(x, *args), lambda x: TF.avg_pool2d(x, *args), (2, 3, 7, 9), "padding")
        return
    check_op(lambda x: F.avg_pool2d(x, *args), (2, 3, 7, 9), torch_fn=lambda x: TF.avg_pool2d(x, *args),
             gradcheck=False)


@pytest.mark.parametrize("args", [(2, None, 0, False, True, 5), (3, 1, 1, True, False, 2), (3, 2, 1, True, True, 7),
                                  ((2, 3), (3, 1), (1, 0), True, False, 4), (1, 2, 0, False, True, 3)])
def test_avg_pool2d_divisor_override(strategy, args):
    check_op(lambda x: F.avg_pool2d(x, *args), (2, 3, 7, 9), torch_fn=lambda x: TF.avg_pool2d(x, *args),
             gradcheck=False)


@pytest.mark.parametrize("kernel,stride,padding,ceil_mode,count_include_pad,strategy", [
    c for c in grid([1, 2, 3], [None, 1, 2], [0, 1], [False, True], [True, False]) if valid(c[0], c[2])])
def test_avg_pool1d_grid(monkeypatch, kernel, stride, padding, ceil_mode, count_include_pad, strategy):
    force(monkeypatch, strategy)
    args = (kernel, stride, padding, ceil_mode, count_include_pad)
    check_op(lambda x: F.avg_pool1d(x, *args), (2, 3, 10), torch_fn=lambda x: TF.avg_pool1d(x, *args),
             gradcheck=kernel == 3 and stride == 2)


@pytest.mark.parametrize("args", [(2,), (3, 1, 1), ((3, 2, 3), (2, 1, 2), (1, 0, 1), True, False),
                                  (3, 2, 1, True, True, 7), ((1, 2, 2), 1, 0, False, True)])
def test_avg_pool3d(strategy, args):
    check_op(lambda x: F.avg_pool3d(x, *args), (2, 2, 5, 6, 7), torch_fn=lambda x: TF.avg_pool3d(x, *args),
             gradcheck=False)


@pytest.mark.parametrize("args", [(3, 2, 1, True, False), (2, 1, 1, True, True, 3), (3, 1, 1)])
def test_avg_pool2d_gradcheck(strategy, args):
    check_op(lambda x: F.avg_pool2d(x, *args), (1, 2, 5, 6), torch_fn=lambda x: TF.avg_pool2d(x, *args))


def test_avg_pool_unbatched_and_integers():
    check_op(lambda x: F.avg_pool2d(x, 3, 2, 1, True, False), (3, 7, 9),
             torch_fn=lambda x: TF.avg_pool2d(x, 3, 2, 1, True, False))
    check_op(lambda x: F.avg_pool1d(x, 2), (3, 9), torch_fn=lambda x: TF.avg_pool1d(x, 2))
    check_op(lambda x: F.avg_pool3d(x, 2, 1), (2, 4, 5, 3), torch_fn=lambda x: TF.avg_pool3d(x, 2, 1))
    ints = np.random.default_rng(6).integers(-20, 20, size=(2, 3, 7, 9))  # sums divided toward zero
    for args in [(2,), (3, 2, 1, True, False), (3, 1, 1, False, True, 4)]:
        check_op(lambda x, args=args: F.avg_pool2d(x, *args), Const(ints),
                 torch_fn=lambda x, args=args: TF.avg_pool2d(x, *args))


# ----------------------------------------------------------------------------- adaptive pooling
@pytest.mark.parametrize("shape,size", [((2, 3, 7, 9), 3), ((2, 3, 7, 9), (3, 2)), ((2, 3, 7, 9), (None, 4)),
                                        ((2, 3, 7, 9), 1), ((2, 3, 7, 9), (10, 12)), ((2, 3, 8, 9), (4, 3)),
                                        ((3, 7, 9), (5, None)), ((2, 3, 5, 5), (2, 7))])
def test_adaptive_pool2d(strategy, shape, size):
    """Bins that do not divide the input (7→3, 9→2), None (keep), 1 (global), larger than the input."""
    check_op(lambda x: F.adaptive_avg_pool2d(x, size), shape, torch_fn=lambda x: TF.adaptive_avg_pool2d(x, size),
             gradcheck=False)
    check_op(lambda x: F.adaptive_max_pool2d(x, size, return_indices=True), shape,
             torch_fn=lambda x: TF.adaptive_max_pool2d(x, size, return_indices=True), gradcheck=False)


@pytest.mark.parametrize("length,size", [(5, 2), (7, 3), (9, 3), (4, 7), (6, 1), (5, None)])
def test_adaptive_pool1d(strategy, length, size):
    check_op(lambda x: F.adaptive_avg_pool1d(x, size), (2, 3, length),
             torch_fn=lambda x: TF.adaptive_avg_pool1d(x, size if size is not None else length))
    check_op(lambda x: F.adaptive_max_pool1d(x, size, True), (2, 3, length),
             torch_fn=lambda x: TF.adaptive_max_pool1d(x, size if size is not None else length, True))


@pytest.mark.parametrize("size", [(2, 3, 2), 1, (None, 2, 5), (3, 3, 3)])
def test_adaptive_pool3d(strategy, size):
    check_op(lambda x: F.adaptive_avg_pool3d(x, size), (2, 2, 5, 6, 4),
             torch_fn=lambda x: TF.adaptive_avg_pool3d(x, size), gradcheck=False)
    check_op(lambda x: F.adaptive_max_pool3d(x, size, True), (2, 2, 5, 6, 4),
             torch_fn=lambda x: TF.adaptive_max_pool3d(x, size, True), gradcheck=False)


def test_adaptive_gradcheck():
    check_op(lambda x: F.adaptive_avg_pool2d(x, (3, 2)), (1, 2, 7, 5),
             torch_fn=lambda x: TF.adaptive_avg_pool2d(x, (3, 2)))
    check_op(lambda x: F.adaptive_max_pool2d(x, (3, 4)), (1, 2, 7, 5),
             torch_fn=lambda x: TF.adaptive_max_pool2d(x, (3, 4)))


def test_global_pooling_large_input():
    """Global pooling (few windows of many elements) and a big map with the column kernels."""
    check_op(lambda x: F.adaptive_avg_pool2d(x, 1), (4, 8, 32, 32), torch_fn=lambda x: TF.adaptive_avg_pool2d(x, 1),
             gradcheck=False)
    check_op(lambda x: F.adaptive_max_pool2d(x, 1, True), (4, 8, 32, 32),
             torch_fn=lambda x: TF.adaptive_max_pool2d(x, 1, True), gradcheck=False)
    check_op(lambda x: F.max_pool2d(x, 3, 2, 1, return_indices=True), (4, 16, 32, 32),
             torch_fn=lambda x: TF.max_pool2d(x, 3, 2, 1, return_indices=True), gradcheck=False)


# ----------------------------------------------------------------------------- double backward
@pytest.mark.parametrize("name,args", [("max_pool2d", (3, 1, 1)), ("avg_pool2d", (3, 2, 1, True, False)),
                                       ("adaptive_max_pool2d", ((3, 4),)), ("adaptive_avg_pool2d", ((3, 4),)),
                                       ("max_pool1d", (2, 1))])
def test_double_backward(strategy, name, args):
    """g = ∂(y·v)/∂x is linear in v; differentiating w·g with respect to v gives the adjoint's
    adjoint (a gather for max, the pooling itself for average), compared with torch."""
    shape = (2, 3, 10) if name.endswith("1d") else (2, 3, 7, 9)
    x = np.random.default_rng(6).standard_normal(shape)
    results = []
    for lib, fn in ((dn, getattr(F, name)), (torch, getattr(TF, name))):
        rng = np.random.default_rng(7)
        xt = lib.tensor(x, requires_grad=True)
        y = fn(xt, *args)
        v = lib.tensor(rng.standard_normal(tuple(y.shape)), requires_grad=True)
        w = lib.tensor(np.random.default_rng(8).standard_normal(shape))
        (g,) = (dn.autograd.grad if lib is dn else torch.autograd.grad)([(y * v).sum()], [xt], create_graph=True)
        (g * w).sum().backward()
        results.append((g.detach().numpy(), v.grad.numpy()))
    for mine, theirs in zip(results[0], results[1], strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- errors
def test_functional_errors():
    x = dn.zeros(2, 3, 5, 5)
    with pytest.raises(RuntimeError, match=r"max_pool2d\(kernel_size=2\): expected input \(N, C, H, W\) or "
                                           r"\(C, H, W\).*got \(28, 28\)"):
        F.max_pool2d(dn.zeros(28, 28), 2)
    with pytest.raises(RuntimeError, match="at most half the kernel"):
        F.max_pool2d(x, 3, padding=2, dilation=2)  # torch: half of the kernel, not of the dilated one
    with pytest.raises(RuntimeError, match="stride must be positive"):
        F.avg_pool2d(x, 2, stride=0)
    with pytest.raises(RuntimeError, match=r"output size would be \(0, 0\).*\(1, 1, 1, 1\)"):
        F.max_pool2d(dn.zeros(1, 1, 1, 1), 2)
    with pytest.raises(RuntimeError, match="tuple of 2 ints"):
        F.max_pool2d(x, (2, 2, 2))
    with pytest.raises(RuntimeError, match="divisor_override must not be zero"):
        F.avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(RuntimeError, match="output_size must not be negative"):
        F.adaptive_avg_pool2d(x, (-1, 2))
    with pytest.raises(RuntimeError, match="tuple of 2 ints or None"):
        F.adaptive_avg_pool2d(x, (1, 2, 3))
    with pytest.raises(NotImplementedError, match="floating-point"):
        F.adaptive_avg_pool2d(dn.zeros(1, 2, 4, 4, dtype=dn.int64), 2)
    with pytest.raises(RuntimeError, match="non-zero C"):
        F.avg_pool1d(dn.zeros(2, 0, 5), 2)
    both_raise(lambda x: F.max_pool2d(x, 3, padding=2, dilation=2), lambda x: TF.max_pool2d(x, 3, padding=2,
               dilation=2), (1, 1, 5, 5))


@pytest.mark.parametrize("name,args", [("max_pool2d", (2,)), ("max_pool2d", (3, 1, 1)), ("avg_pool2d", (3, 2, 1)),
                                       ("adaptive_avg_pool2d", (3,)), ("adaptive_max_pool2d", (3,)),
                                       ("adaptive_avg_pool2d", (1,))])
def test_empty_batch(strategy, name, args):
    check_op(lambda x: getattr(F, name)(x, *args), (0, 3, 7, 9), torch_fn=lambda x: getattr(TF, name)(x, *args),
             gradcheck=False)


def test_adaptive_zero_output_is_empty():
    check_op(lambda x: F.adaptive_avg_pool2d(x, (0, 2)), (1, 2, 5, 4),
             torch_fn=lambda x: TF.adaptive_avg_pool2d(x, (0, 2)), grad=False)


# ----------------------------------------------------------------------------- layers
LAYERS = [
    ("MaxPool1d", (3,), {}, (2, 4, 11)), ("MaxPool1d", (3, 2, 1), {"return_indices": True}, (4, 11)),
    ("MaxPool2d", (2,), {}, (2, 3, 7, 9)),
    ("MaxPool2d", (3,), {"stride": 1, "padding": 1, "dilation": 1, "ceil_mode": True}, (2, 3, 7, 9)),
    ("MaxPool2d", ((2, 3),), {"stride": (2, 1), "dilation": (2, 1), "return_indices": True}, (3, 7, 9)),
    ("MaxPool3d", (2,), {"ceil_mode": True}, (1, 2, 5, 6, 7)),
    ("AvgPool1d", (3, 2, 1), {"count_include_pad": False}, (2, 4, 11)),
    ("AvgPool2d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True, "divisor_override": 4}, (2, 3, 7, 9)),
    ("AvgPool2d", (2,), {}, (3, 7, 9)), ("AvgPool3d", ((2, 1, 3),), {"padding": (1, 0, 1)}, (1, 2, 5, 6, 7)),
    ("AdaptiveAvgPool1d", (4,), {}, (2, 3, 9)), ("AdaptiveAvgPool2d", (1,), {}, (2, 3, 7, 9)),
    ("AdaptiveAvgPool2d", ((None, 4),), {}, (2, 3, 7, 9)), ("AdaptiveAvgPool3d", ((2, 3, 2),), {}, (1, 2, 5, 6, 7)),
    ("AdaptiveMaxPool1d", (3,), {"return_indices": True}, (2, 3, 7)), ("AdaptiveMaxPool2d", ((3, 4),), {}, (3, 7, 9)),
    ("AdaptiveMaxPool3d", (2,), {}, (1, 2, 5, 6, 7)),
]


@pytest.mark.parametrize("name,args,kwargs,shape", LAYERS)
def test_layers_match_torch(name, args, kwargs, shape):
    dn_layer, torch_layer = getattr(dnn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    assert repr(dn_layer) == repr(torch_layer)
    assert list(dn_layer.state_dict()) == list(torch_layer.state_dict()) == []
    assert list(dn_layer.parameters()) == []
    check_op(dn_layer, shape, torch_fn=torch_layer, gradcheck=False)


@pytest.mark.parametrize("name", ["MinPool1d", "MinPool2d", "MinPool3d"])
def test_min_pool_layers(name):
    dims = int(name[-2])
    layer = getattr(dnn, name)(3, stride=2, padding=1, return_indices=True)
    torch_max = getattr(torch.nn, name.replace("Min", "Max"))(3, stride=2, padding=1, return_indices=True)
    assert repr(layer) == repr(torch_max).replace("Max", "Min")

    def negated(x):
        values, indices = torch_max(-x)
        return -values, indices
    check_op(layer, (2, 3) + (6,) * dims, torch_fn=negated, gradcheck=False)


def test_layer_errors_name_the_layer():
    with pytest.raises(RuntimeError, match=r"^MaxPool2d\(kernel_size=2\): expected input \(N, C, H, W\) or "
                                           r"\(C, H, W\) with non-zero C, H, W, got \(28, 28\)$"):
        dnn.MaxPool2d(kernel_size=2)(dn.zeros(28, 28))
    with pytest.raises(RuntimeError, match=r"^MaxPool2d\(kernel_size=3\): the output size would be"):
        dnn.MaxPool2d(3)(dn.zeros(1, 2, 2))
    with pytest.raises(RuntimeError, match=r"^AvgPool2d\(kernel_size=2, padding=2\): padding must be"):
        dnn.AvgPool2d(2, padding=2)(dn.zeros(1, 8, 8))
    with pytest.raises(RuntimeError, match=r"^AdaptiveAvgPool3d\(output_size=2\): expected input \(N, C, D, H, W\)"):
        dnn.AdaptiveAvgPool3d(2)(dn.zeros(2, 3, 4))
    with pytest.raises(RuntimeError, match=r"^MinPool1d\(kernel_size=2, stride=1\): expected input \(N, C, L\)"):
        dnn.MinPool1d(2, 1)(dn.zeros(2, 3, 4, 5))


def test_float32_stays_float32():
    x = dn.tensor(np.random.default_rng(9).standard_normal((2, 3, 8, 8)).astype(np.float32), requires_grad=True)
    outputs = [F.max_pool2d(x, 3, 1, 1), F.avg_pool2d(x, 3, 2, 1, True, False), F.adaptive_avg_pool2d(x, 3),
               F.adaptive_max_pool2d(x, 3), F.min_pool2d(x, 2)]
    for y in outputs:
        assert y.dtype == np.float32
        x.grad = None
        y.sum().backward()
        assert x.grad.dtype == np.float32
