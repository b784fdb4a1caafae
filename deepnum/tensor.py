"""``Tensor``: an n-dimensional array plus what autograd needs (``grad``, ``grad_fn``, hooks).

The data lives in ``.data`` (a NumPy or CuPy array). Every differentiable method delegates to the op
of the same name in ``deepnum.functional``, where each op is a ``Function`` with its forward and
backward side by side; this file only gives them PyTorch's method and operator names.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from deepnum import backend
from deepnum.backend import get_array_module


class Tensor:
    """A multi-dimensional array that records the ops applied to it, as ``torch.Tensor``."""

    __slots__ = ("data", "grad", "grad_fn", "_requires_grad", "_version", "_hooks", "_retains_grad",
                 "_post_accumulate_hooks", "__weakref__")
    __array_priority__ = 1000  # numpy scalars on the left defer to Tensor's reflected operators
    _any_post_accumulate_hooks = False  # set once one is registered: until then backward skips the search

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None, device: Any = None):
        array = backend.asarray(data.data if isinstance(data, Tensor) else data, dtype, device)
        self.data = array
        self.grad: Tensor | None = None
        self.grad_fn = None
        self._version = 0
        self._hooks: list | None = None
        self._retains_grad = False
        self._requires_grad = False
        self.requires_grad = requires_grad

    @classmethod
    def _make(cls, data: Any) -> Tensor:
        """Wrap an array without copying or checks (the hot path of every op)."""
        if isinstance(data, np.generic):
            data = np.asarray(data)
        t = object.__new__(cls)
        t.data = data
        t.grad = t.grad_fn = t._hooks = None
        t._requires_grad = t._retains_grad = False
        t._version = 0
        return t

    # ----------------------------------------------------------------- properties
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if self.grad_fn is not None and not value:
            raise RuntimeError("requires_grad can only be switched off on leaf tensors; use detach()")
        if value and self.data.dtype.kind not in "fc":
            raise RuntimeError(f"only floating point tensors can require gradients, got {self.dtype}")
        self._requires_grad = bool(value)

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    @property
    def is_cuda(self) -> bool:
        return self.device == "cuda"

    @property
    def T(self) -> Tensor:  # noqa: N802 (PyTorch's name)
        return F.permute(self, tuple(range(self.ndim - 1, -1, -1)))

    @property
    def mT(self) -> Tensor:  # noqa: N802 (PyTorch's name)
        return F.transpose(self, -2, -1)

    def size(self, dim: int | None = None) -> tuple[int, ...] | int:
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return int(self.data.size)

    def element_size(self) -> int:
        return self.data.itemsize

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    # ----------------------------------------------------------------- conversion
    def numpy(self) -> np.ndarray:
        if self._requires_grad:
            raise RuntimeError("Can't call numpy() on a Tensor that requires grad. Use tensor.detach().numpy()")
        if self.device != "cpu":
            raise TypeError("can't convert a cuda tensor to numpy: use tensor.cpu() first")
        return self.data

    def item(self) -> Any:
        if self.data.size != 1:
            raise RuntimeError(f"item(): a Tensor with {self.data.size} elements cannot be converted to a scalar")
        return self.data.reshape(()).item()

    def tolist(self) -> Any:
        return backend.to_device(self.data, "cpu").tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError(f"Boolean value of a Tensor of shape {tuple(self.shape)} is ambiguous")
        return bool(self.item())

    def __index__(self) -> int:
        return int(self.item())

    def to(self, *args: Any, dtype: Any = None, device: Any = None) -> Tensor:
        """``to(dtype)``, ``to(device)``, ``to(device, dtype)`` or ``to(other_tensor)``; differentiable."""
        device, dtype = parse_to_args(args, device, dtype)
        out = self
        if device is not None and backend.normalize_device(device) != self.device:
            out = F.to_device(out, backend.normalize_device(device))
        if dtype is not None and backend.as_dtype(dtype) != out.dtype:
            out = F.cast(out, backend.as_dtype(dtype))
        return out

    def float(self) -> Tensor:
        return self.to(backend.float32)

    def double(self) -> Tensor:
        return self.to(backend.float64)

    def half(self) -> Tensor:
        return self.to(backend.float16)

    def long(self) -> Tensor:
        return self.to(backend.int64)

    def int(self) -> Tensor:
        return self.to(backend.int32)

    def bool(self) -> Tensor:
        return self.to(backend.bool_)

    def type_as(self, other: Tensor) -> Tensor:
        return self.to(other.dtype)

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    # ----------------------------------------------------------------- autograd
    def backward(self, gradient: Any = None, retain_graph: bool | None = None,
                 create_graph: bool = False, inputs: Any = None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` (reverse-mode, chain rule)."""
        from deepnum.autograd.engine import run_backward

        retain = create_graph if retain_graph is None else retain_graph
        if inputs is not None:
            from deepnum.autograd import grad as autograd_grad

            inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
            grads = autograd_grad([self], inputs, None if gradient is None else [gradient],
                                  retain_graph=retain, create_graph=create_graph, allow_unused=True)
            for t, g in zip(inputs, grads, strict=True):
                if g is not None:
                    g = g if create_graph else g.detach()
                    t.grad = g if t.grad is None else t.grad + g
            return
        run_backward([self], None if gradient is None else [gradient], retain, create_graph)

    def detach(self) -> Tensor:
        """The same data, cut from the graph (shares memory, as in PyTorch)."""
        return Tensor._make(self.data)

    def detach_(self) -> Tensor:
        self.grad_fn = None
        self._requires_grad = False
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` on a non-leaf tensor after backward."""
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on a Tensor that has requires_grad=False")
        if self.grad_fn is not None:
            self._retains_grad = True

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> Callable[[], None]:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned tensor replaces it.
        Returns a function that removes the hook."""
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        hooks = self._hooks
        return lambda: hooks.remove(hook) if hook in hooks else None

    def register_post_accumulate_grad_hook(self, hook: Callable[[Tensor], None]) -> Callable[[], None]:
        """Call ``hook(tensor)`` on a leaf right after its ``.grad`` has received the last gradient of a
        backward pass (as PyTorch's hook of the same name): while the rest of the backward is still to
        run, so gradients can be sent off early (``DistributedDataParallel``). Returns a remover."""
        if self.grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        hooks = getattr(self, "_post_accumulate_hooks", None)
        if hooks is None:
            hooks = self._post_accumulate_hooks = []
        hooks.append(hook)
        Tensor._any_post_accumulate_hooks = True
        return lambda: hooks.remove(hook) if hook in hooks else None

    # ----------------------------------------------------------------- in-place (outside the graph)
    def _inplace(self, name: str) -> Any:
        from deepnum.autograd.grad_mode import is_grad_enabled

        if is_grad_enabled() and self._requires_grad:
            what = "a leaf Tensor that requires grad" if self.grad_fn is None else "a Tensor in the graph"
            raise RuntimeError(f"{name}: {what} is being used in an in-place operation; "
                               "wrap the update in `with deepnum.no_grad():`")
        self._version += 1
        return get_array_module(self.data)

    def _value(self, other: Any) -> Any:
        return other.data if isinstance(other, Tensor) else other

    def _assign(self, name: str, value: Any) -> Tensor:
        xp = self._inplace(name)
        xp.copyto(self.data, value, casting="unsafe")
        return self

    def _ufunc_(self, name: str, ufunc: str, *operands: Any) -> Tensor:
        """Apply an array-module ufunc writing into this tensor's own buffer (no new array)."""
        xp = self._inplace(name)
        getattr(xp, ufunc)(self.data, *operands, out=self.data, casting="unsafe")
        return self

    def add_(self, other: Any, alpha: float = 1) -> Tensor:
        value = self._value(other)
        return self._ufunc_("add_", "add", value if alpha == 1 else value * alpha)

    def sub_(self, other: Any, alpha: float = 1) -> Tensor:
        value = self._value(other)
        return self._ufunc_("sub_", "subtract", value if alpha == 1 else value * alpha)

    def mul_(self, other: Any) -> Tensor:
        return self._ufunc_("mul_", "multiply", self._value(other))

    def div_(self, other: Any) -> Tensor:
        return self._ufunc_("div_", "true_divide", self._value(other))

    def pow_(self, exponent: Any) -> Tensor:
        return self._ufunc_("pow_", "power", self._value(exponent))

    def addcmul_(self, tensor1: Tensor, tensor2: Tensor, value: float = 1) -> Tensor:
        """self += value · tensor1 · tensor2 (Adam's moment updates)."""
        product = tensor1.data * tensor2.data
        return self._ufunc_("addcmul_", "add", product if value == 1 else product * value)

    def addcdiv_(self, tensor1: Tensor, tensor2: Tensor, value: float = 1) -> Tensor:
        """self += value · tensor1 / tensor2."""
        quotient = tensor1.data / tensor2.data
        return self._ufunc_("addcdiv_", "add", quotient if value == 1 else quotient * value)

    def lerp_(self, end: Any, weight: float) -> Tensor:
        """self ← self + w·(end − self), an exponential moving average step, with PyTorch's formula:
        for |w| ≥ 0.5 it is end − (end − self)·(1 − w), which gives exactly ``end`` at w = 1."""
        diff = self._value(end) - self.data
        if abs(weight) < 0.5:
            return self._ufunc_("lerp_", "add", diff * weight)
        xp = self._inplace("lerp_")
        one = self.data.dtype.type(1)
        xp.subtract(self._value(end), diff * (one - self.data.dtype.type(weight)), out=self.data, casting="unsafe")
        return self

    def clamp_(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002 (PyTorch's names)
        return self._ufunc_("clamp_", "clip", self._value(min), self._value(max))

    def sqrt_(self) -> Tensor:
        return self._ufunc_("sqrt_", "sqrt")

    def zero_(self) -> Tensor:
        return self.fill_(0)

    def fill_(self, value: Any) -> Tensor:
        return self._assign("fill_", self._value(value))

    def copy_(self, src: Any) -> Tensor:
        value = backend.to_device(self._value(src), self.device) if isinstance(src, Tensor) else src
        return self._assign("copy_", value)

    def masked_fill_(self, mask: Tensor, value: Any) -> Tensor:
        xp = self._inplace("masked_fill_")
        xp.copyto(self.data, self._value(value), where=self._value(mask), casting="unsafe")
        return self

    def __setitem__(self, index: Any, value: Any) -> None:
        xp = self._inplace("__setitem__")
        F.indexing.assign_index(self.data, index, xp.asarray(self._value(value)).astype(self.dtype, copy=False))

    # ----------------------------------------------------------------- operators
    def __add__(self, other: Any) -> Tensor:
        return F.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return F.add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return F.sub(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return F.sub(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return F.mul(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return F.mul(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return F.div(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return F.div(other, self)

    def __floordiv__(self, other: Any) -> Tensor:
        return F.floor_divide(self, other)

    def __rfloordiv__(self, other: Any) -> Tensor:
        return F.floor_divide(other, self)

    def __mod__(self, other: Any) -> Tensor:
        return F.remainder(self, other)

    def __rmod__(self, other: Any) -> Tensor:
        return F.remainder(other, self)

    def __pow__(self, other: Any) -> Tensor:
        return F.pow(self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return F.pow(other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return F.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return F.matmul(other, self)

    def __neg__(self) -> Tensor:
        return F.neg(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return F.abs(self)

    def __invert__(self) -> Tensor:
        return F.logical_not(self)

    def __and__(self, other: Any) -> Tensor:
        return F.logical_and(self, other)

    def __or__(self, other: Any) -> Tensor:
        return F.logical_or(self, other)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return F.eq(self, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return F.ne(self, other)

    def __lt__(self, other: Any) -> Tensor:
        return F.lt(self, other)

    def __le__(self, other: Any) -> Tensor:
        return F.le(self, other)

    def __gt__(self, other: Any) -> Tensor:
        return F.gt(self, other)

    def __ge__(self, other: Any) -> Tensor:
        return F.ge(self, other)

    __hash__ = object.__hash__

    def __getitem__(self, index: Any) -> Tensor:
        return F.getitem(self, index)

    def view(self, *shape: Any) -> Tensor:
        return F.reshape(self, *shape)

    def view_as(self, other: Tensor) -> Tensor:
        return F.reshape(self, other.shape)

    def reshape_as(self, other: Tensor) -> Tensor:
        return F.reshape(self, other.shape)

    def expand_as(self, other: Tensor) -> Tensor:
        return F.expand(self, other.shape)

    def contiguous(self) -> Tensor:
        return self

    def where(self, condition: Any, other: Any) -> Tensor:
        """``x.where(cond, y)`` is ``deepnum.where(cond, x, y)``, as in PyTorch."""
        return F.where(condition, self, other)

    def clone(self) -> Tensor:
        return F.clone(self)

    def __repr__(self) -> str:
        host = backend.to_device(self.data, "cpu")
        body = np.array2string(host, precision=4, separator=", ", prefix="tensor(", floatmode=_floatmode(host))
        extras = [f"size={tuple(self.shape)}"] if self.data.size == 0 and self.ndim != 1 else []
        if self.device != "cpu":
            extras.append("device='cuda'")
        if self.dtype not in (backend.get_default_dtype(), backend.int64, backend.bool_):
            extras.append(f"dtype=deepnum.{self.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn={self.grad_fn!r}")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"


def _floatmode(array: np.ndarray) -> str:
    """PyTorch prints floats with 4 fixed decimals ("1.5000"), or as "1." when every value is a whole
    number small enough to skip scientific notation."""
    if array.dtype.kind != "f":
        return "maxprec"
    finite = np.abs(array[np.isfinite(array)]).astype(np.float64)  # float16 would overflow at 1e8
    nonzero = finite[finite != 0]
    if np.any(finite != np.round(finite)):
        return "fixed"
    if nonzero.size and (nonzero.max() >= 1e8 or nonzero.max() / nonzero.min() > 1000):
        return "fixed"
    return "maxprec"


def parse_to_args(args: tuple, device: Any = None, dtype: Any = None) -> tuple[Any, Any]:
    """The (device, dtype) meant by the positional arguments of ``to(...)``: a device name, a dtype,
    both, or a Tensor whose device and dtype are taken (shared by ``Tensor.to`` and ``Module.to``)."""
    for a in args:
        if isinstance(a, Tensor):
            device, dtype = a.device, a.dtype
        elif isinstance(a, str) and (a == "cpu" or a.startswith("cuda")):
            device = a
        else:
            dtype = a
    return device, dtype


# Methods that forward their arguments unchanged to the op of the same name in deepnum.functional
# (``x.exp()`` is ``F.exp(x)``, ``x.sum(1, keepdim=True)`` is ``F.sum(x, 1, keepdim=True)``).
_SAME_NAME_METHODS = (
    "add", "sub", "mul", "div", "pow", "matmul", "neg", "exp", "log", "log1p", "sqrt", "rsqrt", "abs",
    "sign", "sin", "cos", "tanh", "sigmoid", "relu", "clamp", "clip", "maximum", "minimum", "reciprocal",
    "square", "eq", "ne", "lt", "le", "gt", "ge", "logical_not", "logical_and", "logical_or",
    "floor", "ceil", "round", "isnan", "isinf", "isfinite", "floor_divide", "remainder",
    "sum", "mean", "var", "std", "max", "min", "amax", "amin", "argmax", "argmin", "logsumexp",
    "softmax", "log_softmax", "cumsum", "prod", "norm", "all", "any",
    "reshape", "flatten", "squeeze", "unsqueeze", "transpose", "permute", "expand", "repeat",
    "split", "chunk", "unbind", "flip", "roll", "tril", "triu", "gather", "scatter_add",
    "index_select", "masked_fill", "movedim", "swapaxes", "narrow", "take_along_dim",
)


def _forwarding_method(name: str) -> Callable:
    def method(self: Tensor, *args: Any, **kwargs: Any) -> Any:
        return getattr(F, name)(self, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"Same as ``deepnum.{name}(self, ...)``."
    return method


for _name in _SAME_NAME_METHODS:
    setattr(Tensor, _name, _forwarding_method(_name))

from deepnum import functional as F  # noqa: E402  (the ops need Tensor defined first)
