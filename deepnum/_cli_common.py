"""Pieces shared by the CLI commands (``deepnum/cli.py``, ``deepnum/_cli_train.py``): the error type
that becomes exit code 2, the run-directory file names, dataset metadata, and rebuilding a saved
model from a run directory, a weights file or a checkpoint."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WEIGHTS_FILE = "model.safetensors"
CHECKPOINT_FILE = "checkpoint.safetensors"
CONFIG_FILE = "config.json"


class CLIError(Exception):
    """A user error: ``main`` prints ``deepnum: error: <message>`` and returns ``code`` (2)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def fmt_path(path: str | os.PathLike) -> str:
    return os.fspath(path)


# ----------------------------------------------------------------- datasets
def dataset_info(name: str) -> dict[str, Any]:
    """The registry's metadata of dataset ``name`` (``deepnum.data.datasets.DATASETS``) as a plain dict,
    plus ``installed``: whether the package it needs can be imported. Unknown names list the valid ones."""
    from deepnum.data.datasets import DATASETS, _common, list_datasets

    info = DATASETS.get(name)
    if info is None:
        raise CLIError(f"unknown dataset {name!r}; available datasets: {', '.join(list_datasets())}")
    try:
        installed = info.package is None or _common.find_spec(info.package) is not None
    except (ImportError, ValueError):
        installed = False
    return {"name": name, "task": info.task, "input_shape": info.input_shape, "num_classes": info.num_classes,
            "splits": info.splits, "sizes": info.sizes, "package": info.package, "install": info.install,
            "installed": installed, "needs_root": info.needs_root, "description": info.description}


def load_split(name: str, split: str, root: str | None) -> Any:
    """``load_dataset(name, split, root)`` with its errors (missing package, bad split, missing root)
    turned into CLIErrors."""
    from deepnum.data.datasets import load_dataset

    info = dataset_info(name)
    if not info["installed"]:
        raise CLIError(f"dataset {name!r} needs the package {info['package']!r}, which is not installed; install it "
                       f"with: {info['install']}")
    if info["needs_root"] and root is None:
        raise CLIError(f"dataset {name!r} reads files you provide: pass --data-root DIR ({info['description']})")
    try:
        return load_dataset(name, split=split, root=root)
    except (ValueError, FileNotFoundError, ModuleNotFoundError) as exc:
        raise CLIError(str(exc)) from None


def model_metadata(name: str, kwargs: dict[str, Any], dataset: str, classes: list | None) -> dict[str, str]:
    """The safetensors header metadata of a saved model: enough to rebuild it and name its classes."""
    return {"deepnum.model": name, "deepnum.model_kwargs": json.dumps(kwargs), "deepnum.dataset": dataset,
            "deepnum.classes": json.dumps(list(classes) if classes is not None else None)}


# ----------------------------------------------------------------- saved models
@dataclass
class SavedModel:
    """A model rebuilt from disk, with what is known about it."""

    model: Any
    name: str
    source: Path
    dataset: str | None = None
    classes: list[str] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


def _describe(path: Path) -> tuple[Path, dict[str, str], bool]:
    """(file, its metadata, is_checkpoint) for a run directory or a file; corrupt files are refused."""
    from deepnum.io import CheckpointError, read_metadata

    if path.is_dir():
        if (path / WEIGHTS_FILE).is_file():
            path = path / WEIGHTS_FILE
        elif (path / CHECKPOINT_FILE).is_file():
            path = path / CHECKPOINT_FILE
        else:
            raise CLIError(f"{fmt_path(path)} holds neither {WEIGHTS_FILE} nor {CHECKPOINT_FILE}: not a deepnum run "
                           "directory")
    elif not path.is_file():
        raise CLIError(f"{fmt_path(path)} does not exist (expected a run directory, a .safetensors weights file or "
                       "a checkpoint)")
    try:
        meta = read_metadata(path)
    except CheckpointError as exc:
        raise CLIError(str(exc)) from None
    return path, meta, "deepnum.checkpoint" in meta


