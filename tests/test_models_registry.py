"""``deepnum.models``: the registry (register, create, list, errors) and LeNet-5 (shapes, parameter
count worked out by hand, input validation, parity with the same network built in torch.nn)."""
import numpy as np
import pytest
import torch

import deepnum as dn
from deepnum import models
from deepnum.models import LeNet5, create_model, lenet5, list_models, register_model


# ----------------------------------------------------------------------------- registry
@pytest.fixture
def scratch_registry(monkeypatch):
    """A copy of the registry, so test registrations do not leak into other tests."""
    monkeypatch.setattr(models, "_REGISTRY", dict(models._REGISTRY))
    monkeypatch.setattr(models, "_INFO", dict(models._INFO))


def test_lenet5_is_registered():
    assert "lenet5" in list_models()
    assert list_models() == sorted(list_models())
    model = create_model("lenet5")
    assert isinstance(model, LeNet5) and model.num_classes == 10 and model.in_channels == 1


def test_create_model_passes_kwargs():
    model = create_model("lenet5", num_classes=3, in_channels=2)
    assert model.classifier[-1].out_features == 3 and model.features[0].in_channels == 2
    assert model.input_shape == (2, 28, 28)


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown model 'resnet9'; available models: .*lenet5"):
        create_model("resnet9")


def test_register_model_bare_and_named(scratch_registry):
    @register_model
    def tiny(num_classes: int = 2) -> dn.nn.Module:
        return dn.nn.Linear(4, num_classes)

    @register_model(name="tiny-wide")
    def build_wide() -> dn.nn.Module:
        return dn.nn.Linear(4, 8)

    assert {"tiny", "tiny-wide"} <= set(list_models())
    assert create_model("tiny", num_classes=5).out_features == 5
    assert create_model("tiny-wide").out_features == 8
    assert tiny.__name__ == "tiny"  # the decorator returns the builder itself


def test_register_model_refuses_duplicates_and_bad_input(scratch_registry):
    def lenet5_again() -> dn.nn.Module:
        return LeNet5()

    with pytest.raises(ValueError, match=r"a model named 'lenet5' is already registered"):
        register_model(lenet5_again, name="lenet5")
    assert create_model("lenet5").__class__ is LeNet5  # unchanged
    register_model(lenet5)  # registering the same builder again is harmless
    with pytest.raises(TypeError, match="expected a callable"):
        register_model(42, name="x")
    with pytest.raises(ValueError, match="non-empty string"):
        register_model(lenet5_again, name="")


def test_builder_arguments_are_checked():
    with pytest.raises(TypeError):
        create_model("lenet5", depth=3)
    with pytest.raises(ValueError, match="num_classes and in_channels must be >= 1"):
        create_model("lenet5", num_classes=0)


# ----------------------------------------------------------------------------- LeNet-5
def test_lenet5_parameter_count_by_hand():
    conv1 = 6 * 1 * 5 * 5 + 6        # 156
    conv2 = 16 * 6 * 5 * 5 + 16      # 2,416
    fc1 = 16 * 5 * 5 * 120 + 120     # 48,120
    fc2 = 120 * 84 + 84              # 10,164
    fc3 = 84 * 10 + 10               # 850
    model = lenet5()
    assert sum(p.numel() for p in model.parameters()) == conv1 + conv2 + fc1 + fc2 + fc3 == 61706
    rgb100 = lenet5(num_classes=100, in_channels=3)
    expected = (6 * 3 * 25 + 6) + conv2 + fc1 + fc2 + (84 * 100 + 100)
    assert sum(p.numel() for p in rgb100.parameters()) == expected


def test_lenet5_forward_shapes():
    dn.manual_seed(0)
    model = lenet5()
    x = dn.rand(5, 1, 28, 28)
    assert model.features(x).shape == (5, 16, 5, 5)
    out = model(x)
    assert out.shape == (5, 10) and out.dtype == dn.float32
    assert lenet5(num_classes=7, in_channels=3)(dn.rand(2, 3, 28, 28)).shape == (2, 7)
    assert model(dn.rand(0, 1, 28, 28)).shape == (0, 10)


