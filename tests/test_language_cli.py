"""``deepnum lm`` and ``deepnum generate`` on tiny budgets: the run files and their metadata, seeded
generation of the asked length, and every refusal (a LeNet-5 run, its checkpoint, a foreign
safetensors file, characters outside the vocabulary, options of the other model) with exit code 2."""
import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from deepnum.cli import main
from deepnum.io import read_metadata

TINY = {"char_lstm": ["--embed", "8", "--hidden", "16"],
        "char_gpt": ["--d-model", "16", "--layers", "1", "--heads", "2"]}


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module", params=["char_lstm", "char_gpt"])
def lm_run(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("lm") / request.param
    code = main(["lm", "--model", request.param, *TINY[request.param], "--steps", "4", "--seq-len", "16",
                 "--batch-size", "4", "--eval-every", "2", "--eval-tokens", "200", "--quiet", "--output", str(out)])
    assert code == 0
    return request.param, out


def test_lm_writes_a_run(lm_run, capsys):
    name, out = lm_run
    assert {p.name for p in out.iterdir()} == {"model.safetensors", "history.json", "config.json"}
    meta = read_metadata(out / "model.safetensors")
    assert meta["deepnum.kind"] == "language-model" and meta["deepnum.model"] == name
    assert len(meta["deepnum.vocab"]) == 73 and "\n" in meta["deepnum.vocab"]
    kwargs = json.loads(meta["deepnum.model_kwargs"])
    assert kwargs["vocab_size"] == 73 and (kwargs.get("hidden_size") == 16 or kwargs.get("d_model") == 16)
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [2, 4] and len(history["step_loss"]) == 4
    assert history["final"]["val_tokens"] > 99_000  # the final evaluation reads the whole validation split
    config = json.loads((out / "config.json").read_text())
    assert config["status"] == "done" and config["val_loss"] == history["final"]["val_loss"]
    assert 3.0 < config["val_loss"] < 4.5  # ln 73 = 4.29: barely trained


def test_generate_prints_seeded_text_of_the_asked_length(lm_run, capsys):
    _, out = lm_run
    texts = []
    for seed in (3, 3, 4):
        code, stdout, err = run_cli(capsys, "generate", out, "--prompt", "ROMEO:", "--length", "40", "--seed", seed,
                                    "--temperature", "1.2")
        assert code == 0, err
        assert stdout.startswith("ROMEO:") and stdout.endswith("\n")
        texts.append(stdout[:-1])
    assert len(texts[0]) == len("ROMEO:") + 40
    assert texts[0] == texts[1] and texts[0] != texts[2]
    code, greedy, _ = run_cli(capsys, "generate", out / "model.safetensors", "--length", "25", "--temperature", "0")
    code2, top1, _ = run_cli(capsys, "generate", out, "--length", "25", "--top-k", "1", "--seed", "9")
    assert code == code2 == 0 and greedy == top1 and len(greedy) == 1 + 25 + 1


def test_generate_refuses_prompt_characters_outside_the_vocabulary(lm_run, capsys):
    code, _, err = run_cli(capsys, "generate", lm_run[1], "--prompt", "Ophelia ☺ ~é")
    assert code == 2
    assert "the prompt has characters outside the model's vocabulary of 73 characters: '~', 'é', '☺'" in err


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lenet"
    assert main(["train", "--limit", "64", "--epochs", "1", "--quiet", "--output", str(out)]) == 0
    return out


def test_generate_refuses_other_checkpoints(lenet_run, tmp_path, capsys):
    code, out, err = run_cli(capsys, "generate", lenet_run)
    assert code == 2 and not out
    assert (f"{lenet_run / 'model.safetensors'} is not a language model: it holds a lenet5 model trained on mnist; "
            "`deepnum generate` needs a run written by `deepnum lm`") in err
    code, _, err = run_cli(capsys, "generate", lenet_run / "checkpoint.safetensors")
    assert code == 2 and "is not a language model: it holds a training checkpoint" in err
    foreign = tmp_path / "random.safetensors"
    save_file({"w": np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)}, str(foreign))
    code, _, err = run_cli(capsys, "generate", foreign)
    assert code == 2 and f"{foreign} is not a language model: it holds weights without deepnum's language-model" in err
    code, _, err = run_cli(capsys, "generate", tmp_path / "missing")
    assert code == 2 and "does not exist" in err
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    code, _, err = run_cli(capsys, "generate", tmp_path / "broken.safetensors")
    assert code == 2 and "broken.safetensors" in err


def test_lm_refuses_bad_options(tmp_path, capsys):
    code, _, err = run_cli(capsys, "lm", "--model", "char_gpt", "--hidden", "64", "--steps", "1")
    assert code == 2 and "--hidden does not apply to char_gpt" in err
    code, _, err = run_cli(capsys, "lm", "--model", "char_gpt", "--seq-len", "64", "--block-size", "32", "--steps", "1")
    assert code == 2 and "--seq-len 64 exceeds --block-size 32" in err
    code, _, err = run_cli(capsys, "lm", "--steps", "1", "--minutes", "1")
    assert code == 2 and "not allowed with argument" in err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "lm", "--steps", "1", "--output", tmp_path / "taken")
    assert code == 2 and "already exists and is not empty" in err
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"


def test_classifier_commands_refuse_language_models(lm_run, tmp_path, capsys):
    name, out = lm_run
    code, _, err = run_cli(capsys, "eval", out)
    assert code == 2 and f"holds a language model ({name}), not a classifier" in err and "deepnum generate" in err
    code, _, err = run_cli(capsys, "train", "--model", name, "--epochs", "1", "--output", tmp_path / "x")
    assert code == 2 and f"`deepnum lm --model {name}`" in err
    assert not (tmp_path / "x").exists()
