"""``deepnum gan``: the DCGAN pair against PyTorch, the judge's scores, and the command on tiny data
(plus a slow run that reaches the documented target)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import deepnum as dn
from deepnum.apps._gan_judge import image_grid, judge_scores
from deepnum.apps._gan_models import DCGANDiscriminator, DCGANGenerator, dcgan_init_
from deepnum.cli import main
from deepnum.io import load


def _torch_pair(nz: int, ngf: int, ndf: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The same architecture written in torch.nn (keys match under the ``main.`` prefix)."""
    t = torch.nn
    g = t.Sequential(t.ConvTranspose2d(nz, 2 * ngf, 7, 1, 0, bias=False), t.BatchNorm2d(2 * ngf), t.ReLU(True),
                     t.ConvTranspose2d(2 * ngf, ngf, 4, 2, 1, bias=False), t.BatchNorm2d(ngf), t.ReLU(True),
                     t.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False), t.Tanh())
    d = t.Sequential(t.Conv2d(1, ndf, 4, 2, 1, bias=False), t.LeakyReLU(0.2, True),
                     t.Conv2d(ndf, 2 * ndf, 4, 2, 1, bias=False), t.BatchNorm2d(2 * ndf), t.LeakyReLU(0.2, True),
                     t.Conv2d(2 * ndf, 1, 7, 1, 0, bias=False))
    return g, d


def _to_torch(module: dn.nn.Module, target: torch.nn.Module) -> None:
    state = {k.removeprefix("main."): torch.from_numpy(v.numpy().copy()) for k, v in module.state_dict().items()}
    target.load_state_dict(state)


@pytest.mark.parametrize("train_mode", [True, False])
def test_dcgan_pair_matches_torch(train_mode: bool) -> None:
    dn.manual_seed(0)
    gen = dn.Generator().manual_seed(1)
    G, D = dcgan_init_(DCGANGenerator(16, 8), gen), dcgan_init_(DCGANDiscriminator(8), gen)
    tg, td = _torch_pair(16, 8, 8)
    _to_torch(G, tg)
    _to_torch(D, td)
    for m in (G, D, tg, td):
        m.train(train_mode)
    z = np.random.default_rng(0).standard_normal((6, 16)).astype(np.float32)
    fake = G(dn.tensor(z))
    tz = torch.from_numpy(z).reshape(6, 16, 1, 1).requires_grad_(True)
    tfake = tg(tz)
    np.testing.assert_allclose(fake.detach().numpy(), tfake.detach().numpy(), atol=2e-5)
    assert fake.shape == (6, 1, 28, 28) and float(fake.abs().max().item()) <= 1.0
    logits, tlogits = D(fake), td(tfake).reshape(6)
    np.testing.assert_allclose(logits.detach().numpy(), tlogits.detach().numpy(), atol=2e-5)
    logits.sum().backward()
    tlogits.sum().backward()
    np.testing.assert_allclose(G.main[0].weight.grad.numpy(), tg[0].weight.grad.numpy(), rtol=1e-3, atol=1e-5)


def test_dcgan_init_and_errors() -> None:
    G = dcgan_init_(DCGANGenerator(64, 32), dn.Generator().manual_seed(0))
    w = G.main[0].weight.detach().numpy()
    assert abs(w.std() - 0.02) < 0.001 and abs(w.mean()) < 0.001
    bn = G.main[1]
    assert abs(bn.weight.detach().numpy().mean() - 1.0) < 0.01 and not bn.bias.detach().numpy().any()
    with pytest.raises(ValueError, match=r"DCGANGenerator: expected noise \(N, 64\).*\(3, 10\)"):
        G(dn.zeros(3, 10))
    with pytest.raises(ValueError, match=r"DCGANDiscriminator: expected images .*\(2, 1, 32, 32\)"):
        DCGANDiscriminator(8)(dn.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="ngf"):
        DCGANGenerator(64, 0)


