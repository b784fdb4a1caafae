"""deepnum.models.resnet: ImageNet ResNets/ResNeXt against torchvision (parameter counts, state_dict
layout, repr, eval outputs, training-mode gradients, initialisation, zero_init_residual), CIFAR ResNets
(counts worked out by hand, the option-A shortcut, parity with the same network in torch.nn), input
validation, and a slow MNIST training run."""
import numpy as np
import pytest
import torch

import deepnum as dn
from bench.zoo import torch_cifar_resnet
from deepnum.models import create_model, list_models, model_info
from deepnum.models import resnet as R
from tests.zoo_helpers import (
    assert_same_eval_output,
    assert_same_state_dict_layout,
    copy_weights,
    count_parameters,
    import_torchvision,
)

IMAGENET_COUNTS = {
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "resnet101": 44_549_160,
    "resnet152": 60_192_808, "resnext50_32x4d": 25_028_904,
}


@pytest.fixture(scope="module")
def tv():
    return import_torchvision()


def torch_model(tv, name, **kwargs):
    torch.manual_seed(0)
    return getattr(tv.models, name)(**kwargs)


def compare_training_step(ours, theirs, x, dtype, rtol, atol):
    """Same weights, train mode, loss = Σ out·w: outputs, the input gradient, every parameter gradient
    and the updated BatchNorm running statistics must agree."""
    copy_weights(theirs, ours)
    ours.zero_grad()
    theirs.zero_grad()
    ours.to(dtype=getattr(dn, dtype)).train()
    theirs.to(getattr(torch, dtype)).train()
    x = x.astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    xd = dn.tensor(x, requires_grad=True)
    out_t, out_d = theirs(xt), ours(xd)
    w = np.random.default_rng(1).standard_normal(tuple(out_t.shape)).astype(dtype)
    (out_t * torch.tensor(w)).sum().backward()
    (out_d * dn.tensor(w)).sum().backward()
    assert out_d.dtype == getattr(dn, dtype)
    np.testing.assert_allclose(out_d.detach().numpy(), out_t.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(xd.grad.numpy(), xt.grad.numpy(), rtol=rtol, atol=atol)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad.dtype == getattr(dn, dtype), name
        np.testing.assert_allclose(p.grad.numpy(), theirs_params[name].grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=name)
    theirs_state = theirs.state_dict()
    for name, b in ours.named_buffers():
        np.testing.assert_allclose(b.numpy(), theirs_state[name].numpy(), rtol=rtol, atol=atol, err_msg=name)


# ----------------------------------------------------------------------------- ImageNet ResNets
@pytest.mark.parametrize("name", list(IMAGENET_COUNTS))
def test_imagenet_counts_and_layout_match_torchvision(tv, name):
    ours = create_model(name)
    theirs = torch_model(tv, name)
    assert count_parameters(ours) == IMAGENET_COUNTS[name] == count_parameters(theirs)
    assert_same_state_dict_layout(ours, theirs)
    assert repr(ours) == repr(theirs)
    info = model_info(name)
    assert info.family == "resnet" and not info.small_input
    assert info.paper.startswith(("He et al. 2016", "Xie et al. 2017"))


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnext50_32x4d"])
def test_eval_output_equals_torchvision(tv, name):
    dn.manual_seed(0)
    assert_same_eval_output(create_model(name), torch_model(tv, name), (1, 3, 64, 64))


def test_resnet18_training_gradients_match_torchvision(tv):
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64))
    compare_training_step(R.resnet18(num_classes=5), torch_model(tv, "resnet18", num_classes=5), x, "float64",
                          rtol=1e-7, atol=1e-9)


