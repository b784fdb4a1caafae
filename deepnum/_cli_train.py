"""``deepnum train``: the training command of the CLI (``deepnum/cli.py`` builds the parser).

A run resolves its configuration (defaults < the run being resumed < the command line), checks
everything that can fail (names, the output directory, the checkpoint to resume, the model against
the dataset's image shape) BEFORE it writes anything, then trains with ``deepnum.train.fit`` and
writes into the output directory:

  ``model.safetensors``       the trained weights; the header metadata names the model, its
                              arguments and the dataset, so ``deepnum eval/predict`` rebuild it
  ``config.json``             the full configuration and, at the end, the test metrics and the time
  ``history.csv/.json``       per-epoch loss, accuracy, val_loss, val_accuracy (the test split,
                              for the curves only: nothing is selected or stopped on it) and lr
  ``curves.png``              loss and accuracy curves (needs matplotlib)
  ``checkpoint.safetensors``  model, optimizer, scheduler, counters and random states after every
                              epoch and on Ctrl-C: ``deepnum train --resume`` continues from it

Output directory rules: an explicit ``--output DIR`` that exists and is not empty is refused (exit 2)
unless ``--overwrite``; the DEFAULT directory ``runs/<model>-<dataset>`` is a scratch location that
every run without ``--output`` replaces (so the bare ``deepnum train`` can be run again and again).
Resuming writes into the checkpoint's own directory unless ``--output`` says otherwise.

Determinism: ``--seed S`` seeds the global generator (weight initialisation) with S, the shuffling
generator with S+1 and the augmentation generator with S+2; the same seed gives the same weights,
the same batches and the same augmented images, hence bit-identical results on one machine.

``mpiexec -n N deepnum train --distributed``: data-parallel training, each process on its shard,
rank 0 alone printing and writing (``deepnum/_cli_distributed.py``, docs/distributed.md).
"""
from __future__ import annotations

import argparse
import inspect
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import deepnum as dn
from deepnum._cli_common import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    WEIGHTS_FILE,
    CLIError,
    dataset_info,
    fmt_path,
    load_split,
    model_metadata,
)
from deepnum._cli_distributed import parallel_run, shard_sampler

# The defaults of `deepnum train` (the no-argument main job: LeNet-5 on the bundled MNIST).
TRAIN_DEFAULTS: dict[str, Any] = {
    "model": "lenet5", "dataset": "mnist", "epochs": 20, "batch_size": 64, "optimizer": "adamw", "lr": None,
    "momentum": None, "weight_decay": None, "schedule": "onecycle", "augment": None, "seed": 0, "limit": None,
    "data_root": None, "amp": False,
}
# Per-optimizer defaults used when --lr / --momentum / --weight-decay are not given.
LR_DEFAULTS = {"sgd": 0.05, "adam": 5e-3, "adamw": 5e-3, "rmsprop": 1e-3, "adagrad": 0.01}
MOMENTUM_DEFAULTS = {"sgd": 0.9, "rmsprop": 0.0}
WEIGHT_DECAY_DEFAULTS = {"sgd": 5e-4, "adam": 0.0, "adamw": 0.01, "rmsprop": 0.0, "adagrad": 0.0}
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULES = ("none", "step", "cosine", "onecycle")
# Light augmentation for image datasets: rotation up to ±10°, shifts up to 10% of the size (±2.8 px on MNIST).
AUGMENT = {"degrees": 10.0, "translate": (0.1, 0.1)}
_HYPER = ("model", "dataset", "epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule",
          "augment", "seed", "limit", "data_root", "amp")
_ARTIFACTS = (WEIGHTS_FILE, CONFIG_FILE, CHECKPOINT_FILE, "history.csv", "history.json", "curves.png")


def default_output(model: str, dataset: str) -> Path:
    return Path("runs") / f"{model}-{dataset}"