def _run_config(path: Path) -> dict[str, Any]:
    config_path = path.parent / CONFIG_FILE
    try:
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    except (OSError, ValueError):
        config = {}
    return config if isinstance(config, dict) else {}


def _identify(path: Path, meta: dict[str, str], is_checkpoint: bool, model_name: str | None,
              dataset: str | None) -> tuple[str, dict[str, Any], str | None, list[str] | None]:
    """(model name, builder kwargs, dataset, class names) from the file's metadata, the run's
    config.json, or --model/--dataset."""
    if not is_checkpoint and "deepnum.model" in meta:
        try:
            kwargs = json.loads(meta.get("deepnum.model_kwargs", "{}"))
            classes = json.loads(meta.get("deepnum.classes", "null"))
        except ValueError:
            raise CLIError(f"{fmt_path(path)}: its deepnum metadata is damaged") from None
        return model_name or meta["deepnum.model"], kwargs, dataset or meta.get("deepnum.dataset"), classes
    config = _run_config(path)
    if model_name is None and "model" in config:
        return config["model"], dict(config.get("model_kwargs", {})), dataset or config.get("dataset"), None
    if model_name is None:
        raise CLIError(f"{fmt_path(path)} does not say which model it holds (no deepnum metadata and no "
                       f"{CONFIG_FILE} beside it); pass --model NAME (and --dataset NAME)")
    return model_name, {}, dataset, None


def load_saved_model(path: str | os.PathLike, model_name: str | None = None,
                     dataset: str | None = None) -> SavedModel:
    """Rebuild the model saved at ``path`` (a run directory, ``model.safetensors`` or a checkpoint) and
    load its weights. Everything is checked first; problems raise CLIError naming the file."""
    from deepnum.io import CheckpointError, load, load_checkpoint
    from deepnum.models import create_model, list_models

    file, meta, is_checkpoint = _describe(Path(path))
    if meta.get("deepnum.kind") == "language-model":
        raise CLIError(f"{fmt_path(file)} holds a language model ({meta.get('deepnum.model')}), not a classifier: "
                       "sample from it with `deepnum generate`")
    name, kwargs, dataset, classes = _identify(file, meta, is_checkpoint, model_name, dataset)
    if name not in list_models():
        raise CLIError(f"unknown model {name!r}; available models: {', '.join(list_models())}")
    info = dataset_info(dataset) if dataset is not None else {}
    if not kwargs and info:
        from deepnum._cli_train import _model_kwargs

        kwargs = _model_kwargs(name, info)
    model = create_model(name, **kwargs)
    try:
        if is_checkpoint:
            load_checkpoint(file, model=model)
        else:
            model.load_state_dict(load(file))
    except CheckpointError as exc:
        raise CLIError(str(exc)) from None
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CLIError(f"cannot load {fmt_path(file)} into {name}({_kwargs_text(kwargs)}): {exc}") from None
    model.eval()
    return SavedModel(model, name, file, dataset, classes, kwargs)


