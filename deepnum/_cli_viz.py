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

Sequence models (``deepnum.seqviz``; RUN is a run directory written by ``deepnum lm``):

  deepnum viz vanishing-gradient [--output PNG]
      the gradient norm reaching each earlier time step, tanh RNN vs LSTM (and exploding gradients)
  deepnum viz text-attention RUN [--text TEXT] [--output PNG]
      per-head attention maps of a char_gpt run on a line of text, with per-head statistics
  deepnum viz neighbours RUN [--chars CHARS] [--k K] [--output PNG]
      nearest characters in the learned embedding, and its 2-D PCA picture

A registered model name instead of a run builds that model untrained (features/attention then need
--dataset). Unknown layer names and non-ViT models are usage errors (exit 2) whose message lists what
would work.
"""
from __future__ import annotations

import argparse
import inspect
from pathlib import Path
from typing import Any

from deepnum._cli_common import (
    CLIError,
    SavedModel,
    _positive_int,
    dataset_info,
    fmt_path,
    load_saved_model,
    load_split,
)

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
    _add_sequence_parsers(what)


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
    if args.viz_command in _SEQUENCE_VIZ:
        return _run_sequence_viz(args)
    saved = _model(args)
    out = _output(args.output)
    try:
        text = _VIZ[args.viz_command](args, saved, out)
    except ImportError as exc:  # matplotlib missing: the message names the pip command
        raise CLIError(str(exc)) from None
    print(f"wrote {fmt_path(out)}: {text}")
    return 0


# ----------------------------------------------------------------- sequence models (deepnum.seqviz)
DEFAULT_TEXT = "To be, or not to be, that is the question:"
DEFAULT_CHARS = "aeiAEt.,;3"


def _add_sequence_parsers(what: Any) -> None:
    """Register ``viz vanishing-gradient|text-attention|neighbours``."""
    f = what.add_parser("vanishing-gradient", help="gradient norm reaching earlier time steps: tanh RNN vs LSTM",
                        description="Measure the norm of the gradient of a loss at the last step with respect to each "
                                    "earlier input (batch mean) for a tanh RNN, an LSTM and an LSTM with forget-gate "
                                    "bias 1 at PyTorch's default initialisation; print the ratio between distances "
                                    "50 and 1; with --output also draw the exploding gradients of RNNs with scaled-up "
                                    "recurrent weights and what clip_grad_norm_ does to them.")
    f.add_argument("--output", metavar="PNG", help="write the figure here (default: print the numbers only)")
    f.add_argument("--seq-len", type=_positive_int, default=100, help="sequence length T (default 100)")
    f.add_argument("--hidden-size", type=_positive_int, default=64, help="hidden units (default 64)")
    f.add_argument("--batch-size", type=_positive_int, default=32, help="random sequences averaged over (default 32)")
    f.add_argument("--seed", type=int, default=0, help="seed of the weights and inputs (default 0)")
    f = what.add_parser("text-attention", help="per-head attention maps of a char_gpt run on a line of text",
                        description="Run a character GPT written by `deepnum lm` on a line of text and print, per "
                                    "layer and head, where the attention goes (own position, previous character, "
                                    "first position, mean distance back); with --output draw the heat maps.")
    f.add_argument("run", metavar="RUN", help="a `deepnum lm` run directory of a char_gpt, or its model.safetensors")
    f.add_argument("--text", default=DEFAULT_TEXT, help=f"the text to attend over (default {DEFAULT_TEXT!r})")
    f.add_argument("--output", metavar="PNG", help="write the heat maps here (default: print the statistics only)")
    f = what.add_parser("neighbours", help="nearest characters in a language model's learned embedding",
                        description="Print, for each character of --chars, its --k nearest characters by cosine "
                                    "similarity of the rows of the model's character embedding; with --output draw "
                                    "the embedding on its first two principal components.")
    f.add_argument("run", metavar="RUN", help="a `deepnum lm` run directory (char_lstm or char_gpt), or its "
                                              "model.safetensors")
    f.add_argument("--chars", default=DEFAULT_CHARS, help=f"the query characters (default {DEFAULT_CHARS!r})")
    f.add_argument("--k", type=_positive_int, default=5, help="neighbours per character (default 5)")
    f.add_argument("--metric", choices=("cosine", "euclidean"), default="cosine", help="nearness (default cosine)")
    f.add_argument("--output", metavar="PNG", help="also draw the 2-D PCA of the embedding here")


def _language_run(path: str) -> Any:
    from deepnum.seqviz import LanguageModelError, load_language_model

    try:
        return load_language_model(path)
    except (FileNotFoundError, LanguageModelError) as exc:
        raise CLIError(str(exc)) from None


def _in_vocab(text: str, vocab: str, what: str, name: str) -> None:
    missing = sorted(set(text) - set(vocab))
    if missing:
        raise CLIError(f"{what} has characters the vocabulary of {name} lacks: {', '.join(map(repr, missing))}")
    if not text:
        raise CLIError(f"{what} is empty")


def _vanishing_gradient(args: argparse.Namespace) -> str:
    from deepnum.seqviz import gradient_study, plot_gradient_through_time

    study = gradient_study(args.seq_len, hidden_size=args.hidden_size, batch_size=args.batch_size, seed=args.seed,
                           exploding=args.output is not None)
    far = min(50, args.seq_len - 1)
    print(f"mean ‖∂L/∂x_t‖ at distance T−t (T = {args.seq_len}, hidden {args.hidden_size}, batch {args.batch_size}, "
          f"seed {args.seed}):")
    for name, norms in study["curves"].items():
        ratio = norms[far] / norms[min(1, args.seq_len - 1)]
        print(f"  {name:<26} d=1 {norms[min(1, args.seq_len - 1)]:.3e}   d={far} {norms[far]:.3e}   "
              f"ratio {ratio:.3e}")
    if args.output is None:
        return ""
    for row in study["clipping"]:
        print(f"  W_hh ×{row['scale']:g}: ‖g‖ {row['grad_norm']:.3e} → {row['clipped_norm']:.3g} after "
              f"clip_grad_norm_(max_norm=1)")
    out = _output(args.output)
    plot_gradient_through_time(study["curves"], out, exploding=study["exploding"], clipping=study["clipping"],
                               title=f"gradient reaching earlier inputs: T = {args.seq_len}, hidden "
                                     f"{args.hidden_size}, PyTorch's default init")
    return f"wrote {fmt_path(out)}"


def _text_attention(args: argparse.Namespace) -> str:
    import numpy as np

    from deepnum.creation import tensor
    from deepnum.seqviz import attention_statistics, capture_attention, format_attention_statistics, plot_attention

    run = _language_run(args.run)
    if getattr(run.model, "recurrent", False) or not callable(getattr(run.model, "attention_maps", None)):
        raise CLIError(f"{fmt_path(run.path)} holds {run.name}, which has no attention; text-attention needs a "
                       "char_gpt run")
    _in_vocab(args.text, run.vocab, "--text", run.name)
    block = int(getattr(run.model, "block_size", len(args.text)))
    text = args.text[-block:]
    if len(text) < len(args.text):
        print(f"--text is longer than the model's block_size {block}: using its last {block} characters")
    ids = tensor(np.array([run.vocab.index(c) for c in text], dtype=np.int64)[None])
    maps = capture_attention(run.model, ids)
    stats = attention_statistics(maps)
    print(f"{run.name} from {fmt_path(run.path)} on {text!r} ({len(text)} characters); mean attention per head:")
    print(format_attention_statistics(stats))
    if args.output is None:
        return ""
    out = _output(args.output)
    plot_attention(maps, list(text), out, title=f"{run.name} ({fmt_path(run.path)}) attention on {text!r}")
    return f"wrote {fmt_path(out)}"


def _neighbours(args: argparse.Namespace) -> str:
    from deepnum.seqviz import char_label, embedding_neighbours, embedding_of, plot_embeddings

    run = _language_run(args.run)
    chars = "".join(dict.fromkeys(args.chars))
    _in_vocab(chars, run.vocab, "--chars", run.name)
    embedding = embedding_of(run.model)
    table = embedding_neighbours(embedding, run.vocab, chars, k=args.k, metric=args.metric)
    print(f"{run.name} from {fmt_path(run.path)}: {args.k} nearest characters by {args.metric} "
          f"{'similarity' if args.metric == 'cosine' else 'distance'} of the embedding rows "
          f"({embedding.weight.shape[0]}×{embedding.weight.shape[1]})")
    for query, near in table.items():
        print(f"  {char_label(query):>2} → " + "  ".join(f"{char_label(c)} {s:.2f}" for c, s in near))
    if args.output is None:
        return ""
    out = _output(args.output)
    plot_embeddings(embedding, run.vocab, out, title=f"{run.name} ({fmt_path(run.path)}) character embeddings, "
                                                     "first two principal components")
    return f"wrote {fmt_path(out)}"


_SEQUENCE_VIZ = {"vanishing-gradient": _vanishing_gradient, "text-attention": _text_attention,
                 "neighbours": _neighbours}


def _run_sequence_viz(args: argparse.Namespace) -> int:
    try:
        text = _SEQUENCE_VIZ[args.viz_command](args)
    except ImportError as exc:  # matplotlib missing: the message names the pip command
        raise CLIError(str(exc)) from None
    if text:
        print(text)
    return 0
