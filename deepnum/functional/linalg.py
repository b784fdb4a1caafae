"""Matrix products: ``matmul`` (batched, broadcasting) and ``einsum``.

For y = a @ b the chain rule gives dL/da = dL/dy @ bᵀ and dL/db = aᵀ @ dL/dy, each summed over
the batch dimensions that broadcasting added. ``einsum`` generalises this: the gradient of one
operand is the einsum of the output gradient with all the other operands.
"""
from __future__ import annotations

import string
from collections import Counter
from typing import Any

import numpy as np

from deepnum.autograd.autocast_state import Autocast
from deepnum.autograd.function import Function
from deepnum.autograd.grad_mode import is_grad_enabled
from deepnum.backend import get_array_module
from deepnum.functional._half import gemm
from deepnum.functional._operands import promote
from deepnum.functional.array import broadcast_to, reshape, squeeze, sum_to, transpose, unsqueeze
from deepnum.functional.compare import sign
from deepnum.functional.indexing import getitem
from deepnum.functional.math import abs, where
from deepnum.functional.reduction import amax, amin, expand_reduced, reduce_axes, require_floating, sum
from deepnum.tensor import Tensor

__all__ = ["matmul", "mm", "bmm", "einsum", "norm"]


class MatMul(Function):
    """y = a @ b for inputs of at least two dimensions."""

    def forward(self, a, b):
        return gemm(a, b)

    def backward(self, gy):
        a, b = self.inputs
        needs = self.needs_input_grad
        if not is_grad_enabled():  # no graph to record: the two products straight on the arrays
            ga = gemm(gy.data, b.data.swapaxes(-1, -2)) if needs[0] else None
            gb = gemm(a.data.swapaxes(-1, -2), gy.data) if needs[1] else None
            return (None if ga is None else sum_to(Tensor._make(ga), a.shape),
                    None if gb is None else sum_to(Tensor._make(gb), b.shape))
        ga = sum_to(matmul(gy, transpose(b, -1, -2)), a.shape) if needs[0] else None
        gb = sum_to(matmul(transpose(a, -1, -2), gy), b.shape) if needs[1] else None
        return ga, gb


def matmul(input: Any, other: Any) -> Tensor:
    """Matrix product with NumPy/PyTorch rules: 1-D operands are promoted to a row (left) or a
    column (right) and the added dimension removed again; leading dimensions broadcast."""
    if Autocast.enabled:
        input, other = Autocast.cast("matmul", input, other)
    a, b = promote(input, other)
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"matmul: both arguments need at least 1 dimension, got shapes "
                           f"{tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise RuntimeError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied "
                           f"({a.shape[-1]} != {b.shape[-2 if b.ndim > 1 else 0]})")
    if a.ndim == 1 and b.ndim == 1:
        return squeeze(MatMul()(unsqueeze(a, 0), unsqueeze(b, 1)), (0, 1))
    if a.ndim == 1:
        return squeeze(MatMul()(unsqueeze(a, 0), b), -2)
    if b.ndim == 1:
        return squeeze(MatMul()(a, unsqueeze(b, 1)), -1)
    if a.ndim > 2 and b.ndim == 2:
        # (..., n, k) @ (k, m) is one (N·n, k) @ (k, m) GEMM: a Linear layer over a sequence or an
        # image; the weight gradient is then one GEMM too instead of a batch of them and a sum.
        lead = a.shape[:-1]
        return reshape(MatMul()(reshape(a, -1, a.shape[-1]), b), *lead, b.shape[-1])
    return MatMul()(a, b)


def mm(input: Tensor, mat2: Tensor) -> Tensor:
    """2-D matrix product (no broadcasting)."""
    if input.ndim != 2 or mat2.ndim != 2:
        raise RuntimeError(f"mm: expected 2-D tensors, got shapes {tuple(input.shape)} and {tuple(mat2.shape)}")
    if input.shape[1] != mat2.shape[0]:
        raise RuntimeError(f"mm: mat1 and mat2 shapes cannot be multiplied ({input.shape[0]}x{input.shape[1]} "
                           f"and {mat2.shape[0]}x{mat2.shape[1]})")
    return matmul(input, mat2)


def bmm(input: Tensor, mat2: Tensor) -> Tensor:
    """Batched (3-D) matrix product; the batch sizes must be equal (no broadcasting)."""
    if input.ndim != 3 or mat2.ndim != 3:
        raise RuntimeError(f"bmm: expected 3-D tensors, got shapes {tuple(input.shape)} and {tuple(mat2.shape)}")
    b, _, k = input.shape
    if mat2.shape[:2] != (b, k):
        raise RuntimeError(f"bmm: expected mat2 of shape ({b}, {k}, *) for input of shape {tuple(input.shape)}, "
                           f"got {tuple(mat2.shape)}")
    return matmul(input, mat2)


# ----------------------------------------------------------------------------- einsum
_LETTERS = string.ascii_uppercase + string.ascii_lowercase  # ASCII order: PyTorch's implicit-output order