# ----------------------------------------------------------------- configuration
def _read_run_config(checkpoint: Path) -> dict[str, Any] | None:
    """The configuration of the run that wrote ``checkpoint`` (its directory's config.json)."""
    path = checkpoint.parent / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot resume: {fmt_path(path)} is not valid JSON ({exc})") from None
    if not isinstance(config, dict) or not all(k in config for k in _HYPER if k != "amp"):  # amp: added later
        raise CLIError(f"cannot resume: {fmt_path(path)} does not hold a deepnum training configuration")
    return config


def resolve_config(args: argparse.Namespace) -> dict[str, Any]:
    """The full configuration: defaults, then (on --resume) the saved run's, then explicit options.
    On resume an explicit option that differs from the saved run is refused: a resumed run must
    continue exactly the run that was interrupted."""
    explicit = {k: getattr(args, k) for k in _HYPER if getattr(args, k) is not None}
    config = dict(TRAIN_DEFAULTS)
    if args.resume is not None:
        saved = _read_run_config(Path(args.resume))
        if saved is None:
            raise CLIError(f"cannot resume: no {CONFIG_FILE} next to {fmt_path(args.resume)}, so the run's settings "
                           "are unknown (a checkpoint written by `deepnum train` sits in its run directory)")
        saved = {k: saved.get(k, TRAIN_DEFAULTS[k]) for k in _HYPER}  # runs from before a setting existed
        clashes = [f"--{k.replace('_', '-')} {v!r} (the run used {saved[k]!r})" for k, v in explicit.items()
                   if saved[k] != v]
        if clashes:
            raise CLIError("cannot resume with different settings: " + "; ".join(clashes)
                           + ". Leave them out to continue the run, or start a new run without --resume")
        config.update(saved)
    config.update(explicit)
    opt = config["optimizer"]
    if config["lr"] is None:
        config["lr"] = LR_DEFAULTS[opt]
    if config["momentum"] is None:
        config["momentum"] = MOMENTUM_DEFAULTS.get(opt)
    elif opt not in MOMENTUM_DEFAULTS:
        raise CLIError(f"--momentum applies to sgd and rmsprop only; {opt} uses betas (β1 = 0.9)")
    if config["weight_decay"] is None:
        config["weight_decay"] = WEIGHT_DECAY_DEFAULTS[opt]
    if config["augment"] is None:  # default: on for image datasets (C, H, W), off for anything else
        shape = dataset_info(config["dataset"])["input_shape"]
        config["augment"] = shape is not None and len(shape) == 3
    return config


# ----------------------------------------------------------------- output directory
def output_dir(args: argparse.Namespace, config: dict[str, Any]) -> Path:
    """Where the run writes, after checking it may: exit 2 (CLIError) before anything is written."""
    if args.output is not None:
        out = Path(args.output)
    elif args.resume is not None:
        out = Path(args.resume).parent
    else:
        return default_output(config["model"], config["dataset"])  # the scratch default: always replaced
    if out.exists() and not out.is_dir():
        raise CLIError(f"output {fmt_path(out)} exists and is not a directory")
    resuming_here = args.resume is not None and out.resolve() == Path(args.resume).parent.resolve()
    if out.is_dir() and any(out.iterdir()) and not (args.overwrite or resuming_here):
        raise CLIError(f"output directory {fmt_path(out)} already exists and is not empty; pass --overwrite to "
                       "replace its run files, or choose another --output")
    return out


def _prepare_dir(out: Path, resuming_here: bool) -> None:
    """Create ``out``; when starting a new run there, remove the previous run's files (only ours)."""
    out.mkdir(parents=True, exist_ok=True)
    if not resuming_here:
        for name in _ARTIFACTS:
            (out / name).unlink(missing_ok=True)


# ----------------------------------------------------------------- building the run
def _model_kwargs(name: str, info: dict[str, Any]) -> dict[str, Any]:
    """num_classes / in_chans (the registry's name; in_channels for older builders) from the dataset,
    for the builder arguments that exist."""
    from deepnum.models import model_builder

    params = inspect.signature(model_builder(name)).parameters
    kwargs: dict[str, Any] = {}
    if "num_classes" in params and info.get("num_classes"):
        kwargs["num_classes"] = int(info["num_classes"])
    shape = info.get("input_shape")
    for channels in ("in_chans", "in_channels"):
        if channels in params and shape and len(shape) >= 2:
            kwargs[channels] = int(shape[0])
            break
    return kwargs


