"""``deepnum.onnx``: export a model to an ONNX file that onnxruntime (or any ONNX runtime) can run.

    deepnum.onnx.export(model, torch_like_example_input, "model.onnx")

The model's forward runs once on the example input in eval mode while every autograd ``Function``
call is recorded (``_trace``); ops computed only from parameters and constants are folded into
initializers, and every other op is converted by a small function registered for its Function
class (``_ops``, ``_ops_nn``, ``_ops_rnn``; ``converters()`` lists them). Parameters and buffers
keep their ``state_dict`` names as initializer names. With ``dynamic_batch`` the forward runs a
second time at another batch size: the sizes that change are multiples k·N of the batch size N and
are computed from the input's shape in the graph, so the file runs at any batch size. The model is
checked with ``onnx.checker.check_model(full_check=True)`` before the file is written (atomically).
See docs/onnx.md for the supported ops and the pitfalls (IR version, Gemm's transB, Softmax's axis,
recurrent gate orders).
"""
from __future__ import annotations

import os
from typing import Any

from deepnum.nn.modules.module import Module
from deepnum.onnx import _ops, _ops_nn, _ops_rnn  # noqa: F401  (registers the converters)
from deepnum.onnx._export import export_model
from deepnum.onnx._graph import ExportError

__all__ = ["ExportError", "converters", "export"]


def export(model: Module, example_input: Any, path: str | os.PathLike, dynamic_batch: bool = True,
           opset_version: int = 17, input_names: list[str] | None = None, output_names: list[str] | None = None,
           batch_axis: int = 0) -> Any:
    """Write ``model`` as an ONNX file at ``path`` and return the ``onnx.ModelProto``.

    ``example_input``: a Tensor or a tuple of Tensors, passed to ``model(*inputs)``; ``dynamic_batch``
    makes axis ``batch_axis`` of every input (and what follows from it) symbolic, named ``batch``
    (use ``batch_axis=1`` for sequence-first recurrent models); ``opset_version`` >= 14. The names
    default to ``input``/``output`` (``input_0``, ``input_1``... when there are several). An op with no
    ONNX converter raises ``ExportError`` naming its Function class and module path, before any
    file is written. Needs ``pip install 'deepnum[onnx]'``."""
    return export_model(model, example_input, path, dynamic_batch, opset_version, input_names, output_names,
                        batch_axis)


def converters() -> list[str]:
    """The deepnum Function classes that have an ONNX converter, as ``module.Class`` names."""
    return sorted(f"{cls.__module__}.{cls.__name__}" for cls in _ops.CONVERTERS)
