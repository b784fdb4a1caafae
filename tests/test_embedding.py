"""Embedding and one_hot against PyTorch: look-ups with repeated indices (gradients accumulate),
padding_idx (no gradient, zero initial row), scale_grad_by_freq, max_norm (in-place renorm),
int32/int64 and 0-d indices, the Embedding module (init statistics, repr, state_dict,
from_pretrained), gradcheck and double backward, and errors."""
import numpy as np
import pytest
import torch

import deepnum as dn
import deepnum.nn as nn
from deepnum.nn import functional as F
from tests.helpers import Const, assert_close, check_op

TF = torch.nn.functional
IDX = np.array([[1, 4, 4, 0], [4, 2, 1, 1], [3, 4, 0, 4]])


def both(f, *specs, **kwargs):
    check_op(lambda *a: f(F, *a), *specs, torch_fn=lambda *a: f(TF, *a), **kwargs)


@pytest.mark.parametrize("idx", [IDX, IDX[0], np.array(3), np.zeros((2, 0), np.int64), IDX.astype(np.int32)])
def test_embedding_repeated_indices(idx):
    both(lambda f, i, w: f.embedding(i, w), Const(idx), (5, 3))


@pytest.mark.parametrize("padding_idx", [0, 4, -1, -5])
def test_embedding_padding_idx_gets_no_gradient(padding_idx):
    both(lambda f, i, w: f.embedding(i, w, padding_idx=padding_idx), Const(IDX), (5, 3), gradcheck=False)
    w = dn.tensor(np.random.default_rng(0).standard_normal((5, 3)), requires_grad=True)
    F.embedding(dn.tensor(IDX), w, padding_idx=padding_idx).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy()[padding_idx], 0)


def test_embedding_scale_grad_by_freq():
    # Not a true derivative (a heuristic rescaling, as in torch), hence no gradcheck.
    both(lambda f, i, w: f.embedding(i, w, scale_grad_by_freq=True), Const(IDX), (5, 3), gradcheck=False)
    both(lambda f, i, w: f.embedding(i, w, padding_idx=1, scale_grad_by_freq=True), Const(IDX), (6, 2),
         gradcheck=False)


@pytest.mark.parametrize("max_norm,norm_type", [(1.0, 2.0), (0.5, 1.0), (2.0, 3.0)])
def test_embedding_max_norm_renormalises_rows_in_place(max_norm, norm_type):
    for dtype in (np.float64, np.float32):
        w = np.random.default_rng(1).uniform(-1.5, 1.5, (6, 4)).astype(dtype)
        ours, theirs = dn.tensor(w, requires_grad=True), torch.tensor(w, requires_grad=True)
        idx = np.array([[0, 2, 2], [5, 0, 3]])
        yd = F.embedding(dn.tensor(idx), ours, max_norm=max_norm, norm_type=norm_type)
        yt = TF.embedding(torch.tensor(idx), theirs, max_norm=max_norm, norm_type=norm_type)
        tol = (1e-12, 1e-10) if dtype == np.float64 else (1e-6, 1e-5)
        assert_close(yd, yt, *tol, what="output")
        assert_close(ours, theirs, *tol, what="renormalised weight")  # rows 1 and 4 untouched
        yd.sum().backward()
        yt.sum().backward()
        assert_close(ours.grad, theirs.grad, *tol, what="weight gradient")


def test_embedding_gradcheck_and_double_backward():
    w = dn.tensor(np.random.default_rng(2).standard_normal((5, 2)), requires_grad=True)
    idx = dn.tensor(IDX)
    assert dn.autograd.gradcheck(lambda w: F.embedding(idx, w) ** 2, [w])
    assert dn.autograd.gradgradcheck(lambda w: F.embedding(idx, w) ** 2, [w])
    assert dn.autograd.gradgradcheck(lambda w: F.embedding(idx, w) ** 3, [w])


