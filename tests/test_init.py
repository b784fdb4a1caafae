"""``deepnum.nn.init`` against ``torch.nn.init``: gains and fans equal torch's; every random
initialiser's empirical statistics match its formula and torch's own draw on the same shape (within
a few standard errors of the sample size); the deterministic ones equal torch's exactly; seeding,
generators, dtypes and errors."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import deepnum as dn
import deepnum.nn as nn
from deepnum.nn import init

SHAPES = [(400, 300), (64, 32, 3, 3)]
Z = 6  # standard errors allowed: seeded, so deterministic, and still tight for these sample sizes


def both(shape, fn_name, *args, **kwargs):
    """The same initialiser on a deepnum and a torch float32 tensor of ``shape``; both as float64 arrays."""
    dn.manual_seed(0)
    torch.manual_seed(0)
    ours = getattr(init, fn_name)(dn.empty(*shape), *args, **kwargs)
    theirs = getattr(torch.nn.init, fn_name)(torch.empty(*shape), *args, **kwargs)
    return ours.data.astype(np.float64), theirs.numpy().astype(np.float64)


def assert_moments(values, mean, std, kurtosis, what):
    """Sample mean and std within Z standard errors: SE(mean) = σ/√n, SE(std)/σ ≈ √((κ - 1)/(4n))."""
    n = values.size
    assert abs(values.mean() - mean) < Z * std / math.sqrt(n), f"{what}: mean {values.mean()} vs {mean}"
    rel = Z * math.sqrt((kurtosis - 1) / (4 * n))
    assert abs(values.std() / std - 1) < rel, f"{what}: std {values.std()} vs {std} (tolerance {rel:.2%})"


def assert_uniform(values, low, high, what):
    n = values.size
    assert values.min() >= low and values.max() <= high, f"{what}: outside [{low}, {high}]"
    assert values.min() < low + (high - low) * 20 / n and values.max() > high - (high - low) * 20 / n, what
    assert_moments(values, (low + high) / 2, (high - low) / math.sqrt(12), 1.8, what)


# ----------------------------------------------------------------------------------- gains and fans

@pytest.mark.parametrize("nonlinearity", ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                                          "conv_transpose2d", "conv_transpose3d", "sigmoid", "tanh", "relu",
                                          "leaky_relu", "selu"])
def test_calculate_gain_matches_torch(nonlinearity):
    assert init.calculate_gain(nonlinearity) == torch.nn.init.calculate_gain(nonlinearity)


@pytest.mark.parametrize("param", [None, 0, 0.2, 1, 3, 0.01, math.sqrt(5)])
def test_leaky_relu_gain_matches_torch(param):
    assert init.calculate_gain("leaky_relu", param) == torch.nn.init.calculate_gain("leaky_relu", param)


def test_calculate_gain_errors():
    with pytest.raises(ValueError, match="unsupported nonlinearity 'gelu'"):
        init.calculate_gain("gelu")
    with pytest.raises(ValueError, match="negative_slope True"):
        init.calculate_gain("leaky_relu", True)
    with pytest.raises(ValueError, match="negative_slope"):
        init.calculate_gain("leaky_relu", "0.1")


@pytest.mark.parametrize("shape", [(5, 3), (0, 3), (4, 3, 7), (64, 32, 3, 3), (8, 4, 2, 3, 5), (2, 3, 1, 1, 1, 4)])
def test_fan_in_and_fan_out_match_torch(shape):
    ours = init._calculate_fan_in_and_fan_out(dn.empty(*shape))
    assert ours == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(*shape))


def test_fan_needs_two_dims():
    for shape in [(3,), ()]:
        with pytest.raises(ValueError, match=r"fewer than 2 dimensions, got shape"):
            init._calculate_fan_in_and_fan_out(dn.empty(*shape))


# ----------------------------------------------------------------------------------- random initialisers

@pytest.mark.parametrize("shape", SHAPES)
def test_uniform_and_normal(shape):
    ours, theirs = both(shape, "uniform_", -0.5, 1.5)
    for values, who in ((ours, "deepnum"), (theirs, "torch")):
        assert_uniform(values, -0.5, 1.5, f"uniform_ {who}")
    ours, theirs = both(shape, "normal_", 0.3, 2.0)
    for values, who in ((ours, "deepnum"), (theirs, "torch")):
        assert_moments(values, 0.3, 2.0, 3.0, f"normal_ {who}")


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gain", [1.0, 5.0 / 3])
def test_xavier(shape, gain):
    fan_in, fan_out = shape[1] * math.prod(shape[2:]), shape[0] * math.prod(shape[2:])
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    ours, theirs = both(shape, "xavier_uniform_", gain)
    for values, who in ((ours, "deepnum"), (theirs, "torch")):
        assert_uniform(values, -bound, bound, f"xavier_uniform_ {who}")
    ours, theirs = both(shape, "xavier_normal_", gain)
    for values, who in ((ours, "deepnum"), (theirs, "torch")):
        assert_moments(values, 0.0, std, 3.0, f"xavier_normal_ {who}")


KAIMING = [  # a, mode, nonlinearity
    (0, "fan_in", "leaky_relu"), (0, "fan_in", "relu"), (0.2, "fan_out", "leaky_relu"),
    (math.sqrt(5), "fan_in", "leaky_relu"), (0, "fan_out", "tanh"), (0, "fan_in", "linear"), (0, "FAN_OUT", "selu"),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("a", "mode", "nonlinearity"), KAIMING)
def test_kaiming(shape, a, mode, nonlinearity):
    fans = {"fan_in": shape[1] * math.prod(shape[2:]), "fan_out": shape[0] * math.prod(shape[2:])}
    std = torch.nn.init.calculate_gain(nonlinearity, a) / math.sqrt(fans[mode.lower()])
    bound = math.sqrt(3.0) * std
    ours, theirs = both(shape, "kaiming_uniform_", a, mode, nonlinearity)
    for values, who in ((ours, "deepnum"), (theirs, "torch")):
        assert_uniform(values, -bound, bound, f"kaiming_uniform_ {who}")
    ours, theirs = both(shape, "kaiming_normal_", a, mode, nonlinearity)
    for values, who in ((ours, "deepnum"), (theirs, "torch")):
        assert_moments(values, 0.0, std, 3.0, f"kaiming_normal_ {who}")


def test_kaiming_errors_and_empty_tensors():
    with pytest.raises(ValueError, match="Mode 'fan_avg' not supported"):
        init.kaiming_uniform_(dn.empty(3, 4), mode="fan_avg")
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.kaiming_normal_(dn.empty(3, 4), nonlinearity="swish")
    for fn in (init.kaiming_uniform_, init.kaiming_normal_):
        empty = dn.empty(0, 4)
        with pytest.warns(UserWarning, match="zero-element tensors is a no-op"):
            assert fn(empty) is empty
    assert init.xavier_uniform_(dn.empty(0, 4)).shape == (0, 4)


def truncated_moments(mean, std, a, b):
    """Mean and std of N(mean, std²) restricted to [a, b]."""
    alpha, beta = (a - mean) / std, (b - mean) / std

    def pdf(t):
        return math.exp(-t * t / 2) / math.sqrt(2 * math.pi)

    mass = 0.5 * (math.erfc(-beta / math.sqrt(2)) - math.erfc(-alpha / math.sqrt(2)))
    shift = (pdf(alpha) - pdf(beta)) / mass
    var = 1 + (alpha * pdf(alpha) - beta * pdf(beta)) / mass - shift**2
    return mean + std * shift, std * math.sqrt(var)


@pytest.mark.parametrize(("mean", "std", "a", "b"), [
    (0.0, 1.0, -2.0, 2.0),      # the default
    (0.0, 0.02, -2.0, 2.0),     # ViT's use: effectively untruncated
    (0.3, 1.0, -0.5, 0.5),      # narrow: the uniform-proposal branch
    (0.0, 1.0, 1.0, 3.0),       # one tail
    (0.0, 1.0, 5.0, 6.0),       # far in a tail (plain rejection would need ~3.5 million draws per value)
    (3.0, 1.0, -1.0, 0.5),      # mean beyond b
])
def test_trunc_normal(mean, std, a, b):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "mean is more than 2 std from [a, b]", checked below
        ours, theirs = both((400, 300), "trunc_normal_", mean, std, a, b)
    mu, sigma = truncated_moments(mean, std, a, b)
    for values, who in ((ours, "deepnum"), (theirs, "torch")):
        assert values.min() >= np.float32(a) and values.max() <= np.float32(b), who
        assert_moments(values, mu, sigma, 3.0, f"trunc_normal_ {who}")


def test_trunc_normal_warnings_and_errors():
    with pytest.warns(UserWarning, match="mean is more than 2 std"):
        init.trunc_normal_(dn.empty(10), mean=5.0, a=-1.0, b=1.0)
    with pytest.raises(ValueError, match="std must be positive"):
        init.trunc_normal_(dn.empty(3), std=0.0)
    with pytest.raises(ValueError, match="a <= b"):
        init.trunc_normal_(dn.empty(3), a=1.0, b=-1.0)
    assert init.trunc_normal_(dn.empty(4, dtype=dn.float64), a=0.5, b=0.5).data.tolist() == [0.5] * 4


@pytest.mark.parametrize(("shape", "gain"), [((400, 300), 2.0), ((300, 400), 1.0), ((64, 32, 3, 3), 0.5),
                                             ((200, 200), 1.0)])
@pytest.mark.parametrize("dtype", [dn.float32, dn.float64])
def test_orthogonal(shape, gain, dtype):
    w = init.orthogonal_(dn.empty(*shape, dtype=dtype), gain=gain).data.reshape(shape[0], -1).astype(np.float64)
    rows, cols = w.shape
    gram = w.T @ w if rows >= cols else w @ w.T
    tol = 1e-12 if dtype == dn.float64 else 2e-6
    np.testing.assert_allclose(gram / gain**2, np.eye(min(rows, cols)), atol=tol)
    assert w.dtype == np.float64 and init.orthogonal_(dn.empty(*shape, dtype=dtype)).dtype == dtype
    # Haar-distributed (sign-corrected QR): entries ~ N(0, 1/max(rows, cols)), including the diagonal
    n = max(rows, cols)
    assert_moments(w.ravel() / gain, 0.0, 1 / math.sqrt(n), 3.0, "orthogonal_ entries")
    assert abs(np.diag(w).mean() / gain) < Z / n


def test_orthogonal_edge_cases():
    with pytest.raises(ValueError, match="2 or more dimensions"):
        init.orthogonal_(dn.empty(5))
    assert init.orthogonal_(dn.empty(0, 5)).shape == (0, 5)
    w = init.orthogonal_(dn.empty(1, 6, dtype=dn.float64)).data
    assert math.isclose(float((w**2).sum()), 1.0)


def test_sparse():
    w = init.sparse_(dn.empty(100, 40, dtype=dn.float64), sparsity=0.33, std=0.5).data
    assert ((w == 0).sum(axis=0) == math.ceil(0.33 * 100)).all()
    assert_moments(w[w != 0], 0.0, 0.5, 3.0, "sparse_ non-zeros")
    t = torch.nn.init.sparse_(torch.empty(100, 40), 0.33)
    assert ((t == 0).sum(0) == math.ceil(0.33 * 100)).all()
    with pytest.raises(ValueError, match="only tensors with 2 dimensions"):
        init.sparse_(dn.empty(2, 3, 4), 0.5)


# ----------------------------------------------------------------------------------- deterministic initialisers

def test_constant_zeros_ones():
    for dtype in (dn.float32, dn.float64, dn.int64):
        assert init.constant_(dn.empty(2, 3, dtype=dtype), 7).data.tolist() == [[7] * 3] * 2
        assert init.zeros_(dn.empty(4, dtype=dtype)).data.tolist() == [0] * 4
        assert init.ones_(dn.empty(4, dtype=dtype)).dtype == dtype


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4)])
def test_eye(shape):
    np.testing.assert_array_equal(init.eye_(dn.empty(*shape)).data, torch.nn.init.eye_(torch.empty(*shape)).numpy())


@pytest.mark.parametrize(("shape", "groups"), [((4, 4, 3), 1), ((6, 3, 5), 1), ((3, 6, 4), 1), ((8, 4, 3, 3), 2),
                                              ((16, 4, 3, 5), 4), ((4, 8, 2, 3, 3), 1), ((6, 2, 3, 3, 3), 3)])
def test_dirac_matches_torch(shape, groups):
    ours = init.dirac_(dn.empty(*shape), groups).data
    np.testing.assert_array_equal(ours, torch.nn.init.dirac_(torch.empty(*shape), groups).numpy())


def test_dirac_is_the_identity_convolution():
    w = init.dirac_(dn.empty(3, 3, 3, 3, dtype=dn.float64)).data
    x = np.random.default_rng(0).standard_normal((3, 6, 6))
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))  # (c, 6, 6, 3, 3)
    np.testing.assert_allclose(np.einsum("ocij,chwij->ohw", w, windows), x)


def test_deterministic_errors():
    with pytest.raises(ValueError, match="only tensors with 2 dimensions"):
        init.eye_(dn.empty(2, 2, 2))
    with pytest.raises(ValueError, match="3, 4, or 5 dimensions"):
        init.dirac_(dn.empty(3, 3))
    with pytest.raises(ValueError, match=r"divisible by groups, got shape \(6, 2, 3\) and groups=4"):
        init.dirac_(dn.empty(6, 2, 3), groups=4)


# ----------------------------------------------------------------------------------- seeding, dtypes, layers

RANDOM = [("uniform_", ()), ("normal_", ()), ("trunc_normal_", ()), ("xavier_uniform_", ()),
          ("xavier_normal_", ()), ("kaiming_uniform_", ()), ("kaiming_normal_", ()), ("orthogonal_", ()),
          ("sparse_", (0.5,))]


@pytest.mark.parametrize(("name", "args"), RANDOM)
def test_seeding_and_generators(name, args):
    fn = getattr(init, name)

    def draw(seed=None, generator=None):
        if seed is not None:
            dn.manual_seed(seed)
        return fn(dn.empty(20, 30), *args, generator=generator).data.copy()

    np.testing.assert_array_equal(draw(3), draw(3))
    assert not np.array_equal(draw(3), draw(4))
    np.testing.assert_array_equal(draw(generator=dn.Generator().manual_seed(5)),
                                  draw(generator=dn.Generator().manual_seed(5)))
    dn.manual_seed(9)
    expected = dn.rand(4).data
    dn.manual_seed(9)
    draw(generator=dn.Generator().manual_seed(5))  # a private generator leaves the global one alone
    np.testing.assert_array_equal(dn.rand(4).data, expected)


@pytest.mark.parametrize(("name", "args"), RANDOM + [("zeros_", ()), ("ones_", ()), ("constant_", (0.5,)),
                                                      ("eye_", ())])
@pytest.mark.parametrize("dtype", [dn.float32, dn.float64, dn.float16])
def test_dtype_kept_and_filled_in_place(name, args, dtype):
    param = nn.Parameter(dn.zeros(20, 30, dtype=dtype))
    out = getattr(init, name)(param, *args)
    assert out is param and param.dtype == dtype and param.requires_grad and param.grad_fn is None
    assert np.isfinite(param.data).all()
    if name not in ("zeros_", "sparse_"):
        assert np.any(param.data != 0)


def test_deprecated_aliases():
    for old in ("uniform", "normal", "xavier_uniform", "kaiming_normal", "orthogonal"):
        with pytest.warns(FutureWarning, match=f"nn.init.{old}_"):
            assert getattr(init, old)(dn.empty(3, 4)).shape == (3, 4)
    with pytest.warns(FutureWarning):
        init.constant(dn.empty(2), 1.0)


@pytest.mark.parametrize(("in_features", "out_features"), [(400, 300), (64, 1000)])
def test_linear_default_init_matches_torch(in_features, out_features):
    dn.manual_seed(0)
    torch.manual_seed(0)
    layer, torch_layer = nn.Linear(in_features, out_features), torch.nn.Linear(in_features, out_features)
    bound = 1 / math.sqrt(in_features)  # kaiming_uniform(a=√5): gain √(1/3), so √3·gain/√fan_in = 1/√fan_in
    for name in ("weight", "bias"):
        ours = getattr(layer, name).data.astype(np.float64)
        theirs = getattr(torch_layer, name).detach().numpy().astype(np.float64)
        assert getattr(layer, name).dtype == np.float32
        for values, who in ((ours, "deepnum"), (theirs, "torch")):
            if name == "weight":
                assert_uniform(values, -bound, bound, f"Linear.{name} {who}")
            else:  # few values: only the bounds and a loose spread
                assert np.abs(values).max() <= bound and values.std() > 0.4 * bound, who
