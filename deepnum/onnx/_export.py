"""``export``: trace, convert each op, check, write (see ``deepnum.onnx``)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from deepnum.backend import get_array_module
from deepnum.functional.array import Permute
from deepnum.nn.modules.module import Module
from deepnum.onnx._graph import Call, ExportError, Graph, host
from deepnum.onnx._trace import Record, flatten_tensors, trace
from deepnum.tensor import Tensor

_PRODUCER = "deepnum"


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError("deepnum.onnx.export needs the onnx package: pip install 'deepnum[onnx]'") from None
    return onnx


def _numpy(t: Tensor) -> np.ndarray:
    return host(t.data)


def _shuffled(a: np.ndarray) -> np.ndarray:
    """The same values in another order (integers shifted by one within their range), so that a
    value computed from the input outside the recorded ops shows up as a difference between traces."""
    if a.size < 2 or a.dtype.kind not in "fiu":
        return a.copy()
    if a.dtype.kind in "iu":
        low, high = int(a.min()), int(a.max())
        return (low + (a - low + 1) % (high - low + 1)).astype(a.dtype) if high > low else a.copy()
    return np.random.default_rng(0).permutation(a.reshape(-1)).reshape(a.shape)


def _trace_inputs(inputs: list[Tensor], axis: int, dynamic: bool) -> tuple[list, list, tuple[int, int]]:
    """The inputs of the two traces and their batch sizes. The second has other values, and with
    ``dynamic`` one more sample along the batch axis. A batch of one is traced at 2 and 3: code may
    take shortcuts at batch size 1 (an expand to the size it already has is no op at all)."""
    arrays = [_numpy(x) for x in inputs]
    xp = get_array_module(inputs[0].data)  # the traces run where the example lives (CPU or GPU)
    if not dynamic:
        return inputs, [Tensor._make(xp.asarray(_shuffled(a))) for a in arrays], (1, 1)
    sizes = {a.shape[axis] if a.ndim > axis else -1 for a in arrays}
    if len(sizes) != 1 or -1 in sizes or 0 in sizes:
        shapes = ", ".join(str(a.shape) for a in arrays)
        raise ValueError(f"deepnum.onnx.export: dynamic_batch needs every input to have the same non-zero size "
                         f"along batch_axis={axis}, got shapes {shapes}")
    b = sizes.pop()
    first = inputs
    if b == 1:
        arrays = [np.concatenate([a, _shuffled(a)], axis=axis) for a in arrays]
        first, b = [Tensor._make(xp.asarray(a)) for a in arrays], 2
    second = [np.concatenate([s, np.take(s, [0], axis=axis)], axis=axis) for s in map(_shuffled, arrays)]
    return first, [Tensor._make(xp.asarray(a)) for a in second], (b, b + 1)


class _Exporter:
    """Walks the two traces in step and converts every op that depends on the inputs."""

    def __init__(self, graph: Graph, params: dict[int, str]) -> None:
        self.graph, self.params = graph, params
        self.names: dict[int, str] = {}  # id(Tensor of trace 1) -> ONNX value name
        self.static: dict[int, str] = {}  # materialised constants
        self.made_by: dict[int, Record] = {}  # id(constant Tensor) -> the op that computed it

    def constant(self, t1: Tensor, t2: Tensor, hint: str, who: Call | None) -> str:
        """The ONNX name of a value that does not depend on the inputs: a parameter or buffer keeps
        its state_dict name; a fill whose shape follows the batch becomes ConstantOfShape."""
        key = id(t1)
        if key in self.static:
            return self.static[key]
        g = self.graph
        rec = self.made_by.get(key)
        if key in self.params:
            name = g.add_initializer(self.params[key], _numpy(t1))
        elif rec is not None and type(rec.fn) is Permute and id(rec.inputs[0]) in self.params:
            # a weight read transposed (Linear's Wᵀ): keep the weight under its own name
            source = self.constant(rec.inputs[0], rec.inputs[0], hint, who)
            name = g.one("Transpose", [source], hint, perm=[int(a) for a in rec.fn.axes])
        else:
            v1, v2 = _numpy(t1), _numpy(t2)
            where = who.where() if who is not None else "an output"
            if v1.shape != v2.shape:
                if v1.size == 0 or not (np.all(v1 == v1.flat[0]) and np.all(v2 == v1.flat[0])):
                    raise ExportError(f"deepnum.onnx.export: {where}: a constant input of shape {v1.shape} changes "
                                      f"with the batch size and is not a fill; export with dynamic_batch=False")
                from onnx import numpy_helper
                shape = g.shape(v1.shape, v2.shape, where)
                name = g.one("ConstantOfShape", [shape], hint=hint,
                             value=numpy_helper.from_array(v1.reshape(-1)[:1].copy()))
            elif not np.array_equal(v1, v2, equal_nan=v1.dtype.kind in "fc"):
                raise ExportError(f"deepnum.onnx.export: {where}: an input of shape {v1.shape} depends on the model's "
                                  f"input but was computed outside deepnum's autograd ops (a comparison, an argmax, "
                                  f"a .numpy() round trip...), so the graph cannot compute it")
            else:
                name = g.add_initializer(g.fresh(hint), v1)
        self.static[key] = name
        return name

    def run(self, records: list[Record], records2: list[Record], fed: list[Tensor], converters: dict) -> None:
        dynamic = {id(x) for x in fed}
        for rec in records:
            for t in rec.inputs:
                self.graph.uses[id(t)] = self.graph.uses.get(id(t), 0) + 1
        for rec, rec2 in zip(records, records2, strict=True):
            if not self._depends_on_inputs(rec, rec2, dynamic):
                self.made_by.update((id(t), rec) for t in rec.results)
                continue  # computed from parameters and constants only: its outputs are constants
            call = Call(rec.fn, rec2.fn, [], rec.inputs, rec2.inputs, rec.results, rec2.results, rec.path)
            convert = converters.get(type(rec.fn))
            if convert is None:
                raise call.error("no ONNX converter for this op (deepnum.onnx.converters lists the supported ops)")
            hint = f"{rec.path}.{call.op}" if rec.path else call.op
            call.names = [self.names[id(t)] if id(t) in dynamic else self.constant(t, t2, hint, call)
                          for t, t2 in zip(rec.inputs, rec2.inputs)]
            outs = convert(self.graph, call)
            if len(outs) != len(rec.results):
                raise AssertionError(f"converter of {call.op} returned {len(outs)} outputs for {len(rec.results)}")
            for t, name in zip(rec.results, outs):
                if name is not None:
                    self.names[id(t)] = name
                    self.graph.arrays[id(t.data)] = name
                    dynamic.add(id(t))

    def _depends_on_inputs(self, rec: Record, rec2: Record, dynamic: set[int]) -> bool:
        """Whether the op reads an input-dependent value: as an input Tensor, as an array attribute
        (an embedding's indices), or visibly through an output shape that follows the batch."""
        if any(id(t) in dynamic for t in rec.inputs):
            return True
        if any(a.shape != b.shape for a, b in zip(rec.results, rec2.results)):
            return True
        return any(id(v) in self.graph.arrays for v in vars(rec.fn).values())


def _check_traces(records: list[Record], records2: list[Record]) -> None:
    ops1 = [type(r.fn) for r in records]
    ops2 = [type(r.fn) for r in records2]
    if ops1 != ops2:
        first = next((i for i, (a, b) in enumerate(zip(ops1, ops2)) if a is not b), min(len(ops1), len(ops2)))
        raise ExportError(f"deepnum.onnx.export: the model runs different ops for different inputs (op {first}: "
                          f"{len(ops1)} vs {len(ops2)} ops); a graph cannot follow control flow that depends on "
                          f"the input values (or, with dynamic_batch, on the batch size)")


def _value_info(name: str, t1: Tensor, t2: Tensor, graph: Graph) -> Any:
    from onnx import helper
    dims: list[Any] = []
    for v1, v2 in zip(t1.shape, t2.shape):
        if v1 == v2:
            dims.append(int(v1))
        else:
            k = graph.batch_factor(int(v1), int(v2), f"the shape of {name}")
            dims.append("batch" if k == 1 else f"batch*{k}")
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(t1.data.dtype), dims)


