"""Weight initialisers, as ``torch.nn.init``: each fills a tensor in place (under ``no_grad``), keeps
its dtype and device, draws from ``generator`` (default: the global one behind ``manual_seed``) and
returns it.

The scale keeps the variance of activations roughly constant from layer to layer:
Xavier/Glorot (Glorot & Bengio 2010) uses Var(W) = gain²·2/(fan_in + fan_out) for tanh/sigmoid nets,
Kaiming/He (He et al. 2015) uses Var(W) = gain²/fan for ReLU nets (gain² = 2). A uniform U(-b, b)
has variance b²/3, hence the √3 in the uniform bounds.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from deepnum import backend
from deepnum.autograd.grad_mode import no_grad
from deepnum.random import Generator, default_generator
from deepnum.tensor import Tensor

__all__ = [
    "calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_",
    "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
    "sparse_", "uniform", "normal", "constant", "eye", "dirac", "xavier_uniform", "xavier_normal",
    "kaiming_uniform", "kaiming_normal", "orthogonal", "sparse",
]

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")


def _fill(tensor: Tensor, values: Any) -> Tensor:
    """Copy host ``values`` into ``tensor`` (cast to its dtype, moved to its device), outside the graph."""
    values = values.reshape(tensor.shape).astype(tensor.dtype, copy=False)
    with no_grad():
        tensor.copy_(Tensor._make(backend.to_device(values, tensor.device)))
    return tensor


def _rng(generator: Generator | None) -> np.random.Generator:
    return (generator or default_generator).rng


def _draw_dtype(tensor: Tensor) -> np.dtype:
    """Draw float32 tensors in float32 (half the work of a float64 draw), everything else in float64."""
    return np.dtype(np.float32) if tensor.dtype == np.float32 else np.dtype(np.float64)


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor that keeps activation variance after ``nonlinearity`` (PyTorch's table): 1 for
    linear/conv/sigmoid, 5/3 for tanh, √2 for relu, √(2/(1 + slope²)) for leaky_relu (slope
    ``param``, default 0.01), 3/4 for selu."""
    if nonlinearity in _LINEAR or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, int | float) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """fan_in = in_channels·receptive field, fan_out = out_channels·receptive field (weights laid
    out (out, in, *kernel), as PyTorch)."""
    if tensor.ndim < 2:
        raise ValueError(f"Fan in and fan out can not be computed for tensor with fewer than 2 dimensions, "
                         f"got shape {tuple(tensor.shape)}")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode!r} not supported, please use one of ['fan_in', 'fan_out']")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Fill with U(a, b)."""
    values = _rng(generator).random(tensor.shape, dtype=_draw_dtype(tensor))
    values *= b - a
    values += a
    return _fill(tensor, values)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Fill with N(mean, std²)."""
    if std < 0:
        raise ValueError(f"normal_: std must be >= 0, got {std}")
    values = _rng(generator).standard_normal(tensor.shape, dtype=_draw_dtype(tensor))
    values *= std
    values += mean
    return _fill(tensor, values)


def _norm_cdf(x: float) -> float:
    return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator: Generator | None = None) -> Tensor:
    """N(mean, std²) restricted to [a, b] (absolute bounds, not in units of std), sampled exactly by
    rejection, as PyTorch: when the interval holds more than 30% of the mass, normal draws outside
    are drawn again; otherwise uniform proposals on [a, b] are accepted with probability
    pdf(x)/max pdf on [a, b] (which stays efficient far in a tail). Each round redraws only the
    rejected elements."""
    if std <= 0:
        raise ValueError(f"trunc_normal_: std must be positive, got {std}")
    if a > b:
        raise ValueError(f"trunc_normal_: need a <= b, got a={a}, b={b}")
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
                      "The distribution of values may be incorrect.", stacklevel=2)
    rng, n = _rng(generator), tensor.numel()
    values = np.empty(n)
    pending = np.arange(n)
    if _norm_cdf((b - mean) / std) - _norm_cdf((a - mean) / std) > 0.3:
        while pending.size:
            draw = rng.normal(mean, std, pending.size)
            ok = (draw >= a) & (draw <= b)
            values[pending[ok]] = draw[ok]
            pending = pending[~ok]
    else:
        peak = max(a, min(mean, b))  # where the density is highest on [a, b]
        while pending.size:
            draw = rng.uniform(a, b, pending.size)
            log_ratio = -0.5 * (((draw - mean) / std) ** 2 - ((peak - mean) / std) ** 2)
            ok = np.log(rng.random(pending.size)) <= log_ratio
            values[pending[ok]] = draw[ok]
            pending = pending[~ok]
    values = values.astype(tensor.dtype)
    lo, hi = np.asarray(a, tensor.dtype), np.asarray(b, tensor.dtype)
    return _fill(tensor, np.clip(values, lo, hi))  # rounding to the dtype must not step outside


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``."""
    with no_grad():
        return tensor.fill_(val)


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def eye_(tensor: Tensor) -> Tensor:
    """The identity matrix (2-D tensors only): Linear layers then pass on as many inputs as they can."""
    if tensor.ndim != 2:
        raise ValueError(f"eye_: only tensors with 2 dimensions are supported, got shape {tuple(tensor.shape)}")
    return _fill(tensor, np.eye(*tensor.shape, dtype=tensor.dtype))


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """The Dirac delta for a conv weight (out, in, *kernel) of 3, 4 or 5 dims: output channel d of
    each group copies input channel d at the kernel centre, so the convolution is the identity on as
    many channels as it can be."""
    if tensor.ndim not in (3, 4, 5):
        raise ValueError(f"dirac_: only tensors with 3, 4, or 5 dimensions are supported, got shape "
                         f"{tuple(tensor.shape)}")
    if groups < 1 or tensor.shape[0] % groups:
        raise ValueError(f"dirac_: dim 0 must be divisible by groups, got shape {tuple(tensor.shape)} and "
                         f"groups={groups}")
    per_group = tensor.shape[0] // groups
    d = np.arange(min(per_group, tensor.shape[1]))
    out = (np.arange(groups)[:, None] * per_group + d).ravel()
    centre = tuple(s // 2 for s in tensor.shape[2:])
    values = np.zeros(tensor.shape, dtype=tensor.dtype)
    values[(out, np.tile(d, groups), *centre)] = 1
    return _fill(tensor, values)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator: Generator | None = None) -> Tensor:
    """U(-a, a) with a = gain·√(6/(fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    if tensor.numel() == 0:
        return tensor
    a = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator: Generator | None = None) -> Tensor:
    """N(0, std²) with std = gain·√(2/(fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    if tensor.numel() == 0:
        return tensor
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def _kaiming_std(tensor: Tensor, a: float, mode: str, nonlinearity: str) -> float | None:
    """gain/√fan, or None (after PyTorch's warning) for a zero-element tensor."""
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return None
    return calculate_gain(nonlinearity, a) / math.sqrt(_calculate_correct_fan(tensor, mode))


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator: Generator | None = None) -> Tensor:
    """U(-b, b) with b = gain·√(3/fan) (He et al. 2015); ``a`` is the leaky_relu slope for the gain."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator: Generator | None = None) -> Tensor:
    """N(0, std²) with std = gain/√fan (He et al. 2015)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    return tensor if std is None else normal_(tensor, 0.0, std, generator)


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator: Generator | None = None) -> Tensor:
    """A (semi-)orthogonal matrix times ``gain``: the Q of the QR decomposition of a Gaussian matrix,
    its columns' signs fixed by diag(R) so that Q is uniformly (Haar) distributed (Saxe et al. 2013;
    Mezzadri 2007). Dims after the first are flattened; with rows ≥ cols, QᵀQ = I, else QQᵀ = I."""
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: only tensors with 2 or more dimensions are supported, got shape "
                         f"{tuple(tensor.shape)}")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    flat = _rng(generator).standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    q *= gain
    return _fill(tensor, q)


