"""Matrix products against PyTorch: matmul's shape rules, mm, bmm, and einsum over many equations
(values, gradients, gradcheck, double backward, error messages)."""
import numpy as np
import pytest
import torch

import deepnum as dn
from tests.helpers import Const, check_op

RNG = np.random.default_rng(7)

# ----------------------------------------------------------------------------- matmul, mm, bmm
MATMUL_SHAPES = [
    ((3,), (3,)), ((3,), (3, 4)), ((2, 3, 4), (4,)), ((4,), (2, 4, 5)), ((3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)), ((1, 3, 4), (2, 4, 5)), ((3, 4), (2, 4, 2)), ((0, 3), (3, 4)), ((3, 0), (0, 4)),
    ((2, 0, 3), (3,)), ((0,), (0,)),
]


@pytest.mark.parametrize(("a", "b"), MATMUL_SHAPES, ids=repr)
def test_matmul_shapes(a, b):
    check_op(lambda x, y: x @ y, a, b)
    check_op(lambda x, y: x.matmul(y), a, b, dtypes=(np.float32,))
    check_op(lambda x, y: dn.matmul(x, y), a, b, torch_fn=torch.matmul, dtypes=(np.float32,))


def test_matmul_integer_and_constant_operands():
    check_op(lambda x, y: x @ y, Const(np.arange(6).reshape(2, 3)), Const(np.arange(3)), grad=False)
    check_op(lambda x, y: x @ y, (2, 3), Const(RNG.standard_normal((3, 2))))


def test_mm_bmm():
    check_op(dn.mm, (3, 4), (4, 2), torch_fn=torch.mm)
    check_op(dn.bmm, (2, 3, 4), (2, 4, 5), torch_fn=torch.bmm)
    check_op(dn.bmm, (0, 3, 4), (0, 4, 5), torch_fn=torch.bmm)


def test_matmul_double_backward():
    a, b = (dn.tensor(RNG.standard_normal(s), requires_grad=True) for s in ((2, 3), (3,)))
    assert dn.autograd.gradgradcheck(lambda x, y: (x @ y) ** 2, [a, b])


MATMUL_ERRORS = [
    (dn.matmul, (), (3,), "at least 1 dimension"), (dn.matmul, (2, 3), (4,), r"\(2, 3\) and \(4,\).*3 != 4"),
    (dn.matmul, (2, 3), (4, 5), "cannot be multiplied"), (dn.matmul, (2, 3, 4), (3, 4, 5), r"\(2, 3, 4\)"),
    (dn.mm, (3,), (3, 4), "mm: expected 2-D"), (dn.mm, (2, 3), (4, 5), r"mm: .*\(2x3 and 4x5\)"),
    (dn.bmm, (3, 4), (4, 5), "bmm: expected 3-D"),
    (dn.bmm, (2, 3, 4), (1, 4, 5), r"bmm: expected mat2 of shape \(2, 4"),
    (dn.bmm, (2, 3, 4), (2, 3, 5), r"bmm: .*got \(2, 3, 5\)"),
]


@pytest.mark.parametrize(("fn", "a", "b", "message"), MATMUL_ERRORS, ids=repr)
def test_matmul_errors(fn, a, b, message):
    with pytest.raises(RuntimeError, match=message):
        fn(dn.zeros(*a), dn.zeros(*b))


# ----------------------------------------------------------------------------- einsum
EINSUMS = [
    ("ij,jk->ik", (3, 4), (4, 5)),                 # matrix product
    ("bij,bjk->bik", (2, 3, 4), (2, 4, 2)),        # batched
    ("i,j->ij", (3,), (4,)),                       # outer
    ("ii->", (4, 4)),                              # trace
    ("ii->i", (4, 4)),                             # diagonal
    ("ij->ji", (3, 4)),                            # transpose
    ("ij->", (3, 4)),                              # sum
    ("ij->j", (3, 4)),
    ("...ij,...jk->...ik", (2, 3, 4), (4, 5)),     # ellipsis, broadcast batch
    ("...ij,...jk->...ik", (2, 1, 3, 4), (5, 4, 2)),
    ("ij,jk", (3, 4), (4, 5)),                     # implicit output
    ("ba,aB", (2, 3), (3, 4)),                     # implicit output in ASCII order ('Bb')
    ("i...j", (2, 3, 4)),                          # implicit with ellipsis first
    ("i...->i", (2, 3, 4)),                        # ellipsis summed away
    ("i,i->", (5,), (5,)),
    ("bi,bj->bij", (2, 3), (2, 4)),
    ("ijk,jl,lm->ikm", (2, 3, 2), (3, 4), (4, 2)),  # three operands
    ("iji->j", (3, 2, 3)),                         # repeated letter in one operand, others kept
    ("ii,i->i", (3, 3), (1,)),                     # diagonal with a broadcast operand
    ("ij,ij->ij", (2, 1), (1, 4)),                 # size-1 dimensions broadcast
    ("ij,jk->ik", (2, 1), (3, 4)),
    ("ij,jk->ik", (2, 0), (0, 3)),                 # size 0
    ("ij->i", (0, 3)),
    ("->", ()),
    (",->", (), ()),
    ("i,->i", (3,), ()),
    (" i j , j k -> i k ", (2, 3), (3, 2)),        # spaces
    ("...,...->...", (2, 1), (3,)),
    ("bhqd,bhkd->bhqk", (1, 2, 3, 2), (1, 2, 4, 2)),  # attention scores
]


