"""The CLI for the model zoo: ``deepnum models`` (family, parameter counts from a shape-only
construction, paper) and ``deepnum viz filters|features|attention`` on trained runs and on registered
model names (exit codes, PNG files and their sizes, and the errors for bad layer names, non-ViT
models and out-of-range samples); plus training and evaluating the 3-D CNN on voxel_digits."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import deepnum as dn
from deepnum import models
from deepnum._cli_common import model_shape_info, shape_only_construction
from deepnum.cli import main
from deepnum.viz import TITLE_PX

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--epochs", "1", "--quiet"]


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def png_size(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        return image.size


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lenet"
    assert main(["train", "--limit", "128", *FAST, "--output", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "vit"
    assert main(["train", "--model", "vit_mini_patch7_28", "--limit", "64", *FAST, "--output", str(out)]) == 0
    return out


# ----------------------------------------------------------------------------- deepnum models
def test_models_lists_family_parameters_input_and_paper(capsys):
    code, out, _ = run_cli(capsys, "models")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["model", "family", "parameters", "input", "paper"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == set(models.list_models())
    assert rows["lenet5"].split()[1:4] == ["lenet", "61,706", "1×28×28"] and "LeCun et al. 1998" in rows["lenet5"]
    assert rows["voxnet"].split()[1:4] == ["voxel", "921,736", "1×32×32×32"] and "Maturana" in rows["voxnet"]
    assert rows["voxnet_small"].split()[1:4] == ["voxel", "13,994", "1×16×16×16"]


def test_models_pattern(capsys):
    code, out, _ = run_cli(capsys, "models", "voxnet*")
    assert code == 0 and [line.split()[0] for line in out.splitlines()[1:]] == ["voxnet", "voxnet_small"]
    code, _, err = run_cli(capsys, "models", "nothing*")
    assert code == 2 and "no model matches 'nothing*'" in err


@pytest.mark.parametrize("name", ["lenet5", "voxnet", "voxnet_small", "vit_mini_patch7_28"])
def test_shape_only_counts_equal_real_counts(name):
    dn.manual_seed(0)
    real = sum(p.numel() for p in models.create_model(name).parameters())
    assert model_shape_info(name)[0] == real


def test_shape_only_construction_draws_nothing_and_restores_everything():
    from deepnum import creation
    from deepnum.nn import init
    from deepnum.nn.modules import linear
    from deepnum.random import default_generator

    before = (init.kaiming_uniform_, creation.zeros, creation.empty, linear.empty, dn.zeros)
    dn.manual_seed(123)
    state = default_generator.get_state()
    with shape_only_construction():
        assert linear.empty is not before[3] and init.kaiming_uniform_ is not before[0]
        model = models.create_model("voxnet")
    assert all(not p.detach().numpy().any() for p in model.parameters())          # nothing was initialised
    assert default_generator.get_state() == state                                  # no random numbers drawn
    assert (init.kaiming_uniform_, creation.zeros, creation.empty, linear.empty, dn.zeros) == before
    assert dn.nn.Linear(3, 2).weight.detach().numpy().any()                        # initialisers work again


def test_shape_only_construction_commits_no_memory_for_big_models(monkeypatch):
    """A registered 134M-parameter model (537 MB of float32) is counted without the resident memory
    growing by more than a few MB: the weight arrays are never written."""
    monkeypatch.setattr(models, "_REGISTRY", dict(models._REGISTRY))
    monkeypatch.setattr(models, "_INFO", dict(models._INFO))
    monkeypatch.setattr("deepnum._cli_common._SHAPES", {})

    @models.register_model(paper="none")
    def huge_mlp(num_classes: int = 10) -> dn.nn.Module:
        return dn.nn.Sequential(dn.nn.Linear(8192, 8192), dn.nn.Linear(8192, 8192), dn.nn.Linear(8192, num_classes))

    def resident_bytes():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    start = resident_bytes()
    count, shape = model_shape_info("huge_mlp")
    assert count == 2 * (8192 * 8192 + 8192) + 8192 * 10 + 10 and shape is None
    assert resident_bytes() - start < 64 * 2 ** 20


# ----------------------------------------------------------------------------- deepnum viz filters
def test_viz_filters_of_a_run_and_of_a_model_name(lenet_run, tmp_path, capsys):
    out = tmp_path / "f.png"
    code, stdout, err = run_cli(capsys, "viz", "filters", lenet_run, "--output", out)
    assert code == 0, err
    assert png_size(out) == (3 * 64, 2 * 64 + TITLE_PX) and "6 filters of features.0 (2×3 grid)" in stdout
    code, stdout, _ = run_cli(capsys, "viz", "filters", lenet_run, "--layer", "features.3", "--output", out)
    assert code == 0 and png_size(out) == (4 * 64, 4 * 64 + TITLE_PX) and "16 filters of features.3" in stdout
    nested = tmp_path / "new" / "dir" / "m.png"
    code, stdout, _ = run_cli(capsys, "viz", "filters", "lenet5", "--output", nested, "--max-filters", "4")
    assert code == 0 and png_size(nested) == (128, 128 + TITLE_PX)


def test_viz_filters_errors(lenet_run, tmp_path, capsys):
    out = tmp_path / "f.png"
    code, _, err = run_cli(capsys, "viz", "filters", lenet_run, "--layer", "classifier.1", "--output", out)
    assert code == 2 and "lenet5 has no Conv2d layer named 'classifier.1'; Conv2d layers: features.0, features.3" in err
    code, _, err = run_cli(capsys, "viz", "filters", "voxnet_small", "--output", out)
    assert code == 2 and "voxnet_small has no Conv2d layer" in err
    code, _, err = run_cli(capsys, "viz", "filters", tmp_path / "missing", "--output", out)
    assert code == 2 and "does not exist" in err
    code, _, err = run_cli(capsys, "viz", "filters", lenet_run)
    assert code == 2 and "the following arguments are required: --output" in err
    code, _, err = run_cli(capsys, "viz")
    assert code == 2 and "required: WHAT" in err
    assert not out.exists()


# ----------------------------------------------------------------------------- deepnum viz features
def test_viz_features_of_a_dataset_sample(lenet_run, tmp_path, capsys):
    out = tmp_path / "maps.png"
    code, stdout, err = run_cli(capsys, "viz", "features", lenet_run, "--layer", "features.3", "--index", "7",
                                "--output", out)
    assert code == 0, err
    assert png_size(out) == (4 * 64, 4 * 64 + TITLE_PX)
    assert "16 of 16 feature maps (10, 10) of features.3 for mnist [test] sample 7" in stdout
    code, stdout, _ = run_cli(capsys, "viz", "features", lenet_run, "--layer", "features.0", "--index", "0",
                              "--split", "train", "--max-maps", "2", "--output", out)
    assert code == 0 and png_size(out) == (128, 64 + TITLE_PX) and "2 of 6 feature maps" in stdout


def test_viz_features_errors(lenet_run, tmp_path, capsys):
    out = tmp_path / "maps.png"
    code, _, err = run_cli(capsys, "viz", "features", lenet_run, "--layer", "conv9", "--index", "0", "--output", out)
    assert code == 2
    assert "lenet5 has no layer named 'conv9'; layers: features, features.0, features.1, features.2" in err
    code, _, err = run_cli(capsys, "viz", "features", lenet_run, "--layer", "classifier.5", "--index", "0",
                           "--output", out)
    assert code == 2 and "feature maps need (1, C, H, W) or (1, C, D, H, W)" in err
    code, _, err = run_cli(capsys, "viz", "features", lenet_run, "--layer", "features.0", "--index", "1000",
                           "--output", out)
    assert code == 2 and "--index 1000 is out of range: mnist [test] has 1000 samples (0..999)" in err
    code, _, err = run_cli(capsys, "viz", "features", "lenet5", "--layer", "features.0", "--index", "0",
                           "--output", out)
    assert code == 2 and "the dataset is not known; pass --dataset NAME" in err
    code, _, err = run_cli(capsys, "viz", "features", "lenet5", "--layer", "features.0", "--index", "0",
                           "--dataset", "digits", "--output", out)
    assert code == 2 and "lenet5 expects inputs of shape (1, 28, 28), but digits samples have shape (1, 8, 8)" in err
    assert not out.exists()


# ----------------------------------------------------------------------------- deepnum viz attention
def test_viz_attention_of_a_vit_run_and_model(vit_run, tmp_path, capsys):
    out = tmp_path / "att.png"
    code, stdout, err = run_cli(capsys, "viz", "attention", vit_run, "--index", "3", "--output", out)
    assert code == 0, err
    assert png_size(out) == (512, 256 + TITLE_PX) and "attention rollout over 4×4 patches" in stdout
    code, _, err = run_cli(capsys, "viz", "attention", "vit_mini_patch7_28", "--dataset", "mnist", "--index", "0",
                           "--head-fusion", "max", "--discard-ratio", "0.3", "--output", out)
    assert code == 0, err
    code, _, err = run_cli(capsys, "viz", "attention", vit_run, "--index", "0", "--discard-ratio", "1",
                           "--output", out)
    assert code == 2 and "--discard-ratio must be in [0, 1), got 1.0" in err


def test_viz_attention_refuses_a_cnn(lenet_run, tmp_path, capsys):
    out = tmp_path / "att.png"
    code, _, err = run_cli(capsys, "viz", "attention", lenet_run, "--index", "0", "--output", out)
    assert code == 2 and "lenet5 is not a Vision Transformer" in err and not out.exists()


# ----------------------------------------------------------------------------- the 3-D CNN through the CLI
def test_train_eval_and_viz_voxnet_on_voxel_digits(tmp_path, capsys):
    run = tmp_path / "vox"
    code, _, err = run_cli(capsys, "train", "--model", "voxnet_small", "--dataset", "voxel_digits", "--limit", "128",
                           *FAST, "--output", run)
    assert code == 0, err
    code, stdout, err = run_cli(capsys, "eval", run)
    assert code == 0 and "voxnet_small from" in stdout and "on voxel_digits [test, 1000 samples]" in stdout
    out = tmp_path / "v.png"
    code, stdout, err = run_cli(capsys, "viz", "features", run, "--layer", "features.4", "--index", "0",
                                "--output", out)
    assert code == 0, err
    assert png_size(out) == (4 * 64, 4 * 64 + TITLE_PX) and "16 of 16 feature maps (8, 8, 8)" in stdout


def test_viz_in_a_subprocess(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-m", "deepnum", "viz", "filters", "lenet5", "--output", "f.png"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert png_size(tmp_path / "f.png") == (192, 128 + TITLE_PX)
