"""deepnum.ops.boxes against torchvision.ops: IoU, conversions, NMS and batched NMS.

torchvision's compiled kernels do not load against the CPU torch wheel here (tests/zoo_helpers.py),
so ``torchvision.ops.nms`` cannot run; ``torch_nms`` restates its CPU kernel in torch ops (stable
sort by decreasing score, suppress IoU > threshold) and is swapped into torchvision's own Python
``batched_nms`` (both its coordinate-offset and its per-class paths), which is then compared with ours.
"""
import numpy as np
import pytest
import torch

import deepnum as dn
from deepnum import ops
from tests.zoo_helpers import import_torchvision

tvo = import_torchvision().ops


def torch_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """torchvision/csrc/ops/cpu/nms_kernel.cpp in torch ops."""
    order = torch.sort(scores, stable=True, descending=True)[1]
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= tvo.box_iou(boxes[i:i + 1], boxes)[0] > iou_threshold
    return torch.tensor(keep, dtype=torch.int64)


def _random_boxes(rng: np.random.Generator, n: int, size: float = 50.0) -> np.ndarray:
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(1, size / 3, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


@pytest.mark.parametrize("n, m", [(7, 5), (1, 9), (0, 3)])
def test_box_iou_and_area_match_torchvision(n, m):
    rng = np.random.default_rng(n * 10 + m)
    a, b = _random_boxes(rng, n), _random_boxes(rng, m)
    a_near = np.clip(a + rng.normal(0, 2, a.shape).astype(np.float32), 0, None)  # overlapping pairs
    for x in (a, a_near):
        got = ops.box_iou(dn.tensor(x), dn.tensor(b)).numpy()
        ref = tvo.box_iou(torch.from_numpy(x), torch.from_numpy(b)).numpy()
        assert got.shape == ref.shape == (n, m) and got.dtype == np.float32
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ops.box_area(dn.tensor(a)).numpy(), tvo.box_area(torch.from_numpy(a)).numpy())


def test_box_iou_hand_checked_and_gradient():
    a = dn.tensor([[0.0, 0.0, 2.0, 2.0]], dtype=dn.float64, requires_grad=True)
    b = dn.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 4.0, 2.0], [0.0, 0.0, 2.0, 2.0]], dtype=dn.float64)
    iou = ops.box_iou(a, b)
    np.testing.assert_allclose(iou.detach().numpy(), [[1 / 7, 0.0, 1.0]])
    iou[0, 0].backward()
    # IoU = I / (8 - I), I = (2 - 1)^2 with x2, y2 of box a in it; dI/dx2 = 1 -> d/dx2 = 8 / 49 - area part
    ta = torch.tensor([[0.0, 0.0, 2.0, 2.0]], dtype=torch.float64, requires_grad=True)
    tvo.box_iou(ta, torch.from_numpy(b.numpy()))[0, 0].backward()
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-12)


def test_box_convert_and_clip_match_torchvision():
    rng = np.random.default_rng(0)
    x = _random_boxes(rng, 6)
    for fin in ("xyxy", "xywh", "cxcywh"):
        for fout in ("xyxy", "xywh", "cxcywh"):
            got = ops.box_convert(dn.tensor(x), fin, fout).numpy()
            ref = tvo.box_convert(torch.from_numpy(x), fin, fout).numpy()
            np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(ops.clip_boxes_to_image(dn.tensor(x), (30, 40)).numpy(),
                               tvo.clip_boxes_to_image(torch.from_numpy(x), (30, 40)).numpy())
    np.testing.assert_array_equal(ops.remove_small_boxes(dn.tensor(x), 8.0).numpy(),
                                  tvo.remove_small_boxes(torch.from_numpy(x), 8.0).numpy())


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7])
def test_nms_matches_torchvision(seed, threshold):
    rng = np.random.default_rng(seed)
    boxes = _random_boxes(rng, 60, size=40.0)
    scores = rng.random(60).astype(np.float32)
    got = ops.nms(dn.tensor(boxes), dn.tensor(scores), threshold)
    ref = torch_nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold)
    assert got.dtype == dn.int64
    np.testing.assert_array_equal(got.numpy(), ref.numpy())


def test_nms_hand_checked():
    boxes = dn.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 5], [20, 20, 30, 30]])
    scores = dn.tensor([0.6, 0.9, 0.5, 0.1])
    # IoU(b1, b0) = 81/119 = 0.68 -> b0 suppressed at 0.5; IoU(b1, b2) = 36/114 = 0.32 -> kept
    np.testing.assert_array_equal(ops.nms(boxes, scores, 0.5).numpy(), [1, 2, 3])
    np.testing.assert_array_equal(ops.nms(boxes, scores, 0.3).numpy(), [1, 3])
    np.testing.assert_array_equal(ops.nms(boxes, scores, 0.7).numpy(), [1, 0, 2, 3])
    assert ops.nms(dn.zeros(0, 4), dn.zeros(0), 0.5).shape == (0,)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("path", ["_batched_nms_coordinate_trick", "_batched_nms_vanilla"])
def test_batched_nms_matches_torchvision(seed, path, monkeypatch):
    monkeypatch.setattr(tvo.boxes, "nms", torch_nms)
    rng = np.random.default_rng(100 + seed)
    boxes = _random_boxes(rng, 80, size=30.0)
    scores = rng.random(80).astype(np.float32)
    idxs = rng.integers(0, 4, 80)
    got = ops.batched_nms(dn.tensor(boxes), dn.tensor(scores), dn.tensor(idxs), 0.4).numpy()
    batched = getattr(tvo.boxes, path)
    ref = batched(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(idxs), 0.4).numpy()
    np.testing.assert_array_equal(got, ref)
    # boxes of other categories never suppress: each category's result is plain NMS on its boxes
    for k in range(4):
        sel = np.nonzero(idxs == k)[0]
        mine = got[idxs[got] == k]
        np.testing.assert_array_equal(mine, sel[ops.nms(dn.tensor(boxes[sel]), dn.tensor(scores[sel]), 0.4).numpy()])


def test_bad_shapes_raise_clear_errors():
    with pytest.raises(ValueError, match=r"box_iou: boxes2 must be \(N, 4\), got shape \(3, 5\)"):
        ops.box_iou(dn.zeros(2, 4), dn.zeros(3, 5))
    with pytest.raises(ValueError, match="nms: scores must be"):
        ops.nms(dn.zeros(3, 4), dn.zeros(2), 0.5)
    with pytest.raises(ValueError, match="batched_nms: scores and idxs"):
        ops.batched_nms(dn.zeros(3, 4), dn.zeros(3), dn.zeros(2), 0.5)
    with pytest.raises(ValueError, match="box_convert: formats"):
        ops.box_convert(dn.zeros(3, 4), "xyxy", "yxyx")
