"""deepnum.train.fit / evaluate / History / callbacks: learning, modes, averaging, schedulers, early
stopping, logs and plots, progress output, checkpoints (interruption and exact resumption are in
test_train_resume.py)."""
import csv
import json
import math
import os
import sys

import numpy as np
import pytest

import deepnum as dn
from deepnum import nn
from deepnum.data import DataLoader, TensorDataset
from deepnum.io import load, load_checkpoint
from deepnum.train import History, evaluate, fit
from deepnum.train.callbacks import (
    CSVLogger,
    EarlyStopping,
    JSONLogger,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    TerminateOnNaN,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def blobs(n=200, seed=0):
    """Two Gaussian blobs at (±2, ±2): linearly separable up to a few overlapping points."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = rng.normal(size=(n, 2)) + np.where(y[:, None] == 1, 2.0, -2.0)
    return x.astype(np.float32), y.astype(np.int64)


def batches(x, y, size):
    """The simplest loader: a list of (x, y) batches."""
    return [(dn.tensor(x[i:i + size]), dn.tensor(y[i:i + size])) for i in range(0, len(x), size)]


def mlp(dropout=0.0, seed=0):
    dn.manual_seed(seed)
    layers = [nn.Linear(2, 16), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else []) + [nn.Linear(16, 2)]
    return nn.Sequential(*layers)


def weights(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def test_learns_a_separable_task():
    x, y = blobs(256)
    xv, yv = blobs(128, seed=1)
    model = mlp()
    loader = DataLoader(TensorDataset(dn.tensor(x), dn.tensor(y)), batch_size=32, shuffle=True,
                        generator=dn.Generator().manual_seed(0))
    h = fit(model, loader, epochs=8, optimizer=dn.optim.Adam(model.parameters(), lr=0.01),
            loss_fn=nn.CrossEntropyLoss(), val_loader=batches(xv, yv, 64), progress=False)
    loss = h.history["loss"]
    assert len(h) == 8 and h.epoch == list(range(8))
    assert loss[-1] < loss[0] / 3
    assert h.history["accuracy"][-1] >= 0.97
    assert h.history["val_accuracy"][-1] >= 0.97
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"}
    assert evaluate(model, batches(xv, yv, 50), nn.CrossEntropyLoss()) == {
        "loss": pytest.approx(h.history["val_loss"][-1], rel=1e-5), "accuracy": h.history["val_accuracy"][-1]}


def test_fit_equals_a_hand_written_loop():
    """fit's step order (zero_grad, forward, backward, clip, step, scheduler) reproduces the plain
    loop bit for bit."""
    x, y = blobs(60)
    data = batches(x, y, 16)
    results = []
    for use_fit in (True, False):
        model = mlp(dropout=0.3)
        opt = dn.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        sched = dn.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
        dn.manual_seed(5)
        if use_fit:
            fit(model, data, epochs=3, optimizer=opt, loss_fn=nn.CrossEntropyLoss(), scheduler=sched,
                clip_grad_norm=0.5, progress=False)
        else:
            loss_fn = nn.CrossEntropyLoss()
            for _ in range(3):
                model.train()
                for xb, yb in data:
                    opt.zero_grad()
                    loss_fn(model(xb), yb).backward()
                    nn.utils.clip_grad_norm_(model.parameters(), 0.5)
                    opt.step()
                sched.step()
        results.append(weights(model))
    for k in results[0]:
        np.testing.assert_array_equal(results[0][k], results[1][k])


def test_epoch_averages_are_weighted_by_batch_size():
    x, y = blobs(10)
    model = mlp()
    data = batches(x, y, 4)  # batches of 4, 4, 2
    h = fit(model, data, epochs=1, optimizer=dn.optim.SGD(model.parameters(), lr=0.0),
            loss_fn=nn.CrossEntropyLoss(), progress=False)
    with dn.no_grad():
        out = model(dn.tensor(x))
        full = nn.CrossEntropyLoss()(out, dn.tensor(y)).item()
    assert h.history["loss"][0] == pytest.approx(full, rel=1e-6)
    assert h.history["accuracy"][0] == float((out.numpy().argmax(1) == y).mean())


class ModeRecorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(self.training)
        return x


def test_train_and_eval_modes():
    x, y = blobs(40)
    recorder = ModeRecorder()
    model = nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.5), recorder, nn.Linear(8, 2))
    fit(model, batches(x, y, 10), epochs=1, optimizer=dn.optim.SGD(model.parameters(), lr=0.1),
        loss_fn=nn.CrossEntropyLoss(), val_loader=batches(x, y, 20), progress=False)
    assert recorder.seen == [True] * 4 + [False] * 2  # training batches, then validation batches
    assert model.training  # evaluate restored the training mode fit had set
    # dropout is off in evaluation: two evaluations agree exactly, and the model's modes come back
    model.eval()
    model[1].train()
    a = evaluate(model, batches(x, y, 10), nn.CrossEntropyLoss())
    b = evaluate(model, batches(x, y, 10), nn.CrossEntropyLoss())
    assert a == b
    assert not model.training and model[1].training


def scripted(values, key="val_loss", snapshots=None):
    """A callback that overwrites logs[key] with values[epoch] (and snapshots the weights), placed
    before the callback under test."""
    def on_epoch_end(epoch, logs):
        logs[key] = values[epoch]
        if snapshots is not None:
            snapshots.append(weights(cb.state.model))
    cb = LambdaCallback(on_epoch_end=on_epoch_end)
    return cb


def test_early_stopping_stops_at_the_right_epoch_and_restores_the_best_weights():
    x, y = blobs(40)
    model = mlp()
    snaps = []
    stopper = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    # best at epoch 1 (0.8); epochs 2 and 3 do not improve → stop after epoch 3
    h = fit(model, batches(x, y, 10), epochs=10, optimizer=dn.optim.SGD(model.parameters(), lr=0.1),
            loss_fn=nn.CrossEntropyLoss(), callbacks=[scripted([1.0, 0.8, 0.9, 0.85, 0.5, 0.4], snapshots=snaps),
                                                      stopper], progress=False)
    assert len(h) == 4 and stopper.stopped_epoch == 3 and stopper.best_epoch == 1
    final = weights(model)
    assert not np.array_equal(final["0.weight"], snaps[3]["0.weight"])
    for k in final:
        np.testing.assert_array_equal(final[k], snaps[1][k])
    # min_delta: improvements of 0.05 do not count when min_delta is 0.1; 'auto' picks max for accuracy
    stop = EarlyStopping(monitor="val_loss", patience=1, min_delta=0.1)
    model = mlp()
    h = fit(model, batches(x, y, 10), epochs=10, optimizer=dn.optim.SGD(model.parameters(), lr=0.0),
            loss_fn=nn.CrossEntropyLoss(), callbacks=[scripted([1.0, 0.95, 0.9, 0.5]), stop], progress=False)
    assert len(h) == 2
    assert EarlyStopping(monitor="val_accuracy").mode == "max"


def run_lrs(scheduler_factory, interval, epochs=2, nbatches=4):
    x, y = blobs(8 * nbatches)
    model = mlp()
    opt = dn.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    sched = scheduler_factory(opt)
    h = fit(model, batches(x, y, 8), epochs=epochs, optimizer=opt, loss_fn=nn.CrossEntropyLoss(), scheduler=sched,
            scheduler_interval=interval, progress=False,
            callbacks=[LambdaCallback(on_batch_begin=lambda b, logs: seen.append(opt.param_groups[0]["lr"]))])
    return seen, h.history["lr"]


def test_scheduler_per_epoch_and_per_step():
    seen, lrs = run_lrs(lambda o: dn.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5), "epoch", epochs=3)
    assert lrs == [0.1, 0.05, 0.025]
    assert seen == [0.1] * 4 + [0.05] * 4 + [0.025] * 4
    seen, lrs = run_lrs(lambda o: dn.optim.lr_scheduler.ExponentialLR(o, gamma=0.9), "step")
    expected = [0.1]
    for _ in range(7):
        expected.append(expected[-1] * 0.9)
    assert seen == pytest.approx(expected, rel=1e-12)
    assert lrs == [expected[0], expected[4]]  # the rate of each epoch's first step


def test_reduce_on_plateau_gets_the_validation_loss_else_the_training_loss():
    x, y = blobs(32)
    for val in (batches(x, y, 16), None):
        model = mlp()
        opt = dn.optim.SGD(model.parameters(), lr=0.1)
        sched = dn.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0)
        received = []

        def record(metric, original=sched.step, received=received):
            received.append(metric)
            original(metric)
        sched.step = record
        h = fit(model, batches(x, y, 8), epochs=2, optimizer=opt, loss_fn=nn.CrossEntropyLoss(), scheduler=sched,
                val_loader=val, progress=False)
        assert received == h.history["val_loss" if val else "loss"]
    with pytest.raises(ValueError, match="ReduceLROnPlateau needs an epoch metric"):
        fit(model, batches(x, y, 8), epochs=1, optimizer=opt, loss_fn=nn.CrossEntropyLoss(), scheduler=sched,
            scheduler_interval="step")


def test_history_csv_json_and_plot(tmp_path):
    x, y = blobs(40)
    model = mlp()
    h = fit(model, batches(x, y, 10), epochs=3, optimizer=dn.optim.SGD(model.parameters(), lr=0.1),
            loss_fn=nn.CrossEntropyLoss(), val_loader=batches(x, y, 20), progress=False,
            callbacks=[CSVLogger(tmp_path / "log.csv"), JSONLogger(tmp_path / "log.json")])
    h.save_csv(tmp_path / "h.csv")
    with open(tmp_path / "h.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"]
    assert [int(r[0]) for r in rows[1:]] == [0, 1, 2]
    for j, key in enumerate(rows[0][1:], start=1):
        assert [float(r[j]) for r in rows[1:]] == h.history[key]
    h.save_json(tmp_path / "h.json")
    data = json.loads((tmp_path / "h.json").read_text())
    assert data == {"epoch": [0, 1, 2], "history": h.history}
    assert History.load_json(tmp_path / "h.json").history == h.history
    assert json.loads((tmp_path / "log.json").read_text()) == data
    with open(tmp_path / "log.csv") as f:
        logged = list(csv.DictReader(f))
    assert [float(r["val_loss"]) for r in logged] == h.history["val_loss"]
    path = h.plot(tmp_path / "curves.png")
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    from deepnum.train import plot_confusion_matrix
    plot_confusion_matrix([[5, 1], [2, 7]], tmp_path / "cm.png", class_names=["a", "b"])
    assert (tmp_path / "cm.png").read_bytes()[:8] == PNG_MAGIC


def test_progress_output(capsys, monkeypatch):
    x, y = blobs(16)

    def run(progress):
        model = mlp()
        fit(model, batches(x, y, 8), epochs=2, optimizer=dn.optim.SGD(model.parameters(), lr=0.1),
            loss_fn=nn.CrossEntropyLoss(), progress=progress)
        return capsys.readouterr()

    out = run(None)  # stderr is not a terminal under pytest: no bar, one line per epoch
    assert out.err == ""
    lines = out.out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("Epoch 1/2 - ") and "loss: " in lines[0]
    assert run(False) == ("", "")
    out = run(True)
    assert out.out == "" and "Epoch 2/2" in out.err and "loss=" not in out.err and "loss: " in out.err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    out = run(None)
    assert out.out == "" and "Epoch 1/2" in out.err and "2/2" in out.err


def test_callbacks_lr_scheduler_nan_and_model_checkpoint(tmp_path):
    x, y = blobs(32)
    model = mlp()
    h = fit(model, batches(x, y, 8), epochs=3, optimizer=dn.optim.SGD(model.parameters(), lr=1.0),
            loss_fn=nn.CrossEntropyLoss(), progress=False,
            callbacks=[LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))])
    assert h.history["lr"] == [0.1, 0.05, 0.1 / 3]
    calls = []

    def nan_at_third(out, target):
        calls.append(1)
        loss = nn.functional.cross_entropy(out, target)
        return loss * float("nan") if len(calls) == 3 else loss

    model = mlp()
    ends = []
    h = fit(model, batches(x, y, 8), epochs=5, optimizer=dn.optim.SGD(model.parameters(), lr=0.1),
            loss_fn=nan_at_third, progress=False,
            callbacks=[TerminateOnNaN(), LambdaCallback(on_batch_end=lambda batch, logs: ends.append(batch))])
    assert ends == [0, 1, 2]  # stopped right after the batch whose loss was NaN
    assert len(h) == 1 and math.isnan(h.history["loss"][0])
    best = ModelCheckpoint(tmp_path / "best-{epoch:02d}.safetensors", save_best_only=True, save_weights_only=True)
    every = ModelCheckpoint(tmp_path / "full.safetensors")
    model = mlp()
    opt = dn.optim.SGD(model.parameters(), lr=0.1)
    fit(model, batches(x, y, 8), epochs=4, optimizer=opt, loss_fn=nn.CrossEntropyLoss(), progress=False,
        callbacks=[scripted([1.0, 0.5, 0.7, 0.4]), best, every])
    assert sorted(os.listdir(tmp_path)) == ["best-01.safetensors", "best-02.safetensors", "best-04.safetensors",
                                           "full.safetensors"]
    saved = load(tmp_path / "best-04.safetensors")
    np.testing.assert_array_equal(saved["0.weight"].numpy(), model[0].weight.detach().numpy())
    info = load_checkpoint(tmp_path / "full.safetensors", model=mlp(), optimizer=dn.optim.SGD(mlp().parameters(),
                                                                                           lr=0.1))
    assert (info["epoch"], info["step"]) == (4, 16)


def test_checkpoint_every_epoch_and_argument_errors(tmp_path):
    x, y = blobs(24)
    model = mlp()
    opt = dn.optim.Adam(model.parameters())
    fit(model, batches(x, y, 8), epochs=2, optimizer=opt, loss_fn=nn.CrossEntropyLoss(), progress=False,
        checkpoint_path=tmp_path / "run" / "ckpt.safetensors")
    info = load_checkpoint(tmp_path / "run" / "ckpt.safetensors", model=mlp(),
                           optimizer=dn.optim.Adam(mlp().parameters()))
    assert (info["epoch"], info["step"], info["extra"]["batch"]) == (2, 6, 0)
    assert info["extra"]["history"]["epoch"] == [0, 1]
    kw = {"epochs": 1, "optimizer": opt, "loss_fn": nn.CrossEntropyLoss(), "progress": False}
    with pytest.raises(TypeError, match=r"each batch must be a pair \(inputs, target\), got a tuple of length 3"):
        fit(model, [(dn.zeros(2, 2), dn.zeros(2), dn.zeros(2))], **kw)
    with pytest.raises(ValueError, match="scheduler_interval must be 'epoch' or 'step'"):
        fit(model, batches(x, y, 8), scheduler_interval="batch", **kw)
    with pytest.raises(TypeError, match="wrap functions in LambdaCallback"):
        fit(model, batches(x, y, 8), callbacks=[print], **kw)
    with pytest.raises(ValueError, match="train_loader yielded no batches"):
        fit(model, [], **kw)
    with pytest.raises(ValueError, match="epochs must be a non-negative int"):
        fit(model, batches(x, y, 8), **{**kw, "epochs": -1})


def test_missing_optional_packages_are_named(tmp_path, monkeypatch):
    x, y = blobs(16)
    model = mlp()
    h = fit(model, batches(x, y, 8), epochs=1, optimizer=dn.optim.SGD(model.parameters(), lr=0.1),
            loss_fn=nn.CrossEntropyLoss(), progress=False)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        h.plot(tmp_path / "curves.png")
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(ImportError, match="pip install tqdm"):
        fit(model, batches(x, y, 8), epochs=1, optimizer=dn.optim.SGD(model.parameters(), lr=0.1),
            loss_fn=nn.CrossEntropyLoss(), progress=True)
