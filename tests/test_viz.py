"""``deepnum.viz``: every plot writes a valid PNG of the documented pixel size (read back with
Pillow), atomically; filters and feature maps are the layer's own numbers (channel counts, values
through a forward hook, modes and hooks restored); attention rollout equals hand computations on
hand-made attention arrays; bad layer names, non-ViT models and bad arguments raise clear errors."""
import sys

import numpy as np
import pytest
from PIL import Image

import deepnum as dn
from deepnum import viz
from deepnum.models import create_model
from deepnum.viz import TITLE_PX, attention_rollout, figure_size, grid_shape


def png_size(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        return image.size


@pytest.fixture
def lenet():
    dn.manual_seed(0)
    return create_model("lenet5")


def digit():
    from deepnum.data.datasets import load_dataset

    return load_dataset("mnist", "test")[0][0]


# ----------------------------------------------------------------------------- layout
def test_grid_and_figure_sizes():
    assert [grid_shape(n) for n in (1, 2, 3, 4, 5, 6, 10, 16, 64)] == [
        (1, 1), (1, 2), (2, 2), (2, 2), (2, 3), (2, 3), (3, 4), (4, 4), (8, 8)]
    assert figure_size(2, 3, 64) == (192, 128 + TITLE_PX)
    with pytest.raises(ValueError, match="at least one tile"):
        grid_shape(0)


def test_normalise_each_map_to_its_own_range():
    maps = np.stack([np.arange(4, dtype=np.float32).reshape(2, 2), np.full((2, 2), 7, np.float32),
                     -np.arange(4, dtype=np.float32).reshape(2, 2) * 100])
    out = viz._normalise(maps, (1, 2))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], [[0, 1 / 3], [2 / 3, 1]])
    np.testing.assert_array_equal(out[1], np.full((2, 2), 0.5))        # constant map: mid-grey
    np.testing.assert_allclose(out[2], [[1, 2 / 3], [1 / 3, 0]])


# ----------------------------------------------------------------------------- filters
def test_plot_filters_of_the_first_conv(lenet, tmp_path):
    path = tmp_path / "filters.png"
    weight = viz.plot_filters(lenet, path)
    np.testing.assert_array_equal(weight, lenet.features[0].weight.detach().numpy())
    assert weight.shape == (6, 1, 5, 5) and weight.dtype == np.float32
    assert png_size(path) == figure_size(2, 3, 64) == (192, 168)
    assert [p.name for p in tmp_path.iterdir()] == ["filters.png"]     # no temporary file left behind


def test_plot_filters_of_a_given_conv_rgb_and_channels(tmp_path):
    dn.manual_seed(0)
    conv = dn.nn.Conv2d(3, 10, 3)
    weight = viz.plot_filters(conv, tmp_path / "rgb.png", tile=32)
    assert weight.shape == (10, 3, 3, 3) and png_size(tmp_path / "rgb.png") == (4 * 32, 3 * 32 + TITLE_PX)
    weight = viz.plot_filters(dn.nn.Conv2d(5, 20, 3), tmp_path / "ch.png", channel=4, max_filters=4)
    assert weight.shape == (4, 5, 3, 3) and png_size(tmp_path / "ch.png") == (128, 128 + TITLE_PX)
    with pytest.raises(ValueError, match="channel 5 is out of range for Conv2d with 5 input channels"):
        viz.plot_filters(dn.nn.Conv2d(5, 20, 3), tmp_path / "bad.png", channel=5)
    with pytest.raises(ValueError, match="Sequential has no Conv2d layer"):
        viz.plot_filters(dn.nn.Sequential(dn.nn.Linear(2, 2)), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="tile must be an integer number of pixels >= 8"):
        viz.plot_filters(conv, tmp_path / "bad.png", tile=4)
    assert not (tmp_path / "bad.png").exists()


def test_plot_replaces_an_existing_file_atomically(lenet, tmp_path):
    path = tmp_path / "f.png"
    path.write_bytes(b"old")
    viz.plot_filters(lenet, path)
    assert png_size(path) == (192, 168) and sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]


# ----------------------------------------------------------------------------- feature maps
def test_feature_maps_have_the_layers_channels_and_values(lenet, tmp_path):
    x = digit()
    lenet.train()
    act = viz.plot_feature_maps(lenet, "features.0", x, tmp_path / "f0.png")
    assert act.shape == (lenet.features[0].out_channels, 28, 28) == (6, 28, 28) and act.dtype == np.float32
    with dn.no_grad():
        np.testing.assert_allclose(act, lenet.features[0](x.unsqueeze(0)).numpy()[0], rtol=1e-6)
    assert png_size(tmp_path / "f0.png") == figure_size(2, 3, 64)
    act = viz.plot_feature_maps(lenet, "features.4", x.unsqueeze(0), tmp_path / "f4.png", max_maps=4, tile=48)
    assert act.shape == (16, 10, 10) and act.min() >= 0                 # a ReLU's output, all 16 channels
    assert png_size(tmp_path / "f4.png") == (2 * 48, 2 * 48 + TITLE_PX)   # 4 of 16 maps drawn: a 2×2 grid
    assert lenet.training and all(m.training for m in lenet.modules())   # modes restored
    assert all(not m._forward_hooks for m in lenet.modules())           # hooks removed