def test_resnext_block_training_gradients_match_torchvision(tv):
    """A grouped-convolution bottleneck with a projection shortcut, in float64 and float32."""
    from torchvision.models.resnet import Bottleneck as TBottleneck

    def build(lib_block, conv, nn):
        down = nn.Sequential(conv(64, 256, kernel_size=1, stride=2, bias=False), nn.BatchNorm2d(256))
        return lib_block(64, 64, stride=2, downsample=down, groups=8, base_width=16)

    torch.manual_seed(0)
    theirs = build(TBottleneck, torch.nn.Conv2d, torch.nn)
    ours = build(R.Bottleneck, dn.nn.Conv2d, dn.nn)
    assert_same_state_dict_layout(ours, theirs)
    assert ours.conv2.groups == 8 and tuple(ours.conv2.weight.shape) == (128, 16, 3, 3)
    x = np.random.default_rng(0).standard_normal((2, 64, 8, 8))
    compare_training_step(ours, theirs, x, "float64", rtol=1e-7, atol=1e-9)
    compare_training_step(ours, theirs, x, "float32", rtol=1e-3, atol=1e-4)


def test_default_initialisation_follows_torchvision():
    dn.manual_seed(0)
    model = R.resnet18()
    w = model.layer3[0].conv1.weight.detach().numpy()  # (256, 128, 3, 3): He normal, fan_out = 256·9
    assert w.std() == pytest.approx(np.sqrt(2.0 / (256 * 9)), rel=0.02) and abs(w.mean()) < 2e-4
    stem = model.conv1.weight.detach().numpy()  # fan_out = 64·49
    assert stem.std() == pytest.approx(np.sqrt(2.0 / (64 * 49)), rel=0.05)
    bn = model.layer1[0].bn1
    assert np.all(bn.weight.detach().numpy() == 1) and np.all(bn.bias.detach().numpy() == 0)
    bound = 1 / np.sqrt(512)  # Linear keeps PyTorch's default U(-1/√fan_in, 1/√fan_in)
    fc = model.fc.weight.detach().numpy()
    assert np.abs(fc).max() <= bound and np.abs(fc).max() > 0.95 * bound
    assert fc.std() == pytest.approx(bound / np.sqrt(3), rel=0.02)


@pytest.mark.parametrize("name, last", [("resnet18", "bn2"), ("resnet50", "bn3")])
def test_zero_init_residual(tv, name, last):
    ours = create_model(name, zero_init_residual=True)
    theirs = torch_model(tv, name, zero_init_residual=True)
    zeros_ours = {k for k, v in ours.state_dict().items() if k.endswith(".weight") and not v.detach().numpy().any()}
    zeros_theirs = {k for k, v in theirs.state_dict().items() if k.endswith(".weight") and not v.detach().numpy().any()}
    assert zeros_ours == zeros_theirs and len(zeros_ours) == sum(len(getattr(ours, f"layer{i}")) for i in (1, 2, 3, 4))
    assert all(k.endswith(f"{last}.weight") for k in zeros_ours)
    # each block starts as relu(shortcut(x)): on a non-negative input the first block is the identity
    block = ours.layer1[1]
    x = dn.rand(1, block.conv1.in_channels, 4, 4)
    with dn.no_grad():
        np.testing.assert_allclose(block.eval()(x).numpy(), x.numpy())


def test_options_num_classes_in_chans_and_dilation(tv):
    model = R.resnet18(num_classes=7, in_chans=1)
    assert model.input_shape == (1, 224, 224)
    assert tuple(model.conv1.weight.shape) == (64, 1, 7, 7) and model.fc.out_features == 7
    assert tuple(model(dn.randn(2, 1, 32, 32)).shape) == (2, 7)
    assert tuple(model.forward_features(dn.randn(1, 1, 64, 64)).shape) == (1, 512, 2, 2)
    dilated = R.resnet50(replace_stride_with_dilation=[False, True, True])
    theirs = torch_model(tv, "resnet50", replace_stride_with_dilation=[False, True, True])
    assert repr(dilated) == repr(theirs)
    assert tuple(dilated.forward_features(dn.randn(1, 3, 16, 16)).shape) == (1, 2048, 2, 2)