def _prune(graph: Graph, outputs: list[str]) -> None:
    """Drop the nodes and initializers no output depends on (e.g. a Transpose folded into Gemm)."""
    needed, kept = set(outputs), []
    for node in reversed(graph.nodes):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    graph.nodes = kept[::-1]
    graph.initializers = {k: v for k, v in graph.initializers.items() if k in needed}


def _names(given: list[str] | None, count: int, base: str) -> list[str]:
    if given is None:
        return [base] if count == 1 else [f"{base}_{i}" for i in range(count)]
    given = list(given)
    if len(given) != count or len(set(given)) != count or not all(isinstance(n, str) and n for n in given):
        raise ValueError(f"deepnum.onnx.export: expected {count} distinct non-empty {base} names, got {given}")
    return given


def _build_model(graph: Graph, fed: tuple[list, list], outs: tuple[list, list], in_names: list[str],
                 out_names: list[str]) -> Any:
    onnx = _onnx()
    from onnx import helper, numpy_helper
    _prune(graph, out_names)
    inputs = [_value_info(n, a, b, graph) for n, a, b in zip(in_names, *fed)]
    outputs = [_value_info(n, a, b, graph) for n, a, b in zip(out_names, *outs)]
    inits = [numpy_helper.from_array(v, k) for k, v in graph.initializers.items()]
    g = helper.make_graph(graph.nodes, "deepnum", inputs, outputs, inits)
    opsets = [helper.make_opsetid("", graph.opset)]
    model = helper.make_model(g, opset_imports=opsets, producer_name=_PRODUCER)
    # the oldest IR version that has this opset: newer files are refused by older runtimes
    model.ir_version = helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(model, full_check=True)
    return model


