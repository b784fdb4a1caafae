"""Gradient checking by central differences: (f(x + ε) - f(x - ε)) / 2ε ≈ ∂f/∂x, compared with the
Jacobian that autograd computes. Run in float64, where ε = 1e-6 leaves ~10 significant digits."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deepnum.autograd.functional_api import grad
from deepnum.autograd.grad_mode import enable_grad, no_grad
from deepnum.tensor import Tensor


class GradcheckError(AssertionError):
    pass


def _outputs(fn: Callable, inputs: Sequence[Any]) -> list[Tensor]:
    out = fn(*inputs)
    outs = list(out) if isinstance(out, tuple | list) else [out]
    return [o for o in outs if isinstance(o, Tensor) and o.dtype.kind == "f"]


def _numerical_jacobian(fn: Callable, inputs: Sequence[Any], index: int, eps: float) -> list[np.ndarray]:
    """Columns d(output)/d(input[index][j]) by central differences, one array per output."""
    x = inputs[index]
    flat = x.data.reshape(-1)
    with no_grad():
        sizes = [o.data.size for o in _outputs(fn, inputs)]
        columns = [np.zeros((s, flat.size)) for s in sizes]
        for j in range(flat.size):
            saved = flat[j].copy()
            flat[j] = saved + eps
            plus = [o.data.reshape(-1).astype(np.float64) for o in _outputs(fn, inputs)]
            flat[j] = saved - eps
            minus = [o.data.reshape(-1).astype(np.float64) for o in _outputs(fn, inputs)]
            flat[j] = saved
            for k in range(len(sizes)):
                columns[k][:, j] = (plus[k] - minus[k]) / (2 * eps)
    return columns


def _analytical_jacobian(fn: Callable, inputs: Sequence[Any], index: int) -> list[np.ndarray]:
    """Rows of the Jacobian by one backward pass per output element."""
    x = inputs[index]
    outs = _outputs(fn, inputs)
    jacobians = []
    for out in outs:
        jac = np.zeros((out.data.size, x.data.size))
        for i in range(out.data.size if out.requires_grad else 0):  # an output outside the graph: zero Jacobian
            seed = np.zeros(out.data.size, dtype=out.dtype)
            seed[i] = 1
            (g,) = grad([out], [x], [Tensor._make(seed.reshape(out.shape))], retain_graph=True,
                        allow_unused=True)
            if g is not None:
                jac[i] = g.data.reshape(-1)
        jacobians.append(jac)
    return jacobians


def gradcheck(fn: Callable, inputs: Any, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True) -> bool:
    """Compare autograd's Jacobian of ``fn`` with central differences for every input that requires
    grad. Inputs should be float64 (float32 rounding swamps a difference quotient)."""
    inputs = tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)
    for index, x in enumerate(inputs):
        if not isinstance(x, Tensor) or not x.requires_grad:
            continue
        if x.dtype != np.float64:
            raise GradcheckError(f"gradcheck: input {index} is {x.dtype}; use float64 inputs")
        numerical = _numerical_jacobian(fn, inputs, index, eps)
        analytical = _analytical_jacobian(fn, inputs, index)
        for k, (num, ana) in enumerate(zip(numerical, analytical, strict=True)):
            if not np.allclose(ana, num, atol=atol, rtol=rtol):
                if not raise_exception:
                    return False
                worst = np.unravel_index(np.argmax(np.abs(ana - num)), ana.shape)
                raise GradcheckError(
                    f"gradcheck: Jacobian mismatch for output {k} w.r.t. input {index} at {worst}: "
                    f"autograd {ana[worst]:.8g}, numerical {num[worst]:.8g}\n"
                    f"autograd:\n{ana}\nnumerical:\n{num}")
    return True


def gradgradcheck(fn: Callable, inputs: Any, grad_outputs: Any = None, eps: float = 1e-6,
                  atol: float = 1e-5, rtol: float = 1e-3, raise_exception: bool = True) -> bool:
    """Check second derivatives: gradcheck of x ↦ d(fn(x)·v)/dx, whose backward goes through the
    graph that ``create_graph=True`` recorded in the first backward."""
    inputs = tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)
    differentiable = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    if grad_outputs is None:
        rng = np.random.default_rng(0)
        grad_outputs = [Tensor._make(rng.standard_normal(o.shape)) for o in _outputs(fn, inputs)]

    def first_derivative(*xs: Any) -> tuple:
        with enable_grad():  # the numerical Jacobian calls this under no_grad; the gradient needs a graph
            outs = _outputs(fn, xs)
            picked = [x for x in xs if isinstance(x, Tensor) and x.requires_grad]
            grads = grad(outs, picked, list(grad_outputs), create_graph=True, allow_unused=True)
        return tuple(g for g in grads if g is not None)

    if not differentiable:
        return True
    return gradcheck(first_derivative, inputs, eps=eps, atol=atol, rtol=rtol, raise_exception=raise_exception)
