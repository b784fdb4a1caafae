"""``deepnum export RUN --output model.onnx``: a saved model (run directory, weights file or
checkpoint, rebuilt as ``eval``/``predict`` do) written as ONNX with ``deepnum.onnx.export``."""
from __future__ import annotations

import argparse
from pathlib import Path

from deepnum._cli_common import CLIError, _positive_int, fmt_path, load_saved_model


def add_export_parser(sub: argparse._SubParsersAction, models: list[str], datasets: list[str]) -> None:
    p = sub.add_parser("export", help="write a saved model as an ONNX file (runs in onnxruntime)",
                       description="Export a trained model to ONNX. The batch size stays symbolic in the file "
                                   "unless --static-batch is given; --batch is the example batch traced.")
    p.add_argument("source", metavar="RUN", help="run directory, model.safetensors or checkpoint")
    p.add_argument("--output", "-o", required=True, metavar="FILE", help="the .onnx file to write")
    p.add_argument("--batch", type=_positive_int, default=1, help="example batch size traced (default 1)")
    p.add_argument("--opset", type=_positive_int, default=17, help="ONNX opset version (default 17)")
    p.add_argument("--input-size", type=_positive_int, nargs="+", metavar="N",
                   help="input shape without the batch dimension (default: the model's, e.g. 1 28 28)")
    p.add_argument("--static-batch", action="store_true", help="fix the batch size to --batch in the file")
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    p.add_argument("--model", choices=models, metavar="NAME",
                   help="model name, for a weights file without deepnum metadata")
    p.add_argument("--dataset", choices=datasets, metavar="NAME",
                   help="dataset the model was trained on (default: from the run's metadata)")


def run_export(args: argparse.Namespace) -> int:
    import deepnum as dn
    from deepnum.onnx import ExportError, export

    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise CLIError(f"{fmt_path(out)} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise CLIError(f"the folder of --output {fmt_path(out.parent)} does not exist")
    saved = load_saved_model(args.source, args.model, args.dataset)
    shape = tuple(args.input_size) if args.input_size else getattr(saved.model, "input_shape", None)
    if shape is None:
        raise CLIError(f"{saved.name} does not declare its input shape; give it with --input-size, e.g. 3 32 32")
    dn.manual_seed(0)
    example = dn.randn(args.batch, *shape)
    try:
        proto = export(saved.model, example, out, dynamic_batch=not args.static_batch, opset_version=args.opset)
    except (ExportError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    size = out.stat().st_size
    print(f"wrote {fmt_path(out)}: {saved.name}, input ({'batch' if not args.static_batch else args.batch}, "
          f"{', '.join(map(str, shape))}), opset {args.opset}, {len(proto.graph.node)} nodes, "
          f"{size / 1e6:.2f} MB")
    return 0
