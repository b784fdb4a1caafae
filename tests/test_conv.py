"""Convolutions against torch: conv1d/2d/3d and conv_transpose1d/2d/3d over a grid of strides,
paddings ('same', 'valid', tuples), dilations, groups (depthwise included), kernel shapes, bias and
unbatched inputs (outputs and every gradient, float64 and float32); gradcheck and gradgradcheck;
the layers (weights copied from torch, padding modes, output_size, repr, state_dict, init
statistics, errors); and the study notes' facts: translation equivariance, parameter counts of
3×3 / bottleneck / stacked convs and the 5×5 receptive field of two 3×3 convs."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import deepnum as dn
import deepnum.nn as nn
from deepnum.nn import functional as F
from tests.helpers import check_op

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")

# (spatial dims, input shape, weight shape, keyword arguments)
CONV_CASES = [
    (2, (2, 4, 7, 9), (6, 4, 3, 3), {}),
    (2, (2, 4, 7, 9), (6, 4, 3, 3), {"stride": 2}),
    (2, (2, 4, 7, 9), (6, 4, 3, 3), {"stride": 3, "padding": 1}),
    (2, (2, 4, 7, 9), (6, 4, 3, 3), {"padding": 1}),
    (2, (2, 4, 7, 9), (6, 4, 3, 3), {"padding": 2, "stride": (1, 2)}),
    (2, (2, 4, 7, 9), (6, 4, 3, 3), {"padding": "same"}),
    (2, (2, 4, 7, 9), (6, 4, 3, 3), {"padding": "valid"}),
    (2, (2, 4, 7, 9), (6, 4, 3, 3), {"padding": (1, 2)}),
    (2, (2, 4, 7, 9), (6, 4, 3, 3), {"dilation": 2, "padding": 1}),
    (2, (2, 4, 7, 9), (6, 4, 3, 3), {"dilation": (2, 1), "padding": "same"}),
    (2, (2, 4, 7, 9), (6, 4, 4, 2), {"padding": "same"}),  # even kernels: asymmetric padding
    (2, (2, 4, 7, 9), (6, 4, 2, 2), {"padding": "same", "dilation": 3}),
    (2, (2, 4, 7, 9), (6, 4, 2, 3), {"stride": (2, 1), "padding": (0, 1)}),  # non-square kernel
    (2, (2, 4, 7, 9), (6, 4, 1, 1), {}),  # 1×1
    (2, (2, 4, 7, 9), (6, 4, 1, 1), {"stride": 2}),
    (2, (2, 4, 7, 9), (6, 2, 3, 3), {"groups": 2, "padding": 1}),
    (2, (2, 4, 7, 9), (4, 1, 3, 3), {"groups": 4, "padding": 1}),  # depthwise
    (2, (2, 4, 7, 9), (8, 1, 3, 3), {"groups": 4, "stride": 2, "padding": 1}),  # depthwise ×2
    (2, (2, 4, 9, 8), (6, 2, 3, 3), {"groups": 2, "stride": 2, "dilation": 2, "padding": (2, 1)}),
    (2, (4, 7, 9), (6, 4, 3, 3), {"padding": 1}),  # unbatched
    (2, (4, 7, 9), (6, 2, 3, 2), {"groups": 2, "stride": 2}),
    (1, (2, 3, 11), (4, 3, 3), {"stride": 2, "padding": 1}),
    (1, (2, 3, 11), (4, 3, 4), {"padding": "same"}),
    (1, (2, 3, 12), (6, 1, 3), {"groups": 3, "dilation": 3, "padding": "valid"}),
    (1, (3, 10), (4, 3, 5), {"stride": 3, "padding": 2}),
    (3, (2, 2, 5, 6, 4), (3, 2, 3, 2, 3), {"padding": 1, "stride": (1, 2, 1)}),
    (3, (2, 4, 4, 5, 3), (4, 2, 2, 3, 2), {"groups": 2, "padding": "same"}),
    (3, (2, 4, 5, 5), (3, 2, 3, 3, 3), {"dilation": (1, 2, 1), "padding": (1, 0, 2)}),  # unbatched
]

# (spatial dims, input shape, weight shape (in, out/groups, *k), keyword arguments)
TRANSPOSE_CASES = [
    (2, (2, 4, 5, 6), (4, 3, 3, 3), {}),
    (2, (2, 4, 5, 6), (4, 3, 3, 3), {"padding": 1}),
    (2, (2, 4, 5, 6), (4, 3, 3, 3), {"stride": 2, "padding": 1, "output_padding": 1}),
    (2, (2, 4, 5, 6), (4, 3, 4, 4), {"stride": 2, "padding": 1}),  # DCGAN's ×2 upsampling
    (2, (2, 4, 5, 6), (4, 3, 3, 2), {"stride": (3, 2), "padding": (2, 0), "output_padding": (2, 1)}),
    (2, (2, 4, 5, 6), (4, 2, 3, 3), {"stride": (2, 3), "dilation": 2, "output_padding": (1, 0), "groups": 2}),
    (2, (2, 4, 5, 6), (4, 3, 3, 3), {"dilation": 2, "output_padding": 1, "padding": 2}),  # op >= stride
    (2, (2, 4, 5, 6), (4, 1, 3, 3), {"groups": 4, "stride": 2}),  # depthwise
    (2, (2, 4, 5, 6), (4, 3, 1, 1), {"stride": 2}),
    (2, (4, 5, 6), (4, 3, 3, 3), {"stride": 2, "padding": 1}),  # unbatched
    (1, (2, 3, 7), (3, 4, 3), {"stride": 2, "padding": 1, "output_padding": 1}),
    (1, (2, 3, 7), (3, 4, 3), {"padding": 3}),  # crops more than the kernel adds
    (1, (2, 4, 7), (4, 1, 5), {"groups": 2, "dilation": 2}),
    (3, (2, 2, 3, 4, 3), (2, 3, 3, 2, 3), {"stride": (2, 1, 2), "padding": 1, "output_padding": (1, 0, 0)}),
    (3, (2, 4, 3, 3, 2), (4, 1, 2, 2, 2), {"groups": 2, "dilation": (1, 2, 1)}),
]


def conv_name(d, transposed):
    return f"conv_transpose{d}d" if transposed else f"conv{d}d"


def check_conv(d, x_shape, w_shape, kwargs, bias, transposed, gradcheck=False):
    name = conv_name(d, transposed)
    ours, theirs = getattr(F, name), getattr(TF, name)
    out_channels = w_shape[1] * kwargs.get("groups", 1) if transposed else w_shape[0]
    specs = [x_shape, w_shape] + ([(out_channels,)] if bias else [])
    check_op(lambda *a: ours(*a, **kwargs), *specs, torch_fn=lambda *a: theirs(*a, **kwargs), gradcheck=gradcheck)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("d", "x_shape", "w_shape", "kwargs"), CONV_CASES)
def test_conv_matches_torch(d, x_shape, w_shape, kwargs, bias):
    check_conv(d, x_shape, w_shape, kwargs, bias, transposed=False)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("d", "x_shape", "w_shape", "kwargs"), TRANSPOSE_CASES)
def test_conv_transpose_matches_torch(d, x_shape, w_shape, kwargs, bias):
    check_conv(d, x_shape, w_shape, kwargs, bias, transposed=True)


@pytest.mark.parametrize("per_tile", [1, 2, None])
@pytest.mark.parametrize(("case", "transposed"), [(CONV_CASES[4], False), (CONV_CASES[17], False),
                                                  (CONV_CASES[13], False), (CONV_CASES[25], False),
                                                  (TRANSPOSE_CASES[2], True), (TRANSPOSE_CASES[7], True),
                                                  (TRANSPOSE_CASES[1], True)])
def test_batch_tiles_give_the_same_result(monkeypatch, case, transposed, per_tile):
    """The CPU path cuts the output rows into tiles (one matmul each); one row per tile, a few, and
    all of them (the GPU path) must all agree with torch, for conv, col2im and the weight gradient."""
    from deepnum.functional import conv_ops

    if per_tile is None:
        monkeypatch.setattr(conv_ops, "TILE_BYTES", None)
    else:  # tiles of 1 or 2 output rows (the last one shorter where the count is odd)
        monkeypatch.setattr(conv_ops, "_tile", lambda xp, n, sample_bytes: min(n, per_tile))
    d, x_shape, w_shape, kwargs = case
    x_shape = (5,) + x_shape[1:] if len(x_shape) == d + 2 else x_shape
    check_conv(d, x_shape, w_shape, kwargs, bias=True, transposed=transposed)


@pytest.mark.parametrize(("d", "x_shape", "w_shape", "kwargs", "transposed"), [
    (1, (2, 2, 6), (3, 2, 3), {"stride": 2, "padding": 1}, False),
    (2, (2, 2, 5, 4), (4, 1, 3, 2), {"groups": 2, "padding": "same", "dilation": (1, 2)}, False),
    (3, (1, 2, 4, 3, 4), (2, 2, 2, 2, 3), {"stride": (2, 1, 2), "padding": 1}, False),
    (1, (2, 2, 4), (2, 3, 3), {"stride": 2, "padding": 1, "output_padding": 1}, True),
    (2, (1, 2, 3, 4), (2, 2, 3, 2), {"stride": (2, 1), "dilation": (1, 2), "groups": 2}, True),
    (3, (1, 2, 2, 3, 2), (2, 2, 2, 2, 2), {"stride": 2, "padding": (0, 1, 0)}, True),
])
def test_gradcheck_small_cases(d, x_shape, w_shape, kwargs, transposed):
    check_conv(d, x_shape, w_shape, kwargs, bias=True, transposed=transposed, gradcheck=True)


def _params(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [dn.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]


@pytest.mark.parametrize("stride", [1, 2])
def test_double_backward_conv2d(stride):
    x, w, b = _params((2, 2, 5, 4), (3, 2, 3, 3), (3,))
    fn = lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=1)  # noqa: E731
    assert dn.autograd.gradgradcheck(fn, [x, w, b])


def test_double_backward_conv_transpose2d_and_grouped_conv():
    x, w = _params((1, 4, 3, 4), (4, 1, 2, 3))
    assert dn.autograd.gradgradcheck(lambda x, w: F.conv_transpose2d(x, w, stride=2, groups=2), [x, w])
    assert dn.autograd.gradgradcheck(lambda x, w: F.conv2d(x, w, groups=4, padding=1), [x, w])


def test_double_backward_matches_torch():
    """d/dx of ‖∂L/∂w‖² (a gradient penalty) through both backward paths, against torch."""
    rng = np.random.default_rng(3)
    xv, wv = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 3))
    results = []
    for lib, conv, make in ((dn, F.conv2d, dn.tensor), (torch, TF.conv2d, torch.tensor)):
        x, w = make(xv, requires_grad=True), make(wv, requires_grad=True)
        y = conv(x, w, stride=2, padding=1)
        gx, gw = lib.autograd.grad((y * y).sum(), [x, w], create_graph=True)
        ((gw * gw).sum() + (gx * gx).sum()).backward()
        results.append((x.grad.numpy(), w.grad.numpy()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-9, atol=1e-9)


def test_float32_stays_float32_and_no_grad_path():
    x = dn.tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32), requires_grad=True)
    w = dn.tensor(np.random.default_rng(1).standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    y.sum().backward()
    assert y.dtype == x.grad.dtype == w.grad.dtype == np.float32
    with dn.no_grad():
        z = F.conv2d(x, w, padding=1)
    assert z.grad_fn is None and not z.requires_grad
    np.testing.assert_array_equal(z.numpy(), y.detach().numpy())


def test_input_modified_in_place_after_forward_is_refused():
    """The saved columns are the input's windows: changing the input afterwards must not go unnoticed."""
    x, w = _params((1, 2, 4, 4), (2, 2, 3, 3))
    a = x * 1.0
    y = F.conv2d(a, w)
    with dn.no_grad():
        a.add_(1.0)
    with pytest.raises(RuntimeError, match="in place"):
        y.sum().backward()


