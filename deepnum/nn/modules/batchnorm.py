"""Batch normalisation layers, as torch.nn.modules.batchnorm: ``BatchNorm1d``, ``BatchNorm2d``,
``BatchNorm3d``. In training they normalise with the statistics of the batch and keep running
averages of them; in evaluation they normalise with those running averages (Ioffe & Szegedy 2015)."""
from __future__ import annotations

from typing import Any

from deepnum.backend import int64
from deepnum.creation import empty, ones, tensor, zeros
from deepnum.functional.normalization import batch_norm_act, verify_batch_size
from deepnum.nn import init
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

    def forward_act(self, input: Tensor, relu: bool = False) -> Tensor:  # noqa: A002
        """``forward``, then ReLU when ``relu`` (fused into one op on a convolution's output; used
        by ``bn_relu``)."""
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
                              self.weight, self.bias, use_batch_stats, factor, self.eps, relu)


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
    """``relu(bn(x))`` with the two fused into one op (``deepnum.functional._fused_block``) when that changes nothing
    observable: ``bn`` is a plain batch-norm layer, ``relu`` a plain ``ReLU``, neither has hooks."""
    from deepnum.nn.modules.activation import ReLU

    plain = (isinstance(bn, _BatchNorm) and type(bn).forward is _BatchNorm.forward and type(relu) is ReLU
             and not bn._forward_hooks
             and not bn._forward_pre_hooks and not relu._forward_hooks and not relu._forward_pre_hooks)
    return bn.forward_act(x, relu=True) if plain else relu(bn(x))
