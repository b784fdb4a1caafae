"""`deepnum transfer`: the three transfer methods, and a LeNet-5 trained in PyTorch, saved with torch.save,
loaded with deepnum.load_torch_checkpoint and fine-tuned in deepnum."""
import argparse
import json

import numpy as np
import pytest
import torch

import deepnum as dn
from deepnum.apps import transfer
from deepnum.cli import main
from deepnum.models import create_model
from deepnum.train import fit


class TorchLeNet5(torch.nn.Module):
    """The torch twin of deepnum.models.lenet5: same layers, same state_dict keys."""

    def __init__(self, num_classes=5):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2))
        self.classifier = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(400, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84), torch.nn.ReLU(),
            torch.nn.Linear(84, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def _torch_pretrained(epochs):
    """A torch LeNet-5 trained on MNIST digits 0-4 (the app's pre-training split)."""
    x, y = transfer.digit_split("train", range(5), None, 0)
    x, y = torch.from_numpy(x.numpy().copy()), torch.from_numpy(y.numpy().copy())
    torch.manual_seed(0)
    net = TorchLeNet5()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    order = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=order)
        for i in range(0, len(y), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def torch_lenet():
    return _torch_pretrained(epochs=1)


def _args(tmp_path, **kw):
    base = dict(pretrained=None, pretrained_classes=5, pretrain_epochs=1, pretrain_size=200, shots=4, epochs=2,
                lr=3e-3, body_lr_scale=0.1, seeds=1, test_size=50, seed=0, output=str(tmp_path))
    return argparse.Namespace(**{**base, **kw})


def test_methods_freeze_and_group_the_right_parameters(tmp_path):
    dn.manual_seed(5)
    body = create_model("lenet5", num_classes=5).state_dict()
    args = _args(tmp_path)
    scratch, _ = transfer.build("scratch", body, 0, args)
    frozen, frozen_opt = transfer.build("frozen", body, 0, args)
    tuned, tuned_opt = transfer.build("fine-tune", body, 0, args)
    for name, value in body.items():
        if name.startswith("features."):
            np.testing.assert_array_equal(frozen.state_dict()[name].numpy(), value.numpy())
            assert not np.array_equal(scratch.state_dict()[name].numpy(), value.numpy())
    # the same seeded new head in all three methods
    for model in (frozen, tuned):
        np.testing.assert_array_equal(model.classifier[5].weight.detach().numpy(),
                                      scratch.classifier[5].weight.detach().numpy())
    assert not any(p.requires_grad for p in frozen.features.parameters())
    assert sum(len(g["params"]) for g in frozen_opt.param_groups) == 6          # the three Linear layers
    lrs = [g["lr"] for g in tuned_opt.param_groups]
    np.testing.assert_allclose(lrs, [3e-4, 3e-3])
    assert [len(g["params"]) for g in tuned_opt.param_groups] == [4, 6]


def test_frozen_body_does_not_move_and_fine_tuned_body_does(tmp_path):
    dn.manual_seed(5)
    body = create_model("lenet5", num_classes=5).state_dict()
    args = _args(tmp_path)
    few = transfer.digit_split("train", range(5, 10), None, 0, shots=4)
    for method, moves in (("frozen", False), ("fine-tune", True)):
        model, opt = transfer.build(method, body, 0, args)
        fit(model, transfer.loader(few, 20, 0), epochs=2, optimizer=opt, loss_fn=dn.nn.CrossEntropyLoss(),
            progress=False)
        w = model.features[0].weight.detach().numpy()
        assert np.array_equal(w, body["features.0.weight"].numpy()) != moves


def test_torch_trained_lenet_loads_into_the_zoo_model(tmp_path, torch_lenet):
    net = torch_lenet
    path = tmp_path / "lenet_0-4.pt"
    torch.save(net.state_dict(), path)
    model = create_model("lenet5", num_classes=5)
    dn.load_torch_checkpoint(model, path)
    x, _ = transfer.digit_split("test", range(5), 64, 0)
    with torch.no_grad():
        want = net(torch.from_numpy(x.numpy().copy())).numpy()
    model.eval()
    with dn.no_grad():
        got = model(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert (got.argmax(1) == want.argmax(1)).all()


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_app_transfer_from_a_torch_checkpoint(tmp_path, capsys, suffix, torch_lenet):
    from safetensors.torch import save_file

    net = torch_lenet
    path = tmp_path / f"lenet{suffix}"
    if suffix == ".pt":
        torch.save(net.state_dict(), path)
    else:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    out = tmp_path / "run"
    assert main(["transfer", "--pretrained", str(path), "--shots", "4", "--epochs", "2", "--seeds", "2",
                 "--test-size", "60", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"loaded {path}" in printed and "pre-trained network: test accuracy on digits 0-4" in printed
    res = json.loads((out / "results.json").read_text())
    assert res["pretrained"] == str(path) and res["seeds"] == [0, 1]
    assert set(res["curves"]) == {"scratch", "frozen", "fine-tune"}
    assert all(len(run) == 3 for runs in res["curves"].values() for run in runs)   # epoch 0 + 2 epochs
    # epoch 0: the frozen and fine-tuned models are the same network (same body, same seeded head)
    assert [r[0] for r in res["curves"]["frozen"]] == [r[0] for r in res["curves"]["fine-tune"]]
    assert (out / "transfer.png").stat().st_size > 0


def test_app_transfer_rejects_a_checkpoint_of_another_network(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    with pytest.raises(dn.io.CheckpointError, match="does not fit the LeNet5"):
        main(["transfer", "--pretrained", str(path), "--output", str(tmp_path / "run")])


def test_app_transfer_tiny_run_is_reproducible(tmp_path):
    args = ["transfer", "--pretrain-epochs", "1", "--pretrain-size", "200", "--shots", "3", "--epochs", "2",
            "--seeds", "1", "--test-size", "50"]
    runs = []
    for name in ("a", "b"):
        assert main([*args, "--output", str(tmp_path / name)]) == 0
        runs.append(json.loads((tmp_path / name / "results.json").read_text())["curves"])
        assert (tmp_path / name / "pretrained_0-4.safetensors").is_file()
    assert runs[0] == runs[1]


@pytest.mark.slow
def test_app_transfer_fine_tuning_beats_scratch(tmp_path):
    assert main(["transfer", "--output", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "results.json").read_text())["final_accuracy"]
    assert res["fine-tune"]["mean"] > res["scratch"]["mean"]
    assert res["fine-tune"]["curve_mean"] > res["scratch"]["curve_mean"] + 0.02


@pytest.mark.slow
def test_app_transfer_fine_tunes_a_torch_trained_lenet(tmp_path):
    path = tmp_path / "lenet_0-4.pt"
    torch.save(_torch_pretrained(epochs=10).state_dict(), path)
    assert main(["transfer", "--pretrained", str(path), "--output", str(tmp_path / "run")]) == 0
    res = json.loads((tmp_path / "run" / "results.json").read_text())["final_accuracy"]
    assert res["fine-tune"]["mean"] > res["scratch"]["mean"]
    assert res["fine-tune"]["curve_mean"] > res["scratch"]["curve_mean"] + 0.02
