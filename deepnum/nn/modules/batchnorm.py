"""Batch normalisation layers, as torch.nn.modules.batchnorm: ``BatchNorm1d``, ``BatchNorm2d``,
``BatchNorm3d``. In training they normalise with the statistics of the batch and keep running
averages of them; in evaluation they normalise with those running averages (Ioffe & Szegedy 2015)."""
from __future__ import annotations

from typing import Any

from deepnum.autograd.grad_mode import is_grad_enabled
from deepnum.backend import device_of, get_array_module, int64
from deepnum.creation import empty, ones, tensor, zeros
from deepnum.functional._fused_block import AddReLU, channel_rows, folded_conv3x3, relu_channels
from deepnum.functional.conv import conv2d
from deepnum.functional.normalization import batch_norm_act, verify_batch_size
from deepnum.nn import init
from deepnum.nn.modules.activation import ReLU
from deepnum.nn.modules.conv import _Conv
from deepnum.nn.modules.module import Module
from deepnum.nn.parameter import Parameter
from deepnum.tensor import Tensor

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d"]


class _NormBase(Module):
    """Parameters γ (``weight``, ones) and β (``bias``, zeros) when ``affine``; buffers
    ``running_mean`` (zeros), ``running_var`` (ones) and ``num_batches_tracked`` (int64) when
    ``track_running_stats``, under PyTorch's state_dict keys."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device: Any = None, dtype: Any = None, *,
                 bias: bool = True) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(empty(num_features, dtype=dtype, device=device))
            beta = Parameter(empty(num_features, dtype=dtype, device=device)) if bias else None
            self.register_parameter("bias", beta)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, dtype=dtype, device=device))
            self.register_buffer("running_var", ones(num_features, dtype=dtype, device=device))
            self.register_buffer("num_batches_tracked", tensor(0, dtype=int64, device=device))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches seen."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    """Training: batch statistics, and (when tracked) running averages updated with ``momentum``,
    or with 1/num_batches_tracked (a cumulative average) when ``momentum=None``. Evaluation: the
    running averages; batch statistics again when ``track_running_stats=False``."""

    _layouts: tuple[str, ...] = ()  # the accepted input layouts, C standing for num_features

    def _check_input_dim(self, input: Tensor) -> None:  # noqa: A002
        ndims = tuple(layout.count(",") + 1 for layout in self._layouts)
        if not isinstance(input, Tensor) or input.ndim not in ndims or input.shape[1] != self.num_features:
            expected = " or ".join(layout.replace("C", str(self.num_features)) for layout in self._layouts)
            got = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise ValueError(f"{type(self).__name__}({self.num_features}): expected input {expected}, got {got}")

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return self.forward_act(input)

    def forward_act(self, input: Tensor, relu: bool = False, residual: Tensor | None = None) -> Tensor:  # noqa: A002
        """``forward``, plus ``residual`` if given, then ReLU when ``relu`` (one op on a convolution's
        output; used by ``bn_relu`` and ResNet's blocks)."""
        self._check_input_dim(input)
        use_batch_stats = self.training or self.running_mean is None
        if use_batch_stats:  # before any buffer changes
            verify_batch_size(tuple(input.shape), f"{type(self).__name__}({self.num_features}): ")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / int(self.num_batches_tracked.item())
        update = not self.training or self.track_running_stats
        return batch_norm_act(input, self.running_mean if update else None, self.running_var if update else None,
                              self.weight, self.bias, use_batch_stats, factor, self.eps, relu, residual)


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) inputs: statistics per feature over N (and L)."""

    _layouts = ("(N, C)", "(N, C, L)")


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) inputs: statistics per channel over N, H and W."""

    _layouts = ("(N, C, H, W)",)


class BatchNorm3d(_BatchNorm):
    """Batch norm over (N, C, D, H, W) inputs: statistics per channel over N, D, H and W."""

    _layouts = ("(N, C, D, H, W)",)


