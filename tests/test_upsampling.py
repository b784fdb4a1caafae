"""interpolate/Upsample against PyTorch: nearest, nearest-exact, linear, bilinear, trilinear and area,
align_corners both ways, size vs scale_factor (integer, non-integer such as 1.5, downsampling),
recompute_scale_factor, values and gradients in float64 and float32, gradcheck, double backward,
the index rules over many sizes, the layers (repr, state_dict) and the error messages."""
import itertools
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import deepnum as dn
import deepnum.nn as dnn
import deepnum.nn.functional as F
from tests.helpers import Const, check_op

RESIZES = [{"scale_factor": 2}, {"scale_factor": 3}, {"scale_factor": 1.5}, {"scale_factor": 0.5},
           {"scale_factor": 0.7}, {"scale_factor": 1.0}, {"scale_factor": (2, 1.5)}, {"scale_factor": (0.6, 2.3)},
           {"size": (5, 4)}, {"size": (13, 20)}, {"size": (1, 1)}, {"size": (7, 9)}, {"size": 11}]


def both(kwargs, shape, gradcheck=False, **check):
    check_op(lambda x: F.interpolate(x, **kwargs), shape, torch_fn=lambda x: TF.interpolate(x, **kwargs),
             gradcheck=gradcheck, **check)


@pytest.mark.parametrize("mode,align_corners", [("nearest", None), ("nearest-exact", None), ("bilinear", False),
                                                ("bilinear", True), ("area", None)])
@pytest.mark.parametrize("resize", RESIZES, ids=lambda r: repr(r))
def test_interpolate_2d(mode, align_corners, resize):
    both(dict(resize, mode=mode, align_corners=align_corners), (2, 3, 7, 9))


@pytest.mark.parametrize("mode,align_corners", [("nearest", None), ("nearest-exact", None), ("linear", False),
                                                ("linear", True), ("area", None)])
@pytest.mark.parametrize("resize", [{"scale_factor": 2}, {"scale_factor": 1.5}, {"scale_factor": 0.4},
                                    {"size": 4}, {"size": 17}, {"size": 1}, {"scale_factor": 2.5}])
def test_interpolate_1d(mode, align_corners, resize):
    both(dict(resize, mode=mode, align_corners=align_corners), (2, 3, 7))


@pytest.mark.parametrize("mode,align_corners", [("nearest", None), ("trilinear", False), ("trilinear", True),
                                                ("nearest-exact", None), ("area", None)])
@pytest.mark.parametrize("resize", [{"scale_factor": 2}, {"scale_factor": (1.5, 0.5, 2)}, {"size": (3, 7, 4)}])
def test_interpolate_3d(mode, align_corners, resize):
    both(dict(resize, mode=mode, align_corners=align_corners), (1, 2, 4, 5, 6))


@pytest.mark.parametrize("kwargs", [
    {"scale_factor": 1.5, "mode": "bilinear"}, {"scale_factor": 0.6, "mode": "bilinear", "align_corners": True},
    {"size": (4, 7), "mode": "bilinear"}, {"scale_factor": 2.5, "mode": "nearest"},
    {"scale_factor": (0.7, 1.3), "mode": "nearest-exact"}, {"size": (2, 5), "mode": "area"}])
def test_interpolate_gradcheck(kwargs):
    both(kwargs, (1, 2, 4, 5), gradcheck=True)


@pytest.mark.parametrize("mode,align_corners", [("nearest", None), ("nearest-exact", None), ("linear", False),
                                                ("linear", True)])
