"""The classic CNNs of ``deepnum.models``: LeNet-5 in its 1998 form, AlexNet, VGG and Network in
Network. Parameter counts at ImageNet size against the issue's numbers, ``state_dict`` layouts and
eval outputs against torchvision (alexnet, vgg11, vgg16_bn), the models torchvision lacks against the
same network written in ``torch.nn``, input validation, initialisation, and (``slow``) short MNIST
training runs of each family's small variant."""
import math

import numpy as np
import pytest
import torch

import deepnum as dn
from deepnum.models import create_model, list_models, model_info
from deepnum.models.alexnet import AlexNet, LocalResponseNorm, alexnet, alexnet_small, local_response_norm
from deepnum.models.lenet import C3_TABLE, LeNet5, LeNet5Classic, ScaledTanh, TableConv2d, lenet5_classic
from deepnum.models.nin import NiN, nin_cifar, nin_mnist
from deepnum.models.vgg import VGG, vgg11_small
from tests.helpers import check_op
from tests.zoo_helpers import (
    assert_same_eval_output,
    assert_same_state_dict_layout,
    copy_weights,
    count_parameters,
    import_torchvision,
)

VGG_COUNTS = {
    "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736, "vgg16_bn": 138_365_992, "vgg19_bn": 143_678_248,
}
SMALL = ["lenet5_classic", "alexnet_small", "nin_cifar", "nin_mnist",
         *(f"vgg{d}{bn}_small" for d in (11, 13, 16, 19) for bn in ("", "_bn"))]


@pytest.fixture
def structure_only():
    """Build models without drawing their initial values (the CLI's shape-only construction: lazily
    committed zero pages, initialisers that do nothing). Counts and layouts do not depend on values,
    loading weights still works, and a real 130M-parameter VGG takes seconds to initialise."""
    from deepnum._cli_common import shape_only_construction

    with shape_only_construction():
        yield


def _tv_model(name, meta=False, **kwargs):
    tv = import_torchvision()
    torch.manual_seed(0)
    if meta:
        with torch.device("meta"):
            return getattr(tv.models, name)(**kwargs)
    return getattr(tv.models, name)(**kwargs)


# ----------------------------------------------------------------------------- registry
def test_registered_with_family_and_size():
    expected = {"lenet5", "lenet5_classic", "alexnet", "alexnet_small", "nin_cifar", "nin_mnist", *VGG_COUNTS,
                *(f"vgg{d}{bn}_small" for d in (11, 13, 16, 19) for bn in ("", "_bn"))}
    assert expected <= set(list_models())
    for name in expected:
        info = model_info(name)
        family = "lenet" if name.startswith("lenet") else "vgg" if name.startswith("vgg") else name.split("_")[0]
        assert info.family == family, name
        assert info.small_input == (name in SMALL or name == "lenet5"), name
        assert info.paper, name
    assert isinstance(create_model("lenet5"), LeNet5)  # the modern form the CLI uses is unchanged


@pytest.mark.parametrize("name", SMALL)
def test_small_variants_forward_shapes(name):
    dn.manual_seed(0)
    channels = 3 if name == "nin_cifar" else 1
    model = create_model(name).eval()
    for size in (28, 32):
        assert model(dn.rand(2, channels, size, size)).shape == (2, 10)
    rgb = create_model(name, num_classes=7, in_chans=3)
    out = rgb(dn.rand(3, 3, 32, 32))
    assert out.shape == (3, 7) and out.dtype == dn.float32
    assert model.input_shape == ((3, 32, 32) if name == "nin_cifar" else (1, 32, 32) if name == "lenet5_classic"
                                 else (1, 28, 28))
    assert rgb.input_shape == (3, 32, 32)


def test_imagenet_models_declare_224(structure_only):
    for name in ("alexnet", "vgg11", "vgg19_bn"):
        assert create_model(name, in_chans=1).input_shape == (1, 224, 224)


