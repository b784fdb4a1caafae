"""Joining and cutting along dims: cat/stack and their adjoints split/unbind, chunk, narrow and pad.

Each pair is adjoint: the gradient of a concatenation is the split of the gradient and vice versa,
the gradient of a pad is a crop and vice versa, so backward passes are built from these same ops
and higher-order gradients come for free.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deepnum.autograd.function import Function
from deepnum.backend import get_array_module
from deepnum.functional._operands import promote
from deepnum.functional.array import _dim, clone
from deepnum.tensor import Tensor

__all__ = ["cat", "concat", "stack", "split", "chunk", "unbind", "narrow", "pad"]


def _promoted(tensors: Sequence[Tensor], op: str) -> list[Tensor]:
    """Every tensor cast to their common dtype (PyTorch's promotion for cat and stack)."""
    if isinstance(tensors, Tensor) or not len(tensors):
        raise TypeError(f"{op}: expected a non-empty sequence of Tensors")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected a Tensor at entry {i}, got {type(t).__name__}")
    return promote(*tensors) if len(tensors) > 1 else list(tensors)


class Cat(Function):
    """Join along ``dim``; the gradient is split back into the input sizes. Legacy empty tensors of
    shape (0,) are skipped, as in PyTorch, and get an empty gradient."""

    saves_inputs = False

    def __init__(self, dim: int, skip: tuple[bool, ...]):
        self.dim, self.skip = dim, skip

    def forward(self, *xs):
        self.sizes = [x.shape[self.dim] for x, s in zip(xs, self.skip) if not s]
        return get_array_module(xs[0]).concatenate([x for x, s in zip(xs, self.skip) if not s], axis=self.dim)

    def backward(self, gy):
        parts = iter(split(gy, self.sizes, self.dim))
        grads = []
        for skipped, need in zip(self.skip, self.needs_input_grad):
            part = None if skipped else next(parts)
            if skipped and need:
                part = Tensor._make(get_array_module(gy.data).zeros((0,), dtype=gy.dtype))
            grads.append(part if need else None)
        return tuple(grads)


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Concatenate along an existing dim; mixed dtypes promote, as in PyTorch."""
    tensors = _promoted(tensors, "cat")
    shapes = [tuple(t.shape) for t in tensors]
    ref = next((i for i, s in enumerate(shapes) if s != (0,)), 0)
    for i, s in enumerate(shapes):
        if not s:
            raise RuntimeError(f"cat: the zero-dimensional tensor at entry {i} cannot be concatenated")
    d = _dim(dim, len(shapes[ref]), "cat")
    skip = tuple(s == (0,) and len(shapes[ref]) > 1 for s in shapes)
    for i, s in enumerate(shapes):
        if skip[i]:
            continue
        if len(s) != len(shapes[ref]) or s[:d] + s[d + 1:] != shapes[ref][:d] + shapes[ref][d + 1:]:
            raise RuntimeError(f"cat: sizes of tensors must match except in dim {dim}, but got shape "
                               f"{shapes[ref]} at entry {ref} and shape {s} at entry {i}")
    return Cat(d, skip)(*tensors)


concat = cat


class Stack(Function):
    """Join equal-shaped tensors along a new axis ``dim``; the gradient unbinds that axis."""

    saves_inputs = False

    def __init__(self, dim: int):
        self.dim = dim

    def forward(self, *xs):
        return get_array_module(xs[0]).stack(xs, axis=self.dim)

    def backward(self, gy):
        return tuple(g if need else None for g, need in zip(unbind(gy, self.dim), self.needs_input_grad))


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Stack equal-shaped tensors along a new dim; mixed dtypes promote, as in PyTorch."""
    tensors = _promoted(tensors, "stack")
    first = tuple(tensors[0].shape)
    for i, t in enumerate(tensors):
        if tuple(t.shape) != first:
            raise RuntimeError(f"stack: expects each tensor to be equal size, but got shape {first} at "
                               f"entry 0 and shape {tuple(t.shape)} at entry {i} (dim {dim})")
    return Stack(_dim(dim, len(first) + 1, "stack"))(*tensors)


class Split(Function):
    """Cut along ``dim`` into pieces of the given sizes (views). The gradient concatenates the
    pieces' gradients; the engine passes zeros for the pieces that were not used."""

    saves_inputs = False

    def __init__(self, sizes: Sequence[int], dim: int):
        self.sizes, self.dim = tuple(sizes), dim

    def forward(self, x):
        lead = (slice(None),) * self.dim
        ends = np.cumsum(self.sizes).tolist()
        return tuple(x[lead + (slice(end - size, end),)] for size, end in zip(self.sizes, ends))

    def backward(self, *grads):
        return cat(grads, self.dim)


def split(tensor: Tensor, split_size_or_sections: int | Sequence[int], dim: int = 0) -> tuple[Tensor, ...]:
    """Pieces of ``split_size`` along ``dim`` (the last may be smaller), or of the listed sizes."""
    if tensor.ndim == 0:
        raise RuntimeError("split: expects at least a 1-dimensional tensor, got a 0-d tensor")
    d = _dim(dim, tensor.ndim, "split")
    n = tensor.shape[d]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        if size < 0 or (size == 0 and n != 0):
            raise RuntimeError(f"split: split_size {size} does not fit dim {dim} of size {n} "
                               f"(shape {tuple(tensor.shape)})")
        sizes = [size] * (n // size) + ([n % size] if n % size else []) if n else [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if any(s < 0 for s in sizes) or sum(sizes) != n:
            raise RuntimeError(f"split: split sizes {sizes} must be non-negative and sum exactly to {n}, "
                               f"the size of dim {dim} of the input of shape {tuple(tensor.shape)}")
    return Split(sizes, d)(tensor)


def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """Split into ``chunks`` pieces of size ceil(n / chunks) (fewer pieces when they run out)."""
    if chunks <= 0:
        raise RuntimeError(f"chunk: expects `chunks` to be greater than 0, got {chunks}")
    if input.ndim == 0:
        raise RuntimeError("chunk: expects at least a 1-dimensional tensor, got a 0-d tensor")
    n = input.shape[_dim(dim, input.ndim, "chunk")]
    return split(input, [0] * chunks if n == 0 else -(-n // chunks), dim)


class Unbind(Function):
    """The slices x[..., i, ...] along ``dim`` (views); the gradient stacks them back."""

    saves_inputs = False

    def __init__(self, dim: int):
        self.dim = dim

    def forward(self, x):
        lead = (slice(None),) * self.dim
        return tuple(x[lead + (i,)] for i in range(x.shape[self.dim]))

    def backward(self, *grads):
        return stack(grads, self.dim)


def unbind(input: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
    """Remove ``dim``, returning every slice along it."""
    if input.ndim == 0:
        raise IndexError("unbind: dim 0 given but the tensor is 0-d")
    return Unbind(_dim(dim, input.ndim, "unbind"))(input)


class ConstantPad(Function):
    """Pad each axis with ``value`` where a width is positive and crop it where a width is negative.
    The gradient applies the opposite widths with zeros: it crops what was padded and zero-pads what
    was cropped (so narrow's gradient is a zero pad and the pad's gradient is a narrow)."""

    saves_inputs = False

    def __init__(self, widths: Sequence[tuple[int, int]], value: Any = 0):
        self.widths, self.value = tuple(widths), value

    def forward(self, x):
        crop = tuple(slice(max(-a, 0), n - max(-b, 0)) for n, (a, b) in zip(x.shape, self.widths))
        x = x[crop]
        grow = [(max(a, 0), max(b, 0)) for a, b in self.widths]
        if any(a or b for a, b in grow):
            x = get_array_module(x).pad(x, grow, mode="constant", constant_values=self.value)
        return x

    def backward(self, gy):
        return ConstantPad([(-a, -b) for a, b in self.widths])(gy)


def _runs(idx: np.ndarray) -> list[tuple[int, int, int]]:
    """Cut an index map into runs (start, stop, step) whose indices step by -1, 0 or +1."""
    runs, start = [], 0
    while start < len(idx):
        step = int(idx[start + 1] - idx[start]) if start + 1 < len(idx) else 1
        step = step if step in (-1, 0, 1) else 1
        stop = start + 1
        while stop < len(idx) and idx[stop] - idx[stop - 1] == step:
            stop += 1
        runs.append((start, stop, step))
        start = stop
    return runs


class IndexPad(Function):
    """y = x[..., idx, ...] along each padded axis in turn, where idx maps output positions to the
    input positions they copy (reflect, replicate, circular). The gradient adds every output slice
    back to its source: IndexPadGrad."""

    saves_inputs = False

    def __init__(self, maps: Sequence[tuple[int, np.ndarray, int]]):
        self.maps = tuple(maps)

    def forward(self, x):
        xp = get_array_module(x)
        for axis, idx, _ in self.maps:
            x = xp.take(x, xp.asarray(idx), axis=axis)
        return x

    def backward(self, gy):
        return IndexPadGrad(self.maps)(gy)


class IndexPadGrad(Function):
    """The adjoint of IndexPad: scatter-add along each axis, in reverse order. Runs of the index map
    with step ±1 add whole slices, runs with step 0 (replicate) add their sum. Its own gradient is
    IndexPad, so higher derivatives work."""

    saves_inputs = False

    def __init__(self, maps: Sequence[tuple[int, np.ndarray, int]]):
        self.maps = tuple(maps)

    def forward(self, gy):
        xp = get_array_module(gy)
        for axis, idx, n in reversed(self.maps):
            g = xp.zeros(gy.shape[:axis] + (n,) + gy.shape[axis + 1:], dtype=gy.dtype)
            gm, gym = xp.moveaxis(g, axis, 0), xp.moveaxis(gy, axis, 0)
            for start, stop, step in _runs(idx):
                first, last = int(idx[start]), int(idx[stop - 1])
                if step == 0:
                    gm[first] += gym[start:stop].sum(axis=0)
                elif step == 1:
                    gm[first:last + 1] += gym[start:stop]
                else:
                    gm[last:first + 1] += gym[start:stop][::-1]
            gy = g
        return gy

    def backward(self, ggx):
        return IndexPad(self.maps)(ggx)


def _index_map(mode: str, n: int, before: int, after: int) -> np.ndarray:
    """For each output position along one axis, the input position it copies."""
    if mode == "circular":  # torch crops first, then wraps around what is left
        lo, hi = max(-before, 0), n - max(-after, 0)
        return lo + np.arange(-max(before, 0), hi - lo + max(after, 0)) % (hi - lo)
    coords = np.arange(-before, n + after)
    if mode == "replicate":
        return np.clip(coords, 0, n - 1)
    period = 2 * (n - 1)  # reflect about the edges, without repeating them
    folded = np.abs(coords) % period if period else np.zeros_like(coords)
    return np.where(folded >= n, period - folded, folded)


def _check_index_pad(input: Tensor, pad: tuple[int, ...], mode: str) -> None:
    k = len(pad) // 2
    if len(pad) not in (2, 4, 6) or input.ndim not in (k + 1, k + 2):
        raise NotImplementedError(f"pad: padding of length {len(pad)} in mode {mode!r} is not supported for "
                                  f"an input of shape {tuple(input.shape)}; it pads the last 1, 2 or 3 dims "
                                  "of an input with one or two more dims (channels, batch)")
    if any(s == 0 for s in input.shape[input.ndim - k - 1:]):
        raise RuntimeError(f"pad: mode {mode!r} needs non-empty dims other than the batch dim, got shape "
                           f"{tuple(input.shape)}")
    for i in range(k):
        n, before, after = input.shape[-1 - i], pad[2 * i], pad[2 * i + 1]
        if n + before + after <= 0:
            raise RuntimeError(f"pad: input of shape {tuple(input.shape)} is too small for padding {pad}")
        if mode == "reflect" and max(before, after) >= n:
            raise RuntimeError(f"pad: in reflect mode the padding must be smaller than the dim, but got "
                               f"padding ({before}, {after}) at dim {input.ndim - 1 - i} of shape "
                               f"{tuple(input.shape)}")
        kept = n - max(-before, 0) - max(-after, 0)
        if mode == "circular" and (kept <= 0 or max(before, after) > kept):
            raise RuntimeError(f"pad: in circular mode padding ({before}, {after}) wraps around dim "
                               f"{input.ndim - 1 - i} of shape {tuple(input.shape)} more than once")


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Tensor:
    """``torch.nn.functional.pad``: ``pad`` lists (before, after) widths starting from the last dim.
    'constant' fills with ``value`` (0 by default) and crops where a width is negative; 'reflect'
    mirrors without repeating the edge, 'replicate' repeats the edge, 'circular' wraps around."""
    widths = tuple(int(p) for p in pad)
    if len(widths) % 2:
        raise RuntimeError(f"pad: padding length must be divisible by 2, got {len(widths)}")
    if len(widths) > 2 * input.ndim:
        raise RuntimeError(f"pad: padding length {len(widths)} is more than twice the dims of the input "
                           f"of shape {tuple(input.shape)}")
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise NotImplementedError(f"pad: unrecognised padding mode {mode!r}")
    k = len(widths) // 2
    per_dim = [(widths[2 * i], widths[2 * i + 1]) for i in range(k)][::-1]
    if mode == "constant":
        full = [(0, 0)] * (input.ndim - k) + per_dim
        for d, (n, (a, b)) in enumerate(zip(input.shape, full)):
            if n + a + b < 0:
                raise RuntimeError(f"pad: padding ({a}, {b}) gives a negative size for dim {d} of the input "
                                   f"of shape {tuple(input.shape)}")
        if all(a == 0 and b == 0 for a, b in full):
            return clone(input)
        return ConstantPad(full, 0 if value is None else value)(input)
    _check_index_pad(input, widths, mode)
    first = input.ndim - k
    maps = [(first + i, _index_map(mode, input.shape[first + i], a, b), input.shape[first + i])
            for i, (a, b) in enumerate(per_dim) if a or b]
    return IndexPad(maps)(input) if maps else clone(input)


def narrow(input: Tensor, dim: int, start: int | Tensor, length: int) -> Tensor:
    """The slice [start, start + length) of ``dim`` (a view; negative start counts from the end)."""
    if input.ndim == 0:
        raise RuntimeError("narrow: cannot be applied to a 0-d tensor")
    d = _dim(dim, input.ndim, "narrow")
    n, start = input.shape[d], int(start)
    if not -n <= start <= n:
        raise IndexError(f"narrow: start {start} is out of range for dim {dim} of size {n}")
    start = start % n if n and start < 0 else start
    if length < 0 or start + length > n:
        raise RuntimeError(f"narrow: start ({start}) + length ({length}) exceeds the size {n} of dim {dim} "
                           f"of the input of shape {tuple(input.shape)}")
    widths = [(0, 0)] * input.ndim
    widths[d] = (-start, -(n - start - length))
    return ConstantPad(widths)(input)
