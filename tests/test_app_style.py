"""``deepnum style`` (deepnum/apps/style_transfer.py): the Gram matrix and total variation equal
PyTorch's computation and pass float64 gradcheck; the feature network loads a torchvision VGG-19
features state_dict and then equals torchvision's layers output for output; a short optimisation on
small images lowers the losses and moves the Gram matrices towards the style; the command writes its
files and rejects bad input. The slow test runs the documented default command and checks its targets."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import deepnum as dn
from deepnum.apps._style_features import VGGFeatures, load_image, sample_image
from deepnum.apps.style_transfer import gram_matrix, measure, stylize, total_variation
from deepnum.autograd import gradcheck
from deepnum.cli import main
from tests.zoo_helpers import import_torchvision


def test_gram_matrix_matches_torch_and_gradcheck():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((2, 5, 4, 3)).astype(np.float32)
    t = torch.from_numpy(f).reshape(2, 5, 12)
    expected = (t @ t.transpose(1, 2) / 12).numpy()
    np.testing.assert_allclose(gram_matrix(dn.tensor(f)).numpy(), expected, rtol=1e-5, atol=1e-6)
    x = dn.tensor(rng.standard_normal((1, 3, 3, 2)), requires_grad=True)
    assert gradcheck(lambda a: gram_matrix(a), x)
    with pytest.raises(ValueError, match=r"gram_matrix.*\(N, C, H, W\).*\(5, 4\)"):
        gram_matrix(dn.zeros(5, 4))


def test_total_variation_matches_torch_and_gradcheck():
    rng = np.random.default_rng(1)
    img = rng.random((1, 3, 5, 6)).astype(np.float32)
    t = torch.from_numpy(img)
    expected = ((t[:, :, 1:] - t[:, :, :-1]) ** 2).mean() + ((t[..., 1:] - t[..., :-1]) ** 2).mean()
    assert float(total_variation(dn.tensor(img)).item()) == pytest.approx(float(expected), rel=1e-6)
    x = dn.tensor(rng.random((1, 2, 3, 4)), requires_grad=True)
    assert gradcheck(total_variation, x)


def test_features_load_torchvision_vgg19_and_match_its_layers(tmp_path):
    import_torchvision()
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    tv = make_layers(cfgs["E"])[:21]   # up to relu4_1
    for i, layer in enumerate(tv):
        if isinstance(layer, torch.nn.MaxPool2d):
            tv[i] = torch.nn.AvgPool2d(2, 2)   # Gatys et al.'s average pooling, as VGGFeatures
    path = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in tv.state_dict().items()}, path)
    dn.manual_seed(0)
    net = VGGFeatures(width=1, padding_mode="zeros")
    net.load_vgg19(path)
    x = np.random.default_rng(2).random((1, 3, 24, 24)).astype(np.float32)
    out = net(dn.tensor(x), ["relu1_1", "relu4_1"])
    norm = (torch.from_numpy(x) - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        np.testing.assert_allclose(out["relu1_1"].numpy(), tv[:2](norm).numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(out["relu4_1"].numpy(), tv(norm).numpy(), rtol=1e-3, atol=1e-4)
    assert out["relu4_1"].shape == (1, 512, 3, 3)
    with pytest.raises(ValueError, match="width=1"):
        VGGFeatures(width=2).load_vgg19(path)
    torch.save({"features.0.weight": tv[0].weight}, tmp_path / "bad.pth")
    with pytest.raises(KeyError, match="missing"):
        net.load_vgg19(tmp_path / "bad.pth")


def test_features_shapes_and_errors():
    dn.manual_seed(0)
    net = VGGFeatures(width=8)
    assert all(not p.requires_grad for p in net.parameters())
    out = net(dn.rand(1, 3, 16, 24), ["relu1_1", "relu2_1", "relu3_1", "relu4_1"])
    assert [tuple(v.shape) for v in out.values()] == [(1, 8, 16, 24), (1, 16, 8, 12), (1, 32, 4, 6), (1, 64, 2, 3)]
    with pytest.raises(ValueError, match="unknown layer"):
        net(dn.rand(1, 3, 8, 8), ["relu5_1"])
    with pytest.raises(ValueError, match=r"VGGFeatures.*\(1, 1, 8, 8\)"):
        net(dn.rand(1, 1, 8, 8), ["relu1_1"])


def test_images_resize_to_height(tmp_path):
    china = sample_image("china.jpg", 32)
    assert china.shape == (3, 32, 48) and china.dtype == np.float32 and 0 <= china.min() < china.max() <= 1
    Image.fromarray(np.full((20, 10), 128, np.uint8)).save(tmp_path / "grey.png")
    grey = load_image(tmp_path / "grey.png", 8)
    assert grey.shape == (3, 8, 4)
    np.testing.assert_allclose(grey, 128 / 255, atol=1e-6)
    with pytest.raises(ValueError, match="sample image"):
        sample_image("nope.jpg", 8)


def test_stylize_moves_gram_matrices_towards_the_style():
    content, style = sample_image("china.jpg", 24), sample_image("flower.jpg", 24)
    dn.manual_seed(0)
    net = VGGFeatures(width=8)
    result = stylize(content, style, net, steps=25, lr=0.05, snapshot_steps=(0, 25))
    h = result.history
    assert len(h["total"]) == 25 and h["total"][-1] < 0.3 * h["total"][0]
    assert h["style"][-1] < 0.3 * h["style"][0] and h["content"][0] < 1e-6 < h["content"][-1]
    np.testing.assert_array_equal(result.snapshots[0], content)
    assert result.image.min() >= 0 and result.image.max() <= 1
    m = measure(net, content, style, result.image)
    assert m["style_distance_result"] < 0.3 * m["style_distance_content"]
    assert m["style_distance_result"] == pytest.approx(h["style"][-1], rel=0.2)


def test_command_writes_outputs_and_rejects_bad_files(tmp_path, capsys):
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "s.png")
    out = tmp_path / "run"
    code = main(["style", "--size", "16", "--steps", "10", "--width", "8", "--style", str(tmp_path / "s.png"),
                 "--output", str(out)])
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == 10 and m["total_loss_last"] < m["total_loss_first"]
    for name in ("content", "style", "result", "result_step0010", "panel", "losses"):
        with Image.open(out / f"{name}.png") as img:
            assert img.format == "PNG"
    assert "relative Gram distance" in capsys.readouterr().out
    assert main(["style", "--content", str(tmp_path / "missing.png"), "--output", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["style", "--steps", "0"]) == 2
    assert "--steps: must be a positive integer" in capsys.readouterr().err


@pytest.mark.slow
def test_default_command_transfers_the_style(tmp_path):
    """The documented run: 200 steps at 128 px; the result's Gram matrices are > 20× closer to the
    style photo's than the content photo's are, under the optimised network and an independent one."""
    assert main(["style", "--output", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["total_loss_last"] < 0.1 * m["total_loss_first"]
    assert m["style_distance_result"] < m["style_distance_content"] / 20
    assert m["independent_style_distance_result"] < m["independent_style_distance_content"] / 20
    assert m["content_distance_result"] < 0.6