# ----------------------------------------------------------------------------- AlexNet
def test_alexnet_matches_torchvision(structure_only):
    reference = _tv_model("alexnet")
    model = alexnet()
    assert count_parameters(model) == count_parameters(reference) == 61_100_840
    assert_same_state_dict_layout(model, reference)
    assert repr(model) == repr(reference)
    assert_same_eval_output(model, reference, (1, 3, 224, 224), rtol=1e-4, atol=1e-5)


def _torch_alexnet_two_gpu(num_classes=1000):
    """The paper's two-GPU AlexNet written with torch.nn, keyed like deepnum's."""
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            lrn = dict(size=5, alpha=5e-4, beta=0.75, k=2.0)
            self.features = nn.Sequential(
                nn.Conv2d(3, 96, 11, 4, 2), nn.ReLU(), nn.LocalResponseNorm(**lrn), nn.MaxPool2d(3, 2),
                nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(), nn.LocalResponseNorm(**lrn),
                nn.MaxPool2d(3, 2), nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
                nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(),
                nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2))
            self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
            self.classifier = nn.Sequential(nn.Dropout(), nn.Linear(9216, 4096), nn.ReLU(), nn.Dropout(),
                                            nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, num_classes))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    return Net()


def test_alexnet_two_gpu_split():
    """groups=2: conv2/4/5 see half the maps each; 60,965,224 parameters (the module docstring)."""
    by_hand = ((3 * 121 * 96 + 96) + (48 * 25 * 256 + 256) + (256 * 9 * 384 + 384) + (192 * 9 * 384 + 384)
               + (192 * 9 * 256 + 256) + (9216 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000))
    torch.manual_seed(0)
    reference = _torch_alexnet_two_gpu()
    dn.manual_seed(0)
    model = alexnet(groups=2)
    assert count_parameters(model) == count_parameters(reference) == by_hand == 60_965_224
    assert_same_state_dict_layout(model, reference)
    assert model.features[4].weight.shape == (256, 48, 5, 5) and model.features[4].groups == 2
    assert "(2): LocalResponseNorm(5, alpha=0.0005, beta=0.75, k=2.0)" in repr(model)
    assert_same_eval_output(model, reference, (1, 3, 95, 95), rtol=1e-4, atol=1e-5)


def test_alexnet_small_count_and_layout():
    model = alexnet_small()
    w = (16, 48, 96, 64, 64)
    by_hand = ((25 * w[0] + w[0]) + (w[0] * 25 * w[1] + w[1]) + (w[1] * 9 * w[2] + w[2]) + (w[2] * 9 * w[3] + w[3])
               + (w[3] * 9 * w[4] + w[4]) + (w[4] * 9 * 512 + 512) + (512 * 512 + 512) + (512 * 10 + 10))
    assert count_parameters(model) == by_hand == 716_730
    assert list(model.state_dict())[:2] == ["features.0.weight", "features.0.bias"]
    assert [type(m).__name__ for m in model.classifier] == ["Dropout", "Linear", "ReLU", "Dropout", "Linear",
                                                            "ReLU", "Linear"]


def test_alexnet_input_validation():
    model = alexnet_small()
    with pytest.raises(ValueError) as info:
        model(dn.zeros(8, 3, 32, 32))
    assert str(info.value) == "AlexNetSmall: expected input (N, 1, H, W) with H, W >= 8, got (8, 3, 32, 32)"
    with pytest.raises(ValueError, match=r"add the batch dim"):
        model(dn.zeros(1, 28, 28))
    with pytest.raises(ValueError, match=r"groups must be 1 \(torchvision's single-GPU form\) or 2"):
        AlexNet(groups=4)
    with pytest.raises(ValueError, match=r"num_classes, in_chans, hidden >= 1, got widths=\(16, 48, 96, 64, 64\), "
                                         r"num_classes=0"):
        alexnet_small(num_classes=0)
    with pytest.raises(ValueError, match="AlexNet: num_classes and in_chans must be >= 1"):
        AlexNet(in_chans=0)


