"""``deepnum dqn``: a deep Q-network (Mnih et al. 2015) that learns to balance gymnasium's CartPole-v1.

The agent acts ε-greedily (ε decays linearly from 1 to 0.05 over the first 10,000 steps), stores
every transition in a replay buffer of 50,000, and after 1,000 random steps makes one Adam update
per environment step on a minibatch of 64: the Huber loss between Q(s, a) and r + γ·Q'(s', a*) with
a target network Q' (``_dqn_agent.py``). Tricks, each switchable: double DQN, soft target updates
(τ = 0.005 per step), gradient-norm clipping (10). A truncated episode (CartPole's 500-step limit)
still bootstraps from s'; only a terminated one (the pole fell) has no future.

Every 2,500 steps the greedy policy is screened on 10 seeded episodes; when the screen averages
>= 475, the full evaluation runs (100 episodes, seeds 10000..10099, greedy) and the best policy so
far is kept; training stops at the first full evaluation >= 475. ``deepnum dqn --evaluate RUN``
re-evaluates a saved policy (any number of episodes, any seed)."""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "evaluate_saved", "run"]

HELP = "train a DQN agent on CartPole-v1 (target: mean return >= 475 over 100 episodes)"
DESCRIPTION = __doc__.split("\n\n", 1)[1] + """

Outputs in --output: policy.safetensors (the best Q-network, with the environment and sizes in its
metadata), learning_curve.png (episode returns, their moving average of 100, the evaluations) and
metrics.json. Needs gymnasium: pip install 'deepnum[rl]'."""

POLICY_FILE = "policy.safetensors"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from deepnum._cli_common import _nonnegative_float, _nonnegative_int, _positive_float, _positive_int
    from deepnum.apps._dqn_train import DQNConfig

    d = DQNConfig()
    p.add_argument("--evaluate", metavar="RUN", help="evaluate a saved policy (run directory or policy file) "
                                                     "instead of training")
    p.add_argument("--steps", type=_positive_int, default=d.steps, help=f"environment steps at most "
                                                                        f"(default {d.steps})")
    p.add_argument("--hidden", type=_positive_int, nargs="+", default=list(d.hidden),
                   help="hidden layer widths of the Q-network (default 128 128)")
    p.add_argument("--lr", type=_positive_float, default=d.lr, help=f"Adam learning rate (default {d.lr})")
    p.add_argument("--batch-size", type=_positive_int, default=d.batch_size, help=f"minibatch (default {d.batch_size})")
    p.add_argument("--buffer-size", type=_positive_int, default=d.buffer_size, help="replay capacity (default "
                                                                                     f"{d.buffer_size})")
    p.add_argument("--learning-starts", type=_nonnegative_int, default=d.learning_starts,
                   help=f"random steps before the first update (default {d.learning_starts})")
    p.add_argument("--train-every", type=_positive_int, default=d.train_every,
                   help=f"environment steps per gradient update (default {d.train_every})")
    p.add_argument("--eps-decay-steps", type=_positive_int, default=d.eps_decay_steps,
                   help=f"steps over which epsilon falls from 1 to 0.05 (default {d.eps_decay_steps})")
    p.add_argument("--tau", type=_positive_float, default=d.tau, help="soft target-update rate (default 0.005; "
                                                                      "1 with --target-every N: hard copies)")
    p.add_argument("--target-every", type=_positive_int, default=d.target_every,
                   help="gradient updates between target updates (default 1)")
    p.add_argument("--double", action=argparse.BooleanOptionalAction, default=d.double,
                   help="double DQN targets (default on)")
    p.add_argument("--clip", type=_nonnegative_float, default=d.clip,
                   help="gradient-norm clipping, 0 for none (default 10)")
    p.add_argument("--eval-every", type=_positive_int, default=d.eval_every, help=f"steps between evaluations "
                                                                                  f"(default {d.eval_every})")
    p.add_argument("--eval-episodes", type=_positive_int, default=d.eval_episodes,
                   help=f"episodes of the full evaluation (default {d.eval_episodes})")
    p.add_argument("--eval-seed", type=int, default=d.eval_seed, help=f"seed of the first evaluation episode "
                                                                      f"(default {d.eval_seed})")
    p.add_argument("--no-early-stop", dest="early_stop", action="store_false",
                   help="train all --steps even after the target is reached")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed: same seed, same result (default 0)")
    p.add_argument("--output", metavar="DIR", default="runs/dqn", help="output directory (default runs/dqn)")


def _config(args: argparse.Namespace) -> Any:
    from deepnum.apps._dqn_train import DQNConfig

    if args.tau > 1.0:
        from deepnum._cli_common import CLIError

        raise CLIError(f"--tau must be in (0, 1], got {args.tau}")
    return DQNConfig(steps=args.steps, hidden=tuple(args.hidden), lr=args.lr, batch_size=args.batch_size,
                     buffer_size=args.buffer_size, learning_starts=args.learning_starts, train_every=args.train_every,
                     eps_decay_steps=args.eps_decay_steps, tau=args.tau, target_every=args.target_every,
                     double=args.double, clip=args.clip or None, eval_every=args.eval_every,
                     eval_episodes=args.eval_episodes, eval_seed=args.eval_seed, early_stop=args.early_stop,
                     seed=args.seed)


