"""The parts of a deep Q-network agent (Mnih et al. 2015, "Human-level control through deep
reinforcement learning", Nature 518; the algorithm box "deep Q-learning with experience replay").

Q-learning estimates Q(s, a), the discounted return of taking action a in state s and acting
greedily afterwards, by regressing Q(s, a) onto the Bellman target y = r + γ·max_a' Q(s', a').
DQN makes this work with a neural network through two devices: experience replay (transitions go
into a large ring buffer and minibatches are drawn uniformly from it, which breaks the correlation
between consecutive steps) and a target network (a slowly following copy of the Q-network that
computes y, so the regression target does not move with every update). The regression uses the
Huber loss (the paper's clipping of the error to [-1, 1], which is the Huber loss's gradient).

Additions, each optional: double DQN (van Hasselt, Guez and Silver 2016: the online network picks
a' and the target network values it, removing max's upward bias), soft target updates
θ' ← τθ + (1 - τ)θ' every step (Lillicrap et al. 2016, DDPG), and gradient-norm clipping."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deepnum.autograd.grad_mode import no_grad
from deepnum.creation import tensor as as_tensor
from deepnum.nn.modules.activation import ReLU
from deepnum.nn.modules.container import Sequential
from deepnum.nn.modules.linear import Linear
from deepnum.nn.modules.loss import SmoothL1Loss
from deepnum.nn.modules.module import Module
from deepnum.nn.utils.clip_grad import clip_grad_norm_

__all__ = ["ReplayBuffer", "greedy_actions", "q_network", "soft_update_", "td_loss"]


def q_network(obs_dim: int, n_actions: int, hidden: Sequence[int] = (128, 128)) -> Sequential:
    """An MLP ``obs_dim → hidden... → n_actions`` with ReLU between layers: one Q-value per action."""
    sizes = [int(obs_dim), *(int(h) for h in hidden)]
    if min(sizes) < 1 or int(n_actions) < 1:
        raise ValueError(f"q_network: sizes must be >= 1, got obs_dim={obs_dim}, hidden={tuple(hidden)}, "
                         f"n_actions={n_actions}")
    layers: list[Module] = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [Linear(a, b), ReLU()]
    return Sequential(*layers, Linear(sizes[-1], int(n_actions)))


class ReplayBuffer:
    """A ring buffer of transitions (s, a, r, γ·(1 - terminated), s') in preallocated float32 arrays;
    ``sample`` draws a uniform minibatch (with replacement, as the paper) from the filled part."""

    def __init__(self, capacity: int, obs_dim: int) -> None:
        if int(capacity) < 1 or int(obs_dim) < 1:
            raise ValueError(f"ReplayBuffer: capacity and obs_dim must be >= 1, got {capacity}, {obs_dim}")
        self.capacity = int(capacity)
        self.obs = np.zeros((self.capacity, int(obs_dim)), np.float32)
        self.next_obs = np.zeros_like(self.obs)
        self.action = np.zeros(self.capacity, np.int64)
        self.reward = np.zeros(self.capacity, np.float32)
        self.discount = np.zeros(self.capacity, np.float32)
        self.size = self.pos = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, action: int, reward: float, discount: float, next_obs: np.ndarray) -> None:
        """Store one transition; ``discount`` is γ, or 0 when the episode terminated (a truncated
        episode keeps γ: the state after a time limit still has a future)."""
        i = self.pos
        self.obs[i], self.action[i], self.reward[i] = obs, action, reward
        self.discount[i], self.next_obs[i] = discount, next_obs
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[Any, ...]:
        """(obs, action, reward, discount, next_obs) as Tensors, ``batch_size`` rows."""
        if self.size == 0:
            raise ValueError("ReplayBuffer.sample: the buffer is empty")
        idx = rng.integers(0, self.size, batch_size)
        return tuple(as_tensor(a[idx]) for a in (self.obs, self.action, self.reward, self.discount, self.next_obs))


def td_loss(online: Module, target: Module, batch: tuple[Any, ...], double: bool = True,
            loss_fn: Module | None = None) -> Any:
    """Huber loss between Q(s, a) and the target r + discount·Q'(s', a*), where a* = argmax Q(s', ·)
    of the online net (double DQN) or of the target net (the paper's max)."""
    obs, action, reward, discount, next_obs = batch
    with no_grad():
        q_next = target(next_obs)
        choose = online(next_obs) if double else q_next
        best = q_next.gather(1, choose.argmax(1, keepdim=True)).squeeze(1)
        y = reward + discount * best
    q = online(obs).gather(1, action.unsqueeze(1)).squeeze(1)
    return (loss_fn or SmoothL1Loss())(q, y)


def learn_step(online: Module, target: Module, optimizer: Any, batch: tuple[Any, ...], double: bool,
               clip: float | None, loss_fn: Module) -> float:
    """One gradient step on a minibatch; returns the loss."""
    loss = td_loss(online, target, batch, double, loss_fn)
    optimizer.zero_grad()
    loss.backward()
    if clip is not None:
        clip_grad_norm_(online.parameters(), clip)
    optimizer.step()
    return loss.item()


def soft_update_(target: Module, online: Module, tau: float) -> None:
    """θ' ← θ' + τ(θ - θ') for every parameter (τ = 1 copies: the paper's periodic hard update)."""
    with no_grad():
        for pt, p in zip(target.parameters(), online.parameters()):
            if tau == 1.0:
                pt.copy_(p)
            else:
                pt.lerp_(p, tau)


def greedy_actions(net: Module, obs: np.ndarray) -> np.ndarray:
    """argmax_a Q(s, a) for a batch of observations ``(N, obs_dim)``."""
    with no_grad():
        return net(as_tensor(np.asarray(obs, np.float32))).argmax(1).numpy()
