"""Variable-length batches for recurrent layers, as ``torch.nn.utils.rnn``.

A padded batch stores sequences of different lengths in one (T, N, *) array (or (N, T, *) with
``batch_first``), the tails filled with a padding value. A ``PackedSequence`` stores only the valid
steps, time-major: first the first step of every sequence, then the second step of every sequence
that is at least two long, and so on. With the batch sorted by decreasing length, the sequences still
running at step t are always the first ``batch_sizes[t]`` ones, so ``data`` is the concatenation of
the (batch_sizes[t], *) blocks. ``sorted_indices`` records the sorting (``sorted[i] =
original[sorted_indices[i]]``) and ``unsorted_indices`` its inverse.

Every conversion is one differentiable ``index_select`` (gradients flow through packing and padding).
"""
from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepnum.creation import full, tensor
from deepnum.functional.array import reshape, transpose
from deepnum.functional.indexing import index_select
from deepnum.functional.joining import cat
from deepnum.tensor import Tensor

__all__ = ["PackedSequence", "pack_padded_sequence", "pack_sequence", "pad_packed_sequence", "pad_sequence",
           "unpack_sequence", "unpad_sequence", "invert_permutation"]

_UNSORTED = ("`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. You can pass "
             "`enforce_sorted=False` to pack_padded_sequence and/or pack_sequence to sidestep this requirement "
             "if you do not need ONNX exportability.")


def host(value: Any) -> np.ndarray:
    """A NumPy copy of an index tensor or array (lengths and permutations live on the host)."""
    data = value.data if isinstance(value, Tensor) else value
    return np.asarray(data.get() if hasattr(data, "get") and not isinstance(data, np.ndarray) else data)


def invert_permutation(permutation: Tensor | None) -> Tensor | None:
    """The inverse permutation: ``out[permutation[i]] = i``."""
    if permutation is None:
        return None
    p = host(permutation)
    out = np.empty_like(p)
    out[p] = np.arange(p.size, dtype=p.dtype)
    return tensor(out)


class PackedSequence(namedtuple("PackedSequence_", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """Packed variable-length batch: ``data`` (sum of lengths, *) time-major, ``batch_sizes`` (int64,
    one count per time step), ``sorted_indices`` / ``unsorted_indices`` (None when the batch was
    already sorted). Build one with ``pack_padded_sequence`` or ``pack_sequence``."""

    __slots__ = ()

    def __new__(cls, data: Tensor, batch_sizes: Tensor | None = None, sorted_indices: Tensor | None = None,
                unsorted_indices: Tensor | None = None) -> PackedSequence:
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        if batch_sizes is None:
            raise ValueError("PackedSequence: batch_sizes is required (build one with pack_padded_sequence "
                             "or pack_sequence)")
        if not isinstance(batch_sizes, Tensor):
            batch_sizes = tensor(np.asarray(batch_sizes, dtype=np.int64))
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args: Any, **kwargs: Any) -> PackedSequence:
        """Move or cast ``data`` (the index tensors move with it and keep their integer dtype)."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        indices = [None if t is None else t.to(device=data.device) for t in (self.sorted_indices,
                                                                              self.unsorted_indices)]
        return type(self)(data, self.batch_sizes, *indices)

    def cpu(self) -> PackedSequence:
        return self.to("cpu")

    def cuda(self) -> PackedSequence:
        return self.to("cuda")

    def double(self) -> PackedSequence:
        return self.to("float64")

    def float(self) -> PackedSequence:
        return self.to("float32")

    @property
    def is_cuda(self) -> bool:
        return self.data.device == "cuda"


# ----------------------------------------------------------------------------- index maps
def _int_lengths(lengths: Any, what: str) -> np.ndarray:
    try:
        arr = host(lengths)
    except Exception as err:
        raise TypeError(f"{what}: lengths must be a 1-D sequence or tensor of integers, got {type(lengths).__name__}")\
            from err
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(f"{what}: lengths must be a 1-D sequence of integers, got shape {arr.shape} "
                         f"and dtype {arr.dtype}")
    return arr.astype(np.int64)


def batch_sizes_of(lengths: np.ndarray) -> np.ndarray:
    """From lengths sorted in decreasing order: how many sequences are running at each step."""
    return (lengths[None, :] > np.arange(int(lengths[0]))[:, None]).sum(1).astype(np.int64)


def _valid(batch_sizes: np.ndarray, steps: int, batch: int) -> np.ndarray:
    """(steps, batch) mask of the valid (t, b) positions of a sorted padded batch."""
    mask = np.zeros((steps, batch), dtype=bool)
    mask[:len(batch_sizes)] = np.arange(batch)[None, :] < batch_sizes[:, None]
    return mask


def padded_to_packed(padded: Tensor, batch_sizes: np.ndarray) -> Tensor:
    """Time-major sorted (T, N, *) → packed data (sum(batch_sizes), *)."""
    steps, batch = padded.shape[:2]
    flat = reshape(padded, (steps * batch,) + tuple(padded.shape[2:]))
    return index_select(flat, 0, np.flatnonzero(_valid(batch_sizes, steps, batch)))


def packed_to_padded(data: Tensor, batch_sizes: np.ndarray, steps: int, padding_value: float = 0.0) -> Tensor:
    """Packed data → time-major sorted (steps, N, *), invalid positions = ``padding_value``."""
    batch = int(batch_sizes[0])
    mask = _valid(batch_sizes, steps, batch)
    rows = np.full(mask.shape, data.shape[0], dtype=np.int64)  # index of the padding row
    rows[mask] = np.arange(data.shape[0])
    pad = full((1,) + tuple(data.shape[1:]), padding_value, dtype=data.dtype, device=data.device)
    picked = index_select(cat([data, pad], 0), 0, rows.reshape(-1))
    return reshape(picked, (steps, batch) + tuple(data.shape[1:]))


# ----------------------------------------------------------------------------- the public functions
def pack_padded_sequence(input: Tensor, lengths: Any, batch_first: bool = False,  # noqa: A002
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch (T, N, *) (or (N, T, *) with ``batch_first``) whose sequence b has
    ``lengths[b]`` valid steps. With ``enforce_sorted`` the lengths must be decreasing; otherwise
    the batch is sorted here and ``sorted_indices`` remembers how."""
    if input.ndim < 2:
        raise ValueError(f"pack_padded_sequence: expected an input with at least 2 dims (T, N, *), got shape "
                         f"{tuple(input.shape)}")
    lengths = _int_lengths(lengths, "pack_padded_sequence")
    batch_dim = 0 if batch_first else 1
    batch, steps = input.shape[batch_dim], input.shape[1 - batch_dim]
    sorted_indices = None
    if enforce_sorted:
        if np.any(lengths[:-1] < lengths[1:]):
            raise RuntimeError(_UNSORTED)
    else:
        order = np.argsort(-lengths, kind="stable")
        sorted_indices = tensor(order)
        lengths = lengths[order]
        if len(order) == batch:
            input = index_select(input, batch_dim, order)  # noqa: A001
    if len(lengths) != batch:
        raise RuntimeError(f"Expected `len(lengths)` to be equal to batch_size, but got {len(lengths)} "
                           f"(batch_size={batch})")
    if batch == 0 or lengths[-1] <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an element in 'lengths' "
                           "that is <= 0")
    if lengths[0] > steps:
        raise ValueError(f"pack_padded_sequence: a length of {int(lengths[0])} exceeds the {steps} time steps of "
                         f"the input of shape {tuple(input.shape)} (batch_first={batch_first})")
    if batch_first:
        input = transpose(input, 0, 1)  # noqa: A001
    batch_sizes = batch_sizes_of(lengths)
    return PackedSequence(padded_to_packed(input, batch_sizes), tensor(batch_sizes), sorted_indices, None)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: int | None = None) -> tuple[Tensor, Tensor]:
    """Inverse of ``pack_padded_sequence``: (padded batch, lengths), in the original batch order.
    ``total_length`` pads to that many steps (at least the longest sequence)."""
    batch_sizes = host(sequence.batch_sizes).astype(np.int64)
    longest = len(batch_sizes)
    if total_length is not None and total_length < longest:
        raise ValueError("Expected total_length to be at least the length of the longest sequence in input, but "
                         f"got total_length={total_length} and max sequence length being {longest}")
    steps = longest if total_length is None else total_length
    padded = packed_to_padded(sequence.data, batch_sizes, steps, padding_value)
    lengths = (batch_sizes[:, None] > np.arange(int(batch_sizes[0]))[None, :]).sum(0).astype(np.int64)
    if sequence.unsorted_indices is not None:
        unsorted = host(sequence.unsorted_indices)
        padded = index_select(padded, 1, unsorted)
        lengths = lengths[unsorted]
    return (transpose(padded, 0, 1) if batch_first else padded), tensor(lengths)