# ------------------------------------------------------------------------------------------- layers
def to_dn_state(torch_module):
    return {k: dn.tensor(v.detach().numpy()) for k, v in torch_module.state_dict().items()}


def check_layer(name, args, kwargs, x_shape, forward_kwargs=None, seed=0):
    """Same weights in both; output, input gradient and every parameter gradient, float64 and float32."""
    torch.manual_seed(seed)
    theirs = getattr(torch.nn, name)(*args, **kwargs)
    ours = getattr(nn, name)(*args, **kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    forward_kwargs = forward_kwargs or {}
    rng = np.random.default_rng(seed)
    x_value = rng.standard_normal(x_shape)
    for dtype, tol in ((np.float64, 1e-10), (np.float32, 2e-4)):
        t_layer = theirs.double() if dtype == np.float64 else theirs.float()
        ours = ours.double() if dtype == np.float64 else ours.float()
        ours.load_state_dict(to_dn_state(t_layer))
        ours.zero_grad()
        x = dn.tensor(x_value.astype(dtype), requires_grad=True)
        xt = torch.tensor(x_value.astype(dtype), requires_grad=True)
        y, yt = ours(x, **forward_kwargs), t_layer(xt, **forward_kwargs)
        assert y.dtype == dtype
        np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=tol, atol=tol)
        g = rng.standard_normal(yt.shape).astype(dtype)
        (y * dn.tensor(g)).sum().backward()
        (yt * torch.tensor(g)).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=tol, atol=tol)
        grads = dict(ours.named_parameters())
        for key, p in t_layer.named_parameters():
            assert grads[key].grad.dtype == dtype
            np.testing.assert_allclose(grads[key].grad.numpy(), p.grad.numpy(), rtol=tol, atol=tol, err_msg=key)
            p.grad = None