def check_model_fits(model: Any, name: str, dataset: str, info: dict[str, Any]) -> None:
    from deepnum.models import model_info

    if model_info(name).family == "language":
        raise CLIError(f"model {name!r} is a character language model, not a classifier: train it with "
                       f"`deepnum lm --model {name}` and sample from it with `deepnum generate RUN`")
    expected, shape = getattr(model, "input_shape", None), info.get("input_shape")
    if expected is not None and shape is not None and tuple(expected) != tuple(shape):
        raise CLIError(f"model {name!r} expects inputs of shape {tuple(expected)} (C, H, W), but dataset {dataset!r} "
                       f"has samples of shape {tuple(shape)}; choose a matching --model or --dataset")


def make_optimizer(config: dict[str, Any], params: list) -> Any:
    name, lr, wd, momentum = config["optimizer"], config["lr"], config["weight_decay"], config["momentum"]
    if name == "sgd":
        return dn.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=wd, nesterov=momentum > 0)
    if name == "rmsprop":
        return dn.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=wd)
    cls = {"adam": dn.optim.Adam, "adamw": dn.optim.AdamW, "adagrad": dn.optim.Adagrad}[name]
    return cls(params, lr=lr, weight_decay=wd)


def make_scheduler(config: dict[str, Any], optimizer: Any, steps_per_epoch: int) -> tuple[Any, str]:
    """(scheduler, interval): step decay ×0.1 at 1/2 and 3/4 of the epochs; cosine annealing and
    one-cycle (Smith & Topin 2017: warm-up over 30% of the steps, then cosine annealing to lr/10⁴)
    per batch. One-cycle also cycles SGD's momentum / Adam's β1 between 0.95 and 0.85."""
    from deepnum.optim import lr_scheduler as sched

    epochs, kind = config["epochs"], config["schedule"]
    if kind == "step":
        return sched.MultiStepLR(optimizer, milestones=sorted({max(1, epochs // 2), max(1, 3 * epochs // 4)}),
                                 gamma=0.1), "epoch"
    if kind == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch), "step"
    if kind == "onecycle":
        cycle = config["optimizer"] in ("adam", "adamw") or (config["optimizer"] == "sgd" and config["momentum"] > 0)
        return sched.OneCycleLR(optimizer, max_lr=config["lr"], total_steps=epochs * steps_per_epoch,
                                cycle_momentum=cycle), "step"
    return None, "epoch"


class AugmentedLoader:
    """A DataLoader whose image batches go through a batch transform (the loader keeps its fast
    path: whole batches are gathered, then transformed at once)."""

    def __init__(self, loader: Any, transform: Any) -> None:
        self.loader, self.transform = loader, transform
        self.dataset, self.batch_size = loader.dataset, loader.batch_size
        self.sampler = loader.sampler  # fit calls sampler.set_epoch when it has one (DistributedSampler)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Any:
        for x, y in self.loader:
            yield self.transform(x), y


def _train_subset(dataset: Any, limit: int | None, seed: int) -> Any:
    if limit is None or limit >= len(dataset):
        return dataset
    import numpy as np

    from deepnum.data import Subset

    indices = np.sort(np.random.default_rng(seed).permutation(len(dataset))[:limit])
    return Subset(dataset, indices.tolist())


def build_run(config: dict[str, Any], distributed: bool = False, device: str = "cpu") -> dict[str, Any]:
    """Datasets, loaders, model, optimizer, scheduler and generators of a configuration (nothing written);
    ``distributed``: the training loader reads this rank's shard (``_cli_distributed``)."""
    from deepnum.data import DataLoader
    from deepnum.models import create_model

    info = dataset_info(config["dataset"])
    seed = config["seed"]
    dn.manual_seed(seed)
    kwargs = _model_kwargs(config["model"], info)
    model = create_model(config["model"], **kwargs)
    check_model_fits(model, config["model"], config["dataset"], info)
    model.to(device)  # before the optimizer is made; fit/evaluate move each batch to the model's device
    full_train = load_split(config["dataset"], "train", config["data_root"])
    classes = getattr(full_train, "classes", None)
    train_set = _train_subset(full_train, config["limit"], seed)
    test_set = load_split(config["dataset"], info["splits"][-1], config["data_root"])
    generators = {"shuffle": dn.Generator().manual_seed(seed + 1)}
    sampler = shard_sampler(train_set, seed) if distributed else None
    train_loader: Any = DataLoader(train_set, batch_size=config["batch_size"], shuffle=sampler is None,
                                   sampler=sampler, generator=generators["shuffle"])
    if config["augment"]:
        shape = info.get("input_shape")
        if shape is None or len(shape) != 3:
            raise CLIError(f"--augment needs an image dataset; {config['dataset']!r} has samples of shape {shape} "
                           "(pass --no-augment)")
        from deepnum.data.transforms import InterpolationMode, RandomAffine

        generators["augment"] = dn.Generator().manual_seed(seed + 2)
        augment = RandomAffine(AUGMENT["degrees"], translate=AUGMENT["translate"],
                               interpolation=InterpolationMode.BILINEAR, generator=generators["augment"])
        train_loader = AugmentedLoader(train_loader, augment)
    test_loader = DataLoader(test_set, batch_size=500)
    optimizer = make_optimizer(config, list(model.parameters()))
    scheduler, interval = make_scheduler(config, optimizer, len(train_loader))
    return {"model": model, "model_kwargs": kwargs, "info": info, "classes": classes, "train_loader": train_loader,
            "test_loader": test_loader, "optimizer": optimizer, "scheduler": scheduler, "interval": interval,
            "generators": generators, "train_size": len(train_set), "test_size": len(test_set)}


def validate_checkpoint(path: Path, run: dict[str, Any]) -> None:
    """Load the checkpoint into the freshly built objects: a corrupt or foreign file is refused
    here, before the output directory is touched (load_checkpoint changes nothing on failure)."""
    from deepnum.io import CheckpointError, load_checkpoint

    if not path.is_file():
        raise CLIError(f"cannot resume: checkpoint {fmt_path(path)} does not exist")
    try:
        load_checkpoint(path, model=run["model"], optimizer=run["optimizer"], scheduler=run["scheduler"],
                        generators=run["generators"])
    except CheckpointError as exc:
        raise CLIError(f"cannot resume: {exc}") from None


# ----------------------------------------------------------------- running
def _write_json(path: Path, data: dict[str, Any]) -> None:
    from deepnum.io.safetensors import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2) + "\n"))


