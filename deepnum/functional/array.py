"""Shape and storage ops: reshape, broadcast, transpose, cast, and the joining/cutting family (cat,
stack, split, unbind, pad, ...). Most are views in NumPy, and their backward is the adjoint
rearrangement of the gradient: reshape back, transpose back, sum what broadcasting or tiling
repeated, split what was concatenated, crop what was padded. Adjoint pairs (Cat/Split,
Stack/Unbind, pad/crop) use each other in backward, so every order of derivative is available."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepnum import backend
from deepnum.autograd.function import Function
from deepnum.backend import get_array_module
from deepnum.tensor import Tensor

__all__ = [
    "reshape", "flatten", "squeeze", "unsqueeze", "transpose", "permute", "expand", "broadcast_to",
    "sum_to", "cast", "to_device", "clone", "repeat", "flip", "roll", "tril", "triu", "movedim",
    "swapaxes", "swapdims",
]


def _shape_arg(shape: tuple) -> tuple[int, ...]:
    """Accept ``f(2, 3)`` and ``f((2, 3))`` alike, as PyTorch does."""
    if len(shape) == 1 and isinstance(shape[0], tuple | list):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _dim(dim: int, ndim: int, op: str) -> int:
    """``dim`` wrapped into [0, ndim); a 0-d tensor accepts 0 and -1, as in PyTorch."""
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor of {ndim} dimensions "
                         f"(expected a dim in [{-n}, {n - 1}])")
    return dim % n


def _dims(dims: Any, ndim: int, op: str) -> tuple[int, ...]:
    """An int or a sequence of dims, wrapped, with repeats refused."""
    dims = tuple(dims) if isinstance(dims, tuple | list) else (dims,)
    wrapped = tuple(_dim(int(d), ndim, op) for d in dims)
    if len(set(wrapped)) != len(wrapped):
        raise RuntimeError(f"{op}: dim {dims} names the same dimension more than once")
    return wrapped


class Reshape(Function):
    """The same elements, row-major, in a new shape; the gradient is reshaped back."""

    saves_inputs = False

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return reshape(gy, self.in_shape)


def _infer_shape(shape: tuple[int, ...], in_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Replace the one -1 in ``shape`` by what makes the element count match, or explain the misfit."""
    size = math.prod(in_shape)
    where = f"reshape: shape {list(shape)} is invalid for input of shape {tuple(in_shape)} ({size} elements)"
    if shape.count(-1) > 1:
        raise RuntimeError(f"{where}: only one dimension can be inferred")
    if any(s < -1 for s in shape):
        raise RuntimeError(f"{where}: negative dimension")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if known == 0 or size % known:
            raise RuntimeError(f"{where}: the -1 dimension cannot be inferred")
        return tuple(size // known if s == -1 else s for s in shape)
    if known != size:
        raise RuntimeError(where)
    return shape


def reshape(input: Tensor, *shape: Any) -> Tensor:
    """The same elements in a new shape (one dimension may be -1)."""
    shape = _infer_shape(_shape_arg(shape), input.shape)
    if shape == input.shape:
        return input
    return Reshape(shape)(input)


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dimensions start_dim..end_dim into one (a 0-d tensor becomes shape (1,))."""
    start, end = _dim(start_dim, input.ndim, "flatten"), _dim(end_dim, input.ndim, "flatten")
    if input.ndim == 0:
        return reshape(input, 1)
    if start > end:
        raise RuntimeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} "
                           f"for a tensor of shape {tuple(input.shape)}")
    shape = input.shape
    return reshape(input, shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:])


def squeeze(input: Tensor, dim: int | tuple[int, ...] | None = None) -> Tensor:
    """Drop size-1 dimensions (only those in ``dim`` when given; others are left alone, as PyTorch)."""
    if dim is None:
        dims = {i for i, s in enumerate(input.shape) if s == 1}
    else:
        dims = {d for d in _dims(dim, input.ndim, "squeeze") if d < input.ndim and input.shape[d] == 1}
    return reshape(input, tuple(s for i, s in enumerate(input.shape) if i not in dims))


def unsqueeze(input: Tensor, dim: int) -> Tensor:
    """Insert a size-1 dimension at ``dim`` (negative counts from the end of the result)."""
    d = _dim(dim, input.ndim + 1, "unsqueeze")
    return reshape(input, input.shape[:d] + (1,) + input.shape[d:])


class Permute(Function):
    """y = x with axes reordered; the gradient applies the inverse permutation."""

    saves_inputs = False

    def __init__(self, axes: tuple[int, ...]):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        return permute(gy, tuple(np.argsort(self.axes).tolist()))


def permute(input: Tensor, *dims: Any) -> Tensor:
    """Reorder dimensions (a view)."""
    dims = _shape_arg(dims)
    if len(dims) != input.ndim:
        raise RuntimeError(f"permute: dims {dims} do not match the {input.ndim} dimensions of a tensor "
                           f"of shape {tuple(input.shape)}")
    axes = _dims(dims, input.ndim, "permute") if input.ndim else ()
    if axes == tuple(range(input.ndim)):
        return input
    return Permute(axes)(input)


def transpose(input: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap two dimensions."""
    d0, d1 = _dim(dim0, input.ndim, "transpose"), _dim(dim1, input.ndim, "transpose")
    if d0 == d1:
        return input
    axes = list(range(input.ndim))
    axes[d0], axes[d1] = axes[d1], axes[d0]
    return permute(input, tuple(axes))


swapaxes = swapdims = transpose


def movedim(input: Tensor, source: int | Sequence[int], destination: int | Sequence[int]) -> Tensor:
    """Move dims ``source`` to positions ``destination``; the other dims keep their order."""
    src, dst = _dims(source, input.ndim, "movedim"), _dims(destination, input.ndim, "movedim")
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: source {source} and destination {destination} differ in length")
    if input.ndim == 0:
        return input
    order = [None] * input.ndim
    for s, d in zip(src, dst):
        order[d] = s
    rest = iter(d for d in range(input.ndim) if d not in src)
    return permute(input, tuple(o if o is not None else next(rest) for o in order))


class BroadcastTo(Function):
    """Repeat along size-1 (or missing leading) axes; the gradient sums them back."""

    saves_inputs = False

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return get_array_module(x).broadcast_to(x, self.shape)

    def backward(self, gy):
        return sum_to(gy, self.in_shape)


class SumTo(Function):
    """Sum a broadcast gradient back to ``shape``: the adjoint of broadcasting."""

    saves_inputs = False

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        lead = x.ndim - len(self.shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, s in enumerate(self.shape) if s == 1 and x.shape[lead + i] != 1)
        y = x.sum(axis=axes, keepdims=True) if axes else x
        return y.reshape(self.shape) if lead else y

    def backward(self, gy):
        return broadcast_to(gy, self.in_shape)


def broadcast_to(input: Tensor, shape: Any) -> Tensor:
    shape = tuple(shape)
    if tuple(input.shape) == shape:
        return input
    return BroadcastTo(shape)(input)


def expand(input: Tensor, *sizes: Any) -> Tensor:
    """Broadcast to ``sizes``; -1 keeps a dimension's size."""
    sizes = _shape_arg(sizes)
    lead = len(sizes) - input.ndim
    if lead < 0 or any(s == -1 for s in sizes[:lead]):
        raise RuntimeError(f"expand: sizes {list(sizes)} do not fit a tensor of shape {tuple(input.shape)} "
                           "(too few sizes, or -1 in a new leading dimension)")
    shape = tuple(input.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    for i, s in enumerate(input.shape):
        if s != 1 and s != shape[lead + i]:
            raise RuntimeError(f"expand: size {shape[lead + i]} must match the existing size {s} at "
                               f"non-singleton dim {lead + i} (shape {tuple(input.shape)} to {list(sizes)})")
    return broadcast_to(input, shape)


def sum_to(input: Tensor, shape: tuple[int, ...]) -> Tensor:
    shape = tuple(shape)
    if tuple(input.shape) == shape:
        return input
    return SumTo(shape)(input)


class Cast(Function):
    """Change dtype; the gradient is cast back."""

    saves_inputs = False

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype

    def forward(self, x):
        self.in_dtype = x.dtype
        if self.dtype == np.float16:  # beyond ±65504 is inf, silently, as in PyTorch (GradScaler's signal)
            with np.errstate(over="ignore"):
                return x.astype(self.dtype)
        return x.astype(self.dtype)

    def backward(self, gy):
        return cast(gy, self.in_dtype)


def cast(input: Tensor, dtype: Any) -> Tensor:
    dtype = backend.as_dtype(dtype)
    return input if input.dtype == dtype else Cast(dtype)(input)


class ToDevice(Function):
    """Copy to another device; the gradient is copied back."""

    saves_inputs = False

    def __init__(self, device: str):
        self.device = device

    def forward(self, x):
        self.in_device = backend.device_of(x)
        return backend.to_device(x, self.device)

    def backward(self, gy):
        return to_device(gy, self.in_device)


def to_device(input: Tensor, device: str) -> Tensor:
    return input if input.device == device else ToDevice(device)(input)


class Clone(Function):
    """y = copy of x; dy/dx = 1."""

    saves_inputs = False

    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        return gy


def clone(input: Tensor) -> Tensor:
    """A copy that stays in the graph."""
    return Clone()(input)


class Repeat(Function):
    """Tile the input ``reps[i]`` times along axis i. The gradient sums the tiles: seen as shape
    (r0, s0, r1, s1, ...), it is summed over every r axis."""

    saves_inputs = False

    def __init__(self, reps: tuple[int, ...]):
        self.reps = reps

    def forward(self, x):
        self.in_shape = x.shape
        return get_array_module(x).tile(x, self.reps)

    def backward(self, gy):
        shape = (1,) * (len(self.reps) - len(self.in_shape)) + tuple(self.in_shape)
        tiles = tuple(v for r, s in zip(self.reps, shape) for v in (r, s))
        summed = sum_to(reshape(gy, tiles), tuple(v for s in shape for v in (1, s)))
        return reshape(summed, self.in_shape)


def repeat(input: Tensor, *sizes: Any) -> Tensor:
    """``Tensor.repeat``: tile ``sizes[i]`` times along dim i; extra leading sizes add new dims."""
    reps = _shape_arg(sizes)
    if not reps or len(reps) < input.ndim or any(r < 0 for r in reps):
        raise RuntimeError(f"repeat: sizes {list(reps)} must be non-negative and at least as many as the "
                           f"dims of the input of shape {tuple(input.shape)}")
    return Repeat(reps)(input)


class Flip(Function):
    """Reverse the order along ``dims``; a flip is its own inverse, so the gradient flips back."""

    saves_inputs = False

    def __init__(self, dims: tuple[int, ...]):
        self.dims = dims

    def forward(self, x):
        return get_array_module(x).flip(x, axis=self.dims) if self.dims else x

    def backward(self, gy):
        return Flip(self.dims)(gy)


def flip(input: Tensor, dims: int | Sequence[int], *more: int) -> Tensor:
    """Reverse the order of elements along ``dims`` (``x.flip(0, 1)`` works too)."""
    dims = _dims((dims, *more) if more else dims, input.ndim, "flip")
    return Flip(dims if input.ndim else ())(input)


class Roll(Function):
    """y[i] = x[(i - shift) mod n] along each dim (over the flattened tensor when dims is None);
    the gradient rolls back by -shift."""

    saves_inputs = False

    def __init__(self, shifts: Any, dims: Any):
        self.shifts, self.dims = shifts, dims

    def forward(self, x):
        return get_array_module(x).roll(x, self.shifts, axis=self.dims)

    def backward(self, gy):
        back = tuple(-s for s in self.shifts) if isinstance(self.shifts, tuple) else -self.shifts
        return Roll(back, self.dims)(gy)


def roll(input: Tensor, shifts: int | Sequence[int], dims: int | Sequence[int] | None = None) -> Tensor:
    """Shift elements cyclically along ``dims``; elements pushed off one end come in at the other."""
    if dims is None:
        shift = tuple(shifts) if isinstance(shifts, tuple | list) else (shifts,)
        if len(shift) != 1:
            raise RuntimeError(f"roll: with dims=None, shifts must be a single int, got {shifts}")
        return Roll(int(shift[0]), None)(input)
    if input.ndim == 0:
        raise IndexError(f"roll: dims {dims} given but the tensor is 0-d")
    shift = tuple(int(s) for s in (shifts if isinstance(shifts, tuple | list) else (shifts,)))
    dim = tuple(_dim(int(d), input.ndim, "roll") for d in (dims if isinstance(dims, tuple | list) else (dims,)))
    if len(shift) != len(dim):
        raise RuntimeError(f"roll: shifts {shifts} and dims {dims} must have the same length")
    return Roll(shift, dim)(input)


class _Triangle(Function):
    """Keep one triangle of the last two axes, zero the rest; the gradient keeps the same triangle."""

    saves_inputs = False

    def __init__(self, diagonal: int):
        self.diagonal = diagonal

    def forward(self, x):
        return getattr(get_array_module(x), self.name)(x, self.diagonal)

    def backward(self, gy):
        return type(self)(self.diagonal)(gy)


class Tril(_Triangle):
    """y[i, j] = x[i, j] where j - i <= diagonal, else 0."""


class Triu(_Triangle):
    """y[i, j] = x[i, j] where j - i >= diagonal, else 0."""


def tril(input: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle (on and below ``diagonal``) of the last two dims."""
    if input.ndim < 2:
        raise RuntimeError(f"tril: input tensor must have at least 2 dimensions, got shape {tuple(input.shape)}")
    return Tril(diagonal)(input)


def triu(input: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle (on and above ``diagonal``) of the last two dims."""
    if input.ndim < 2:
        raise RuntimeError(f"triu: input tensor must have at least 2 dimensions, got shape {tuple(input.shape)}")
    return Triu(diagonal)(input)