@pytest.mark.parametrize(("name", "args", "kwargs", "x_shape"), [
    ("Conv1d", (3, 4, 3), {"stride": 2, "padding": 1}, (2, 3, 10)),
    ("Conv1d", (4, 6, 4), {"padding": "same", "groups": 2, "bias": False}, (2, 4, 9)),
    ("Conv2d", (3, 8, 3), {"padding": 1}, (2, 3, 7, 9)),
    ("Conv2d", (4, 8, (3, 2)), {"stride": (2, 1), "dilation": 2, "groups": 4, "bias": False}, (2, 4, 9, 8)),
    ("Conv2d", (4, 4, 3), {"padding": "valid", "groups": 4}, (4, 6, 6)),  # depthwise, unbatched
    ("Conv2d", (3, 5, 3), {"padding": 2, "padding_mode": "reflect"}, (2, 3, 6, 7)),
    ("Conv2d", (3, 5, 4), {"padding": "same", "padding_mode": "replicate"}, (2, 3, 6, 7)),
    ("Conv2d", (3, 5, 3), {"padding": (1, 2), "padding_mode": "circular", "stride": 2}, (2, 3, 6, 7)),
    ("Conv3d", (2, 4, 3), {"padding": 1, "stride": (1, 2, 2)}, (2, 2, 4, 5, 6)),
    ("Conv3d", (2, 4, 2), {"padding": 1, "padding_mode": "replicate"}, (2, 2, 3, 4, 4)),
    ("Conv1d", (2, 3, 3), {"padding": 2, "padding_mode": "circular", "dilation": 2}, (2, 2, 6)),
    ("ConvTranspose1d", (3, 4, 3), {"stride": 2, "padding": 1, "output_padding": 1}, (2, 3, 6)),
    ("ConvTranspose2d", (4, 6, 4), {"stride": 2, "padding": 1, "groups": 2}, (2, 4, 5, 5)),
    ("ConvTranspose2d", (3, 2, 3), {"dilation": 2, "bias": False}, (3, 4, 5)),  # unbatched
    ("ConvTranspose3d", (2, 3, 2), {"stride": 2}, (1, 2, 3, 2, 3)),
])
def test_layer_matches_torch(name, args, kwargs, x_shape):
    check_layer(name, args, kwargs, x_shape)


