"""``TransformerEncoder``, ``TransformerDecoder`` and ``Transformer`` against PyTorch with the same
weights: outputs, input gradients (src, tgt, memory) and every parameter gradient in float64 and
float32, post-norm and norm_first, relu and gelu, batch_first, masks (boolean, float, causal via
is_causal and detected from the mask, key padding), unbatched input, with and without a final norm;
deep-copied layers, state_dict keys and repr, Transformer's Xavier initialisation,
``generate_square_subsequent_mask``, the eval nested-tensor path, training with dropout, errors."""
import math

import numpy as np
import pytest
import torch

import deepnum as dn
import deepnum.nn as nn
from tests.helpers import assert_close
from tests.test_transformer import (
    CONFIG_IDS,
    CONFIGS,
    D_MODEL,
    FFN,
    NHEAD,
    check_parity,
    decoder_case,
    encoder_case,
    masks,
    sequence,
    twin,
)

# torch's notes on its nested-tensor inference path; both libraries' warning on mixing a float
# attention mask with a boolean key padding mask (tested on purpose in test_transformer_parity).
pytestmark = [pytest.mark.filterwarnings("ignore:enable_nested_tensor is True"),
              pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors"),
              pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")]


def encoder(norm_first, activation, batch_first, layers=2, final_norm=True, dropout=0.0):
    def make(lib, dtype):
        layer = lib.TransformerEncoderLayer(D_MODEL, NHEAD, FFN, dropout=dropout, activation=activation,
                                            batch_first=batch_first, norm_first=norm_first, dtype=dtype)
        norm = lib.LayerNorm(D_MODEL, dtype=dtype) if final_norm else None
        return lib.TransformerEncoder(layer, layers, norm=norm, enable_nested_tensor=False)
    return make


def decoder(norm_first, activation, batch_first, layers=2, final_norm=True):
    def make(lib, dtype):
        layer = lib.TransformerDecoderLayer(D_MODEL, NHEAD, FFN, dropout=0.0, activation=activation,
                                            batch_first=batch_first, norm_first=norm_first, dtype=dtype)
        return lib.TransformerDecoder(layer, layers, norm=lib.LayerNorm(D_MODEL, dtype=dtype) if final_norm else None)
    return make


def transformer(norm_first, activation, batch_first, dropout=0.0):
    return lambda lib, dtype: lib.Transformer(D_MODEL, NHEAD, 2, 2, FFN, dropout=dropout, activation=activation,
                                              batch_first=batch_first, norm_first=norm_first, dtype=dtype)


def _encoder_kwargs(kwargs):
    return {"mask": kwargs["src_mask"], "src_key_padding_mask": kwargs["src_key_padding_mask"],
            "is_causal": kwargs["is_causal"] or None}


# ----------------------------------------------------------------------------- encoder and decoder stacks
@pytest.mark.parametrize("kind", ["none", "bool", "float", "causal", "padding", "causal_padding"])
@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_encoder_parity(config, kind, dtype):
    """is_causal=None with the causal mask: both detect it from the mask."""
    ours, theirs = twin(encoder(*config, final_norm=config[0]), dtype)
    inputs, kwargs = encoder_case(kind, 3, 5, config[2], seed=1)
    check_parity(ours, theirs, inputs, _encoder_kwargs(kwargs), dtype)


@pytest.mark.parametrize("kind", ["none", "bool", "float", "causal", "padding", "causal_padding"])
@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_decoder_parity(config, kind, dtype):
    ours, theirs = twin(decoder(*config, final_norm=config[0]), dtype)
    inputs, kwargs = decoder_case(kind, 3, 5, 6, config[2], seed=2)
    kwargs["tgt_is_causal"] = kwargs["tgt_is_causal"] or None
    check_parity(ours, theirs, inputs, kwargs, dtype)


@pytest.mark.parametrize("kind", ["none", "causal", "padding"])
def test_stacks_unbatched(kind):
    ours, theirs = twin(encoder(True, "gelu", True))
    inputs, kwargs = encoder_case(kind, 0, 6, True, seed=3)
    check_parity(ours, theirs, inputs, _encoder_kwargs(kwargs), np.float64)
    ours, theirs = twin(decoder(False, "relu", False))
    inputs, kwargs = decoder_case(kind, 0, 4, 5, False, seed=3)
    check_parity(ours, theirs, inputs, kwargs, np.float64)


def test_causal_detection():
    """The encoder detects the square causal mask (float or boolean) when is_causal is None and
    passes is_causal=True to its layers; any other mask, or an explicit False, is not causal."""
    seen = []
    ours = nn.TransformerEncoder(nn.TransformerEncoderLayer(D_MODEL, NHEAD, FFN, dropout=0.0), 2)
    for layer in ours.layers:
        original = layer.forward
        layer.forward = lambda *a, _f=original, **k: (seen.append(k["is_causal"]), _f(*a, **k))[1]
    x = dn.randn(5, 2, D_MODEL)
    causal = nn.Transformer.generate_square_subsequent_mask(5)
    for mask, hint, expected in ((causal, None, True), (causal.isinf(), None, True), (causal, False, False),
                                 (dn.zeros(5, 5), None, False), (None, None, False)):
        seen.clear()
        ours(x, mask=mask, is_causal=hint)
        assert seen == [expected, expected]


def test_layers_are_independent_deep_copies():
    layer = nn.TransformerEncoderLayer(D_MODEL, NHEAD, FFN)
    stack = nn.TransformerEncoder(layer, 3, enable_nested_tensor=True, mask_check=False)
    assert stack.num_layers == 3 and stack.enable_nested_tensor and not stack.mask_check
    weights = [stack.layers[i].linear1.weight for i in range(3)] + [layer.linear1.weight]
    assert len({id(w) for w in weights}) == 4
    assert all(np.array_equal(w.detach().numpy(), layer.linear1.weight.detach().numpy()) for w in weights)
    stack.layers[0].linear1.weight.data[...] = 0
    assert np.any(stack.layers[1].linear1.weight.detach().numpy())


def test_encoder_eval_nested_tensor_path():
    """In eval under no_grad with a key padding mask torch's encoder runs on nested tensors and
    returns zeros at the padded positions; deepnum computes every position the ordinary way, so the
    real (unpadded) positions agree and the padded ones hold the layers' values."""
    ours, theirs = twin(lambda lib, dtype: lib.TransformerEncoder(
        lib.TransformerEncoderLayer(D_MODEL, NHEAD, FFN, batch_first=True, dtype=dtype), 2), np.float32)
    ours.eval()
    theirs.eval()
    rng = np.random.default_rng(5)
    x = sequence(rng, 3, 6, True).astype(np.float32)
    _, padding, _ = masks("padding", 3, 6, 6, rng)
    with torch.no_grad():
        expected = theirs(torch.tensor(x), src_key_padding_mask=torch.tensor(padding)).numpy()
    with dn.no_grad():
        out = ours(dn.tensor(x), src_key_padding_mask=dn.tensor(padding)).numpy()
    np.testing.assert_allclose(out[~padding], expected[~padding], atol=5e-5, rtol=5e-4)
    assert not np.any(expected[padding]) and np.all(np.isfinite(out))


# ----------------------------------------------------------------------------- Transformer
@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_transformer_parity(config, dtype):
    """Source and target masks, a causal target mask (detected), key padding on all three."""
    ours, theirs = twin(transformer(*config), dtype)
    rng = np.random.default_rng(6)
    src, tgt = sequence(rng, 3, 6, config[2]), sequence(rng, 3, 5, config[2])
    src_mask, src_padding, _ = masks("bool", 3, 6, 6, rng)
    tgt_mask = np.triu(np.full((5, 5), -np.inf), 1)
    _, padding, _ = masks("padding", 3, 6, 6, rng)
    kwargs = {"src_mask": src_mask, "tgt_mask": tgt_mask, "src_key_padding_mask": padding,
              "memory_key_padding_mask": padding, "tgt_key_padding_mask": padding[:, :5]}
    if config[0]:  # also a memory mask and explicit hints
        kwargs.update(memory_mask=masks("float", 3, 5, 6, rng)[0], tgt_mask=tgt_mask != 0, tgt_is_causal=True,
                      src_is_causal=False, tgt_key_padding_mask=None)
    check_parity(ours, theirs, [src, tgt], kwargs, dtype)


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_unbatched_and_plain(norm_first):
    ours, theirs = twin(transformer(norm_first, "gelu", False))
    rng = np.random.default_rng(7)
    check_parity(ours, theirs, [sequence(rng, 0, 6, False), sequence(rng, 0, 4, False)], {}, np.float64)
    check_parity(ours, theirs, [sequence(rng, 2, 3, False), sequence(rng, 2, 7, False)], {}, np.float64)


def test_transformer_custom_encoder_decoder():
    def make(lib, dtype):
        enc = lib.TransformerEncoder(lib.TransformerEncoderLayer(D_MODEL, NHEAD, 6, 0.0, dtype=dtype), 1)
        dec = lib.TransformerDecoder(lib.TransformerDecoderLayer(D_MODEL, NHEAD, 6, 0.0, dtype=dtype), 1)
        return lib.Transformer(D_MODEL, NHEAD, custom_encoder=enc, custom_decoder=dec, dtype=dtype)
    ours, theirs = twin(make)
    assert ours.encoder.norm is None and list(ours.state_dict()) == list(theirs.state_dict())
    rng = np.random.default_rng(8)
    check_parity(ours, theirs, [sequence(rng, 2, 5, False), sequence(rng, 2, 4, False)], {}, np.float64)


def test_transformer_training_with_dropout_matches_in_eval():
    """A few Adam steps with dropout draw different masks per call; evaluation after loading the same
    weights into torch agrees again (dropout is the identity there)."""
    ours, theirs = twin(transformer(False, "relu", True, dropout=0.2), np.float32)
    opt = dn.optim.Adam(ours.parameters(), lr=1e-3)
    rng = np.random.default_rng(9)
    src, tgt = dn.tensor(sequence(rng, 4, 6, True).astype(np.float32)), dn.tensor(sequence(rng, 4, 5, True)
                                                                                  .astype(np.float32))
    dn.manual_seed(0)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = (ours(src, tgt) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    theirs.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in ours.state_dict().items()})
    ours.eval()
    theirs.eval()
    expected = theirs(torch.tensor(src.numpy()), torch.tensor(tgt.numpy()))
    assert_close(ours(src, tgt), expected, 5e-5, 5e-4, what="eval output after training")
    with torch.no_grad():  # torch's encoder layers take their fused inference path here
        fast = theirs(torch.tensor(src.numpy()), torch.tensor(tgt.numpy()))
    assert_close(ours(src, tgt), fast, 5e-5, 5e-4, what="eval output against torch's fast path")


