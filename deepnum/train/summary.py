"""``summary(model, input_size)``: a Keras-style table of a model's layers, built by running one
forward pass on zeros with forward hooks on every layer (the torchsummary / torchinfo idea).

Per layer: dotted name and type, output shape, its own parameter count, trainable or frozen, and
multiply-accumulates (MACs) for the layers that dominate compute:

* ``Linear``: in·out per output row, MACs = weight.numel() · (output.numel() / out_features).
* ``Conv1d/2d/3d``: each output element is a dot product over (C_in/groups)·∏kernel inputs, so
  MACs = output.numel() · (C_in/groups)·∏k; e.g. a 3×3, 128→128 convolution on an H×W map costs
  147,456·H·W.
* ``ConvTranspose*``: each input element is scattered through (C_out/groups)·∏k weights, so
  MACs = input.numel() · (C_out/groups)·∏k.

Other layers (activations, pooling, normalisation, dropout) are counted as 0 MACs: their cost is
O(elements), small next to the matrix products. Biases are additions, not MACs. MACs are for the
batch run (``batch_size``, 1 by default, so per sample). FLOPs ≈ 2·MACs.

Totals count every parameter of the model once (also those no forward reached): total, trainable
(``requires_grad``) and non-trainable (frozen) parameters, and parameter memory in bytes.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from deepnum import backend
from deepnum.autograd.grad_mode import no_grad
from deepnum.creation import zeros
from deepnum.tensor import Tensor

__all__ = ["LayerSummary", "ModelSummary", "summary"]


@dataclass
class LayerSummary:
    """One row: a layer call. ``params`` counts the layer's own parameters (0 on a repeated call of a
    shared layer); ``trainable`` is 'yes', 'no' (frozen), 'partial' or '-' (no parameters)."""

    name: str
    type: str
    output_shape: Any
    params: int
    trainable: str
    macs: int


@dataclass
class ModelSummary:
    """What ``summary`` found: the rows plus totals; ``str()`` gives the table."""

    model_name: str
    input_size: list[tuple[int, ...]]
    batch_size: int = 1
    rows: list[LayerSummary] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    non_trainable_params: int = 0
    total_macs: int = 0
    param_bytes: int = 0
    buffer_bytes: int = 0
    activation_bytes: int = 0

    def __str__(self) -> str:
        return _format(self)


def _layer_macs(module: Any, inputs: tuple, output: Any) -> int:
    """MACs of one call (see the module docstring); 0 for layers not listed there."""
    from deepnum.nn.modules.conv import _ConvNd
    from deepnum.nn.modules.linear import Linear

    weight = getattr(module, "weight", None)
    if not isinstance(output, Tensor) or weight is None:
        return 0
    if isinstance(module, Linear):
        return weight.numel() * (output.numel() // max(module.out_features, 1))
    if isinstance(module, _ConvNd):
        per_element = weight.numel() // weight.shape[0]
        if module.transposed:
            first = inputs[0] if inputs and isinstance(inputs[0], Tensor) else None
            return first.numel() * per_element if first is not None else 0
        return output.numel() * per_element
    return 0


def _shape_of(output: Any) -> Any:
    if isinstance(output, Tensor):
        return tuple(output.shape)
    if isinstance(output, list | tuple):
        return [_shape_of(o) for o in output]
    if isinstance(output, dict):
        return {k: _shape_of(v) for k, v in output.items()}
    return None


def _nbytes(output: Any) -> int:
    if isinstance(output, Tensor):
        return output.numel() * output.element_size()
    if isinstance(output, list | tuple):
        return sum(_nbytes(o) for o in output)
    if isinstance(output, dict):
        return sum(_nbytes(o) for o in output.values())
    return 0


def _trainable_flag(params: list) -> str:
    if not params:
        return "-"
    flags = {bool(p.requires_grad) for p in params}
    return "partial" if len(flags) == 2 else ("yes" if flags == {True} else "no")


def _normalise_sizes(input_size: Any) -> list[tuple[int, ...]]:
    if isinstance(input_size, Sequence) and input_size and all(isinstance(s, Sequence) for s in input_size):
        sizes = [tuple(int(v) for v in s) for s in input_size]
    elif isinstance(input_size, Sequence):
        sizes = [tuple(int(v) for v in input_size)]
    else:
        raise TypeError(f"summary: input_size must be a shape such as (1, 28, 28) (without the batch dimension) "
                        f"or a list of shapes, got {input_size!r}")
    if any(v < 0 for s in sizes for v in s):
        raise ValueError(f"summary: input sizes must be non-negative, got {sizes}")
    return sizes


def summary(model: Any, input_size: Any, dtype: Any = None, batch_size: int = 1, device: Any = None,
            verbose: bool = True, file: IO[str] | None = None) -> ModelSummary:
    """Run ``model`` once on zeros of shape (batch_size, *input_size) (one tensor per shape when
    ``input_size`` is a list of shapes) in eval mode without gradients, print the table (unless
    ``verbose=False``) and return a ``ModelSummary``. The model's training mode is restored after."""
    sizes = _normalise_sizes(input_size)
    if batch_size < 1:
        raise ValueError(f"summary: batch_size must be >= 1, got {batch_size}")
    first = next(iter(model.parameters()), None)
    device = device if device is not None else (first.device if first is not None else "cpu")
    dtype = backend.as_dtype(dtype) if dtype is not None else backend.get_default_dtype()
    inputs = [zeros((batch_size, *s), dtype=dtype, device=device) for s in sizes]
    result = ModelSummary(type(model).__name__, sizes, batch_size)
    seen: set[int] = set()

    def make_hook(name: str, module: Any) -> Any:
        def hook(mod: Any, args: tuple, output: Any) -> None:
            own = list(mod.parameters(recurse=False))
            first_call = id(mod) not in seen
            seen.add(id(mod))
            result.rows.append(LayerSummary(name or type(mod).__name__, type(mod).__name__, _shape_of(output),
                                            sum(p.numel() for p in own) if first_call else 0,
                                            _trainable_flag(own), _layer_macs(mod, args, output)))
            result.activation_bytes += _nbytes(output)
        return hook

    removers = [module.register_forward_hook(make_hook(name, module)) for name, module in model.named_modules()
                if not any(True for _ in module.children()) or any(True for _ in module.parameters(recurse=False))]
    was_training = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with no_grad():
            model(*inputs)
    except Exception as error:
        shapes = ", ".join(str((batch_size, *s)) for s in sizes)
        raise RuntimeError(f"summary: the forward pass of {type(model).__name__} failed on zeros of shape "
                           f"{shapes}: {error}") from error
    finally:
        for remove in removers:
            remove()
        for module, mode in was_training:
            object.__setattr__(module, "training", mode)
    _totals(model, result)
    if verbose:
        print(result, file=file)
    return result


