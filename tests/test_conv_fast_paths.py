"""The convolution-network fast paths against torch: Winograd F(2×2, 3×3) convolutions (forward,
input and weight gradients, in bands), the batch-last memory layout that convolutions
produce and the layers after them keep, batch norm on channel rows (fused with ReLU), the
residual add + ReLU, option-A shortcuts, max pooling's gradient through its arg-max masks, ReLU's
vectorised maximum, and the inference folding of batch norm into ResNet's convolutions."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import deepnum as dn
import deepnum.nn as nn
from deepnum.functional import _conv_winograd as W
from deepnum.functional import _conv_winograd4 as W4
from deepnum.functional import _fused_runtime as R
from deepnum.functional._fused_block import AddReLU, channel_rows
from deepnum.nn import functional as F
from tests.helpers import check_op


def _eye(c):
    """A 1×1 identity convolution weight: conv2d(x, eye) is x, stored batch-last."""
    return np.eye(c).reshape(c, c, 1, 1)


def _batch_last(t):
    return channel_rows(t.data) is not None


# ----------------------------------------------------------------------------- Winograd
WINOGRAD_CASES = [
    ((2, 8, 7, 9), (8, 8, 3, 3), {"padding": 1}),
    ((2, 8, 6, 6), (10, 8, 3, 3), {}),  # valid: its input gradient pads by 2
    ((3, 9, 5, 8), (8, 9, 3, 3), {"padding": 2}),
    ((1, 8, 1, 1), (8, 8, 3, 3), {"padding": 1}),  # one pixel
    ((2, 8, 4, 5), (8, 8, 3, 3), {"padding": (0, 1)}),
    ((2, 8, 7, 9), (8, 8, 3, 3), {"padding": "same"}),
]


@pytest.mark.parametrize(("x_shape", "w_shape", "kwargs"), WINOGRAD_CASES)
@pytest.mark.parametrize("bias", [False, True])
def test_winograd_conv_matches_torch(x_shape, w_shape, kwargs, bias):
    geom_ok = W.applies((3, 3), (1, 1), (1, 1), 1, (0, 0), (0, 0), x_shape[1], w_shape[0])
    assert geom_ok, "these cases must take the fast path"
    specs = [x_shape, w_shape] + ([(w_shape[0],)] if bias else [])
    check_op(lambda *a: F.conv2d(*a, **kwargs), *specs, torch_fn=lambda *a: TF.conv2d(*a, **kwargs),
             gradcheck=x_shape[0] == 1)


@pytest.mark.parametrize("padding", [0, 1, 2])
def test_winograd_conv_transpose_matches_torch(padding):
    """A stride-1 3×3 transposed convolution is the Winograd convolution with the flipped kernel."""
    check_op(lambda y, w: F.conv_transpose2d(y, w, padding=padding), (2, 8, 6, 7), (8, 9, 3, 3),
             torch_fn=lambda y, w: TF.conv_transpose2d(y, w, padding=padding), gradcheck=False)


@pytest.mark.parametrize("band_bytes", [1, 1 << 20])
def test_winograd_bands_agree_with_torch(monkeypatch, band_bytes):
    """One tile row per band (the last band shorter) or all rows in one band: the same result."""
    monkeypatch.setattr(W, "BAND_BYTES", band_bytes)
    check_op(lambda x, w, b: F.conv2d(x, w, b, padding=1), (3, 8, 9, 10), (12, 8, 3, 3), (12,),
             torch_fn=lambda x, w, b: TF.conv2d(x, w, b, padding=1), gradcheck=False)


class _FakeBlas:
    """Stands in for threadpoolctl's controller of NumPy's BLAS: a thread budget of ``count``."""

    def __init__(self, count):
        self.count, self.calls = count, []

    def get_num_threads(self):
        return self.count

    def set_num_threads(self, n):
        self.calls.append(n)


@pytest.mark.parametrize("case", [((3, 8, 9, 10), (12, 8, 3, 3), {"padding": 1}),  # Winograd bands
                                  ((3, 4, 9, 10), (6, 4, 5, 5), {"padding": 2}),  # im2col tiles
                                  ((3, 4, 9, 10), (6, 4, 3, 3), {"stride": 2})])
def test_ops_split_over_threads_agree_with_torch(monkeypatch, case):
    """With a BLAS budget of 3 threads, the band and tile loops run on 3 Python threads with the BLAS
    single-threaded meanwhile, and it is restored afterwards."""
    from deepnum.functional import conv_ops

    blas = _FakeBlas(3)
    monkeypatch.setattr(R, "_numpy_blas", lambda: [blas])
    monkeypatch.setattr(W, "BAND_BYTES", 1)
    monkeypatch.setattr(conv_ops, "_tile", lambda xp, n, unit_bytes: 1)
    x_shape, w_shape, kwargs = case
    check_op(lambda x, w: F.conv2d(x, w, **kwargs), x_shape, w_shape, torch_fn=lambda x, w: TF.conv2d(x, w, **kwargs),
             gradcheck=False)
    assert blas.calls[:2] == [1, 3] and len(blas.calls) % 2 == 0


def test_batch_norm_and_add_relu_split_over_threads(monkeypatch):
    """Batch norm (+ ReLU) and the residual add + ReLU split the channel rows over the threads."""
    monkeypatch.setattr(R, "_numpy_blas", lambda: [_FakeBlas(2)])
    check_op(_bn_fn("dn", F, True, True), (3, 5, 4, 6), (5,), (5,), torch_fn=_bn_fn("torch", TF, True, True),
             gradcheck=False)

    def ours(a, b):
        eye = dn.tensor(_eye(5), dtype=a.dtype)
        return AddReLU()(F.conv2d(a, eye), F.conv2d(b, eye))

    check_op(ours, (3, 5, 4, 6), (3, 5, 4, 6), torch_fn=lambda a, b: torch.relu(a + b), gradcheck=False)


def test_winograd_double_backward():
    rng = np.random.default_rng(0)
    x = dn.tensor(rng.standard_normal((1, 8, 4, 5)), requires_grad=True)
    w = dn.tensor(rng.standard_normal((8, 8, 3, 3)), requires_grad=True)
    assert dn.autograd.gradgradcheck(lambda x, w: F.conv2d(x, w, padding=1), [x, w])


def test_winograd_is_skipped_where_it_does_not_apply():
    assert not W.applies((3, 3), (1, 1), (1, 1), 1, (1, 1), (1, 1), 3, 16)  # an RGB input: im2col
    assert not W.applies((3, 3), (2, 2), (1, 1), 1, (1, 1), (1, 1), 16, 16)  # strided
    assert not W.applies((3, 3), (1, 1), (2, 2), 1, (1, 1), (1, 1), 16, 16)  # dilated
    assert not W.applies((3, 3), (1, 1), (1, 1), 2, (1, 1), (1, 1), 16, 16)  # grouped
    assert not W.applies((5, 5), (1, 1), (1, 1), 1, (2, 2), (2, 2), 16, 16)
    assert not W.applies((3, 3), (1, 1), (1, 1), 1, (3, 3), (3, 3), 16, 16)


def test_scratch_buffers_are_reused_per_thread_and_freed():
    a = R.scratch("test", (4, 5), np.float32)
    b = R.scratch("test", (3, 2), np.float32)
    assert np.shares_memory(a, b) and b.shape == (3, 2)
    R.free_scratch()
    c = R.scratch("test", (3, 2), np.float32)
    assert not np.shares_memory(b, c)
    big = R.scratch("test", (R.SCRATCH_MAX_BYTES // 4 + 1,), np.float32)  # too large to keep: a fresh array
    assert not np.shares_memory(big, R.scratch("test", (3, 2), np.float32))


# ----------------------------------------------------------------------------- batch-last layout
def test_conv_outputs_are_batch_last_and_following_layers_keep_it():
    rng = np.random.default_rng(1)
    x = dn.tensor(rng.standard_normal((4, 3, 10, 10)).astype(np.float32), requires_grad=True)
    conv, bn, pool = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.MaxPool2d(2)
    y = conv(x)
    assert _batch_last(y) and not _batch_last(x)
    z = F.relu(bn(y))
    assert _batch_last(z) and _batch_last(pool(z))
    z.sum().backward()
    conv2 = nn.Conv2d(8, 8, 3, padding=1)  # the same result from a batch-last input and from an NCHW copy
    np.testing.assert_allclose(conv2(dn.tensor(np.ascontiguousarray(y.data))).data,
                               conv2(y.detach()).data, rtol=1e-5, atol=1e-5)
    assert _batch_last(F.adaptive_avg_pool2d(z, 1))


def test_relu_vectorised_maximum_keeps_nan_layout_and_dtype():
    x = np.random.default_rng(2).standard_normal((2, 3, 64, 64)).astype(np.float32)
    x[0, 1, 2, 3] = np.nan
    t = dn.tensor(x.transpose(3, 2, 0, 1).copy().transpose(2, 3, 1, 0))  # another memory order
    y = F.relu(t)
    np.testing.assert_array_equal(y.data, np.maximum(x, 0))
    assert y.data.strides == t.data.strides and y.dtype == np.float32
    assert F.relu(dn.tensor(np.array([-2, 3]))).tolist() == [0, 3]


def test_inplace_relu_outside_the_graph_writes_the_input():
    t = dn.tensor(np.linspace(-1, 1, 5000, dtype=np.float32))
    version = t._version
    out = F.relu(t, inplace=True)
    assert out is t and t._version == version + 1 and float(t.min()) == 0.0
    leaf = dn.tensor(np.linspace(-1, 1, 8), requires_grad=True)
    y = leaf * 1.0
    z = F.relu(y, inplace=True)  # in the graph: a new tensor, the input keeps its values
    assert z is not y and float(y.min()) == -1.0


# ----------------------------------------------------------------------------- batch norm on channel rows
def _bn_fn(lib, functional, relu, affine):
    def fn(x, *params):
        c = x.shape[1]
        eye = (dn if lib == "dn" else torch).tensor(_eye(c), dtype=x.dtype)
        y = functional.conv2d(x, eye)  # batch-last in deepnum
        w, b = params if affine else (None, None)
        out = functional.batch_norm(y, None, None, w, b, training=True)
        return functional.relu(out) if relu else out
    return fn


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("affine", [False, True])
def test_batch_norm_rows_matches_torch(relu, affine):
    specs = [(3, 5, 4, 6)] + ([(5,), (5,)] if affine else [])
    check_op(_bn_fn("dn", F, relu, affine), *specs, torch_fn=_bn_fn("torch", TF, relu, affine))


def _bn_residual(lib, functional):
    from deepnum.functional.normalization import batch_norm_act

    def fn(x, r, w, b):
        eye = (dn if lib == "dn" else torch).tensor(_eye(x.shape[1]), dtype=x.dtype)
        x, r = functional.conv2d(x, eye), functional.conv2d(r, eye)  # batch-last in deepnum
        if lib == "dn":
            return batch_norm_act(x, None, None, w, b, training=True, relu=True, residual=r)
        return torch.relu(functional.batch_norm(x, None, None, w, b, training=True) + r)
    return fn


def test_batch_norm_with_residual_and_relu_matches_torch():
    """relu(bn(x) + r), the end of a residual block, as one op: values and the gradients of x, r, γ, β."""
    check_op(_bn_residual("dn", F), (3, 4, 5, 6), (3, 4, 5, 6), (4,), (4,), torch_fn=_bn_residual("torch", TF))


def test_fused_bn_relu_module_matches_torch_and_tracks_statistics():
    from deepnum.nn.modules.batchnorm import bn_relu

    rng = np.random.default_rng(3)
    xv = (rng.standard_normal((6, 4, 5, 5)) * 3 + 2).astype(np.float32)
    ours, theirs = nn.BatchNorm2d(4, momentum=None), torch.nn.BatchNorm2d(4, momentum=None)
    conv = nn.Conv2d(4, 4, 1, bias=False)
    conv.weight.data[...] = _eye(4)
    for _ in range(2):
        x = dn.tensor(xv, requires_grad=True)
        y = bn_relu(ours, nn.ReLU(), conv(x))
        assert y.grad_fn is not None and type(y.grad_fn).__name__ == "BatchNormRows"
        tx = torch.tensor(xv, requires_grad=True)
        ty = torch.relu(theirs(tx))
        np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=2e-4, atol=2e-5)
        y.sum().backward()
        ty.sum().backward()
        np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(ours.running_mean.data, theirs.running_mean.numpy(), rtol=1e-5)
    np.testing.assert_allclose(ours.running_var.data, theirs.running_var.numpy(), rtol=1e-5)
    assert int(ours.num_batches_tracked.item()) == 2


def test_bn_relu_respects_hooks():
    from deepnum.nn.modules.batchnorm import bn_relu

    bn, seen = nn.BatchNorm2d(3), []
    bn.register_forward_hook(lambda m, args, out: seen.append(out))
    x = nn.Conv2d(3, 3, 1)(dn.randn(2, 3, 4, 4))
    y = bn_relu(bn, nn.ReLU(), x)
    assert len(seen) == 1 and float(y.min()) >= 0 and float(seen[0].min()) < 0


def test_batch_norm_rows_double_backward():
    rng = np.random.default_rng(4)
    x = dn.tensor(rng.standard_normal((3, 2, 3, 3)), requires_grad=True)
    w = dn.tensor(rng.uniform(0.5, 1.5, 2), requires_grad=True)
    b = dn.tensor(rng.standard_normal(2), requires_grad=True)
    eye = dn.tensor(_eye(2))
    fn = lambda x, w, b: F.relu(F.batch_norm(F.conv2d(x, eye), None, None, w, b, training=True))  # noqa: E731
    assert dn.autograd.gradgradcheck(fn, [x, w, b])
    r = dn.tensor(rng.standard_normal((3, 2, 3, 3)), requires_grad=True)
    assert dn.autograd.gradgradcheck(_bn_residual("dn", F), [x, r, w, b])


# ----------------------------------------------------------------------------- residual pieces
def test_add_relu_gradient():
    check_op(lambda a, b: AddReLU()(a, b), (2, 3, 4, 5), (2, 3, 4, 5),
             torch_fn=lambda a, b: torch.relu(a + b))


def test_option_a_shortcut_on_batch_last_input_matches_torch():
    from deepnum.models.resnet import ShortcutA

    def ours(x):
        y = F.conv2d(x, dn.tensor(_eye(3), dtype=x.dtype))
        out = ShortcutA(3, 5, 2)(y)
        assert _batch_last(out)
        return out

    def theirs(x):
        return TF.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 0, 2))

    check_op(ours, (2, 3, 5, 6), torch_fn=theirs)


def test_resnet_inference_folds_batch_norm_and_matches_torch(monkeypatch):
    from bench.zoo import torch_cifar_resnet
    from deepnum.models.resnet import resnet20

    dn.manual_seed(0)
    ours, theirs = resnet20(), torch_cifar_resnet(3)
    for m in ours.modules():  # non-trivial running statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.data[...] = np.linspace(-0.2, 0.3, m.num_features)
            m.running_var.data[...] = np.linspace(0.5, 2.0, m.num_features)
            m.bias.data[...] = np.linspace(-0.1, 0.1, m.num_features)
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    ours.eval()
    theirs.eval()
    x = np.random.default_rng(5).standard_normal((4, 3, 32, 32)).astype(np.float32)
    with dn.no_grad():
        y = ours(dn.tensor(x))
    with torch.no_grad():
        ty = theirs(torch.tensor(x))
    np.testing.assert_allclose(y.data, ty.numpy(), rtol=1e-3, atol=1e-4)
    fused = []
    conv3x3 = W4.conv3x3
    monkeypatch.setattr(W4, "conv3x3", lambda *a, **k: fused.append(a[5] is not None) or conv3x3(*a, **k))
    with dn.no_grad():
        ours(dn.tensor(x))
    assert len(fused) == 16 and sum(fused) == 9  # every 3×3 stride-1 conv (F(4×4)); each block ends with its residual
    seen = []
    ours.layer1[0].bn1.register_forward_hook(lambda m, args, out: seen.append(out.shape))
    with dn.no_grad():
        y2 = ours(dn.tensor(x))
    assert seen == [(4, 16, 32, 32)]  # a hooked layer runs as written
    np.testing.assert_allclose(y2.data, ty.numpy(), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("threads", [1, 3])
def test_winograd_with_residual_and_relu_matches_torch(monkeypatch, threads):
    """The inference end of a residual block as one op: relu(conv(x, w) + b + r), in bands of one
    tile row spread over the threads (the calling thread takes the first share)."""
    monkeypatch.setattr(R, "_numpy_blas", lambda: [_FakeBlas(threads)])
    monkeypatch.setattr(W, "BAND_BYTES", 1)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 8, 6, 10)).astype(np.float32)
    w = rng.standard_normal((12, 8, 3, 3)).astype(np.float32)
    b = rng.standard_normal(12).astype(np.float32)
    r = rng.standard_normal((5, 12, 6, 10)).astype(np.float32)
    expected = torch.relu(TF.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), padding=1) + torch.tensor(r))
    res = np.ascontiguousarray(r.transpose(1, 2, 3, 0))
    with R.cpu_threads():
        y = W.conv3x3(np.ascontiguousarray(x.transpose(1, 2, 3, 0)), W.weight_transform(w), (1, 1), (1, 1), b, res,
                      relu=True)
    assert (y >= 0).all() and (y == 0).mean() > 0.2
    np.testing.assert_allclose(y.transpose(3, 0, 1, 2), expected.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("size", "lo", "hi"), [((8, 12), (1, 1), (1, 1)), ((7, 9), (1, 1), (1, 1)),
                                               ((6, 6), (0, 0), (0, 0)), ((5, 7), (2, 0), (1, 2))])
@pytest.mark.parametrize("threads", [1, 2])
def test_winograd_f4_matches_float64_direct_convolution(monkeypatch, size, lo, hi, threads):
    """F(4×4, 3×3): any size (partial tiles are cropped) and padding 0-2, in bands over threads; its
    float32 error against the float64 direct sum stays below 2e-5 of the largest output."""
    monkeypatch.setattr(R, "_numpy_blas", lambda: [_FakeBlas(threads)])
    monkeypatch.setattr(W4, "BAND_BYTES", 1)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 16) + size).astype(np.float32)
    w = (rng.standard_normal((24, 16, 3, 3)) / 12).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    xt = TF.pad(torch.tensor(x, dtype=torch.float64), (lo[1], hi[1], lo[0], hi[0]))
    expected = TF.conv2d(xt, torch.tensor(w, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)).numpy()
    with R.cpu_threads():
        y = W4.conv3x3(np.ascontiguousarray(x.transpose(1, 2, 3, 0)), W4.weight_transform(w), lo, hi, b)
    assert y.dtype == np.float32 and y.flags.c_contiguous
    error = np.abs(y.transpose(3, 0, 1, 2) - expected).max() / np.abs(expected).max()
    assert error < 2e-5


@pytest.mark.parametrize("residual", [False, True])
def test_winograd_f4_with_residual_and_relu_matches_torch(residual):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((4, 8, 8, 12)).astype(np.float32)
    w = (rng.standard_normal((8, 8, 3, 3)) / 8).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    r = rng.standard_normal((4, 8, 8, 12)).astype(np.float32) if residual else np.zeros((4, 8, 8, 12), np.float32)
    expected = torch.relu(TF.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), padding=1) + torch.tensor(r))
    y = W4.conv3x3(np.ascontiguousarray(x.transpose(1, 2, 3, 0)), W4.weight_transform(w), (1, 1), (1, 1), b,
                   np.ascontiguousarray(r.transpose(1, 2, 3, 0)) if residual else None, relu=True)
    assert (y == 0).mean() > 0.2
    np.testing.assert_allclose(y.transpose(3, 0, 1, 2), expected.numpy(), rtol=1e-4, atol=1e-4)


def test_folded_conv_fast_path_applies_only_where_it_should():
    """``folded_conv3x3`` takes NumPy float32 3×3 stride-1 convolutions with a batch-last residual of
    the output's shape, and hands everything else (None) to conv2d."""
    from deepnum.functional._fused_block import folded_conv3x3

    rng = np.random.default_rng(8)
    conv = nn.Conv2d(8, 8, 3, padding=1, bias=False)
    w, b = rng.standard_normal((8, 8, 3, 3)).astype(np.float32), np.zeros(8, np.float32)
    eye = dn.tensor(_eye(8), dtype=dn.float32)
    x = F.conv2d(dn.tensor(rng.standard_normal((2, 8, 6, 6)).astype(np.float32)), eye)  # batch-last
    y = folded_conv3x3(x, w, b, conv, x, relu=True)
    expected = torch.relu(TF.conv2d(torch.tensor(x.data), torch.tensor(w), padding=1) + torch.tensor(x.data))
    np.testing.assert_allclose(y.data, expected.numpy(), rtol=1e-5, atol=1e-5)
    assert _batch_last(y)
    nchw = folded_conv3x3(dn.tensor(np.ascontiguousarray(x.data)), w, b, conv, None, relu=False)  # any layout in
    np.testing.assert_allclose(nchw.data, TF.conv2d(torch.tensor(x.data), torch.tensor(w), padding=1).numpy(),
                               rtol=1e-5, atol=1e-5)
    assert folded_conv3x3(x, w.astype(np.float64), b, conv, None, relu=False) is None  # float64
    assert folded_conv3x3(dn.tensor(x.data.astype(np.float64)), w, b, conv, None, relu=False) is None
    assert folded_conv3x3(x, w, b, conv, dn.tensor(np.ascontiguousarray(x.data)), relu=True) is None  # NCHW residual
    assert folded_conv3x3(x, w, b, nn.Conv2d(8, 8, 3, stride=2, padding=1), None, relu=False) is None
    odd = F.conv2d(dn.tensor(rng.standard_normal((2, 8, 5, 6)).astype(np.float32)), eye)
    assert folded_conv3x3(odd, w, b, conv, odd, relu=True) is None  # odd height with a residual
    assert folded_conv3x3(odd, w, b, conv, None, relu=True) is not None


