"""deepnum.train.Ensemble against torch's softmax/log_softmax, and the `deepnum ensemble` app."""
import json

import numpy as np
import pytest
import torch

import deepnum as dn
from deepnum import nn
from deepnum.cli import main
from deepnum.data import DataLoader, TensorDataset
from deepnum.train import Ensemble, evaluate, fit


def _members(seed=0, n=3, classes=4):
    dn.manual_seed(seed)
    return [nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Dropout(0.5), nn.Linear(8, classes)) for _ in range(n)]


def _torch_twin(member):
    twin = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Dropout(0.5), torch.nn.Linear(8, 4))
    twin.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in member.state_dict().items()})
    return twin.eval()


@pytest.mark.parametrize("average", ["probs", "logits"])
def test_ensemble_matches_torch_average(average):
    members = _members()
    ens = Ensemble(members, average=average)
    x = np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32)
    out = ens(dn.tensor(x)).detach().numpy()
    with torch.no_grad():
        logits = torch.stack([_torch_twin(m)(torch.from_numpy(x)) for m in members])
        want = logits.mean(0) if average == "logits" else torch.log(torch.softmax(logits, -1).mean(0))
    np.testing.assert_allclose(out, want.numpy(), rtol=1e-5, atol=1e-6)
    probs = ens.predict_proba(dn.tensor(x)).detach().numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)
    if average == "probs":
        np.testing.assert_allclose(probs, torch.softmax(logits, -1).mean(0).numpy(), rtol=1e-5, atol=1e-7)


def test_ensemble_is_eval_mode_deterministic_and_loss_is_the_ensemble_nll():
    ens = Ensemble(_members())
    assert not ens.training and all(not m.training for m in ens.members)
    x = dn.tensor(np.random.default_rng(1).standard_normal((7, 5)).astype(np.float32))
    np.testing.assert_array_equal(ens(x).detach().numpy(), ens(x).detach().numpy())          # dropout is off
    y = np.array([0, 1, 2, 3, 0, 1, 2])
    loss = nn.CrossEntropyLoss()(ens(x), dn.tensor(y)).item()
    p = ens.predict_proba(x).detach().numpy()
    np.testing.assert_allclose(loss, -np.log(p[np.arange(7), y]).mean(), rtol=1e-5)
    ens.train()
    assert all(m.training for m in ens.members)


def test_ensemble_works_with_fit_and_evaluate_and_gradients_reach_every_member():
    dn.manual_seed(0)
    x = dn.randn(40, 5)
    y = dn.tensor((x.numpy()[:, 0] > 0).astype(np.int64) + 2 * (x.numpy()[:, 1] > 0).astype(np.int64))
    ens = Ensemble(_members(seed=3))
    loader = DataLoader(TensorDataset(x, y), batch_size=20)
    before = evaluate(ens, loader, loss_fn=nn.CrossEntropyLoss())
    ens.train()
    fit(ens, loader, epochs=30, optimizer=dn.optim.Adam(ens.parameters(), lr=0.05), loss_fn=nn.CrossEntropyLoss(),
        progress=False)
    after = evaluate(ens, loader, loss_fn=nn.CrossEntropyLoss())
    assert after["loss"] < 0.5 * before["loss"] and after["accuracy"] > before["accuracy"]
    assert all(m[0].weight.grad is not None and np.abs(m[0].weight.grad.numpy()).sum() > 0 for m in ens.members)
    assert len(ens) == 3 and "members=3" in repr(ens)


def test_ensemble_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        Ensemble([])
    with pytest.raises(TypeError, match="1: function"):
        Ensemble([nn.Linear(2, 2), lambda x: x])
    with pytest.raises(ValueError, match="average must be one of"):
        Ensemble([nn.Linear(2, 2)], average="vote")
    ens = Ensemble([nn.Linear(2, 3), nn.Linear(2, 4)])
    with pytest.raises(ValueError, match=r"one shape, got \[\(5, 3\), \(5, 4\)\]"):
        ens(dn.randn(5, 2))


def test_app_ensemble_tiny_run(tmp_path, capsys):
    out = tmp_path / "ens"
    code = main(["ensemble", "--members", "2", "--epochs", "1", "--train-size", "200", "--test-size", "100",
                 "--schedule-epochs", "2", "--schedule-seeds", "1", "--output", str(out)])
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    assert len(res["member_accuracy"]) == 2 and res["seeds"] == [0, 1]
    assert all(0.0 <= a <= 1.0 for a in [*res["member_accuracy"], res["ensemble_accuracy"]])
    curves = res["schedules"]["curves"]
    assert set(curves) == {"constant", "step", "cosine"}
    assert curves["constant"][0]["lr"] == [0.05, 0.05]
    np.testing.assert_allclose(curves["cosine"][0]["lr"], [0.05, 0.025], rtol=1e-6)
    assert (out / "members.png").stat().st_size > 0 and (out / "schedules.png").stat().st_size > 0
    assert "ensemble of 2" in capsys.readouterr().out


def test_app_ensemble_is_reproducible(tmp_path):
    args = ["ensemble", "--members", "2", "--epochs", "1", "--train-size", "120", "--test-size", "60",
            "--schedule-seeds", "0"]
    results = []
    for name in ("a", "b"):
        assert main([*args, "--output", str(tmp_path / name)]) == 0
        res = json.loads((tmp_path / name / "results.json").read_text())
        results.append((res["member_accuracy"], res["ensemble_accuracy"]))
    assert results[0] == results[1]


@pytest.mark.slow
def test_app_ensemble_beats_its_best_member(tmp_path):
    out = tmp_path / "ens"
    assert main(["ensemble", "--schedule-seeds", "0", "--output", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert len(res["member_accuracy"]) == 5
    assert res["ensemble_accuracy"] > max(res["member_accuracy"])
    assert max(res["member_accuracy"]) > 0.9