def _totals(model: Any, result: ModelSummary) -> None:
    params = list(model.parameters())
    result.total_params = sum(p.numel() for p in params)
    result.trainable_params = sum(p.numel() for p in params if p.requires_grad)
    result.non_trainable_params = result.total_params - result.trainable_params
    result.param_bytes = sum(p.numel() * p.element_size() for p in params)
    result.buffer_bytes = sum(b.numel() * b.element_size() for b in model.buffers())
    result.total_macs = sum(row.macs for row in result.rows)


def _human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n} B"


def _human_count(n: int) -> str:
    for scale, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(n)


def _format(s: ModelSummary) -> str:
    header = ("Layer (type)", "Output Shape", "Param #", "MACs", "Trainable")
    body = [(f"{r.name} ({r.type})", str(r.output_shape), f"{r.params:,}", f"{r.macs:,}", r.trainable)
            for r in s.rows]
    widths = [max(len(header[i]), *(len(row[i]) for row in body)) if body else len(header[i]) for i in range(5)]

    def line(cells: Sequence[str]) -> str:
        cells = (c.ljust(w) if i < 2 or i == 4 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return "  ".join(cells).rstrip()

    rule = "─" * (sum(widths) + 2 * 4)
    inputs = ", ".join(str(t) for t in s.input_size)
    lines = [f'Model: "{s.model_name}"  input {inputs}, batch size {s.batch_size}', rule, line(header), "═" * len(rule)]
    lines += [line(row) for row in body]
    lines += [
        "═" * len(rule),
        f"Total params: {s.total_params:,} ({_human_bytes(s.param_bytes)})",
        f"Trainable params: {s.trainable_params:,}",
        f"Non-trainable params: {s.non_trainable_params:,}",
        f"Total MACs: {s.total_macs:,} ({_human_count(s.total_macs)})",
        f"Buffers: {_human_bytes(s.buffer_bytes)}; forward activations: {_human_bytes(s.activation_bytes)}",
        rule,
    ]
    return "\n".join(lines)