def _save(model: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(model.SerializeToString())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_model(model: Module, example_input: Any, path: str | os.PathLike, dynamic_batch: bool, opset_version: int,
                 input_names: list[str] | None, output_names: list[str] | None, batch_axis: int) -> Any:
    from deepnum.onnx._ops import CONVERTERS
    onnx = _onnx()
    if not isinstance(model, Module):
        raise TypeError(f"deepnum.onnx.export: expected an nn.Module, got {type(model).__name__}")
    if not 14 <= opset_version <= onnx.defs.onnx_opset_version():
        raise ValueError(f"deepnum.onnx.export: opset_version must be in [14, {onnx.defs.onnx_opset_version()}], "
                         f"got {opset_version}")
    inputs = flatten_tensors(example_input, "example input")
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"deepnum.onnx.export: the directory {str(path.parent)!r} does not exist")
    in_names = _names(input_names, len(inputs), "input")
    graph = Graph(opset=opset_version, batch_input=in_names[0], batch_axis=batch_axis)
    first, second, graph.batches = _trace_inputs(inputs, batch_axis, dynamic_batch)
    records, fed, outs = trace(model, first)
    records2, fed2, outs2 = trace(model, second)
    _check_traces(records, records2)
    params = {id(t): n for n, t in model.named_parameters()}
    params.update({id(t): n for n, t in model.named_buffers()})
    exporter = _Exporter(graph, params)
    exporter.names.update({id(x): n for x, n in zip(fed, in_names)})
    graph.arrays.update({id(x.data): n for x, n in zip(fed, in_names)})
    for t in outs:
        graph.uses[id(t)] = graph.uses.get(id(t), 0) + 1
    exporter.run(records, records2, fed, CONVERTERS)
    out_names = _names(output_names, len(outs), "output")
    for t1, t2, name in zip(outs, outs2, out_names):
        value = exporter.names.get(id(t1)) or exporter.constant(t1, t2, "output", None)
        graph.nodes.append(onnx.helper.make_node("Identity", [value], [name], name=f"{name}/Identity"))
    model_proto = _build_model(graph, (fed, fed2), (outs, outs2), in_names, out_names)
    _save(model_proto, path)
    return model_proto
