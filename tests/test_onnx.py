"""deepnum.onnx.export: every zoo family, MLPs, recurrent layers and the transformer encoder exported,
checked by onnx's full checker, and run by onnxruntime at the example batch size and another one,
matching deepnum's outputs within 1e-4."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import deepnum as dn
import deepnum.nn as nn
import deepnum.onnx as dnx
from deepnum.cli import main as cli_main
from deepnum.models import create_model

TOL = 1e-4


def _meaningful(model: nn.Module, seed: int = 0) -> nn.Module:
    """Zero-initialised parameters (classifier heads, class tokens, residual γ) get random values and
    batch norm random running statistics, so outputs depend on every part of the graph."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        if not np.any(p.data):
            p.data[...] = rng.normal(0, 0.1, p.shape).astype(p.data.dtype)
    for name, b in model.named_buffers():
        if name.endswith("running_mean"):
            b.data[...] = rng.normal(0, 0.1, b.shape).astype(b.data.dtype)
        elif name.endswith("running_var"):
            b.data[...] = rng.uniform(0.5, 1.5, b.shape).astype(b.data.dtype)
    return model.eval()


def _outputs(value) -> list[np.ndarray]:
    if isinstance(value, dn.Tensor):
        return [value.numpy()]
    return [a for v in value for a in _outputs(v)]


def _roundtrip(model: nn.Module, inputs: list[dn.Tensor], path, **kwargs) -> tuple[onnx.ModelProto, float]:
    """Export with inputs[0] as the example, then compare onnxruntime and deepnum on every input;
    returns the model and the largest difference."""
    proto = dnx.export(model, inputs[0], path, **kwargs)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for x in inputs:
        with dn.no_grad():
            expected = _outputs(model(x))
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert g.shape == e.shape
            assert np.abs(e).max() > 1e-3  # the comparison means something
            worst = max(worst, float(np.abs(g - e).max()))
    assert worst <= TOL
    return proto, worst


ZOO = [("lenet5", {}, (1, 28, 28)), ("lenet5_classic", {}, (1, 32, 32)), ("alexnet_small", {}, (1, 28, 28)),
       ("vgg11_bn_small", {"in_chans": 3}, (3, 32, 32)), ("nin_cifar", {}, (3, 32, 32)),
       ("googlenet_small", {}, (3, 32, 32)), ("resnet20", {}, (3, 32, 32)), ("se_resnet20", {}, (3, 32, 32)),
       ("densenet_bc_22_12", {"in_chans": 3}, (3, 32, 32)), ("mobilenet_v1_cifar", {}, (3, 32, 32)),
       ("mobilenet_v2_cifar", {}, (3, 32, 32)), ("xception_cifar", {}, (3, 32, 32)),
       ("convnext_mini", {"in_chans": 3}, (3, 32, 32)), ("vit_mini_patch7_28", {}, (1, 28, 28)),
       ("swin_micro", {"in_chans": 3}, (3, 32, 32))]


@pytest.mark.parametrize("name,kwargs,shape", ZOO, ids=[z[0] for z in ZOO])
def test_zoo_family_exports_and_matches(tmp_path, name, kwargs, shape):
    dn.manual_seed(0)
    model = _meaningful(create_model(name, num_classes=10, **kwargs))
    _roundtrip(model, [dn.randn(2, *shape), dn.randn(5, *shape)], tmp_path / "m.onnx")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "vit_tiny_patch4_32", "vgg11_small"])
def test_bigger_zoo_models(tmp_path, name):
    dn.manual_seed(0)
    shape = (3, 64, 64) if name == "resnet18" else (3, 32, 32) if name != "vgg11_small" else (1, 32, 32)
    model = _meaningful(create_model(name, num_classes=10))
    _roundtrip(model, [dn.randn(2, *shape), dn.randn(3, *shape)], tmp_path / "m.onnx")


@pytest.mark.parametrize("name", ["gru_classifier", "lstm_classifier", "transformer_classifier", "se_conv1d_net"])
def test_timeseries_models(tmp_path, name):
    dn.manual_seed(1)
    model = _meaningful(create_model(name, in_chans=2, num_classes=4))
    _roundtrip(model, [dn.randn(3, 2, 20), dn.randn(1, 2, 20)], tmp_path / "m.onnx")