def test_alexnet_rejects_small_images(structure_only):
    model = alexnet()
    with pytest.raises(ValueError, match=r"AlexNet\(groups=1\): expected input \(N, 3, H, W\) with H, W >= 63, "
                                         r"got \(1, 3, 62, 62\)"):
        model(dn.zeros(1, 3, 62, 62))


@pytest.mark.parametrize("size", [1, 2, 4, 5])
def test_local_response_norm_matches_torch(size):
    check_op(lambda x: local_response_norm(x, size, alpha=0.3, beta=0.75, k=2.0), (2, 6, 3, 4),
             torch_fn=lambda x: torch.nn.functional.local_response_norm(x, size, alpha=0.3, beta=0.75, k=2.0))
    check_op(lambda x: local_response_norm(x, size, alpha=0.5), (2, 7, 5), gradcheck=False,
             torch_fn=lambda x: torch.nn.functional.local_response_norm(x, size, alpha=0.5))


def test_local_response_norm_module():
    layer = LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)
    assert repr(layer) == repr(torch.nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0))
    with pytest.raises(ValueError, match=r"LocalResponseNorm\(5, .*\): expected input \(N, C, \.\.\.\), got \(4,\)"):
        layer(dn.zeros(4))
    with pytest.raises(ValueError, match="size must be >= 1"):
        LocalResponseNorm(0)


# ----------------------------------------------------------------------------- VGG
def test_vgg11_matches_torchvision(structure_only):
    reference = _tv_model("vgg11")
    model = create_model("vgg11")
    assert count_parameters(model) == count_parameters(reference) == VGG_COUNTS["vgg11"]
    assert_same_state_dict_layout(model, reference)
    assert repr(model) == repr(reference)
    assert_same_eval_output(model, reference, (1, 3, 32, 32), rtol=1e-4, atol=1e-6)


