"""MobileNet v1/v2 and Xception (``deepnum.models.mobilenet``, ``deepnum.models.xception``):
parameter counts against the papers (and torchvision / Keras), torchvision's MobileNetV2 layout and
eval outputs, the depthwise separable savings, block structure, parity of forward and backward with
the same networks built in torch.nn, input validation, and (slow) training on MNIST."""
import copy

import numpy as np
import pytest
import torch

import deepnum as dn
from deepnum import nn as dnn
from deepnum.models import create_model, list_models, model_info
from deepnum.models.mobilenet import (
    V1_SETTING,
    ConvBNAct,
    DepthwiseSeparable,
    InvertedResidual,
    MobileNetV1,
    MobileNetV2,
    depthwise_separable_savings,
    make_divisible,
)
from deepnum.models.xception import SeparableConv2d, Xception, XceptionBlock, keras_parameter_count
from tests.zoo_helpers import (
    assert_same_eval_output,
    assert_same_state_dict_layout,
    copy_weights,
    count_parameters,
    import_torchvision,
)


@pytest.fixture(scope="module")
def tv():
    return import_torchvision()


@pytest.fixture(scope="module")
def xception_full():
    dn.manual_seed(0)
    return create_model("xception")


# ----------------------------------------------------------------------------- depthwise separable savings
@pytest.mark.parametrize("channels", [32, 512])
def test_depthwise_separable_needs_far_fewer_parameters(channels):
    """A 3×3 conv C→C has 9C² weights; depthwise 3×3 + pointwise 1×1 has 9C + C² (the notes' point)."""
    full = dnn.Conv2d(channels, channels, 3, padding=1, bias=False)
    separable = SeparableConv2d(channels, channels)
    assert count_parameters(full) == 9 * channels ** 2
    assert count_parameters(separable) == 9 * channels + channels ** 2
    assert depthwise_separable_savings(channels) == (9 * channels ** 2, 9 * channels + channels ** 2)
    assert separable.depthwise.weight.shape == (channels, 1, 3, 3) and separable.depthwise.groups == channels
    # the ratio is 1/C + 1/9: 8.8× fewer weights for C = 512 (2,359,296 vs 266,752)
    ratio = count_parameters(separable) / count_parameters(full)
    assert ratio == pytest.approx(1 / channels + 1 / 9)
    if channels == 512:
        assert (count_parameters(full), count_parameters(separable)) == (2_359_296, 266_752)