@pytest.mark.parametrize("name", ["char_lstm", "char_gpt"])
def test_language_models_with_integer_inputs(tmp_path, name):
    dn.manual_seed(9)
    model = create_model(name, vocab_size=20).eval()
    g = dn.Generator().manual_seed(0)
    inputs = [dn.randint(0, 20, (2, 12), generator=g), dn.randint(0, 20, (4, 12), generator=g)]
    proto, _ = _roundtrip(model, inputs, tmp_path / "lm.onnx")
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert any(n.op_type == "Gather" and n.input[1] == "input" for n in proto.graph.node)


def test_mlp_uses_gemm_with_transposed_weights_and_state_dict_names(tmp_path):
    dn.manual_seed(2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.GELU(), nn.Dropout(0.5), nn.Linear(8, 3),
                          nn.Softmax(dim=1)).eval()
    proto, _ = _roundtrip(model, [dn.randn(4, 3, 4), dn.randn(9, 3, 4)], tmp_path / "mlp.onnx")
    gemms = [n for n in proto.graph.node if n.op_type == "Gemm"]
    assert len(gemms) == 2
    for node in gemms:
        assert {a.name: a.i for a in node.attribute}["transB"] == 1
        assert len(node.input) == 3  # the bias folded into Gemm
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    tensors = {n for n, a in weights.items() if a.dtype == np.float32 and a.size > 1}
    assert tensors == {"1.weight", "1.bias", "4.weight", "4.bias"}
    np.testing.assert_array_equal(weights["1.weight"], model[1].weight.detach().numpy())  # as stored: (out, in)
    softmax = next(n for n in proto.graph.node if n.op_type == "Softmax")
    assert [a.i for a in softmax.attribute if a.name == "axis"] == [1]
    assert proto.ir_version == onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", 17)])


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
def test_recurrent_bidirectional_two_layers_batch_first(tmp_path, cls):
    dn.manual_seed(3)
    model = cls(5, 7, num_layers=2, bidirectional=True, batch_first=True).eval()
    proto, _ = _roundtrip(model, [dn.randn(2, 6, 5), dn.randn(4, 6, 5)], tmp_path / "rnn.onnx")
    op = {nn.LSTM: "LSTM", nn.GRU: "GRU", nn.RNN: "RNN"}[cls]
    assert sum(n.op_type == op for n in proto.graph.node) == 4  # 2 layers x 2 directions


def test_recurrent_sequence_first_with_batch_axis_1(tmp_path):
    dn.manual_seed(4)
    model = nn.GRU(4, 6, num_layers=1).eval()
    proto, _ = _roundtrip(model, [dn.randn(5, 2, 4), dn.randn(5, 3, 4)], tmp_path / "gru.onnx", batch_axis=1)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value or d.dim_param for d in dims] == [5, "batch", 4]


def test_transformer_encoder(tmp_path):
    dn.manual_seed(5)
    layer = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True)
    model = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(16)).eval()
    proto, _ = _roundtrip(model, [dn.randn(2, 6, 16), dn.randn(3, 6, 16)], tmp_path / "enc.onnx")
    assert {"MatMul", "Softmax", "LayerNormalization"} <= {n.op_type for n in proto.graph.node}


