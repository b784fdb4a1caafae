"""float16 matrix products on NumPy: float16 operands, float32 accumulation, float16 result.

NumPy has no float16 BLAS kernel (its float16 matmul is a scalar loop, ~100x slower than sgemm), so
a product of two float16 arrays is computed by upcasting both to float32, one sgemm, and rounding
the result to float16. Each product of two float16 numbers is exact in float32 (11 + 11 significant
bits fit in 24) and the sums accumulate in float32: the numerics of tensor cores (NVIDIA's HMMA,
float16 inputs with float32 accumulation), and what Micikevicius et al. 2018 ("Mixed Precision
Training", §3.3) prescribe for dot products. CuPy's float16 matmul already accumulates in float32
(cuBLAS with a float32 compute type), so CuPy arrays go straight through.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from deepnum.backend import get_array_module

_F16 = np.dtype(np.float16)
_F32 = np.dtype(np.float32)


def is_host_half(a: Any) -> bool:
    """Whether ``a`` is a float16 NumPy array (the case that needs the float32 detour)."""
    return a.dtype == _F16 and isinstance(a, np.ndarray)


def gemm(a: Any, b: Any, out: Any = None) -> Any:
    """``a @ b`` (NumPy's matmul rules, optionally into ``out``); float16 NumPy operands are
    multiplied in float32 and the result rounded to float16."""
    if a.dtype != _F16 or not isinstance(a, np.ndarray) or b.dtype != _F16:
        return a @ b if out is None else get_array_module(a).matmul(a, b, out=out)
    product = np.matmul(a.astype(_F32), b.astype(_F32))
    with np.errstate(over="ignore"):  # beyond ±65504 is inf in float16, as on a GPU (GradScaler's signal)
        if out is None:
            return product.astype(_F16)
        np.copyto(out, product, casting="same_kind")
    return out