def _kwargs_text(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


# ----------------------------------------------------------------- images
_MODE_CHANNELS = {"L": 1, "RGB": 3}


def read_image(path: str | os.PathLike, expected: tuple[int, ...] | None, model: str) -> Any:
    """An 8-bit grayscale or RGB image file as a float32 array (C, H, W) scaled to [0, 1]. It is never
    resized or converted: when its channels or size differ from ``expected`` (C, H, W) the error says
    what the model needs and how to convert the file."""
    import numpy as np

    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise CLIError("reading image files needs Pillow: pip install pillow") from None
    try:
        with Image.open(path) as img:
            img.load()
            mode, (width, height) = img.mode, img.size
            array = np.asarray(img) if mode in _MODE_CHANNELS else None
    except FileNotFoundError:
        raise CLIError(f"image file {fmt_path(path)} does not exist") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise CLIError(f"cannot read image {fmt_path(path)}: {exc}") from None
    channels = _MODE_CHANNELS.get(mode)
    if expected is not None:
        c, h, w = expected
        want = "grayscale (mode 'L')" if c == 1 else ("RGB" if c == 3 else f"{c}-channel")
        if channels != c or (height, width) != (h, w):
            got = f"mode {mode!r}" + (f", {channels} channel{'s' * (channels != 1)}" if channels else "")
            convert = ".convert('L')" if c == 1 else (".convert('RGB')" if c == 3 else "")
            raise CLIError(f"{model} expects {w}×{h} {want} images, but {fmt_path(path)} is {width}×{height} ({got}); "
                           f"deepnum does not resize or convert images: prepare the file first, e.g. with Pillow "
                           f"Image.open(path){convert}.resize(({w}, {h})).save(new_path)")
    elif channels is None:
        raise CLIError(f"{fmt_path(path)} is a mode {mode!r} image; deepnum reads 8-bit grayscale ('L') or RGB images")
    if array.dtype != np.uint8:
        raise CLIError(f"{fmt_path(path)}: expected 8 bits per channel, got {array.dtype}")
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return np.ascontiguousarray(array, dtype=np.float32) / np.float32(255.0)


# ----------------------------------------------------------------- model listing
_SHAPES: dict[str, tuple[int, tuple[int, ...] | None]] = {}


def _lazy_zeros(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    """``zeros``/``empty`` for shape-only construction: NumPy's calloc-backed ``np.zeros`` (for a
    large array, fresh zero pages that the operating system commits only when written)."""
    import numpy as np

    from deepnum import backend, creation
    from deepnum.tensor import Tensor

    if device is not None and backend.normalize_device(device) != "cpu":
        return creation._filled(creation._size(size), 0.0, dtype, device, requires_grad)
    return Tensor(np.zeros(creation._size(size), dtype=backend.as_dtype(dtype)), requires_grad=requires_grad)


@contextlib.contextmanager
def shape_only_construction() -> Iterator[None]:
    """Build models without touching their weights' memory, to count parameters cheaply.

    While active, (1) every in-place initialiser of ``deepnum.nn.init`` (``uniform_``,
    ``kaiming_normal_``, ``trunc_normal_``, ``ones_``...) returns its tensor untouched, and (2)
    ``deepnum.creation.zeros``/``empty`` return tensors over ``np.zeros`` arrays, whose pages the
    operating system commits only when written (``zeros`` normally fills with ``np.full``, which writes
    them). Both are replaced wherever they are bound: in their own modules and in every imported
    ``deepnum`` module that imported them by name. A 140M-parameter VGG then costs neither RAM nor
    random numbers, only the Python work of creating its layers. The weights are all zero: for shape
    queries only. Not thread-safe (it patches module attributes); the originals are restored on exit."""
    from deepnum import creation
    from deepnum.nn import init

    def keep(tensor: Any, *args: Any, **kwargs: Any) -> Any:
        return tensor

    replacements = {id(getattr(init, name)): keep for name in init.__all__ if name.endswith("_")}
    replacements.update({id(creation.zeros): _lazy_zeros, id(creation.empty): _lazy_zeros})
    patched = []
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == "deepnum" or module_name.startswith("deepnum.")):
            continue
        for attr, value in list(vars(module).items()):
            if callable(value) and id(value) in replacements:
                patched.append((module, attr, value))
                setattr(module, attr, replacements[id(value)])
    try:
        yield
    finally:
        for module, attr, value in patched:
            setattr(module, attr, value)


def model_shape_info(name: str) -> tuple[int, tuple[int, ...] | None]:
    """(parameter count, input shape or None) of registered model ``name`` with its default
    arguments, from one shape-only construction (``shape_only_construction``), cached per process."""
    if name not in _SHAPES:
        from deepnum.models import create_model

        with shape_only_construction():
            model = create_model(name)
        shape = getattr(model, "input_shape", None)
        _SHAPES[name] = (sum(p.numel() for p in model.parameters()), tuple(shape) if shape is not None else None)
        del model
    return _SHAPES[name]


# argparse types shared by every sub-command
def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _nonnegative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative number, got {text}")
    return value
