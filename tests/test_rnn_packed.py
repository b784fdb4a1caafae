"""Variable-length batches against PyTorch: ``nn.utils.rnn`` (pad_sequence, pack_padded_sequence,
pad_packed_sequence, pack_sequence, unpack_sequence, unpad_sequence: values, index tensors and
gradients, errors), recurrent layers on a PackedSequence (enforce_sorted both ways, both directions,
1 and 2 layers, initial states, float64 and float32), and deepnum's ``lengths=`` extension, which
must equal pack → layer → pad_packed(total_length=L)."""
import itertools

import numpy as np
import pytest
import torch
from torch.nn.utils import rnn as trnn

import deepnum as dn
from deepnum.nn.utils import rnn as drnn
from tests.test_rnn_helpers import MODES, compare, initial_states, make_pair, twins

I, H, T = 3, 4, 6
UNSORTED = [4, 6, 2, 6, 1]   # ties and an unsorted order
SORTED = [6, 5, 5, 3, 1]


def _grad_check(d_out, t_out, d_in, t_in, seed=0):
    g = np.random.default_rng(seed).standard_normal(t_out.shape)
    (d_out * dn.tensor(g)).sum().backward()
    (t_out * torch.tensor(g)).sum().backward()
    for a, b in zip(d_in, t_in):
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), atol=1e-12)


# ----------------------------------------------------------------------------- utils
@pytest.mark.parametrize("batch_first,side,value", list(itertools.product((False, True), ("right", "left"),
                                                                          (0.0, -1.5))))
def test_pad_sequence(batch_first, side, value):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((n, 2, 3)) for n in (3, 5, 1)]
    d_in, t_in = zip(*(twins(a) for a in arrays))
    d_out = drnn.pad_sequence(d_in, batch_first=batch_first, padding_value=value, padding_side=side)
    t_out = trnn.pad_sequence(t_in, batch_first=batch_first, padding_value=value, padding_side=side)
    np.testing.assert_array_equal(d_out.data, t_out.detach().numpy())
    _grad_check(d_out, t_out, d_in, t_in)


@pytest.mark.parametrize("lengths,enforce_sorted,batch_first", [
    (SORTED, True, False), (SORTED, True, True), (UNSORTED, False, False), (UNSORTED, False, True),
    (SORTED, False, True)])
def test_pack_and_pad_round_trip(lengths, enforce_sorted, batch_first):
    shape = (len(lengths), T, I) if batch_first else (T, len(lengths), I)
    dx, tx = twins(np.random.default_rng(1).standard_normal(shape))
    dp = drnn.pack_padded_sequence(dx, lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    tp = trnn.pack_padded_sequence(tx, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=enforce_sorted)
    np.testing.assert_array_equal(dp.data.data, tp.data.detach().numpy())
    np.testing.assert_array_equal(dp.batch_sizes.data, tp.batch_sizes.numpy())
    assert dp.batch_sizes.dtype == np.int64
    for a, b in ((dp.sorted_indices, tp.sorted_indices), (dp.unsorted_indices, tp.unsorted_indices)):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a.data, b.numpy())
    for total, value in ((None, 0.0), (T + 2, 9.0)):
        d_pad, d_len = drnn.pad_packed_sequence(dp, batch_first=batch_first, padding_value=value, total_length=total)
        t_pad, t_len = trnn.pad_packed_sequence(tp, batch_first=batch_first, padding_value=value, total_length=total)
        np.testing.assert_array_equal(d_pad.data, t_pad.detach().numpy())
        np.testing.assert_array_equal(d_len.data, t_len.numpy())
    _grad_check(d_pad, t_pad, [dx], [tx])


