"""fit: interruption (Ctrl-C, in-process and in a subprocess) and exact resumption: a resumed run
gives the weights, history and random states of an uninterrupted one, bit for bit, at an epoch
boundary and mid-epoch, with shuffling, dropout and augmentation drawing random numbers."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import deepnum as dn
from deepnum import nn
from deepnum.data import DataLoader, Dataset
from deepnum.io import load_checkpoint
from deepnum.train import TrainingInterrupted, fit
from deepnum.train.callbacks import LambdaCallback
from tests.test_train import batches, blobs, mlp, weights

N, BATCH, EPOCHS = 100, 16, 3  # 7 batches per epoch (the last one of 4)
X_RES, Y_RES = blobs(N, seed=3)


class NoisyDataset(Dataset):
    """Augmentation from its own generator; counts the samples it reads."""

    def __init__(self, generator):
        self.generator, self.reads = generator, 0

    def __len__(self):
        return N

    def __getitem__(self, i):
        self.reads += 1
        noise = dn.randn(2, generator=self.generator) * 0.1
        return dn.tensor(X_RES[i]) + noise, int(Y_RES[i])


class ListLoader:
    """A loader of another kind (no sampler): shuffled batches drawn from ``generator`` with noise
    from ``augment``; resuming must load and discard the batches already done."""

    def __init__(self, generator, augment):
        self.generator, self.augment = generator, augment

    def __len__(self):
        return -(-N // BATCH)

    def __iter__(self):
        order = self.generator.rng.permutation(N)

        def run():
            for i in range(0, N, BATCH):
                idx = order[i:i + BATCH]
                yield dn.tensor(X_RES[idx]) + dn.randn(len(idx), 2, generator=self.augment) * 0.1, dn.tensor(Y_RES[idx])
        return run()


def resumable_setup(kind, seed):
    """Model with dropout (global generator), Adam, a per-step scheduler, a shuffled loader and an
    augmentation generator, all seeded from ``seed``."""
    model = mlp(dropout=0.2, seed=seed)
    opt = dn.optim.Adam(model.parameters(), lr=0.01)
    sched = dn.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.8)
    shuffle, augment = dn.Generator().manual_seed(seed + 1), dn.Generator().manual_seed(seed + 2)
    if kind == "dataloader":
        dataset = NoisyDataset(augment)
        loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, generator=shuffle)
    else:
        dataset, loader = None, ListLoader(shuffle, augment)
    return {"model": model, "optimizer": opt, "scheduler": sched, "loader": loader, "dataset": dataset,
            "generators": {"augment": augment}}


def run_fit(setup, path, callbacks=(), resume_from=None):
    return fit(setup["model"], setup["loader"], epochs=EPOCHS, optimizer=setup["optimizer"],
               loss_fn=nn.CrossEntropyLoss(), val_loader=batches(X_RES, Y_RES, 50), scheduler=setup["scheduler"],
               scheduler_interval="step", callbacks=list(callbacks), progress=False, checkpoint_path=path,
               resume_from=resume_from, generators=setup["generators"])


def interrupt_at(step_wanted, at_epoch_end=False):
    def on_batch_end(batch, logs):
        if not at_epoch_end and cb.state.step == step_wanted:
            cb.state.request_interrupt()

    def on_epoch_end(epoch, logs):
        if at_epoch_end and cb.state.step == step_wanted:
            cb.state.request_interrupt()
    cb = LambdaCallback(on_batch_end=on_batch_end, on_epoch_end=on_epoch_end)
    return cb


@pytest.mark.parametrize("kind", ["dataloader", "list"])
@pytest.mark.parametrize("where", ["epoch_end", "mid_epoch"])
def test_resume_is_bit_identical(kind, where, tmp_path, capsys):
    dn.manual_seed(0)
    reference = resumable_setup(kind, seed=0)
    ref_history = run_fit(reference, tmp_path / "ref.safetensors")
    ref_default_state = dn.default_generator.get_state()
    total_reads = reference["dataset"].reads if kind == "dataloader" else None

    dn.manual_seed(0)
    first = resumable_setup(kind, seed=0)
    step = 7 if where == "epoch_end" else 10  # end of epoch 0, or batch 3 of epoch 1
    path = tmp_path / "ckpt.safetensors"
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted) as info:
        run_fit(first, path, callbacks=[interrupt_at(step, where == "epoch_end")])
    assert signal.getsignal(signal.SIGINT) is previous
    err = capsys.readouterr().err
    assert f"Checkpoint saved to {path}" in err and "resume_from=" in err and "--resume" in err
    assert (info.value.epoch, info.value.batch, info.value.step) == ((1, 0, 7) if where == "epoch_end" else (1, 3, 10))

    dn.manual_seed(1234)  # everything different: the checkpoint must restore it all
    second = resumable_setup(kind, seed=99)
    history = run_fit(second, path, callbacks=[interrupt_at(-1)], resume_from=path)
    final, expected = weights(second["model"]), weights(reference["model"])
    for k in expected:
        np.testing.assert_array_equal(final[k], expected[k])
    for key, values in ref_history.history.items():
        if key != "time":
            assert history.history[key] == values, key
    assert second["optimizer"].param_groups[0]["lr"] == reference["optimizer"].param_groups[0]["lr"]
    assert second["generators"]["augment"].get_state() == reference["generators"]["augment"].get_state()
    assert dn.default_generator.get_state() == ref_default_state
    if kind == "dataloader":  # the batches already done were skipped without reading their samples
        done = first["dataset"].reads
        assert second["dataset"].reads == total_reads - done


def test_resume_rejects_a_loader_of_another_length(tmp_path):
    dn.manual_seed(0)
    setup = resumable_setup("list", seed=0)
    with pytest.raises(TrainingInterrupted):
        run_fit(setup, tmp_path / "c.safetensors", callbacks=[interrupt_at(3)])
    setup = resumable_setup("dataloader", seed=0)
    setup["loader"] = DataLoader(setup["dataset"], batch_size=8, shuffle=True, generator=setup["loader"].generator)
    with pytest.raises(ValueError, match="mid-epoch with 7 batches per epoch, train_loader now has 13"):
        fit(setup["model"], setup["loader"], epochs=1, optimizer=setup["optimizer"], loss_fn=nn.CrossEntropyLoss(),
            scheduler=setup["scheduler"], scheduler_interval="step", progress=False,
            resume_from=tmp_path / "c.safetensors", generators={**setup["generators"],
                                                                "train_loader": setup["loader"].generator})


def test_real_sigint_in_process_without_checkpoint_path(capsys):
    x, y = blobs(64)
    model = mlp()
    previous = signal.getsignal(signal.SIGINT)

    def on_batch_end(batch, logs):
        if batch == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted) as info:
        fit(model, batches(x, y, 8), epochs=3, optimizer=dn.optim.SGD(model.parameters(), lr=0.1),
            loss_fn=nn.CrossEntropyLoss(), progress=False, callbacks=[LambdaCallback(on_batch_end=on_batch_end)])
    assert isinstance(info.value, KeyboardInterrupt)
    assert info.value.step in (3, 4) and info.value.checkpoint_path is None  # stopped after the current step
    assert "No checkpoint was written" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is previous


SCRIPT = """
import os, sys, time
import numpy as np
import deepnum as dn
from deepnum import nn
from deepnum.train import fit
from deepnum.train.callbacks import LambdaCallback

