"""Loss layers: each deepnum module against its torch.nn twin with the same buffers copied over
(outputs and input gradients in float64 and float32), state_dict keys and repr; deepnum's own
FocalLoss and AsymmetricLoss against their functional forms; errors that name the layer."""
import numpy as np
import pytest
import torch

import deepnum as dn
from deepnum import nn
from deepnum.nn import functional as F

RNG = np.random.default_rng(7)
N, C = 6, 5
PROBS = RNG.uniform(0.05, 0.95, (N, C))
SOFT = RNG.uniform(0, 1, (N, C))
LABELS = RNG.integers(0, C, N)
LABELS_IGNORED = np.where(np.arange(N) % 4 == 1, -100, LABELS)
LABELS_2D = RNG.integers(0, C, (N, 3, 2))
WEIGHT = RNG.uniform(0.3, 2.0, C)

# (class name, constructor kwargs (arrays become tensors), input shape, input transform, target)
CASES = [
    ("MSELoss", {}, (N, C), None, SOFT),
    ("MSELoss", {"reduction": "sum"}, (N, C), None, SOFT),
    ("L1Loss", {"reduction": "none"}, (N, C), None, SOFT),
    ("SmoothL1Loss", {"beta": 0.5}, (N, C), None, SOFT),
    ("SmoothL1Loss", {"beta": 0.0, "reduction": "sum"}, (N, C), None, SOFT),
    ("HuberLoss", {"delta": 0.4}, (N, C), None, SOFT),
    ("HuberLoss", {"delta": 2.0, "reduction": "none"}, (N, C), None, SOFT),
    ("BCELoss", {}, (N, C), "sigmoid", SOFT),
    ("BCELoss", {"weight": WEIGHT, "reduction": "sum"}, (N, C), "sigmoid", SOFT),
    ("BCEWithLogitsLoss", {}, (N, C), None, SOFT),
    ("BCEWithLogitsLoss", {"weight": WEIGHT, "pos_weight": WEIGHT[::-1].copy()}, (N, C), None, SOFT),
    ("BCEWithLogitsLoss", {"pos_weight": WEIGHT, "reduction": "none"}, (N, C), None, SOFT),
    ("CrossEntropyLoss", {}, (N, C), None, LABELS),
    ("CrossEntropyLoss", {"weight": WEIGHT, "label_smoothing": 0.1}, (N, C), None, LABELS_IGNORED),
    ("CrossEntropyLoss", {"weight": WEIGHT, "ignore_index": 2, "reduction": "none"}, (N, C), None, LABELS),
    ("CrossEntropyLoss", {"label_smoothing": 0.2, "reduction": "sum"}, (N, C, 3, 2), None, LABELS_2D),
    ("CrossEntropyLoss", {"weight": WEIGHT, "label_smoothing": 0.05}, (N, C), None, SOFT),
    ("NLLLoss", {}, (N, C), "log_softmax", LABELS_IGNORED),
    ("NLLLoss", {"weight": WEIGHT, "reduction": "sum"}, (N, C, 3, 2), "log_softmax", LABELS_2D),
    ("KLDivLoss", {"reduction": "batchmean"}, (N, C), "log_softmax", SOFT / SOFT.sum(1, keepdims=True)),
    ("KLDivLoss", {"reduction": "sum", "log_target": True}, (N, C), "log_softmax", np.log(SOFT)),
]


