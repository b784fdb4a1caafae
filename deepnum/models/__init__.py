"""``deepnum.models``: ready-made architectures behind a small name registry.

``create_model("lenet5", num_classes=10)`` builds a registered model by name; ``list_models()`` lists
the names; ``@register_model`` adds a builder (a function or class returning a ``Module``) under its
own name or an explicit one. Adding a file here that uses ``@register_model`` and importing it at the
bottom of this file makes its models available to ``create_model`` and to the ``deepnum`` CLI."""
from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from deepnum.nn.modules.module import Module

__all__ = ["LeNet5", "ModelInfo", "create_model", "lenet5", "list_models", "model_info", "register_model"]

_Builder = TypeVar("_Builder", bound=Callable[..., Module])
_REGISTRY: dict[str, Callable[..., Module]] = {}
_INFO: dict[str, ModelInfo] = {}


@dataclass(frozen=True)
class ModelInfo:
    """What ``deepnum models`` shows: the family (its file in ``deepnum.models``), the paper, and
    whether the variant is sized for small (28–32 px) inputs."""

    name: str
    family: str
    paper: str
    small_input: bool


def register_model(fn: _Builder | None = None, *, name: str | None = None, family: str | None = None,
                   paper: str = "", small_input: bool = False) -> Any:
    """Register a model builder under ``name`` (default: the function's ``__name__``), with its
    family (default: the defining module's name) and paper citation.

    Usable bare (``@register_model``) or with arguments (``@register_model(paper="He et al. 2016")``);
    registering a second builder under a name already taken raises ``ValueError`` (models are looked
    up by name, so a silent replacement would change what ``create_model`` returns). Builders take
    ``num_classes`` and ``in_chans`` keyword arguments (timm's and the issue's convention)."""

    def decorate(builder: _Builder) -> _Builder:
        if not callable(builder):
            raise TypeError(f"register_model: expected a callable returning a Module, got {type(builder).__name__}")
        key = name if name is not None else builder.__name__
        if not isinstance(key, str) or not key:
            raise ValueError(f"register_model: the model name must be a non-empty string, got {key!r}")
        if key in _REGISTRY and _REGISTRY[key] is not builder:
            raise ValueError(f"register_model: a model named {key!r} is already registered "
                             f"({_REGISTRY[key].__module__}.{_REGISTRY[key].__qualname__})")
        if _REGISTRY.get(key) is builder:
            return builder  # registering the same builder again changes nothing, its metadata included
        _REGISTRY[key] = builder
        _INFO[key] = ModelInfo(key, family or builder.__module__.rsplit(".", 1)[-1], paper, small_input)
        return builder

    return decorate if fn is None else decorate(fn)


def list_models(pattern: str | None = None) -> list[str]:
    """The registered model names, sorted; ``pattern`` filters them with shell wildcards
    (``list_models("resnet*")``)."""
    names = sorted(_REGISTRY)
    return names if pattern is None else [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def model_info(name: str) -> ModelInfo:
    """Family, paper and input size of a registered model."""
    model_builder(name)
    return _INFO[name]


def create_model(name: str, **kwargs: Any) -> Module:
    """Build the model registered as ``name`` with the builder's keyword arguments
    (``num_classes``, ``in_chans``, and the family's own options)."""
    return model_builder(name)(**kwargs)


def model_builder(name: str) -> Callable[..., Module]:
    """The builder registered as ``name`` (e.g. to read its signature or docstring)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(list_models()) or '(none)'}")
    return _REGISTRY[name]


# Registered architectures (each file registers its builders on import).
from deepnum.models import (  # noqa: E402, F401, I001  (each family file registers its models on import)
    alexnet, convnext, densenet, googlenet, language, mobilenet, nin, resnet, senet, swin, timeseries, vgg, vit,
    voxel, xception,
)
from deepnum.models.lenet import LeNet5, lenet5  # noqa: E402
