"""deepnum.models.timeseries: the five time-series classifiers against twins written in torch.nn (same
weights: parameter counts, state_dict keys, repr, outputs, input and parameter gradients, BatchNorm
statistics, in float64 and float32), the SE block against its formula in NumPy, shapes, gradients,
input errors, the registry, ``deepnum train`` on BasicMotions end to end, a short training run that
must learn, and the report script's smoke run."""
import json
import math

import numpy as np
import pytest
import torch

import deepnum as dn
from deepnum.cli import main
from deepnum.models import create_model, list_models, model_builder, model_info
from deepnum.models import timeseries as T

MODELS = ["conv1d_net", "se_conv1d_net", "gru_classifier", "lstm_classifier", "transformer_classifier"]
TOL = {"float64": (1e-9, 1e-11), "float32": (2e-4, 2e-5)}


# ----------------------------------------------------------------------------- torch.nn twins (deepnum's keys)
class SEBlock1d(torch.nn.Module):
    def __init__(self, channels, reduction=8):
        super().__init__()
        self.channels, self.reduction = channels, reduction
        self.fc1 = torch.nn.Linear(channels, max(1, channels // reduction))
        self.relu = torch.nn.ReLU()
        self.fc2 = torch.nn.Linear(max(1, channels // reduction), channels)
        self.sigmoid = torch.nn.Sigmoid()

    def forward(self, x):
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(x.mean(-1))))).unsqueeze(-1)

    def extra_repr(self):
        return f"channels={self.channels}, reduction={self.reduction}"


class Conv1dBlock(torch.nn.Module):
    def __init__(self, cin, cout, k, se_reduction=None):
        super().__init__()
        self.conv = torch.nn.Conv1d(cin, cout, k, padding=k // 2, bias=False)
        self.bn = torch.nn.BatchNorm1d(cout)
        self.relu = torch.nn.ReLU()
        if se_reduction is not None:
            self.se = SEBlock1d(cout, se_reduction)

    def forward(self, x):
        x = self.relu(self.bn(self.conv(x)))
        return self.se(x) if hasattr(self, "se") else x


class Conv1dNet(torch.nn.Module):
    def __init__(self, num_classes, in_chans, channels=(32, 64, 64), kernel_sizes=(7, 5, 3), se_reduction=None,
                 dropout=0.0):
        super().__init__()
        widths = (in_chans, *channels)
        self.features = torch.nn.Sequential(*[Conv1dBlock(widths[i], widths[i + 1], k, se_reduction)
                                              for i, k in enumerate(kernel_sizes)])
        self.dropout = torch.nn.Dropout(dropout)
        self.fc = torch.nn.Linear(widths[-1], num_classes)

    def forward(self, x):
        return self.fc(self.dropout(self.features(x).mean(-1)))


class RecurrentClassifier(torch.nn.Module):
    def __init__(self, num_classes, in_chans, hidden_size=64, num_layers=1, bidirectional=False, pooling="mean",
                 dropout=0.0, cell="gru"):
        super().__init__()
        self.norm = torch.nn.BatchNorm1d(in_chans)
        self.rnn = (torch.nn.GRU if cell == "gru" else torch.nn.LSTM)(in_chans, hidden_size, num_layers,
                                                                       batch_first=True, bidirectional=bidirectional)
        self.dropout = torch.nn.Dropout(dropout)
        self.fc = torch.nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)
        self.pooling, self.dirs = pooling, 2 if bidirectional else 1

    def forward(self, x):
        out, state = self.rnn(self.norm(x).transpose(1, 2))
        if self.pooling == "mean":
            return self.fc(self.dropout(out.mean(1)))
        h = state[0] if isinstance(state, tuple) else state
        return self.fc(self.dropout(torch.cat(list(h[-self.dirs:]), 1)))


class PositionalEncoding(torch.nn.Module):
    """x + PE[:L], PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(...) (Vaswani et al. 2017 §3.5)."""

    def __init__(self, d_model, max_len):
        super().__init__()
        pos = torch.arange(max_len, dtype=torch.float64)[:, None]
        angles = pos * torch.exp(torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model, dtype=torch.float64)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(angles), torch.cos(angles)
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x):
        return x + self.pe[: x.shape[1]].to(x.dtype)


