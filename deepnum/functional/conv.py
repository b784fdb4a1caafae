"""Convolutions, as ``torch.nn.functional``: conv1d/2d/3d and conv_transpose1d/2d/3d.

Output size (the study notes, 004): along each spatial dim an input of size H, padded by P on both
sides, with a kernel of size KH dilated by D (it spans D·(KH−1) + 1 pixels) and stride S gives

    OH = ⌊(H + 2P − D·(KH−1) − 1) / S⌋ + 1

windows; e.g. 32×32 with a 3×3 kernel, P = 1, S = 1 stays 32×32, and with S = 2 becomes 16×16.
``padding='valid'`` is P = 0; ``padding='same'`` (stride 1 only) pads D·(KH−1) in total, the
smaller half before and the larger after (asymmetric for even kernels, as PyTorch does), so OH = H.
A transposed convolution inverts the size relation:
OH = (H − 1)·S − 2P + D·(KH−1) + output_padding + 1.

The computation is im2col + one matmul (per tile of output rows on the CPU), col2im for the adjoint:
see ``conv_ops``. The outputs are stored batch-last, (C, *spatial, N) in memory behind the usual
(N, C, *spatial) shape (``conv_ops``: a memory format, as PyTorch's channels_last), and 3×3
stride-1 convolutions take Winograd's F(2×2, 3×3) fast path (``_conv_winograd``).
Unbatched inputs (C, *spatial) are accepted, as PyTorch does, and give unbatched outputs.
"""
from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

from deepnum.autograd.autocast_state import Autocast
from deepnum.functional.array import squeeze, unsqueeze
from deepnum.functional.conv_ops import ConvGeometry, Convolution, ConvTranspose
from deepnum.tensor import Tensor

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]

_SPATIAL_NAMES = {1: "L", 2: "H, W", 3: "D, H, W"}


def _ntuple(value: Any, d: int, name: str, op: str) -> tuple[int, ...]:
    """An int or a sequence of 1 or d ints → d ints."""
    if not isinstance(value, Sequence):
        return (operator.index(value),) * d
    values = tuple(operator.index(v) for v in value)
    if len(values) == 1:
        return values * d
    if len(values) != d:
        raise RuntimeError(f"{op}: expected {name} to be a single integer or a list of {d} values to match the "
                           f"convolution dimensions, but got {name}={list(values)}")
    return values


def _batched(input: Tensor, d: int, op: str) -> bool:  # noqa: A002 (PyTorch's name)
    if input.ndim not in (d + 1, d + 2):
        raise RuntimeError(f"{op}: expected {d + 1}-D (unbatched) or {d + 2}-D (batched) input "
                           f"(N, C, {_SPATIAL_NAMES[d]}), but got input of shape {tuple(input.shape)}")
    return input.ndim == d + 2


def _check_operands(op: str, x: Tensor, weight: Tensor, bias: Tensor | None, groups: int,
                    transposed: bool) -> None:
    d = x.ndim - 2
    if weight.ndim != d + 2:
        layout = "in_channels, out_channels/groups" if transposed else "out_channels, in_channels/groups"
        raise RuntimeError(f"{op}: expected a {d + 2}-D weight ({layout}, *kernel), got shape {tuple(weight.shape)}")
    if not isinstance(groups, int) or groups < 1:
        raise RuntimeError(f"{op}: groups must be a positive integer, got {groups}")
    if x.dtype.kind != "f" or x.dtype != weight.dtype or (bias is not None and bias.dtype != x.dtype):
        dtypes = f"input {x.dtype}, weight {weight.dtype}" + ("" if bias is None else f", bias {bias.dtype}")
        raise RuntimeError(f"{op}: expected input, weight and bias of the same floating dtype, got {dtypes}")
    if weight.shape[0] % groups:
        raise RuntimeError(f"{op}: groups={groups} must divide the weight's first dim, got weight of shape "
                           f"{tuple(weight.shape)}")
    expected = weight.shape[0] if transposed else weight.shape[1] * groups
    if x.shape[1] != expected:
        raise RuntimeError(f"{op}: given groups={groups}, weight of shape {tuple(weight.shape)}, expected input "
                           f"{tuple(x.shape)} to have {expected} channels, but got {x.shape[1]} channels instead")
    out_channels = weight.shape[1] * groups if transposed else weight.shape[0]
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise RuntimeError(f"{op}: expected bias of shape ({out_channels},), got {tuple(bias.shape)}")


def _check_positive(op: str, **params: tuple[int, ...]) -> None:
    for name, values in params.items():
        if any(v <= 0 for v in values):
            raise RuntimeError(f"{op}: {name} must be positive, got {name}={values}")