def test_vgg16_bn_matches_torchvision(structure_only):
    reference = _tv_model("vgg16_bn")
    model = create_model("vgg16_bn")
    assert count_parameters(model) == count_parameters(reference) == VGG_COUNTS["vgg16_bn"]
    assert_same_state_dict_layout(model, reference)
    assert repr(model) == repr(reference)
    with torch.no_grad():  # non-trivial running statistics, so eval-mode BatchNorm is really exercised
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
    assert_same_eval_output(model, reference, (1, 3, 32, 32), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg19_bn"])
def test_vgg_counts_and_layouts(name, structure_only):
    model = create_model(name)
    reference = _tv_model(name, meta=True)
    assert count_parameters(model) == count_parameters(reference) == VGG_COUNTS[name]
    assert_same_state_dict_layout(model, reference)
    assert repr(model) == repr(reference)


def test_vgg_count_by_hand():
    """VGG-16 (configuration D): 13 convolutions and 3 linear layers."""
    convs = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
             (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
    by_hand = sum(9 * a * b + b for a, b in convs) + (25088 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)
    assert by_hand == VGG_COUNTS["vgg16"]
    assert by_hand + 2 * sum(b for _, b in convs) == VGG_COUNTS["vgg16_bn"]  # γ and β per BN channel


def test_vgg_init_statistics():
    """torchvision's _init_weights: conv N(0, 2/fan_out), BN (1, 0), linear N(0, 0.01²), zero biases
    (on a small VGG: the code path is the full-size one, which takes seconds to draw 130M numbers)."""
    dn.manual_seed(0)
    model = VGG((64, "M", 128, 128, "M"), num_classes=1000, in_chans=3, batch_norm=True, hidden=512, pool_size=2)
    conv = model.features[7].weight.detach().numpy()  # Conv2d(128, 128, 3): fan_out 1,152
    assert abs(conv.std() - math.sqrt(2 / (128 * 9))) < 0.03 * math.sqrt(2 / (128 * 9))
    assert abs(conv.mean()) < 0.003
    fc = model.classifier[0].weight.detach().numpy()
    assert abs(fc.std() - 0.01) < 3e-4
    norms = [m for m in model.features if isinstance(m, dn.nn.BatchNorm2d)]
    assert len(norms) == 3 and all((m.weight.detach().numpy() == 1).all() for m in norms)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            assert not p.detach().numpy().any(), name


def test_vgg_small_layout():
    model = vgg11_small()
    assert count_parameters(model) == 578_122
    widths = [m.out_channels for m in model.features if isinstance(m, dn.nn.Conv2d)]
    assert widths == [16, 32, 64, 64, 128, 128, 128, 128]
    assert all(m.ceil_mode for m in model.features if isinstance(m, dn.nn.MaxPool2d))
    assert [type(m).__name__ for m in model.classifier] == ["Dropout", "Linear"]
    assert model.classifier[1].in_features == 128


def test_vgg_input_validation(structure_only):
    with pytest.raises(ValueError) as info:
        create_model("vgg11")(dn.zeros(1, 3, 16, 16))
    assert str(info.value) == "VGG(batch_norm=False): expected input (N, 3, H, W) with H, W >= 32, got (1, 3, 16, 16)"
    with pytest.raises(ValueError, match=r"VGG\(batch_norm=True\): expected input \(N, 1, H, W\)"):
        create_model("vgg11_bn_small")(dn.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match="config must list positive filter counts"):
        VGG((64, "X"))
    with pytest.raises(ValueError, match="hidden and pool_size must be >= 1"):
        VGG((8, "M"), hidden=0)


# ----------------------------------------------------------------------------- Network in Network
def test_nin_cifar_count_matches_the_release():
    """The released CIFAR-10 model's layer table (nin.py docstring): 966,986 parameters."""
    layers = [(3, 192, 5), (192, 160, 1), (160, 96, 1), (96, 192, 5), (192, 192, 1), (192, 192, 1),
              (192, 192, 3), (192, 192, 1), (192, 10, 1)]
    by_hand = sum(a * b * k * k + b for a, b, k in layers)
    model = nin_cifar()
    assert count_parameters(model) == by_hand == 966_986
    convs = [m for m in model.modules() if isinstance(m, dn.nn.Conv2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size[0]) for m in convs] == layers
    assert count_parameters(nin_mnist()) == 27_602


def _torch_nin(in_chans, widths, num_classes, relu_logits):
    nn = torch.nn

    def mlpconv(c_in, c, k, last_relu=True):
        tail = [nn.ReLU()] if last_relu else []
        return nn.Sequential(nn.Conv2d(c_in, c[0], k, padding=k // 2), nn.ReLU(), nn.Conv2d(c[0], c[1], 1),
                             nn.ReLU(), nn.Conv2d(c[1], c[2], 1), *tail)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                mlpconv(in_chans, widths[0], 5), nn.MaxPool2d(3, 2, ceil_mode=True), nn.Dropout(),
                mlpconv(widths[0][2], widths[1], 5), nn.AvgPool2d(3, 2, ceil_mode=True), nn.Dropout(),
                mlpconv(widths[1][2], (*widths[2], num_classes), 3, relu_logits))
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

        def forward(self, x):
            return self.head(self.features(x))

    return Net()


@pytest.mark.parametrize("variant", ["cifar", "mnist"])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-9), (np.float32, 2e-4)])
def test_nin_matches_torch(variant, dtype, tol):
    """Outputs, input gradient and every parameter gradient against the same network in torch.nn
    (eval mode: dropout off; ceil-mode pooling with partial windows at 31 px)."""
    if variant == "cifar":
        model, args, shape = nin_cifar(), (3, ((192, 160, 96), (192, 192, 192), (192, 192)), 10, True), (2, 3, 31, 31)
    else:
        model, args, shape = nin_mnist(), (1, ((32, 24, 16), (32, 32, 32), (32, 32)), 10, False), (2, 1, 28, 28)
    torch.manual_seed(0)
    reference = _torch_nin(*args).to(getattr(torch, np.dtype(dtype).name)).eval()
    for m in reference.modules():  # keep the ReLU'd class maps alive so gradients are non-trivial
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            torch.nn.init.uniform_(m.bias, 0.0, 0.1)
    model = model.to(dn.float64 if dtype == np.float64 else dn.float32).eval()
    assert list(model.state_dict()) == list(reference.state_dict())
    copy_weights(reference, model)
    x_np = np.random.default_rng(0).random(shape).astype(dtype)
    xt, x = torch.tensor(x_np, requires_grad=True), dn.tensor(x_np, requires_grad=True)
    out_t, out = reference(xt), model(x)
    np.testing.assert_allclose(out.detach().numpy(), out_t.detach().numpy(), rtol=tol, atol=tol)
    g = np.random.default_rng(1).standard_normal(out_t.shape).astype(dtype)
    (out_t * torch.tensor(g)).sum().backward()
    (out * dn.tensor(g)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=tol, atol=tol)
    for (name, p), (_, pt) in zip(model.named_parameters(), reference.named_parameters(), strict=True):
        assert p.grad.dtype == p.dtype, name
        np.testing.assert_allclose(p.grad.numpy(), pt.grad.numpy(), rtol=tol, atol=tol, err_msg=name)