def test_feature_maps_of_a_3d_cnn_are_depth_projections(tmp_path):
    dn.manual_seed(0)
    model = create_model("voxnet_small")
    volume = np.random.default_rng(0).random((1, 16, 16, 16)).astype(np.float32)
    act = viz.plot_feature_maps(model, "features.0", volume, tmp_path / "v.png")
    assert act.shape == (8, 16, 16, 16)
    assert png_size(tmp_path / "v.png") == figure_size(3, 3, 64)


def test_feature_maps_of_a_model_without_input_shape(tmp_path):
    dn.manual_seed(0)
    model = dn.nn.Sequential(dn.nn.Conv2d(3, 5, 3), dn.nn.ReLU())
    image = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    act = viz.plot_feature_maps(model, "0", image, tmp_path / "a.png", tile=32)          # (C, H, W): one image
    assert act.shape == (5, 6, 6) and png_size(tmp_path / "a.png") == (3 * 32, 2 * 32 + TITLE_PX)
    np.testing.assert_array_equal(viz.plot_feature_maps(model, "0", image[None], tmp_path / "b.png"), act)


def test_feature_maps_errors(lenet, tmp_path):
    x = digit()
    with pytest.raises(ValueError) as info:
        viz.plot_feature_maps(lenet, "features.9", x, tmp_path / "x.png")
    assert "LeNet5 has no layer named 'features.9'; layers: features, features.0, features.1" in str(info.value)
    assert "classifier.5" in str(info.value)
    with pytest.raises(ValueError, match=r"layer 'classifier.5' outputs \(1, 10\); feature maps need"):
        viz.plot_feature_maps(lenet, "classifier.5", x, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"expected one input \(C, ...\) or a batch of one, got \(2, 1, 28, 28\)"):
        viz.plot_feature_maps(lenet, "features.0", dn.zeros(2, 1, 28, 28), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    assert all(not m._forward_hooks for m in lenet.modules())


# ----------------------------------------------------------------------------- attention rollout
HEAD0 = [[0.5, 0.25, 0.25], [0.2, 0.6, 0.2], [0.1, 0.1, 0.8]]
HEAD1 = [[0.1, 0.6, 0.3], [0.4, 0.4, 0.2], [0.3, 0.3, 0.4]]


def heads(*matrices, dtype=np.float32):
    return np.array([matrices], dtype=dtype)          # (1, heads, T, T)


def test_rollout_of_uniform_attention_closed_form():
    """Uniform attention U (every entry 1/T): one layer gives (U + I)/2, so each patch gets 1/(2T);
    two layers give ((U + I)/2)² = (3U + I)/4 (U² = U), so each patch gets 3/(4T)."""
    t = 5
    uniform = np.full((2, 3, t, t), 1 / t, dtype=np.float32)
    one = attention_rollout([uniform])
    assert one.shape == (2, 2, 2) and one.dtype == np.float32
    np.testing.assert_allclose(one, np.full((2, 2, 2), 1 / (2 * t)), rtol=1e-6)
    np.testing.assert_allclose(attention_rollout([uniform, uniform]), np.full((2, 2, 2), 3 / (4 * t)), rtol=1e-6)
    identity = np.broadcast_to(np.eye(t, dtype=np.float32), (1, 2, t, t))
    np.testing.assert_array_equal(attention_rollout([identity] * 3), np.zeros((1, 2, 2)))


def test_rollout_hand_computed_head_fusions():
    """T = 3 (class token + 2 patches, grid 1×2). mean of the heads + I, row 0: [1.3, 0.425, 0.275]
    / 2; max: [1.5, 0.6, 0.3] / 2.4; min: [1.1, 0.25, 0.25] / 1.6."""
    att = heads(HEAD0, HEAD1)
    np.testing.assert_allclose(attention_rollout([att], grid_size=(1, 2)), [[[0.2125, 0.1375]]], rtol=1e-6)
    np.testing.assert_allclose(attention_rollout([att], "max", grid_size=(1, 2)), [[[0.25, 0.125]]], rtol=1e-6)
    np.testing.assert_allclose(attention_rollout([att], "min", grid_size=(1, 2)), [[[0.15625, 0.15625]]], rtol=1e-6)
    # two layers: row 0 of Â·Â with Â = [[.65, .2125, .1375], [.15, .75, .1], [.1, .1, .8]]
    np.testing.assert_allclose(attention_rollout([att, att], grid_size=(1, 2)), [[[0.31125, 0.220625]]], rtol=1e-6)


def test_rollout_multiplies_later_layers_on_the_left():
    """R = Â₂ Â₁: with Â₁ as above and layer 2 uniform (Â₂ = (U + I)/2, U = 1/3), row 0 of R is
    (column sums of Â₁)/6 + Â₁[0]/2 = [1.0625/6 + 0.10625, 1.0375/6 + 0.06875]; the other order
    would give 1/6 + Â₁[0]/2."""
    first, second = heads(HEAD0, HEAD1), np.full((1, 2, 3, 3), 1 / 3, dtype=np.float32)
    expected = [1.0625 / 6 + 0.10625, 1.0375 / 6 + 0.06875]
    np.testing.assert_allclose(attention_rollout([first, second], grid_size=(1, 2))[0, 0], expected, rtol=1e-6)
    reverse = [1 / 6 + 0.10625, 1 / 6 + 0.06875]
    np.testing.assert_allclose(attention_rollout([second, first], grid_size=(1, 2))[0, 0], reverse, rtol=1e-6)


def test_rollout_discard_ratio_spares_the_class_token():
    """One head M; discard_ratio 0.12 → int(9·0.12) = 1 entry zeroed: the smallest, M[0, 0] = 0.01,
    is the class token's attention to itself and is spared, so M[2, 0] = 0.15 goes. Then
    Â rows: [1.01, .49, .5]/2, [.2, 1.35, .45]/2, [0, .25, 1.6]/1.85; row 0 of Â·Â by hand."""
    m = [[0.01, 0.49, 0.5], [0.2, 0.35, 0.45], [0.15, 0.25, 0.6]]
    att = heads(m, dtype=np.float64)
    np.testing.assert_allclose(attention_rollout([att], discard_ratio=0.12, grid_size=(1, 2)), [[[0.245, 0.25]]])
    r0, r1, r2 = np.array([1.01, 0.49, 0.5]) / 2, np.array([0.2, 1.35, 0.45]) / 2, np.array([0, 0.25, 1.6]) / 1.85
    expected = r0[0] * r0 + r0[1] * r1 + r0[2] * r2
    out = attention_rollout([att, att], discard_ratio=0.12, grid_size=(1, 2))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out[0, 0], expected[1:], rtol=1e-12)
    np.testing.assert_allclose(expected[1:], [0.322884, 0.397591], atol=1e-6)   # the numbers worked out on paper
    assert np.array_equal(np.array(att), heads(m, dtype=np.float64))             # the input is not modified


