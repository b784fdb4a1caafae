"""Reverse-mode automatic differentiation: ``Function``, the backward engine, ``grad``, grad modes
and gradient checking."""
from deepnum.autograd.function import Function
from deepnum.autograd.functional_api import grad
from deepnum.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from deepnum.autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck

__all__ = ["Function", "grad", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled",
           "gradcheck", "gradgradcheck", "GradcheckError"]
