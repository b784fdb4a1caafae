"""Classification metrics on Tensors, NumPy or CuPy arrays: stateless functions, plus streaming
accumulators (``Metric``) that ``fit`` updates batch by batch and reads once per epoch.

Conventions (those of PyTorch and scikit-learn):

* ``output`` is either class scores of shape (N, C) or (N, C, d1, ...) (logits or probabilities; the
  predicted class is the argmax over dim 1), a float vector (N,) / (N, 1) of binary probabilities
  (predicted class 1 when ≥ ``threshold``, 0.5 by default; pass ``threshold=0`` for logits), or
  integer predicted labels.
* ``target`` is integer class indices (N,) / (N, d1, ...), or soft / one-hot targets shaped like the
  scores (reduced by argmax), or a float 0/1 vector for the binary case.
* A confusion matrix has the true class along rows and the predicted class along columns:
  M[i, j] = #{n : target_n = i, pred_n = j}. Per class, TP = M[c, c], FP = column sum − TP,
  FN = row sum − TP; precision = TP/(TP+FP), recall = TP/(TP+FN), F1 = 2TP/(2TP+FP+FN), with
  ``zero_division`` for 0/0. Averages: 'macro' (unweighted mean over all ``num_classes`` classes),
  'weighted' (mean weighted by support), 'micro' (from summed counts; equals accuracy for
  single-label multi-class data), None (per-class array), 'binary' (the class ``pos_label``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deepnum import backend
from deepnum.tensor import Tensor

__all__ = [
    "AUROC", "Accuracy", "ConfusionMatrix", "F1", "FunctionMetric", "Mean", "Metric", "Precision", "Recall",
    "accuracy", "confusion_matrix", "f1", "get_metric", "precision", "recall", "roc_auc",
]

AVERAGES = ("macro", "micro", "weighted", "binary", None)


def _array(x: Any) -> Any:
    """The raw array behind a Tensor (no copy), or ``x`` as a NumPy array."""
    if isinstance(x, Tensor):
        return x.data
    if type(x).__module__.startswith(("numpy", "cupy")):
        return x
    return np.asarray(x)


def _host(a: Any) -> np.ndarray:
    return backend.to_device(a, "cpu")


def _scores_2d(out: Any) -> Any:
    """(N, C, d1, ...) scores → (N·d1·..., C), classes last."""
    if out.ndim == 2:
        return out
    xp = backend.get_array_module(out)
    return xp.moveaxis(out, 1, -1).reshape(-1, out.shape[1])


def _is_scores(out: Any) -> bool:
    return out.ndim >= 2 and out.shape[1] > 1 and out.dtype.kind == "f"


def predicted_labels(output: Any, threshold: float = 0.5) -> Any:
    """Predicted class labels (a flat int64 array) from scores, binary probabilities or labels."""
    out = _array(output)
    xp = backend.get_array_module(out)
    if _is_scores(out):
        return _scores_2d(out).argmax(axis=1)
    if out.dtype.kind in "biu":
        return out.reshape(-1).astype(np.int64, copy=False)
    return (out.reshape(-1) >= threshold).astype(xp.int64)


def target_labels(target: Any) -> Any:
    """Integer class labels (flat int64) from indices, soft/one-hot targets or float 0/1 targets."""
    t = _array(target)
    xp = backend.get_array_module(t)
    if _is_scores(t):
        return _scores_2d(t).argmax(axis=1)
    if t.dtype.kind == "f":
        return (t.reshape(-1) >= 0.5).astype(xp.int64)
    return t.reshape(-1).astype(np.int64, copy=False)


def _check_lengths(name: str, pred: Any, true: Any, output: Any, target: Any) -> None:
    if pred.shape[0] != true.shape[0]:
        raise ValueError(f"{name}: output {tuple(_array(output).shape)} and target {tuple(_array(target).shape)} "
                         f"give {pred.shape[0]} predictions but {true.shape[0]} targets")
    if pred.shape[0] == 0:
        raise ValueError(f"{name}: empty input (output {tuple(_array(output).shape)})")


def _ranks_of_target(scores: Any, true: Any) -> Any:
    """0-based rank of the true class in each row when classes are ordered by descending score, ties
    broken by the lower class index first (so rank 0 is exactly ``argmax``)."""
    xp = backend.get_array_module(scores)
    s_true = xp.take_along_axis(scores, true[:, None], axis=1)
    cls = xp.arange(scores.shape[1])
    ahead = (scores > s_true) | ((scores == s_true) & (cls[None, :] < true[:, None]))
    return ahead.sum(axis=1)


def correct_counts(output: Any, target: Any, ks: Sequence[int], threshold: float = 0.5) -> tuple[list[int], int]:
    """How many samples are correct at each top-k, and how many samples there are."""
    if not ks or any(int(k) < 1 for k in ks):
        raise ValueError(f"accuracy: every k in topk must be >= 1, got {list(ks)}")
    out = _array(output)
    true = target_labels(target)
    if any(k > 1 for k in ks):
        if not _is_scores(out):
            raise ValueError(f"accuracy: top-k with k > 1 needs class scores (N, C), got output {tuple(out.shape)}")
        scores = _scores_2d(out)
        _check_lengths("accuracy", scores, true, output, target)
        _check_label_range("accuracy", true, scores.shape[1])
        rank = _ranks_of_target(scores, true)
        return [int((rank < k).sum()) for k in ks], int(rank.shape[0])
    pred = predicted_labels(out, threshold)
    _check_lengths("accuracy", pred, true, output, target)
    return [int((pred == true).sum())] * len(ks), int(pred.shape[0])


def accuracy(output: Any, target: Any, topk: int | Sequence[int] = (1,), threshold: float = 0.5) -> Any:
    """Fraction of samples whose true class is among the ``k`` highest scores (top-k accuracy; k = 1
    is the argmax rule, top-5 is the ImageNet convention). Returns a float for an int ``topk`` or a
    one-element tuple, else a list of floats, one per k."""
    ks = [topk] if isinstance(topk, int) else list(topk)
    counts, n = correct_counts(output, target, ks, threshold)
    values = [c / n for c in counts]
    return values[0] if len(ks) == 1 else values


def _check_label_range(name: str, values: Any, num_classes: int) -> None:
    if values.size and (int(values.min()) < 0 or int(values.max()) >= num_classes):
        raise ValueError(f"{name}: labels must lie in [0, {num_classes}), got values in "
                         f"[{int(values.min())}, {int(values.max())}]")


def _num_classes(out: Any, pred: Any, true: Any) -> int:
    if _is_scores(out):
        return int(out.shape[1])
    return int(max(int(pred.max()), int(true.max()))) + 1


def confusion_matrix(pred: Any, target: Any, num_classes: int | None = None, threshold: float = 0.5) -> np.ndarray:
    """(K, K) int64 counts, rows = true class, columns = predicted class (scikit-learn's layout), by one
    ``bincount`` of target·K + pred. ``pred`` may be labels or scores (argmax is taken)."""
    out = _array(pred)
    p, t = predicted_labels(out, threshold), target_labels(target)
    _check_lengths("confusion_matrix", p, t, pred, target)
    k = _num_classes(out, p, t) if num_classes is None else int(num_classes)
    _check_label_range("confusion_matrix (target)", t, k)
    _check_label_range("confusion_matrix (prediction)", p, k)
    xp = backend.get_array_module(p)
    return _host(xp.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(np.int64, copy=False))


def _ratio(num: np.ndarray, den: np.ndarray, zero_division: float) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    safe = np.where(den == 0, 1.0, den)
    return np.where(den == 0, zero_division, num / safe)


def scores_from_confusion(matrix: np.ndarray, kind: str, average: str | None = "macro", pos_label: int = 1,
                          zero_division: float = 0.0) -> Any:
    """Precision, recall or F1 ('precision' | 'recall' | 'f1') from a confusion matrix."""
    if average not in AVERAGES:
        raise ValueError(f"{kind}: average must be one of {AVERAGES}, got {average!r}")
    m = np.asarray(matrix, dtype=np.int64)
    tp = np.diag(m)
    fp, fn = m.sum(axis=0) - tp, m.sum(axis=1) - tp
    if average == "micro":
        tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
    den = {"precision": tp + fp, "recall": tp + fn, "f1": 2 * tp + fp + fn}[kind]
    per_class = _ratio(tp if kind != "f1" else 2 * tp, den, zero_division)
    if average is None:
        return per_class
    if average == "micro":
        return float(per_class)
    if average == "binary":
        if not 0 <= pos_label < m.shape[0]:
            raise ValueError(f"{kind}: pos_label={pos_label} is not a class of a {m.shape[0]}-class problem")
        return float(per_class[pos_label])
    if average == "weighted":
        support = m.sum(axis=1)
        return float((per_class * support).sum() / support.sum()) if support.sum() else float(zero_division)
    return float(per_class.mean())


def _prf(kind: str, output: Any, target: Any, num_classes: int | None, average: str | None, pos_label: int,
         zero_division: float, threshold: float) -> Any:
    matrix = confusion_matrix(output, target, num_classes, threshold)
    if average == "binary" and matrix.shape[0] > 2:
        raise ValueError(f"{kind}: average='binary' needs 2 classes, got {matrix.shape[0]}; "
                         f"use 'macro', 'micro', 'weighted' or None")
    if average == "binary" and matrix.shape[0] < 2:
        matrix = np.pad(matrix, ((0, 2 - matrix.shape[0]), (0, 2 - matrix.shape[0])))
    return scores_from_confusion(matrix, kind, average, pos_label, zero_division)


def precision(output: Any, target: Any, num_classes: int | None = None, average: str | None = "macro",
              pos_label: int = 1, zero_division: float = 0.0, threshold: float = 0.5) -> Any:
    """TP / (TP + FP): of the samples predicted as a class, the fraction that belong to it."""
    return _prf("precision", output, target, num_classes, average, pos_label, zero_division, threshold)


def recall(output: Any, target: Any, num_classes: int | None = None, average: str | None = "macro",
           pos_label: int = 1, zero_division: float = 0.0, threshold: float = 0.5) -> Any:
    """TP / (TP + FN): of the samples of a class, the fraction predicted as it (sensitivity)."""
    return _prf("recall", output, target, num_classes, average, pos_label, zero_division, threshold)


def f1(output: Any, target: Any, num_classes: int | None = None, average: str | None = "macro",
       pos_label: int = 1, zero_division: float = 0.0, threshold: float = 0.5) -> Any:
    """F1 = 2TP / (2TP + FP + FN), the harmonic mean of precision and recall (van Rijsbergen's F-measure)."""
    return _prf("f1", output, target, num_classes, average, pos_label, zero_division, threshold)


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of x, tied values sharing the mean of the ranks they occupy."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    first = np.concatenate([[True], xs[1:] != xs[:-1]])
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, x.size))
    mean_rank = starts + (counts + 1) / 2.0
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = mean_rank[np.cumsum(first) - 1]
    return ranks


