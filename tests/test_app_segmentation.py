"""deepnum segment: convolutionalization, the FCN's upsampling, IoU, and the app on tiny data."""
import argparse

import numpy as np
import pytest

import deepnum as dn
import deepnum.nn.functional as F
from deepnum.apps._segmentation_fcn import FCN, DigitClassifier, bilinear_kernel, convolutionalize
from deepnum.apps.segmentation import confusion_matrix, iou_from_confusion, predict_masks
from deepnum.models import create_model


@pytest.mark.parametrize("make", [DigitClassifier, lambda: create_model("lenet5")])
def test_convolutionalize_gives_identical_outputs(make):
    dn.manual_seed(0)
    model = make().eval()
    conv = convolutionalize(model).eval()
    assert not any(isinstance(m, dn.nn.Linear) for m in conv.modules())
    x = dn.rand(5, 1, 28, 28)
    with dn.no_grad():
        dense, mapped = model(x).numpy(), conv(x).numpy()
    assert mapped.shape == (5, 10, 1, 1)
    np.testing.assert_allclose(mapped[:, :, 0, 0], dense, rtol=1e-5, atol=1e-6)
    # in float64 the two are the same sums in another order: equal to rounding
    model64, conv64 = model.double(), conv.double()
    x64 = x.double()
    with dn.no_grad():
        np.testing.assert_allclose(conv64(x64).numpy()[:, :, 0, 0], model64(x64).numpy(), rtol=1e-12, atol=1e-13)


def test_convolutionalized_score_map_slides_the_classifier():
    dn.manual_seed(1)
    model = DigitClassifier().eval()
    conv = convolutionalize(model).eval()
    canvas = dn.rand(2, 1, 64, 64)
    with dn.no_grad():
        score = conv(canvas).numpy()
        feats = model.features(canvas)  # (2, 64, 8, 8): stride 8
        assert score.shape == (2, 10, 6, 6)
        # map cell (i, j) is the dense head applied to the 3x3 feature window at (i, j), i.e. the
        # classifier slid over the canvas with stride 8 (its padded convolutions see the canvas
        # around the window, so this is not the classifier on a cropped 28x28 window)
        for i, j in ((0, 0), (2, 3), (5, 1)):
            head = model.classifier(feats[:, :, i:i + 3, j:j + 3]).numpy()
            np.testing.assert_allclose(score[:, :, i, j], head, rtol=1e-5, atol=1e-6)


def test_convolutionalize_rejects_a_head_without_flatten():
    model = DigitClassifier()
    model.classifier = dn.nn.Sequential(dn.nn.Linear(576, 10))
    with pytest.raises(ValueError, match="convolutionalize: model.classifier must start with Flatten"):
        convolutionalize(model)


def test_bilinear_transposed_conv_matches_interpolate():
    up = dn.nn.ConvTranspose2d(3, 3, 4, stride=2, padding=1, bias=False)
    with dn.no_grad():
        up.weight.copy_(dn.tensor(bilinear_kernel(3, 4)))
        x = dn.rand(2, 3, 6, 6)
        got = up(x).numpy()
        ref = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False).numpy()
    assert got.shape == (2, 3, 12, 12)
    np.testing.assert_allclose(got[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1], atol=1e-6)  # borders: zero padding


def test_fcn_shapes_and_transfer_from_classifier():
    dn.manual_seed(0)
    clf, fcn = DigitClassifier(), FCN(11).load_classifier(DigitClassifier())
    fcn.load_classifier(clf)
    np.testing.assert_array_equal(fcn.conv2[0].weight.detach().numpy(), clf.features[3][0].weight.detach().numpy())
    fc6 = fcn.fc6[0].weight.detach().numpy().reshape(128, -1)
    np.testing.assert_array_equal(fc6, clf.classifier[1].weight.detach().numpy())
    with dn.no_grad():
        assert fcn(dn.rand(2, 1, 64, 48)).shape == (2, 11, 64, 48)
    with pytest.raises(ValueError, match="FCN: input must be"):
        fcn(dn.rand(1, 1, 60, 64))


def test_iou_hand_checked():
    target = np.array([[0, 0, 1, 1], [0, 2, 2, 0]])
    pred = np.array([[0, 1, 1, 1], [0, 2, 0, 0]])
    conf = confusion_matrix(pred, target, 3)
    assert conf.sum() == 8 and conf[0, 0] == 3 and conf[0, 1] == 1 and conf[2, 0] == 1
    # class 0: TP 3, FP 1 (a 2), FN 1 -> 3/5; class 1: TP 2, FP 1 -> 2/3; class 2: TP 1, FN 1 -> 1/2
    np.testing.assert_allclose(iou_from_confusion(conf), [3 / 5, 2 / 3, 1 / 2])
    assert np.isnan(iou_from_confusion(confusion_matrix(pred, target, 4))[3])
    with pytest.raises(ValueError, match="confusion_matrix: pred"):
        confusion_matrix(pred[:1], target)


def test_segment_command_runs_on_tiny_data(tmp_path):
    from deepnum.apps import segmentation

    parser = argparse.ArgumentParser()
    segmentation.add_arguments(parser)
    args = parser.parse_args(["--train-canvases", "48", "--test-canvases", "8", "--epochs", "1",
                              "--pretrain-epochs", "0", "--output", str(tmp_path)])
    res = segmentation.segment(args)
    assert res["convolutionalization"]["max_abs_difference"] < 1e-4
    assert res["convolutionalization"]["score_map_shape"] == [2, 10, 6, 6]
    assert len(res["per_class_iou"]) == 11 and 0 <= res["mean_iou"] <= 1
    assert res["per_class_iou"]["background"] > 0.5  # most pixels are background
    for name in ("segmentation.png", "fcn.safetensors", "results.json"):
        assert (tmp_path / name).stat().st_size > 100
    model = FCN()
    model.load_state_dict(dn.load(str(tmp_path / "fcn.safetensors")))
    assert predict_masks(model, np.zeros((2, 1, 16, 16), np.float32)).shape == (2, 16, 16)


@pytest.mark.slow
def test_segment_reaches_mean_iou_target(tmp_path):
    from deepnum.apps import segmentation

    parser = argparse.ArgumentParser()
    segmentation.add_arguments(parser)
    res = segmentation.segment(parser.parse_args(["--output", str(tmp_path)]))
    assert res["mean_iou"] >= 0.80