marker, ckpt = sys.argv[1], sys.argv[2]
dn.manual_seed(0)
x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
y = (x[:, 0] > 0).astype(np.int64)
data = [(dn.tensor(x[i:i + 8]), dn.tensor(y[i:i + 8])) for i in range(0, 64, 8)]
model = nn.Linear(4, 2)

def on_batch_end(batch, logs):
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write("started")
    time.sleep(0.005)

try:
    fit(model, data, epochs=100000, optimizer=dn.optim.SGD(model.parameters(), lr=0.1),
        loss_fn=nn.CrossEntropyLoss(), callbacks=[LambdaCallback(on_batch_end=on_batch_end)], progress=False,
        checkpoint_path=ckpt)
except KeyboardInterrupt:
    sys.exit(130)
"""


def test_sigint_in_a_subprocess_leaves_a_loadable_checkpoint(tmp_path):
    script, marker, ckpt = tmp_path / "train.py", tmp_path / "started", tmp_path / "ckpt.safetensors"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    proc = subprocess.Popen([sys.executable, str(script), str(marker), str(ckpt)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the training script never started"
            time.sleep(0.02)
        time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Training interrupted" in err and f"Checkpoint saved to {ckpt}" in err and "resume_from=" in err
    assert "Traceback" not in err
    model = nn.Linear(4, 2)
    info = load_checkpoint(ckpt, model=model, optimizer=dn.optim.SGD(model.parameters(), lr=0.1))
    assert info["step"] > 0 and info["extra"]["format"] == "deepnum.fit/1"
    assert info["step"] == 8 * info["epoch"] + info["extra"]["batch"]


def test_resume_from_a_plain_checkpoint_and_generators_as_a_list(tmp_path):
    """A checkpoint written directly with save_checkpoint (no fit state) resumes at its epoch."""
    from deepnum.io import save_checkpoint

    x, y = blobs(32)
    model = mlp()
    opt = dn.optim.SGD(model.parameters(), lr=0.1)
    aug = dn.Generator().manual_seed(7)
    save_checkpoint(tmp_path / "plain.safetensors", model=model, optimizer=opt, epoch=2, step=8,
                    generators={"generators.0": aug})
    seen = []
    resumed = mlp(seed=1)
    h = fit(resumed, batches(x, y, 8), epochs=4, optimizer=dn.optim.SGD(resumed.parameters(), lr=0.1),
            loss_fn=nn.CrossEntropyLoss(), progress=False, resume_from=tmp_path / "plain.safetensors",
            generators=[aug], callbacks=[LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(e))])
    assert seen == [2, 3] and h.epoch == [2, 3]
    assert not np.array_equal(weights(resumed)["0.weight"], weights(model)["0.weight"])  # it trained on