def test_nin_init_and_validation():
    dn.manual_seed(0)
    model = nin_cifar()
    conv = model.features[3][0].weight.detach().numpy()  # 192×96×5×5: fan_in 2,400
    assert abs(conv.std() - math.sqrt(2 / 2400)) < 0.02 * math.sqrt(2 / 2400)
    assert all(not m.bias.detach().numpy().any() for m in model.modules() if isinstance(m, dn.nn.Conv2d))
    assert isinstance(model.features[6][-1], dn.nn.ReLU) and not isinstance(nin_mnist().features[6][-1], dn.nn.ReLU)
    with pytest.raises(ValueError) as info:
        model(dn.zeros(2, 3, 3, 3))
    assert str(info.value) == "NiN: expected input (N, 3, H, W) with H, W >= 4, got (2, 3, 3, 3)"
    assert model.eval()(dn.rand(1, 3, 4, 4)).shape == (1, 10)
    with pytest.raises(ValueError, match="odd kernel sizes"):
        NiN(kernel_sizes=(5, 4, 3))


# ----------------------------------------------------------------------------- LeNet-5, 1998 form
def test_lenet5_classic_parameter_count_by_hand():
    c1, s2, c5, s4 = 6 * 25 + 6, 6 + 6, 16 * 5 * 5 * 120 + 120, 16 + 16
    c3_used = sum(len(row) * 25 + 1 for row in C3_TABLE)
    f6, out = 120 * 84 + 84, 84 * 10 + 10
    assert c3_used == 1516 and c1 + s2 + c3_used + s4 + c5 + f6 == 60_000  # the paper's count up to F6
    model = lenet5_classic()
    assert model.used_parameters() == 60_000 + out
    assert count_parameters(model) == 60_000 + out + (16 * 6 * 25 + 16 - c3_used) == 61_750
    dense = lenet5_classic(connection_table=False)
    assert count_parameters(dense) == dense.used_parameters() == 61_750


def test_lenet5_classic_connection_table():
    assert C3_TABLE[0] == (0, 1, 2) and C3_TABLE[5] == (5, 0, 1) and C3_TABLE[6] == (0, 1, 2, 3)
    assert C3_TABLE[11] == (5, 0, 1, 2) and C3_TABLE[14] == (0, 2, 3, 5) and C3_TABLE[15] == tuple(range(6))
    dn.manual_seed(0)
    model = lenet5_classic()
    c3 = model.features[5]
    assert isinstance(c3, TableConv2d) and "features.5.mask" not in model.state_dict()
    mask = np.zeros((16, 6), dtype=bool)
    for o, row in enumerate(C3_TABLE):
        mask[o, list(row)] = True
    assert (c3.mask.numpy()[:, :, 0, 0] == mask).all()
    assert (c3.weight.detach().numpy()[~mask] == 0).all() and (c3.weight.detach().numpy()[mask] != 0).all()
    model(dn.rand(4, 1, 32, 32)).sum().backward()
    assert (c3.weight.grad.numpy()[~mask] == 0).all() and (c3.weight.grad.numpy()[mask] != 0).any()
    with pytest.raises(ValueError, match=r"TableConv2d\(6→2\): table must list"):
        TableConv2d(6, 2, 5, [(0,), (6,)])