def test_conv_transpose_output_size():
    check_layer("ConvTranspose2d", (3, 2, 3), {"stride": 3, "padding": 1}, (2, 3, 4, 5),
                forward_kwargs={"output_size": [11, 15]})
    layer = nn.ConvTranspose2d(3, 2, 3, stride=3, padding=1)
    assert layer(dn.zeros(1, 3, 4, 5), output_size=(1, 2, 12, 13)).shape == (1, 2, 12, 13)
    with pytest.raises(ValueError, match=r"ConvTranspose2d\(3→2\): requested an output size of \[14, 13\]"):
        layer(dn.zeros(1, 3, 4, 5), output_size=[14, 13])


@pytest.mark.parametrize(("name", "args", "kwargs", "fan_in"), [
    ("Conv2d", (16, 32, 3), {}, 16 * 9),
    ("Conv1d", (8, 4, 5), {"groups": 2}, 4 * 5),
    ("ConvTranspose2d", (16, 32, 4), {"groups": 2}, 16 * 16),  # fan_in is weight.shape[1]·∏kernel
])
def test_default_init_has_torchs_distribution(name, args, kwargs, fan_in):
    dn.manual_seed(0)
    layer = getattr(nn, name)(*args, **kwargs)
    bound = 1 / np.sqrt(fan_in)  # kaiming_uniform(a=√5): gain √(2/6), bound √3·gain/√fan_in
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    ref = getattr(torch.nn, name)(*args, **kwargs).weight.detach().numpy()
    assert w.shape == ref.shape and w.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.1 * bound / np.sqrt(3)
    assert abs(w.mean()) < 0.1 * bound
    assert np.abs(b).max() <= bound and b.shape == (layer.out_channels,)


