"""Utilities: gradient clipping (``clip_grad``), packed and padded sequences (``rnn``)."""
from deepnum.nn.utils import rnn  # noqa: F401
from deepnum.nn.utils.clip_grad import (  # noqa: F401
    clip_grad_norm_,
    clip_grad_value_,
    clip_grads_with_norm_,
    get_total_norm,
)