class TransformerClassifier(torch.nn.Module):
    def __init__(self, num_classes, in_chans, d_model=32, nhead=4, num_layers=2, dim_feedforward=64, pooling="mean",
                 embed_kernel_size=5):
        super().__init__()
        self.norm = torch.nn.BatchNorm1d(in_chans)
        self.embed = torch.nn.Conv1d(in_chans, d_model, embed_kernel_size, padding=embed_kernel_size // 2)
        if pooling == "cls":
            self.cls_token = torch.nn.Parameter(torch.zeros(1, 1, d_model))
        self.pos_encoding = PositionalEncoding(d_model, 64)
        layer = torch.nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, 0.0, batch_first=True,
                                                 norm_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, num_layers, norm=torch.nn.LayerNorm(d_model),
                                                   enable_nested_tensor=False)
        self.dropout = torch.nn.Dropout(0.0)
        self.fc = torch.nn.Linear(d_model, num_classes)
        self.pooling = pooling

    def forward(self, x):
        tokens = self.embed(self.norm(x)).transpose(1, 2)
        if self.pooling == "cls":
            tokens = torch.cat([self.cls_token.expand(len(tokens), 1, tokens.shape[2]), tokens], 1)
        encoded = self.encoder(self.pos_encoding(tokens))
        return self.fc(self.dropout(encoded[:, 0] if self.pooling == "cls" else encoded.mean(1)))


def twins(name, num_classes=4, in_chans=6, **kw):
    """(deepnum model from the registry, torch twin) with the same configuration (dropout off)."""
    dn.manual_seed(0)
    torch.manual_seed(0)
    if name in ("conv1d_net", "se_conv1d_net"):
        se = {"se_reduction": kw.pop("se_reduction", 8)} if name == "se_conv1d_net" else {}
        return (create_model(name, num_classes=num_classes, in_chans=in_chans, **se, **kw),
                Conv1dNet(num_classes, in_chans, **se, **kw))
    if name in ("gru_classifier", "lstm_classifier"):
        kw.setdefault("hidden_size", 16)
        cell = name.split("_")[0]
        return (create_model(name, num_classes=num_classes, in_chans=in_chans, dropout=0.0, **kw),
                RecurrentClassifier(num_classes, in_chans, cell=cell, **kw))
    return (create_model(name, num_classes=num_classes, in_chans=in_chans, dropout=0.0, max_len=63, **kw),
            TransformerClassifier(num_classes, in_chans, **kw))


def copy_weights(theirs, ours):
    ours.load_state_dict({k: dn.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})


def count(model):
    return sum(p.numel() for p in model.parameters())


