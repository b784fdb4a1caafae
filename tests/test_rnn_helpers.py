"""Shared parity machinery for the recurrent-layer tests (no tests of its own): twin torch/deepnum
layers with the same weights, and a comparison of outputs, final states, and the gradients of the
input, the initial states and every parameter."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

import deepnum as dn
import deepnum.nn as nn

TOL = {np.float64: (1e-10, 1e-10), np.float32: (3e-5, 3e-4)}
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}
MODES = ("RNN_TANH", "RNN_RELU", "LSTM", "GRU")


def torch_layer(mode: str, *args, **kwargs) -> torch.nn.Module:
    if mode.startswith("RNN"):
        return torch.nn.RNN(*args, nonlinearity=mode[4:].lower(), **kwargs)
    return getattr(torch.nn, mode)(*args, **kwargs)


def our_layer(mode: str, *args, **kwargs) -> nn.Module:
    if mode.startswith("RNN"):
        return nn.RNN(*args, nonlinearity=mode[4:].lower(), **kwargs)
    return getattr(nn, mode)(*args, **kwargs)


def same_weights(ours: nn.Module, theirs: torch.nn.Module) -> None:
    ours.load_state_dict({k: dn.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})


def make_pair(mode: str, dtype, *args, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    theirs = torch_layer(mode, *args, **kwargs).to(TORCH_DTYPE[dtype])
    ours = our_layer(mode, *args, **kwargs).to(np.dtype(dtype).name)
    same_weights(ours, theirs)
    return ours, theirs


def initial_states(mode: str, shape: tuple[int, ...], dtype, seed: int = 3):
    """A random h0 (and c0) of ``shape`` as numpy arrays, in the form the layer takes."""
    rng = np.random.default_rng(seed)
    states = tuple(rng.standard_normal(shape).astype(dtype) for _ in range(2 if mode == "LSTM" else 1))
    return states if mode == "LSTM" else states[0]


def twins(value, requires_grad: bool = True):
    """(deepnum, torch) twins of an array or a tuple of arrays (None stays None)."""
    if value is None:
        return None, None
    if isinstance(value, tuple):
        pairs = [twins(v, requires_grad) for v in value]
        return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
    return dn.tensor(value, requires_grad=requires_grad), torch.tensor(value, requires_grad=requires_grad)


def _flat(value) -> list:
    if value is None:
        return []
    return [v for item in value for v in _flat(item)] if isinstance(value, tuple | list) else [value]


def _close(actual, expected, tol, what: str) -> None:
    a = actual.detach().numpy() if isinstance(actual, torch.Tensor) else np.asarray(actual.data)
    b = expected.detach().numpy()
    assert a.shape == b.shape, f"{what}: shape {a.shape} != torch's {b.shape}"
    assert a.dtype == b.dtype, f"{what}: dtype {a.dtype} != torch's {b.dtype}"
    np.testing.assert_allclose(a, b, atol=tol[0], rtol=tol[1], err_msg=what)


def compare(ours: nn.Module, theirs: torch.nn.Module, x: np.ndarray, hx, dtype,
            run_ours: Callable | None = None, run_theirs: Callable | None = None, seed: int = 1) -> None:
    """Run both layers (``run_*(layer, x, hx)`` returns the list of output tensors; default: the
    flattened (output, state) of ``layer(x, hx)``), compare every output, then backpropagate the same
    random cotangents and compare the gradients of x, hx and every parameter."""
    tol = TOL[dtype]
    run_ours = run_ours or (lambda layer, a, h: _flat(layer(a, h)))
    run_theirs = run_theirs or (lambda layer, a, h: _flat(layer(a, h)))
    dx, tx = twins(x)
    dhx, thx = twins(hx)
    d_outs, t_outs = run_ours(ours, dx, dhx), run_theirs(theirs, tx, thx)
    assert len(d_outs) == len(t_outs)
    rng = np.random.default_rng(seed)
    d_loss, t_loss = 0, 0
    for i, (a, b) in enumerate(zip(d_outs, t_outs)):
        _close(a, b, tol, f"output {i}")
        g = rng.standard_normal(b.shape).astype(dtype)
        d_loss = d_loss + (a * dn.tensor(g)).sum()
        t_loss = t_loss + (b * torch.tensor(g)).sum()
    d_loss.backward()
    t_loss.backward()
    _close(dx.grad, tx.grad, tol, "input gradient")
    for i, (a, b) in enumerate(zip(_flat(dhx), _flat(thx))):
        _close(a.grad, b.grad, tol, f"gradient of initial state {i}")
    for name, p in theirs.named_parameters():
        _close(getattr(ours, name).grad, p.grad, tol, f"gradient of {name}")
