"""Positional encodings (deepnum additions, not in torch.nn): the sinusoidal table against the
formula of Vaswani et al. §3.5 written out here in NumPy and against the PyTorch tutorial's
construction; the sum with the input for (L, N, E), batch_first (N, L, E) and unbatched (L, E);
dropout; empty state_dict (non-persistent buffer); dtypes; the learned table's gradient and
initialisation; errors."""
import math

import numpy as np
import pytest
import torch

import deepnum as dn
import deepnum.nn as nn
from deepnum.nn.modules.positional import sinusoidal_table


def paper_table(max_len, d_model):
    """PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d)), element by element."""
    table = np.zeros((max_len, d_model))
    for pos in range(max_len):
        for j in range(d_model):
            angle = pos / 10000 ** ((j - j % 2) / d_model)
            table[pos, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    return table


def tutorial_table(max_len, d_model):
    """The PyTorch tutorial's PositionalEncoding buffer ("Language modeling with nn.Transformer")."""
    position = torch.arange(max_len).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(max_len, 1, d_model)
    pe[:, 0, 0::2] = torch.sin(position * div_term)
    pe[:, 0, 1::2] = torch.cos(position * div_term)
    return pe[:, 0].numpy()


@pytest.mark.parametrize("d_model", [1, 4, 7, 16])
def test_table_matches_the_paper_formula(d_model):
    np.testing.assert_allclose(sinusoidal_table(50, d_model), paper_table(50, d_model), atol=1e-12, rtol=0)
    layer = nn.PositionalEncoding(d_model, max_len=50, dtype=dn.float64)
    np.testing.assert_allclose(layer.pe.numpy(), paper_table(50, d_model), atol=1e-12, rtol=0)


def test_table_matches_the_torch_tutorial():
    layer = nn.PositionalEncoding(32, max_len=200)
    assert layer.pe.dtype == np.float32 and layer.pe.shape == (200, 32)
    np.testing.assert_allclose(layer.pe.numpy(), tutorial_table(200, 32), atol=2e-4, rtol=0)


@pytest.mark.parametrize("layout", ["seq", "batch_first", "unbatched"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_positional_encoding_adds_the_table(layout, dtype):
    rng = np.random.default_rng(0)
    shape = {"seq": (7, 3, 6), "batch_first": (3, 7, 6), "unbatched": (7, 6)}[layout]
    x = rng.standard_normal(shape).astype(dtype)
    layer = nn.PositionalEncoding(6, max_len=10, batch_first=layout == "batch_first")
    table = paper_table(7, 6)
    expected = x + (table[:, None] if layout == "seq" else table)
    xt = dn.tensor(x, requires_grad=True)
    out = layer(xt)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-6 if dtype == np.float32 else 1e-12)
    out.sum().backward()
    np.testing.assert_array_equal(xt.grad.numpy(), np.ones(shape, dtype))


def test_positional_encoding_dropout_state_dict_and_repr():
    layer = nn.PositionalEncoding(16, dropout=0.5, max_len=64)
    assert list(layer.state_dict()) == [] and [n for n, _ in layer.named_buffers()] == ["pe"]
    assert repr(layer) == ("PositionalEncoding(\n  d_model=16, max_len=64, batch_first=False\n"
                           "  (dropout): Dropout(p=0.5, inplace=False)\n)")
    x = dn.ones(64, 8, 16)
    dn.manual_seed(0)
    a = layer(x).numpy()
    dn.manual_seed(0)
    np.testing.assert_array_equal(a, layer(x).numpy())
    base = 1 + layer.pe.numpy()[:, None]
    live = base != 0
    assert abs((a[np.broadcast_to(live, a.shape)] == 0).mean() - 0.5) < 0.02
    kept = a != 0
    np.testing.assert_allclose(a[kept], np.broadcast_to(2 * base, a.shape)[kept], rtol=1e-6)
    layer.eval()
    np.testing.assert_allclose(layer(x).numpy(), np.broadcast_to(base, a.shape), rtol=1e-6)
    layer.load_state_dict({})  # nothing to load, nothing missing


def test_learned_embedding_forward_gradient_and_init():
    dn.manual_seed(0)
    layer = nn.LearnedPositionalEmbedding(10, 4)
    assert list(layer.state_dict()) == ["weight"] and layer.weight.shape == (10, 4)
    assert repr(layer) == "LearnedPositionalEmbedding(10, 4, batch_first=False)"
    rng = np.random.default_rng(1)
    for shape, batch_first in (((6, 3, 4), False), ((3, 6, 4), True), ((6, 4), False)):
        layer.batch_first = batch_first
        layer.zero_grad()
        x = rng.standard_normal(shape)
        g = rng.standard_normal(shape)
        w = layer.weight.detach().numpy().astype(np.float64)
        out = layer(dn.tensor(x.astype(np.float32)))
        expected = x + (w[:6, None] if len(shape) == 3 and not batch_first else w[:6])
        np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-5, atol=1e-6)
        (out * dn.tensor(g.astype(np.float32))).sum().backward()
        want = np.zeros((10, 4))
        want[:6] = g.sum(1) if len(shape) == 3 and not batch_first else (g.sum(0) if len(shape) == 3 else g)
        np.testing.assert_allclose(layer.weight.grad.numpy(), want, rtol=1e-5, atol=1e-6)
    dn.manual_seed(3)
    big = nn.LearnedPositionalEmbedding(1000, 64).weight.detach().numpy()
    assert abs(big.std() - 0.02) < 0.001 and abs(big.mean()) < 0.001


def test_learned_embedding_matches_torch_parameter_sum():
    """The same as adding a torch Parameter slice, gradient included (float64)."""
    layer = nn.LearnedPositionalEmbedding(8, 5, batch_first=True, dtype=dn.float64)
    weight = torch.tensor(layer.weight.detach().numpy(), requires_grad=True)
    x = np.random.default_rng(2).standard_normal((2, 5, 5))
    out = layer(dn.tensor(x))
    expected = torch.tensor(x) + weight[:5]
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-12)
    (out ** 2).sum().backward()
    (expected ** 2).sum().backward()
    np.testing.assert_allclose(layer.weight.grad.numpy(), weight.grad.numpy(), rtol=1e-12)


