"""deepnum: a deep-learning framework on NumPy (CuPy on a GPU) with PyTorch's API.

``import deepnum as dn; x = dn.randn(3, 4, requires_grad=True); (x @ x.T).relu().sum().backward()``
"""
from deepnum.backend import (
    bool_, double, float16, float32, float64, get_default_dtype, half, int8, int16, int32, int64,
    long, set_default_dtype, short, uint8,
)
from deepnum.tensor import Tensor
from deepnum import autograd
from deepnum.autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from deepnum.creation import (
    arange, as_tensor, empty, empty_like, eye, from_numpy, full, full_like, linspace, ones, ones_like,
    tensor, zeros, zeros_like,
)
from deepnum.random import (
    Generator, default_generator, manual_seed, normal, rand, rand_like, randint, randn, randn_like,
    randperm, seed,
)
from deepnum.functional import *  # noqa: F403  (dn.exp, dn.matmul, dn.cat, ...)
from deepnum import functional

# PyTorch's dtype aliases: deepnum.float is float32, deepnum.int is int32, deepnum.bool is bool.
float = float32  # noqa: A001
int = int32  # noqa: A001
bool = bool_  # noqa: A001

__version__ = "0.1.0"


def is_tensor(obj: object) -> bool:
    return isinstance(obj, Tensor)


def numel(input: Tensor) -> int:  # noqa: A002
    return input.numel()

from deepnum import nn, optim, profiler  # noqa: E402  (as torch.nn, torch.optim, torch.profiler)
from deepnum import amp  # noqa: E402  (as torch.amp)
from deepnum.amp import autocast  # noqa: E402  (as torch.autocast)
from deepnum import cuda  # noqa: E402  (as torch.cuda; CuPy is imported only when asked)
from deepnum.io import load, save  # noqa: E402  (torch.save/torch.load; safetensors is imported on first use)
from deepnum.io import load_torch, load_torch_checkpoint, save_torch  # noqa: E402  (.pt files, no torch needed)
from deepnum import onnx  # noqa: E402  (as torch.onnx; the onnx package is imported only when exporting)