def _binary_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    n1 = int(positive.sum())
    n0 = positive.size - n1
    if n1 == 0 or n0 == 0:
        raise ValueError("roc_auc: only one class is present in the labels; the ROC AUC is undefined")
    ranks = _average_ranks(scores)
    u = ranks[positive].sum() - n1 * (n1 + 1) / 2.0
    return float(u / (n1 * n0))


def roc_auc(scores: Any, labels: Any, average: str = "macro") -> float:
    """Area under the ROC curve, exactly, as the Mann–Whitney statistic: AUC = U / (n₁n₀) with
    U = Σ rank(positives) − n₁(n₁+1)/2 and tied scores given their average rank (so a tie between a
    positive and a negative counts ½). Equals the probability that a random positive scores above a
    random negative (Hanley & McNeil 1982). ``scores`` (N,) for binary labels (N,) in {0, 1}; a (N, 2)
    score matrix uses column 1; (N, C > 2) scores give the one-vs-rest AUC averaged over classes
    ('macro', or 'weighted' by prevalence; a short loop over classes)."""
    s = _host(_array(scores)).astype(np.float64)
    y = _host(_array(labels)).reshape(-1)
    if s.shape[0] != y.shape[0]:
        raise ValueError(f"roc_auc: scores {s.shape} and labels {y.shape} have different lengths")
    if s.ndim == 2 and s.shape[1] == 2:
        s = s[:, 1]
    if s.ndim == 1 or (s.ndim == 2 and s.shape[1] == 1):
        if y.dtype.kind == "f" and not np.isin(y, (0.0, 1.0)).all():
            raise ValueError("roc_auc: binary labels must be 0 or 1")
        if y.dtype.kind in "iu" and not np.isin(y, (0, 1)).all():
            raise ValueError(f"roc_auc: binary labels must be 0 or 1, got values {np.unique(y)[:5]}")
        return _binary_auc(s.reshape(-1), y.astype(bool))
    if average not in ("macro", "weighted"):
        raise ValueError(f"roc_auc: average must be 'macro' or 'weighted' for multi-class scores, got {average!r}")
    y = y.astype(np.int64)
    _check_label_range("roc_auc", y, s.shape[1])
    aucs = np.array([_binary_auc(s[:, c], y == c) for c in range(s.shape[1])])
    weights = np.bincount(y, minlength=s.shape[1]) if average == "weighted" else np.ones(s.shape[1])
    return float((aucs * weights).sum() / weights.sum())


