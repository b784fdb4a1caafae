"""deepnum detect: VOC mAP on hand-checked cases, YOLO target encoding/decoding, the loss, and the app."""
import argparse

import numpy as np
import pytest

import deepnum as dn
from deepnum.apps._detection_metrics import average_precision, match_detections, mean_average_precision
from deepnum.apps._detection_yolo import TinyYOLO, decode, encode_targets, yolo_loss
from deepnum.apps.canvas import make_canvases

BOX = np.array([[0.0, 0.0, 10.0, 10.0]])


def test_average_precision_all_point_interpolation():
    # TP, FP, TP with 2 ground truths: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1;
    # interpolated precision 1 on (0, 1/2] and 2/3 on (1/2, 1]: AP = 1/2 + 1/3
    assert average_precision(np.array([1, 0, 1]), 2) == pytest.approx(0.5 + 1 / 3)
    assert average_precision(np.array([0, 1]), 1) == pytest.approx(0.5)
    assert average_precision(np.array([1, 1]), 4) == pytest.approx(0.5)  # recall stops at 1/2
    # the precision envelope: FP, TP, FP, TP with 2 GT -> p = 0, 1/2, 1/3, 1/2; AP = 1/2 * 1/2 + 1/2 * 1/2
    assert average_precision(np.array([0, 1, 0, 1]), 2) == pytest.approx(0.5)
    assert average_precision(np.array([]), 3) == 0.0
    assert np.isnan(average_precision(np.array([1]), 0))


def test_match_detections_voc_rules():
    gt = np.array([[0, 0, 10, 10], [12, 0, 22, 10]], float)
    dets = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [12, 0, 22, 10], [30, 30, 40, 40]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    # by score: far box (FP), exact first box (TP), shifted duplicate of the first (IoU 0.82, FP), second (TP)
    np.testing.assert_array_equal(match_detections(dets, scores, gt), [0, 1, 0, 1])
    # IoU exactly 0.5 counts (VOC: >= threshold); 1/3 does not
    half = np.array([[0, 0, 10, 20]], float)  # IoU with BOX = 100 / 200
    assert match_detections(half, np.array([1.0]), BOX)[0] == 1
    assert match_detections(np.array([[5, 0, 15, 10]], float), np.array([1.0]), BOX)[0] == 0


def test_mean_average_precision_over_images_and_classes():
    gt_boxes = [BOX, np.array([[20, 20, 30, 30], [0, 0, 10, 10]], float)]
    gt_labels = [np.array([3]), np.array([3, 5])]
    pred_boxes = [np.array([[40, 40, 50, 50], [0, 0, 10, 10]], float), np.array([[20, 20, 30, 30], [0, 0, 9, 10]])]
    pred_scores = [np.array([0.9, 0.6]), np.array([0.8, 0.7])]
    pred_labels = [np.array([3, 3]), np.array([3, 5])]
    m, ap = mean_average_precision(pred_boxes, pred_scores, pred_labels, gt_boxes, gt_labels, num_classes=7)
    # class 3 over both images by score: 0.9 FP, 0.8 TP, 0.6 TP (2 GT): precision 0, 1/2, 2/3 at recall
    # 0, 1/2, 1; the envelope lifts the precision at recall 1/2 to 2/3: AP = 1/2 * 2/3 + 1/2 * 2/3
    assert ap[3] == pytest.approx(2 / 3)
    assert ap[5] == pytest.approx(1.0)  # IoU 0.9 with its box
    assert np.isnan(ap[[0, 1, 2, 4, 6]]).all()
    assert m == pytest.approx((2 / 3 + 1.0) / 2)
    with pytest.raises(ValueError, match="same length"):
        mean_average_precision(pred_boxes[:1], pred_scores, pred_labels, gt_boxes, gt_labels, 7)


