"""Anomaly scores and how they are judged: the reconstruction error per sample, the ROC curve, the
threshold chosen on validation data, and precision/recall/F1 at that threshold.

Scores are "higher = more anomalous", a sample is called an anomaly when its score is ≥ the
threshold; labels are 1 for an anomaly, 0 for normal. The AUC itself is
``deepnum.train.metrics.roc_auc`` (exact, as the Mann–Whitney statistic).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from deepnum.train.metrics import roc_auc

__all__ = ["THRESHOLDS", "choose_threshold", "detection_report", "reconstruction_error", "roc_curve"]

THRESHOLDS = ("percentile", "f1")


def reconstruction_error(x: np.ndarray, x_hat: np.ndarray, kind: str = "mse") -> np.ndarray:
    """Per-sample error between inputs and reconstructions, averaged over every feature:
    'mse' mean((x − x̂)²), 'mae' mean(|x − x̂|). Shapes (N, ...) must agree."""
    if kind not in ("mse", "mae"):
        raise ValueError(f"reconstruction_error: kind must be 'mse' or 'mae', got {kind!r}")
    if x.shape != x_hat.shape or x.ndim < 1:
        raise ValueError(f"reconstruction_error: x {x.shape} and x_hat {x_hat.shape} must have the same shape (N, ...)")
    diff = (x - x_hat).reshape(x.shape[0], -1)
    return (diff * diff).mean(axis=1) if kind == "mse" else np.abs(diff).mean(axis=1)


def _binary(scores: Any, labels: Any, who: str) -> tuple[np.ndarray, np.ndarray]:
    s, y = np.asarray(scores, dtype=np.float64).reshape(-1), np.asarray(labels).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"{who}: scores {s.shape} and labels {y.shape} have different lengths")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{who}: labels must be 0 (normal) or 1 (anomaly), got values {np.unique(y)[:5]}")
    return s, y.astype(bool)


def roc_curve(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false-positive rates, true-positive rates, thresholds) of the rule "anomaly when score ≥ t",
    for every distinct score t in decreasing order, after a first point (0, 0) at t = +inf
    (scikit-learn's ``roc_curve(..., drop_intermediate=False)``)."""
    s, y = _binary(scores, labels, "roc_curve")
    if y.all() or not y.any():
        raise ValueError("roc_curve: both classes must be present in labels")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    fpr = np.r_[0.0, fp / fp[-1]]
    tpr = np.r_[0.0, tp / tp[-1]]
    return fpr, tpr, np.r_[np.inf, s[last]]


def _f1_best(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold (a score value; anomaly when score ≥ it) with the highest F1 on labelled data."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]
    tp = np.cumsum(y)[last]
    predicted = last + 1
    f1 = 2 * tp / (predicted + y.sum())
    return float(s[last][int(np.argmax(f1))])


def choose_threshold(val_scores: Any, val_labels: Any | None = None, method: str = "percentile",
                     percentile: float = 99.0) -> float:
    """The score above which a sample is called an anomaly, chosen on validation data only.

    'percentile': the ``percentile``-th percentile of the scores of normal validation samples (those
    with label 0, or all of them when ``val_labels`` is None), so about (100 − percentile) % of
    normal data is flagged; needs no anomalies. 'f1': the score that maximises F1 on a labelled
    validation split holding both classes."""
    if method not in THRESHOLDS:
        raise ValueError(f"choose_threshold: method must be one of {THRESHOLDS}, got {method!r}")
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"choose_threshold: percentile must be in (0, 100], got {percentile!r}")
    s = np.asarray(val_scores, dtype=np.float64).reshape(-1)
    y = np.zeros(s.shape, dtype=bool) if val_labels is None else _binary(s, val_labels, "choose_threshold")[1]
    if method == "percentile":
        if y.all():
            raise ValueError("choose_threshold: 'percentile' needs normal (label 0) validation samples")
        return float(np.percentile(s[~y], percentile))
    if y.all() or not y.any():
        raise ValueError("choose_threshold: 'f1' needs a labelled validation split with both normal samples and "
                         "anomalies")
    return _f1_best(s, y)


def detection_report(scores: Any, labels: Any, threshold: float) -> dict[str, float]:
    """ROC-AUC (threshold-free), and precision, recall, F1 and false-positive rate of the rule
    "anomaly when score ≥ threshold", on (test) data holding both classes."""
    s, y = _binary(scores, labels, "detection_report")
    pred = s >= threshold
    tp, fp = int((pred & y).sum()), int((pred & ~y).sum())
    fn = int((~pred & y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {"auc": roc_auc(s, y.astype(np.int64)), "precision": precision, "recall": recall,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
            "fpr": fp / max(int((~y).sum()), 1), "threshold": float(threshold)}