def _check_subscripts(equation: str) -> None:
    for i, ch in enumerate(equation):
        if not (ch in _LETTERS or ch in ",.-> "):
            raise RuntimeError(f"einsum(): invalid subscript {ch!r} at index {i} of the equation {equation!r}; "
                               "subscripts must be in [a-zA-Z]")


def _split_term(term: str, k: int, ndim: int) -> tuple[str, int]:
    """An input term's letters (ellipsis removed) and how many dimensions its ellipsis covers."""
    letters = term.replace("...", "")
    if term.count("...") > 1:
        raise RuntimeError(f"einsum(): more than one ellipsis in the subscripts {term!r} of operand {k}")
    if any(c not in _LETTERS for c in letters):
        raise RuntimeError(f"einsum(): invalid '.', '-' or '>' in the subscripts {term!r} of operand {k}")
    if "..." not in term:
        if len(letters) != ndim:
            raise RuntimeError(f"einsum(): the number of subscripts in {term!r} ({len(letters)}) does not match "
                               f"the number of dimensions ({ndim}) of operand {k} and no ellipsis was given")
        return letters, 0
    if len(letters) > ndim:
        raise RuntimeError(f"einsum(): the subscripts {term!r} of operand {k} name more dimensions than its {ndim}")
    return letters, ndim - len(letters)


def _parse(equation: str, shapes: list[tuple[int, ...]]) -> tuple[list[str], str]:
    """Subscripts of every operand and of the output, each ``...`` replaced by letters of its own
    (right-aligned, so ellipsis dimensions broadcast like NumPy's)."""
    _check_subscripts(equation)
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise RuntimeError(f"einsum(): the equation {equation!r} has {len(terms)} operand(s) but "
                           f"{len(shapes)} were given")
    split = [_split_term(term, k, len(shape)) for k, (term, shape) in enumerate(zip(terms, shapes))]
    free = [c for c in _LETTERS if c not in eq]
    width = max((n for _, n in split), default=0)
    ellipsis = "".join(free[:width])
    subs = [term.replace("...", ellipsis[width - n:]) for term, (_, n) in zip(terms, split)]
    if not arrow:
        counts = Counter("".join(letters for letters, _ in split))
        return subs, ellipsis + "".join(sorted(c for c, n in counts.items() if n == 1))
    out = rhs.replace("...", ellipsis, 1)
    for c in out:
        if c not in _LETTERS:
            raise RuntimeError(f"einsum(): invalid output subscripts {rhs!r}")
        if out.count(c) > 1:
            raise RuntimeError(f"einsum(): output subscript {c} appears more than once in the output")
        if not any(c in s for s in subs):
            raise RuntimeError(f"einsum(): output subscript {c} does not appear in any input operand")
    return subs, out


def _diagonal(x: Tensor, subs: str, k: int) -> tuple[Tensor, str]:
    """Take the diagonal over letters repeated within one operand ('ii' -> 'i') through ``getitem``
    with broadcast aranges; its backward writes the gradient back onto that diagonal."""
    unique = "".join(dict.fromkeys(subs))
    if len(unique) == len(subs):
        return x, subs
    sizes: dict[str, int] = {}
    for c, n in zip(subs, x.shape):
        if sizes.setdefault(c, n) != n:
            raise RuntimeError(f"einsum(): subscript {c} is repeated for operand {k} of shape {tuple(x.shape)} "
                               f"but the sizes don't match, {n} != {sizes[c]}")
    xp = get_array_module(x.data)
    index = tuple(xp.arange(sizes[c]).reshape([sizes[c] if u == c else 1 for u in unique]) for c in subs)
    return getitem(x, index), unique


def _broadcast_letters(tensors: list[Tensor], subs: list[str]) -> list[Tensor]:
    """Expand size-1 dimensions whose letter has another size in another operand."""
    sizes: dict[str, int] = {}
    for k, (t, s) in enumerate(zip(tensors, subs)):
        for c, n in zip(s, t.shape):
            seen = sizes.setdefault(c, n)
            if n != seen and 1 not in (n, seen):
                raise RuntimeError(f"einsum(): subscript {c} has size {n} for operand {k} which does not broadcast "
                                   f"with previously seen size {seen}")
            if seen == 1:
                sizes[c] = n
    return [broadcast_to(t, tuple(sizes[c] for c in s)) for t, s in zip(tensors, subs)]


class Einsum(Function):
    """y[out] = Σ over the letters not in ``out`` of Π_k x_k[subs_k] (each operand's letters unique).
    ∂L/∂x_k is the einsum of dL/dy with the other operands, written to subs_k; letters that only x_k
    has (summed away in the forward) come back by broadcasting."""

    def __init__(self, subs: list[str], out: str):
        self.subs, self.out = subs, out

    def forward(self, *arrays):
        xp = get_array_module(*arrays)
        equation = ",".join(self.subs) + "->" + self.out
        # optimize=True plans the contraction order and hands pairwise contractions to BLAS
        return xp.einsum(equation, *arrays, optimize=len(arrays) > 1)

    def backward(self, gy):
        grads = []
        for k, x in enumerate(self.inputs):
            if not self.needs_input_grad[k]:
                grads.append(None)
                continue
            others = [t for j, t in enumerate(self.inputs) if j != k]
            other_subs = [s for j, s in enumerate(self.subs) if j != k]
            known = set(self.out).union(*other_subs)
            target = self.subs[k]
            kept = "".join(c for c in target if c in known)
            g = einsum(",".join([self.out, *other_subs]) + "->" + kept, gy, *others)
            if kept != target:
                g = reshape(g, tuple(n if c in known else 1 for c, n in zip(target, x.shape)))
                g = broadcast_to(g, x.shape)
            grads.append(g)
        return tuple(grads)


