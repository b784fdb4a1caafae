"""``deepnum lm`` and ``deepnum generate``: character-level language models on the command line
(``deepnum/cli.py`` registers them with ``add_lm_parsers``).

``deepnum lm --model char_lstm|char_gpt`` trains on the bundled Shakespeare corpus
(``deepnum.data.datasets.shakespeare``: the first 90% of the characters for training, the last 10% for
validation) with ``deepnum.train.lm.train_language_model`` for ``--minutes`` of training time (default
10) or ``--steps`` steps, prints the progress and the final validation loss in nats per character,
and writes into the run directory (default ``runs/<model>-shakespeare``, replaced by every run
without ``--output``; an explicit non-empty ``--output`` needs ``--overwrite``, as ``deepnum train``):

  ``model.safetensors``  the weights; header metadata: the model name, its constructor arguments
                         (JSON), ``deepnum.kind = language-model`` and the vocabulary string
  ``history.json``       train/validation loss per evaluation, every step's loss, the final row
  ``config.json``        the configuration, the final validation loss and the time

``deepnum generate RUN`` samples text from such a run (its directory or model.safetensors), starting
from ``--prompt``; it refuses any other file (a classifier's run, a checkpoint, a foreign safetensors
file) with exit code 2.

Defaults (``LM_DEFAULTS``), chosen in short exploration runs to reach a validation loss below 1.75
nats/char within 10 minutes of CPU training: batches of 32 × 64 characters, AdamW with 100 warm-up
steps and cosine decay to a tenth of the peak over the budget, gradient norm clipped at 1;
char_lstm: embedding 128, one LSTM layer of 256, lr 3e-3, no weight decay (a 3,000-step run: 1.68
nats/char on 20k validation characters after 500 steps, 1.43 on the whole split at the end);
char_gpt: d_model 128, 2 blocks of 4 heads, context 64, lr 4e-3, weight decay 0.1 (an 800-step run
ends at 1.74; 4 blocks reach 1.76 in those 800 steps, at twice the cost per step).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from deepnum._cli_common import (
    WEIGHTS_FILE,
    CLIError,
    _describe,
    _nonnegative_float,
    _positive_float,
    _positive_int,
    fmt_path,
    model_metadata,
)

__all__ = ["LANGUAGE_MODELS", "LM_DEFAULTS", "add_lm_parsers", "run_generate", "run_lm"]

LANGUAGE_MODELS = ("char_lstm", "char_gpt")
KIND = "language-model"
DATASET = "shakespeare"
# Model arguments and training settings per model; the command line overrides any of them.
LM_DEFAULTS: dict[str, dict[str, Any]] = {
    "char_lstm": {"embed_dim": 128, "hidden_size": 256, "num_layers": 1, "dropout": 0.0,
                  "seq_len": 64, "batch_size": 32, "lr": 3e-3, "weight_decay": 0.0, "warmup": 100},
    "char_gpt": {"d_model": 128, "n_layer": 2, "n_head": 4, "dropout": 0.0,
                 "seq_len": 64, "batch_size": 32, "lr": 4e-3, "weight_decay": 0.1, "warmup": 100},
}
COMMON_DEFAULTS: dict[str, Any] = {"minutes": 10.0, "clip": 1.0, "schedule": "cosine", "eval_every": 250,
                                   "eval_tokens": 20_000, "seed": 0}
# command-line option → (model argument, the models it applies to)
_MODEL_OPTIONS = {"embed": ("embed_dim", ("char_lstm",)), "hidden": ("hidden_size", ("char_lstm",)),
                  "layers": (None, LANGUAGE_MODELS), "d_model": ("d_model", ("char_gpt",)),
                  "heads": ("n_head", ("char_gpt",)), "block_size": ("block_size", ("char_gpt",)),
                  "dropout": ("dropout", LANGUAGE_MODELS)}


# ----------------------------------------------------------------- parsers
def add_lm_parsers(sub: Any) -> None:
    """Add the ``lm`` and ``generate`` sub-commands to the CLI's sub-parsers."""
    positive_int, positive_float, nonnegative_float = _positive_int, _positive_float, _nonnegative_float
    p = sub.add_parser("lm", help="train a character-level language model on Shakespeare",
                       description="Train a character-level language model (LSTM or GPT-style transformer) on the "
                                   "bundled Shakespeare corpus; report the validation loss in nats per character.")
    p.add_argument("--model", choices=LANGUAGE_MODELS, default="char_lstm", help="model (default char_lstm)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=positive_int, help="train this many steps")
    budget.add_argument("--minutes", type=positive_float, help="train this many minutes (default 10; evaluation "
                                                               "not counted)")
    p.add_argument("--seq-len", type=positive_int, help="characters per sequence (default 64)")
    p.add_argument("--batch-size", type=positive_int, help="sequences per step (default 32)")
    p.add_argument("--lr", type=positive_float, help="peak learning rate of AdamW (default: lstm 3e-3, gpt 4e-3)")
    p.add_argument("--weight-decay", type=nonnegative_float, help="AdamW weight decay (default: lstm 0, gpt 0.1)")
    p.add_argument("--warmup", type=int, help="linear warm-up steps (default 100)")
    p.add_argument("--schedule", choices=("cosine", "constant"), help="learning rate after warm-up: cosine decay "
                                                                      "over the budget (default) or constant")
    p.add_argument("--clip", type=nonnegative_float, help="gradient-norm clipping, 0 = off (default 1.0)")
    p.add_argument("--embed", type=positive_int, help="char_lstm: embedding size (default 128)")
    p.add_argument("--hidden", type=positive_int, help="char_lstm: LSTM hidden size (default 256)")
    p.add_argument("--layers", type=positive_int, help="LSTM layers (default 1) or transformer blocks (default 2)")
    p.add_argument("--d-model", type=positive_int, help="char_gpt: model width (default 128)")
    p.add_argument("--heads", type=positive_int, help="char_gpt: attention heads (default 4)")
    p.add_argument("--block-size", type=positive_int, help="char_gpt: longest context (default: --seq-len)")
    p.add_argument("--dropout", type=nonnegative_float, help="dropout (default 0)")
    p.add_argument("--eval-every", type=positive_int, help="validate every N steps on --eval-tokens characters "
                                                           "(default 250; the end of the run uses them all)")
    p.add_argument("--eval-tokens", type=positive_int, help="characters of the periodic validation (default 20000)")
    p.add_argument("--seed", type=int, help="random seed (weights and batches; default 0)")
    p.add_argument("--output", metavar="DIR", help="run directory (default runs/MODEL-shakespeare, replaced by every "
                                                   "run that does not name --output)")
    p.add_argument("--overwrite", action="store_true", help="replace the run files in an existing --output directory")
    p.add_argument("--quiet", action="store_true", help="no progress, only the result")

    p = sub.add_parser("generate", help="sample text from a language model trained with `deepnum lm`",
                       description="Print text sampled from a character-level language model: the prompt followed "
                                   "by --length generated characters.")
    p.add_argument("source", metavar="RUN", help="run directory written by `deepnum lm`, or its model.safetensors")
    p.add_argument("--prompt", default="\n", help="text to start from (default: a newline)")
    p.add_argument("--length", type=positive_int, default=500, help="characters to generate (default 500)")
    p.add_argument("--temperature", type=nonnegative_float, default=0.8,
                   help="sampling temperature; lower is more conservative, 0 is greedy (default 0.8)")
    p.add_argument("--top-k", type=positive_int, help="sample among the K most likely characters only")
    p.add_argument("--seed", type=int, help="random seed: the same seed gives the same text (default: random)")


# ----------------------------------------------------------------- deepnum lm
def resolve_lm_config(args: argparse.Namespace) -> dict[str, Any]:
    """Model arguments and training settings: defaults, overridden by the given options."""
    name = args.model
    defaults = LM_DEFAULTS[name]
    misplaced = [f"--{opt.replace('_', '-')}" for opt, (_, models) in _MODEL_OPTIONS.items()
                 if getattr(args, opt) is not None and name not in models]
    if misplaced:
        raise CLIError(f"{', '.join(misplaced)} do{'es' * (len(misplaced) == 1)} not apply to {name}")
    config = {**COMMON_DEFAULTS, **defaults, "model": name}
    for key in ("steps", "minutes", "seq_len", "batch_size", "lr", "weight_decay", "warmup", "schedule", "clip",
                "eval_every", "eval_tokens", "seed"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    if args.steps is not None and args.minutes is None:
        config["minutes"] = None
    if config["warmup"] < 0:
        raise CLIError(f"--warmup must be ≥ 0, got {config['warmup']}")
    if args.dropout is not None and not args.dropout < 1:
        raise CLIError(f"--dropout must be in [0, 1), got {args.dropout}")
    kwargs = {k: config.pop(k) for k in ("embed_dim", "hidden_size", "num_layers", "d_model", "n_layer", "n_head",
                                         "dropout") if k in config}
    for opt, (key, _) in _MODEL_OPTIONS.items():
        if getattr(args, opt) is not None:
            kwargs[key or ("num_layers" if name == "char_lstm" else "n_layer")] = getattr(args, opt)
    if name == "char_gpt":
        kwargs.setdefault("block_size", config["seq_len"])
        if config["seq_len"] > kwargs["block_size"]:
            raise CLIError(f"--seq-len {config['seq_len']} exceeds --block-size {kwargs['block_size']}")
        if kwargs["d_model"] % kwargs["n_head"]:
            raise CLIError(f"--d-model {kwargs['d_model']} must be divisible by --heads {kwargs['n_head']}")
    config["model_kwargs"] = kwargs
    return config


def _output(args: argparse.Namespace, name: str) -> Path:
    from deepnum._cli_train import output_dir

    return output_dir(argparse.Namespace(output=args.output, resume=None, overwrite=args.overwrite),
                      {"model": name, "dataset": DATASET})


def _budget_text(config: dict[str, Any]) -> str:
    parts = ([f"{config['steps']} steps"] if config.get("steps") else []) + (
        [f"{config['minutes']:g} minutes"] if config.get("minutes") else [])
    return " or ".join(parts)


def run_lm(args: argparse.Namespace) -> int:
    """The ``lm`` command: check, build, train, evaluate, save."""
    import deepnum as dn
    from deepnum._cli_train import _prepare_dir, _write_json
    from deepnum.data.datasets.shakespeare import TRAIN_FRACTION, CharVocab, shakespeare_text
    from deepnum.io import save
    from deepnum.models import create_model
    from deepnum.models.language import generate
    from deepnum.train.lm import train_language_model

    start = time.perf_counter()
    config = resolve_lm_config(args)
    out = _output(args, config["model"])
    try:
        text = shakespeare_text()
    except (RuntimeError, OSError) as exc:
        raise CLIError(str(exc)) from None
    vocab = CharVocab.from_text(text)
    ids = vocab.encode(text)
    cut = int(len(text) * TRAIN_FRACTION)
    kwargs = {"vocab_size": len(vocab), **config["model_kwargs"]}
    dn.manual_seed(config["seed"])
    model = create_model(config["model"], **kwargs)
    params = sum(p.numel() for p in model.parameters())
    _prepare_dir(out, False)
    record = {**config, "model_kwargs": kwargs, "parameters": params, "vocab_size": len(vocab),
              "train_chars": cut, "val_chars": len(text) - cut, "status": "running"}
    _write_json(out / "config.json", record)
    if not args.quiet:
        print(f"training {config['model']} ({params:,} parameters, {len(vocab)} characters) on Shakespeare "
              f"({cut:,} train / {len(text) - cut:,} val characters) for {_budget_text(config)}: AdamW "
              f"lr={config['lr']:g}, batch {config['batch_size']}×{config['seq_len']}, seed {config['seed']} → "
              f"{fmt_path(out)}", flush=True)
    history = train_language_model(
        model, ids[:cut], ids[cut:], seq_len=config["seq_len"], batch_size=config["batch_size"],
        steps=config.get("steps"), max_minutes=config.get("minutes"), lr=config["lr"],
        weight_decay=config["weight_decay"], scheduler="cosine" if config["schedule"] == "cosine" else None,
        warmup_steps=config["warmup"], clip_grad_norm=config["clip"] or None, eval_every=config["eval_every"],
        eval_tokens=config["eval_tokens"], generator=dn.Generator().manual_seed(config["seed"] + 1),
        progress=False if args.quiet else None)
    final = history.final
    metadata = {**model_metadata(config["model"], kwargs, DATASET, None), "deepnum.kind": KIND,
                "deepnum.vocab": "".join(vocab.chars)}
    save(model.state_dict(), out / WEIGHTS_FILE, metadata=metadata)
    _write_json(out / "history.json", history.to_dict())
    seconds = time.perf_counter() - start
    record.update(status="done", steps_done=int(final["step"]), val_loss=final["val_loss"], val_bpc=final["val_bpc"],
                  train_seconds=round(final["train_time"], 2), seconds=round(seconds, 2))
    _write_json(out / "config.json", record)
    print(f"validation loss: {final['val_loss']:.4f} nats/char ({final['val_bpc']:.4f} bits/char) on "
          f"{int(final['val_tokens']):,} characters after {int(final['step'])} steps, {final['train_time']:.1f} s "
          f"of training ({seconds:.1f} s in all)")
    if not args.quiet:
        sample = generate(model, vocab.encode("\n"), 200, temperature=0.8,
                          generator=dn.Generator().manual_seed(config["seed"]))
        print("sample:\n" + vocab.decode(sample))
    print(f"wrote {fmt_path(out)}: {WEIGHTS_FILE}, history.json, config.json")
    return 0


# ----------------------------------------------------------------- deepnum generate
def _holds(file: Path, meta: dict[str, str], is_checkpoint: bool) -> str:
    """What a file that is not a language model holds, for the refusal message."""
    if is_checkpoint:
        return "a training checkpoint"
    if "deepnum.model" in meta:
        dataset = meta.get("deepnum.dataset")
        return f"a {meta['deepnum.model']} model" + (f" trained on {dataset}" if dataset else "")
    return "weights without deepnum's language-model metadata" if meta or file.suffix == ".safetensors" else \
        "no deepnum model"


def load_language_model(source: str | Path) -> tuple[Any, Any, Path]:
    """(model in eval mode, CharVocab, file) from a ``deepnum lm`` run directory or its weights file;
    anything else is refused with a CLIError naming the file and what it holds."""
    from deepnum.data.datasets.shakespeare import CharVocab
    from deepnum.io import CheckpointError, load
    from deepnum.models import create_model, list_models

    file, meta, is_checkpoint = _describe(Path(source))
    if is_checkpoint or meta.get("deepnum.kind") != KIND:
        raise CLIError(f"{fmt_path(file)} is not a language model: it holds {_holds(file, meta, is_checkpoint)}; "
                       "`deepnum generate` needs a run written by `deepnum lm`")
    name = meta.get("deepnum.model")
    try:
        kwargs = json.loads(meta.get("deepnum.model_kwargs", "{}"))
        chars = meta["deepnum.vocab"]
    except (ValueError, KeyError):
        raise CLIError(f"{fmt_path(file)}: its language-model metadata is damaged") from None
    if name not in list_models():
        raise CLIError(f"{fmt_path(file)} holds an unknown model {name!r}")
    vocab = CharVocab(chars)
    if len(vocab) != len(chars) or kwargs.get("vocab_size") != len(vocab):
        raise CLIError(f"{fmt_path(file)}: its vocabulary ({len(chars)} characters) does not match the model's "
                       f"vocab_size={kwargs.get('vocab_size')}")
    try:
        model = create_model(name, **kwargs)
        model.load_state_dict(load(file))
    except CheckpointError as exc:
        raise CLIError(str(exc)) from None
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise CLIError(f"cannot load {fmt_path(file)} into {name}: {exc}") from None
    return model.eval(), vocab, file


def run_generate(args: argparse.Namespace) -> int:
    """The ``generate`` command: print the prompt and the sampled continuation."""
    import numpy as np

    import deepnum as dn
    from deepnum.models.language import generate

    model, vocab, _ = load_language_model(args.source)
    if not args.prompt:
        raise CLIError("--prompt must not be empty (the model needs at least one character to start from)")
    unknown = sorted(set(args.prompt) - set(vocab.chars))
    if unknown:
        raise CLIError(f"the prompt has characters outside the model's vocabulary of {len(vocab)} characters: "
                       f"{', '.join(repr(c) for c in unknown)}")
    seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % 2**63)
    generator = dn.Generator().manual_seed(seed)
    ids = generate(model, vocab.encode(args.prompt), args.length, temperature=args.temperature, top_k=args.top_k,
                   generator=generator)
    print(vocab.decode(ids))
    return 0
