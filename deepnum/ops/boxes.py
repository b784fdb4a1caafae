"""Bounding-box operations with ``torchvision.ops``' names and semantics.

Boxes are ``(N, 4)`` Tensors in ``(x1, y1, x2, y2)`` form with ``0 <= x1 < x2`` and ``0 <= y1 < y2``
(corner coordinates; the area of a box is ``(x2 - x1) * (y2 - y1)``, no +1). ``box_area``,
``box_iou`` and ``box_convert`` are Tensor ops (differentiable); ``nms`` and ``batched_nms`` return
int64 index Tensors, computed on the host.

Non-maximum suppression (greedy, as in Felzenszwalb et al. 2010 and the R-CNN family): visit the
boxes in order of decreasing score (ties in input order), keep a box unless it overlaps an already
kept one with IoU strictly greater than ``iou_threshold``.
"""
from __future__ import annotations

import numpy as np

from deepnum.creation import as_tensor
from deepnum.functional.joining import stack
from deepnum.functional.math import clamp, maximum, minimum
from deepnum.tensor import Tensor

__all__ = ["batched_nms", "box_area", "box_convert", "box_iou", "clip_boxes_to_image", "nms", "remove_small_boxes"]


def _check_boxes(boxes: Tensor, fn: str, name: str = "boxes") -> Tensor:
    boxes = boxes if isinstance(boxes, Tensor) else as_tensor(boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{fn}: {name} must be (N, 4), got shape {tuple(boxes.shape)}")
    return boxes


def box_area(boxes: Tensor) -> Tensor:
    """Area ``(x2 - x1) * (y2 - y1)`` of each box, shape (N,)."""
    boxes = _check_boxes(boxes, "box_area")
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Jaccard index (intersection over union) of every pair: an (N, M) Tensor."""
    boxes1 = _check_boxes(boxes1, "box_iou", "boxes1")
    boxes2 = _check_boxes(boxes2, "box_iou", "boxes2")
    area1, area2 = box_area(boxes1), box_area(boxes2)
    lt = maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    rb = minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = clamp(rb - lt, min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    return inter / (area1[:, None] + area2[None, :] - inter)


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert between 'xyxy' (corners), 'xywh' (corner, width, height) and 'cxcywh' (centre, size)."""
    formats = ("xyxy", "xywh", "cxcywh")
    if in_fmt not in formats or out_fmt not in formats:
        raise ValueError(f"box_convert: formats must be among {formats}, got in_fmt={in_fmt!r}, out_fmt={out_fmt!r}")
    boxes = _check_boxes(boxes, "box_convert")
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = (boxes[:, i] for i in range(4))
    if in_fmt == "xywh":
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    if out_fmt == "xywh":
        return stack([a, b, c - a, d - b], dim=-1)
    if out_fmt == "cxcywh":
        return stack([(a + c) / 2, (b + d) / 2, c - a, d - b], dim=-1)
    return stack([a, b, c, d], dim=-1)


def clip_boxes_to_image(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Clamp the boxes to an image of ``size = (height, width)``."""
    boxes = _check_boxes(boxes, "clip_boxes_to_image")
    height, width = size
    x = clamp(boxes[:, 0::2], min=0, max=width)
    y = clamp(boxes[:, 1::2], min=0, max=height)
    return stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=-1)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices (int64) of the boxes whose width and height are both at least ``min_size``."""
    b = _host(_check_boxes(boxes, "remove_small_boxes"))
    keep = np.nonzero(((b[:, 2] - b[:, 0]) >= min_size) & ((b[:, 3] - b[:, 1]) >= min_size))[0]
    return _indices(keep, boxes)


def _host(t: Tensor) -> np.ndarray:
    return np.asarray(t.detach().cpu().numpy())


def _indices(keep: np.ndarray, like: Tensor) -> Tensor:
    out = as_tensor(np.asarray(keep, dtype=np.int64))
    return out.to(like.device) if like.device != "cpu" else out


def _nms_host(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep = []
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        w = np.clip(np.minimum(x2[i], x2) - np.maximum(x1[i], x1), 0, None)
        h = np.clip(np.minimum(y2[i], y2) - np.maximum(y1[i], y1), 0, None)
        inter = w * h
        with np.errstate(invalid="ignore", divide="ignore"):
            suppressed |= inter / (areas[i] + areas - inter) > iou_threshold
    return np.asarray(keep, dtype=np.int64)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices (int64) of the boxes that greedy non-maximum suppression keeps, by decreasing score."""
    boxes = _check_boxes(boxes, "nms")
    scores = scores if isinstance(scores, Tensor) else as_tensor(scores)
    if scores.shape != (boxes.shape[0],):
        raise ValueError(f"nms: scores must be ({boxes.shape[0]},) for boxes {tuple(boxes.shape)}, "
                         f"got {tuple(scores.shape)}")
    return _indices(_nms_host(_host(boxes), _host(scores), float(iou_threshold)), boxes)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """Non-maximum suppression within each category ``idxs[i]`` (boxes of different categories never
    suppress each other); the kept indices (int64) by decreasing score."""
    boxes = _check_boxes(boxes, "batched_nms")
    scores = scores if isinstance(scores, Tensor) else as_tensor(scores)
    idxs = idxs if isinstance(idxs, Tensor) else as_tensor(idxs)
    n = boxes.shape[0]
    if scores.shape != (n,) or idxs.shape != (n,):
        raise ValueError(f"batched_nms: scores and idxs must be ({n},) for boxes {tuple(boxes.shape)}, "
                         f"got {tuple(scores.shape)} and {tuple(idxs.shape)}")
    b, s, c = _host(boxes), _host(scores), _host(idxs)
    keep = [np.nonzero(c == k)[0][_nms_host(b[c == k], s[c == k], float(iou_threshold))] for k in np.unique(c)]
    kept = np.concatenate(keep) if keep else np.zeros(0, np.int64)
    kept = kept[np.argsort(-s[kept], kind="stable")]
    return _indices(kept, boxes)