def test_errors():
    with pytest.raises(ValueError, match=r"PositionalEncoding\(d_model=8, max_len=16\): the sequence length 20 of "
                                         r"the input \(20, 2, 8\) is larger than max_len=16"):
        nn.PositionalEncoding(8, max_len=16)(dn.zeros(20, 2, 8))
    with pytest.raises(ValueError, match=r"LearnedPositionalEmbedding\(max_len=4, d_model=8\): the sequence "
                                         r"length 5 .*\(2, 5, 8\)"):
        nn.LearnedPositionalEmbedding(4, 8, batch_first=True)(dn.zeros(2, 5, 8))
    with pytest.raises(ValueError, match=r"expected input \(N, L, 8\) or unbatched \(L, 8\), got \(2, 5, 6\)"):
        nn.LearnedPositionalEmbedding(16, 8, batch_first=True)(dn.zeros(2, 5, 6))
    with pytest.raises(ValueError, match=r"expected input \(L, N, 8\).*got \(5,\)"):
        nn.PositionalEncoding(8)(dn.zeros(5))
    with pytest.raises(ValueError, match="must be positive"):
        nn.PositionalEncoding(0)
    with pytest.raises(ValueError, match="dropout probability"):
        nn.PositionalEncoding(8, dropout=1.5)


def test_table_precision_follows_the_module_dtype():
    """.double() recomputes the table in float64 (not a float32 table widened), and an input of
    another dtype than the table gets rows computed in its own dtype."""
    layer = nn.PositionalEncoding(6, max_len=20).double()
    out = layer(dn.zeros(20, 6, dtype=dn.float64))
    np.testing.assert_allclose(out.numpy(), paper_table(20, 6), atol=1e-12, rtol=0)
    assert layer.pe.dtype == np.float64
    np.testing.assert_allclose(layer.pe.numpy(), paper_table(20, 6), atol=1e-12, rtol=0)
    mixed = nn.PositionalEncoding(6, max_len=20, dtype=dn.float64)(dn.zeros(3, 1, 6))
    assert mixed.dtype == np.float32
    np.testing.assert_allclose(mixed.numpy()[:, 0], paper_table(3, 6), atol=1e-7, rtol=0)