@pytest.mark.parametrize(("equation", "shapes"), [(e, tuple(s)) for e, *s in EINSUMS], ids=repr)
def test_einsum(equation, shapes):
    check_op(lambda *ops: dn.einsum(equation, *ops), *shapes, torch_fn=lambda *ops: torch.einsum(equation, *ops))


def test_einsum_list_operands_and_sublists():
    check_op(lambda a, b: dn.einsum("ij,jk", [a, b]), (2, 3), (3, 4),
             torch_fn=lambda a, b: torch.einsum("ij,jk", [a, b]))
    check_op(lambda a, b: dn.einsum(a, [0, 1], b, [1, 2], [0, 2]), (2, 3), (3, 4),
             torch_fn=lambda a, b: torch.einsum(a, [0, 1], b, [1, 2], [0, 2]))
    check_op(lambda a, b: dn.einsum(a, [..., 0, 1], b, [1, 2], [..., 0, 2]), (2, 2, 3), (3, 4),
             torch_fn=lambda a, b: torch.einsum(a, [..., 0, 1], b, [1, 2], [..., 0, 2]))
    check_op(lambda a, b: dn.einsum(a, [0, 27], b, [27, 2]), (2, 3), (3, 4),
             torch_fn=lambda a, b: torch.einsum(a, [0, 27], b, [27, 2]))


def test_einsum_integer_operands():
    check_op(lambda a, b: dn.einsum("ij,j->i", a, b), Const(np.arange(6).reshape(2, 3)), Const(np.arange(3)),
             torch_fn=lambda a, b: torch.einsum("ij,j->i", a, b), grad=False)


def test_einsum_diagonal_gradient_lands_on_the_diagonal():
    x = dn.ones(3, 3, requires_grad=True)
    dn.einsum("ii->i", x).backward(dn.tensor([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(x.grad.data, np.diag([1.0, 2.0, 3.0]))


@pytest.mark.parametrize(("equation", "shapes"), [
    ("ij,jk->ik", ((2, 3), (3, 2))), ("ii->i", ((3, 3),)), ("bij,bj->bi", ((2, 2, 3), (2, 3))),
    ("ij->", ((2, 3),)), ("i,i,i->", ((3,), (3,), (3,))),
], ids=repr)
def test_einsum_double_backward(equation, shapes):
    ops = [dn.tensor(RNG.standard_normal(s), requires_grad=True) for s in shapes]
    assert dn.autograd.gradgradcheck(lambda *xs: dn.einsum(equation, *xs) ** 2, ops)


EINSUM_ERRORS = [
    ("ij->i", [(2, 3), (2,)], "2 were given"),
    ("ij->i", [(2, 3, 4)], r"number of subscripts in 'ij' \(2\) does not match .* \(3\) of operand 0"),
    ("ij,jk->ik", [(2, 3), (4, 4)], "subscript j has size 4 for operand 1 which does not broadcast"),
    ("ii->i", [(2, 3)], r"subscript i is repeated for operand 0 of shape \(2, 3\) but the sizes don't match, 3 != 2"),
    ("ij->ii", [(2, 2)], "output subscript i appears more than once"),
    ("ij->k", [(2, 2)], "output subscript k does not appear"),
    ("i1->i", [(2, 2)], "invalid subscript '1' at index 1"),
    ("...i...->i", [(2, 3)], "more than one ellipsis"),
    ("i.j->i", [(2, 3)], "invalid '.'"),
    ("ij-i", [(2, 3)], "invalid '.'"),
    ("ijk...->i", [(2, 3)], "name more dimensions"),
]


@pytest.mark.parametrize(("equation", "shapes", "message"), EINSUM_ERRORS, ids=repr)
def test_einsum_errors(equation, shapes, message):
    with pytest.raises(RuntimeError, match=message):
        dn.einsum(equation, *[dn.zeros(*s) for s in shapes])


def test_einsum_needs_an_operand():
    with pytest.raises(ValueError, match="at least one operand"):
        dn.einsum("ij->i")
