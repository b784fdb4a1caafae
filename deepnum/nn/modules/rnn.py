"""Recurrent layers, as ``torch.nn``: ``RNN`` (Elman 1990), ``LSTM`` (Hochreiter & Schmidhuber 1997,
with the forget gate of Gers et al. 2000), ``GRU`` (Cho et al. 2014), multi-layer, bidirectional,
``batch_first``, dropout between layers, initial states, PyTorch's parameter names and gate order,
variable-length batches (``PackedSequence`` inputs, or ``lengths=``), LSTM projections
(``proj_size``, Sak et al. 2014), and the single-step cells ``RNNCell``, ``LSTMCell``, ``GRUCell``.
The equations are in ``deepnum.functional.rnn``.

Each layer and direction runs as one fused op (``deepnum.functional.rnn.rnn_layer``): the time loop
and backpropagation through time run on raw arrays.

deepnum extension: ``forward(input, hx=None, *, lengths=None)``. With ``lengths`` (one int per
sequence) on a padded input, the result equals pack_padded_sequence → layer →
pad_packed_sequence(total_length=L): outputs past each sequence's end are 0, the final states are
each sequence's last valid step, and the reverse direction starts at each sequence's own last
element. The lengths need not be sorted.
"""
from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np

from deepnum.creation import empty
from deepnum.functional.array import squeeze, unsqueeze
from deepnum.functional.dropout import dropout as _dropout
from deepnum.functional.indexing import index_select
from deepnum.functional.joining import cat, stack
from deepnum.functional.rnn import gru_cell, lstm_cell, rnn_layer, rnn_relu_cell, rnn_tanh_cell, zeros_state
from deepnum.nn import init
from deepnum.nn.modules.module import Module
from deepnum.nn.parameter import Parameter
from deepnum.nn.utils.rnn import PackedSequence, _int_lengths, host, packed_to_padded, padded_to_packed
from deepnum.tensor import Tensor

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNBase", "RNNCell", "RNNCellBase"]

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def _check_config(mode: str, input_size: Any, hidden_size: Any, num_layers: int, bias: Any, batch_first: Any,
                  dropout: Any, proj_size: int) -> None:
    """PyTorch's constructor checks, with its messages."""
    if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
        raise ValueError("dropout should be a number in range [0, 1] representing the probability of an element "
                         "being zeroed")
    if dropout > 0 and num_layers == 1:
        warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout expects "
                      f"num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
                      stacklevel=3)
    for name, value, kind in (("bias", bias, bool), ("batch_first", batch_first, bool),
                              ("input_size", input_size, int), ("hidden_size", hidden_size, int)):
        if not isinstance(value, kind):
            raise TypeError(f"{name} should be of type {kind.__name__}, got: {type(value).__name__}")
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
        if value <= 0:
            raise ValueError(f"{name} must be greater than zero")
    if proj_size < 0:
        raise ValueError("proj_size should be a positive integer or zero to disable projections")
    if proj_size >= hidden_size:
        raise ValueError("proj_size has to be smaller than hidden_size")
    if mode not in _GATES:
        raise ValueError("Unrecognized RNN mode: " + mode)


