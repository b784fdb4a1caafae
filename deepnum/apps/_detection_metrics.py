"""Mean average precision of a detector, as the PASCAL VOC challenge measures it (Everingham et al.,
"The PASCAL Visual Object Classes Challenge", IJCV 2010; the all-point interpolation of VOC 2010+).

Per class: all detections of that class over all images, by decreasing score. A detection is a true
positive if its IoU with a not yet matched ground-truth box of its class in its image is >= the
threshold (the best-overlapping such box is taken; a second detection of an already matched box is
a false positive). Precision and recall after each detection give the precision-recall curve; its
precision is made monotone (p(r) = max over r' >= r) and AP is the area under it (sum over the
recall steps). mAP = the mean of AP over the classes that have ground truth.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["average_precision", "match_detections", "mean_average_precision"]


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def average_precision(tp: np.ndarray, num_gt: int) -> float:
    """All-point interpolated AP of detections already sorted by decreasing score, ``tp[i]`` = 1 for
    a true positive; ``num_gt`` ground-truth boxes. NaN when ``num_gt`` is 0."""
    if num_gt == 0:
        return float("nan")
    tp = np.asarray(tp, dtype=np.float64)
    if tp.size == 0:
        return 0.0
    ctp, cfp = np.cumsum(tp), np.cumsum(1 - tp)
    recall = np.concatenate([[0.0], ctp / num_gt, [1.0]])
    precision = np.concatenate([[0.0], ctp / (ctp + cfp), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.nonzero(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def match_detections(boxes: np.ndarray, scores: np.ndarray, gt: np.ndarray, iou_threshold: float = 0.5) -> np.ndarray:
    """True-positive flags (in the order of decreasing score) of one image's detections of one class
    against that class's ground-truth boxes ``gt``; VOC's greedy matching."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    tp = np.zeros(len(order))
    if len(gt) == 0 or len(order) == 0:
        return tp
    iou = _iou_matrix(np.asarray(boxes, np.float64)[order], np.asarray(gt, np.float64))
    used = np.zeros(len(gt), dtype=bool)
    for k in range(len(order)):
        j = int(np.argmax(iou[k]))
        if iou[k, j] >= iou_threshold and not used[j]:
            used[j], tp[k] = True, 1.0
    return tp


def mean_average_precision(pred_boxes: Sequence[np.ndarray], pred_scores: Sequence[np.ndarray],
                           pred_labels: Sequence[np.ndarray], gt_boxes: Sequence[np.ndarray],
                           gt_labels: Sequence[np.ndarray], num_classes: int,
                           iou_threshold: float = 0.5) -> tuple[float, np.ndarray]:
    """(mAP, per-class AP array with NaN for classes without ground truth) over a list of images:
    per image (k, 4) predicted boxes, (k,) scores and labels, (g, 4) true boxes and (g,) labels."""
    n = len(gt_boxes)
    if not len(pred_boxes) == len(pred_scores) == len(pred_labels) == len(gt_labels) == n:
        raise ValueError("mean_average_precision: the five per-image lists must have the same length, got "
                         f"{[len(v) for v in (pred_boxes, pred_scores, pred_labels, gt_boxes, gt_labels)]}")
    ap = np.full(num_classes, np.nan)
    for c in range(num_classes):
        scores, flags, num_gt = [], [], 0
        for i in range(n):
            gt = np.asarray(gt_boxes[i]).reshape(-1, 4)[np.asarray(gt_labels[i]) == c]
            sel = np.asarray(pred_labels[i]) == c
            s = np.asarray(pred_scores[i])[sel]
            num_gt += len(gt)
            flags.append(match_detections(np.asarray(pred_boxes[i]).reshape(-1, 4)[sel], s, gt, iou_threshold))
            scores.append(np.sort(s)[::-1])
        if num_gt == 0:
            continue
        s_all, tp_all = np.concatenate(scores), np.concatenate(flags)
        ap[c] = average_precision(tp_all[np.argsort(-s_all, kind="stable")], num_gt)
    return float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan"), ap