def test_lenet5_classic_paper_init():
    """U(±2.4/F_i) per unit; S2/S4 coefficients of the mean U(±2.4), their biases U(±0.6)."""
    dn.manual_seed(0)
    model = lenet5_classic()
    f, c = model.features, model.classifier
    bounds = {"features.0": 2.4 / 25, "features.10": 2.4 / 400, "classifier.1": 2.4 / 120, "classifier.3": 2.4 / 84}
    for prefix, bound in bounds.items():
        for p in model.get_submodule(prefix).parameters():
            values = np.abs(p.detach().numpy())
            assert values.max() <= bound and values.max() > 0.8 * bound, prefix
    for sub in (f[3], f[8]):
        assert np.abs(sub.weight.detach().numpy()).max() <= 2.4 and np.abs(sub.bias.detach().numpy()).max() <= 0.6
    c3 = np.abs(f[5].weight.detach().numpy()).reshape(16, -1).max(axis=1)
    fan = np.array([25 * len(row) for row in C3_TABLE])
    assert (c3 <= 2.4 / fan).all() and (c3 > 0.5 * 2.4 / fan).all()
    assert isinstance(c[2], ScaledTanh) and repr(c[2]) == "ScaledTanh(A=1.7159, S=0.6667)"


def _torch_lenet5_classic(mask):
    nn = torch.nn

    class Scaled(nn.Module):
        def forward(self, x):
            return 1.7159 * torch.tanh(x * (2 / 3))

    class Masked(nn.Conv2d):
        def forward(self, x):
            return nn.functional.conv2d(x, self.weight * mask, self.bias)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 6, 5), Scaled(), nn.AvgPool2d(2), nn.Conv2d(6, 6, 1, groups=6), Scaled(),
                Masked(6, 16, 5), Scaled(), nn.AvgPool2d(2), nn.Conv2d(16, 16, 1, groups=16), Scaled(),
                nn.Conv2d(16, 120, 5), Scaled())
            self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(120, 84), Scaled(), nn.Linear(84, 10))

        def forward(self, x):
            return self.classifier(self.features(x))

    return Net()


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 2e-5)])
def test_lenet5_classic_matches_torch(dtype, tol):
    dn.manual_seed(0)
    model = lenet5_classic().to(dn.float64 if dtype == np.float64 else dn.float32)
    mask = torch.tensor(model.features[5].mask.numpy())
    reference = _torch_lenet5_classic(mask).to(getattr(torch, np.dtype(dtype).name))
    reference.load_state_dict({k: torch.tensor(v.numpy()) for k, v in model.state_dict().items()})
    x_np = np.random.default_rng(0).random((3, 1, 28, 28)).astype(dtype)
    xt, x = torch.tensor(x_np, requires_grad=True), dn.tensor(x_np, requires_grad=True)
    out_t = reference(torch.nn.functional.pad(xt, (2, 2, 2, 2)))
    out = model(x)  # 28×28 is zero-padded to 32×32 inside
    np.testing.assert_allclose(out.detach().numpy(), out_t.detach().numpy(), rtol=tol, atol=tol)
    g = np.random.default_rng(1).standard_normal(out_t.shape).astype(dtype)
    (out_t * torch.tensor(g)).sum().backward()
    (out * dn.tensor(g)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=tol, atol=tol)
    for (name, p), (_, pt) in zip(model.named_parameters(), reference.named_parameters(), strict=True):
        np.testing.assert_allclose(p.grad.numpy(), pt.grad.numpy(), rtol=tol, atol=tol, err_msg=name)