def _conv_padding(padding: Any, d: int, kernel: tuple[int, ...], stride: tuple[int, ...],
                  dilation: tuple[int, ...], op: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(lo, hi) pads per dim for an int, a tuple, 'valid' or 'same'."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * d, (0,) * d
        if padding != "same":
            raise RuntimeError(f"{op}: invalid padding string {padding!r}, should be 'same' or 'valid'")
        if any(s != 1 for s in stride):
            raise RuntimeError(f"{op}: padding='same' is not supported for strided convolutions (stride={stride})")
        total = tuple(dl * (k - 1) for dl, k in zip(dilation, kernel))
        return tuple(t // 2 for t in total), tuple(t - t // 2 for t in total)
    pads = _ntuple(padding, d, "padding", op)
    if any(p < 0 for p in pads):
        raise RuntimeError(f"{op}: negative padding is not supported, got padding={pads}")
    return pads, pads


def _conv(op: str, d: int, input: Tensor, weight: Tensor, bias: Tensor | None, stride: Any,  # noqa: A002
          padding: Any, dilation: Any, groups: int) -> Tensor:
    if Autocast.enabled:
        input, weight, bias = Autocast.cast(op, input, weight, bias)
    batched = _batched(input, d, op)
    x = input if batched else unsqueeze(input, 0)
    _check_operands(op, x, weight, bias, groups, transposed=False)
    kernel = tuple(weight.shape[2:])
    stride, dilation = _ntuple(stride, d, "stride", op), _ntuple(dilation, d, "dilation", op)
    _check_positive(op, stride=stride, dilation=dilation)
    lo, hi = _conv_padding(padding, d, kernel, stride, dilation, op)
    geom = ConvGeometry(tuple(x.shape[2:]), kernel, stride, dilation, lo, hi, groups)
    span = tuple(dl * (k - 1) + 1 for dl, k in zip(dilation, kernel))
    if any(p < s for p, s in zip(geom.padded, span)):
        raise RuntimeError(f"{op}: the input of shape {tuple(input.shape)} padded to {geom.padded} is smaller than "
                           f"the dilated kernel {span} (kernel {kernel}, dilation {dilation})")
    args = (x, weight) if bias is None else (x, weight, bias)
    y = Convolution(geom)(*args)
    return y if batched else squeeze(y, 0)


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,  # noqa: A002
           padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
    """1-D convolution (cross-correlation, as every DL library): (N, C, L) with weight (O, C/groups, k)."""
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,  # noqa: A002
           padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
    """2-D convolution: (N, C, H, W) with weight (O, C/groups, kh, kw) → (N, O, OH, OW)."""
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,  # noqa: A002
           padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
    """3-D convolution: (N, C, D, H, W) with weight (O, C/groups, kd, kh, kw)."""
    return _conv("conv3d", 3, input, weight, bias, stride, padding, dilation, groups)


def _transpose_geometry(op: str, x: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...],
                        pads: tuple[int, ...], output_padding: tuple[int, ...], dilation: tuple[int, ...],
                        groups: int) -> ConvGeometry:
    """The geometry of the conv whose adjoint this transposed conv is: it maps the transposed
    conv's output (size = (H−1)·S − 2P + D·(K−1) + output_padding + 1) back to its input size."""
    if any(op_ >= s and op_ >= dl for op_, s, dl in zip(output_padding, stride, dilation)) or min(output_padding) < 0:
        raise RuntimeError(f"{op}: output padding must be non-negative and smaller than either stride or dilation, "
                           f"but got output_padding={output_padding}, stride={stride}, dilation={dilation}")
    inputs = tuple(x.shape[2:])
    size = tuple((h - 1) * s - 2 * p + dl * (k - 1) + o + 1
                 for h, s, p, dl, k, o in zip(inputs, stride, pads, dilation, kernel, output_padding))
    if any(s <= 0 for s in size):
        raise RuntimeError(f"{op}: the output size {size} computed for the input of shape {tuple(x.shape)} "
                           f"(stride {stride}, padding {pads}, dilation {dilation}, kernel {kernel}, "
                           f"output_padding {output_padding}) is too small")
    return ConvGeometry(size, kernel, stride, dilation, pads, pads, groups, out=inputs)


def _conv_transpose(op: str, d: int, input: Tensor, weight: Tensor, bias: Tensor | None, stride: Any,  # noqa: A002
                    padding: Any, output_padding: Any, groups: int, dilation: Any) -> Tensor:
    if Autocast.enabled:
        input, weight, bias = Autocast.cast(op, input, weight, bias)
    batched = _batched(input, d, op)
    x = input if batched else unsqueeze(input, 0)
    _check_operands(op, x, weight, bias, groups, transposed=True)
    if isinstance(padding, str):
        raise RuntimeError(f"{op}: padding must be an int or a tuple of ints, got {padding!r}")
    stride, dilation = _ntuple(stride, d, "stride", op), _ntuple(dilation, d, "dilation", op)
    pads, output_padding = _ntuple(padding, d, "padding", op), _ntuple(output_padding, d, "output_padding", op)
    _check_positive(op, stride=stride, dilation=dilation)
    if any(p < 0 for p in pads):
        raise RuntimeError(f"{op}: negative padding is not supported, got padding={pads}")
    geom = _transpose_geometry(op, x, tuple(weight.shape[2:]), stride, pads, output_padding, dilation, groups)
    args = (x, weight) if bias is None else (x, weight, bias)
    y = ConvTranspose(geom)(*args)
    return y if batched else squeeze(y, 0)


def conv_transpose1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,  # noqa: A002
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1, dilation: Any = 1) -> Tensor:
    """1-D transposed convolution (the adjoint of conv1d in its input), weight (C_in, C_out/groups, k)."""
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,  # noqa: A002
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1, dilation: Any = 1) -> Tensor:
    """2-D transposed convolution ("deconvolution"): learnable upsampling, weight (C_in, C_out/groups, kh, kw)."""
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose3d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,  # noqa: A002
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1, dilation: Any = 1) -> Tensor:
    """3-D transposed convolution, weight (C_in, C_out/groups, kd, kh, kw)."""
    return _conv_transpose("conv_transpose3d", 3, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)

