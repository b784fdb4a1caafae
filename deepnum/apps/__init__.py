"""``deepnum.apps``: the applications from the study notes, each one module and one ``deepnum``
subcommand (``deepnum anomaly``, ``deepnum transfer``, ...) with a page in ``docs/apps/``.

Every app module defines ``HELP`` (one line for ``deepnum --help``), ``DESCRIPTION``,
``add_arguments(parser)`` and ``run(args) -> int`` (the exit code), and imports anything heavy
(matplotlib, gymnasium, the datasets) inside functions, so that building the command line stays fast.
``APPS`` maps each subcommand to its module; ``deepnum/cli.py`` reads it.
"""
from __future__ import annotations

import importlib
from types import ModuleType

APPS: dict[str, str] = {
    "anomaly": "deepnum.apps.anomaly",
    "transfer": "deepnum.apps.transfer",
    "mae": "deepnum.apps.mae",
    "segment": "deepnum.apps.segmentation",
    "detect": "deepnum.apps.detection",
    "caption": "deepnum.apps.captioning",
    "style": "deepnum.apps.style_transfer",
    "gan": "deepnum.apps.gan",
    "dqn": "deepnum.apps.dqn",
    "ensemble": "deepnum.apps.ensemble",
}


def available_apps() -> dict[str, ModuleType]:
    """The app modules that exist in this installation, by subcommand name."""
    found = {}
    for name, path in APPS.items():
        try:
            found[name] = importlib.import_module(path)
        except ModuleNotFoundError as exc:
            if exc.name != path:
                raise
    return found