def test_index_rules_over_many_sizes(mode, align_corners):
    """PyTorch computes source indices in float32 (float64 for float64 input); deepnum follows it, so
    every size and awkward scale factor picks the same neighbours and weights."""
    for n, factor in itertools.product([1, 2, 3, 5, 7, 10, 13], [0.3, 0.7, 1.1, 1.3, 1.5, 1.7, 2.2, 2.5, 3.3]):
        if int(n * factor) < 1:
            continue
        both({"scale_factor": factor, "mode": mode, "align_corners": align_corners}, (1, 2, n), grad=False)
    for n, size in itertools.product([1, 3, 6, 11], [1, 2, 5, 9, 16, 23]):
        both({"size": size, "mode": mode, "align_corners": align_corners}, (1, 2, n), grad=False)


def test_recompute_scale_factor():
    for factor in (1.5, 0.7, 2.3):
        both({"scale_factor": factor, "mode": "bilinear", "recompute_scale_factor": True}, (2, 3, 7, 9))
        both({"scale_factor": factor, "mode": "nearest", "recompute_scale_factor": True}, (2, 3, 7, 9))


def test_interpolate_dtypes():
    x = dn.tensor(np.random.default_rng(0).standard_normal((2, 3, 5, 6)).astype(np.float32), requires_grad=True)
    for kwargs in ({"scale_factor": 2}, {"scale_factor": 1.5, "mode": "bilinear"}, {"size": 3, "mode": "area"}):
        y = F.interpolate(x, **kwargs)
        assert y.dtype == np.float32
        x.grad = None
        y.sum().backward()
        assert x.grad.dtype == np.float32
    ints = np.arange(24).reshape(1, 2, 3, 4).astype(np.uint8)  # nearest only moves values
    check_op(lambda t: F.interpolate(t, scale_factor=1.5), Const(ints),
             torch_fn=lambda t: TF.interpolate(t, scale_factor=1.5))


def test_empty_batch():
    both({"scale_factor": 2}, (0, 3, 4, 5))
    both({"scale_factor": 1.5, "mode": "bilinear"}, (0, 3, 4, 5))


def test_same_size_is_a_copy():
    x = dn.tensor(np.ones((1, 1, 3, 3)), requires_grad=True)
    y = F.interpolate(x, size=(3, 3), mode="bilinear")
    assert y is not x
    np.testing.assert_array_equal(y.detach().numpy(), x.detach().numpy())


@pytest.mark.parametrize("kwargs", [{"scale_factor": 2, "mode": "bilinear"},
                                    {"scale_factor": 0.7, "mode": "bilinear", "align_corners": True},
                                    {"scale_factor": 1.5, "mode": "nearest"}, {"size": (3, 4), "mode": "area"}])
def test_double_backward(kwargs):
    """The adjoint's adjoint is the interpolation itself: d/dv of w·∂(y·v)/∂x against torch."""
    x = np.random.default_rng(1).standard_normal((2, 3, 5, 6))
    results = []
    for lib, fn in ((dn, F.interpolate), (torch, TF.interpolate)):
        xt = lib.tensor(x, requires_grad=True)
        y = fn(xt, **kwargs)
        v = lib.tensor(np.random.default_rng(2).standard_normal(tuple(y.shape)), requires_grad=True)
        (g,) = (dn.autograd.grad if lib is dn else torch.autograd.grad)([(y * v).sum()], [xt], create_graph=True)
        (g * lib.tensor(np.random.default_rng(3).standard_normal(x.shape))).sum().backward()
        results.append((g.detach().numpy(), v.grad.numpy()))
    for mine, theirs in zip(results[0], results[1], strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)


def test_aliases():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that these names are deprecated
        check_op(lambda x: F.upsample(x, scale_factor=2, mode="bilinear"), (1, 2, 3, 4),
                 torch_fn=lambda x: TF.upsample(x, scale_factor=2, mode="bilinear"), gradcheck=False)
        check_op(lambda x: F.upsample_nearest(x, size=(5, 7)), (1, 2, 3, 4),
                 torch_fn=lambda x: TF.upsample_nearest(x, size=(5, 7)), gradcheck=False)
        check_op(lambda x: F.upsample_bilinear(x, scale_factor=1.5), (1, 2, 3, 4),
                 torch_fn=lambda x: TF.upsample_bilinear(x, scale_factor=1.5), gradcheck=False)