def _save_outputs(out: Path, run: dict[str, Any], config: dict[str, Any], history: Any) -> list[str]:
    """Weights, history and plot; returns the lines that say where they went."""
    from deepnum.io import save

    weights = out / WEIGHTS_FILE
    save(run["model"].state_dict(), weights,
         metadata=model_metadata(config["model"], run["model_kwargs"], config["dataset"], run["classes"]))
    history.save_csv(out / "history.csv")
    history.save_json(out / "history.json")
    lines = [f"  model weights  {fmt_path(weights)}",
             f"  history        {fmt_path(out / 'history.csv')}, {fmt_path(out / 'history.json')}"]
    try:
        history.plot(out / "curves.png")
        lines.append(f"  curves         {fmt_path(out / 'curves.png')}")
    except ImportError as exc:  # matplotlib is optional
        lines.append(f"  curves         not drawn: {exc}")
    lines += [f"  checkpoint     {fmt_path(out / CHECKPOINT_FILE)}", f"  config         {fmt_path(out / CONFIG_FILE)}"]
    return lines


def _interrupted(exc: KeyboardInterrupt, checkpoint: Path) -> int:
    """Ctrl-C during fit: the engine saved the exact state (TrainingInterrupted); say how to resume."""
    saved = getattr(exc, "checkpoint_path", None)
    if saved is not None:
        print(f"\ninterrupted: the checkpoint is in {fmt_path(saved)}\nresume with: deepnum train --resume {saved}",
              file=sys.stderr)
    elif checkpoint.is_file():
        print(f"\ninterrupted without a new checkpoint; the last one (end of an earlier epoch) is "
              f"{fmt_path(checkpoint)}\nresume with: deepnum train --resume {checkpoint}", file=sys.stderr)
    else:
        print("\ninterrupted before the first checkpoint; nothing to resume", file=sys.stderr)
    return 130