# --------------------------------------------------------------------------- streaming accumulators
class Metric:
    """A streaming metric: ``reset()``, ``update(output, target)`` per batch, ``compute()`` at the end.
    ``state_dict()`` holds plain numbers so a mid-epoch checkpoint can carry it."""

    name = "metric"

    def reset(self) -> None:
        raise NotImplementedError

    def update(self, output: Any, target: Any) -> None:
        raise NotImplementedError

    def compute(self) -> float:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class Mean(Metric):
    """Weighted running mean Σ wᵢvᵢ / Σ wᵢ (the epoch loss: batch means weighted by batch size)."""

    def __init__(self, name: str = "mean") -> None:
        self.name = name
        self.reset()

    def reset(self) -> None:
        self.total, self.weight = 0.0, 0.0

    def update(self, value: Any, weight: float = 1.0) -> None:  # type: ignore[override]
        self.total += float(value) * weight
        self.weight += weight

    def compute(self) -> float:
        return self.total / self.weight if self.weight else float("nan")

    def state_dict(self) -> dict[str, Any]:
        return {"total": self.total, "weight": self.weight}


class FunctionMetric(Mean):
    """A function ``fn(output, target) -> number`` averaged over batches, weighted by batch size."""

    def __init__(self, fn: Callable[[Any, Any], Any], name: str | None = None) -> None:
        super().__init__(name or getattr(fn, "__name__", "metric"))
        self.fn = fn

    def update(self, output: Any, target: Any) -> None:  # type: ignore[override]
        super().update(self.fn(output, target), float(_array(target).shape[0]))