def _from_sublists(args: tuple) -> tuple[str, tuple]:
    """PyTorch's sublist form ``einsum(a, [0, 1], b, [1, 2], [0, 2])`` as an equation string
    (integers 0..51 name the dimensions, in that order for an implicit output)."""
    def term(sub: Any) -> str:
        return "".join("..." if i is Ellipsis else _LETTERS[i] for i in sub)

    out = args[-1] if len(args) % 2 else None
    pairs = args[:-1] if out is not None else args
    equation = ",".join(term(s) for s in pairs[1::2])
    return (equation if out is None else equation + "->" + term(out)), pairs[0::2]


def einsum(equation: Any, *operands: Any) -> Tensor:
    """Einstein summation over the subscripts in ``equation`` (``'ij,jk->ik'``), with PyTorch's
    rules: implicit output (letters used once, sorted), ``...`` for broadcast dimensions, size-1
    dimensions broadcast, repeated letters within an operand take its diagonal. Operands may be
    given as one list; the sublist form ``einsum(a, [0, 1], b, [1, 2], [0, 2])`` works too."""
    if isinstance(equation, Tensor):
        equation, operands = _from_sublists((equation, *operands))
    if len(operands) == 1 and isinstance(operands[0], list | tuple):
        operands = tuple(operands[0])
    if not operands:
        raise ValueError("einsum(): must specify the equation string and at least one operand")
    tensors = promote(*operands)
    subs, out = _parse(equation, [tuple(t.shape) for t in tensors])
    pairs = [_diagonal(t, s, k) for k, (t, s) in enumerate(zip(tensors, subs))]
    subs = [s for _, s in pairs]
    tensors = _broadcast_letters([t for t, _ in pairs], subs)
    return Einsum(subs, out)(*tensors)


class PNorm(Function):
    """‖x‖_p = (Σ|x|^p)^(1/p) (p = 0 counts the non-zeros and has no gradient);
    d‖x‖_p/dx = sign(x)·(|x|/‖x‖)^(p-1), taken as 0 where x = 0 or ‖x‖ = 0, as PyTorch."""

    def __init__(self, p: float, axes: tuple[int, ...], keepdim: bool):
        self.p, self.axes, self.keepdim = p, axes, keepdim

    def forward(self, x):
        xp = get_array_module(x)
        self.in_shape = x.shape
        reduce = {"axis": self.axes, "keepdims": self.keepdim}
        if self.p == 0:
            return (x != 0).sum(**reduce).astype(x.dtype)
        if self.p == 2:
            return xp.sqrt((x * x).sum(**reduce))
        with np.errstate(divide="ignore"):  # 0^p = inf for p < 0
            return (xp.abs(x) ** self.p).sum(**reduce) ** (1 / self.p)

    def backward(self, gy):
        if self.p == 0:
            return None
        x = self.inputs[0]
        expand = (self.in_shape, self.axes, self.keepdim)
        y = expand_reduced(self.output(), *expand)
        y_safe = where(Tensor._make(y.data == 0), 1.0, y)
        g = expand_reduced(gy, *expand)
        if self.p == 2:
            return g * x / y_safe
        ax = abs(x)
        ax_safe = where(Tensor._make(ax.data == 0), 1.0, ax)
        return g * sign(x) * (ax_safe / y_safe) ** (self.p - 1)


def norm(input: Tensor, p: float | str | None = "fro", dim: Any = None, keepdim: bool = False,
         dtype: Any = None) -> Tensor:
    """``torch.norm``: the vector p-norm over ``dim`` (all elements when None) for a number p
    (2, 1, inf, -inf, 0 or any other); 'fro' is the 2-norm over at most two dims."""
    if Autocast.enabled:
        (input,) = Autocast.cast("norm", input)
    (x,) = promote(input)
    if dtype is not None:
        x = x.to(dtype)
    require_floating("norm", x)
    if isinstance(p, str):
        if p != "fro":
            raise NotImplementedError(f"norm(): p={p!r} is not supported; use 'fro' or a number")
        if isinstance(dim, tuple | list) and len(dim) > 2:
            raise RuntimeError(f"norm(): p='fro' takes at most 2 dims, got dim={dim} for shape {tuple(x.shape)}")
        p = 2
    p = 2.0 if p is None else float(p)
    axes = reduce_axes("norm", dim, x)
    if p == float("inf"):
        return amax(abs(x), axes, keepdim)
    if p == -float("inf"):
        return amin(abs(x), axes, keepdim)
    if p == 1:
        return sum(abs(x), axes, keepdim)
    return PNorm(p, axes, keepdim)(x)
