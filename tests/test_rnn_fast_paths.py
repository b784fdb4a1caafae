"""The recurrent layers' fast paths beyond plain parity (tests/test_rnn.py): the pool of reused work
arrays (deepnum/functional/_rnn_workspace.py), which hands an array out again only when nothing
refers to it any more, so graphs that wait for their backward, returned outputs, gradients a user
keeps and views all stay intact; and the LSTM over an embedding look-up, which projects the table
rows instead of the looked-up rows (deepnum/functional/_rnn_lstm.py)."""
import numpy as np
import pytest
import torch

import deepnum as dn
import deepnum.nn as nn
from deepnum.functional import _rnn_workspace as workspace
from tests.helpers import assert_close
from tests.test_rnn_helpers import make_pair


@pytest.fixture(autouse=True)
def fresh_pool():
    workspace.clear()
    yield
    workspace.clear()


def test_take_reuses_only_arrays_nothing_refers_to():
    shape = (64, 300)
    a = workspace.take(np, shape, np.float32)
    b = workspace.take(np, shape, np.float32)
    assert a is not b and a.shape == shape and a.dtype == np.float32
    view = a[3:]
    c = workspace.take(np, shape, np.float32)
    assert c is not a and c is not b  # a is still seen through its view
    del view, a
    d = workspace.take(np, shape, np.float32, zero=True)
    assert not np.shares_memory(d, b) and not np.shares_memory(d, c)
    assert (d == 0).all()
    assert workspace.held_bytes() == 3 * d.nbytes
    assert workspace.take(np, shape, np.float64).dtype == np.float64  # another key


def test_small_arrays_are_not_pooled_and_the_limit_holds(monkeypatch):
    workspace.take(np, (10,), np.float32)
    assert workspace.held_bytes() == 0
    monkeypatch.setattr(workspace, "LIMIT_BYTES", 3 * 80_000)
    kept = [workspace.take(np, (20_000,), np.float32) for _ in range(3)]
    assert workspace.held_bytes() == 3 * 80_000
    extra = workspace.take(np, (20_000,), np.float32)  # no room: a plain array, not pooled
    assert workspace.held_bytes() == 3 * 80_000 and all(extra is not k for k in kept)
    del kept
    workspace.take(np, (40_000,), np.float32)  # evicts free arrays of the other shape to make room
    assert workspace.held_bytes() <= 3 * 80_000
    workspace.clear()
    assert workspace.held_bytes() == 0


def test_lstm_graphs_alive_at_once_keep_their_buffers():
    """Two forward passes of one LSTM before either backward (they use buffers of the same shapes),
    then both backwards, give the gradients of two separate runs."""
    ours, theirs = make_pair("LSTM", np.float32, 8, 16, batch_first=True)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((3, 7, 8)).astype(np.float32) for _ in range(2)]
    gs = [rng.standard_normal((3, 7, 16)).astype(np.float32) for _ in range(2)]
    outs = [ours(dn.tensor(x))[0] for x in xs]
    for out, g in zip(outs, gs):
        (out * dn.tensor(g)).sum().backward()
    for x, g in zip(xs, gs):
        (theirs(torch.tensor(x))[0] * torch.tensor(g)).sum().backward()
    for name, p in theirs.named_parameters():
        assert_close(dict(ours.named_parameters())[name].grad, p.grad, 3e-5, 3e-4, what=name)


def test_kept_gradients_and_outputs_are_not_overwritten_by_later_steps():
    torch.manual_seed(0)
    model = nn.LSTM(8, 32, batch_first=True)
    opt = dn.optim.Adam(model.parameters(), lr=1e-2)
    x = dn.tensor(np.random.default_rng(1).standard_normal((4, 9, 8)).astype(np.float32))
    kept_grads, kept_outs = [], []
    for _ in range(3):
        opt.zero_grad()
        out, _ = model(x)
        out.sum().backward()
        opt.step()
        kept_grads.append(model.weight_hh_l0.grad)
        kept_outs.append(out)
    snapshots = [(g.data.copy(), o.data.copy()) for g, o in zip(kept_grads, kept_outs)]
    for _ in range(2):  # more steps, after which the pool would love to reuse the kept arrays
        opt.zero_grad()
        model(x)[0].sum().backward()
        opt.step()
    for (g, o), (g0, o0) in zip(zip(kept_grads, kept_outs), snapshots):
        np.testing.assert_array_equal(g.data, g0)
        np.testing.assert_array_equal(o.data, o0)
    assert len({id(g.data) for g in kept_grads}) == 3


def test_training_steps_reuse_the_pool():
    """After the first step, further identical steps allocate no new pooled arrays."""
    model = nn.LSTM(16, 64, batch_first=True)
    opt = dn.optim.Adam(model.parameters())
    x = dn.tensor(np.random.default_rng(2).standard_normal((8, 20, 16)).astype(np.float32))

    def step():
        opt.zero_grad()
        model(x)[0].square().mean().backward()
        opt.step()

    step()
    step()
    held = workspace.held_bytes()
    assert held > 0
    for _ in range(3):
        step()
    assert workspace.held_bytes() == held


