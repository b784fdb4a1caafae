"""Attention against PyTorch: ``scaled_dot_product_attention`` (no mask, causal square and
rectangular, boolean with an all-masked row, additive float masks with their gradient, custom
scale, grouped-query heads, broadcast batch dims, 2-D inputs; dropout against the same op built from
separate ops; second derivatives) and ``nn.MultiheadAttention`` (outputs, head-averaged and per-head
weights, input and parameter gradients in float64 and float32, for batch_first both ways, kdim/vdim,
bias_kv, zero_attn, no bias, unbatched input, key_padding_mask and attn_mask boolean and float,
the is_causal hint, all-masked rows; state_dict keys, repr, default initialisation, dropout, errors)."""
import math
import warnings

import numpy as np
import pytest
import torch

import deepnum as dn
import deepnum.nn as nn
from deepnum.functional.attention import attention_probs
from deepnum.nn import functional as F
from tests.helpers import TOLERANCES, Const, assert_close, check_op

TF = torch.nn.functional
TOL32 = (5e-5, 5e-4)
RNG_MASK = np.random.default_rng(7)
BOOL_MASK = RNG_MASK.random((5, 6)) > 0.4
BOOL_MASK[:, 0] = True
BOOL_MASK[2] = False  # a query with every key masked: zero output and gradient, as torch's


def sdpa_both(**kwargs):
    """check_op pair for scaled_dot_product_attention with keyword arguments, and a mask input."""
    def ours(q, k, v, *mask):
        return F.scaled_dot_product_attention(q, k, v, *mask, **kwargs)

    def theirs(q, k, v, *mask):
        return TF.scaled_dot_product_attention(q, k, v, *mask, **kwargs)

    return ours, theirs


# ----------------------------------------------------------------------------- scaled_dot_product_attention
@pytest.mark.parametrize("shapes", [
    ((2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 7)),   # (N, heads, L, E), Ev != E
    ((5, 4), (6, 4), (6, 3)),                     # 2-D
    ((2, 1, 5, 4), (1, 3, 6, 4), (1, 3, 6, 4)),   # broadcast batch dims
    ((2, 0, 4), (2, 3, 4), (2, 3, 5)),            # no queries
    ((2, 3, 4), (2, 0, 4), (2, 0, 5)),            # no keys: zeros, as torch
])
def test_sdpa_plain(shapes):
    ours, theirs = sdpa_both()
    check_op(ours, *shapes, torch_fn=theirs)


@pytest.mark.parametrize("lengths", [(5, 5), (4, 6), (6, 4)])
def test_sdpa_causal(lengths):
    length, size = lengths
    ours, theirs = sdpa_both(is_causal=True)
    check_op(ours, (2, 2, length, 3), (2, 2, size, 3), (2, 2, size, 4), torch_fn=theirs)


def test_sdpa_boolean_mask_with_fully_masked_row():
    ours, theirs = sdpa_both()
    check_op(ours, (2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 7), Const(BOOL_MASK), torch_fn=theirs)
    q, k, v = (dn.tensor(np.ones(s)) for s in ((5, 4), (6, 4), (6, 7)))
    out = F.scaled_dot_product_attention(q, k, v, dn.tensor(BOOL_MASK))
    assert np.all(out.numpy()[2] == 0) and np.isfinite(out.numpy()).all()


def test_sdpa_additive_mask_and_its_gradient():
    ours, theirs = sdpa_both()
    # A float mask that requires grad (a learned bias, as relative position biases) gets dS.
    check_op(ours, (2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 7), (3, 5, 6), torch_fn=theirs)
    mask = np.where(BOOL_MASK, 0.0, -np.inf)
    mask[0, 1] = 0.5
    check_op(ours, (2, 1, 5, 4), (2, 1, 6, 4), (2, 1, 6, 2), Const(mask), torch_fn=theirs, gradcheck=False)


def test_sdpa_scale_and_grouped_query_heads():
    ours, theirs = sdpa_both(scale=0.3, enable_gqa=True)
    check_op(ours, (2, 4, 5, 3), (2, 2, 6, 3), (2, 2, 6, 5), torch_fn=theirs)
    ours, theirs = sdpa_both(scale=0.0)
    check_op(ours, (3, 4), (5, 4), (5, 2), torch_fn=theirs)


