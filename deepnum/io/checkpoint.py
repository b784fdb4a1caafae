"""Training checkpoints: everything needed to stop a run and resume it exactly, in ONE safetensors
file written atomically (``deepnum.io.safetensors.atomic_write``).

The file holds, as tensors:
  ``model.<key>``                     the model's ``state_dict()`` (parameters and persistent buffers)
  ``optimizer.state.<index>.<name>``  the optimizer's per-parameter state (Adam's ``exp_avg``, ``step``...)
  ``rng.*``                           array parts of the random states (NumPy's MT19937 key)
and, as JSON strings in the safetensors metadata (see ``_state_json`` for the tagged types):
  ``deepnum.checkpoint``  the format version;  ``model``  the model's class name
  ``optimizer``  the class and the rest of ``optimizer.state_dict()`` (param groups, hyper-parameters)
  ``scheduler``  the class and ``scheduler.state_dict()`` (numbers, lists, dicts; a lambda is refused)
  ``epoch``, ``step``  integers;  ``extra``  any JSON-able user data (tensors allowed)
  ``rng``  the random states: ``deepnum.random.default_generator`` (seed and PCG64 state), each named
           generator passed in ``generators`` (e.g. a DataLoader's shuffling generator), NumPy's legacy
           global RNG (``np.random.get_state``) and Python's ``random`` module (``random.getstate``).

``load_checkpoint`` reads and checks everything first (the file, the JSON, optimizer class, group and
parameter counts and state shapes, scheduler class and keys, generator names and states, then the model's
keys, shapes and dtypes through ``Module.load_state_dict``, which itself changes nothing on a mismatch),
and only then restores the optimizer, the scheduler and the random generators. A refused checkpoint
leaves every object as it was.
"""
from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from typing import Any

import numpy as np

from deepnum import random as dn_random
from deepnum.io import safetensors as _st
from deepnum.io._state_json import decode, encode
from deepnum.io.safetensors import CheckpointError, atomic_write, host_array, load_arrays, require_safetensors
from deepnum.tensor import Tensor

FORMAT_KEY = "deepnum.checkpoint"
FORMAT_VERSION = "1"


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def _generator_state(gen: Any, name: str) -> dict[str, Any]:
    if not (hasattr(gen, "get_state") and hasattr(gen, "set_state")):
        raise TypeError(f"save_checkpoint: generators[{name!r}] is a {type(gen).__name__}, expected a "
                        "deepnum.random.Generator")
    return {"seed": gen.initial_seed(), "state": gen.get_state()}


def _rng_states(generators: Mapping[str, Any] | None) -> dict[str, Any]:
    generators = dict(generators or {})
    for name in generators:
        if not isinstance(name, str):
            raise TypeError(f"save_checkpoint: generator names must be strings, got {name!r}")
    return {"deepnum": {"default": _generator_state(dn_random.default_generator, "default"),
                        "named": {n: _generator_state(g, n) for n, g in generators.items()}},
            "numpy": np.random.get_state(legacy=False),
            "python": random.getstate()}


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"save_checkpoint: {name} must be an int, got {value!r}")
    return int(value)


def save_checkpoint(path: str | os.PathLike, *, model: Any, optimizer: Any = None, scheduler: Any = None,
                    epoch: int = 0, step: int = 0, generators: Mapping[str, Any] | None = None,
                    extra: Any = None) -> None:
    """Write the model, optimizer and scheduler states, epoch/step counters, the random states and
    ``extra`` to one safetensors file, atomically (a crash keeps the previous checkpoint). Everything is
    converted and checked before the file is opened; a value JSON cannot hold (a lambda in a scheduler's
    state, an arbitrary object in ``extra``) raises TypeError naming it."""
    tensors = {f"model.{k}": host_array(v, f"model.{k}") for k, v in model.state_dict().items()}
    meta = {FORMAT_KEY: FORMAT_VERSION, "model": _dumps({"class": type(model).__name__}),
            "epoch": str(_as_int(epoch, "epoch")), "step": str(_as_int(step, "step"))}
    if optimizer is not None:
        state = encode(optimizer.state_dict(), "optimizer", tensors, "the optimizer state")
        meta["optimizer"] = _dumps({"class": type(optimizer).__name__, "state_dict": state})
    if scheduler is not None:
        state = encode(scheduler.state_dict(), "scheduler", tensors, "the scheduler state")
        meta["scheduler"] = _dumps({"class": type(scheduler).__name__, "state_dict": state})
    meta["extra"] = _dumps(encode(extra, "extra", tensors, "extra"))
    meta["rng"] = _dumps(encode(_rng_states(generators), "rng", tensors, "a random generator state"))
    require_safetensors()
    atomic_write(path, lambda tmp: _st._write_file(tensors, tmp, meta))