def test_layer_errors_name_the_layer():
    conv = nn.Conv2d(3, 16, 3)
    with pytest.raises(ValueError, match=r"^Conv2d\(3→16\): expected input \(N, 3, H, W\), got \(8, 1, 28, 28\)$"):
        conv(dn.zeros(8, 1, 28, 28))
    with pytest.raises(ValueError, match=r"Conv2d\(3→16\): expected input .* got \(3, 28\)"):
        conv(dn.zeros(3, 28))
    with pytest.raises(ValueError, match=r"Conv2d\(3→16\): input \(1, 3, 2, 9\) padded to \(2, 9\) is smaller than "
                                         r"the dilated kernel \(3, 3\)"):
        conv(dn.zeros(1, 3, 2, 9))
    with pytest.raises(ValueError, match=r"dilated kernel \(5, 5\)"):
        nn.Conv2d(3, 4, 3, dilation=2, padding=1)(dn.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match=r"Conv1d\(3→16\): expected input \(N, 3, L\)"):
        nn.Conv1d(3, 16, 3)(dn.zeros(2, 4, 10))
    with pytest.raises(ValueError, match=r"Conv2d\(6→9\): groups=2 must divide both in_channels=6 and out_ch"):
        nn.Conv2d(6, 9, 3, groups=2)
    with pytest.raises(ValueError, match=r"Conv2d\(6→8\): groups must be a positive integer"):
        nn.Conv2d(6, 8, 3, groups=0)
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="invalid padding 'full'"):
        nn.Conv2d(3, 4, 3, padding="full")
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match=r'ConvTranspose2d\(3→4\): only "zeros" padding mode'):
        nn.ConvTranspose2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match=r"expected kernel_size to be an int or a tuple of 2 ints"):
        nn.Conv2d(3, 4, (3, 3, 3))


def test_functional_errors():
    x, w = dn.zeros(2, 3, 8, 8), dn.zeros(4, 3, 3, 3)
    with pytest.raises(RuntimeError, match=r"conv2d: given groups=1, weight of shape \(4, 3, 3, 3\), expected input "
                                           r"\(2, 2, 8, 8\) to have 3 channels, but got 2"):
        F.conv2d(dn.zeros(2, 2, 8, 8), w)
    with pytest.raises(RuntimeError, match=r"conv2d: expected 3-D \(unbatched\) or 4-D"):
        F.conv2d(dn.zeros(8, 8), w)
    with pytest.raises(RuntimeError, match=r"conv2d: groups=3 must divide the weight's first dim"):
        F.conv2d(dn.zeros(2, 3, 8, 8), dn.zeros(4, 1, 3, 3), groups=3)
    with pytest.raises(RuntimeError, match="same floating dtype"):
        F.conv2d(x, dn.zeros(4, 3, 3, 3, dtype=dn.float64))
    with pytest.raises(RuntimeError, match=r"expected bias of shape \(4,\)"):
        F.conv2d(x, w, dn.zeros(3))
    with pytest.raises(RuntimeError, match="smaller than the dilated kernel"):
        F.conv2d(dn.zeros(1, 3, 4, 4), w, dilation=2)
    with pytest.raises(RuntimeError, match="not supported for strided"):
        F.conv2d(x, w, padding="same", stride=2)
    with pytest.raises(RuntimeError, match="stride must be positive"):
        F.conv2d(x, w, stride=0)
    with pytest.raises(RuntimeError, match=r"expected padding to be a single integer or a list of 2"):
        F.conv2d(x, w, padding=(1, 1, 1))
    with pytest.raises(RuntimeError, match="output padding must be non-negative and smaller than either stride"):
        F.conv_transpose2d(dn.zeros(1, 4, 3, 3), w, stride=2, output_padding=2)
    with pytest.raises(RuntimeError, match="is too small"):
        F.conv_transpose2d(dn.zeros(1, 4, 1, 1), w, padding=2)


# ------------------------------------------------------------------------ facts from the study notes
def test_translation_equivariance():
    """Shift the input by one pixel (zeros around, so nothing falls off): the output shifts by the
    same pixel, exactly, wherever the shifted window still lies inside the image."""
    dn.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    x = np.zeros((1, 2, 12, 12), dtype=np.float32)
    x[..., 2:9, 3:10] = np.random.default_rng(0).standard_normal((1, 2, 7, 7))
    y = conv(dn.tensor(x)).detach().numpy()
    for axis in (2, 3):
        shifted = conv(dn.tensor(np.roll(x, 1, axis=axis))).detach().numpy()
        np.testing.assert_allclose(np.take(shifted, range(1, 12), axis=axis), np.take(y, range(11), axis=axis),
                                   rtol=1e-6, atol=1e-6)
    assert not np.allclose(shifted, y)