def _canvases(count: int = 16):
    rng = np.random.default_rng(0)
    images = np.zeros((10, 28, 28), np.float32)
    for c in range(10):
        images[c, 5:20 + c // 2, 6:14 + c] = rng.uniform(0.6, 1.0, (15 + c // 2, 8 + c))
    return make_canvases(images, np.arange(10), count, size=64, digits=(1, 3), seed=1)


def _perfect_output(target: np.ndarray) -> np.ndarray:
    t = target
    off = np.clip(t[:, 1:3], 1e-6, 1 - 1e-6)
    out = np.zeros((len(t), 15, t.shape[2], t.shape[3]), np.float32)
    out[:, 0:2] = np.log(off / (1 - off))
    out[:, 2:4] = t[:, 3:5]
    out[:, 4] = np.where(t[:, 0] > 0, 12, -12)
    for c in range(10):
        out[:, 5 + c] = np.where(t[:, 5] == c, 12, -12)
    return out


def test_encode_decode_round_trip_gives_map_one():
    cs = _canvases()
    target, dropped = encode_targets(cs.boxes, cs.classes, 64)
    assert target.shape == (16, 6, 8, 8) and dropped == 0
    assert target[:, 0].sum() == sum(len(c) for c in cs.classes)
    dets = decode(_perfect_output(target), 64)
    for (boxes, _, labels), gt, cls in zip(dets, cs.boxes, cs.classes):
        order = np.argsort(boxes[:, 0])
        np.testing.assert_allclose(boxes[order], gt[np.argsort(gt[:, 0])], atol=1e-3)
        np.testing.assert_array_equal(labels[order], cls[np.argsort(gt[:, 0])])
    m, _ = mean_average_precision(*zip(*dets), cs.boxes, cs.classes, num_classes=10)
    assert m == pytest.approx(1.0)


def test_encode_targets_keeps_larger_box_of_a_shared_cell():
    boxes = [np.array([[1, 1, 7, 7], [0, 0, 15, 15]], np.float32)]  # both centres in cell (0, 0)
    target, dropped = encode_targets(boxes, [np.array([4, 9])], 16)
    assert dropped == 1 and target[0, 5, 0, 0] == 9 and target[0, 3, 0, 0] == pytest.approx(np.sqrt(15 / 16))


def test_yolo_loss_value_and_gradient():
    cs = _canvases(4)
    target, _ = encode_targets(cs.boxes, cs.classes, 64)
    perfect = dn.tensor(_perfect_output(target))
    assert yolo_loss(perfect, dn.tensor(target)).item() < 1e-3
    dn.manual_seed(0)
    model = TinyYOLO()
    out = model(dn.tensor(cs.images))
    loss = yolo_loss(out, dn.tensor(target))
    loss.backward()
    assert loss.item() > 1.0 and all(p.grad is not None for p in model.parameters())
    with pytest.raises(ValueError, match="yolo_loss"):
        yolo_loss(out, dn.tensor(target[:, :5]))
    with pytest.raises(ValueError, match="TinyYOLO: input"):
        model(dn.zeros(1, 1, 60, 64))


def test_detect_command_runs_on_tiny_data(tmp_path):
    from deepnum.apps import detection

    parser = argparse.ArgumentParser()
    detection.add_arguments(parser)
    args = parser.parse_args(["--train-canvases", "64", "--test-canvases", "16", "--epochs", "1",
                              "--pretrain-epochs", "0", "--output", str(tmp_path)])
    res = detection.detect(args)
    assert 0.0 <= res["map_50"] <= 1.0 and len(res["per_class_ap_50"]) == 10
    assert (tmp_path / "detections.png").stat().st_size > 1000 and (tmp_path / "results.json").exists()
    assert np.isfinite(res["train_loss"][0])


@pytest.mark.slow
def test_detect_reaches_map_target(tmp_path):
    from deepnum.apps import detection

    parser = argparse.ArgumentParser()
    detection.add_arguments(parser)
    res = detection.detect(parser.parse_args(["--output", str(tmp_path)]))
    assert res["map_50"] >= 0.80
