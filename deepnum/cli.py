"""The ``deepnum`` command line (also ``python -m deepnum``).

  deepnum train [options]        train a model (no options: LeNet-5 on the bundled MNIST, see below)
  deepnum eval RUN               accuracy and loss of a saved model on a dataset split
  deepnum predict RUN --image F  the class and probabilities of an image file (or --index N of a split)
  deepnum models                 the registered models: family, parameter count, input shape, paper
  deepnum datasets               the datasets: sizes, shapes, whether their package is installed
  deepnum summary MODEL          the layer table of a model (``deepnum.train.summary``)
  deepnum export RUN -o F.onnx   the saved model as an ONNX file (``_cli_export.py``)
  deepnum viz WHAT RUN ...       filters, feature maps or ViT attention rollout as a PNG (``_cli_viz.py``)
  deepnum lm [options]           train a character-level language model on Shakespeare (``_cli_lm.py``)
  deepnum generate RUN           print text sampled from a language model trained by ``deepnum lm``
  deepnum anomaly|transfer|mae|segment|detect|caption|style|gan|dqn|ensemble
                                 the applications from the notes (``deepnum/apps/``, ``docs/apps/``)

RUN is a run directory written by ``train``, its ``model.safetensors`` or a checkpoint. ``deepnum
train`` with no options trains LeNet-5 on the 4,000 MNIST training images (AdamW, one-cycle
learning rate, light random rotations/shifts) and reports the accuracy on the 1,000 held-out test
images; it writes into ``runs/lenet5-mnist``, which every run without ``--output`` replaces (an
explicit ``--output`` is never replaced without ``--overwrite``). See ``deepnum/_cli_train.py``.

``deepnum models`` prints every model's parameter count with its default arguments. Building the
ImageNet-size models for real would allocate and randomly fill gigabytes (VGG-19 alone has 144M
parameters), so the counts come from a shape-only construction (``_cli_common.shape_only_construction``:
initialisers skipped, parameter arrays left as untouched calloc pages): all 70-odd models are
counted in one to two seconds and well under 100 MB, with the exact counts a real build gives.

Exit codes: 0 success, 1 an unexpected error, 2 a usage error (unknown name, existing output
directory, unreadable checkpoint or image...), 130 interrupted by Ctrl-C (a checkpoint is saved
and the command to resume is printed).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from deepnum._cli_common import (
    CLIError,
    _nonnegative_float,
    _nonnegative_int,
    _positive_float,
    _positive_int,
    dataset_info,
    fmt_path,
    load_saved_model,
    load_split,
    read_image,
)

__all__ = ["build_parser", "main"]


def _add_train(sub: Any, models: list[str], datasets: list[str]) -> None:
    from deepnum._cli_train import OPTIMIZERS, SCHEDULES, TRAIN_DEFAULTS

    d = TRAIN_DEFAULTS
    p = sub.add_parser("train", help="train a model (no options: LeNet-5 on MNIST)",
                       description="Train a model on a dataset and save weights, history and curves. With no options: "
                                   "LeNet-5 on the bundled MNIST sample (>= 97.5% test accuracy in about a minute).")
    p.add_argument("--model", choices=models, metavar="NAME",
                   help=f"model to train: {', '.join(models)} (default {d['model']})")
    p.add_argument("--dataset", choices=datasets, metavar="NAME",
                   help=f"dataset (default {d['dataset']}; `deepnum datasets` lists them)")
    p.add_argument("--epochs", type=_positive_int, help=f"passes over the training set (default {d['epochs']})")
    p.add_argument("--batch-size", type=_positive_int, help=f"samples per step (default {d['batch_size']})")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help=f"optimizer (default {d['optimizer']})")
    p.add_argument("--lr", type=_positive_float, help="(peak) learning rate (default: sgd 0.05, adam/adamw 5e-3, "
                                                      "rmsprop 1e-3, adagrad 0.01)")
    p.add_argument("--momentum", type=_nonnegative_float, help="momentum of sgd (default 0.9, Nesterov) or rmsprop "
                                                               "(default 0)")
    p.add_argument("--weight-decay", type=_nonnegative_float, help="weight decay (default: adamw 0.01 decoupled, "
                                                                   "sgd 5e-4, others 0)")
    p.add_argument("--schedule", choices=SCHEDULES, help=f"learning-rate schedule (default {d['schedule']})")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction,
                   help="random rotations (±10°) and shifts (±10%%) of training images (default: on for images)")
    p.add_argument("--seed", type=int, help=f"random seed: same seed, same result (default {d['seed']})")
    p.add_argument("--data-root", metavar="DIR", help="folder of the files, for datasets that read yours (cifar10...)")
    p.add_argument("--limit", type=_positive_int, help="train on a random subset of this many samples (quick runs)")
    p.add_argument("--output", metavar="DIR", help="run directory (default runs/MODEL-DATASET, replaced by every run "
                                                   "that does not name --output)")
    p.add_argument("--overwrite", action="store_true", help="replace the run files in an existing --output directory")
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue the run that wrote this checkpoint")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress, only the result")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over the processes of `mpiexec -n N deepnum train --distributed` (batch size "
                        "per process; rank 0 alone prints and writes; docs/distributed.md)")
    p.add_argument("--amp", action="store_true", default=None,
                   help="mixed precision: float16 matmul/conv under autocast, loss scaling (docs/amp.md)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where to train: cpu (default) or cuda, a GPU through CuPy (pip install 'deepnum[gpu]'; "
                        "docs/gpu.md)")


def _add_saved_model_args(p: argparse.ArgumentParser, models: list[str], datasets: list[str]) -> None:
    p.add_argument("source", metavar="RUN", help="run directory, model.safetensors or checkpoint")
    p.add_argument("--dataset", choices=datasets, metavar="NAME",
                   help="dataset (default: the one the model was trained on)")
    p.add_argument("--split", default="test", help="dataset split (default test)")
    p.add_argument("--data-root", metavar="DIR", help="folder of the files, for datasets that read yours (cifar10...)")
    p.add_argument("--model", choices=models, metavar="NAME",
                   help="model name, for a weights file without deepnum metadata")


def build_parser() -> argparse.ArgumentParser:
    from deepnum.data.datasets import list_datasets
    from deepnum.models import list_models

    models, datasets = list_models(), list_datasets()
    parser = argparse.ArgumentParser(prog="deepnum", description="deepnum: train, evaluate and use models.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train(sub, models, datasets)
    p = sub.add_parser("eval", help="accuracy and loss of a saved model on a dataset split")
    _add_saved_model_args(p, models, datasets)
    p.add_argument("--batch-size", type=_positive_int, default=500, help="evaluation batch size (default 500)")
    p = sub.add_parser("predict", help="class and probabilities for an image file or a dataset sample",
                       description="Predict the class of one image. The image must already have the shape the model "
                                   "expects (LeNet-5 on MNIST: 28×28 grayscale, white digit on black); it is "
                                   "scaled to [0, 1] but never resized or converted.")
    _add_saved_model_args(p, models, datasets)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--image", metavar="FILE", help="image file (PNG, JPEG, ... read with Pillow)")
    what.add_argument("--index", type=_nonnegative_int, help="index of a sample of --dataset/--split")
    p.add_argument("--top", type=_positive_int, default=10, help="how many classes to list (default 10)")
    p = sub.add_parser("models", help="list the registered models: family, parameters, input shape, paper",
                       description="List the registered models with their family, parameter count (default "
                                   "arguments; counted from a shape-only construction, no weights allocated), "
                                   "input shape (when the model declares one) and paper.")
    p.add_argument("pattern", nargs="?", help="only names matching this shell pattern, e.g. 'resnet*'")
    sub.add_parser("datasets", help="list the datasets, their sizes and whether they are installed")
    p = sub.add_parser("summary", help="layer table of a model")
    p.add_argument("name", metavar="MODEL", choices=models, help=f"one of: {', '.join(models)}")
    p.add_argument("--input-size", type=_positive_int, nargs="+", metavar="N",
                   help="input shape without the batch dimension (default: the model's, e.g. 1 28 28)")
    p.add_argument("--num-classes", type=_positive_int, help="number of classes (default: the builder's)")
    from deepnum._cli_export import add_export_parser

    add_export_parser(sub, models, datasets)
    from deepnum._cli_viz import add_viz_parser

    add_viz_parser(sub, models, datasets)
    from deepnum._cli_lm import add_lm_parsers

    add_lm_parsers(sub)
    _add_apps(sub)
    return parser


def _add_apps(sub: Any) -> None:
    """One subcommand per application in ``deepnum.apps`` (``deepnum anomaly --help`` ...)."""
    from deepnum.apps import available_apps

    for name, module in available_apps().items():
        p = sub.add_parser(name, help=module.HELP, description=module.DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(app_run=module.run)


# ----------------------------------------------------------------- commands
def _cmd_models(args: argparse.Namespace) -> int:
    from deepnum._cli_common import model_shape_info
    from deepnum.models import list_models, model_info

    names = list_models(args.pattern)
    if not names:
        raise CLIError(f"no model matches {args.pattern!r}; `deepnum models` lists them all")
    rows = [("model", "family", "parameters", "input", "paper")]
    for name in names:
        info = model_info(name)
        count, shape = model_shape_info(name)
        rows.append((name, info.family, f"{count:,}", "×".join(map(str, shape)) if shape else "-", info.paper))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]:<{widths[3]}}  {row[4]}")
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from deepnum.data.datasets import list_datasets

    rows = [("dataset", "samples", "sample shape", "classes", "installed")]
    for name in list_datasets():
        info = dataset_info(name)
        sizes = ", ".join(f"{k} {v:,}" for k, v in info["sizes"].items()) if info["sizes"] else (
            "your files" if info["needs_root"] else "varies")
        shape = "×".join(map(str, info["input_shape"])) if info["input_shape"] else "varies"
        if not info["installed"]:
            state = f"no: {info['install']}"
        else:
            state = "yes" + (" (needs --data-root DIR)" if info["needs_root"] else "")
        rows.append((name, sizes, shape, str(info["num_classes"] or "-"), state))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]:>{widths[3]}}  {row[4]}")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    import inspect

    from deepnum.models import create_model, model_builder
    from deepnum.train import summary

    params = inspect.signature(model_builder(args.name)).parameters
    kwargs = {"num_classes": args.num_classes} if args.num_classes else {}
    if args.input_size and len(args.input_size) == 3 and "in_channels" in params:
        kwargs["in_channels"] = args.input_size[0]  # e.g. `summary lenet5 --input-size 3 28 28`
    model = create_model(args.name, **kwargs)
    size = tuple(args.input_size) if args.input_size else getattr(model, "input_shape", None)
    if size is None:
        raise CLIError(f"model {args.name!r} does not declare its input shape; pass --input-size C H W")
    try:
        summary(model, size)
    except RuntimeError as exc:
        raise CLIError(str(exc)) from None
    return 0


def _load_split(args: argparse.Namespace, dataset: str | None, what: str) -> Any:
    if dataset is None:
        raise CLIError(f"the saved model does not record its dataset; pass --dataset NAME to {what}")
    return load_split(dataset, args.split, args.data_root)


def _cmd_eval(args: argparse.Namespace) -> int:
    from deepnum._cli_train import check_model_fits
    from deepnum.data import DataLoader
    from deepnum.nn import CrossEntropyLoss
    from deepnum.train import evaluate

    saved = load_saved_model(args.source, args.model, args.dataset)
    data = _load_split(args, saved.dataset, "evaluate on")
    check_model_fits(saved.model, saved.name, saved.dataset, dataset_info(saved.dataset))
    result = evaluate(saved.model, DataLoader(data, batch_size=args.batch_size), loss_fn=CrossEntropyLoss())
    correct = round(result["accuracy"] * len(data))
    print(f"{saved.name} from {fmt_path(saved.source)} on {saved.dataset} [{args.split}, {len(data)} samples]: "
          f"accuracy {100 * result['accuracy']:.2f}% ({correct}/{len(data)}), loss {result['loss']:.4f}")
    return 0


def _print_prediction(probs: Any, classes: list[str] | None, top: int, label: int | None) -> None:
    import numpy as np

    order = np.argsort(-probs, kind="stable")
    names = classes if classes is not None and len(classes) == probs.size else [str(i) for i in range(probs.size)]
    best = int(order[0])
    truth = "" if label is None else f" (true class: {names[label]}{', correct' if label == best else ', wrong'})"
    print(f"predicted class: {names[best]} with probability {probs[best]:.4f}{truth}")
    width = max(len(n) for n in names)
    for i in order[:top]:
        print(f"  {names[i]:>{width}}  {probs[i]:.4f}  {'█' * int(round(30 * float(probs[i])))}")


def _cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    import deepnum as dn

    saved = load_saved_model(args.source, args.model, args.dataset)
    label, classes = None, saved.classes
    if args.image is not None:
        image = read_image(args.image, getattr(saved.model, "input_shape", None), saved.name)
        print(f"image {args.image} ({'×'.join(map(str, image.shape))})")
    else:
        data = _load_split(args, saved.dataset, "take --index from")
        if args.index >= len(data):
            raise CLIError(f"--index {args.index} is out of range: {saved.dataset} [{args.split}] has {len(data)} "
                           f"samples (0..{len(data) - 1})")
        x, y = data[args.index]
        image, label = np.asarray(x.numpy() if isinstance(x, dn.Tensor) else x), int(y)
        classes = classes or getattr(data, "classes", None)
        print(f"{saved.dataset} [{args.split}] sample {args.index}")
    with dn.no_grad():
        logits = saved.model(dn.tensor(image[None]))
        probs = dn.nn.functional.softmax(logits, dim=1).numpy()[0]
    _print_prediction(probs, classes, args.top, label)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from deepnum._cli_export import run_export

    return run_export(args)


def _cmd_viz(args: argparse.Namespace) -> int:
    from deepnum._cli_viz import run_viz

    return run_viz(args)


def _cmd_lm(args: argparse.Namespace) -> int:
    from deepnum._cli_lm import run_lm

    return run_lm(args)


def _cmd_generate(args: argparse.Namespace) -> int:
    from deepnum._cli_lm import run_generate

    return run_generate(args)


_COMMANDS = {"models": _cmd_models, "datasets": _cmd_datasets, "summary": _cmd_summary, "eval": _cmd_eval,
             "predict": _cmd_predict, "export": _cmd_export, "viz": _cmd_viz, "lm": _cmd_lm,
             "generate": _cmd_generate}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
        return int(exc.code or 0)
    try:
        if args.command == "train":
            from deepnum._cli_train import run_train

            return run_train(args)
        if args.command in _COMMANDS:
            return _COMMANDS[args.command](args)
        return args.app_run(args)
    except CLIError as exc:
        print(f"deepnum {args.command}: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:  # outside training (which handles its own): loading, evaluating, saving
        print(f"\ndeepnum {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