def n_weights(*layers):
    return sum(p.numel() for layer in layers for p in layer.parameters())


def test_parameter_counts():
    assert n_weights(nn.Conv2d(128, 128, 3, bias=False)) == 3 * 3 * 128 * 128 == 147_456
    bottleneck = nn.Sequential(nn.Conv2d(128, 32, 1, bias=False), nn.Conv2d(32, 128, 3, bias=False))
    assert n_weights(bottleneck[0]) == 4_096 and n_weights(bottleneck[1]) == 36_864
    assert n_weights(bottleneck) == 40_960
    c = 64
    two_3x3 = n_weights(nn.Conv2d(c, c, 3, bias=False), nn.Conv2d(c, c, 3, bias=False))
    one_5x5 = n_weights(nn.Conv2d(c, c, 5, bias=False))
    assert two_3x3 == 2 * 9 * c * c == 73_728 and one_5x5 == 25 * c * c == 102_400
    assert n_weights(nn.Conv2d(c, c, 3)) == 9 * c * c + c  # one bias per filter
    assert n_weights(nn.Conv2d(c, c, 3, groups=c, bias=False)) == 9 * c  # depthwise


def receptive_field(model, size=11):
    """The input pixels whose change moves the centre output pixel: where its gradient is non-zero."""
    x = dn.zeros(1, 2, size, size, requires_grad=True)
    y = model(x)
    centre = y.shape[-1] // 2
    y[0, 0, centre, centre].backward()
    rows, cols = np.nonzero(np.abs(x.grad.numpy()).sum(axis=(0, 1)))
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def test_two_3x3_convs_see_5x5():
    dn.manual_seed(0)
    stacked = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1))
    single = nn.Conv2d(2, 2, 5, padding=2)
    for layer in (*stacked, single):
        nn.init.uniform_(layer.weight, 0.1, 1.0)  # positive weights: no accidental cancellation
    assert receptive_field(nn.Conv2d(2, 2, 3, padding=1)) == (3, 3)
    assert receptive_field(stacked) == receptive_field(single) == (5, 5)
    dilated = nn.Conv2d(2, 2, 3, padding=2, dilation=2)  # D·(K−1) + 1 = 5 with 9 taps
    nn.init.uniform_(dilated.weight, 0.1, 1.0)
    assert receptive_field(dilated) == (5, 5)


@pytest.mark.parametrize(("h", "k", "p", "s", "d"), [(32, 3, 1, 1, 1), (32, 3, 1, 2, 1), (28, 5, 0, 1, 1),
                                                      (7, 3, 2, 3, 2), (9, 4, 1, 2, 1)])
def test_output_size_formula(h, k, p, s, d):
    """OH = ⌊(H + 2P − D·(K−1) − 1)/S⌋ + 1 (study notes, 004)."""
    y = F.conv2d(dn.zeros(1, 1, h, h + 1), dn.zeros(1, 1, k, k), stride=s, padding=p, dilation=d)
    expected = lambda n: (n + 2 * p - d * (k - 1) - 1) // s + 1  # noqa: E731
    assert y.shape == (1, 1, expected(h), expected(h + 1))


def test_default_tiles_on_a_real_batch():
    """(40, 16, 32, 32) with a 5×5 kernel (im2col, not the 3×3 fast path): an output row of the 40
    samples makes 16·25·32·40 columns entries, so a 4 MB tile holds 6 rows of float64: several
    tiles and a short last one."""
    from deepnum.functional import conv_ops

    assert conv_ops._tile(np, 32, 16 * 25 * 32 * 40 * 8) < 32
    check_op(lambda x, w, b: F.conv2d(x, w, b, padding=2), (40, 16, 32, 32), (8, 16, 5, 5), (8,),
             torch_fn=lambda x, w, b: TF.conv2d(x, w, b, padding=2), dtypes=(np.float64,), gradcheck=False)
    check_op(lambda y, w: F.conv_transpose2d(y, w, stride=2, padding=1), (40, 8, 16, 16), (8, 16, 3, 3),
             torch_fn=lambda y, w: TF.conv_transpose2d(y, w, stride=2, padding=1), dtypes=(np.float64,),
             gradcheck=False)