class RNNBase(Module):
    """The multi-layer recurrent layer shared by ``RNN``, ``LSTM`` and ``GRU`` (``mode`` one of
    'RNN_TANH', 'RNN_RELU', 'LSTM', 'GRU'). Parameters per layer k and direction:
    ``weight_ih_l{k}`` (G·H, input), ``weight_hh_l{k}`` (G·H, H), ``bias_ih_l{k}``, ``bias_hh_l{k}``
    (G·H) with G = 4 (LSTM), 3 (GRU) or 1 gate blocks, and ``..._reverse`` for the backward
    direction; every one initialised U(-1/√H, 1/√H), as PyTorch. An LSTM with ``proj_size`` P > 0
    (Sak et al. 2014) adds ``weight_hr_l{k}`` (P, H), h_t = W_hr (o ⊙ tanh(c_t)), and its h and
    outputs have P features."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        _check_config(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout, proj_size)
        if proj_size > 0 and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        gate_size = _GATES[mode] * hidden_size
        directions = 2 if bidirectional else 1
        self._flat_weights_names: list[str] = []
        self._all_weights: list[list[str]] = []
        real_hidden = proj_size if proj_size > 0 else hidden_size
        for layer in range(num_layers):
            for direction in range(directions):
                layer_input = input_size if layer == 0 else real_hidden * directions
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = {"weight_ih": (gate_size, layer_input), "weight_hh": (gate_size, real_hidden)}
                if bias:
                    shapes.update({"bias_ih": (gate_size,), "bias_hh": (gate_size,)})
                if proj_size > 0:
                    shapes["weight_hr"] = (proj_size, hidden_size)
                names = []
                for prefix, shape in shapes.items():
                    setattr(self, prefix + suffix, Parameter(empty(*shape, dtype=dtype, device=device)))
                    names.append(prefix + suffix)
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def flatten_parameters(self) -> None:
        """PyTorch compacts the weights for cuDNN here; nothing to do in deepnum."""

    @property
    def _flat_weights(self) -> list[Parameter]:
        return [getattr(self, name) for name in self._flat_weights_names]

    @property
    def all_weights(self) -> list[list[Parameter]]:
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # ----------------------------------------------------------------- checks
    @property
    def _label(self) -> str:
        return f"{type(self).__name__}({self.input_size}→{self.hidden_size})"

    def _check_features(self, x: Tensor, what: str) -> None:
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{self._label}: expected {what} of size {self.input_size} in the last dimension, "
                             f"got {tuple(x.shape)}")
        dtype = self.weight_ih_l0.dtype
        if x.dtype != dtype:
            raise ValueError(f"{self._label}: {what} dtype {x.dtype} does not match the parameters' dtype {dtype}; "
                             f"convert the input (input.to('{dtype}')) or the model (model.to('{x.dtype}'))")

    def _check_input(self, x: Any) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"{self._label}: expected a Tensor or PackedSequence input, got {type(x).__name__}")
        layout = "(N, L, H_in)" if self.batch_first else "(L, N, H_in)"
        if x.ndim not in (2, 3):
            raise ValueError(f"{self._label}: expected a batched {layout} or unbatched (L, H_in) input, got "
                             f"{x.ndim}-D input of shape {tuple(x.shape)}")
        self._check_features(x, "input")
        if x.shape[1 if self.batch_first and x.ndim == 3 else 0] == 0:
            raise ValueError(f"{self._label}: expected a sequence length > 0, got input of shape {tuple(x.shape)}")

    def _state_names(self) -> tuple[str, ...]:
        return ("h_0", "c_0") if self.mode == "LSTM" else ("h_0",)

    def _state_sizes(self) -> tuple[int, ...]:
        """Features of h (the projection size with ``proj_size``) and, for the LSTM, of c."""
        return (self.proj_size or self.hidden_size, self.hidden_size)[:len(self._state_names())]

    def _check_states(self, hx: Any, batch: int, unbatched: bool) -> list[Tensor] | None:
        """hx as a list of (D·layers, N, H) tensors (batch dim added for unbatched input), or None."""
        if hx is None:
            return None
        names = self._state_names()
        if self.mode == "LSTM":
            if not isinstance(hx, tuple | list) or len(hx) != 2:
                raise TypeError(f"{self._label}: expected hx as a tuple (h_0, c_0), got {type(hx).__name__}")
            states = list(hx)
        else:
            if not isinstance(hx, Tensor):
                raise TypeError(f"{self._label}: expected hx as a Tensor h_0, got {type(hx).__name__}")
            states = [hx]
        for i, (s, name, width) in enumerate(zip(states, names, self._state_sizes())):
            expected = (self.num_layers * (2 if self.bidirectional else 1),) + (() if unbatched else (batch,)) + (
                width,)
            what = f"hx[{i}] ({name})" if self.mode == "LSTM" else f"hx ({name})"
            if not isinstance(s, Tensor) or tuple(s.shape) != expected:
                got = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
                kind = "unbatched" if unbatched else "batched"
                raise ValueError(f"{self._label}: expected {what} of shape {expected} for the {kind} input, got {got}")
            if s.dtype != self.weight_ih_l0.dtype:
                raise ValueError(f"{self._label}: {what} dtype {s.dtype} does not match the parameters' dtype "
                                 f"{self.weight_ih_l0.dtype}")
        return [unsqueeze(s, 1) for s in states] if unbatched else states

    def _schedule(self, lengths: Any, batch: int, steps: int) -> tuple[list[int] | None, np.ndarray | None]:
        """Per-step counts of running sequences (batch sorted by decreasing length) and the sorting
        order (None when already sorted) for ``lengths=``."""
        arr = _int_lengths(lengths, f"{self._label}: lengths")
        if arr.shape != (batch,):
            raise ValueError(f"{self._label}: lengths has {arr.size} entries but the batch has {batch} sequences")
        if arr.min() < 1 or arr.max() > steps:
            raise ValueError(f"{self._label}: lengths must lie in [1, {steps}] (the input's sequence length), "
                             f"got values from {int(arr.min())} to {int(arr.max())}")
        order = None if np.all(arr[:-1] >= arr[1:]) else np.argsort(-arr, kind="stable")
        ordered = arr if order is None else arr[order]
        if ordered[-1] == steps:
            return None, order
        return (ordered[None, :] > np.arange(steps)[:, None]).sum(1).tolist(), order

    # ----------------------------------------------------------------- forward
    def forward(self, input: Any, hx: Any = None, *, lengths: Any = None) -> tuple[Any, Any]:  # noqa: A002
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError(f"{self._label}: lengths= is for padded inputs; a PackedSequence has its own")
            return self._forward_packed(input, hx)
        self._check_input(input)
        unbatched = input.ndim == 2
        batch_dim = 0 if self.batch_first else 1
        x = unsqueeze(input, batch_dim) if unbatched else input
        batch, steps = x.shape[batch_dim], x.shape[1 - batch_dim]
        states = self._check_states(hx, batch, unbatched)
        sizes, order = (None, None) if lengths is None else self._schedule(lengths, batch, steps)
        if order is not None:
            x = index_select(x, batch_dim, order)
            states = None if states is None else [index_select(s, 1, order) for s in states]
        out, finals = self._layers(x, states, sizes, self.batch_first)
        if order is not None:
            back = np.argsort(order)
            out = index_select(out, batch_dim, back)
            finals = [index_select(f, 1, back) for f in finals]
        if unbatched:
            out, finals = squeeze(out, batch_dim), [squeeze(f, 1) for f in finals]
        return out, (tuple(finals) if self.mode == "LSTM" else finals[0])

    def _forward_packed(self, sequence: PackedSequence, hx: Any) -> tuple[PackedSequence, Any]:
        data = sequence.data
        if not isinstance(data, Tensor) or data.ndim != 2:
            raise ValueError(f"{self._label}: expected PackedSequence data of shape (sum of lengths, "
                             f"{self.input_size}), got {getattr(data, 'shape', type(data).__name__)}")
        self._check_features(data, "PackedSequence data")
        batch_sizes = host(sequence.batch_sizes).astype(np.int64)
        batch, steps = int(batch_sizes[0]), len(batch_sizes)
        states = self._check_states(hx, batch, False)
        if states is not None and sequence.sorted_indices is not None:
            states = [index_select(s, 1, sequence.sorted_indices) for s in states]
        x = packed_to_padded(data, batch_sizes, steps)
        sizes = None if batch_sizes[-1] == batch else batch_sizes.tolist()
        out, finals = self._layers(x, states, sizes, False)
        if sequence.unsorted_indices is not None:
            finals = [index_select(f, 1, sequence.unsorted_indices) for f in finals]
        packed = PackedSequence(padded_to_packed(out, batch_sizes), sequence.batch_sizes, sequence.sorted_indices,
                                sequence.unsorted_indices)
        return packed, (tuple(finals) if self.mode == "LSTM" else finals[0])

    def _layers(self, x: Tensor, states: list[Tensor] | None, sizes: list[int] | None,
                batch_first: bool) -> tuple[Tensor, list[Tensor]]:
        """Run every layer and direction; returns the last layer's output and the stacked final
        states [(D·layers, N, H)] (h, and c for the LSTM)."""
        directions = 2 if self.bidirectional else 1
        batch = x.shape[0 if batch_first else 1]
        zeros = [zeros_state(x, batch, width) for width in self._state_sizes()] if states is None else None
        finals: list[list[Tensor]] = [[] for _ in self._state_names()]
        weights = self.all_weights
        for layer in range(self.num_layers):
            outs = []
            for direction in range(directions):
                k = layer * directions + direction
                state = zeros if states is None else [s[k] for s in states]
                res = rnn_layer(self.mode, x, state, weights[k], reverse=direction == 1,
                                batch_first=batch_first, sizes=sizes)
                outs.append(res[0])
                for lst, final in zip(finals, res[1:]):
                    lst.append(final)
            x = outs[0] if directions == 1 else cat(outs, -1)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = _dropout(x, self.dropout, True)
        return x, [unsqueeze(f[0], 0) if len(f) == 1 else stack(f, 0) for f in finals]


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh) (or ReLU with
    ``nonlinearity='relu'``), stacked ``num_layers`` deep, as ``torch.nn.RNN``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Any = None, dtype: Any = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size,
                         num_layers, bias, batch_first, dropout, bidirectional, 0, device, dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory (Hochreiter & Schmidhuber 1997; Gers et al. 2000), gates i, f, g, o as
    ``torch.nn.LSTM``; returns (output, (h_n, c_n))."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)


class GRU(RNNBase):
    """Gated recurrent unit (Cho et al. 2014), gates r, z, n as ``torch.nn.GRU``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         device, dtype)


