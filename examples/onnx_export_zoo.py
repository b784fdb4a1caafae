"""Export every registered model to ONNX and compare onnxruntime with deepnum (the table in docs/onnx.md).

    python examples/onnx_export_zoo.py [MODEL ...] [--json docs/onnx_results.json]

Per model: zero-initialised parameters get random values, batch norm statistics are calibrated by one
train-mode pass over 8 random inputs (as after training), the model is exported from a batch-1 example
(opset 17, dynamic batch) and run by onnxruntime at batch 1 and 3. Prints one JSON line per model.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import onnxruntime as ort

import deepnum as dn
import deepnum.onnx
from deepnum.models import create_model, list_models, model_info

SMALL_IN_CHANS = {"convnext_mini": 3, "densenet_bc_22_12": 3, "swin_micro": 3}


def build(name: str):
    """The model and a function making a batch of b example inputs."""
    family = model_info(name).family
    if family == "language":
        return create_model(name, vocab_size=65), lambda b: dn.randint(0, 65, (b, 32))
    if family == "timeseries":
        return create_model(name, in_chans=1, num_classes=5), lambda b: dn.randn(b, 1, 128)
    kwargs = {"in_chans": SMALL_IN_CHANS[name]} if name in SMALL_IN_CHANS else {}
    model = create_model(name, **kwargs)
    shape = getattr(model, "input_shape", None)
    if shape is None:
        shape = (kwargs.get("in_chans", 3), 32, 32) if model_info(name).small_input else (3, 224, 224)
    return model, lambda b: dn.randn(b, *shape)


def prepare(model, batch) -> None:
    """Random values for zero-initialised parameters; batch norm statistics of one training-mode pass."""
    rng = np.random.default_rng(0)
    for p in model.parameters():
        if not np.any(p.data):
            p.data[...] = rng.normal(0, 0.1, p.shape).astype(p.data.dtype)
    for m in model.modules():
        if getattr(m, "running_mean", None) is not None:
            m.momentum = None
            m.reset_running_stats()
    model.train()
    with dn.no_grad():
        model(batch)
    model.eval()


def outputs(value) -> list[np.ndarray]:
    return [value.numpy()] if isinstance(value, dn.Tensor) else [a for v in value for a in outputs(v)]


def measure(name: str, path: str) -> dict:
    dn.manual_seed(0)
    model, make = build(name)
    prepare(model, make(8))
    x1, x3 = make(1), make(3)
    start = time.perf_counter()
    deepnum.onnx.export(model, x1, path)
    row = {"model": name, "family": model_info(name).family, "input": list(x1.shape[1:]),
           "export_s": round(time.perf_counter() - start, 2), "mb": round(os.path.getsize(path) / 1e6, 2)}
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    diffs, scale = [], 0.0
    for x in (x1, x3):
        with dn.no_grad():
            expected = outputs(model(x))
        got = session.run(None, {"input": x.numpy()})
        diffs.append(max(float(np.abs(g - e).max()) for g, e in zip(got, expected)))
        scale = max(scale, max(float(np.abs(e).max()) for e in expected))
    row.update(diff_b1=diffs[0], diff_b3=diffs[1], max_abs_out=scale, ok=max(diffs) <= 1e-4)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="default: every registered model")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models or list_models():
            try:
                row = measure(name, os.path.join(tmp, "model.onnx"))
            except Exception as exc:  # report and go on with the next model
                row = {"model": name, "error": repr(exc)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
