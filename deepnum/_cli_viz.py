"""``deepnum viz``: pictures of a model, drawn with ``deepnum.viz`` (``deepnum/cli.py`` calls
``add_viz_parser`` and ``run_viz``).

  deepnum viz filters RUN_OR_MODEL --output PNG [--layer NAME]
      the kernels of the first Conv2d (or of --layer) of a trained run, or of a freshly initialised
      registered model (``deepnum viz filters resnet18 --output f.png``; weights seeded by --seed)
  deepnum viz features RUN_OR_MODEL --layer NAME --index N --output PNG
      the activations of layer NAME (any name of ``model.named_modules()``) for sample N of
      --dataset/--split (default: the run's dataset, test split)
  deepnum viz attention RUN_OR_MODEL --index N --output PNG
      attention rollout (Abnar & Zuidema 2020) of a Vision Transformer for sample N

A registered model name instead of a run builds that model untrained (features/attention then need
--dataset). Unknown layer names and non-ViT models are usage errors (exit 2) whose message lists what
would work.
"""
from __future__ import annotations

import argparse
import inspect
from pathlib import Path
from typing import Any

from deepnum._cli_common import CLIError, SavedModel, dataset_info, fmt_path, load_saved_model, load_split

__all__ = ["add_viz_parser", "run_viz"]


def _add_source_args(p: argparse.ArgumentParser, models: list[str], datasets: list[str], sample: bool) -> None:
    p.add_argument("source", metavar="RUN_OR_MODEL",
                   help="run directory, model.safetensors or checkpoint; or a registered model name (untrained)")
    p.add_argument("--output", metavar="PNG", required=True, help="the PNG file to write (replaced atomically)")
    p.add_argument("--model", choices=models, metavar="NAME",
                   help="model name, for a weights file without deepnum metadata")
    p.add_argument("--seed", type=int, default=0, help="seed of an untrained model's weights (default 0)")
    if sample:
        p.add_argument("--index", type=int, required=True, help="index of the sample of --dataset/--split")
        p.add_argument("--dataset", choices=datasets, metavar="NAME",
                       help="dataset (default: the one the model was trained on)")
        p.add_argument("--split", default="test", help="dataset split (default test)")
        p.add_argument("--data-root", metavar="DIR", help="folder of the files, for datasets that read yours")


def add_viz_parser(sub: Any, models: list[str], datasets: list[str]) -> None:
    """Register ``viz filters|features|attention`` on the top-level subparsers."""
    p = sub.add_parser("viz", help="draw filters, feature maps or ViT attention rollout into a PNG",
                       description="Pictures of a model: first-layer filters, feature maps of a layer, or the "
                                   "attention rollout of a Vision Transformer, written as PNG files.")
    what = p.add_subparsers(dest="viz_command", metavar="WHAT", required=True)
    f = what.add_parser("filters", help="the kernels of the first Conv2d (or --layer)")
    _add_source_args(f, models, datasets, sample=False)
    f.add_argument("--layer", metavar="NAME", help="a Conv2d layer name (default: the first Conv2d)")
    f.add_argument("--max-filters", type=int, default=64, help="how many filters to draw (default 64)")
    f = what.add_parser("features", help="the activations of one layer for one dataset sample")
    _add_source_args(f, models, datasets, sample=True)
    f.add_argument("--layer", metavar="NAME", required=True, help="layer name, as in `deepnum summary MODEL`")
    f.add_argument("--max-maps", type=int, default=64, help="how many channels to draw (default 64)")
    f = what.add_parser("attention", help="attention rollout of a ViT for one dataset sample")
    _add_source_args(f, models, datasets, sample=True)
    f.add_argument("--head-fusion", choices=("mean", "max", "min"), default="mean",
                   help="how the heads of a block are combined (default mean)")
    f.add_argument("--discard-ratio", type=float, default=0.0,
                   help="fraction of the weakest attention weights dropped per block (default 0)")


# ----------------------------------------------------------------- the model and the sample
def _builder_kwargs(name: str, dataset: str | None) -> dict[str, Any]:
    """num_classes and the input channels (``in_chans`` or ``in_channels``) from the dataset."""
    from deepnum.models import model_builder

    if dataset is None:
        return {}
    info = dataset_info(dataset)
    params = inspect.signature(model_builder(name)).parameters
    kwargs: dict[str, Any] = {}
    if "num_classes" in params and info.get("num_classes"):
        kwargs["num_classes"] = int(info["num_classes"])
    shape = info.get("input_shape")
    for key in ("in_chans", "in_channels"):
        if key in params and shape and len(shape) >= 3:
            kwargs[key] = int(shape[0])
            break
    return kwargs


def _model(args: argparse.Namespace) -> SavedModel:
    """The run's model, or an untrained registered model when ``source`` names one (and no such path exists)."""
    import deepnum as dn
    from deepnum.models import create_model, list_models

    dataset = getattr(args, "dataset", None)
    if args.source in list_models() and not Path(args.source).exists():
        dn.manual_seed(args.seed)
        try:
            model = create_model(args.source, **_builder_kwargs(args.source, dataset))
        except (TypeError, ValueError) as exc:
            raise CLIError(f"cannot build {args.source}: {exc}") from None
        model.eval()
        return SavedModel(model, args.source, Path(args.source), dataset)
    return load_saved_model(args.source, args.model, dataset)


