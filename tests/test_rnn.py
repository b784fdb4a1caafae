"""RNN, LSTM and GRU against PyTorch with the same weights: outputs, final states, and the gradients
of the input, the initial states and every parameter, in float64 (1e-10) and float32, for every mode
× num_layers {1, 2, 3} × bidirectional × batch_first × bias × with/without initial state, plus
unbatched inputs; LSTM with proj_size; dropout between layers; the cells; a float64 gradcheck of each
fused layer op (both directions, variable lengths, LSTM projection) and of its second derivatives;
state_dict keys, repr, initialisation, errors. Variable lengths (PackedSequence, ``lengths=``) are
in test_rnn_packed.py."""
import itertools
import math
import warnings

import numpy as np
import pytest
import torch

import deepnum as dn
import deepnum.nn as nn
from deepnum.autograd import gradcheck, gradgradcheck
from deepnum.functional.rnn import reference_layer, rnn_layer
from tests.test_rnn_helpers import MODES, compare, initial_states, make_pair, our_layer, torch_layer, twins

I, H, T, N = 4, 5, 6, 3
GRID = list(itertools.product(MODES, (1, 2, 3), (False, True), (False, True), (True, False), (False, True)))


# ----------------------------------------------------------------------------- parity grid
@pytest.mark.parametrize("mode,layers,bidirectional,batch_first,bias,with_state", GRID)
def test_layer_matches_torch(mode, layers, bidirectional, batch_first, bias, with_state):
    for dtype in (np.float64, np.float32):
        ours, theirs = make_pair(mode, dtype, I, H, layers, bias=bias, batch_first=batch_first,
                                 bidirectional=bidirectional)
        x = np.random.default_rng(2).standard_normal((N, T, I) if batch_first else (T, N, I)).astype(dtype)
        hx = initial_states(mode, ((2 if bidirectional else 1) * layers, N, H), dtype) if with_state else None
        compare(ours, theirs, x, hx, dtype)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize("layers,bidirectional,batch_first,bias,with_state",
                         list(itertools.product((1, 2), (False, True), (False, True), (True, False), (False, True))))
def test_lstm_projection_matches_torch(layers, bidirectional, batch_first, bias, with_state):
    for dtype in (np.float64, np.float32):
        ours, theirs = make_pair("LSTM", dtype, I, H, layers, bias=bias, batch_first=batch_first,
                                 bidirectional=bidirectional, proj_size=2)
        x = np.random.default_rng(2).standard_normal((N, T, I) if batch_first else (T, N, I)).astype(dtype)
        count = (2 if bidirectional else 1) * layers
        hx = None
        if with_state:
            rng = np.random.default_rng(3)
            hx = (rng.standard_normal((count, N, 2)).astype(dtype), rng.standard_normal((count, N, H)).astype(dtype))
        compare(ours, theirs, x, hx, dtype)


@pytest.mark.parametrize("mode,bidirectional,with_state,batch_first",
                         list(itertools.product(MODES, (False, True), (False, True), (False, True))))
def test_unbatched_input(mode, bidirectional, with_state, batch_first):
    for dtype in (np.float64, np.float32):
        ours, theirs = make_pair(mode, dtype, I, H, 2, bidirectional=bidirectional, batch_first=batch_first)
        x = np.random.default_rng(2).standard_normal((T, I)).astype(dtype)
        hx = initial_states(mode, ((2 if bidirectional else 1) * 2, H), dtype) if with_state else None
        compare(ours, theirs, x, hx, dtype)


def test_single_step_and_long_sequence():
    for length in (1, 40):
        ours, theirs = make_pair("LSTM", np.float64, I, H)
        x = np.random.default_rng(0).standard_normal((length, N, I))
        compare(ours, theirs, x, None, np.float64)


@pytest.mark.parametrize("mode", MODES)
def test_gradients_do_not_share_memory(mode):
    """b_ih and b_hh get equal gradients; an in-place change of one (clip_grad_norm_) must not change
    the other."""
    layer = our_layer(mode, I, H, bidirectional=True)
    out, _ = layer(dn.randn(T, N, I))
    (out * out).sum().backward()
    grads = [p.grad.data for p in layer.parameters()]
    for a, b in itertools.combinations(grads, 2):
        assert not np.shares_memory(a, b)
    total = nn.utils.clip_grad_norm_(layer.parameters(), 0.5)
    assert total.item() > 0.5
    clipped = math.sqrt(sum(float((p.grad.data.astype(np.float64) ** 2).sum()) for p in layer.parameters()))
    assert clipped == pytest.approx(0.5, rel=1e-5)