@pytest.mark.parametrize("shape,model_args", [
    ((2, 3, 32, 32), {}), ((2, 1, 32, 32), {}), ((1, 28, 28), {}), ((2, 1, 28, 28), {"in_channels": 3}),
    ((4, 784), {}),
])
def test_lenet5_input_validation(shape, model_args):
    model = lenet5(**model_args)
    c = model_args.get("in_channels", 1)
    with pytest.raises(ValueError, match=rf"LeNet5: expected input \(N, {c}, 28, 28\), got \({shape[0]}, "):
        model(dn.zeros(*shape))


def test_lenet5_message_example():
    with pytest.raises(ValueError) as info:
        lenet5()(dn.zeros(8, 3, 32, 32))
    assert str(info.value) == "LeNet5: expected input (N, 1, 28, 28), got (8, 3, 32, 32)"


def test_lenet5_repr_and_state_dict_keys():
    model = lenet5()
    keys = list(model.state_dict())
    assert keys == ["features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias",
                    "classifier.1.weight", "classifier.1.bias", "classifier.3.weight", "classifier.3.bias",
                    "classifier.5.weight", "classifier.5.bias"]
    text = repr(model)
    assert text.startswith("LeNet5(\n  num_classes=10, in_channels=1\n  (features): Sequential(")
    assert "(0): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))" in text
    assert "(2): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)" in text


def _torch_lenet5():
    nn = torch.nn

    class TorchLeNet5(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                                          nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
            self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84),
                                            nn.ReLU(), nn.Linear(84, 10))

        def forward(self, x):
            return self.classifier(self.features(x))

    return TorchLeNet5()


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 2e-4)])
def test_lenet5_matches_torch(dtype, tol):
    torch.manual_seed(0)
    ref = _torch_lenet5().to(getattr(torch, np.dtype(dtype).name))
    model = lenet5().to(dn.float64 if dtype == np.float64 else dn.float32)
    assert list(model.state_dict()) == list(ref.state_dict())
    model.load_state_dict({k: dn.tensor(v.detach().numpy()) for k, v in ref.state_dict().items()})
    x_np = np.random.default_rng(0).random((4, 1, 28, 28)).astype(dtype)
    xt = torch.tensor(x_np, requires_grad=True)
    x = dn.tensor(x_np, requires_grad=True)
    out_t, out = ref(xt), model(x)
    np.testing.assert_allclose(out.detach().numpy(), out_t.detach().numpy(), rtol=tol, atol=tol)
    weights = np.random.default_rng(1).standard_normal((4, 10)).astype(dtype)
    (out_t * torch.tensor(weights)).sum().backward()
    (out * dn.tensor(weights)).sum().backward()
    assert x.grad.dtype == x.dtype
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=tol, atol=tol)
    for (name, p), (_, pt) in zip(model.named_parameters(), ref.named_parameters()):
        assert p.grad.dtype == p.dtype, name
        np.testing.assert_allclose(p.grad.numpy(), pt.grad.numpy(), rtol=tol, atol=tol, err_msg=name)


def test_lenet5_default_init_statistics():
    """PyTorch's defaults: weights ~ U(-1/√fan_in, 1/√fan_in) (kaiming_uniform with a=√5), biases too."""
    dn.manual_seed(0)
    model = lenet5()
    for name, p in model.named_parameters():
        module = model.get_submodule(name.rsplit(".", 1)[0])
        fan_in = int(np.prod(module.weight.shape[1:]))
        bound = 1 / np.sqrt(fan_in)
        values = p.detach().numpy()
        assert np.abs(values).max() <= bound, name
        if values.size > 1000:
            assert abs(values.std() - bound / np.sqrt(3)) < 0.05 * bound, name
