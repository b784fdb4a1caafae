"""Convolution layers, as ``torch.nn.modules.conv``: Conv1d/2d/3d and ConvTranspose1d/2d/3d.

A conv layer is local connectivity plus parameter sharing: every output pixel sees only a small
window of the input, and the same filter (weight (out, in/groups, *kernel) plus one bias per
filter) slides over every position, so shifting the input shifts the output (translation
equivariance). A K×K conv C_in→C_out has K·K·C_in·C_out/groups weights whatever the image size.
The transposed conv ("deconvolution") is the adjoint map, used for learnable upsampling; its
weight is laid out (in, out/groups, *kernel). The computation is ``deepnum.functional.conv``.
"""
from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

from deepnum.creation import empty
from deepnum.functional import conv as C
from deepnum.functional.joining import pad
from deepnum.nn import init
from deepnum.nn.modules.module import Module
from deepnum.nn.parameter import Parameter
from deepnum.tensor import Tensor

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]

_SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}
_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _ntuple(value: Any, d: int, name: str, label: str) -> tuple[int, ...]:
    values = (operator.index(value),) * d if not isinstance(value, Sequence) else tuple(map(operator.index, value))
    if len(values) != d:
        raise ValueError(f"{label}: expected {name} to be an int or a tuple of {d} ints, got {value!r}")
    return values