def test_rollout_accepts_tensors_and_batches():
    att = np.stack([heads(HEAD0, HEAD1)[0], np.full((2, 3, 3), 1 / 3, np.float32)])   # (2, 2, 3, 3)
    out = attention_rollout([dn.tensor(att)], grid_size=(1, 2))
    np.testing.assert_allclose(out[:, 0], [[0.2125, 0.1375], [1 / 6, 1 / 6]], rtol=1e-6)


def test_rollout_errors():
    att = heads(HEAD0, HEAD1)
    with pytest.raises(ValueError, match="head_fusion must be one of mean, max, min, got 'median'"):
        attention_rollout([att], "median")
    with pytest.raises(ValueError, match=r"discard_ratio must be in \[0, 1\), got 1.0"):
        attention_rollout([att], discard_ratio=1.0)
    with pytest.raises(ValueError, match="got none"):
        attention_rollout([])
    with pytest.raises(ValueError, match=r"block 0 has \(1, 2, 3, 3\), block 1 has \(1, 2, 4, 4\)"):
        attention_rollout([att, np.zeros((1, 2, 4, 4), np.float32)])
    with pytest.raises(ValueError, match=r"3 tokens minus 1 prefix token\(s\) = 2 patches do not fill a 1×1 grid"):
        attention_rollout([att])


# ----------------------------------------------------------------------------- ViT overlay
def test_plot_attention_rollout_on_a_vit(tmp_path):
    dn.manual_seed(0)
    model = create_model("vit_mini_patch7_28")
    x = digit()
    rollout = viz.plot_attention_rollout(model, x, tmp_path / "att.png", tile=128)
    assert png_size(tmp_path / "att.png") == figure_size(1, 2, 128) == (256, 128 + TITLE_PX)
    model.eval()
    model.record_attention(True)
    with dn.no_grad():
        model(x.unsqueeze(0))
    maps = model.attention_maps()
    model.record_attention(False)
    assert len(maps) == len(model.encoder.layers) and tuple(maps[0].shape)[2:] == (17, 17)
    np.testing.assert_allclose(rollout, attention_rollout(maps, grid_size=model.grid_size)[0], rtol=1e-6)
    assert rollout.shape == (4, 4) and rollout.min() >= 0 and rollout.sum() < 1
    assert not any(getattr(block, "record_attention", False) for block in model.encoder.layers)
    viz.plot_attention_rollout(model, x, tmp_path / "max.png", head_fusion="max", discard_ratio=0.5)
    assert png_size(tmp_path / "max.png") == (512, 256 + TITLE_PX)


def test_attention_rollout_refuses_other_models(lenet, tmp_path):
    with pytest.raises(ValueError, match="attention rollout needs a Vision Transformer .* LeNet5 has none"):
        viz.plot_attention_rollout(lenet, digit(), tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()


def test_missing_matplotlib_names_the_install_command(lenet, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install matplotlib"):
        viz.plot_filters(lenet, tmp_path / "f.png")
