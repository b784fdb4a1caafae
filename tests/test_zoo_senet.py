"""deepnum.models.senet: the squeeze-and-excitation blocks (gate = σ(W₂ δ(W₁ mean(x))), output = x·gate,
parity with torchvision.ops.SqueezeExcitation and a torch.nn 1-D twin, options and errors) and the
SE-ResNets (parameter counts against the paper's formula, layout, SE placement, parity with torchvision's
ResNet carrying SE blocks on hooks, a slow MNIST training run)."""
import numpy as np
import pytest
import torch

import deepnum as dn
from bench.zoo import torch_cifar_resnet
from deepnum.models import create_model, model_info
from deepnum.models import resnet as R
from deepnum.models import senet as S
from tests.test_zoo_resnet import compare_training_step, train_on_mnist
from tests.zoo_helpers import (
    assert_same_eval_output,
    assert_same_state_dict_layout,
    count_parameters,
    import_torchvision,
)


@pytest.fixture(scope="module")
def tv():
    return import_torchvision()


def torch_se(tv, channels, squeeze, **kwargs):
    from torchvision.ops import SqueezeExcitation

    torch.manual_seed(0)
    return SqueezeExcitation(channels, squeeze, **kwargs)


class TorchSE1d(torch.nn.Module):
    """The 1-D SE block in torch.nn, with deepnum's keys."""

    def __init__(self, channels, squeeze):
        super().__init__()
        self.avgpool = torch.nn.AdaptiveAvgPool1d(1)
        self.fc1 = torch.nn.Conv1d(channels, squeeze, 1)
        self.fc2 = torch.nn.Conv1d(squeeze, channels, 1)
        self.activation = torch.nn.ReLU()
        self.scale_activation = torch.nn.Sigmoid()

    def forward(self, x):
        return x * self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))


