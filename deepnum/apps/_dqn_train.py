"""The training loop of ``deepnum dqn``: ε-greedy acting in gymnasium's CartPole-v1, a replay buffer,
one minibatch update per environment step, periodic greedy evaluation on seeded episodes and the
best policy kept (``_dqn_agent.py`` holds the agent's parts)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepnum.apps._dqn_agent import ReplayBuffer, greedy_actions, learn_step, q_network, soft_update_

__all__ = ["DQNConfig", "Evaluator", "require_gymnasium", "train_dqn"]

RL_INSTALL = "pip install 'deepnum[rl]'"


def require_gymnasium() -> Any:
    """gymnasium, imported on first use (it is the ``rl`` extra)."""
    try:
        import gymnasium
    except ImportError as error:
        raise ImportError(f"deepnum dqn needs gymnasium for its environments: {RL_INSTALL}") from error
    return gymnasium


@dataclass
class DQNConfig:
    """The hyperparameters; the defaults solve CartPole-v1 (docs/apps/dqn.md)."""

    env: str = "CartPole-v1"
    steps: int = 100_000            # environment steps at most
    hidden: tuple[int, ...] = (128, 128)
    lr: float = 5e-4
    gamma: float = 0.99
    batch_size: int = 64
    buffer_size: int = 50_000
    learning_starts: int = 1_000    # random-policy steps that fill the buffer before the first update
    train_every: int = 1            # environment steps per gradient update
    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_decay_steps: int = 10_000   # linear decay of ε from eps_start to eps_end
    tau: float = 0.005              # soft target update per step; 1.0 with target_every > 1: hard copies
    target_every: int = 1
    double: bool = True
    clip: float | None = 10.0
    eval_every: int = 2_500
    screen_episodes: int = 10       # a quick greedy evaluation; the full one runs when it looks solved
    eval_episodes: int = 100
    eval_seed: int = 10_000
    target_return: float = 475.0
    early_stop: bool = True
    seed: int = 0

    def epsilon(self, step: int) -> float:
        frac = min(1.0, step / max(1, self.eps_decay_steps))
        return self.eps_start + frac * (self.eps_end - self.eps_start)


class Evaluator:
    """Greedy returns over ``episodes`` environments reset with seeds ``seed, seed + 1, ...``, all
    stepped together so the Q-network sees one batch per time step."""

    def __init__(self, env_id: str, episodes: int, seed: int) -> None:
        gym = require_gymnasium()
        self.envs = [gym.make(env_id) for _ in range(int(episodes))]
        self.seed = int(seed)

    def __call__(self, net: Any) -> np.ndarray:
        n = len(self.envs)
        obs = np.stack([env.reset(seed=self.seed + i)[0] for i, env in enumerate(self.envs)]).astype(np.float32)
        returns, alive = np.zeros(n), np.ones(n, bool)
        net.eval()
        while alive.any():
            idx = np.flatnonzero(alive)
            for j, action in zip(idx, greedy_actions(net, obs[idx])):
                obs[j], reward, terminated, truncated, _ = self.envs[j].step(int(action))
                returns[j] += reward
                alive[j] = not (terminated or truncated)
        net.train()
        return returns

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _state_copy(net: Any) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in net.state_dict().items()}


def _evaluate(cfg: DQNConfig, online: Any, screen: Evaluator, full: Evaluator, record: dict, step: int) -> bool:
    """Screen the greedy policy, run the full evaluation when the screen reaches the target, keep the
    best state; returns whether the full evaluation reached the target."""
    screen_mean = float(screen(online).mean())
    entry: dict[str, Any] = {"step": step, "screen_mean": screen_mean}
    if screen_mean >= cfg.target_return:
        returns = full(online)
        entry.update(mean=float(returns.mean()), std=float(returns.std()), min=float(returns.min()))
    record["evals"].append(entry)
    score = (1, entry["mean"]) if "mean" in entry else (0, screen_mean)
    if record["best"] is None or score > record["best"]["score"]:
        record["best"] = {"score": score, "step": step, "state": _state_copy(online), **entry}
    return entry.get("mean", -np.inf) >= cfg.target_return


def _log_eval(record: dict, log: Any, eps: float, start: float) -> None:
    e, recent = record["evals"][-1], record["returns"][-100:]
    full = f"  full {e['mean']:.1f} ± {e['std']:.1f} (min {e['min']:.0f})" if "mean" in e else ""
    log(f"step {e['step']:6d}  episodes {len(record['returns']):4d}  return(last 100) "
        f"{np.mean(recent) if recent else 0.0:6.1f}  eps {eps:.3f}  greedy screen {e['screen_mean']:6.1f}{full}"
        f"  ({time.perf_counter() - start:.0f} s)")


def train_dqn(cfg: DQNConfig, log: Any = print) -> dict[str, Any]:
    """Train a DQN agent; returns the record: per-episode returns and their end steps, the
    evaluations, the best state (its weights as arrays), whether the target was reached and timings."""
    from deepnum.nn.modules.loss import SmoothL1Loss
    from deepnum.optim import Adam
    from deepnum.random import manual_seed

    gym = require_gymnasium()
    env = gym.make(cfg.env)
    obs_dim, n_actions = int(np.prod(env.observation_space.shape)), int(env.action_space.n)
    manual_seed(cfg.seed)
    online, target = q_network(obs_dim, n_actions, cfg.hidden), q_network(obs_dim, n_actions, cfg.hidden)
    target.load_state_dict(online.state_dict())
    optimizer, loss_fn = Adam(online.parameters(), lr=cfg.lr), SmoothL1Loss()
    buffer, rng = ReplayBuffer(cfg.buffer_size, obs_dim), np.random.default_rng(cfg.seed)
    screen = Evaluator(cfg.env, cfg.screen_episodes, cfg.eval_seed + 100_000)
    full = Evaluator(cfg.env, cfg.eval_episodes, cfg.eval_seed)
    record: dict[str, Any] = {"returns": [], "episode_end": [], "evals": [], "best": None, "solved": False,
                              "obs_dim": obs_dim, "n_actions": n_actions, "updates": 0}
    obs, _ = env.reset(seed=cfg.seed)
    episode_return, start = 0.0, time.perf_counter()
    for step in range(1, cfg.steps + 1):
        eps = cfg.epsilon(step)
        action = int(rng.integers(n_actions)) if rng.random() < eps else int(greedy_actions(online, obs[None])[0])
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs, action, reward, 0.0 if terminated else cfg.gamma, next_obs)
        obs, episode_return = next_obs, episode_return + reward
        if terminated or truncated:
            record["returns"].append(episode_return)
            record["episode_end"].append(step)
            (obs, _), episode_return = env.reset(), 0.0
        if step < cfg.learning_starts:
            continue
        if step % cfg.train_every == 0:
            learn_step(online, target, optimizer, buffer.sample(cfg.batch_size, rng), cfg.double, cfg.clip, loss_fn)
            record["updates"] += 1
            if record["updates"] % cfg.target_every == 0:
                soft_update_(target, online, cfg.tau)
        if step % cfg.eval_every == 0:
            record["solved"] = _evaluate(cfg, online, screen, full, record, step)
            _log_eval(record, log, eps, start)
            if record["solved"] and cfg.early_stop:
                break
    if not record["evals"] or record["evals"][-1]["step"] != step:  # the last steps were never evaluated
        _evaluate(cfg, online, screen, full, record, step)
        _log_eval(record, log, cfg.epsilon(step), start)
    record.update(steps=step, train_s=time.perf_counter() - start,
                  solved=record["best"].get("mean", -np.inf) >= cfg.target_return)
    for e in (env, screen, full):
        e.close()
    return record