class Accuracy(Metric):
    """Top-k accuracy as exact counts: correct / seen."""

    def __init__(self, topk: int = 1, name: str | None = None, threshold: float = 0.5) -> None:
        self.topk, self.threshold = topk, threshold
        self.name = name or ("accuracy" if topk == 1 else f"top{topk}_accuracy")
        self.reset()

    def reset(self) -> None:
        self.correct, self.count = 0, 0

    def update(self, output: Any, target: Any) -> None:
        counts, n = correct_counts(output, target, [self.topk], self.threshold)
        self.correct += counts[0]
        self.count += n

    def compute(self) -> float:
        return self.correct / self.count if self.count else float("nan")

    def state_dict(self) -> dict[str, Any]:
        return {"correct": self.correct, "count": self.count}


class ConfusionMatrix(Metric):
    """Accumulated confusion matrix; it grows when a larger class label appears."""

    name = "confusion_matrix"

    def __init__(self, num_classes: int | None = None, threshold: float = 0.5) -> None:
        self.num_classes, self.threshold = num_classes, threshold
        self.reset()

    def reset(self) -> None:
        k = self.num_classes or 0
        self.matrix = np.zeros((k, k), dtype=np.int64)

    def update(self, output: Any, target: Any) -> None:
        out = _array(output)
        p, t = predicted_labels(out, self.threshold), target_labels(target)
        k = max(self.matrix.shape[0], _num_classes(out, p, t) if self.num_classes is None else self.num_classes)
        batch = confusion_matrix(out, target, k, self.threshold)
        if k > self.matrix.shape[0]:
            grow = k - self.matrix.shape[0]
            self.matrix = np.pad(self.matrix, ((0, grow), (0, grow)))
        self.matrix += batch

    def compute(self) -> np.ndarray:  # type: ignore[override]
        return self.matrix.copy()

    def state_dict(self) -> dict[str, Any]:
        return {"matrix": self.matrix.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.matrix = np.asarray(state["matrix"], dtype=np.int64).reshape(len(state["matrix"]), -1)


class _ConfusionScore(ConfusionMatrix):
    kind = ""

    def __init__(self, num_classes: int | None = None, average: str | None = "macro", pos_label: int = 1,
                 zero_division: float = 0.0, threshold: float = 0.5, name: str | None = None) -> None:
        if average not in AVERAGES:
            raise ValueError(f"{self.kind}: average must be one of {AVERAGES}, got {average!r}")
        super().__init__(num_classes, threshold)
        self.average, self.pos_label, self.zero_division = average, pos_label, zero_division
        self.name = name or self.kind

    def compute(self) -> Any:  # type: ignore[override]
        return scores_from_confusion(self.matrix, self.kind, self.average, self.pos_label, self.zero_division)


class Precision(_ConfusionScore):
    kind = "precision"


class Recall(_ConfusionScore):
    kind = "recall"


class F1(_ConfusionScore):
    kind = "f1"


class AUROC(Metric):
    """Binary ROC AUC over everything seen (keeps the scores: memory grows with the epoch)."""

    name = "auc"

    def reset(self) -> None:
        self.scores: list[np.ndarray] = []
        self.targets: list[np.ndarray] = []

    def __init__(self) -> None:
        self.reset()

    def update(self, output: Any, target: Any) -> None:
        s = _host(_array(output)).astype(np.float64)
        self.scores.append(s[:, 1] if s.ndim == 2 and s.shape[1] == 2 else s.reshape(-1))
        self.targets.append(_host(target_labels(target)))

    def compute(self) -> float:
        return roc_auc(np.concatenate(self.scores), np.concatenate(self.targets))

    def state_dict(self) -> dict[str, Any]:
        return {"scores": np.concatenate(self.scores).tolist() if self.scores else [],
                "targets": np.concatenate(self.targets).tolist() if self.targets else []}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scores = [np.asarray(state["scores"], dtype=np.float64)]
        self.targets = [np.asarray(state["targets"], dtype=np.int64)]


def get_metric(spec: Any) -> Metric:
    """A fresh ``Metric`` from a name ('accuracy', 'top5' / 'top5_accuracy', 'precision', 'recall',
    'f1', 'auc'), a ``Metric`` (used as is), a ``(name, fn)`` pair or a function ``fn(output, target)``."""
    if isinstance(spec, Metric):
        return spec
    if isinstance(spec, tuple) and len(spec) == 2 and callable(spec[1]):
        return FunctionMetric(spec[1], spec[0])
    if callable(spec):
        return FunctionMetric(spec)
    if not isinstance(spec, str):
        raise TypeError(f"metric must be a name, a Metric or a function, got {type(spec).__name__}")
    name = spec.lower()
    simple = {"accuracy": lambda: Accuracy(1), "acc": lambda: Accuracy(1), "precision": Precision,
              "recall": Recall, "f1": F1, "auc": AUROC, "roc_auc": AUROC}
    if name in simple:
        return simple[name]()
    stem = name.removesuffix("_accuracy")
    if stem.startswith("top") and stem[3:].isdigit() and int(stem[3:]) >= 1:
        return Accuracy(int(stem[3:]))
    raise ValueError(f"unknown metric {spec!r}: expected one of {sorted(simple)}, 'top<k>', a Metric or a function")