class _TensorOps(nn.Module):
    """Elementwise math, reductions and shape ops of the Tensor API, in one graph."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 6)

    def forward(self, x):
        x = self.fc(x)
        y = x.clamp(-0.5, 0.5) + x.pow(2) + (x.abs() + 1).rsqrt() + x.abs().log1p() + x.sin() + x.cos() + x.exp() * 0.1
        y = y - x / 3 + dn.maximum(x, y) - dn.minimum(x, -y) + (x * x).sqrt() + dn.reciprocal(x.abs() + 1)
        a, b = dn.stack([y, y * 2], dim=1).unbind(1)
        m = dn.amax(a, dim=1, keepdim=True) + dn.logsumexp(b, dim=1, keepdim=True) - dn.amin(b, dim=1, keepdim=True)
        r = dn.roll(a, 2, dims=1)
        p = dn.nn.functional.pad(a[:, 1:-1], (1, 1)) + dn.nn.functional.pad(a, (-1, 1))
        s1, s2 = dn.split(r, [2, 4], dim=1)
        return dn.cat([m, r, p, s2 * s1.sum(1, keepdim=True), a[:, None, 2][:, 0, None]], dim=1)


def test_tensor_ops(tmp_path):
    dn.manual_seed(15)
    model = _TensorOps().eval()
    _roundtrip(model, [dn.randn(2, 6), dn.randn(5, 6)], tmp_path / "ops.onnx")


class _SelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):
        return self.attn(x, x, x, need_weights=False)[0]


LAYERS = {
    "maxpool_ceil_pad": (lambda: nn.MaxPool2d(2, 2, padding=1, ceil_mode=True), (3, 5, 5)),
    "maxpool_dilated": (lambda: nn.MaxPool2d(3, 1, padding=1, dilation=2), (3, 8, 8)),
    "avgpool_exclude_pad": (lambda: nn.AvgPool2d(3, 2, padding=1, count_include_pad=False), (3, 7, 7)),
    "avgpool_ceil": (lambda: nn.AvgPool2d(3, 2, padding=1, ceil_mode=True), (3, 8, 8)),
    "avgpool_divisor_override": (lambda: nn.AvgPool2d(2, divisor_override=3), (3, 6, 6)),
    "adaptive_avgpool": (lambda: nn.AdaptiveAvgPool2d(3), (3, 6, 6)),
    "maxpool1d": (lambda: nn.MaxPool1d(3, 2), (3, 9)),
    "avgpool3d": (lambda: nn.AvgPool3d(2), (2, 4, 4, 4)),
    "conv_transpose": (lambda: nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1), (3, 5, 5)),
    "conv1d_groups_dilation": (lambda: nn.Conv1d(4, 6, 3, padding=2, dilation=2, groups=2), (4, 9)),
    "conv3d_stride": (lambda: nn.Conv3d(2, 3, 3, padding=1, stride=2), (2, 5, 5, 5)),
    "conv_reflect_padding": (lambda: nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"), (2, 5, 5)),
    "groupnorm": (lambda: nn.GroupNorm(2, 4), (4, 3, 3)),
    "batchnorm1d": (lambda: nn.BatchNorm1d(4), (4,)),
    "activations": (lambda: nn.Sequential(nn.LeakyReLU(0.1), nn.ELU(0.5), nn.Softplus(beta=2), nn.SiLU(), nn.Mish(),
                                          nn.Hardswish(), nn.Hardsigmoid(), nn.GELU(approximate="tanh"), nn.ReLU6(),
                                          nn.Sigmoid(), nn.Tanh(), nn.LogSoftmax(dim=-1)), (3, 8)),
    "multihead_attention": (_SelfAttention, (5, 8)),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layers(tmp_path, name):
    dn.manual_seed(11)
    build, shape = LAYERS[name]
    model = _meaningful(build())
    _roundtrip(model, [dn.randn(2, *shape), dn.randn(4, *shape)], tmp_path / "layer.onnx")


@pytest.mark.parametrize("opset", [14, 18, 20])
def test_other_opsets(tmp_path, opset):
    """Opset 14 decomposes LayerNormalization, 18 passes reduction axes as inputs, 20 has Gelu."""
    dn.manual_seed(10)
    model = _meaningful(create_model("convnext_mini", in_chans=3, num_classes=10))
    proto, _ = _roundtrip(model, [dn.randn(2, 3, 32, 32), dn.randn(3, 3, 32, 32)], tmp_path / "c.onnx",
                          opset_version=opset)
    ops = {n.op_type for n in proto.graph.node}
    assert ("Gelu" in ops) == (opset >= 20) and ("LayerNormalization" in ops) == (opset >= 17)
    assert proto.opset_import[0].version == opset


def test_converters_lists_the_supported_ops():
    names = dnx.converters()
    for op in ("conv_ops.Convolution", "rnn.RNNLayer", "attention.ScaledDotProductAttention", "linalg.MatMul"):
        assert any(n.endswith(op) for n in names)
    assert not any(n.endswith("reduction.CumSum") for n in names)


def test_example_of_batch_one_gives_a_general_graph(tmp_path):
    """At batch size 1 an expand to the size it already has runs no op; the export traces at 2 and 3."""
    dn.manual_seed(13)
    model = _meaningful(create_model("vit_mini_patch7_28"))
    proto, _ = _roundtrip(model, [dn.randn(1, 1, 28, 28), dn.randn(3, 1, 28, 28)], tmp_path / "v.onnx")
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_static_batch_fixes_the_batch_size(tmp_path):
    dn.manual_seed(6)
    model = create_model("lenet5").eval()
    proto = dnx.export(model, dn.randn(2, 1, 28, 28), tmp_path / "s.onnx", dynamic_batch=False)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    session = ort.InferenceSession(str(tmp_path / "s.onnx"), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        session.run(None, {"input": np.zeros((3, 1, 28, 28), np.float32)})


def test_export_leaves_the_model_as_it_was(tmp_path):
    dn.manual_seed(12)
    model = create_model("resnet20").train()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    dnx.export(model, dn.randn(2, 3, 32, 32), tmp_path / "r.onnx")
    assert all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert all(np.array_equal(before[k], v.numpy()) for k, v in model.state_dict().items())


def test_names_and_multiple_outputs(tmp_path):
    dn.manual_seed(7)
    model = nn.LSTM(3, 4).eval()
    proto = dnx.export(model, dn.randn(5, 2, 3), tmp_path / "l.onnx", batch_axis=1, input_names=["seq"],
                       output_names=["y", "h", "c"])
    assert [o.name for o in proto.graph.output] == ["y", "h", "c"]
    assert [i.name for i in proto.graph.input] == ["seq"]


class _Cumulative(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return dn.cumsum(self.fc(x), dim=1)


class _Outer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = _Cumulative()

    def forward(self, x):
        return self.inner(x)


def test_unsupported_op_names_the_op_and_module_and_writes_nothing(tmp_path):
    path = tmp_path / "bad.onnx"
    with pytest.raises(dnx.ExportError, match=r"CumSum in module 'inner'.*no ONNX converter"):
        dnx.export(_Outer(), dn.randn(2, 4), path)
    assert not path.exists() and list(tmp_path.iterdir()) == []
    path.write_bytes(b"old")
    with pytest.raises(dnx.ExportError):
        dnx.export(_Outer(), dn.randn(2, 4), path)
    assert path.read_bytes() == b"old"


class _Gated(nn.Module):
    def forward(self, x):
        return dn.where(x > 0, x, x * 0.1)  # the comparison runs outside the autograd ops


@pytest.mark.parametrize("dynamic", [True, False])
def test_values_computed_outside_the_ops_are_refused(tmp_path, dynamic):
    with pytest.raises(dnx.ExportError, match="Where.*computed outside"):
        dnx.export(_Gated(), dn.randn(3, 4), tmp_path / "w.onnx", dynamic_batch=dynamic)
    assert not (tmp_path / "w.onnx").exists()


def test_bad_arguments():
    with pytest.raises(TypeError, match="nn.Module"):
        dnx.export(lambda x: x, dn.randn(2, 3), "x.onnx")
    with pytest.raises(ValueError, match="opset_version"):
        dnx.export(nn.Linear(3, 2), dn.randn(2, 3), "x.onnx", opset_version=9)
    with pytest.raises(ValueError, match="input names"):
        dnx.export(nn.Linear(3, 2), dn.randn(2, 3), "x.onnx", input_names=["a", "b"])


def test_cli_export_of_a_weights_file(tmp_path, capsys):
    from deepnum.io import save

    dn.manual_seed(8)
    model = _meaningful(create_model("lenet5"))
    save(model.state_dict(), tmp_path / "model.safetensors")
    out = tmp_path / "lenet.onnx"
    code = cli_main(["export", str(tmp_path / "model.safetensors"), "--model", "lenet5", "--output", str(out),
                     "--batch", "2"])
    assert code == 0 and "wrote" in capsys.readouterr().out
    x = dn.randn(3, 1, 28, 28)
    with dn.no_grad():
        expected = model(x).numpy()
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    assert np.abs(got - expected).max() <= TOL
    assert cli_main(["export", str(tmp_path / "model.safetensors"), "--model", "lenet5", "-o", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_cli_export_needs_the_input_size_when_the_model_has_none(tmp_path, capsys):
    from deepnum.io import save

    dn.manual_seed(14)
    model = _meaningful(create_model("convnext_mini", in_chans=1, num_classes=10))
    save(model.state_dict(), tmp_path / "model.safetensors")
    out = tmp_path / "c.onnx"
    args = ["export", str(tmp_path / "model.safetensors"), "--model", "convnext_mini", "-o", str(out)]
    assert cli_main(args) == 2 and "--input-size" in capsys.readouterr().err and not out.exists()
    assert cli_main([*args, "--input-size", "1", "28", "28", "--static-batch", "--batch", "2"]) == 0
    proto = onnx.load(str(out))
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [2, 1, 28, 28]
