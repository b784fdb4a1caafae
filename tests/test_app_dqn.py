"""``deepnum dqn``: the replay buffer, the TD loss against a NumPy computation, target updates,
seeded evaluation, the command on a few hundred steps (plus a slow run that solves CartPole-v1)."""
from __future__ import annotations

import json
import sys

import gymnasium
import numpy as np
import pytest

import deepnum as dn
from deepnum.apps._dqn_agent import ReplayBuffer, greedy_actions, q_network, soft_update_, td_loss
from deepnum.apps._dqn_train import DQNConfig, Evaluator, require_gymnasium
from deepnum.apps.dqn import evaluate_saved
from deepnum.cli import main


def test_replay_buffer_ring_and_sample() -> None:
    buf = ReplayBuffer(capacity=4, obs_dim=2)
    for i in range(6):
        buf.add(np.full(2, i), i % 2, float(i), 0.0 if i == 5 else 0.99, np.full(2, i + 1))
    assert len(buf) == 4 and buf.pos == 2
    assert sorted(buf.reward.tolist()) == [2.0, 3.0, 4.0, 5.0]
    assert buf.discount[buf.reward == 5.0][0] == 0.0 and buf.discount[buf.reward == 2.0][0] == np.float32(0.99)
    obs, action, reward, discount, next_obs = buf.sample(32, np.random.default_rng(0))
    assert obs.shape == (32, 2) and action.dtype == dn.int64 and reward.shape == (32,)
    np.testing.assert_array_equal(next_obs.numpy(), obs.numpy() + 1)
    np.testing.assert_array_equal(obs.numpy()[:, 0], reward.numpy())
    assert set(np.unique(reward.numpy())) <= {2.0, 3.0, 4.0, 5.0}
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(3, 2).sample(1, np.random.default_rng(0))


def _numpy_q(net: dn.nn.Module, x: np.ndarray) -> np.ndarray:
    w = [m for m in net if isinstance(m, dn.nn.Linear)]
    for i, layer in enumerate(w):
        x = x @ layer.weight.detach().numpy().T.astype(np.float64) + layer.bias.detach().numpy()
        if i < len(w) - 1:
            x = np.maximum(x, 0)
    return x


def _huber(d: np.ndarray) -> float:
    return float(np.where(np.abs(d) < 1, 0.5 * d * d, np.abs(d) - 0.5).mean())


@pytest.mark.parametrize("double", [True, False])
def test_td_loss_matches_numpy(double: bool) -> None:
    dn.manual_seed(0)
    online, target = q_network(4, 3, (8,)), q_network(4, 3, (8,))
    rng = np.random.default_rng(1)
    obs, next_obs = (rng.standard_normal((16, 4)).astype(np.float32) * 3 for _ in range(2))
    action, reward = rng.integers(0, 3, 16), rng.standard_normal(16).astype(np.float32)
    discount = np.where(rng.random(16) < 0.3, 0.0, 0.9).astype(np.float32)
    batch = tuple(dn.tensor(a) for a in (obs, action, reward, discount, next_obs))
    loss = td_loss(online, target, batch, double=double)
    q_next = _numpy_q(target, next_obs)
    pick = _numpy_q(online, next_obs).argmax(1) if double else q_next.argmax(1)
    y = reward + discount * q_next[np.arange(16), pick]
    expected = _huber(_numpy_q(online, obs)[np.arange(16), action] - y)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert all(p.grad is None for p in target.parameters())
    assert all(p.grad is not None and np.abs(p.grad.numpy()).sum() > 0 for p in online.parameters())