@pytest.mark.parametrize("kwargs", [dict(), dict(padding_idx=2), dict(padding_idx=2, scale_grad_by_freq=True)])
def test_embedding_double_backward_matches_torch(kwargs):
    """padding_idx and scale_grad_by_freq are heuristics, not derivatives; the double backward
    follows torch's (padding row masked, no frequency scaling)."""
    w = np.random.default_rng(3).standard_normal((5, 3))
    grads = []
    for lib, f, make in ((dn, F, dn.tensor), (torch, TF, torch.tensor)):
        weight = make(w, requires_grad=True)
        y = f.embedding(make(IDX), weight, **kwargs)
        (g,) = lib.autograd.grad((y ** 3).sum(), [weight], create_graph=True)
        (g * g).sum().backward()
        grads.append(weight.grad)
    assert_close(grads[0], grads[1], 1e-9, 1e-7, what="second derivative")


def test_embedding_functional_errors():
    w = dn.randn(5, 3)
    with pytest.raises(IndexError, match="index 5 is out of range"):
        F.embedding(dn.tensor([1, 5]), w)
    with pytest.raises(IndexError, match="index -1 is out of range"):
        F.embedding(dn.tensor([-1]), w)
    with pytest.raises(RuntimeError, match="int64 or int32"):
        F.embedding(dn.tensor([1.0]), w)
    with pytest.raises(RuntimeError, match="int64 or int32"):
        F.embedding(dn.tensor([1], dtype=dn.int16), w)
    with pytest.raises(RuntimeError, match="2-D weight"):
        F.embedding(dn.tensor([1]), dn.randn(5))
    with pytest.raises(AssertionError, match="padding_idx"):
        F.embedding(dn.tensor([1]), w, padding_idx=5)


# ----------------------------------------------------------------------------- the module
def to_dn_state(torch_module):
    return {k: dn.tensor(v.detach().numpy()) for k, v in torch_module.state_dict().items()}