def test_judge_scores() -> None:
    probs = np.zeros((8, 10), np.float32)
    probs[:4, 3], probs[4:, 7] = 0.9, 0.6
    probs[:4, 0], probs[4:, 1] = 0.1, 0.4
    s = judge_scores(probs)
    assert s["confidence"] == pytest.approx(0.75)
    assert s["entropy_bits"] == pytest.approx(1.0)
    assert s["classes_5pct"] == 2 and s["histogram"] == [0, 0, 0, 4, 0, 0, 0, 4, 0, 0]
    uniform = judge_scores(np.eye(10)[np.arange(100) % 10])
    assert uniform["entropy_bits"] == pytest.approx(np.log2(10)) and uniform["classes_5pct"] == 10
    one = judge_scores(np.eye(10)[np.zeros(5, int)])
    assert one["entropy_bits"] == 0.0 and one["classes_5pct"] == 1
    with pytest.raises(ValueError, match=r"judge_scores.*\(10,\)"):
        judge_scores(np.ones(10))


def test_image_grid_places_tiles() -> None:
    images = np.arange(3, dtype=np.float32).reshape(3, 1, 1, 1) * np.ones((1, 1, 2, 3), np.float32)
    grid = image_grid(images, nrow=2, padding=1)
    assert grid.shape == (2 * 3 + 1, 2 * 4 + 1)
    assert (grid[1:3, 1:4] == 0).all() and (grid[1:3, 5:8] == 1).all() and (grid[4:6, 1:4] == 2).all()
    assert grid[0].sum() == 0 and grid[:, 4].sum() == 0


TINY = ["--epochs", "2", "--limit", "128", "--batch-size", "32", "--ngf", "8", "--ndf", "8", "--nz", "16",
        "--judge-epochs", "1", "--samples", "64"]


def test_cli_tiny_run_is_reproducible(tmp_path, capsys) -> None:
    runs = [tmp_path / "a", tmp_path / "b"]
    for out in runs:
        assert main(["gan", *TINY, "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "epoch  2/2" in printed and "final: judge confidence" in printed
    a = runs[0]
    for name in ("samples_epoch_01.png", "samples_epoch_02.png", "progress.png", "curves.png", "generator.safetensors",
                 "discriminator.safetensors", "judge.safetensors", "metrics.json"):
        assert (a / name).stat().st_size > 100, name
    m = json.loads((a / "metrics.json").read_text())
    assert len(m["history"]["confidence"]) == 2 and 0.1 <= m["final"]["confidence"] <= 1.0
    assert sum(m["final"]["histogram"]) == 64 and 1 <= m["final"]["classes_5pct"] <= 10
    assert m["real_test"]["classes_5pct"] >= 1 and m["target_reached"] is False
    ga, gb = load(a / "generator.safetensors"), load(runs[1] / "generator.safetensors")
    assert ga.keys() == gb.keys() and all(np.array_equal(ga[k].numpy(), gb[k].numpy()) for k in ga)
    # the judge trained here can be given back with --judge (no judge.safetensors is written then)
    out_c = tmp_path / "c"
    assert main(["gan", *TINY, "--epochs", "1", "--judge", str(a / "judge.safetensors"), "--output", str(out_c)]) == 0
    mc = json.loads((out_c / "metrics.json").read_text())
    assert mc["real_test"] == m["real_test"] and not (out_c / "judge.safetensors").exists()


def test_cli_errors(tmp_path, capsys) -> None:
    assert main(["gan", "--judge", str(tmp_path / "missing"), "--output", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["gan", *TINY, "--batch-size", "500", "--output", str(tmp_path / "y")]) == 2
    assert "--batch-size 500 is larger than the 128" in capsys.readouterr().err
    assert main(["gan", "--beta1", "1.5", "--output", str(tmp_path / "z")]) == 2
    assert main(["gan", "--smooth", "0.7", "--output", str(tmp_path / "z")]) == 2
    assert "--smooth must be in [0, 0.5), got 0.7" in capsys.readouterr().err


@pytest.mark.slow
def test_default_run_reaches_target(tmp_path) -> None:
    assert main(["gan", "--output", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["final"]["confidence"] >= 0.8 and m["final"]["classes_5pct"] >= 8, m["final"]
    assert m["target_reached"] is True