def test_state_dict_keys_and_repr():
    for make in (encoder(False, "relu", True), decoder(True, "gelu", False, layers=3),
                 transformer(False, "relu", False), transformer(True, "gelu", True),
                 encoder(False, "relu", False, layers=1, final_norm=False)):
        ours, theirs = twin(make)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert repr(ours) == repr(theirs)
    t = nn.Transformer()
    assert (t.d_model, t.nhead, t.batch_first) == (512, 8, False)
    assert len(t.encoder.layers) == 6 and len(t.decoder.layers) == 6
    assert t.encoder.layers[0].linear1.out_features == 2048 and t.encoder.layers[0].dropout.p == 0.1


def test_transformer_xavier_initialisation():
    """Every parameter of more than one dim is Xavier-uniform U(±√(6/(fan_in + fan_out))) after
    construction (torch's _reset_parameters); 1-d ones keep their layer's init."""
    dn.manual_seed(0)
    t = nn.Transformer(64, 4, 1, 1, 256)
    for name, p in t.named_parameters():
        w = p.detach().numpy()
        if w.ndim > 1:
            bound = math.sqrt(6 / (w.shape[0] + w.shape[1]))
            assert np.abs(w).max() <= bound, name
            assert abs(w.std() - bound / math.sqrt(3)) < 0.06 * bound, name
            assert abs(w.mean()) < 0.05 * bound, name
        elif "norm" in name:
            assert np.all(w == (1.0 if name.endswith("weight") else 0.0)), name
        elif "in_proj_bias" in name or "out_proj.bias" in name:
            assert not np.any(w), name
        else:  # Linear biases: U(±1/√fan_in)
            fan_in = 64 if "linear1" in name else 256
            assert np.abs(w).max() <= 1 / math.sqrt(fan_in) and np.any(w), name