def compare_training_step(ours, theirs, x, dtype):
    """Same weights, train mode, loss Σ out·w: outputs, the input gradient, every parameter gradient
    and the BatchNorm running statistics agree."""
    rtol, atol = TOL[dtype]
    ours.to(dtype=getattr(dn, dtype)).train()
    theirs.to(getattr(torch, dtype)).train()
    copy_weights(theirs, ours)
    x = x.astype(dtype)
    xt, xd = torch.tensor(x, requires_grad=True), dn.tensor(x, requires_grad=True)
    out_t, out_d = theirs(xt), ours(xd)
    w = np.random.default_rng(1).standard_normal(tuple(out_t.shape)).astype(dtype)
    (out_t * torch.tensor(w)).sum().backward()
    (out_d * dn.tensor(w)).sum().backward()
    assert out_d.dtype == getattr(dn, dtype) and xd.grad.dtype == getattr(dn, dtype)
    np.testing.assert_allclose(out_d.detach().numpy(), out_t.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(xd.grad.numpy(), xt.grad.numpy(), rtol=rtol, atol=atol)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad is not None and p.grad.dtype == getattr(dn, dtype), name
        np.testing.assert_allclose(p.grad.numpy(), theirs_params[name].grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=name)
    theirs_state = theirs.state_dict()
    for name, value in ours.state_dict().items():
        np.testing.assert_allclose(value.numpy(), theirs_state[name].numpy(), rtol=rtol, atol=atol, err_msg=name)


def series(n=5, c=6, t=24, seed=0):
    return np.random.default_rng(seed).standard_normal((n, c, t)) * np.linspace(0.5, 4.0, c)[:, None]


# ----------------------------------------------------------------------------- equal to torch.nn twins
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", MODELS)
def test_equals_torch_twin(name, dtype):
    ours, theirs = twins(name)
    assert count(ours) == count(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
           {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    compare_training_step(ours, theirs, series(), dtype)


@pytest.mark.parametrize("name, kw", [
    ("gru_classifier", {"bidirectional": True, "pooling": "last"}),
    ("gru_classifier", {"num_layers": 2, "pooling": "last"}),
    ("lstm_classifier", {"bidirectional": True, "num_layers": 2, "pooling": "last"}),
    ("lstm_classifier", {"pooling": "last"}),
    ("lstm_classifier", {"bidirectional": True}),
    ("transformer_classifier", {"pooling": "cls", "embed_kernel_size": 1}),
    ("conv1d_net", {"channels": (8, 16), "kernel_sizes": (3, 9)}),
    ("se_conv1d_net", {"se_reduction": 4, "channels": (16,), "kernel_sizes": (5,)}),
])
def test_options_equal_torch_twin(name, kw):
    ours, theirs = twins(name, **kw)
    assert count(ours) == count(theirs)
    compare_training_step(ours, theirs, series(n=3, t=17, seed=2), "float64")


def test_eval_mode_equals_torch_twin():
    """Eval mode (BatchNorm on running statistics) after one training step in both."""
    for name in ("se_conv1d_net", "lstm_classifier"):
        ours, theirs = twins(name)
        compare_training_step(ours, theirs, series(), "float64")
        x = series(n=2, seed=3)
        with torch.no_grad(), dn.no_grad():
            np.testing.assert_allclose(ours.eval()(dn.tensor(x)).numpy(), theirs.eval()(torch.tensor(x)).numpy(),
                                       rtol=1e-9, atol=1e-11)


def test_repr_matches_torch_twin_for_the_conv_models():
    for name in ("conv1d_net", "se_conv1d_net"):
        ours, theirs = twins(name)
        assert repr(ours) == repr(theirs)


# ----------------------------------------------------------------------------- the SE block
def test_se_block_is_its_formula_in_numpy():
    dn.manual_seed(0)
    se = T.SEBlock1d(32, reduction=8)
    assert (se.fc1.in_features, se.fc1.out_features, se.fc2.out_features) == (32, 4, 32)
    assert count(se) == 2 * 32 * 4 + 4 + 32
    x = dn.tensor(series(n=3, c=32, t=11).astype(np.float32))
    w1, b1, w2, b2 = (p.detach().numpy().astype(np.float64) for p in (se.fc1.weight, se.fc1.bias, se.fc2.weight,
                                                                     se.fc2.bias))
    z = x.numpy().astype(np.float64).mean(axis=2)                          # squeeze: (N, C)
    s = 1 / (1 + np.exp(-(np.maximum(z @ w1.T + b1, 0) @ w2.T + b2)))     # excite: (N, C) in (0, 1)
    gate = se.gate(x)
    assert tuple(gate.shape) == (3, 32) and gate.dtype == dn.float32
    np.testing.assert_allclose(gate.detach().numpy(), s, rtol=1e-5, atol=1e-6)
    out = se(x)
    assert out.dtype == dn.float32 and tuple(out.shape) == (3, 32, 11)
    np.testing.assert_allclose(out.detach().numpy(), x.numpy() * s[:, :, None], rtol=1e-5, atol=1e-6)
    assert repr(se) == ("SEBlock1d(\n  channels=32, reduction=8\n  (fc1): Linear(in_features=32, "
                        "out_features=4, bias=True)\n  (relu): ReLU()\n  (fc2): Linear(in_features=4, out_features=32, "
                        "bias=True)\n  (sigmoid): Sigmoid()\n)")
    assert T.SEBlock1d(6, reduction=16).fc1.out_features == 1   # at least one hidden unit


def test_se_block_errors():
    with pytest.raises(ValueError, match=r"SEBlock1d: channels and reduction must be positive integers, "
                                         r"got channels=8, reduction=0"):
        T.SEBlock1d(8, reduction=0)
    se = T.SEBlock1d(8)
    with pytest.raises(ValueError, match=r"SEBlock1d\(8, reduction=8\): expected input \(N, 8, T\), "
                                         r"got \(2, 4, 10\)"):
        se(dn.zeros(2, 4, 10))


# ----------------------------------------------------------------------------- shapes, gradients, errors
@pytest.mark.parametrize("name", MODELS)
def test_forward_shape_and_backward_reaches_every_parameter(name):
    dn.manual_seed(0)
    model = create_model(name, num_classes=4, in_chans=6)
    for length in (100, 13):   # any length
        x = dn.tensor(series(n=3, t=length).astype(np.float32))
        out = model(x)
        assert tuple(out.shape) == (3, 4) and out.dtype == dn.float32
    model.zero_grad()
    dn.nn.functional.cross_entropy(model(x), dn.tensor(np.array([0, 1, 3]))).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and np.all(np.isfinite(p.grad.numpy())), pname
        assert np.any(p.grad.numpy() != 0), f"{name}: no gradient reaches {pname}"
    model.eval()
    with dn.no_grad():
        assert tuple(model(dn.zeros(1, 6, 40)).shape) == (1, 4)


@pytest.mark.parametrize("name, label", [
    ("conv1d_net", "Conv1dNet(in_chans=6, num_classes=4)"),
    ("se_conv1d_net", "Conv1dNet(in_chans=6, num_classes=4)"),
    ("gru_classifier", "gru_classifier(in_chans=6, num_classes=4)"),
    ("lstm_classifier", "lstm_classifier(in_chans=6, num_classes=4)"),
    ("transformer_classifier", "transformer_classifier(in_chans=6, num_classes=4)"),
])
def test_bad_input_names_the_model_and_shapes(name, label):
    model = create_model(name, num_classes=4, in_chans=6)
    for bad, got in ((dn.zeros(2, 1, 40), r"\(2, 1, 40\)"), (dn.zeros(6, 40), r"\(6, 40\)")):
        with pytest.raises(ValueError, match=rf"{re_escape(label)}: expected input \(N, 6, T\), got {got}"):
            model(bad)


def re_escape(text):
    import re

    return re.escape(text)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="kernel_size must be a positive odd integer"):
        T.Conv1dNet(4, 6, kernel_sizes=(4, 5, 3))
    with pytest.raises(ValueError, match="must be non-empty and of the same length"):
        T.Conv1dNet(4, 6, channels=(8, 8), kernel_sizes=(3,))
    with pytest.raises(ValueError, match="pooling must be 'last' or 'mean'"):
        T.RecurrentClassifier(4, 6, pooling="max")
    with pytest.raises(ValueError, match="pooling must be 'mean' or 'cls'"):
        T.TransformerClassifier(4, 6, pooling="max")


def test_sizes_are_small():
    """Tens of thousands of parameters with the defaults (BasicMotions: 6 channels, 4 classes)."""
    sizes = {name: count(create_model(name, num_classes=4, in_chans=6)) for name in MODELS}
    assert sizes == {"conv1d_net": 24452, "se_conv1d_net": 26936, "gru_classifier": 14096,
                     "lstm_classifier": 18704, "transformer_classifier": 18288}, sizes
    # recurrent: input BatchNorm (2·6) + gates·H·(C + H + 2 biases) + head (64·4 + 4); 3 gates GRU, 4 LSTM
    assert sizes["gru_classifier"] == 12 + 3 * 64 * (6 + 64 + 2) + 260
    assert sizes["lstm_classifier"] == 12 + 4 * 64 * (6 + 64 + 2) + 260
    # SE adds 2·C·(C/8) + C/8 + C per block: C = 32, 64, 64
    assert sizes["se_conv1d_net"] - sizes["conv1d_net"] == sum(2 * c * (c // 8) + c // 8 + c for c in (32, 64, 64))


# ----------------------------------------------------------------------------- registry and CLI
def test_registry_entries():
    assert set(MODELS) <= set(list_models())
    for name in MODELS:
        info = model_info(name)
        assert info.family == "timeseries" and info.paper and not info.small_input
        params = list(__import__("inspect").signature(model_builder(name)).parameters)
        assert params[:2] == ["num_classes", "in_chans"], name
    assert model_info("se_conv1d_net").paper.startswith("Hu et al. 2018")


def test_cli_train_and_eval_on_basic_motions(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--model", "se_conv1d_net", "--dataset", "basic_motions", "--epochs", "1",
                 "--batch-size", "8", "--quiet", "--output", str(out)])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "on 40 basic_motions test samples" in stdout
    config = json.loads((out / "config.json").read_text())
    assert config["model_kwargs"] == {"num_classes": 4, "in_chans": 6} and config["augment"] is False
    assert main(["eval", str(out)]) == 0
    assert "basic_motions [test, 40 samples]" in capsys.readouterr().out


# ----------------------------------------------------------------------------- learning
@pytest.mark.parametrize("name", MODELS)
def test_short_training_run_learns_basic_motions(name):
    """The report's recipe (40 epochs, batch 8, AdamW + one-cycle) on the 40 BasicMotions training
    series, seed 0: measured 100 % test accuracy for every model (seeds 0-4: 97.5-100 %; chance 25 %).
    About 1-3 s per model."""
    from examples.sequences_report import train_one

    result = train_one(name, "basic_motions", seed=0, epochs=40)
    assert result["accuracy"] >= 0.9, result


def test_report_quick_run_writes_json(tmp_path, capsys):
    from examples.sequences_report import main as report

    path = tmp_path / "results.json"
    assert report(["--quick", "--models", "conv1d_net,gru_classifier", "--datasets", "basic_motions",
                   "--output", str(path)]) == 0
    data = json.loads(path.read_text())
    assert [(r["model"], r["dataset"]) for r in data["results"]] == [("conv1d_net", "basic_motions"),
                                                                      ("gru_classifier", "basic_motions")]
    assert data["results"][0]["params"] == 24452 and data["meta"]["quick"] is True
    stdout = capsys.readouterr().out
    assert "| model | data set | test accuracy (%) | parameters | training time per run (s) |" in stdout
    assert "| conv1d_net | basic_motions |" in stdout