def test_separable_conv_is_the_composition_of_two_linear_convs():
    """No nonlinearity between depthwise and pointwise (Chollet 2017, §4.7): the block is linear."""
    rng = np.random.default_rng(0)
    sep = SeparableConv2d(4, 6).double()
    x = dn.tensor(rng.standard_normal((2, 4, 5, 5)))
    expected = dn.nn.functional.conv2d(dn.nn.functional.conv2d(x, sep.depthwise.weight, padding=1, groups=4),
                                       sep.pointwise.weight)
    np.testing.assert_allclose(sep(x).detach().numpy(), expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sep(-x).detach().numpy(), -sep(x).detach().numpy(), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- MobileNet v1
def v1_count(alpha: float, classes: int) -> int:
    """MobileNet v1's parameters worked out from Table 1: conv weights + BN γ, β + the classifier."""
    width = lambda c: max(int(c * alpha), 8)  # noqa: E731
    c = width(32)
    total = 3 * 9 * c + 2 * c
    for out, _ in V1_SETTING:
        out = width(out)
        total += 9 * c + 2 * c + c * out + 2 * out
        c = out
    return total + c * classes + classes


def test_mobilenet_v1_parameter_count():
    model = create_model("mobilenet_v1")
    assert count_parameters(model) == 4_231_976 == v1_count(1.0, 1000)  # the paper's 4.2M (Tables 4 and 8)
    assert count_parameters(model.features[0]) == 928
    assert sum(count_parameters(b) for b in model.features[1:]) == 3_206_048
    assert count_parameters(model.classifier) == 1_025_000
    for alpha, classes in ((0.5, 1000), (0.25, 10), (0.75, 100)):
        assert count_parameters(MobileNetV1(classes, width_mult=alpha)) == v1_count(alpha, classes)


def test_mobilenet_v1_layout():
    model = create_model("mobilenet_v1")
    blocks = list(model.features)[1:]
    assert len(blocks) == 13 and all(isinstance(b, DepthwiseSeparable) for b in blocks)
    assert [(b.pointwise[0].out_channels, b.depthwise[0].stride[0]) for b in blocks] == list(V1_SETTING)
    for b in blocks:  # 3×3 depthwise conv-BN-ReLU, then 1×1 pointwise conv-BN-ReLU, no conv biases
        dw, pw = b.depthwise[0], b.pointwise[0]
        assert dw.groups == dw.in_channels == dw.out_channels and dw.kernel_size == (3, 3) and dw.bias is None
        assert pw.kernel_size == (1, 1) and pw.bias is None
        assert [type(m) for m in b.depthwise] == [dnn.Conv2d, dnn.BatchNorm2d, dnn.ReLU]
        assert [type(m) for m in b.pointwise] == [dnn.Conv2d, dnn.BatchNorm2d, dnn.ReLU]
    assert list(model.state_dict())[:6] == ["features.0.0.weight", "features.0.1.weight", "features.0.1.bias",
                                            "features.0.1.running_mean", "features.0.1.running_var",
                                            "features.0.1.num_batches_tracked"]
    assert model.features[0][0].stride == (2, 2) and create_model("mobilenet_v1_cifar").features[0][0].stride == (1, 1)


# ----------------------------------------------------------------------------- MobileNet v2 vs torchvision
def test_mobilenet_v2_count_and_layout_match_torchvision(tv):
    model = create_model("mobilenet_v2")
    reference = tv.models.mobilenet_v2()
    assert count_parameters(model) == count_parameters(reference) == 3_504_872
    assert_same_state_dict_layout(model, reference)
    for alpha in (0.5, 1.4):  # the width multiplier rounds channels to multiples of 8 as torchvision does
        assert_same_state_dict_layout(MobileNetV2(10, width_mult=alpha), tv.models.mobilenet_v2(num_classes=10,
                                                                                                 width_mult=alpha))


def test_mobilenet_v2_eval_output_equals_torchvision(tv):
    torch.manual_seed(0)
    reference = tv.models.mobilenet_v2()
    with torch.no_grad():  # non-trivial running statistics, so eval-mode BN is really exercised
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    assert_same_eval_output(create_model("mobilenet_v2"), reference, (1, 3, 64, 64))


def test_mobilenet_v2_blocks_match_torchvision(tv):
    """Residual exactly when stride 1 and C_in = C_out; the projection is linear (no activation)."""
    ours = [b for b in create_model("mobilenet_v2").features if isinstance(b, InvertedResidual)]
    theirs = [b for b in tv.models.mobilenet_v2().features if isinstance(b, tv.models.mobilenetv2.InvertedResidual)]
    assert len(ours) == len(theirs) == 17
    assert [b.use_residual for b in ours] == [b.use_res_connect for b in theirs]
    assert sum(b.use_residual for b in ours) == 10
    for b in ours:
        assert [type(m) for m in b.conv][-2:] == [dnn.Conv2d, dnn.BatchNorm2d]
        assert all(type(m[-1]) is dnn.ReLU6 for m in b.conv if isinstance(m, ConvBNAct))


def test_mobilenet_v2_default_init_statistics():
    dn.manual_seed(0)
    model = create_model("mobilenet_v2")
    last = model.features[18][0].weight.detach().numpy()  # (1280, 320, 1, 1): Kaiming normal, fan_out = 1280
    assert last.std() == pytest.approx(np.sqrt(2 / 1280), rel=0.03) and abs(last.mean()) < 1e-3
    fc = model.classifier[1]
    assert fc.weight.detach().numpy().std() == pytest.approx(0.01, rel=0.03)
    assert not fc.bias.detach().numpy().any()
    bn = model.features[0][1]
    assert (bn.weight.detach().numpy() == 1).all() and not bn.bias.detach().numpy().any()


def test_make_divisible():
    assert [make_divisible(v) for v in (32 * 0.35, 16 * 0.5, 96 * 0.75, 1280 * 1.4, 4)] == [16, 8, 72, 1792, 8]
    assert make_divisible(10, 8) == 16  # rounding down to 8 would lose more than 10%


# ----------------------------------------------------------------------------- Xception
def test_xception_parameter_count(xception_full):
    assert count_parameters(xception_full) == 22_855_952  # Chollet 2017, Table 3
    assert keras_parameter_count(xception_full) == 22_910_480  # Keras's total: + BN moving means/variances
    assert count_parameters(xception_full.fc) == 2048 * 1000 + 1000


def test_xception_layout(xception_full):
    model = xception_full
    separable = [m for m in model.modules() if isinstance(m, SeparableConv2d)]
    shortcuts = [b.shortcut for b in model.modules() if isinstance(b, XceptionBlock) and b.shortcut is not None]
    assert len(separable) + 2 == 36  # the paper's 36 convolutional layers (the 1×1 shortcuts not counted)
    assert len(shortcuts) == 4 and all(s[0].kernel_size == (1, 1) and s[0].stride == (2, 2) for s in shortcuts)
    assert all(m.bias is None for m in model.modules() if isinstance(m, dnn.Conv2d))
    entry = list(model.entry_flow)
    assert [b.body[0].__class__ for b in entry] == [SeparableConv2d, dnn.ReLU, dnn.ReLU]  # block 1: no ReLU first
    assert [b.shortcut[0].out_channels for b in entry] == [128, 256, 728]
    assert len(model.middle_flow) == 8
    middle = model.middle_flow[0]
    assert middle.shortcut is None
    assert [type(m) for m in middle.body] == [dnn.ReLU, SeparableConv2d, dnn.BatchNorm2d] * 3
    assert [type(m) for m in model.exit_flow[1:]] == [SeparableConv2d, dnn.BatchNorm2d, dnn.ReLU] * 2


def test_xception_feature_map_sizes(xception_full):
    """A 299×299 image: 147 after the stem, 74, 37, 19 after the entry blocks, 10 after the exit
    block (Fig. 5's 19×19×728 and 10×10×2048), from each layer's kernel, stride and padding; a
    71×71 image (Keras's smallest) runs through to 3×3×2048."""
    def out(size, module):
        k, s, p = (module.kernel_size[0], module.stride[0], module.padding[0]) if isinstance(module, dnn.Conv2d) \
            else (module.kernel_size, module.stride, module.padding)
        return (size + 2 * p - k) // s + 1

    model, size, trail = xception_full, 299, []
    for conv in (model.stem[0][0], model.stem[1][0]):
        size = out(size, conv)
    trail.append(size)
    for block in [*model.entry_flow, model.exit_flow[0]]:
        size = out(size, block.body[-1])
        trail.append(size)
    assert trail == [147, 74, 37, 19, 10]
    shapes = []
    hooks = [m.register_forward_hook(lambda mod, i, o: shapes.append(tuple(o.shape)))
             for m in (model.stem, model.middle_flow, model.exit_flow)]
    model.eval()
    with dn.no_grad():
        y = model(dn.tensor(np.zeros((1, 3, 71, 71), np.float32)))
    for remove in hooks:
        remove()
    assert tuple(y.shape) == (1, 1000)
    assert shapes == [(1, 64, 33, 33), (1, 728, 5, 5), (1, 2048, 3, 3)]


# ----------------------------------------------------------------------------- parity with torch.nn
class _Mirror(torch.nn.Module):
    """A composite deepnum block rebuilt in torch.nn with the same children (so the same keys)."""

    def __init__(self, module):
        super().__init__()
        self.kind = type(module).__name__
        self.use_residual = getattr(module, "use_residual", False)
        for name, child in module._modules.items():
            setattr(self, name, None if child is None else mirror(child))
        if self.kind == "XceptionBlock" and module.shortcut is None:
            self.shortcut = None

    def forward(self, x):
        if self.kind in ("DepthwiseSeparable", "SeparableConv2d"):
            return self.pointwise(self.depthwise(x))
        if self.kind == "InvertedResidual":
            return x + self.conv(x) if self.use_residual else self.conv(x)
        if self.kind == "XceptionBlock":
            return self.body(x) + (x if self.shortcut is None else self.shortcut(x))
        if self.kind == "Xception":
            return self.fc(self.exit_flow(self.middle_flow(self.entry_flow(self.stem(x)))).mean((2, 3)))
        return self.classifier(self.features(x).mean((2, 3)))  # MobileNetV1/V2


def mirror(module):
    """The torch.nn network with the layers of a deepnum model, layer by layer."""
    if isinstance(module, dnn.Conv2d):
        return torch.nn.Conv2d(module.in_channels, module.out_channels, module.kernel_size, module.stride,
                               module.padding, groups=module.groups, bias=module.bias is not None)
    simple = {dnn.BatchNorm2d: lambda m: torch.nn.BatchNorm2d(m.num_features), dnn.ReLU: lambda m: torch.nn.ReLU(),
              dnn.ReLU6: lambda m: torch.nn.ReLU6(), dnn.Dropout: lambda m: torch.nn.Dropout(m.p),
              dnn.Linear: lambda m: torch.nn.Linear(m.in_features, m.out_features),
              dnn.MaxPool2d: lambda m: torch.nn.MaxPool2d(m.kernel_size, m.stride, m.padding)}
    if type(module) in simple:
        return simple[type(module)](module)
    if type(module) in (dnn.Sequential, ConvBNAct):
        return torch.nn.Sequential(*(mirror(m) for m in module))
    return _Mirror(module)


def _step(model, x, target, lib):
    """Train-mode forward and cross-entropy backward: (logits, [input grad, *parameter grads])."""
    F = dn.nn.functional if lib is dn else torch.nn.functional  # noqa: N806
    inputs = lib.tensor(x, requires_grad=True)
    out = model(inputs)
    F.cross_entropy(out, lib.tensor(target)).backward()
    return out.detach().numpy(), [inputs.grad.numpy()] + [p.grad.numpy() for _, p in model.named_parameters()]


@pytest.mark.parametrize("name, kwargs, size", [
    ("mobilenet_v1_cifar", {"width_mult": 0.25}, 28),
    ("mobilenet_v2_cifar", {"width_mult": 0.35, "dropout": 0.0}, 28),
    ("xception_cifar", {}, 32),
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_small_variants_match_torch_train_and_eval(name, kwargs, size, dtype):
    """Train mode (batch statistics): logits, the input gradient, every parameter gradient and the
    updated running statistics; then eval mode; against the same network built from torch.nn layers.

    In float32 the gradients of a whole network are ill-conditioned (a ReLU or max-pool input within
    rounding of its kink, BatchNorm over a nearly constant channel): torch's own float32 gradients
    differ from its float64 ones by up to 2e-2 (relative norm) on some seeds, and deepnum's likewise,
    so float32 gradients are compared with torch's float64 ones in norm; float64 checks every
    element tightly."""
    dn.manual_seed(0)
    torch.manual_seed(0)
    model = create_model(name, in_chans=1, **kwargs)
    reference = mirror(model)
    assert list(reference.state_dict()) == list(model.state_dict())
    copy_weights(reference, model)
    reference64 = copy.deepcopy(reference).double()
    if dtype == np.float64:
        model, reference = model.double(), reference64
    tol = 1e-9 if dtype == np.float64 else 2e-4
    x, target = np.random.default_rng(1).random((4, 1, size, size)), np.arange(4) % 3
    out_d, grads_d = _step(model, x.astype(dtype), target, dn)
    out_t, grads_t = _step(reference, x.astype(dtype), target, torch)
    assert out_d.dtype == dtype and out_d.shape == (4, 10) and all(g.dtype == dtype for g in grads_d)
    np.testing.assert_allclose(out_d, out_t, rtol=tol, atol=tol)
    if dtype == np.float64:
        for key, ours, theirs in zip(["input", *dict(model.named_parameters())], grads_d, grads_t):
            np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol, err_msg=key)
    else:
        exact = np.concatenate([g.ravel() for g in _step(reference64, x, target, torch)[1]])
        ours = np.concatenate([g.ravel() for g in grads_d]).astype(np.float64)
        assert np.linalg.norm(ours - exact) < 5e-2 * np.linalg.norm(exact)
    state = reference.state_dict()
    for key, value in model.state_dict().items():
        np.testing.assert_allclose(value.numpy(), state[key].numpy(), rtol=tol, atol=tol, err_msg=key)
    model.eval()
    reference.eval()
    with dn.no_grad(), torch.no_grad():
        np.testing.assert_allclose(model(dn.tensor(x.astype(dtype))).numpy(),
                                   reference(torch.tensor(x.astype(dtype))).numpy(), rtol=tol, atol=tol)


# ----------------------------------------------------------------------------- registry, shapes, validation
@pytest.mark.parametrize("name, small", [("mobilenet_v1", False), ("mobilenet_v1_cifar", True),
                                         ("mobilenet_v2", False), ("mobilenet_v2_cifar", True),
                                         ("xception", False), ("xception_cifar", True)])
def test_registered(name, small):
    assert name in list_models()
    info = model_info(name)
    assert info.small_input is small and info.family == name.split("_")[0] and info.paper


@pytest.mark.parametrize("name, kwargs, shape", [
    ("mobilenet_v1_cifar", {"in_chans": 1}, (2, 1, 28, 28)),
    ("mobilenet_v1_cifar", {"num_classes": 100, "width_mult": 0.5}, (2, 3, 32, 32)),
    ("mobilenet_v2_cifar", {"in_chans": 1}, (2, 1, 28, 28)),
    ("mobilenet_v2_cifar", {"num_classes": 100}, (2, 3, 32, 32)),
    ("mobilenet_v1", {"num_classes": 7}, (1, 3, 64, 64)),
    ("mobilenet_v2", {"num_classes": 7, "in_chans": 1}, (1, 1, 40, 40)),
    ("xception_cifar", {"in_chans": 1}, (2, 1, 28, 28)),
    ("xception_cifar", {"num_classes": 100}, (2, 3, 32, 32)),
])
def test_forward_shapes(name, kwargs, shape):
    model = create_model(name, **kwargs)
    y = model(dn.tensor(np.random.default_rng(0).random(shape, dtype=np.float32)))
    assert tuple(y.shape) == (shape[0], kwargs.get("num_classes", 1000 if "cifar" not in name else 10))
    assert y.dtype == np.float32


def test_small_variant_feature_sizes():
    """Stride-1 stems: 32×32 inputs end at 2×2 (MobileNets) and 4×4 (Xception) before pooling."""
    x = dn.tensor(np.zeros((1, 3, 32, 32), np.float32))
    with dn.no_grad():
        assert tuple(create_model("mobilenet_v1_cifar", width_mult=0.25).features(x).shape) == (1, 256, 2, 2)
        assert tuple(create_model("mobilenet_v2_cifar", width_mult=0.35).features(x).shape) == (1, 1280, 2, 2)
        small = create_model("xception_cifar")
        assert tuple(small.exit_flow(small.middle_flow(small.entry_flow(small.stem(x)))).shape) == (1, 512, 4, 4)


@pytest.mark.parametrize("model, shape, message", [
    (lambda: create_model("mobilenet_v1_cifar", in_chans=1, width_mult=0.25), (8, 3, 28, 28),
     r"MobileNetV1\(in_chans=1\): expected input \(N, 1, H, W\), got \(8, 3, 28, 28\)"),
    (lambda: create_model("mobilenet_v2_cifar", width_mult=0.35), (3, 32, 32),
     r"MobileNetV2\(in_chans=3\): expected input \(N, 3, H, W\), got \(3, 32, 32\) \(add the batch dim"),
    (lambda: create_model("xception_cifar", in_chans=1), (2, 3, 28, 28),
     r"Xception\(in_chans=1\): expected input \(N, 1, H, W\), got \(2, 3, 28, 28\)"),
])
def test_input_validation(model, shape, message):
    net = model()
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        net(dn.tensor(np.zeros(shape, np.float32)))
    assert all((net.state_dict()[k].numpy() == v).all() for k, v in before.items())  # BN stats untouched


def test_bad_configuration():
    with pytest.raises(ValueError, match=r"MobileNetV1: .*width_mult=0"):
        MobileNetV1(width_mult=0)
    with pytest.raises(ValueError, match=r"MobileNetV2: .*num_classes=0"):
        MobileNetV2(num_classes=0)
    with pytest.raises(ValueError, match=r"InvertedResidual\(16→24\): stride must be 1 or 2, got 3"):
        InvertedResidual(16, 24, 3, 6)
    with pytest.raises(ValueError, match=r"Xception: .*stem=\(32,\)"):
        Xception(stem=(32,))


# ----------------------------------------------------------------------------- training on MNIST (slow)
def _train_mnist(model, epochs, lr, n_train=2000, batch_size=64):
    from deepnum.data import DataLoader
    from deepnum.data.datasets import ArrayDataset, load_dataset
    from deepnum.train import evaluate, fit

    train, test = load_dataset("mnist", split="train"), load_dataset("mnist", split="test")
    idx = np.random.default_rng(0).permutation(len(train))[:n_train]
    loader = DataLoader(ArrayDataset(train.data[idx], train.targets[idx]), batch_size=batch_size, shuffle=True,
                        generator=dn.Generator().manual_seed(0))
    optimizer = dn.optim.Adam(model.parameters(), lr=lr)
    history = fit(model, loader, epochs=epochs, optimizer=optimizer, loss_fn=dn.nn.CrossEntropyLoss(), progress=False)
    result = evaluate(model, DataLoader(ArrayDataset(test.data, test.targets), batch_size=250))
    return history.history["loss"], result["accuracy"]


# Measured (seeded, 2,000 training images, the 1,000 test images): test accuracy 0.75 (v1, α = 0.5,
# 3 epochs), 0.85 (v2, α = 0.5, 3 epochs), 0.87 (xception_cifar, 2 epochs); chance is 0.10.
@pytest.mark.slow
def test_mobilenet_v1_trains_on_mnist():
    dn.manual_seed(0)
    losses, accuracy = _train_mnist(create_model("mobilenet_v1_cifar", in_chans=1, width_mult=0.5), epochs=3, lr=5e-3)
    assert losses[-1] < 0.5 * losses[0] and accuracy > 0.6


@pytest.mark.slow
def test_mobilenet_v2_trains_on_mnist():
    dn.manual_seed(0)
    losses, accuracy = _train_mnist(create_model("mobilenet_v2_cifar", in_chans=1, width_mult=0.5), epochs=3, lr=5e-3)
    assert losses[-1] < 0.5 * losses[0] and accuracy > 0.7


@pytest.mark.slow
def test_xception_trains_on_mnist():
    dn.manual_seed(0)
    losses, accuracy = _train_mnist(create_model("xception_cifar", in_chans=1), epochs=2, lr=3e-3)
    assert losses[-1] < 0.5 * losses[0] and accuracy > 0.7