def test_errors():
    x = dn.zeros(1, 2, 4, 4)
    with pytest.raises(ValueError, match="only one of size or scale_factor"):
        F.interpolate(x, size=3, scale_factor=2)
    with pytest.raises(ValueError, match="either size or scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="align_corners option can only be set"):
        F.interpolate(x, scale_factor=2, align_corners=True)
    with pytest.raises(NotImplementedError, match=r"got 4-D input \(1, 2, 4, 4\), but mode 'linear' needs 3-D"):
        F.interpolate(x, scale_factor=2, mode="linear")
    with pytest.raises(NotImplementedError, match="mode must be one of"):
        F.interpolate(x, scale_factor=2, mode="bicubic")
    with pytest.raises(NotImplementedError, match=r"expected input \(N, C, L\)"):
        F.interpolate(dn.zeros(4, 4), scale_factor=2)
    with pytest.raises(RuntimeError, match="greater than 0"):
        F.interpolate(x, scale_factor=0.1)
    with pytest.raises(ValueError, match="must give 2 spatial sizes"):
        F.interpolate(x, size=(2, 3, 4))
    with pytest.raises(ValueError, match="recompute_scale_factor is not meaningful"):
        F.interpolate(x, size=3, recompute_scale_factor=True)
    with pytest.raises(NotImplementedError, match="floating-point"):
        F.interpolate(dn.zeros(1, 2, 4, 4, dtype=dn.int64), scale_factor=2, mode="bilinear")


# ----------------------------------------------------------------------------- layers
@pytest.mark.parametrize("name,kwargs,shape", [
    ("Upsample", {"scale_factor": 2}, (2, 3, 4, 5)), ("Upsample", {"size": (3, 7), "mode": "bilinear"}, (2, 3, 4, 5)),
    ("Upsample", {"scale_factor": (2, 1.5), "mode": "bilinear", "align_corners": True}, (2, 3, 4, 5)),
    ("Upsample", {"scale_factor": 1.5, "mode": "linear"}, (2, 3, 5)),
    ("Upsample", {"size": 6, "mode": "trilinear"}, (1, 2, 3, 4, 5)),
    ("Upsample", {"scale_factor": 0.5, "mode": "nearest", "recompute_scale_factor": True}, (2, 3, 6, 7)),
    ("UpsamplingNearest2d", {"scale_factor": 2}, (2, 3, 4, 5)), ("UpsamplingNearest2d", {"size": 5}, (2, 3, 4, 5)),
    ("UpsamplingBilinear2d", {"scale_factor": 2}, (2, 3, 4, 5)),
    ("UpsamplingBilinear2d", {"size": (3, 8)}, (2, 3, 4, 5))])
def test_layers_match_torch(name, kwargs, shape):
    dn_layer, torch_layer = getattr(dnn, name)(**kwargs), getattr(torch.nn, name)(**kwargs)
    assert repr(dn_layer) == repr(torch_layer)
    assert list(dn_layer.state_dict()) == list(torch_layer.state_dict()) == []
    assert (dn_layer.align_corners, dn_layer.scale_factor) == (torch_layer.align_corners, torch_layer.scale_factor)
    check_op(dn_layer, shape, torch_fn=torch_layer, gradcheck=False)


def test_layer_errors_name_the_layer():
    with pytest.raises(NotImplementedError, match=r"^UpsamplingBilinear2d\(scale_factor=2.0, mode='bilinear'\): "
                                                  r"got 3-D input \(3, 4, 5\)"):
        dnn.UpsamplingBilinear2d(scale_factor=2)(dn.zeros(3, 4, 5))
    with pytest.raises(ValueError, match=r"^Upsample\(size=None, mode='nearest'\): either size or scale_factor"):
        dnn.Upsample()(dn.zeros(1, 3, 4, 5))