def pad_sequence(sequences: Sequence[Tensor], batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack tensors of shapes (L_i, *) into (max L, N, *) (or (N, max L, *) with ``batch_first``),
    padding each at the end (``padding_side='right'``) or at the start ('left')."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    sequences = list(sequences.unbind(0) if isinstance(sequences, Tensor) else sequences)
    if not sequences:
        raise RuntimeError("pad_sequence: received an empty list of sequences")
    trailing = tuple(sequences[0].shape[1:])
    for i, s in enumerate(sequences):
        if s.ndim == 0 or tuple(s.shape[1:]) != trailing:
            raise RuntimeError(f"pad_sequence: every sequence needs the shape (L, {', '.join(map(str, trailing))})"
                               f" of sequence 0's trailing dims, but sequence {i} has shape {tuple(s.shape)}")
    lengths = np.array([s.shape[0] for s in sequences], dtype=np.int64)
    longest, total = int(lengths.max()), int(lengths.sum())
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    pos = np.arange(longest)[None, :]
    offset = (longest - lengths)[:, None] if padding_side == "left" else 0
    valid = (pos >= offset) & (pos < offset + lengths[:, None])
    rows = np.where(valid, starts[:, None] + pos - offset, total)  # (N, max L); `total` is the padding row
    data = cat(sequences, 0)
    pad = full((1,) + trailing, padding_value, dtype=data.dtype, device=data.device)
    out = reshape(index_select(cat([data, pad], 0), 0, rows.reshape(-1)), (len(sequences), longest) + trailing)
    return out if batch_first else transpose(out, 0, 1)


def pack_sequence(sequences: Sequence[Tensor], enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of (L_i, *) tensors (``enforce_sorted``: decreasing lengths required)."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpad_sequence(padded_sequences: Tensor, lengths: Any, batch_first: bool = False) -> list[Tensor]:
    """Split a padded batch back into its (L_i, *) sequences."""
    lengths = _int_lengths(lengths, "unpad_sequence")
    padded = padded_sequences if batch_first else transpose(padded_sequences, 0, 1)
    if len(lengths) != padded.shape[0] or (lengths.size and lengths.max() > padded.shape[1]):
        raise ValueError(f"unpad_sequence: lengths {lengths.tolist()} do not fit a padded batch of shape "
                         f"{tuple(padded_sequences.shape)} (batch_first={batch_first})")
    return [padded[i][:int(n)] for i, n in enumerate(lengths)]


def unpack_sequence(packed_sequences: PackedSequence) -> list[Tensor]:
    """The list of (L_i, *) sequences of a PackedSequence, in the original order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