def test_lenet5_classic_input_and_repr():
    model = lenet5_classic()
    assert model.input_shape == (1, 32, 32)
    with pytest.raises(ValueError) as info:
        model(dn.zeros(8, 1, 30, 30))
    assert str(info.value) == ("LeNet5Classic: expected input (N, 1, 32, 32) or (N, 1, 28, 28) (zero-padded to 32), "
                               "got (8, 1, 30, 30)")
    with pytest.raises(ValueError, match="num_classes and in_channels must be >= 1"):
        LeNet5Classic(in_channels=0)
    text = repr(model)
    assert text.startswith("LeNet5Classic(\n  num_classes=10, in_channels=1, connection_table=True\n")
    assert "(5): TableConv2d(6, 16, kernel_size=(5, 5), stride=(1, 1), table=16 maps)" in text
    assert "(3): Conv2d(6, 6, kernel_size=(1, 1), stride=(1, 1), groups=6)" in text


# ----------------------------------------------------------------------------- MNIST training (slow)
def _train_mnist(name, *, epochs, lr, batch_size=32, n_train=2000, pad_to_32=False):
    """Adam on a fixed 2,000-image subset of the bundled MNIST; returns (epoch losses, test accuracy
    on the 1,000 test images)."""
    from deepnum.data import DataLoader, TensorDataset
    from deepnum.data.datasets import load_dataset
    from deepnum.train import evaluate, fit

    train, test = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    idx = np.random.default_rng(0).permutation(len(train))[:n_train]
    x, y, xt = train.data[idx], train.targets[idx], test.data
    if pad_to_32:
        x, xt = (np.pad(a, ((0, 0), (0, 0), (2, 2), (2, 2))) for a in (x, xt))
    dn.manual_seed(0)
    model = create_model(name)
    loader = DataLoader(TensorDataset(dn.tensor(x), dn.tensor(y)), batch_size=batch_size, shuffle=True,
                        generator=dn.Generator().manual_seed(0))
    history = fit(model, loader, epochs=epochs, optimizer=dn.optim.Adam(model.parameters(), lr=lr),
                  loss_fn=dn.nn.CrossEntropyLoss(), progress=False)
    result = evaluate(model, DataLoader(TensorDataset(dn.tensor(xt), dn.tensor(test.targets)), batch_size=500))
    return history.history["loss"], result["accuracy"]


@pytest.mark.slow
def test_lenet5_classic_trains_on_mnist():
    """Measured: loss 1.51 → 0.33, test accuracy 89 % (3 epochs, 32×32 padded input)."""
    losses, accuracy = _train_mnist("lenet5_classic", epochs=3, lr=2e-3, pad_to_32=True)
    assert losses[-1] < 0.5 * losses[0] and accuracy >= 0.8


@pytest.mark.slow
def test_alexnet_small_trains_on_mnist():
    """Measured: loss 2.07 → 1.00, test accuracy 77 % (2 epochs)."""
    losses, accuracy = _train_mnist("alexnet_small", epochs=2, lr=1e-3)
    assert losses[-1] < 0.7 * losses[0] and accuracy >= 0.6


@pytest.mark.slow
def test_vgg11_bn_small_trains_on_mnist():
    """Measured: loss 1.18 → 0.23, test accuracy 94 % (2 epochs)."""
    losses, accuracy = _train_mnist("vgg11_bn_small", epochs=2, lr=1e-3)
    assert losses[-1] < 0.5 * losses[0] and accuracy >= 0.8


@pytest.mark.slow
def test_nin_mnist_trains_on_mnist():
    """Measured: loss 2.30 → 0.87, test accuracy 83 % (3 epochs, batch 16)."""
    losses, accuracy = _train_mnist("nin_mnist", epochs=3, lr=2e-3, batch_size=16)
    assert losses[-1] < 0.6 * losses[0] and accuracy >= 0.6