# ----------------------------------------------------------------- loading
class _Reader:
    """The checked contents of a checkpoint file, decoded on demand; errors name the file."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self.arrays, self.meta = load_arrays(self.path)
        if self.meta.get(FORMAT_KEY) is None:
            raise self.error("it is a safetensors file but not a deepnum checkpoint (no 'deepnum.checkpoint' "
                             "metadata); load plain weights with deepnum.load(path)")
        if self.meta[FORMAT_KEY] != FORMAT_VERSION:
            raise self.error(f"checkpoint format version {self.meta[FORMAT_KEY]!r} is not supported (this deepnum "
                             f"reads version {FORMAT_VERSION})")

    def error(self, problem: str) -> CheckpointError:
        return CheckpointError(f"cannot load checkpoint {self.path}: {problem}")

    def json(self, key: str) -> Any:
        """Decoded metadata entry ``key`` (None when absent)."""
        if key not in self.meta:
            return None
        try:
            return decode(json.loads(self.meta[key]), self.arrays, f"metadata {key!r}")
        except (ValueError, KeyError, TypeError) as exc:
            raise self.error(f"its {key!r} metadata is damaged ({type(exc).__name__}: {exc})") from None

    def integer(self, key: str) -> int:
        try:
            return int(self.meta[key])
        except (KeyError, ValueError):
            raise self.error(f"its {key!r} metadata is missing or not an integer") from None

    def model_state(self) -> dict[str, Tensor]:
        return {k[len("model."):]: Tensor._make(v) for k, v in self.arrays.items() if k.startswith("model.")}


def _check_optimizer(reader: _Reader, optimizer: Any) -> dict[str, Any]:
    """The saved optimizer state dict, after checking it fits ``optimizer`` (what load_state_dict needs)."""
    saved = reader.json("optimizer")
    name = type(optimizer).__name__
    if saved is None:
        raise reader.error(f"an optimizer ({name}) was given but the checkpoint holds no optimizer state")
    if saved.get("class") != name:
        raise reader.error(f"the checkpoint holds a {saved.get('class')} state, the optimizer given is a {name}")
    state = saved.get("state_dict")
    if not (isinstance(state, dict) and isinstance(state.get("param_groups"), list)
            and isinstance(state.get("state"), dict)):
        raise reader.error("its optimizer state lacks 'state' or 'param_groups'")
    groups, own = state["param_groups"], optimizer.param_groups
    if len(groups) != len(own):
        raise reader.error(f"the saved optimizer has {len(groups)} parameter groups, {name} has {len(own)}")
    params = {}
    for g, (saved_group, own_group) in enumerate(zip(groups, own)):
        if len(saved_group.get("params", ())) != len(own_group["params"]):
            raise reader.error(f"parameter group {g} of the saved optimizer has {len(saved_group.get('params', ()))} "
                               f"parameters, {name}'s has {len(own_group['params'])}")
        params.update(zip(saved_group["params"], own_group["params"]))
    for index, values in state["state"].items():
        if index not in params:
            raise reader.error(f"the saved optimizer has state for parameter {index}, which no group lists")
        for key, value in values.items():
            p = params[index]
            if isinstance(value, Tensor) and value.ndim > 0 and tuple(value.shape) != tuple(p.shape):
                raise reader.error(f"optimizer state {key!r} of parameter {index} has shape {tuple(value.shape)}, "
                                   f"the parameter has {tuple(p.shape)}")
    return state


def _check_scheduler(reader: _Reader, scheduler: Any) -> dict[str, Any]:
    saved = reader.json("scheduler")
    name = type(scheduler).__name__
    if saved is None:
        raise reader.error(f"a scheduler ({name}) was given but the checkpoint holds no scheduler state")
    if saved.get("class") != name:
        raise reader.error(f"the checkpoint holds a {saved.get('class')} state, the scheduler given is a {name}")
    state = saved.get("state_dict")
    expected = set(scheduler.state_dict())
    if not isinstance(state, dict) or set(state) != expected:
        got = set(state) if isinstance(state, dict) else set()
        raise reader.error(f"the saved {name} state does not match: missing {sorted(expected - got)}, "
                           f"unexpected {sorted(got - expected)}")
    return state


def _check_rng(reader: _Reader, generators: Mapping[str, Any] | None) -> dict[str, Any]:
    """The saved random states, each tried on a scratch generator first (a bad one raises here)."""
    rng = reader.json("rng")
    try:
        named = rng["deepnum"]["named"]
        states = [rng["deepnum"]["default"]] + [named[n] for n in (generators or {}) if n in named]
        for s in states:
            dn_random.Generator().set_state(s["state"])
        np.random.RandomState().set_state(rng["numpy"])
        random.Random().setstate(rng["python"])
    except (KeyError, TypeError, ValueError) as exc:
        raise reader.error(f"its random generator states are damaged ({type(exc).__name__}: {exc})") from None
    missing = [n for n in (generators or {}) if n not in named]
    if missing:
        raise reader.error(f"no state for the generator(s) {missing}; it has {sorted(named)}")
    return rng


def _restore_generator(gen: Any, saved: dict[str, Any]) -> None:
    gen.set_state(saved["state"])
    if hasattr(gen, "_seed"):  # initial_seed() reports the seed of the run that saved the state
        gen._seed = saved["seed"]


def load_checkpoint(path: str | os.PathLike, *, model: Any, optimizer: Any = None, scheduler: Any = None,
                    generators: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Restore a ``save_checkpoint`` file into ``model`` (and ``optimizer``, ``scheduler``, the named
    ``generators``, deepnum's default generator, NumPy's and Python's global RNGs); returns
    ``{"epoch": int, "step": int, "extra": ...}``. Everything is checked before anything changes; a
    problem raises ``CheckpointError`` naming the file."""
    reader = _Reader(path)
    epoch, step = reader.integer("epoch"), reader.integer("step")
    extra = reader.json("extra")
    opt_state = _check_optimizer(reader, optimizer) if optimizer is not None else None
    sched_state = _check_scheduler(reader, scheduler) if scheduler is not None else None
    rng = _check_rng(reader, generators)
    try:
        model.load_state_dict(reader.model_state())  # checks keys, shapes and dtypes before copying anything
    except RuntimeError as exc:
        raise reader.error(f"it does not fit the model {type(model).__name__}: {exc}") from None
    if opt_state is not None:
        optimizer.load_state_dict(opt_state)
    if sched_state is not None:
        scheduler.load_state_dict(sched_state)
    _restore_generator(dn_random.default_generator, rng["deepnum"]["default"])
    for name, gen in (generators or {}).items():
        _restore_generator(gen, rng["deepnum"]["named"][name])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
    return {"epoch": epoch, "step": step, "extra": extra}