@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_pack_sequence_unpack_unpad(enforce_sorted):
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal((n, I)) for n in ((5, 3, 3, 1) if enforce_sorted else (2, 5, 1, 3))]
    d_in, t_in = zip(*(twins(a) for a in arrays))
    dp = drnn.pack_sequence(d_in, enforce_sorted=enforce_sorted)
    tp = trnn.pack_sequence(t_in, enforce_sorted=enforce_sorted)
    np.testing.assert_array_equal(dp.data.data, tp.data.detach().numpy())
    d_seqs, t_seqs = drnn.unpack_sequence(dp), trnn.unpack_sequence(tp)
    for a, b in zip(d_seqs, t_seqs, strict=True):
        np.testing.assert_array_equal(a.data, b.detach().numpy())
    _grad_check(dn.cat(d_seqs), torch.cat(t_seqs), d_in, t_in)
    padded = np.random.default_rng(3).standard_normal((5, 4, 2))
    lengths = [5, 2, 4, 1]
    # torch's unpad_sequence transposes its input in place when batch_first=False: give it a copy
    d_seqs = drnn.unpad_sequence(dn.tensor(padded), lengths)
    t_seqs = trnn.unpad_sequence(torch.tensor(padded), torch.tensor(lengths))
    for a, b in zip(d_seqs, t_seqs, strict=True):
        np.testing.assert_array_equal(a.data, b.numpy())
    d_pad, t_pad = twins(padded.transpose(1, 0, 2).copy())
    d_seqs = drnn.unpad_sequence(d_pad, lengths, batch_first=True)
    t_seqs = trnn.unpad_sequence(t_pad, torch.tensor(lengths), batch_first=True)
    _grad_check(dn.cat(d_seqs), torch.cat(t_seqs), [d_pad], [t_pad])


def test_packed_sequence_tuple_and_to():
    packed = drnn.pack_sequence([dn.ones(3, 2), dn.ones(1, 2)])
    data, batch_sizes, sorted_indices, unsorted_indices = packed
    assert packed._fields == ("data", "batch_sizes", "sorted_indices", "unsorted_indices")
    assert sorted_indices is None and unsorted_indices is None and batch_sizes.data.tolist() == [2, 1, 1]
    assert packed.to(dn.float64).data.dtype == np.float64 and packed.double().batch_sizes is batch_sizes
    rebuilt = drnn.PackedSequence(data, batch_sizes, dn.tensor([1, 0]))
    assert rebuilt.unsorted_indices.data.tolist() == [1, 0]
    assert not packed.is_cuda


def test_utils_errors():
    x = dn.zeros(T, 3, I)
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order when `enforce_sorted` is True"):
        drnn.pack_padded_sequence(x, [2, 3, 1])
    with pytest.raises(RuntimeError, match="Length of all samples has to be greater than 0"):
        drnn.pack_padded_sequence(x, [3, 2, 0])
    with pytest.raises(RuntimeError, match=r"Expected `len\(lengths\)` to be equal to batch_size, but got 2 "
                                           r"\(batch_size=3\)"):
        drnn.pack_padded_sequence(x, [3, 2])
    with pytest.raises(ValueError, match=r"a length of 7 exceeds the 6 time steps"):
        drnn.pack_padded_sequence(x, [7, 2, 1])
    packed = drnn.pack_padded_sequence(x, [5, 2, 1])
    with pytest.raises(ValueError, match="got total_length=3 and max sequence length being 5"):
        drnn.pad_packed_sequence(packed, total_length=3)
    with pytest.raises(ValueError, match="Expected padding_side to be one of left or right"):
        drnn.pad_sequence([dn.zeros(2)], padding_side="top")
    with pytest.raises(RuntimeError, match=r"sequence 1 has shape \(2, 3\)"):
        drnn.pad_sequence([dn.zeros(2, 2), dn.zeros(2, 3)])


# ----------------------------------------------------------------------------- layers on PackedSequence
PACKED_GRID = list(itertools.product(MODES, (True, False), (False, True), (1, 2), (False, True)))


@pytest.mark.parametrize("mode,enforce_sorted,bidirectional,layers,with_state", PACKED_GRID)
def test_layer_on_packed_sequence(mode, enforce_sorted, bidirectional, layers, with_state):
    lengths = SORTED if enforce_sorted else UNSORTED
    for dtype in (np.float64, np.float32):
        ours, theirs = make_pair(mode, dtype, I, H, layers, bidirectional=bidirectional)
        x = np.random.default_rng(4).standard_normal((T, len(lengths), I)).astype(dtype)
        hx = initial_states(mode, ((2 if bidirectional else 1) * layers, len(lengths), H), dtype) if with_state \
            else None

        def run(layer, a, h, utils):
            packed = utils.pack_padded_sequence(a, lengths, enforce_sorted=enforce_sorted)
            out, state = layer(packed, h)
            assert type(out).__name__ == "PackedSequence"
            return [out.data, *(state if isinstance(state, tuple) else (state,))]

        compare(ours, theirs, x, hx, dtype, run_ours=lambda m, a, h: run(m, a, h, drnn),
                run_theirs=lambda m, a, h: run(m, a, h, trnn))


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
def test_lstm_projection_on_packed_sequence():
    ours, theirs = make_pair("LSTM", np.float64, I, H, 2, bidirectional=True, proj_size=2)
    x = np.random.default_rng(4).standard_normal((T, len(UNSORTED), I))
    hx = (np.random.default_rng(5).standard_normal((4, len(UNSORTED), 2)),
          np.random.default_rng(6).standard_normal((4, len(UNSORTED), H)))

    def run(layer, a, h, utils):
        out, (h_n, c_n) = layer(utils.pack_padded_sequence(a, UNSORTED, enforce_sorted=False), h)
        return [out.data, h_n, c_n]

    compare(ours, theirs, x, hx, np.float64, run_ours=lambda m, a, h: run(m, a, h, drnn),
            run_theirs=lambda m, a, h: run(m, a, h, trnn))