def test_soft_update_and_greedy_actions() -> None:
    dn.manual_seed(0)
    a, b = q_network(4, 2, (5,)), q_network(4, 2, (5,))
    before = [p.detach().numpy().copy() for p in a.parameters()]
    soft_update_(a, b, 0.25)
    for pa, old, pb in zip(a.parameters(), before, b.parameters()):
        np.testing.assert_allclose(pa.detach().numpy(), 0.75 * old + 0.25 * pb.detach().numpy(), rtol=1e-6, atol=1e-7)
    soft_update_(a, b, 1.0)
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(pa.detach().numpy(), pb.detach().numpy())
    obs = np.random.default_rng(0).standard_normal((7, 4)).astype(np.float32)
    np.testing.assert_array_equal(greedy_actions(a, obs), _numpy_q(a, obs).argmax(1))
    with pytest.raises(ValueError, match="q_network"):
        q_network(4, 2, (0,))


def test_epsilon_schedule() -> None:
    cfg = DQNConfig(eps_start=1.0, eps_end=0.1, eps_decay_steps=100)
    assert [cfg.epsilon(s) for s in (0, 50, 100, 1000)] == pytest.approx([1.0, 0.55, 0.1, 0.1])


def test_evaluator_is_seeded_and_matches_a_plain_loop() -> None:
    dn.manual_seed(3)
    net = q_network(4, 2, (16,))
    evaluator = Evaluator("CartPole-v1", 3, seed=123)
    first, second = evaluator(net), evaluator(net)
    evaluator.close()
    np.testing.assert_array_equal(first, second)
    for i in range(3):
        env = gymnasium.make("CartPole-v1")
        obs, _ = env.reset(seed=123 + i)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(int(greedy_actions(net, obs[None])[0]))
            total, done = total + reward, terminated or truncated
        assert first[i] == total


def test_missing_gymnasium_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "gymnasium", None)
    with pytest.raises(ImportError, match=r"pip install 'deepnum\[rl\]'"):
        require_gymnasium()


TINY = ["--steps", "600", "--learning-starts", "100", "--eval-every", "250", "--eval-episodes", "4",
        "--hidden", "16", "--buffer-size", "500", "--batch-size", "16", "--eps-decay-steps", "300"]


def test_cli_tiny_run_save_and_evaluate(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["dqn", *TINY, "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "best policy at step" in printed and "NOT reached" in printed
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == 600 and m["updates"] == 501 and [e["step"] for e in m["evals"]] == [250, 500, 600]
    assert len(m["returns"]) == len(m["episode_end"]) >= 10 and m["solved"] is False
    assert sum(m["returns"]) <= 600 and (out / "learning_curve.png").stat().st_size > 1000
    returns = evaluate_saved(out, 5, 777)
    assert returns.shape == (5,) and (returns >= 8).all()
    np.testing.assert_array_equal(returns, evaluate_saved(out / "policy.safetensors", 5, 777))
    assert main(["dqn", "--evaluate", str(out), "--eval-episodes", "5", "--eval-seed", "777"]) == 0
    assert f"mean {returns.mean():.1f} ± {returns.std():.1f}" in capsys.readouterr().out
    # the same seed trains the same policy
    out2 = tmp_path / "run2"
    assert main(["dqn", *TINY, "--output", str(out2)]) == 0
    assert json.loads((out2 / "metrics.json").read_text())["returns"] == m["returns"]


def test_cli_errors(tmp_path, capsys) -> None:
    assert main(["dqn", "--evaluate", str(tmp_path)]) == 2
    assert "no policy file" in capsys.readouterr().err
    dn.io.save({"w": dn.zeros(2)}, tmp_path / "other.safetensors")
    assert main(["dqn", "--evaluate", str(tmp_path / "other.safetensors")]) == 2
    assert "not a policy saved by `deepnum dqn`" in capsys.readouterr().err
    assert main(["dqn", "--tau", "2", "--output", str(tmp_path / "x")]) == 2


@pytest.mark.slow
def test_default_run_solves_cartpole(tmp_path) -> None:
    assert main(["dqn", "--output", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["solved"] is True and m["best"]["mean"] >= 475
    assert evaluate_saved(tmp_path, 100, 10_000).mean() == pytest.approx(m["best"]["mean"])