def test_parallel_runs_the_first_share_on_the_calling_thread(monkeypatch):
    """Shares keep their order; the caller's share sees a budget of 1 (no nested splitting), and the
    caller's budget is back afterwards, also when a share raises."""
    import threading

    monkeypatch.setattr(R, "_numpy_blas", lambda: [_FakeBlas(2)])
    seen = {}

    def body(job):
        seen[job] = (threading.current_thread() is threading.main_thread(), R.workers())
        return job * 10

    with R.cpu_threads():
        assert R.parallel(list(range(5)), body) == [0, 10, 20, 30, 40]
        assert R.workers() == 2
        with pytest.raises(ValueError, match="job 1"):
            R.parallel([0, 1, 2, 3], lambda j: (_ for _ in ()).throw(ValueError(f"job {j}")) if j in (1, 3) else j)
        assert R.workers() == 2
    assert [seen[j][0] for j in range(5)] == [True, True, False, False, False]
    assert all(count == 1 for _, count in seen.values())


# ----------------------------------------------------------------------------- max pooling
@pytest.mark.parametrize("kwargs", [{"kernel_size": 2}, {"kernel_size": 3, "stride": 2, "padding": 1},
                                    {"kernel_size": 3, "stride": 1, "dilation": 2}])
def test_max_pool_on_batch_last_input_matches_torch(kwargs):
    def ours(x):
        y = F.max_pool2d(F.conv2d(x, dn.tensor(_eye(3), dtype=x.dtype)), **kwargs)
        return y

    check_op(ours, (2, 3, 7, 8), torch_fn=lambda x: TF.max_pool2d(x, **kwargs))


def test_max_pool_indices_and_double_backward():
    rng = np.random.default_rng(6)
    xv = rng.standard_normal((2, 3, 6, 7))
    y, idx = F.max_pool2d(dn.tensor(xv), 3, 2, 1, return_indices=True)
    ty, tidx = TF.max_pool2d(torch.tensor(xv), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    x = dn.tensor(xv, requires_grad=True)
    assert dn.autograd.gradgradcheck(lambda x: F.max_pool2d(x, 3, 2, 1) ** 2, [x])