def test_packed_with_equal_lengths_and_one_sequence():
    for lengths in ([T, T, T], [4]):
        ours, theirs = make_pair("LSTM", np.float64, I, H, 2, bidirectional=True)
        x = np.random.default_rng(5).standard_normal((T, len(lengths), I))

        def run(layer, a, h, utils, lengths=lengths):
            out, (h_n, c_n) = layer(utils.pack_padded_sequence(a, lengths))
            return [out.data, h_n, c_n]

        compare(ours, theirs, x, None, np.float64, run_ours=lambda m, a, h: run(m, a, h, drnn),
                run_theirs=lambda m, a, h: run(m, a, h, trnn))


# ----------------------------------------------------------------------------- lengths= extension
LENGTHS_GRID = list(itertools.product(MODES, (False, True), (False, True), (SORTED, UNSORTED), (False, True)))


@pytest.mark.parametrize("mode,batch_first,bidirectional,lengths,with_state", LENGTHS_GRID)
def test_lengths_equals_pack_layer_pad(mode, batch_first, bidirectional, lengths, with_state):
    for dtype in (np.float64, np.float32):
        ours, theirs = make_pair(mode, dtype, I, H, 2, bidirectional=bidirectional, batch_first=batch_first)
        shape = (len(lengths), T, I) if batch_first else (T, len(lengths), I)
        x = np.random.default_rng(6).standard_normal(shape).astype(dtype)
        hx = initial_states(mode, ((2 if bidirectional else 1) * 2, len(lengths), H), dtype) if with_state else None

        def theirs_run(layer, a, h):
            packed = trnn.pack_padded_sequence(a, lengths, batch_first=batch_first, enforce_sorted=False)
            out, state = layer(packed, h)
            padded, _ = trnn.pad_packed_sequence(out, batch_first=batch_first, total_length=T)
            return [padded, *(state if isinstance(state, tuple) else (state,))]

        def ours_run(layer, a, h):
            out, state = layer(a, h, lengths=dn.tensor(lengths))
            return [out, *(state if isinstance(state, tuple) else (state,))]

        compare(ours, theirs, x, hx, dtype, run_ours=ours_run, run_theirs=theirs_run)


@pytest.mark.parametrize("mode", MODES)
def test_lengths_all_shorter_than_the_input(mode):
    """No sequence reaches the last steps: those steps run on no rows and output zeros."""
    lengths = [2, 4, 3]
    ours, theirs = make_pair(mode, np.float64, I, H, 2, bidirectional=True, batch_first=True)
    x = np.random.default_rng(7).standard_normal((len(lengths), T, I))

    def theirs_run(layer, a, h):
        out, state = layer(trnn.pack_padded_sequence(a, lengths, batch_first=True, enforce_sorted=False), h)
        return [trnn.pad_packed_sequence(out, batch_first=True, total_length=T)[0],
                *(state if isinstance(state, tuple) else (state,))]

    def ours_run(layer, a, h):
        out, state = layer(a, h, lengths=lengths)
        return [out, *(state if isinstance(state, tuple) else (state,))]

    compare(ours, theirs, x, None, np.float64, run_ours=ours_run, run_theirs=theirs_run)


def test_full_lengths_equal_no_lengths_and_packed_rejects_lengths():
    ours, _ = make_pair("GRU", np.float64, I, H, bidirectional=True)
    x = dn.randn(T, 3, I, dtype=dn.float64)
    a, ha = ours(x)
    b, hb = ours(x, lengths=[T, T, T])
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(ha.data, hb.data)
    with pytest.raises(ValueError, match="lengths= is for padded inputs"):
        ours(drnn.pack_sequence([x[:, 0]]), lengths=[T])