def bn_relu(bn: Module, relu: Module, x: Tensor) -> Tensor:
    """``relu(bn(x))`` with the two fused into one op (``deepnum.functional._fused_block``) when that
    changes nothing observable: ``bn`` is a plain batch-norm layer, ``relu`` a plain ``ReLU``,
    neither has hooks."""
    if _fusable(bn, relu):
        return bn.forward_act(x, relu=True)
    return relu(bn(x))


def _plain(*modules: Module) -> bool:
    """No hooks on any of the modules: fusing them cannot change what anyone observes."""
    return not any(m._forward_hooks or m._forward_pre_hooks for m in modules)


def _fusable(bn: Module, relu: Module | None) -> bool:
    """A plain batch-norm layer and a plain ReLU (or none), no hooks on either."""
    return (isinstance(bn, _BatchNorm) and type(bn).forward is _BatchNorm.forward and _plain(bn)
            and (relu is None or (type(relu) is ReLU and _plain(relu))))


def conv_bn(conv: Module, bn: Module, x: Tensor, relu: Module | None = None,
            residual: Tensor | None = None) -> Tensor:
    """``bn(conv(x))``, plus ``residual`` and then ``relu`` where given, computed faster where
    nothing observable changes:

    - inference (``bn`` in eval mode, grad mode off): BN is folded into the convolution,
      w' = w·k and b' = β + (b − μ)·k with k = γ/√(σ² + ε) per output channel (the running
      statistics); the residual is added and the ReLU applied in place: one op instead of four
      (for float32 3×3 stride-1 convolutions one Winograd op, ``_fused_block.FoldedConv3x3``);
    - otherwise BN, the residual addition and the ReLU run as one op (``BatchNormRows``).
    Any other module (a norm layer that is not batch norm, a hooked module) runs as written."""
    if not _fusable(bn, relu):
        y = bn(conv(x))
        y = y if residual is None else (y + residual if relu is None else add_relu(relu, y, residual))
        return y if relu is None or residual is not None else relu(y)
    if is_grad_enabled() or bn.training or not _foldable(conv, bn):
        return bn.forward_act(conv(x), relu=relu is not None, residual=residual)
    xp = get_array_module(conv.weight.data)
    k = 1 / xp.sqrt(bn.running_var.data + bn.eps)
    if bn.weight is not None:
        k = k * bn.weight.data
    shift = -bn.running_mean.data if conv.bias is None else conv.bias.data - bn.running_mean.data
    shift = shift * k + (0 if bn.bias is None else bn.bias.data)
    w = conv.weight.data * k.reshape((-1,) + (1,) * (conv.weight.ndim - 1))
    dtype = conv.weight.dtype
    w, shift = w.astype(dtype, copy=False), shift.astype(dtype, copy=False)
    y = folded_conv3x3(x, w, shift, conv, residual, relu is not None) if x.device == "cpu" else None  # NumPy
    if y is not None:
        return y
    y = conv2d(x, Tensor._make(w), Tensor._make(shift), conv.stride, conv.padding, conv.dilation, conv.groups)
    if residual is not None:
        y.data += residual.data  # no graph is recorded: y is this call's own array
    if relu is not None:
        rows = channel_rows(y.data) if device_of(y.data) == "cpu" else None  # fused: NumPy only
        relu_channels(rows) if rows is not None else xp.maximum(y.data, 0, out=y.data)
    return y


def _foldable(conv: Module, bn: Module) -> bool:
    """A plain convolution (zero padding, no hooks) followed by a batch norm with running statistics."""
    return (isinstance(conv, _Conv) and type(conv).forward is _Conv.forward and conv.padding_mode == "zeros"
            and bn.running_mean is not None and _plain(conv))


def add_relu(relu: Module, a: Tensor, b: Tensor) -> Tensor:
    """``relu(a + b)``, the end of a residual block, as one op when ``relu`` is a plain ReLU."""
    if (type(relu) is ReLU and _plain(relu) and a.shape == b.shape and a.dtype == b.dtype
            and a.device == b.device == "cpu"):  # the fused op is for NumPy arrays
        return AddReLU()(a, b)
    return relu(a + b)
