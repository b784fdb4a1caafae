"""Loading a character language model written by ``deepnum lm`` (``deepnum.seqviz``): its
``model.safetensors`` carries, in the safetensors header metadata, the registered model name
(``deepnum.model``), the builder's keyword arguments as JSON (``deepnum.model_kwargs``, with
``vocab_size``), ``deepnum.kind = language-model`` and the vocabulary (``deepnum.vocab``: the string of
the characters, index i = character i)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["LanguageRun", "LanguageModelError", "embedding_of", "load_language_model"]

WEIGHTS_FILE = "model.safetensors"
KIND = "language-model"


class LanguageModelError(ValueError):
    """The file exists and is readable but does not hold a character language model."""


@dataclass
class LanguageRun:
    """A language model loaded from disk: the model (eval mode), its registered name and builder
    kwargs, the vocabulary string and the weights file."""

    model: Any
    name: str
    kwargs: dict[str, Any]
    vocab: str
    path: Path


def _weights_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        if not (path / WEIGHTS_FILE).is_file():
            raise FileNotFoundError(f"{os.fspath(path)} holds no {WEIGHTS_FILE}: not a `deepnum lm` run directory")
        return path / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{os.fspath(path)} does not exist (expected a `deepnum lm` run directory or its "
                                f"{WEIGHTS_FILE})")
    return path


def load_language_model(path: str | os.PathLike) -> LanguageRun:
    """The character language model of a ``deepnum lm`` run directory (or its ``model.safetensors``),
    rebuilt from the metadata and loaded, in eval mode. Raises FileNotFoundError for a missing file
    and ``LanguageModelError`` (a ValueError) for a file that is not one, e.g. an image classifier's
    run, a corrupt file, or weights that do not fit the recorded model."""
    import deepnum.models.language  # noqa: F401  (registers char_lstm and char_gpt)
    from deepnum.io import CheckpointError, load, read_metadata
    from deepnum.models import create_model, list_models, model_info

    file = _weights_file(path)
    try:
        meta = read_metadata(file)
    except CheckpointError as exc:
        raise LanguageModelError(str(exc)) from None
    name = meta.get("deepnum.model")
    if "deepnum.checkpoint" in meta:
        raise LanguageModelError(f"{os.fspath(file)} is a training checkpoint, not the model.safetensors of a "
                                 "`deepnum lm` run")
    if (name is None or name not in list_models() or model_info(name).family != "language"
            or meta.get("deepnum.kind", KIND) != KIND):
        what = f"holds a {name} model" if name else "does not say which model it holds"
        raise LanguageModelError(f"{os.fspath(file)} {what}: not a character language model written by "
                                 f"`deepnum lm` (language models: {', '.join(list_models('char_*'))})")
    vocab = meta.get("deepnum.vocab")
    if not vocab or len(set(vocab)) != len(vocab):
        raise LanguageModelError(f"{os.fspath(file)}: its vocabulary (deepnum.vocab) is missing or damaged")
    try:
        kwargs = json.loads(meta.get("deepnum.model_kwargs", "{}"))
        kwargs.setdefault("vocab_size", len(vocab))
        if kwargs["vocab_size"] != len(vocab):
            raise ValueError(f"vocab_size={kwargs['vocab_size']} but the vocabulary has {len(vocab)} characters")
        model = create_model(name, **kwargs)
        model.load_state_dict(load(file))
    except (ValueError, TypeError, RuntimeError, KeyError, CheckpointError) as exc:
        raise LanguageModelError(f"cannot load {os.fspath(file)} as {name}: {exc}") from None
    model.eval()
    return LanguageRun(model, name, kwargs, vocab, file)


def embedding_of(model: Any) -> Any:
    """The character ``nn.Embedding`` of a language model: its ``embedding`` (or ``embed``) attribute,
    else its first Embedding layer."""
    from deepnum.nn.modules.sparse import Embedding

    for attr in ("embedding", "embed"):
        layer = getattr(model, attr, None)
        if isinstance(layer, Embedding):
            return layer
    for module in model.modules():
        if isinstance(module, Embedding):
            return module
    raise ValueError(f"{type(model).__name__} has no nn.Embedding layer")