def test_output_dtype_and_no_grad_mode():
    lstm = nn.LSTM(I, H)
    x = dn.randn(T, N, I)
    with dn.no_grad():
        out, (h, c) = lstm(x)
    assert out.dtype == np.float32 and h.dtype == np.float32 and c.dtype == np.float32
    assert out.grad_fn is None
    out2, _ = lstm(x)
    np.testing.assert_array_equal(out.data, out2.data)  # saving for backward does not change values


# ----------------------------------------------------------------------------- dropout
def _dropout_pair(p):
    ours, theirs = make_pair("LSTM", np.float64, I, H, 3, dropout=p)
    return ours, theirs


def test_dropout_zero_equals_no_dropout_and_eval_is_deterministic():
    x = np.random.default_rng(0).standard_normal((T, N, I))
    ours, theirs = _dropout_pair(0.0)
    compare(ours, theirs, x, None, np.float64)  # training mode, p = 0
    ours, theirs = _dropout_pair(0.5)
    ours.eval()
    theirs.eval()
    compare(ours, theirs, x, None, np.float64)
    a, _ = ours(dn.tensor(x))
    b, _ = ours(dn.tensor(x))
    np.testing.assert_array_equal(a.data, b.data)


def test_dropout_training_between_layers_scaled_and_reproducible():
    x = dn.tensor(np.random.default_rng(0).standard_normal((T, 64, I)))
    layer = nn.GRU(I, 50, 3, dropout=0.5).double()
    layer.eval()
    ref, _ = layer(x)
    layer.train()
    dn.manual_seed(5)
    a, h_a = layer(x)
    dn.manual_seed(5)
    b, _ = layer(x)
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.allclose(a.data, ref.data)
    # Rebuild it: inverted dropout (p = 0.5: kept values doubled) after layers 0 and 1, none after the last.
    dn.manual_seed(5)
    zero = dn.zeros(64, 50, dtype=dn.float64)
    h = x
    for k in range(3):
        out, h_n = rnn_layer("GRU", h, [zero], layer.all_weights[k])
        np.testing.assert_array_equal(h_n.data, h_a.data[k])
        h = dn.nn.functional.dropout(out, 0.5, True) if k < 2 else out
        if k < 2:
            kept = h.data != 0
            assert 0.45 < kept.mean() < 0.55
            np.testing.assert_array_equal(h.data[kept], 2 * out.data[kept])
    np.testing.assert_array_equal(h.data, a.data)


def test_dropout_warns_for_one_layer_and_validates():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        nn.LSTM(I, H, dropout=0.2)
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        nn.GRU(I, H, 2, dropout=1.5)


# ----------------------------------------------------------------------------- fused op: gradcheck
@pytest.mark.parametrize("mode,reverse,batch_first,sizes", [
    (m, r, bf, s) for m in MODES for r, bf, s in ((False, False, None), (True, True, None), (False, True, [3, 2, 2, 1]),
                                                  (True, False, [3, 3, 1, 1]))])
def test_fused_layer_gradcheck(mode, reverse, batch_first, sizes):
    rng = np.random.default_rng(0)
    hidden, length, batch, features = 2, 4, 3, 2
    gates = {"LSTM": 4, "GRU": 3}.get(mode, 1)
    shape = (batch, length, features) if batch_first else (length, batch, features)
    x = dn.tensor(rng.standard_normal(shape), requires_grad=True)
    states = [dn.tensor(rng.standard_normal((batch, hidden)), requires_grad=True)
              for _ in range(2 if mode == "LSTM" else 1)]
    weights = [dn.tensor(rng.standard_normal(s) * 0.6, requires_grad=True)
               for s in ((gates * hidden, features), (gates * hidden, hidden), (gates * hidden,), (gates * hidden,))]
    if mode == "RNN_RELU":  # keep pre-activations away from the kink at 0
        weights[2].data += 0.3
    if mode == "LSTM" and reverse:  # with a projection W_hr (P = 1): h0 and the output have 1 feature
        weights[1] = dn.tensor(rng.standard_normal((gates * hidden, 1)) * 0.6, requires_grad=True)
        weights.append(dn.tensor(rng.standard_normal((1, hidden)), requires_grad=True))
        states[0] = dn.tensor(rng.standard_normal((batch, 1)), requires_grad=True)

    def fn(x, *rest):
        k = len(states)
        return rnn_layer(mode, x, rest[:k], rest[k:], reverse=reverse, batch_first=batch_first, sizes=sizes)

    assert gradcheck(fn, [x, *states, *weights])
    ours = fn(x, *states, *weights)
    ref = reference_layer(mode, x, states, weights, reverse=reverse, batch_first=batch_first, sizes=sizes)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a.data, b.data, atol=1e-12)
    if mode != "RNN_RELU" and reverse and sizes is not None:  # the richest case, once per mode (slow)
        assert gradgradcheck(fn, [x, *states, *weights])