# ----------------------------------------------------------------------------- cells
class RNNCellBase(Module):
    """One time step of a recurrent layer: ``weight_ih`` (G·H, input), ``weight_hh`` (G·H, H),
    ``bias_ih``, ``bias_hh`` (G·H), all U(-1/√H, 1/√H) as PyTorch. Inputs (N, input) or unbatched
    (input,); a missing hx is zeros."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.weight_ih = Parameter(empty(num_chunks * hidden_size, input_size, dtype=dtype, device=device))
        self.weight_hh = Parameter(empty(num_chunks * hidden_size, hidden_size, dtype=dtype, device=device))
        for name in ("bias_ih", "bias_hh"):
            self.register_parameter(name, Parameter(empty(num_chunks * hidden_size, dtype=dtype, device=device))
                                    if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    @property
    def _label(self) -> str:
        return f"{type(self).__name__}({self.input_size}→{self.hidden_size})"

    def _prepare(self, input: Any, states: list[Any]) -> tuple[Tensor, list[Tensor], bool]:  # noqa: A002
        """Validate; add the batch dim to unbatched inputs; zeros for missing states."""
        if not isinstance(input, Tensor) or input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            got = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise ValueError(f"{self._label}: expected input (N, {self.input_size}) or unbatched "
                             f"({self.input_size},), got {got}")
        if input.dtype != self.weight_ih.dtype:
            raise ValueError(f"{self._label}: input dtype {input.dtype} does not match the parameters' dtype "
                             f"{self.weight_ih.dtype}")
        batched = input.ndim == 2
        x = input if batched else unsqueeze(input, 0)
        expected = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
        out = []
        for i, s in enumerate(states):
            if s is None:
                out.append(zeros_state(x, x.shape[0], self.hidden_size))
                continue
            if not isinstance(s, Tensor) or tuple(s.shape) != expected or s.dtype != input.dtype:
                got = f"{tuple(s.shape)} {s.dtype}" if isinstance(s, Tensor) else type(s).__name__
                what = f"hx[{i}]" if len(states) > 1 else "hx"
                raise ValueError(f"{self._label}: expected {what} of shape {expected} and dtype {input.dtype}, "
                                 f"got {got}")
            out.append(s if batched else unsqueeze(s, 0))
        return x, out, batched

    def _weights(self) -> tuple[Tensor, ...]:
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh


class RNNCell(RNNCellBase):
    """h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh) (Elman 1990), or ReLU, as ``torch.nn.RNNCell``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device: Any = None, dtype: Any = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:  # noqa: A002
        x, (h,), batched = self._prepare(input, [hx])
        cell = rnn_tanh_cell if self.nonlinearity == "tanh" else rnn_relu_cell
        out = cell(x, h, *self._weights())
        return out if batched else squeeze(out, 0)


class LSTMCell(RNNCellBase):
    """One LSTM step (Hochreiter & Schmidhuber 1997; Gers et al. 2000): returns (h', c'), as
    ``torch.nn.LSTMCell``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:  # noqa: A002
        if hx is not None and (not isinstance(hx, tuple | list) or len(hx) != 2):
            raise ValueError(f"{self._label}: expected hx as a tuple (h_0, c_0), got {type(hx).__name__}")
        x, (h, c), batched = self._prepare(input, [None, None] if hx is None else list(hx))
        h, c = lstm_cell(x, (h, c), *self._weights())
        return (h, c) if batched else (squeeze(h, 0), squeeze(c, 0))


class GRUCell(RNNCellBase):
    """One GRU step (Cho et al. 2014), as ``torch.nn.GRUCell``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:  # noqa: A002
        x, (h,), batched = self._prepare(input, [hx])
        out = gru_cell(x, h, *self._weights())
        return out if batched else squeeze(out, 0)