def _sample(args: argparse.Namespace, saved: SavedModel) -> tuple[Any, int, str]:
    """(input array, label, description) of sample --index of the dataset split."""
    import numpy as np

    import deepnum as dn

    if saved.dataset is None:
        raise CLIError(f"{saved.name}: the dataset is not known; pass --dataset NAME")
    data = load_split(saved.dataset, args.split, args.data_root)
    if not 0 <= args.index < len(data):
        raise CLIError(f"--index {args.index} is out of range: {saved.dataset} [{args.split}] has {len(data)} samples "
                       f"(0..{len(data) - 1})")
    x, y = data[args.index]
    expected = getattr(saved.model, "input_shape", None)
    x = np.asarray(x.numpy() if isinstance(x, dn.Tensor) else x, dtype=np.float32)
    if expected is not None and tuple(expected) != x.shape:
        raise CLIError(f"{saved.name} expects inputs of shape {tuple(expected)}, but {saved.dataset} samples have "
                       f"shape {x.shape}; choose a matching --dataset")
    return x, int(y), f"{saved.dataset} [{args.split}] sample {args.index} (label {int(y)})"


def _output(path: str) -> Path:
    out = Path(path)
    if out.is_dir():
        raise CLIError(f"--output {fmt_path(out)} is a directory; give a .png file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


# ----------------------------------------------------------------- the commands
def _filters(args: argparse.Namespace, saved: SavedModel, out: Path) -> str:
    from deepnum.nn import Conv2d
    from deepnum.viz import grid_shape, plot_filters

    convs = [name for name, m in saved.model.named_modules() if isinstance(m, Conv2d)]
    if not convs:
        raise CLIError(f"{saved.name} has no Conv2d layer, so it has no image filters to draw")
    layer = args.layer if args.layer is not None else convs[0]
    if layer not in convs:
        raise CLIError(f"{saved.name} has no Conv2d layer named {layer!r}; Conv2d layers: {', '.join(convs)}")
    if args.max_filters < 1:
        raise CLIError(f"--max-filters must be >= 1, got {args.max_filters}")
    conv = dict(saved.model.named_modules())[layer]
    weight = plot_filters(conv, out, max_filters=args.max_filters, title=f"{saved.name} {layer}: "
                          f"{conv.in_channels}→{conv.out_channels}, {conv.weight.shape[2]}×{conv.weight.shape[3]}")
    rows, cols = grid_shape(weight.shape[0])
    return f"{weight.shape[0]} filters of {layer} ({rows}×{cols} grid)"


def _features(args: argparse.Namespace, saved: SavedModel, out: Path) -> str:
    from deepnum.viz import plot_feature_maps

    names = [name for name, _ in saved.model.named_modules() if name]
    if args.layer not in names:
        raise CLIError(f"{saved.name} has no layer named {args.layer!r}; layers: {', '.join(names)}")
    if args.max_maps < 1:
        raise CLIError(f"--max-maps must be >= 1, got {args.max_maps}")
    x, _, what = _sample(args, saved)
    try:
        act = plot_feature_maps(saved.model, args.layer, x, out, max_maps=args.max_maps,
                                title=f"{saved.name} {args.layer} on {what}")
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    shown = min(act.shape[0], args.max_maps)
    return f"{shown} of {act.shape[0]} feature maps {act.shape[1:]} of {args.layer} for {what}"


def _attention(args: argparse.Namespace, saved: SavedModel, out: Path) -> str:
    from deepnum.viz import plot_attention_rollout

    model = saved.model
    if not (callable(getattr(model, "record_attention", None)) and callable(getattr(model, "attention_maps", None))):
        raise CLIError(f"{saved.name} is not a Vision Transformer: attention rollout needs a model that records its "
                       "attention (record_attention/attention_maps), e.g. vit_mini_patch7_28")
    if not 0.0 <= args.discard_ratio < 1.0:
        raise CLIError(f"--discard-ratio must be in [0, 1), got {args.discard_ratio}")
    x, _, what = _sample(args, saved)
    rollout = plot_attention_rollout(model, x, out, head_fusion=args.head_fusion, discard_ratio=args.discard_ratio,
                                     title=f"{saved.name} attention rollout on {what}")
    r, c = divmod(int(rollout.argmax()), rollout.shape[1])
    return f"attention rollout over {rollout.shape[0]}×{rollout.shape[1]} patches for {what}; most attended patch: " \
           f"row {r}, column {c}"


_VIZ = {"filters": _filters, "features": _features, "attention": _attention}


def run_viz(args: argparse.Namespace) -> int:
    """The `viz` command: build or load the model, draw, and say what was written."""
    saved = _model(args)
    out = _output(args.output)
    try:
        text = _VIZ[args.viz_command](args, saved, out)
    except ImportError as exc:  # matplotlib missing: the message names the pip command
        raise CLIError(str(exc)) from None
    print(f"wrote {fmt_path(out)}: {text}")
    return 0