def test_double_backward_matches_torch():
    """Gradient penalty through an LSTM: d/dW of |d loss/dx|² (create_graph=True)."""
    ours, theirs = make_pair("LSTM", np.float64, I, H, 2, bidirectional=True)
    x = np.random.default_rng(0).standard_normal((T, N, I))
    dx, tx = twins(x)
    (g_ours,) = dn.autograd.grad(ours(dx)[0].tanh().sum(), [dx], create_graph=True)
    (g_theirs,) = torch.autograd.grad(theirs(tx)[0].tanh().sum(), [tx], create_graph=True)
    np.testing.assert_allclose(g_ours.data, g_theirs.detach().numpy(), atol=1e-10)
    (g_ours * g_ours).sum().backward()
    (g_theirs * g_theirs).sum().backward()
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(getattr(ours, name).grad.data, p.grad.numpy(), atol=1e-10, err_msg=name)


# ----------------------------------------------------------------------------- cells
CELLS = [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}), ("LSTMCell", {}), ("GRUCell", {}),
         ("GRUCell", {"bias": False}), ("LSTMCell", {"bias": False})]


@pytest.mark.parametrize("name,kwargs", CELLS)
@pytest.mark.parametrize("batched,with_state", list(itertools.product((True, False), (True, False))))
def test_cell_matches_torch(name, kwargs, batched, with_state):
    for dtype in (np.float64, np.float32):
        torch.manual_seed(0)
        theirs = getattr(torch.nn, name)(I, H, **kwargs).to(torch.float64 if dtype == np.float64 else torch.float32)
        ours = getattr(nn, name)(I, H, **kwargs).to(np.dtype(dtype).name)
        ours.load_state_dict({k: dn.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
        x = np.random.default_rng(1).standard_normal((N, I) if batched else (I,)).astype(dtype)
        shape = (N, H) if batched else (H,)
        hx = initial_states("LSTM" if name == "LSTMCell" else "GRU", shape, dtype) if with_state else None
        compare(ours, theirs, x, hx, dtype)


def test_cells_repr_keys_and_errors():
    for name, kwargs in CELLS:
        ours, theirs = getattr(nn, name)(I, H, **kwargs), getattr(torch.nn, name)(I, H, **kwargs)
        assert repr(ours) == repr(theirs)
        assert list(ours.state_dict()) == list(theirs.state_dict())
    cell = nn.LSTMCell(I, H)
    with pytest.raises(ValueError, match=r"LSTMCell\(4→5\): expected input \(N, 4\)"):
        cell(dn.zeros(3, 7))
    with pytest.raises(ValueError, match=r"expected hx\[1\] of shape \(3, 5\)"):
        cell(dn.zeros(3, 4), (dn.zeros(3, 5), dn.zeros(2, 5)))
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        nn.RNNCell(I, H, nonlinearity="gelu")


# ----------------------------------------------------------------------------- structure
@pytest.mark.parametrize("mode", MODES)
def test_state_dict_repr_and_attributes(mode):
    kwargs = {"num_layers": 2, "bias": False, "batch_first": True, "dropout": 0.25, "bidirectional": True}
    ours, theirs = our_layer(mode, I, H, **kwargs), torch_layer(mode, I, H, **kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [tuple(p.shape) for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]
    assert repr(ours) == repr(theirs)
    assert repr(our_layer(mode, I, H)) == repr(torch_layer(mode, I, H))
    assert ours._flat_weights_names == theirs._flat_weights_names
    assert [[tuple(p.shape) for p in w] for w in ours.all_weights] == \
        [[tuple(p.shape) for p in w] for w in theirs.all_weights]
    assert ours.mode == theirs.mode
    ours.flatten_parameters()


def test_default_initialisation_bounds():
    dn.manual_seed(0)
    layer = nn.LSTM(30, 64, 2, bidirectional=True)
    bound = 1 / math.sqrt(64)
    values = np.concatenate([p.data.ravel() for p in layer.parameters()])
    assert np.abs(values).max() <= bound
    assert abs(values.std() - bound / math.sqrt(3)) < 0.02 * bound
    assert abs(values.mean()) < 0.02 * bound
    assert layer.weight_ih_l0.dtype == np.float32
    assert nn.GRU(3, 4, dtype=dn.float64).weight_hh_l0.dtype == np.float64


def test_module_to_double_keeps_working():
    layer = nn.GRU(I, H, 2)
    layer.double()
    out, h = layer(dn.randn(T, N, I, dtype=dn.float64))
    assert out.dtype == np.float64 and h.shape == (2, N, H)


# ----------------------------------------------------------------------------- errors
def test_errors_name_the_layer_and_shapes():
    lstm = nn.LSTM(10, 20, 2)
    with pytest.raises(ValueError, match=r"LSTM\(10→20\): expected input of size 10 in the last dimension, got "
                                         r"\(5, 3, 7\)"):
        lstm(dn.zeros(5, 3, 7))
    with pytest.raises(ValueError, match=r"LSTM\(10→20\): expected a batched \(L, N, H_in\) or unbatched"):
        lstm(dn.zeros(5, 3, 2, 10))
    with pytest.raises(ValueError, match=r"expected hx\[0\] \(h_0\) of shape \(2, 3, 20\) for the batched input, "
                                         r"got \(1, 3, 20\)"):
        lstm(dn.zeros(5, 3, 10), (dn.zeros(1, 3, 20), dn.zeros(2, 3, 20)))
    with pytest.raises(ValueError, match=r"expected hx\[1\] \(c_0\) of shape \(2, 20\) for the unbatched input"):
        lstm(dn.zeros(5, 10), (dn.zeros(2, 20), dn.zeros(2, 3, 20)))
    with pytest.raises(TypeError, match=r"expected hx as a tuple \(h_0, c_0\)"):
        lstm(dn.zeros(5, 3, 10), dn.zeros(2, 3, 20))
    with pytest.raises(TypeError, match="expected hx as a Tensor h_0"):
        nn.GRU(10, 20)(dn.zeros(5, 3, 10), (dn.zeros(1, 3, 20),))
    with pytest.raises(ValueError, match=r"input dtype float64 does not match the parameters' dtype float32"):
        lstm(dn.zeros(5, 3, 10, dtype=dn.float64))
    with pytest.raises(ValueError, match=r"hx \(h_0\) dtype float64 does not match"):
        nn.RNN(10, 20)(dn.zeros(5, 3, 10), dn.zeros(1, 3, 20, dtype=dn.float64))
    with pytest.raises(ValueError, match="sequence length > 0"):
        lstm(dn.zeros(0, 3, 10))
    with pytest.raises(ValueError, match=r"GRU\(10→20\): lengths has 2 entries but the batch has 3"):
        nn.GRU(10, 20)(dn.zeros(5, 3, 10), lengths=[5, 4])
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 5\].*from 1 to 6"):
        nn.GRU(10, 20)(dn.zeros(5, 3, 10), lengths=[6, 4, 1])
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 5\].*from 0 to 5"):
        nn.GRU(10, 20)(dn.zeros(5, 3, 10), lengths=[5, 0, 1])


def test_constructor_errors_match_torch():
    cases = [({"hidden_size": 0}, ValueError), ({"num_layers": 0}, ValueError), ({"bias": 1}, TypeError),
             ({"hidden_size": 2.5}, TypeError), ({"proj_size": 30}, ValueError), ({"proj_size": -1}, ValueError)]
    for change, error in cases:
        kwargs = {"input_size": 10, "hidden_size": 20, **change}
        with pytest.raises(error) as theirs:
            torch.nn.LSTM(**kwargs)
        with pytest.raises(error) as ours:
            nn.LSTM(**kwargs)
        assert str(ours.value) == str(theirs.value)
    with pytest.raises(ValueError, match="Unknown nonlinearity 'gelu'"):
        nn.RNN(3, 4, nonlinearity="gelu")


def test_rejected_input_changes_nothing():
    gru = nn.GRU(I, H)
    before = {k: v.data.copy() for k, v in gru.state_dict().items()}
    with warnings.catch_warnings(), pytest.raises(ValueError):
        gru(dn.zeros(T, N, I + 1))
    for k, v in gru.state_dict().items():
        np.testing.assert_array_equal(v.data, before[k])