def _lookups(out):
    """The ``lookup`` of every fused LSTM layer in out's graph."""
    found, stack, seen = [], [out.grad_fn], set()
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        if hasattr(fn, "lookup"):
            found.append(fn.lookup)
        stack.extend(t.grad_fn for t in fn.inputs)
    return found


def _lm_pair(dtype, bidirectional, batch_first, padding_idx=None, vocab=7, width=12):
    torch.manual_seed(0)
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    t_emb = torch.nn.Embedding(vocab, width, padding_idx=padding_idx).to(tdt)
    t_lstm = torch.nn.LSTM(width, 8, num_layers=2, bidirectional=bidirectional, batch_first=batch_first).to(tdt)
    emb = nn.Embedding(vocab, width, padding_idx=padding_idx).to(np.dtype(dtype).name)
    lstm = nn.LSTM(width, 8, num_layers=2, bidirectional=bidirectional, batch_first=batch_first)
    lstm.to(np.dtype(dtype).name)
    for ours, theirs in ((emb, t_emb), (lstm, t_lstm)):
        ours.load_state_dict({k: dn.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    return (emb, lstm), (t_emb, t_lstm)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("bidirectional", "batch_first", "padding_idx", "vocab", "width"),
                         [(False, True, None, 7, 12), (True, False, 0, 11, 6)])
def test_lstm_over_an_embedding_matches_torch(dtype, bidirectional, batch_first, padding_idx, vocab, width):
    """Output and every gradient against torch, with dW_ih from per-token sums (7 tokens of width
    12) and from dZᵀX (11 tokens of width 6)."""
    (emb, lstm), (t_emb, t_lstm) = _lm_pair(dtype, bidirectional, batch_first, padding_idx, vocab, width)
    rng = np.random.default_rng(3)
    ids = rng.integers(0, vocab, (5, 9) if batch_first else (9, 5))
    x = emb(dn.tensor(ids))
    x.retain_grad()
    out, (h, c) = lstm(x)
    lookups = _lookups(out)
    assert len(lookups) == (4 if bidirectional else 2)
    assert sum(lk is not None for lk in lookups) == (2 if bidirectional else 1)  # the first layer's directions
    xt = t_emb(torch.tensor(ids))
    xt.retain_grad()
    out_t, (h_t, c_t) = t_lstm(xt)
    g = rng.standard_normal(out_t.shape)
    ((out * dn.tensor(g.astype(dtype))).sum() + h.sum() + c.square().sum()).backward()
    ((out_t * torch.tensor(g, dtype=out_t.dtype)).sum() + h_t.sum() + c_t.square().sum()).backward()
    tol = (1e-10, 1e-9) if dtype == np.float64 else (3e-5, 3e-4)
    assert_close(out, out_t, *tol, what="output")
    assert_close(x.grad, xt.grad, *tol, what="gradient of the looked-up rows")
    assert_close(emb.weight.grad, t_emb.weight.grad, *tol, what="embedding gradient")
    for name, p in t_lstm.named_parameters():
        assert_close(dict(lstm.named_parameters())[name].grad, p.grad, *tol, what=name)


def test_lstm_over_an_embedding_uses_the_rows_when_the_table_changed():
    """A table modified in place after the look-up (before the LSTM, or between its forward and
    backward) no longer describes x: the LSTM then uses x's own rows."""
    (emb, lstm), (t_emb, t_lstm) = _lm_pair(np.float64, False, True)
    ids = np.random.default_rng(4).integers(0, 7, (3, 40))
    xt = t_emb(torch.tensor(ids))
    t_lstm(xt)[0].sum().backward()
    x = emb(dn.tensor(ids))
    with dn.no_grad():
        emb.weight.mul_(2.0)
    out = lstm(x)[0]
    assert not any(_lookups(out))
    out.sum().backward()
    assert_close(lstm.weight_ih_l0.grad, t_lstm.weight_ih_l0.grad, 1e-10, 1e-9, what="weight_ih_l0")
    lstm.zero_grad()
    x = emb(dn.tensor(ids))
    out = lstm(x)[0]
    assert any(_lookups(out))
    with dn.no_grad():
        emb.weight.mul_(0.5)  # after the LSTM's forward: its backward must use x's rows
    out.sum().backward()
    after_change = lstm.weight_ih_l0.grad.data.copy()
    lstm.zero_grad()
    plain = dn.tensor(x.data.copy(), requires_grad=True)  # the same rows without an embedding behind them
    lstm(plain)[0].sum().backward()
    assert_close(after_change, lstm.weight_ih_l0.grad.data, 1e-12, 1e-10, what="weight_ih_l0")