def test_input_validation():
    model = R.resnet18()
    with pytest.raises(ValueError, match=r"ResNet\(BasicBlock \[2, 2, 2, 2\].*expected input \(N, 3, H, W\), "
                                         r"got \(2, 1, 32, 32\)"):
        model(dn.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"got \(3, 32, 32\) \(add the batch dim"):
        model(dn.randn(3, 32, 32))
    with pytest.raises(ValueError, match="layers=\\[2, 2\\]"):
        R.ResNet(R.BasicBlock, [2, 2])
    with pytest.raises(ValueError, match="only groups=1 and base_width=64"):
        R.ResNet(R.BasicBlock, [2, 2, 2, 2], groups=2)
    with pytest.raises(ValueError, match="replace_stride_with_dilation should be None or a 3-element list"):
        R.resnet50(replace_stride_with_dilation=[True])


# ----------------------------------------------------------------------------- CIFAR ResNets
def cifar_count_by_hand(n, num_classes=10):
    """He et al. 2016 §4.2, option A: conv3×3 weights have no bias; each BN has γ and β."""
    conv = lambda cin, cout: 9 * cin * cout  # noqa: E731
    bn = lambda c: 2 * c  # noqa: E731
    stem = conv(3, 16) + bn(16)                                      # 432 + 32
    stage1 = n * 2 * (conv(16, 16) + bn(16))                          # n · 4,672
    stage2 = conv(16, 32) + conv(32, 32) + 2 * bn(32) + (n - 1) * 2 * (conv(32, 32) + bn(32))
    stage3 = conv(32, 64) + conv(64, 64) + 2 * bn(64) + (n - 1) * 2 * (conv(64, 64) + bn(64))
    fc = 64 * num_classes + num_classes
    return stem + stage1 + stage2 + stage3 + fc


@pytest.mark.parametrize("name, n, paper", [("resnet20", 3, 0.27e6), ("resnet32", 5, 0.46e6),
                                            ("resnet44", 7, 0.66e6), ("resnet56", 9, 0.85e6),
                                            ("resnet110", 18, 1.7e6)])
def test_cifar_counts(name, n, paper):
    model = create_model(name)
    count = count_parameters(model)
    assert count == cifar_count_by_hand(n) == 97_216 * n - 21_926
    assert round(count / 1e6, 2 if paper < 1e6 else 1) == pytest.approx(paper / 1e6)
    assert len(model.layer1) == len(model.layer2) == len(model.layer3) == n
    assert 6 * n + 2 == sum(1 for m in model.modules() if isinstance(m, dn.nn.Conv2d | dn.nn.Linear))
    info = model_info(name)
    assert info.small_input and info.family == "resnet"


def test_resnet20_exact_numbers():
    model = R.resnet20()
    assert count_parameters(model) == 269_722
    running = sum(b.numel() for k, b in model.state_dict().items() if "running" in k)
    assert running == 2 * (16 + 6 * 16 + 6 * 32 + 6 * 64) == 1_376  # buffers, not parameters
    projections = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)  # option B's 1×1 conv + BN in stages 2 and 3
    assert count_parameters(R.resnet20(shortcut="B")) == 269_722 + projections == 272_474
    assert count_parameters(R.resnet20(num_classes=100)) == 269_722 + 90 * 65


def test_shortcut_a_is_subsampling_plus_zero_channels():
    sc = R.ShortcutA(16, 32, stride=2)
    assert list(sc.parameters()) == [] and repr(sc) == "ShortcutA(16, 32, stride=2)"
    x = dn.randn(2, 16, 6, 6, requires_grad=True)
    y = sc(x)
    assert tuple(y.shape) == (2, 32, 3, 3)
    np.testing.assert_array_equal(y.detach().numpy()[:, :16], x.detach().numpy()[:, :, ::2, ::2])
    assert not y.detach().numpy()[:, 16:].any()
    y.sum().backward()
    expected = np.zeros((2, 16, 6, 6), np.float32)
    expected[:, :, ::2, ::2] = 1
    np.testing.assert_array_equal(x.grad.numpy(), expected)
    with pytest.raises(ValueError, match=r"ShortcutA\(16, 32, stride=2\): expected input \(N, 16, H, W\)"):
        sc(dn.randn(2, 8, 6, 6))
    with pytest.raises(ValueError, match="out_planes >= in_planes"):
        R.ShortcutA(32, 16)
    layer = R.resnet20().layer2[0]
    assert isinstance(layer.downsample, R.ShortcutA) and R.resnet20().layer2[1].downsample is None