def test_generate_square_subsequent_mask():
    for size in (1, 4):
        mask = nn.Transformer.generate_square_subsequent_mask(size)
        assert mask.dtype == np.float32 and not mask.requires_grad
        np.testing.assert_array_equal(mask.numpy(), torch.nn.Transformer.generate_square_subsequent_mask(size).numpy())
    assert nn.Transformer.generate_square_subsequent_mask(3, dtype=dn.float64).dtype == np.float64


def test_transformer_errors():
    t = nn.Transformer(D_MODEL, NHEAD, 1, 1, FFN)
    with pytest.raises(RuntimeError, match=r"Transformer\(d_model=8, nhead=2\): the batch number of src and tgt "
                                           r"must be equal, got src \(5, 2, 8\) and tgt \(4, 3, 8\)"):
        t(dn.zeros(5, 2, 8), dn.zeros(4, 3, 8))
    with pytest.raises(RuntimeError, match=r"feature number of src and tgt must be equal to d_model=8.*\(4, 2, 6\)"):
        t(dn.zeros(5, 2, 8), dn.zeros(4, 2, 6))
    with pytest.raises(ValueError, match=r"TransformerEncoderLayer\(d_model=9, nhead=2\)"):
        nn.Transformer(9, 2)
    with pytest.raises(RuntimeError, match=r"expected tgt_mask of shape \(4, 4\) or \(4, 4, 4\), got \(5, 5\)"):
        t(dn.zeros(5, 2, 8), dn.zeros(4, 2, 8), tgt_mask=nn.Transformer.generate_square_subsequent_mask(5))
    with pytest.raises(TypeError, match="encoder_layer must be a Module"):
        nn.TransformerEncoder("layer", 2)