def sparse_(tensor: Tensor, sparsity: float, std: float = 0.01, generator: Generator | None = None) -> Tensor:
    """A 2-D matrix of N(0, std²) values with ⌈sparsity·rows⌉ random zeros in every column (Martens
    2010, "Deep learning via Hessian-free optimization")."""
    if tensor.ndim != 2:
        raise ValueError(f"sparse_: only tensors with 2 dimensions are supported, got shape {tuple(tensor.shape)}")
    rows, cols = tensor.shape
    rng = _rng(generator)
    values = rng.normal(0.0, std, (rows, cols))
    zeros = rng.random((rows, cols)).argsort(axis=0)[:math.ceil(sparsity * rows)]  # a random subset per column
    np.put_along_axis(values, zeros, 0.0, axis=0)
    return _fill(tensor, values)


def _deprecated(fn: Callable) -> Callable:
    """PyTorch's old names without the trailing underscore, with its FutureWarning."""
    old = fn.__name__[:-1]

    def deprecated_init(*args: Any, **kwargs: Any) -> Tensor:
        warnings.warn(f"`nn.init.{old}` is now deprecated in favor of `nn.init.{fn.__name__}`.", FutureWarning,
                      stacklevel=2)
        return fn(*args, **kwargs)

    deprecated_init.__name__ = old
    deprecated_init.__doc__ = f"Deprecated: use ``{fn.__name__}``."
    return deprecated_init


uniform = _deprecated(uniform_)
normal = _deprecated(normal_)
constant = _deprecated(constant_)
eye = _deprecated(eye_)
dirac = _deprecated(dirac_)
xavier_uniform = _deprecated(xavier_uniform_)
xavier_normal = _deprecated(xavier_normal_)
kaiming_uniform = _deprecated(kaiming_uniform_)
kaiming_normal = _deprecated(kaiming_normal_)
orthogonal = _deprecated(orthogonal_)
sparse = _deprecated(sparse_)