class _ConvNd(Module):
    """What every conv layer shares: argument checks, parameters, PyTorch's default initialisation
    (W ~ kaiming_uniform(a=√5) = U(±1/√fan_in), b ~ U(±1/√fan_in), fan_in = in/groups·∏kernel),
    and the repr."""

    _dims = 2
    transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any, padding: Any,
                 dilation: Any, output_padding: Any, groups: int, bias: bool, padding_mode: str,
                 device: Any = None, dtype: Any = None) -> None:
        d, label = self._dims, f"{type(self).__name__}({in_channels}→{out_channels})"
        kernel_size, stride = _ntuple(kernel_size, d, "kernel_size", label), _ntuple(stride, d, "stride", label)
        dilation = _ntuple(dilation, d, "dilation", label)
        output_padding = _ntuple(output_padding, d, "output_padding", label)
        if not isinstance(padding, str):
            padding = _ntuple(padding, d, "padding", label)
        self._check_arguments(label, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                              padding_mode)
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.dilation, self.output_padding = stride, padding, dilation, output_padding
        self.groups, self.padding_mode = groups, padding_mode
        self._label = label
        self._reversed_padding_repeated_twice = self._reversed_padding(padding, kernel_size, dilation)
        shape = ((in_channels, out_channels // groups) if self.transposed
                 else (out_channels, in_channels // groups)) + kernel_size
        self.weight = Parameter(empty(*shape, dtype=dtype, device=device))
        self.register_parameter("bias", Parameter(empty(out_channels, dtype=dtype, device=device)) if bias else None)
        self.reset_parameters()

    def _check_arguments(self, label: str, in_channels: int, out_channels: int, kernel_size: tuple[int, ...],
                         stride: tuple[int, ...], padding: Any, dilation: tuple[int, ...], groups: int,
                         padding_mode: str) -> None:
        if not isinstance(groups, int) or groups <= 0:
            raise ValueError(f"{label}: groups must be a positive integer, got {groups!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{label}: groups={groups} must divide both in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        for name, values in (("kernel_size", kernel_size), ("stride", stride), ("dilation", dilation)):
            if any(v <= 0 for v in values):
                raise ValueError(f"{label}: {name} must be positive, got {name}={values}")
        if isinstance(padding, str):
            if self.transposed or padding not in ("same", "valid"):
                allowed = "an int or a tuple" if self.transposed else "an int, a tuple, 'same' or 'valid'"
                raise ValueError(f"{label}: invalid padding {padding!r}, should be {allowed}")
            if padding == "same" and any(s != 1 for s in stride):
                raise ValueError(f"{label}: padding='same' is not supported for strided convolutions "
                                 f"(stride={stride})")
        elif any(p < 0 for p in padding):
            raise ValueError(f"{label}: padding must be non-negative, got padding={padding}")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{label}: padding_mode must be one of {_PADDING_MODES}, but got "
                             f"padding_mode={padding_mode!r}")
        if self.transposed and padding_mode != "zeros":
            raise ValueError(f'{label}: only "zeros" padding mode is supported for {type(self).__name__}')

    @staticmethod
    def _reversed_padding(padding: Any, kernel_size: tuple[int, ...], dilation: tuple[int, ...]) -> list[int]:
        """F.pad's widths (last dim first, before/after): 'same' puts the smaller half first."""
        if padding == "valid":
            return [0, 0] * len(kernel_size)
        if padding == "same":
            totals = [d * (k - 1) for d, k in zip(dilation, kernel_size)]
            return [w for t in reversed(totals) for w in (t // 2, t - t // 2)]
        return [p for p in reversed(padding) for _ in range(2)]

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def _check_input(self, input: Tensor) -> None:  # noqa: A002 (PyTorch's name)
        d = self._dims
        if input.ndim not in (d + 1, d + 2) or input.shape[-d - 1] != self.in_channels:
            raise ValueError(f"{self._label}: expected input (N, {self.in_channels}, {_SPATIAL[d]}), "
                             f"got {tuple(input.shape)}")
        if self.transposed:
            return
        widths = self._reversed_padding_repeated_twice
        spatial = tuple(input.shape[-d:])
        padded = tuple(s + widths[2 * (d - 1 - i)] + widths[2 * (d - 1 - i) + 1] for i, s in enumerate(spatial))
        span = tuple(dl * (k - 1) + 1 for dl, k in zip(self.dilation, self.kernel_size))
        if any(p < s for p, s in zip(padded, span)):
            raise ValueError(f"{self._label}: input {tuple(input.shape)} padded to {padded} is smaller than the "
                             f"dilated kernel {span} (kernel_size={self.kernel_size}, dilation={self.dilation})")

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._dims:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._dims:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self._dims:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class _Conv(_ConvNd):
    """y = conv(x, W) + b; padding_mode other than 'zeros' pads with ``F.pad`` first, then convolves
    without padding (as PyTorch)."""

    _function = staticmethod(C.conv2d)

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, 0, groups, bias,
                         padding_mode, device, dtype)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        self._check_input(input)
        if self.padding_mode != "zeros":
            input = pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)  # noqa: A001
            return self._function(input, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return self._function(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv1d(_Conv):
    """1-D convolution over (N, C_in, L) (e.g. time series); weight (C_out, C_in/groups, k)."""

    _dims = 1
    _function = staticmethod(C.conv1d)


class Conv2d(_Conv):
    """2-D convolution over (N, C_in, H, W) images; weight (C_out, C_in/groups, kh, kw)."""

    _dims = 2
    _function = staticmethod(C.conv2d)


class Conv3d(_Conv):
    """3-D convolution over (N, C_in, D, H, W) volumes; weight (C_out, C_in/groups, kd, kh, kw)."""

    _dims = 3
    _function = staticmethod(C.conv3d)


class _ConvTranspose(_ConvNd):
    """x = conv_transpose(y, W) + b, the adjoint of a conv: it maps H to (H−1)·S − 2P + D·(K−1) +
    output_padding + 1. ``forward(input, output_size)`` picks output_padding to reach ``output_size``."""

    transposed = True
    _function = staticmethod(C.conv_transpose2d)

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 output_padding: Any = 0, groups: int = 1, bias: bool = True, dilation: Any = 1,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, output_padding, groups,
                         bias, padding_mode, device, dtype)

    def _output_padding(self, input: Tensor, output_size: Any) -> tuple[int, ...]:  # noqa: A002
        if output_size is None:
            return self.output_padding
        d = self._dims
        size = tuple(int(s) for s in output_size)
        if len(size) == input.ndim:
            size = size[-d:]
        if len(size) != d:
            raise ValueError(f"{self._label}: output_size must have {d} or {input.ndim} elements, got {output_size}")
        smallest = tuple((h - 1) * s - 2 * p + dl * (k - 1) + 1 for h, s, p, dl, k in
                         zip(input.shape[-d:], self.stride, self.padding, self.dilation, self.kernel_size))
        largest = tuple(m + s - 1 for m, s in zip(smallest, self.stride))
        if any(not lo <= n <= hi for n, lo, hi in zip(size, smallest, largest)):
            raise ValueError(f"{self._label}: requested an output size of {list(size)}, but valid sizes range from "
                             f"{list(smallest)} to {list(largest)} (for an input of {tuple(input.shape[-d:])})")
        return tuple(n - m for n, m in zip(size, smallest))

    def forward(self, input: Tensor, output_size: Any = None) -> Tensor:  # noqa: A002
        self._check_input(input)
        output_padding = self._output_padding(input, output_size)
        return self._function(input, self.weight, self.bias, self.stride, self.padding, output_padding, self.groups,
                              self.dilation)


class ConvTranspose1d(_ConvTranspose):
    """1-D transposed convolution; weight (C_in, C_out/groups, k)."""

    _dims = 1
    _function = staticmethod(C.conv_transpose1d)


class ConvTranspose2d(_ConvTranspose):
    """2-D transposed convolution (learnable upsampling, as in DCGAN); weight (C_in, C_out/groups, kh, kw)."""

    _dims = 2
    _function = staticmethod(C.conv_transpose2d)


class ConvTranspose3d(_ConvTranspose):
    """3-D transposed convolution; weight (C_in, C_out/groups, kd, kh, kw)."""

    _dims = 3
    _function = staticmethod(C.conv_transpose3d)

