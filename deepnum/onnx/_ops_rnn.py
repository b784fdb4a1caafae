"""The recurrent layers: deepnum runs one fused ``RNNLayer`` op per layer and direction, which becomes
one ONNX LSTM / GRU / RNN node with ``num_directions = 1`` (``direction="reverse"`` for the backward
half of a bidirectional layer; the concatenation of the two halves is its own traced op).

Gate orders differ (ONNX operators LSTM and GRU): PyTorch stacks the LSTM's gates as i, f, g, o
and ONNX as i, o, f, c; PyTorch's GRU as r, z, n and ONNX as z, r, h. PyTorch's GRU applies the
reset gate after the recurrent matmul, r ∘ (W_hn·h + b_hn), which is ONNX's ``linear_before_reset=1``.
"""
from __future__ import annotations

import numpy as np

from deepnum.functional.rnn import RNNLayer
from deepnum.onnx._graph import Call, Graph, host
from deepnum.onnx._ops import converts

_GATES = {"LSTM": (4, [0, 3, 1, 2], "iofc"), "GRU": (3, [1, 0, 2], "zrh"),
          "RNN_TANH": (1, [0], ""), "RNN_RELU": (1, [0], "")}
_OPS = {"LSTM": "LSTM", "GRU": "GRU", "RNN_TANH": "RNN", "RNN_RELU": "RNN"}


def _reorder(array: np.ndarray, mode: str) -> np.ndarray:
    gates, order, _ = _GATES[mode]
    blocks = np.split(np.asarray(array), gates, axis=0)
    return np.concatenate([blocks[i] for i in order], axis=0)


def _weights(g: Graph, c: Call, given: dict[str, int], mode: str) -> list[str]:
    """W, R and B of the ONNX node, (1, gates·H, ·), reordered from PyTorch's gate order."""
    _, _, tag = _GATES[mode]
    data = {k: host(c.inputs[i].data) for k, i in given.items()}
    suffix = f".onnx_{tag}" if tag else ".onnx"

    def put(key: str, value: np.ndarray) -> str:
        return g.add_initializer(c.names[given[key]] + suffix, value[None])

    w = put("w_ih", _reorder(data["w_ih"], mode))
    r = put("w_hh", _reorder(data["w_hh"], mode))
    if "b_ih" not in data:
        return [w, r]
    bias = np.concatenate([_reorder(data["b_ih"], mode), _reorder(data["b_hh"], mode)])
    return [w, r, put("b_ih", bias)]


@converts(RNNLayer)
def _rnn_layer(g: Graph, c: Call) -> list[str]:
    fn = c.fn
    given = {n: i for i, n in enumerate(fn.names)}
    if "w_hr" in given:
        raise c.error("an LSTM with proj_size > 0 (ONNX's LSTM has no projection)")
    if fn.sizes is not None:
        raise c.error("packed (variable-length) sequences are not supported")
    x = c.names[given["x"]]
    if fn.batch_first:
        x = g.one("Transpose", [x], c.path, perm=[1, 0, 2])
    hidden = int(c.inputs[given["w_hh"]].shape[1])
    inputs = [x, *_weights(g, c, given, fn.mode)]
    inputs += [""] * (4 - len(inputs)) + [""]  # B (when absent) and sequence_lens
    inputs.append(g.one("Unsqueeze", [c.names[given["h0"]], g.ints([0])], c.path))
    attrs = {"hidden_size": hidden, "direction": "reverse" if fn.reverse else "forward"}
    if fn.mode == "LSTM":
        inputs.append(g.one("Unsqueeze", [c.names[given["c0"]], g.ints([0])], c.path))
    elif fn.mode == "GRU":
        attrs["linear_before_reset"] = 1
    else:
        attrs["activations"] = ["Relu" if fn.mode == "RNN_RELU" else "Tanh"]
    n_out = 3 if fn.mode == "LSTM" else 2
    outs = g.node(_OPS[fn.mode], inputs, n_out, c.path, **attrs)
    y = g.one("Squeeze", [outs[0], g.ints([1])], c.path)  # (T, 1, N, H) -> (T, N, H)
    if fn.batch_first:
        y = g.one("Transpose", [y], c.path, perm=[1, 0, 2])
    states = [g.one("Squeeze", [s, g.ints([0])], c.path) for s in outs[1:]]
    return [y, *states]