def build(lib, name, kwargs, dtype):
    make = (lambda v: torch.tensor(v.astype(dtype))) if lib is torch else (lambda v: dn.tensor(v.astype(dtype)))
    return getattr(lib.nn, name)(**{k: make(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()})


def transform(lib_f, x, how):
    if how == "sigmoid":
        return lib_f.sigmoid(x)
    return lib_f.log_softmax(x, 1) if how == "log_softmax" else x


@pytest.mark.parametrize(("name", "kwargs", "shape", "how", "target"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_module_matches_torch(name, kwargs, shape, how, target):
    torch_layer = build(torch, name, kwargs, np.float64)
    placeholder = {k: np.ones_like(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    dn_layer = build(dn, name, placeholder, np.float64)
    dn_layer.load_state_dict({k: dn.tensor(v.detach().numpy()) for k, v in torch_layer.state_dict().items()})
    assert list(dn_layer.state_dict()) == list(torch_layer.state_dict())
    assert repr(dn_layer) == repr(torch_layer)
    assert dn_layer.reduction == torch_layer.reduction
    x = RNG.standard_normal(shape)
    for dtype, tol in ((np.float64, 1e-10), (np.float32, 2e-5)):
        layers = (dn_layer, torch_layer) if dtype == np.float64 else (
            build(dn, name, kwargs, dtype), build(torch, name, kwargs, dtype))
        results = []
        for layer, lib, lib_f in ((layers[0], dn, F), (layers[1], torch, torch.nn.functional)):
            xx = lib.tensor(x.astype(dtype), requires_grad=True)
            tt = lib.tensor(target.astype(dtype) if target.dtype.kind == "f" else target)
            out = layer(transform(lib_f, xx, how), tt)
            g = np.random.default_rng(1).standard_normal(tuple(out.shape)).astype(dtype)
            (out * lib.tensor(g)).sum().backward()
            results.append((out.detach().numpy(), xx.grad.numpy(), out.dtype))
        (a, ga, dtype_a), (b, gb, dtype_b) = results
        assert str(dtype_a) == str(dtype_b).removeprefix("torch.")
        assert ga.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
        np.testing.assert_allclose(ga, gb, rtol=tol, atol=tol)


def test_weight_buffers_and_state_dict_keys():
    for name, kwargs in (("CrossEntropyLoss", {"weight": WEIGHT}), ("NLLLoss", {"weight": WEIGHT}),
                         ("BCELoss", {"weight": WEIGHT}), ("BCEWithLogitsLoss", {"pos_weight": WEIGHT}),
                         ("BCEWithLogitsLoss", {"weight": WEIGHT, "pos_weight": WEIGHT}),
                         ("CrossEntropyLoss", {}), ("KLDivLoss", {}), ("MSELoss", {})):
        ours, theirs = build(dn, name, kwargs, np.float64), build(torch, name, kwargs, np.float64)
        assert list(ours.state_dict()) == list(theirs.state_dict()), name
        assert [k for k, _ in ours.named_buffers()] == [k for k, _ in theirs.named_buffers()], name
        assert not list(ours.parameters())
    layer = nn.CrossEntropyLoss(weight=dn.tensor(WEIGHT)).to(dn.float32)
    assert layer.weight.dtype == np.float32  # the buffer follows .to(), as PyTorch's does


def test_legacy_constructor_arguments():
    for size_average, reduce in ((False, None), (None, False), (True, None)):
        with pytest.warns(UserWarning):
            ours = nn.NLLLoss(None, size_average, -100, reduce)
        with pytest.warns(UserWarning):
            theirs = torch.nn.NLLLoss(None, size_average, -100, reduce)
        assert ours.reduction == theirs.reduction


def test_focal_and_asymmetric_modules_match_functional():
    x, y = dn.tensor(RNG.standard_normal((N, C)), requires_grad=True), dn.tensor(SOFT.round())
    fl = nn.FocalLoss()
    assert (fl.alpha, fl.gamma, fl.reduction) == (0.25, 2.0, "mean")
    assert repr(fl) == "FocalLoss(alpha=0.25, gamma=2.0, reduction=mean)"
    np.testing.assert_allclose(fl(x, y).item(), F.focal_loss(x, y).item(), rtol=1e-15)
    per_class = nn.FocalLoss(alpha=dn.tensor(WEIGHT / WEIGHT.sum()), gamma=1.0, reduction="sum")
    assert list(per_class.state_dict()) == ["alpha"]
    t = dn.tensor(LABELS)
    np.testing.assert_allclose(per_class(x, t).item(),
                               F.focal_loss(x, t, alpha=WEIGHT / WEIGHT.sum(), gamma=1.0, reduction="sum").item())
    asl = nn.AsymmetricLoss()
    assert (asl.gamma_neg, asl.gamma_pos, asl.clip, asl.eps, asl.reduction) == (4, 0, 0.05, 1e-8, "mean")
    assert repr(asl) == "AsymmetricLoss(gamma_neg=4, gamma_pos=0, clip=0.05, eps=1e-08, reduction=mean)"
    np.testing.assert_allclose(asl(x, y).item(), F.asymmetric_loss(x, y).item(), rtol=1e-15)
    asl_ref = nn.AsymmetricLoss(gamma_neg=2, gamma_pos=1, clip=0.1, reduction="sum", detach_focusing=True)
    out = asl_ref(x, y)
    expected = F.asymmetric_loss(x, y, 2, 1, 0.1, reduction="sum", detach_focusing=True)
    np.testing.assert_allclose(out.item(), expected.item(), rtol=1e-15)
    out.backward()
    assert x.grad is not None and x.grad.shape == (N, C)


def test_module_errors_name_the_layer():
    x = dn.tensor(RNG.standard_normal((8, 10)))
    with pytest.raises(ValueError, match=r"^CrossEntropyLoss: expected target \(8,\) of class indices in \[0, 10\) "
                                         r"or probabilities \(8, 10\), got \(8, 3\)$"):
        nn.CrossEntropyLoss()(x, dn.tensor(np.zeros((8, 3), dtype=np.int64)))
    with pytest.raises(IndexError, match=r"^NLLLoss: target 12 is out of bounds"):
        nn.NLLLoss()(x, dn.tensor(np.full(8, 12)))
    with pytest.raises(ValueError, match=r"^MSELoss: expected target of the input's shape \(8, 10\), got \(8, 1\)"):
        nn.MSELoss()(x, dn.zeros(8, 1))
    with pytest.raises(ValueError, match=r"^BCEWithLogitsLoss: expected target of the input's shape"):
        nn.BCEWithLogitsLoss()(x, dn.zeros(10))
    with pytest.raises(ValueError, match=r"^L1Loss: reduction must be one of 'none', 'mean', 'sum', got 'batchmean'"):
        nn.L1Loss(reduction="batchmean")
    with pytest.raises(ValueError, match=r"^CrossEntropyLoss: label_smoothing must be in \[0, 1\]"):
        nn.CrossEntropyLoss(label_smoothing=-0.1)
    with pytest.raises(ValueError, match=r"^FocalLoss: gamma must be non-negative"):
        nn.FocalLoss(gamma=-1)
    with pytest.raises(ValueError, match=r"^HuberLoss: delta must be positive"):
        nn.HuberLoss(delta=0.0)(x, x)