def plot_learning_curve(record: dict[str, Any], target: float, path: Path) -> None:
    """Episode returns against environment steps, their moving average over 100 episodes, and the
    greedy evaluations (screen and full)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from deepnum.io.safetensors import atomic_write

    returns, ends = np.asarray(record["returns"]), np.asarray(record["episode_end"])
    fig = Figure(figsize=(9, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(ends, returns, lw=0.6, alpha=0.45, label="episode return (ε-greedy)")
    if returns.size:
        moving = np.array([returns[max(0, i - 99):i + 1].mean() for i in range(returns.size)])
        ax.plot(ends, moving, lw=2, label="moving average (100 episodes)")
    evals = record["evals"]
    ax.plot([e["step"] for e in evals], [e["screen_mean"] for e in evals], "o", ms=4, label="greedy screen (10)")
    full = [e for e in evals if "mean" in e]
    if full:
        ax.errorbar([e["step"] for e in full], [e["mean"] for e in full], yerr=[e["std"] for e in full], fmt="s",
                    color="k", capsize=3, label="greedy evaluation (100), ± std")
    ax.axhline(target, color="r", ls=":", label=f"target {target:g}")
    ax.set(xlabel="environment step", ylabel="return", title="DQN on CartPole-v1")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))


def _save_policy(record: dict[str, Any], cfg: Any, path: Path) -> None:
    from deepnum.io import save

    best = record["best"]
    meta = {"deepnum.kind": "dqn-policy", "env": cfg.env, "obs_dim": str(record["obs_dim"]),
            "n_actions": str(record["n_actions"]), "hidden": json.dumps(list(cfg.hidden)),
            "step": str(best["step"]), "eval_mean": str(best.get("mean", "")), "seed": str(cfg.seed)}
    save(best["state"], path, meta)


def load_policy(path: str | os.PathLike) -> tuple[Any, dict[str, str]]:
    """The Q-network saved by ``deepnum dqn`` (a run directory or its policy file) and its metadata."""
    from deepnum._cli_common import CLIError
    from deepnum.apps._dqn_agent import q_network
    from deepnum.io import CheckpointError, load, read_metadata

    file = Path(path) / POLICY_FILE if Path(path).is_dir() else Path(path)
    if not file.is_file():
        raise CLIError(f"--evaluate {path}: no policy file {file}")
    try:
        meta = read_metadata(file)
        if meta.get("deepnum.kind") != "dqn-policy":
            raise CLIError(f"--evaluate {path}: {file} is not a policy saved by `deepnum dqn`")
        net = q_network(int(meta["obs_dim"]), int(meta["n_actions"]), json.loads(meta["hidden"]))
        net.load_state_dict(load(file))
    except (CheckpointError, KeyError, ValueError, RuntimeError) as exc:
        raise CLIError(f"--evaluate {path}: cannot load {file}: {exc}") from None
    return net, meta


def evaluate_saved(path: str | os.PathLike, episodes: int, seed: int) -> np.ndarray:
    """Greedy returns of a saved policy over ``episodes`` episodes seeded ``seed, seed + 1, ...``."""
    from deepnum.apps._dqn_train import Evaluator

    net, meta = load_policy(path)
    evaluator = Evaluator(meta["env"], episodes, seed)
    try:
        return evaluator(net)
    finally:
        evaluator.close()


def run(args: argparse.Namespace) -> int:
    if args.evaluate is not None:
        start = time.perf_counter()
        returns = evaluate_saved(args.evaluate, args.eval_episodes, args.eval_seed)
        print(f"{args.evaluate}: greedy return over {returns.size} episodes (seeds {args.eval_seed}.."
              f"{args.eval_seed + returns.size - 1}): mean {returns.mean():.1f} ± {returns.std():.1f}, min "
              f"{returns.min():.0f}, max {returns.max():.0f} ({time.perf_counter() - start:.1f} s)")
        return 0
    from deepnum.apps._dqn_train import train_dqn
    from deepnum.io.safetensors import atomic_write

    cfg = _config(args)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    record = train_dqn(cfg)
    _save_policy(record, cfg, out / POLICY_FILE)
    plot_learning_curve(record, cfg.target_return, out / "learning_curve.png")
    best = {k: v for k, v in record["best"].items() if k != "state"}
    metrics = {"config": {**vars(cfg), "hidden": list(cfg.hidden)}, "solved": record["solved"], "best": best,
               "steps": record["steps"], "updates": record["updates"], "train_s": record["train_s"],
               "steps_per_s": record["steps"] / record["train_s"], "evals": record["evals"],
               "returns": record["returns"], "episode_end": record["episode_end"]}
    atomic_write(out / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(metrics, indent=1)))
    score = (f"greedy mean {best['mean']:.1f} ± {best['std']:.1f} over {cfg.eval_episodes} episodes" if "mean" in best
             else f"screen mean {best['screen_mean']:.1f} (never reached the full evaluation)")
    print(f"best policy at step {best['step']}: {score}; target {cfg.target_return:g} "
          f"{'reached' if record['solved'] else 'NOT reached'}; {record['steps']} steps in {record['train_s']:.0f} s "
          f"({metrics['steps_per_s']:.0f} steps/s); outputs in {out}")
    return 0
