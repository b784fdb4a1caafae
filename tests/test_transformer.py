"""Transformer layers against PyTorch with the same weights: ``TransformerEncoderLayer`` and
``TransformerDecoderLayer`` outputs, input gradients (src, tgt, memory) and every parameter gradient,
float64 (tight) and float32, for post-norm and norm_first × relu and gelu × batch_first both ways ×
masks (none, boolean (L, S) and (N·nhead, L, S), float with -∞, causal via is_causal + mask, key
padding boolean and float, causal with padding) and unbatched inputs; torch's eval fast path; a
callable activation; dropout (train vs eval, statistics, same-seed reproducibility); state_dict
keys, repr, initialisation and errors. The stacks and the full Transformer are in
tests/test_transformer_stacks.py, which uses the helpers here."""
import math

import numpy as np
import pytest
import torch

import deepnum as dn
import deepnum.nn as nn
from tests.helpers import assert_close

TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}
TOL = {np.float64: (1e-9, 1e-7), np.float32: (5e-5, 5e-4)}
D_MODEL, NHEAD, FFN = 8, 2, 12
MASK_KINDS = ["none", "bool", "bool3d", "float", "causal", "padding", "float_padding", "causal_padding"]


def twin(make, dtype=np.float64):
    """The same module in torch and deepnum: ``make(nn_module, dtype)`` builds each; the torch
    weights (seeded) are copied into deepnum's."""
    torch.manual_seed(0)
    theirs = make(torch.nn, TORCH_DTYPE[dtype])
    ours = make(nn, np.dtype(dtype))
    ours.load_state_dict({k: dn.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    return ours, theirs


def _to(lib, value, dtype):
    if value is None or isinstance(value, bool):
        return value
    value = np.asarray(value)
    if value.dtype.kind == "f":
        value = value.astype(dtype)
    return dn.tensor(value) if lib is dn else torch.tensor(value)


def check_parity(ours, theirs, inputs, kwargs, dtype, seed=0, train=True):
    """Outputs, gradients of the inputs and of every parameter for sum(output · g), g random."""
    ours.train(train)
    theirs.train(train)
    atol, rtol = TOL[dtype]
    xs = [dn.tensor(a.astype(dtype), requires_grad=True) for a in inputs]
    ts = [torch.tensor(a.astype(dtype), requires_grad=True) for a in inputs]
    out = ours(*xs, **{k: _to(dn, v, dtype) for k, v in kwargs.items()})
    expected = theirs(*ts, **{k: _to(torch, v, dtype) for k, v in kwargs.items()})
    assert out.dtype == np.dtype(dtype)
    assert_close(out, expected, atol, rtol, what=f"output ({np.dtype(dtype)})")
    g = np.random.default_rng(seed + 1).standard_normal(tuple(expected.shape)).astype(dtype)
    (out * dn.tensor(g)).sum().backward()
    (expected * torch.tensor(g)).sum().backward()
    for i, (a, b) in enumerate(zip(xs, ts, strict=True)):
        assert a.grad is not None and a.grad.dtype == np.dtype(dtype), f"input {i}: gradient missing or wrong dtype"
        assert_close(a.grad, b.grad, atol, rtol, what=f"gradient of input {i} ({np.dtype(dtype)})")
    ours_params, their_params = dict(ours.named_parameters()), dict(theirs.named_parameters())
    assert list(ours_params) == list(their_params)
    for name, p in their_params.items():
        q = ours_params[name]
        if p.grad is None:
            assert q.grad is None or not np.any(q.grad.numpy()), f"{name}: torch has no gradient"
            continue
        assert q.grad is not None, f"{name}: no gradient"
        assert_close(q.grad, p.grad, atol, rtol, what=f"gradient of {name} ({np.dtype(dtype)})")


def masks(kind, n, length, source, rng, heads=NHEAD):
    """(attn_mask, key_padding_mask, is_causal) of one kind, as NumPy arrays; n = 0 for unbatched.
    No query loses every key (padding is at the end, key 0 is always visible)."""
    attn = padding = None
    causal = False
    if kind in ("bool", "bool3d"):
        attn = rng.random((length, source) if kind == "bool" else (max(n, 1) * heads, length, source)) < 0.35
        attn[..., 0] = False
    elif kind in ("float", "float_padding"):
        attn = rng.standard_normal((length, source))
        attn[rng.random((length, source)) < 0.25] = -np.inf
        attn[:, 0] = 0.5
    elif kind in ("causal", "causal_padding"):
        above = np.triu(np.ones((length, source), dtype=bool), 1)
        attn = above if kind == "causal_padding" else np.where(above, -np.inf, 0.0)
        causal = True
    if kind in ("padding", "float_padding", "causal_padding"):
        padding = np.zeros((max(n, 1), source), dtype=bool)
        for i in range(max(n, 1)):
            padding[i, source - (i % 3):] = True
        if kind == "float_padding":
            padding = np.where(padding, -np.inf, 0.0)
        if n == 0:
            padding = padding[0]
    return attn, padding, causal


def sequence(rng, n, length, batch_first, width=D_MODEL):
    """A random (L, N, E) / (N, L, E) sequence, or (L, E) for n = 0."""
    shape = (length, width) if n == 0 else ((n, length, width) if batch_first else (length, n, width))
    return rng.standard_normal(shape)


def encoder_layer(norm_first, activation, batch_first, dropout=0.0, **kw):
    return lambda lib, dtype: lib.TransformerEncoderLayer(D_MODEL, NHEAD, FFN, dropout=dropout, activation=activation,
                                                          batch_first=batch_first, norm_first=norm_first,
                                                          dtype=dtype, **kw)


def decoder_layer(norm_first, activation, batch_first, dropout=0.0, **kw):
    return lambda lib, dtype: lib.TransformerDecoderLayer(D_MODEL, NHEAD, FFN, dropout=dropout, activation=activation,
                                                          batch_first=batch_first, norm_first=norm_first,
                                                          dtype=dtype, **kw)


def encoder_case(kind, n, length, batch_first, seed):
    rng = np.random.default_rng(seed)
    attn, padding, causal = masks(kind, n, length, length, rng)
    return [sequence(rng, n, length, batch_first)], {"src_mask": attn, "src_key_padding_mask": padding,
                                                     "is_causal": causal}


def decoder_case(kind, n, length, source, batch_first, seed):
    rng = np.random.default_rng(seed)
    tgt_attn, tgt_padding, causal = masks(kind, n, length, length, rng)
    mem_kind = "bool" if kind == "causal_padding" else ("none" if kind == "causal" else kind)
    mem_attn, mem_padding, _ = masks(mem_kind, n, length, source, rng)
    inputs = [sequence(rng, n, length, batch_first), sequence(rng, n, source, batch_first)]
    return inputs, {"tgt_mask": tgt_attn, "memory_mask": mem_attn, "tgt_key_padding_mask": tgt_padding,
                    "memory_key_padding_mask": mem_padding, "tgt_is_causal": causal}


CONFIGS = [(nf, act, bf) for nf in (False, True) for act in ("relu", "gelu") for bf in (False, True)]
CONFIG_IDS = [f"{'pre' if nf else 'post'}-{act}-{'bf' if bf else 'seq'}" for nf, act, bf in CONFIGS]


# ----------------------------------------------------------------------------- encoder layer
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_encoder_layer_parity(config, kind, dtype):
    ours, theirs = twin(encoder_layer(*config), dtype)
    inputs, kwargs = encoder_case(kind, 3, 5, config[2], seed=len(kind))
    check_parity(ours, theirs, inputs, kwargs, dtype)


@pytest.mark.parametrize("kind", ["none", "bool", "bool3d", "float", "causal", "padding", "causal_padding"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_unbatched(norm_first, kind):
    for batch_first in (False, True):  # batch_first does not change unbatched (L, E) input
        ours, theirs = twin(encoder_layer(norm_first, "gelu", batch_first))
        inputs, kwargs = encoder_case(kind, 0, 6, batch_first, seed=3)
        check_parity(ours, theirs, inputs, kwargs, np.float64)


def test_encoder_layer_no_bias_eps_and_callable_activation():
    """bias=False (no biases anywhere, LayerNorm without β), another layer_norm_eps, and an
    activation given as a callable: a function and a Module (registered as ``activation``)."""
    for activation in (lambda lib: lib.nn.functional.silu, lambda lib: lib.nn.Tanh()):
        make = lambda lib, dtype, act=activation: lib.TransformerEncoderLayer(  # noqa: E731
            D_MODEL, 4, FFN, dropout=0.0, activation=act(dn if lib is nn else torch), layer_norm_eps=1e-3,
            bias=False, dtype=dtype)
        ours, theirs = twin(make)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert repr(ours) == repr(theirs)
        inputs, kwargs = encoder_case("bool", 2, 4, False, seed=5)
        check_parity(ours, theirs, inputs, kwargs, np.float64)
    assert ours.activation_relu_or_gelu == 0


@pytest.mark.parametrize("kind", ["none", "padding", "bool", "bool3d"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_eval_matches_torch_fast_path(norm_first, kind):
    """In eval under no_grad torch runs its fused inference kernel (batch_first, even nhead): the
    ordinary computation here gives the same numbers. (Not with a float src_mask: torch 2.13's fast
    path returns NaN for a float (L, L) mask with batch size 4, while its ordinary path, which
    test_encoder_layer_parity compares against, is finite.)"""
    ours, theirs = twin(encoder_layer(norm_first, "relu", True, dropout=0.3), np.float32)
    ours.eval()
    theirs.eval()
    inputs, kwargs = encoder_case(kind, 4, 7, True, seed=11)
    with torch.no_grad():
        expected = theirs(torch.tensor(inputs[0].astype(np.float32)),
                          **{k: _to(torch, v, np.float32) for k, v in kwargs.items()})
    with dn.no_grad():
        out = ours(dn.tensor(inputs[0].astype(np.float32)), **{k: _to(dn, v, np.float32) for k, v in kwargs.items()})
    assert_close(out, expected, 5e-5, 5e-4, what="eval output")


# ----------------------------------------------------------------------------- decoder layer
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_decoder_layer_parity(config, kind, dtype):
    ours, theirs = twin(decoder_layer(*config), dtype)
    inputs, kwargs = decoder_case(kind, 3, 5, 6, config[2], seed=len(kind))
    check_parity(ours, theirs, inputs, kwargs, dtype)


@pytest.mark.parametrize("kind", ["none", "bool", "float", "causal", "padding", "causal_padding"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_unbatched(norm_first, kind):
    ours, theirs = twin(decoder_layer(norm_first, "relu", False))
    inputs, kwargs = decoder_case(kind, 0, 4, 7, False, seed=2)
    check_parity(ours, theirs, inputs, kwargs, np.float64)


def test_decoder_layer_memory_is_causal():
    """memory_is_causal is the hint that memory_mask is the causal mask (T = S)."""
    ours, theirs = twin(decoder_layer(False, "gelu", True))
    rng = np.random.default_rng(4)
    inputs = [sequence(rng, 2, 5, True), sequence(rng, 2, 5, True)]
    causal = np.triu(np.ones((5, 5), dtype=bool), 1)
    kwargs = {"tgt_mask": causal, "memory_mask": causal, "tgt_is_causal": True, "memory_is_causal": True}
    check_parity(ours, theirs, inputs, kwargs, np.float64)


# ----------------------------------------------------------------------------- structure
@pytest.mark.parametrize("make", [
    encoder_layer(False, "relu", False, dropout=0.1), encoder_layer(True, "gelu", True, dropout=0.2),
    decoder_layer(False, "gelu", True, dropout=0.1), decoder_layer(True, "relu", False, dropout=0.0, bias=False),
    lambda lib, dtype: lib.TransformerEncoderLayer(16, 4, activation=lib.GELU(), dtype=dtype),
])
def test_layer_state_dict_keys_repr_and_attributes(make):
    ours, theirs = twin(make)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert repr(ours) == repr(theirs)
    assert ours.norm_first == theirs.norm_first
    if hasattr(theirs, "activation_relu_or_gelu"):
        assert ours.activation_relu_or_gelu == theirs.activation_relu_or_gelu
    for name, p in theirs.state_dict().items():
        assert ours.state_dict()[name].shape == tuple(p.shape)


def test_layer_defaults_and_initialisation():
    """torch's defaults (dim_feedforward 2048, dropout 0.1, relu, eps 1e-5, batch_first False,
    post-norm) and initialisation: Xavier-uniform in_proj, zero in-projection biases, Linear's
    kaiming-uniform weights U(±1/√fan_in) and biases, LayerNorm ones and zeros."""
    dn.manual_seed(0)
    layer = nn.TransformerEncoderLayer(64, 4)
    assert layer.linear1.out_features == 2048 and layer.dropout.p == 0.1 and layer.norm1.eps == 1e-5
    assert layer.activation is nn.functional.relu and not layer.self_attn.batch_first and not layer.norm_first
    assert layer.activation_relu_or_gelu == 1
    w = layer.self_attn.in_proj_weight.detach().numpy()
    bound = math.sqrt(6 / (64 + 3 * 64))
    assert np.abs(w).max() <= bound and abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound
    assert not np.any(layer.self_attn.in_proj_bias.detach().numpy())
    for lin in (layer.linear1, layer.linear2):
        b = 1 / math.sqrt(lin.in_features)
        assert np.abs(lin.weight.detach().numpy()).max() <= b and np.abs(lin.bias.detach().numpy()).max() <= b
        assert abs(lin.weight.detach().numpy().std() - b / math.sqrt(3)) < 0.05 * b
    assert np.all(layer.norm2.weight.detach().numpy() == 1) and not np.any(layer.norm2.bias.detach().numpy())
    assert nn.TransformerDecoderLayer(8, 2, activation="gelu").activation is nn.functional.gelu


# ----------------------------------------------------------------------------- dropout
def test_dropout_train_eval_and_reproducibility():
    """Training mode draws new masks (two calls differ), the same seed gives the same output and
    gradients; evaluation is deterministic and equals torch's eval output with the same weights."""
    ours, theirs = twin(decoder_layer(False, "relu", True, dropout=0.3))
    rng = np.random.default_rng(0)
    tgt, mem = dn.tensor(sequence(rng, 2, 5, True)), dn.tensor(sequence(rng, 2, 6, True))
    ours.train()
    a, b = ours(tgt, mem), ours(tgt, mem)
    assert not np.allclose(a.detach().numpy(), b.detach().numpy())
    results = []
    for _ in range(2):
        ours.zero_grad()
        dn.manual_seed(7)
        out = ours(tgt, mem)
        out.sum().backward()
        results.append((out.detach().numpy(), ours.linear1.weight.grad.numpy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    ours.eval()
    theirs.eval()
    np.testing.assert_array_equal(ours(tgt, mem).detach().numpy(), ours(tgt, mem).detach().numpy())
    expected = theirs(torch.tensor(tgt.numpy()), torch.tensor(mem.numpy()))
    assert_close(ours(tgt, mem), expected, 1e-9, 1e-7, what="eval output")


def test_dropout_statistics():
    """Each dropout module of the layer zeroes a fraction ≈ p of its input and scales the rest by
    1/(1 - p) (observed through forward hooks); the attention dropout keeps the expected output."""
    p = 0.25
    dn.manual_seed(1)
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=p, batch_first=True)
    seen = {}
    for name in ("dropout", "dropout1", "dropout2"):
        getattr(layer, name).register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, (i[0], o)))
    x = dn.randn(16, 20, 32)
    layer(x)
    for name, (inp, out) in seen.items():
        inp, out = inp.detach().numpy(), out.detach().numpy()
        live = inp != 0
        dropped = (out[live] == 0).mean()
        assert abs(dropped - p) < 0.02, f"{name}: dropped {dropped:.3f}, expected {p}"
        kept = out[live] != 0
        np.testing.assert_allclose(out[live][kept], inp[live][kept] / (1 - p), rtol=1e-6)
    attn = layer.self_attn
    dn.manual_seed(2)
    q = dn.randn(4, 6, 32)
    mean = sum(attn(q, q, q, need_weights=False)[0].detach().numpy() for _ in range(400)) / 400
    attn.eval()
    np.testing.assert_allclose(mean, attn(q, q, q, need_weights=False)[0].detach().numpy(), atol=0.06)


# ----------------------------------------------------------------------------- errors
def test_errors_name_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"TransformerEncoderLayer\(d_model=10, nhead=3\).*multiple of nhead"):
        nn.TransformerEncoderLayer(10, 3)
    with pytest.raises(ValueError, match=r"TransformerDecoderLayer\(d_model=8, nhead=0\)"):
        nn.TransformerDecoderLayer(8, 0)
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(8, 2, activation="tanh")
    enc = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
    with pytest.raises(RuntimeError, match=r"TransformerEncoderLayer\(d_model=8, nhead=2\): expected src \(N, L, 8\)"
                                           r".*got \(2, 5, 6\)"):
        enc(dn.zeros(2, 5, 6))
    with pytest.raises(RuntimeError, match=r"expected src_mask of shape \(5, 5\) or \(4, 5, 5\), got \(5, 4\)"):
        enc(dn.zeros(2, 5, 8), src_mask=dn.zeros(5, 4))
    with pytest.raises(RuntimeError, match=r"expected src_key_padding_mask of shape \(2, 5\), got \(5, 2\)"):
        enc(dn.zeros(2, 5, 8), src_key_padding_mask=dn.zeros(5, 2, dtype=dn.bool))
    with pytest.raises(RuntimeError, match="only bool and floating types of src_mask"):
        enc(dn.zeros(2, 5, 8), src_mask=dn.zeros(5, 5, dtype=dn.int64))
    with pytest.raises(RuntimeError, match="is_causal is a hint"):
        enc(dn.zeros(2, 5, 8), is_causal=True)
    dec = nn.TransformerDecoderLayer(8, 2, 16)
    with pytest.raises(RuntimeError, match=r"TransformerDecoderLayer\(d_model=8, nhead=2\): tgt and memory.*"
                                           r"got tgt \(5, 2, 8\) and memory \(6, 3, 8\)"):
        dec(dn.zeros(5, 2, 8), dn.zeros(6, 3, 8))
    with pytest.raises(RuntimeError, match=r"expected memory \(L, N, 8\).*got \(6, 2, 4\)"):
        dec(dn.zeros(5, 2, 8), dn.zeros(6, 2, 4))
    with pytest.raises(RuntimeError, match=r"expected memory_mask of shape \(5, 6\) or \(4, 5, 6\), got \(5, 5\)"):
        dec(dn.zeros(5, 2, 8), dn.zeros(6, 2, 8), memory_mask=dn.zeros(5, 5))
    with pytest.raises(RuntimeError, match=r"expected memory_key_padding_mask of shape \(6,\), got \(1, 6\)"):
        dec(dn.zeros(5, 8), dn.zeros(6, 8), memory_key_padding_mask=dn.zeros(1, 6, dtype=dn.bool))


# ----------------------------------------------------------------------------- fused dense op
@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("bias", [True, False])
def test_fused_linear_against_torch_and_double_backward(activation, bias):
    """act(x Wᵀ + b) as one op: outputs and gradients against torch, second derivatives by central
    differences (float64)."""
    from deepnum.nn.modules._transformer_ops import fused_linear
    from tests.helpers import check_op

    def ours(x, w, *b):
        return fused_linear(x, w, b[0] if b else None, activation)

    def theirs(x, w, *b):
        y = torch.nn.functional.linear(x, w, b[0] if b else None)
        return torch.relu(y) if activation else y

    check_op(ours, (2, 3, 5), (4, 5), *([(4,)] if bias else []), torch_fn=theirs)
    rng = np.random.default_rng(0)
    args = [dn.tensor(rng.standard_normal(s), requires_grad=True) for s in ((3, 5), (4, 5), (4,))]
    assert dn.autograd.gradgradcheck(lambda x, w, b: fused_linear(x, w, b, activation), args)


@pytest.mark.parametrize("bias", [True, False])
def test_fused_linear_gelu_float32(bias):
    """Linear → exact GELU as one float32 op (bias, GELU and its slope in one blocked pass): outputs
    and gradients against torch, the same values without grad, and a double backward (recomputing
    the pre-activation) against torch's; float64 takes the separate ops (gradgradcheck)."""
    from deepnum.nn.modules._transformer_ops import FusedLinear, fused_linear
    from tests.helpers import check_op

    def ours(x, w, *b):
        return fused_linear(x, w, b[0] if b else None, "gelu")

    def theirs(x, w, *b):
        return torch.nn.functional.gelu(torch.nn.functional.linear(x, w, b[0] if b else None))

    check_op(ours, (2, 3, 5), (4, 5), *([(4,)] if bias else []), torch_fn=theirs)
    rng = np.random.default_rng(0)
    values = [rng.standard_normal(s).astype(np.float32) for s in ((3, 5), (4, 5), (4,))][:3 if bias else 2]
    args = [dn.tensor(v, requires_grad=True) for v in values]
    y = ours(*args)
    assert isinstance(y.grad_fn, FusedLinear) and y.dtype == np.float32
    with dn.no_grad():
        np.testing.assert_array_equal(ours(*[dn.tensor(v) for v in values]).data, y.data)
    targs = [torch.tensor(v, requires_grad=True) for v in values]
    g = rng.standard_normal((3, 4)).astype(np.float32)
    grads = dn.autograd.grad(y, args, dn.tensor(g), create_graph=True)
    tgrads = torch.autograd.grad(theirs(*targs), targs, torch.tensor(g), create_graph=True)
    second = dn.autograd.grad(sum((gr * gr).sum() for gr in grads), args)
    tsecond = torch.autograd.grad(sum((gr * gr).sum() for gr in tgrads), targs)
    for a, b in zip(grads + second, tgrads + tsecond):
        assert_close(a, b, 1e-5, 1e-4, "gradient")
    args64 = [dn.tensor(v.astype(np.float64), requires_grad=True) for v in values]
    assert not isinstance(ours(*args64).grad_fn, FusedLinear)
    assert dn.autograd.gradgradcheck(lambda *a: fused_linear(a[0], a[1], a[2] if bias else None, "gelu"), args64)


def test_fused_path_falls_back_for_hooks_replacements_and_mixed_dtypes():
    """Hooks on linear1/linear2/out_proj still fire (the modules run unfused then), with the same
    numbers; a float32 input to a float64 layer follows the separate ops' type promotion."""
    ours, theirs = twin(encoder_layer(False, "relu", True))
    rng = np.random.default_rng(1)
    x = sequence(rng, 2, 5, True)
    fused = ours(dn.tensor(x)).detach().numpy()
    calls = []
    for m in (ours.linear1, ours.linear2, ours.self_attn.out_proj):
        m.register_forward_hook(lambda mod, i, o: calls.append(type(mod).__name__))
    hooked = ours(dn.tensor(x)).detach().numpy()
    assert calls == ["NonDynamicallyQuantizableLinear", "Linear", "Linear"]
    np.testing.assert_allclose(hooked, fused, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fused, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-9, atol=1e-9)
    mixed = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, dtype=dn.float64)(dn.randn(3, 2, 8))
    assert mixed.dtype == np.float64