def with_torch_se(model, reduction=16):
    """Give every residual block of a torch ResNet an SE block (torchvision.ops.SqueezeExcitation) on
    the output of its last BatchNorm, through a forward hook: that is SE-ResNet (SE before the
    addition), with the block's ``se`` registered last as in deepnum."""
    from torchvision.ops import SqueezeExcitation

    for block in [m for m in model.modules() if hasattr(m, "conv2") and hasattr(m, "bn2")]:
        last = getattr(block, "bn3", block.bn2)
        block.se = SqueezeExcitation(last.num_features, max(1, last.num_features // reduction))
        last.register_forward_hook(lambda module, args, out, se=block.se: se(out))
    return model


def se_params(channels, r=16, bias=True):
    """Parameters of one SE block on C channels: W₁ (C/r × C), W₂ (C × C/r) and their biases."""
    squeeze = max(1, channels // r)
    return 2 * channels * squeeze + (squeeze + channels if bias else 0)


# ----------------------------------------------------------------------------- the SE block
@pytest.mark.parametrize("dtype, rtol, atol", [("float64", 1e-10, 1e-12), ("float32", 1e-5, 1e-6)])
def test_se_block_matches_torchvision(tv, dtype, rtol, atol):
    theirs = torch_se(tv, 64, 4)
    ours = S.SqueezeExcitation(64, reduction=16)
    assert repr(ours) == repr(theirs)
    assert_same_state_dict_layout(ours, theirs)
    x = np.random.default_rng(0).standard_normal((3, 64, 5, 7))
    compare_training_step(ours, theirs, x, dtype, rtol=rtol, atol=atol)


def test_se_gate_is_sigmoid_of_the_excitation():
    dn.manual_seed(0)
    se = S.SqueezeExcitation(32, reduction=8)
    x = dn.randn(3, 32, 5, 7)
    gate = se.gate(x)
    assert tuple(gate.shape) == (3, 32, 1, 1) and gate.dtype == dn.float32
    g = gate.detach().numpy()
    assert np.all((g > 0) & (g < 1))
    np.testing.assert_array_equal(se(x).detach().numpy(), (x * gate).detach().numpy())
    # by hand: z = mean over H, W; s = σ(W₂ relu(W₁ z + b₁) + b₂)
    w1, b1 = se.fc1.weight.detach().numpy()[:, :, 0, 0], se.fc1.bias.detach().numpy()
    w2, b2 = se.fc2.weight.detach().numpy()[:, :, 0, 0], se.fc2.bias.detach().numpy()
    z = x.numpy().astype(np.float64).mean(axis=(2, 3))
    s = 1 / (1 + np.exp(-(np.maximum(z @ w1.T + b1, 0) @ w2.T + b2)))
    np.testing.assert_allclose(g[:, :, 0, 0], s, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(se(x).detach().numpy(), x.numpy() * s[:, :, None, None], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype, rtol, atol", [("float64", 1e-10, 1e-12), ("float32", 1e-5, 1e-6)])
def test_se1d_matches_torch_and_the_2d_block(dtype, rtol, atol):
    torch.manual_seed(0)
    theirs = TorchSE1d(24, 6)
    ours = S.SqueezeExcitation1d(24, reduction=4)
    assert repr(ours) == repr(theirs).replace("TorchSE1d", "SqueezeExcitation1d")
    assert_same_state_dict_layout(ours, theirs)
    x = np.random.default_rng(0).standard_normal((3, 24, 50))
    compare_training_step(ours, theirs, x, dtype, rtol=rtol, atol=atol)
    xd = dn.tensor(x.astype(dtype))
    gate = ours.gate(xd)
    assert tuple(gate.shape) == (3, 24, 1)
    np.testing.assert_array_equal(ours(xd).detach().numpy(), (xd * gate).detach().numpy())
    # the 1-D block is the 2-D one on (N, C, L, 1) with the same weights
    twin = S.SqueezeExcitation(24, 6).to(dtype=getattr(dn, dtype))
    twin.load_state_dict({k: v.detach().unsqueeze(-1) if v.ndim == 3 else v.detach()
                          for k, v in ours.state_dict().items()})
    np.testing.assert_allclose(twin(xd.unsqueeze(-1)).detach().numpy()[..., 0], ours(xd).detach().numpy(),
                               rtol=rtol, atol=atol)


def test_se_options(tv):
    assert S.SqueezeExcitation(256).squeeze_channels == 16
    assert S.SqueezeExcitation(8).squeeze_channels == 1  # at least one channel
    assert S.SqueezeExcitation(64, reduction=4).fc1.out_channels == 16
    assert S.SqueezeExcitation1d(64, 5).fc2.in_channels == 5  # explicit squeeze_channels wins
    assert count_parameters(S.SqueezeExcitation(64)) == se_params(64) == 580
    # MobileNetV3's variant: hard-sigmoid gate, same layout as torchvision's
    ours = S.SqueezeExcitation(40, 16, scale_activation=dn.nn.Hardsigmoid)
    theirs = torch_se(tv, 40, 16, scale_activation=torch.nn.Hardsigmoid)
    assert repr(ours) == repr(theirs)
    assert_same_eval_output(ours, theirs, (2, 40, 6, 6), rtol=1e-5, atol=1e-6)


def test_se_input_validation():
    se = S.SqueezeExcitation(64)
    with pytest.raises(ValueError, match=r"SqueezeExcitation\(64→4\): expected input \(N, 64, H, W\), got "
                                         r"\(2, 32, 4, 4\)"):
        se(dn.randn(2, 32, 4, 4))
    with pytest.raises(ValueError, match=r"SqueezeExcitation1d\(16→1\): expected input \(N, 16, L\), got \(2, 16\)"):
        S.SqueezeExcitation1d(16)(dn.randn(2, 16))
    with pytest.raises(ValueError, match="reduction must be >= 1"):
        S.SqueezeExcitation(16, reduction=0)
    with pytest.raises(ValueError, match="must be >= 1"):
        S.SqueezeExcitation(16, 0)


# ----------------------------------------------------------------------------- SE-ResNets
SE_COUNTS = {  # ResNet base + Σ over blocks of 2C²/r + C/r + C
    "se_resnet18": (11_689_512, 89_080), "se_resnet50": (25_557_032, 2_530_992),
    "se_resnext50_32x4d": (25_028_904, 2_530_992), "se_resnet20": (269_722, 2_373),
}
STAGE_CHANNELS = {  # (blocks, output channels) per stage
    "se_resnet18": [(2, 64), (2, 128), (2, 256), (2, 512)],
    "se_resnet50": [(3, 256), (4, 512), (6, 1024), (3, 2048)],
    "se_resnext50_32x4d": [(3, 256), (4, 512), (6, 1024), (3, 2048)],
    "se_resnet20": [(3, 16), (3, 32), (3, 64)],
}


@pytest.mark.parametrize("name", list(SE_COUNTS))
def test_se_resnet_counts(name):
    base, extra = SE_COUNTS[name]
    assert extra == sum(n * se_params(c) for n, c in STAGE_CHANNELS[name])
    model = create_model(name)
    assert count_parameters(model) == base + extra
    se_blocks = [m for m in model.modules() if isinstance(m, S.SqueezeExcitation)]
    assert len(se_blocks) == sum(n for n, _ in STAGE_CHANNELS[name])
    assert sum(count_parameters(m) for m in se_blocks) == extra
    info = model_info(name)
    assert info.family == "senet" and info.paper.startswith("Hu et al. 2018")
    assert info.small_input == (name == "se_resnet20")


def test_se_resnet50_matches_the_papers_28_09m():
    stages = STAGE_CHANNELS["se_resnet50"]
    bias_free = sum(n * 2 * c * c // 16 for n, c in stages)  # the paper's (2/r) Σ N_s C_s²
    assert bias_free == 2_514_944 and 25_557_032 + bias_free == 28_071_976  # 28.07M without biases
    total = 25_557_032 + sum(n * se_params(c) for n, c in stages)
    assert total == 28_088_024 and round(total / 1e6, 2) == 28.09  # with biases: the paper's figure


def test_deeper_se_resnet_counts():
    for name, base, stages in [("se_resnet34", 21_797_672, [(3, 64), (4, 128), (6, 256), (3, 512)]),
                               ("se_resnet101", 44_549_160, [(3, 256), (4, 512), (23, 1024), (3, 2048)]),
                               ("se_resnet110", 1_727_962, [(18, 16), (18, 32), (18, 64)])]:
        expected = base + sum(n * se_params(c) for n, c in stages)
        assert count_parameters(create_model(name)) == expected, name


def test_se_resnet_layout_is_torchvisions_plus_se(tv):
    for ours_name, theirs_name in [("se_resnet18", "resnet18"), ("se_resnet50", "resnet50")]:
        ours = create_model(ours_name)
        theirs = with_torch_se(getattr(tv.models, theirs_name)())
        assert_same_state_dict_layout(ours, theirs)
        plain = {k for k in ours.state_dict() if ".se." not in k}
        assert plain == set(getattr(tv.models, theirs_name)().state_dict())
    assert tuple(ours.layer4[2].se.fc1.weight.shape) == (128, 2048, 1, 1)


def test_se_resnet18_eval_output_equals_torchvision_with_se(tv):
    torch.manual_seed(0)
    theirs = with_torch_se(tv.models.resnet18())
    assert_same_eval_output(S.se_resnet18(), theirs, (1, 3, 64, 64))


def test_se_resnet20_training_step_matches_torch_twin():
    torch.manual_seed(0)
    theirs = with_torch_se(torch_cifar_resnet(3))
    ours = S.se_resnet20()
    assert_same_state_dict_layout(ours, theirs)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32))
    compare_training_step(ours, theirs, x, "float64", rtol=1e-7, atol=1e-9)


def test_se_sits_on_the_residual_branch_before_the_addition():
    """Gate ≡ 1 gives the plain bottleneck; gate ≡ 0 leaves relu(shortcut(x))."""
    dn.manual_seed(0)
    down = dn.nn.Sequential(R.conv1x1(32, 64), dn.nn.BatchNorm2d(64))
    se_block = S.SEBottleneck(32, 16, downsample=down, reduction=4).eval()
    plain = R.Bottleneck(32, 16, downsample=dn.nn.Sequential(R.conv1x1(32, 64), dn.nn.BatchNorm2d(64))).eval()
    plain.load_state_dict({k: v for k, v in se_block.state_dict().items() if not k.startswith("se.")})
    x = dn.randn(2, 32, 6, 6)
    with dn.no_grad():
        dn.nn.init.zeros_(se_block.se.fc2.weight)
        dn.nn.init.constant_(se_block.se.fc2.bias, 40.0)  # σ(40) = 1 in float32
        np.testing.assert_allclose(se_block(x).numpy(), plain(x).numpy(), rtol=1e-6, atol=1e-6)
        dn.nn.init.constant_(se_block.se.fc2.bias, -120.0)  # σ(−120) = 0
        np.testing.assert_allclose(se_block(x).numpy(), dn.nn.functional.relu(down(x)).numpy(), atol=1e-6)
    basic = S.SEBasicBlock(16, 16)
    assert isinstance(basic.se, S.SqueezeExcitation) and basic.se.squeeze_channels == 1


def test_se_resnet_small_input_and_options():
    model = S.se_resnet20(in_chans=1, num_classes=5)
    assert tuple(model(dn.randn(2, 1, 28, 28)).shape) == (2, 5)
    assert S.se_resnet20(reduction=4).layer3[0].se.squeeze_channels == 16
    z = S.se_resnet18(zero_init_residual=True)
    assert not z.layer2[1].bn2.weight.detach().numpy().any()
    with pytest.raises(ValueError, match=r"expected input \(N, 3, H, W\), got \(2, 1, 32, 32\)"):
        S.se_resnet18()(dn.randn(2, 1, 32, 32))


@pytest.mark.slow
def test_se_resnet20_learns_mnist():
    """Measured (seeds 0 and 1): loss 1.83 → 0.51 and 1.87 → 0.48, test accuracy 0.929 and 0.933;
    about 22 s of CPU with one BLAS thread."""
    dn.manual_seed(0)
    history, accuracy = train_on_mnist(S.se_resnet20(in_chans=1))
    loss = history.history["loss"]
    assert loss[-1] < 0.35 * loss[0]
    assert accuracy > 0.85  # chance is 0.1