def _announce(config: dict[str, Any], run: dict[str, Any], out: Path) -> None:
    print(f"training {config['model']} on {config['dataset']} ({run['train_size']} train / {run['test_size']} "
          f"test samples) for {config['epochs']} epochs: {config['optimizer']} lr={config['lr']:g}, "
          f"{config['schedule']} schedule, augment={'on' if config['augment'] else 'off'}, seed {config['seed']}"
          f"{', mixed precision (AMP)' if config['amp'] else ''} → {fmt_path(out)}", flush=True)


def run_train(args: argparse.Namespace) -> int:
    """The `train` command: validate, build, train, evaluate on the test split, save."""
    start = time.perf_counter()
    par = parallel_run(args)  # --distributed: this rank's part; rank 0 alone prints and writes
    config = resolve_config(args)
    out = output_dir(args, config)
    device = getattr(args, "device", None) or "cpu"
    if device == "cuda" and not dn.cuda.is_available():
        raise CLIError("--device cuda: no usable GPU (CuPy is not installed, or it finds no CUDA device); "
                       "install the extra with pip install 'deepnum[gpu]' on a machine with an NVIDIA GPU")
    run = build_run(config, distributed=par.enabled, device=device)
    resume = Path(args.resume) if args.resume is not None else None
    if resume is not None:
        validate_checkpoint(resume, run)
    resuming_here = resume is not None and out.resolve() == resume.parent.resolve()
    par.barrier()
    checkpoint = out / CHECKPOINT_FILE
    record = {**config, "model_kwargs": run["model_kwargs"], "train_size": run["train_size"],
              "test_size": run["test_size"], "status": "running"}
    if par.enabled:
        record["world_size"] = par.world_size
    if par.is_main:
        _prepare_dir(out, resuming_here)
        if resume is not None and not resuming_here:
            shutil.copyfile(resume, checkpoint)
            resume = checkpoint
        _write_json(out / CONFIG_FILE, record)
    if not args.quiet and par.is_main:
        _announce(config, run, out)
        if par.enabled:
            print(par.describe(config["batch_size"]), flush=True)
    from deepnum.train import evaluate, fit

    loss_fn = dn.nn.CrossEntropyLoss()
    try:
        history = fit(par.wrap(run["model"]), run["train_loader"], epochs=config["epochs"],
                      optimizer=run["optimizer"], loss_fn=loss_fn,
                      val_loader=run["test_loader"] if par.is_main else None, scheduler=run["scheduler"],
                      scheduler_interval=run["interval"], progress=False if args.quiet or not par.is_main else None,
                      checkpoint_path=checkpoint if par.is_main else None, resume_from=resume,
                      generators=run["generators"], amp=config["amp"])
    except KeyboardInterrupt as exc:
        return _interrupted(exc, checkpoint) if par.is_main else 130
    if not par.is_main:
        return 0
    result = evaluate(run["model"], run["test_loader"], loss_fn=loss_fn)
    lines = _save_outputs(out, run, config, history)
    seconds = time.perf_counter() - start
    record.update(status="done", test_accuracy=float(result["accuracy"]), test_loss=float(result["loss"]),
                  seconds=round(seconds, 2))
    _write_json(out / CONFIG_FILE, record)
    print(f"test accuracy: {100 * result['accuracy']:.2f}% on {run['test_size']} {config['dataset']} test samples "
          f"(test loss {result['loss']:.4f}) in {seconds:.1f} s")
    print(f"wrote {fmt_path(out)}:")
    print("\n".join(lines))
    return 0
