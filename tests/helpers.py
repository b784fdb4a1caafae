"""The parity harness: run one op on deepnum and on PyTorch with the same inputs, compare the
outputs and every input gradient, in float64 and float32 (tinygrad's ``helper_test_op`` idea), and
check the float64 gradient by central differences (``deepnum.autograd.gradcheck``)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import deepnum as dn

TOLERANCES = {np.dtype(np.float64): (1e-9, 1e-7), np.dtype(np.float32): (2e-5, 2e-4)}


@dataclass
class Const:
    """An input passed as a tensor that does not require grad (indices, masks), same value for both."""

    value: Any


def to_torch_dtype(dtype: np.dtype) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype


def make_inputs(specs: Sequence[Any], dtype: np.dtype, low: float, high: float, seed: int):
    """Build deepnum and torch twins of every input. A tuple is a shape of random values in
    [low, high) that require grad; ``Const`` is a fixed value; anything else is passed unchanged."""
    rng = np.random.default_rng(seed)
    dn_args, torch_args = [], []
    for spec in specs:
        if isinstance(spec, tuple):
            value = rng.uniform(low, high, size=spec).astype(dtype)
            dn_args.append(dn.tensor(value, requires_grad=True))
            torch_args.append(torch.tensor(value, requires_grad=True))
        elif isinstance(spec, Const):
            value = np.asarray(spec.value)
            if value.dtype.kind == "f":
                value = value.astype(dtype)
            dn_args.append(dn.tensor(value))
            torch_args.append(torch.tensor(value))
        else:
            dn_args.append(spec)
            torch_args.append(spec)
    return dn_args, torch_args


def _as_list(out: Any) -> list:
    return list(out) if isinstance(out, tuple | list) else [out]


def assert_close(actual: Any, expected: Any, atol: float, rtol: float, what: str) -> None:
    actual = np.asarray(actual.detach().data if isinstance(actual, dn.Tensor) else actual)
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != torch's {expected.shape}"
    if expected.dtype.kind in "fc":
        np.testing.assert_allclose(actual, expected, atol=atol, rtol=rtol, err_msg=what)
    else:
        np.testing.assert_array_equal(actual, expected, err_msg=what)


def check_op(fn: Callable, *specs: Any, torch_fn: Callable | None = None, low: float = -2.0,
             high: float = 2.0, dtypes: Sequence[Any] = (np.float64, np.float32), grad: bool = True,
             gradcheck: bool = True, atol: float | None = None, rtol: float | None = None,
             seed: int = 0) -> None:
    """Assert that ``fn`` on deepnum tensors equals ``torch_fn`` (default: ``fn`` itself, for code
    written with methods and operators both libraries share) on torch tensors: output values, shapes
    and dtypes, then the gradients of sum(output · g) for a random g, then a float64 gradcheck."""
    torch_fn = torch_fn or fn
    for dtype in map(np.dtype, dtypes):
        default_atol, default_rtol = TOLERANCES[dtype]
        tol = (atol or default_atol, rtol or default_rtol)
        dn_args, torch_args = make_inputs(specs, dtype, low, high, seed)
        dn_out, torch_out = _as_list(fn(*dn_args)), _as_list(torch_fn(*torch_args))
        assert len(dn_out) == len(torch_out), f"{len(dn_out)} outputs, torch gives {len(torch_out)}"
        for i, (a, b) in enumerate(zip(dn_out, torch_out, strict=True)):
            assert_close(a, b, *tol, what=f"output {i} ({dtype})")
            if isinstance(b, torch.Tensor):
                assert a.dtype == np.dtype(str(b.dtype).removeprefix("torch.")), \
                    f"output {i}: dtype {a.dtype} != torch's {b.dtype}"
        if not grad:
            continue
        _check_backward(dn_args, torch_args, dn_out, torch_out, dtype, tol, seed)
        if gradcheck and dtype == np.float64:
            grad_inputs = [a for a in dn_args if isinstance(a, dn.Tensor) and a.requires_grad]
            if grad_inputs:
                assert dn.autograd.gradcheck(fn, dn_args)


def _check_backward(dn_args, torch_args, dn_out, torch_out, dtype, tol, seed) -> None:
    rng = np.random.default_rng(seed + 1)
    dn_loss, torch_loss = None, None
    for a, b in zip(dn_out, torch_out, strict=True):
        if not isinstance(b, torch.Tensor) or not b.requires_grad:
            continue
        g = rng.standard_normal(b.shape).astype(dtype)
        dn_term, torch_term = (a * dn.tensor(g)).sum(), (b * torch.tensor(g)).sum()
        dn_loss = dn_term if dn_loss is None else dn_loss + dn_term
        torch_loss = torch_term if torch_loss is None else torch_loss + torch_term
    if torch_loss is None:
        return
    dn_loss.backward()
    torch_loss.backward()
    for i, (a, b) in enumerate(zip(dn_args, torch_args, strict=True)):
        if isinstance(b, torch.Tensor) and b.requires_grad:
            if b.grad is None:
                assert a.grad is None or not np.any(a.grad.data), f"input {i}: torch has no gradient"
                continue
            assert a.grad is not None, f"input {i}: deepnum computed no gradient"
            assert a.grad.dtype == a.dtype, f"input {i}: gradient dtype {a.grad.dtype} != {a.dtype}"
            assert_close(a.grad, b.grad, *tol, what=f"gradient of input {i} ({dtype})")