def test_sdpa_double_backward():
    """With create_graph the probabilities are rebuilt from differentiable ops: second derivatives
    by central differences, and against torch's double backward (including an all-masked row)."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(s) for s in ((1, 2, 5, 3), (1, 2, 6, 3), (1, 2, 6, 4)))
    fn = lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True)  # noqa: E731
    assert dn.autograd.gradgradcheck(fn, [dn.tensor(x, requires_grad=True) for x in (q, k, v)])
    ours = [dn.tensor(x, requires_grad=True) for x in (q, k, v)]
    theirs = [torch.tensor(x, requires_grad=True) for x in (q, k, v)]
    g = rng.standard_normal((1, 2, 5, 4))
    for lib, args, mask in ((dn, ours, dn.tensor(BOOL_MASK)), (torch, theirs, torch.tensor(BOOL_MASK))):
        sdpa = F.scaled_dot_product_attention if lib is dn else TF.scaled_dot_product_attention
        out = sdpa(*args, mask)
        grads = (dn.autograd.grad if lib is dn else torch.autograd.grad)((out * lib.tensor(g)).sum(), args,
                                                                        create_graph=True)
        sum(((gr * gr).sum() for gr in grads), lib.tensor(0.0, dtype=lib.float64)).backward()
    for a, b in zip(ours, theirs, strict=True):
        assert_close(a.grad, b.grad, *TOLERANCES[np.dtype(np.float64)], what="second derivative")


def test_sdpa_dropout_matches_separate_ops():
    """The fused op draws the same inverted-dropout mask as F.dropout on the weights: same output
    and gradients as softmax → dropout → matmul built from separate ops."""
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in ((2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 7))]
    results = []
    for fused in (True, False):
        q, k, v = (dn.tensor(a, requires_grad=True) for a in arrays)
        dn.manual_seed(3)
        if fused:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.4)
        else:
            out = F.dropout(attention_probs(q, k, scale=0.5), 0.4) @ v
        (out * dn.tensor(arrays[2][..., :5, :])).sum().backward()
        results.append([out.detach().numpy(), q.grad.numpy(), k.grad.numpy(), v.grad.numpy()])
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert results[0][0].dtype == np.float32
    q = dn.tensor(arrays[0])
    assert np.all(F.scaled_dot_product_attention(q, q, q, dropout_p=1.0).numpy() == 0)


def test_sdpa_errors():
    q, k, v = dn.randn(2, 5, 4), dn.randn(2, 6, 4), dn.randn(2, 6, 3)
    with pytest.raises(RuntimeError, match=r"key \(\.\.\., S, E\).*key \(2, 6, 3\)"):
        F.scaled_dot_product_attention(q, v, v)
    with pytest.raises(RuntimeError, match="at least 2 dims"):
        F.scaled_dot_product_attention(dn.randn(4), k, v)
    with pytest.raises(RuntimeError, match="must not be given with is_causal"):
        F.scaled_dot_product_attention(q, k, v, dn.ones(5, 6, dtype=dn.bool), is_causal=True)
    with pytest.raises(RuntimeError, match="bool or of query's dtype float32, got float64"):
        F.scaled_dot_product_attention(q, k, v, dn.zeros(5, 6, dtype=dn.float64))
    with pytest.raises(RuntimeError, match=r"attn_mask of shape \(4, 6\) does not broadcast"):
        F.scaled_dot_product_attention(q, k, v, dn.zeros(4, 6))
    with pytest.raises(RuntimeError, match="one floating dtype"):
        F.scaled_dot_product_attention(q.double(), k, v)
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        F.scaled_dot_product_attention(q, k, v, dropout_p=1.5)
    with pytest.raises(RuntimeError, match="enable_gqa"):
        F.scaled_dot_product_attention(dn.randn(1, 4, 5, 4), dn.randn(1, 3, 6, 4), dn.randn(1, 3, 6, 4),
                                       enable_gqa=True)


# ----------------------------------------------------------------------------- MultiheadAttention
E, HEADS, L, S, N = 8, 2, 4, 5, 3


def twins(dtype, seed=0, **config):
    """torch and deepnum MultiheadAttention with the same random parameters (not torch's zero
    biases, so every gradient path is exercised), cast to ``dtype``."""
    torch.manual_seed(seed)
    theirs = torch.nn.MultiheadAttention(E, HEADS, **config)
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.randn(p.shape) * 0.5)
    theirs.to(torch.float64 if np.dtype(dtype) == np.float64 else torch.float32)
    ours = nn.MultiheadAttention(E, HEADS, **config)
    ours.to(np.dtype(dtype))
    ours.load_state_dict({k: dn.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    return ours, theirs


def make_inputs(rng, dtype, config, unbatched=False, self_attention=False):
    bf = config.get("batch_first", False)
    kdim, vdim = config.get("kdim") or E, config.get("vdim") or E

    def shape(length, width):
        return (length, width) if unbatched else ((N, length, width) if bf else (length, N, width))

    q = rng.standard_normal(shape(L, E)).astype(dtype)
    if self_attention:
        return [q, q, q]
    return [q, rng.standard_normal(shape(S, kdim)).astype(dtype), rng.standard_normal(shape(S, vdim)).astype(dtype)]


def compare(config, call=None, masks=None, dtype=np.float64, unbatched=False, self_attention=False, seed=0):
    """One forward and backward of both layers; compare output, weights, input and parameter
    gradients. ``masks``: name → array (bool or float, then cast to dtype)."""
    call, masks = call or {}, masks or {}
    tol = TOLERANCES[np.dtype(dtype)] if np.dtype(dtype) == np.float64 else TOL32
    rng = np.random.default_rng(seed)
    ours, theirs = twins(dtype, seed, **config)
    arrays = make_inputs(rng, dtype, config, unbatched, self_attention)
    dn_in = [dn.tensor(a, requires_grad=True) for a in arrays[:1 if self_attention else 3]]
    torch_in = [torch.tensor(a, requires_grad=True) for a in arrays[:1 if self_attention else 3]]
    if self_attention:  # the same object three times (the packed-projection path)
        dn_in, torch_in = dn_in * 3, torch_in * 3
    cast = {k: m if m.dtype == bool else m.astype(dtype) for k, m in masks.items()}
    out_d, w_d = ours(*dn_in, **{k: dn.tensor(m) for k, m in cast.items()}, **call)
    out_t, w_t = theirs(*torch_in, **{k: torch.tensor(m) for k, m in cast.items()}, **call)
    assert out_d.dtype == np.dtype(dtype)
    assert_close(out_d, out_t, *tol, what="output")
    loss_d = (out_d * dn.tensor(g := rng.standard_normal(out_t.shape).astype(dtype))).sum()
    loss_t = (out_t * torch.tensor(g)).sum()
    if w_t is None:
        assert w_d is None
    else:
        assert_close(w_d, w_t, *tol, what="attention weights")
        loss_d = loss_d + (w_d * dn.tensor(gw := rng.standard_normal(w_t.shape).astype(dtype))).sum()
        loss_t = loss_t + (w_t * torch.tensor(gw)).sum()
    loss_d.backward()
    loss_t.backward()
    for i, (a, b) in enumerate(zip(dn_in, torch_in, strict=True)):
        assert a.grad.dtype == np.dtype(dtype)
        assert_close(a.grad, b.grad, *tol, what=f"gradient of input {i}")
    params = dict(ours.named_parameters())
    assert list(params) == [n for n, _ in theirs.named_parameters()]
    for name, p in theirs.named_parameters():
        assert params[name].grad.dtype == np.dtype(dtype)
        assert_close(params[name].grad, p.grad, *tol, what=f"gradient of {name}")
    return out_d, w_d


CONFIGS = [
    {},
    {"batch_first": True},
    {"kdim": 3, "vdim": 6},
    {"kdim": 3, "vdim": 6, "batch_first": True, "add_bias_kv": True, "add_zero_attn": True},
    {"add_bias_kv": True, "bias": False},
    {"add_zero_attn": True},
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
@pytest.mark.parametrize("call", [{}, {"average_attn_weights": False}, {"need_weights": False}],
                         ids=["avg", "per-head", "no-weights"])
def test_mha_matches_torch(config, call, dtype):
    compare(config, call, dtype=dtype)


@pytest.mark.parametrize("config", [{}, {"batch_first": True}])
@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_self_attention_and_unbatched(config, need_weights):
    compare(config, {"need_weights": need_weights}, self_attention=True)
    compare(config, {"need_weights": need_weights}, unbatched=True)
    compare(config, {"need_weights": need_weights}, unbatched=True, self_attention=True,
            masks={"attn_mask": RNG_MASK.random((HEADS, L, L)) > 0.5, "key_padding_mask": np.eye(L, dtype=bool)[1]})


KEY_PADDING = np.zeros((N, S), dtype=bool)
KEY_PADDING[0, 3:] = True
KEY_PADDING[2, 1] = True
CAUSAL = np.triu(np.ones((L, S), dtype=bool), 1)
MASKS = {
    "key_padding": {"key_padding_mask": KEY_PADDING},
    "attn_bool": {"attn_mask": CAUSAL},
    "both_bool": {"key_padding_mask": KEY_PADDING, "attn_mask": CAUSAL},
    "per_head_bool": {"attn_mask": RNG_MASK.random((N * HEADS, L, S)) > 0.6, "key_padding_mask": KEY_PADDING},
    "float": {"attn_mask": RNG_MASK.standard_normal((L, S)),
              "key_padding_mask": np.where(KEY_PADDING, -np.inf, RNG_MASK.standard_normal((N, S)))},
    "per_head_float": {"attn_mask": RNG_MASK.standard_normal((N * HEADS, L, S))},
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("config", [{}, {"batch_first": True, "add_bias_kv": True, "add_zero_attn": True}],
                         ids=["default", "bf-biaskv-zeroattn"])
@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("masks", list(MASKS), ids=list(MASKS))
def test_mha_masks(masks, config, need_weights, dtype):
    compare(config, {"need_weights": need_weights, "average_attn_weights": False}, masks=MASKS[masks], dtype=dtype)


def test_mha_mixed_mask_types_warn_as_torch():
    masks = {"key_padding_mask": KEY_PADDING, "attn_mask": RNG_MASK.standard_normal((L, S))}
    with pytest.warns(UserWarning, match="mismatched key_padding_mask and attn_mask"):
        compare({}, masks=masks)


def test_mha_is_causal_hint():
    """is_causal needs attn_mask; without key_padding_mask and need_weights the hint replaces the
    mask (as torch: even a wrong mask is ignored), otherwise the mask is used."""
    square = np.triu(np.ones((L, L), dtype=bool), 1)
    for call in ({"is_causal": True, "need_weights": False}, {"is_causal": True}):
        compare({}, call, masks={"attn_mask": square}, self_attention=True)
        compare({"add_bias_kv": True}, call, masks={"attn_mask": square}, self_attention=True)
    compare({}, {"is_causal": True, "need_weights": False}, masks={"attn_mask": ~square}, self_attention=True)
    compare({}, {"is_causal": True, "need_weights": False},
            masks={"attn_mask": square, "key_padding_mask": np.eye(N, L, dtype=bool)}, self_attention=True)
    layer = nn.MultiheadAttention(E, HEADS)
    x = dn.randn(L, N, E)
    with pytest.raises(RuntimeError, match="is_causal is a hint that attn_mask is the causal mask"):
        layer(x, x, x, is_causal=True)


def test_mha_all_keys_masked_gives_nan_with_weights_and_zeros_without():
    ours, theirs = twins(np.float64, **{})
    x = np.random.default_rng(0).standard_normal((L, N, E))
    padding = np.zeros((N, L), dtype=bool)
    padding[1] = True
    for need_weights in (True, False):
        out_d, _ = ours(*[dn.tensor(x)] * 3, key_padding_mask=dn.tensor(padding), need_weights=need_weights)
        out_t, _ = theirs(*[torch.tensor(x)] * 3, key_padding_mask=torch.tensor(padding), need_weights=need_weights)
        np.testing.assert_allclose(out_d.detach().numpy(), out_t.detach().numpy(), rtol=1e-9, atol=1e-9)
        assert np.isnan(out_d.detach().numpy()[:, 1]).all() == need_weights


@pytest.mark.parametrize("config", CONFIGS + [{"bias": False, "kdim": 4}])
def test_mha_state_dict_and_repr(config):
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(E, HEADS, **config)
    ours = nn.MultiheadAttention(E, HEADS, **config)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    assert ours.head_dim == theirs.head_dim and ours._qkv_same_embed_dim == theirs._qkv_same_embed_dim


def test_mha_default_initialisation():
    dn.manual_seed(0)
    width = 256
    layer = nn.MultiheadAttention(width, 4, add_bias_kv=True)
    bound = math.sqrt(6 / (width + 3 * width))  # xavier_uniform on (3E, E)
    w = layer.in_proj_weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound
    out_w = layer.out_proj.weight.detach().numpy()  # Linear's default, U(-1/√E, 1/√E)
    assert np.abs(out_w).max() <= 1 / math.sqrt(width) and np.abs(out_w).max() > 0.99 / math.sqrt(width)
    assert np.all(layer.in_proj_bias.detach().numpy() == 0) and np.all(layer.out_proj.bias.detach().numpy() == 0)
    bias_k = layer.bias_k.detach().numpy()  # xavier_normal on (1, 1, E): std = √(2/(E + E))
    assert abs(bias_k.std() - 1 / math.sqrt(width)) < 0.15 / math.sqrt(width)
    separate = nn.MultiheadAttention(width, 4, kdim=64, vdim=32)
    k_bound = math.sqrt(6 / (width + 64))
    assert np.abs(separate.k_proj_weight.detach().numpy()).max() <= k_bound
    assert separate.in_proj_weight is None and separate.q_proj_weight.shape == (width, width)
    assert layer.in_proj_weight.dtype == np.float32
    assert nn.MultiheadAttention(8, 2, dtype=dn.float64).in_proj_weight.dtype == np.float64


def test_mha_dropout_only_in_training():
    ours, theirs = twins(np.float64, dropout=0.5)
    ours.eval()
    theirs.eval()
    x = np.random.default_rng(0).standard_normal((L, N, E))
    out_d, w_d = ours(*[dn.tensor(x)] * 3)
    out_t, w_t = theirs(*[torch.tensor(x)] * 3)
    assert_close(out_d, out_t, 1e-9, 1e-7, what="eval output")
    ours.train()
    dn.manual_seed(0)
    probs = ours.eval()(*[dn.tensor(x)] * 3, average_attn_weights=False)[1].detach().numpy()
    _, dropped = ours.train()(*[dn.tensor(x)] * 3, average_attn_weights=False)
    dropped = dropped.detach().numpy()
    kept = dropped != 0
    assert 0.3 < kept.mean() < 0.7
    np.testing.assert_allclose(dropped[kept], 2 * probs[kept], rtol=1e-12)


def test_mha_errors():
    with pytest.raises(ValueError, match="embed_dim must be divisible by num_heads, got embed_dim=8 and num_heads=3"):
        nn.MultiheadAttention(8, 3)
    layer = nn.MultiheadAttention(8, 2, kdim=3, batch_first=True)
    name = r"MultiheadAttention\(embed_dim=8, num_heads=2, kdim=3, vdim=8, batch_first=True\)"
    q, k, v = dn.randn(2, 4, 8), dn.randn(2, 5, 3), dn.randn(2, 5, 8)
    with pytest.raises(RuntimeError, match=name + r": expected query \(N, L, 8\), key \(N, S, 3\).*key \(2, 5, 8\)"):
        layer(q, v, v)
    with pytest.raises(RuntimeError, match="batched 3-D"):
        layer(q, k[0], v)
    with pytest.raises(RuntimeError, match=r"expected key_padding_mask of shape \(2, 5\), got \(5, 2\)"):
        layer(q, k, v, key_padding_mask=dn.zeros(5, 2, dtype=dn.bool))
    with pytest.raises(RuntimeError, match=r"expected attn_mask of shape \(4, 5\) or \(4, 4, 5\), got \(3, 4, 5\)"):
        layer(q, k, v, attn_mask=dn.zeros(3, 4, 5, dtype=dn.bool))
    with pytest.raises(RuntimeError, match="only bool and floating types of attn_mask are supported, got int64"):
        layer(q, k, v, attn_mask=dn.zeros(4, 5, dtype=dn.int64))
    with pytest.raises(RuntimeError, match="must have the query's dtype float32, got float64"):
        layer(q, k, v, attn_mask=dn.zeros(4, 5, dtype=dn.float64))


def test_sdpa_and_mha_are_exported():
    assert nn.functional.scaled_dot_product_attention is F.scaled_dot_product_attention
    assert isinstance(nn.MultiheadAttention(4, 1), nn.Module)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = dn.randn(3, 2, 4)
        out, w = nn.MultiheadAttention(4, 1)(x, x, x)
    assert out.shape == (3, 2, 4) and w.shape == (2, 3, 3)