def test_resnet20_matches_torch_twin():
    dn.manual_seed(0)
    ours, theirs = R.resnet20(), torch_cifar_resnet(3)
    assert_same_state_dict_layout(ours, theirs)
    assert_same_eval_output(ours, theirs, (2, 3, 32, 32))
    x = np.random.default_rng(2).standard_normal((2, 3, 32, 32))
    compare_training_step(ours, theirs, x, "float64", rtol=1e-7, atol=1e-9)
    compare_training_step(R.resnet20(), torch_cifar_resnet(3), x, "float32", rtol=1e-3, atol=1e-4)


def test_cifar_options_and_shapes():
    model = R.resnet20(in_chans=1)
    assert model.input_shape == (1, 28, 28) and R.resnet20().input_shape == (3, 32, 32)
    assert tuple(model(dn.randn(2, 1, 28, 28)).shape) == (2, 10)
    assert tuple(model.forward_features(dn.randn(2, 1, 32, 32)).shape) == (2, 64, 8, 8)
    b = R.resnet20(shortcut="B")
    assert isinstance(b.layer3[0].downsample, dn.nn.Sequential)
    z = R.resnet20(zero_init_residual=True)
    assert all(not blk.bn2.weight.detach().numpy().any() for layer in (z.layer1, z.layer2, z.layer3) for blk in layer)
    with pytest.raises(ValueError, match=r"CifarResNet\(BasicBlock \[3, 3, 3\].*expected input \(N, 3, H, W\)"):
        R.resnet20()(dn.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="shortcut must be 'A'"):
        R.resnet20(shortcut="C")
    assert {"resnet20", "resnet110"} <= set(list_models("resnet*"))


# ----------------------------------------------------------------------------- training
def mnist_32(split, n=None, seed=0):
    """MNIST images zero-padded from 28×28 to 32×32 (the paper's LeNet/CIFAR input size)."""
    from deepnum.data.datasets import load_dataset

    ds = load_dataset("mnist", split)
    x, y = np.asarray(ds.data), np.asarray(ds.targets)
    if n is not None:
        idx = np.random.default_rng(seed).permutation(len(y))[:n]
        x, y = x[idx], y[idx]
    return np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2))).astype(np.float32), y.astype(np.int64)


def train_on_mnist(model, epochs=2, n=2000, max_lr=0.1):
    """SGD (momentum 0.9) with a one-cycle learning rate on a 2,000-image subset, batches of 32;
    returns the History and the accuracy on the 1,000 test images."""
    from deepnum.data import DataLoader, TensorDataset
    from deepnum.optim.lr_scheduler import OneCycleLR
    from deepnum.train import evaluate, fit

    x, y = mnist_32("train", n)
    xt, yt = mnist_32("test")
    loader = DataLoader(TensorDataset(dn.tensor(x), dn.tensor(y)), batch_size=32, shuffle=True,
                        generator=dn.Generator().manual_seed(0))
    test = DataLoader(TensorDataset(dn.tensor(xt), dn.tensor(yt)), batch_size=250)
    loss_fn = dn.nn.CrossEntropyLoss()
    opt = dn.optim.SGD(model.parameters(), lr=max_lr, momentum=0.9, weight_decay=1e-4)
    sched = OneCycleLR(opt, max_lr=max_lr, total_steps=epochs * len(loader))
    history = fit(model, loader, epochs=epochs, optimizer=opt, loss_fn=loss_fn, scheduler=sched,
                  scheduler_interval="step", progress=False)
    return history, evaluate(model, test, loss_fn)["accuracy"]


@pytest.mark.slow
def test_resnet20_learns_mnist():
    """Measured (seeds 0 and 1): loss 1.89 → 0.46 and 1.80 → 0.42, test accuracy 0.931 and 0.933;
    about 21 s of CPU with one BLAS thread."""
    dn.manual_seed(0)
    history, accuracy = train_on_mnist(R.resnet20(in_chans=1))
    loss = history.history["loss"]
    assert loss[-1] < 0.35 * loss[0]
    assert accuracy > 0.85  # chance is 0.1