@pytest.mark.parametrize("kwargs", [dict(), dict(padding_idx=3), dict(padding_idx=-2, scale_grad_by_freq=True),
                                    dict(max_norm=1.0), dict(max_norm=2.0, norm_type=1.0)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_embedding_module_matches_torch(kwargs, dtype):
    torch.manual_seed(0)
    theirs = torch.nn.Embedding(8, 4, **kwargs).to(torch.float64 if dtype == np.float64 else torch.float32)
    ours = nn.Embedding(8, 4, **kwargs).to(np.dtype(dtype))
    ours.load_state_dict(to_dn_state(theirs))
    assert repr(ours) == repr(theirs) and ours.padding_idx == theirs.padding_idx
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]
    idx = np.random.default_rng(4).integers(0, 8, (3, 7))
    yd, yt = ours(dn.tensor(idx)), theirs(torch.tensor(idx))
    assert yd.dtype == np.dtype(dtype) and yd.shape == (3, 7, 4)
    g = np.random.default_rng(5).standard_normal((3, 7, 4)).astype(dtype)
    (yd * dn.tensor(g)).sum().backward()
    (yt * torch.tensor(g)).sum().backward()
    tol = (1e-12, 1e-10) if dtype == np.float64 else (1e-6, 1e-5)
    assert_close(yd, yt, *tol, what="output")
    assert_close(ours.weight.grad, theirs.weight.grad, *tol, what="weight gradient")
    assert_close(ours.weight, theirs.weight, *tol, what="weight after max_norm")
    assert ours.weight.grad.dtype == np.dtype(dtype)


def test_embedding_init_statistics_and_padding_row():
    dn.manual_seed(0)
    emb = nn.Embedding(2000, 64, padding_idx=7)
    w = emb.weight.detach().numpy()
    assert w.dtype == np.float32 and emb.weight.requires_grad
    np.testing.assert_array_equal(w[7], 0)
    rest = np.delete(w, 7, axis=0)
    assert abs(rest.mean()) < 0.01 and abs(rest.std() - 1) < 0.01  # N(0, 1), as torch
    emb.weight.grad = None
    with dn.no_grad():
        emb.weight.fill_(3.0)
    emb.reset_parameters()
    np.testing.assert_array_equal(emb.weight.detach().numpy()[7], 0)
    assert nn.Embedding(4, 2, dtype=dn.float64).weight.dtype == np.float64


def test_embedding_repr_variants():
    for args, kwargs in [((10, 3), {}), ((10, 3), dict(padding_idx=-1, max_norm=1.0, scale_grad_by_freq=True,
                                                          sparse=True)), ((10, 3), dict(max_norm=1.0, norm_type=3.0))]:
        assert repr(nn.Embedding(*args, **kwargs)) == repr(torch.nn.Embedding(*args, **kwargs))


def test_from_pretrained():
    table = dn.tensor(np.arange(12, dtype=np.float32).reshape(4, 3))
    emb = nn.Embedding.from_pretrained(table)
    assert not emb.weight.requires_grad and emb.num_embeddings == 4 and emb.embedding_dim == 3
    np.testing.assert_array_equal(emb(dn.tensor([3, 0])).numpy(), [[9, 10, 11], [0, 1, 2]])
    assert repr(emb) == repr(torch.nn.Embedding.from_pretrained(torch.arange(12.0).reshape(4, 3)))
    trainable = nn.Embedding.from_pretrained(table, freeze=False, padding_idx=1)
    assert trainable.weight.requires_grad and trainable.padding_idx == 1
    np.testing.assert_array_equal(trainable.weight.detach().numpy()[1], [3, 4, 5])  # kept as given
    trainable(dn.tensor([[1, 2], [2, 1]])).sum().backward()
    np.testing.assert_array_equal(trainable.weight.grad.numpy(), [[0, 0, 0], [0, 0, 0], [2, 2, 2], [0, 0, 0]])
    with pytest.raises(AssertionError, match="2-dimensional"):
        nn.Embedding.from_pretrained(dn.zeros(3))


def test_embedding_module_errors():
    with pytest.raises(AssertionError, match="padding_idx"):
        nn.Embedding(5, 2, padding_idx=5)
    with pytest.raises(AssertionError, match="does not match"):
        nn.Embedding(5, 2, _weight=dn.zeros(4, 2))
    emb = nn.Embedding(5, 2)
    with pytest.raises(IndexError, match=r"Embedding\(5, 2\): index 7 is out of range \[0, 5\)"):
        emb(dn.tensor([[1, 7]]))
    with pytest.raises(RuntimeError, match=r"Embedding\(5, 2\): expected integer indices"):
        emb(dn.tensor([1.0]))


# ----------------------------------------------------------------------------- one_hot
@pytest.mark.parametrize("values,num_classes", [([0, 3, 1, 3], -1), ([[0, 2], [1, 1]], 5), (2, -1), (2, 4),
                                                 (np.zeros((0, 2), np.int64), 3), ([0, 0], 1)])
def test_one_hot_matches_torch(values, num_classes):
    ours = F.one_hot(dn.tensor(values, dtype=dn.int64), num_classes)
    theirs = TF.one_hot(torch.tensor(values, dtype=torch.int64), num_classes)
    assert ours.dtype == np.int64
    assert_close(ours, theirs, 0, 0, what="one_hot")


def test_one_hot_errors_like_torch():
    cases = [(dn.tensor([1.0]), -1), (dn.tensor([1], dtype=dn.int32), -1), (dn.tensor([-1]), -1),
             (dn.tensor([3]), 2), (dn.tensor(np.zeros(0, np.int64)), -1)]
    for tensor, k in cases:
        with pytest.raises(RuntimeError):
            F.one_hot(tensor, k)
        with pytest.raises(RuntimeError):
            TF.one_hot(torch.tensor(tensor.numpy()), k)
