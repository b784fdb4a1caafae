"""deepnum.train.metrics: hand-computed cases, then parity with scikit-learn (and torch.topk) on
random data; streaming accumulators equal the one-shot functions."""
import copy

import numpy as np
import pytest
import scipy.stats
import sklearn.metrics as skm
import torch

import deepnum as dn
from deepnum.train import metrics as M

# The hand example: target [0,0,1,1,2,2], prediction [0,1,1,1,2,0] →
# M = [[1,1,0],[0,2,0],[1,0,1]]; precision = TP/column = [1/2, 2/3, 1]; recall = TP/row = [1/2, 1, 1/2];
# F1 = 2TP/(2TP+FP+FN) = [2/4, 4/5, 2/3]; micro = 4/6.
TARGET = np.array([0, 0, 1, 1, 2, 2])
PRED = np.array([0, 1, 1, 1, 2, 0])


def test_accuracy_hand_cases():
    out = dn.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert M.accuracy(out, dn.tensor([1, 0, 0, 0])) == 0.75
    assert M.accuracy(out.numpy(), np.array([1, 0, 0, 0]), topk=1) == 0.75
    # soft / one-hot targets reduce by argmax
    assert M.accuracy(out, np.array([[0, 1], [0.9, 0.1], [1, 0], [0.6, 0.4]], dtype=np.float32)) == 0.75
    # binary probabilities (N,) and (N, 1), threshold 0.5 (or 0 for logits)
    p = np.array([0.2, 0.7, 0.5, 0.4], dtype=np.float32)
    assert M.accuracy(p, np.array([0, 1, 1, 1])) == 0.75
    assert M.accuracy(p[:, None], np.array([0, 1, 1, 1])) == 0.75
    assert M.accuracy(np.array([-1.0, 2.0, 0.5]), np.array([0, 1, 0]), threshold=0.0) == 2 / 3
    # integer predictions
    assert M.accuracy(PRED, TARGET) == 4 / 6


def test_topk_hand_case_and_ties():
    scores = np.array([[0.1, 0.5, 0.3, 0.1],    # target 2: rank 1 → top-2 hit
                       [0.9, 0.05, 0.03, 0.02],  # target 0: rank 0 → top-1 hit
                       [0.4, 0.3, 0.2, 0.1]],    # target 3: rank 3 → top-4 only
                      dtype=np.float32)
    target = np.array([2, 0, 3])
    assert M.accuracy(scores, target, topk=(1, 2, 3, 4)) == [1 / 3, 2 / 3, 2 / 3, 1.0]
    assert M.accuracy(scores, target, topk=(2,)) == 2 / 3
    # ties: argmax takes the first maximum, so class 1 of [1, 1, 0] is rank 1
    tied = np.array([[1.0, 1.0, 0.0]])
    assert M.accuracy(tied, np.array([1]), topk=(1, 2)) == [0.0, 1.0]
    assert M.accuracy(tied, np.array([0]), topk=(1, 2)) == [1.0, 1.0]


def test_topk_matches_torch_topk():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(500, 10)).astype(np.float32)
    target = rng.integers(0, 10, size=500)
    top = torch.tensor(scores).topk(5, dim=1).indices.numpy()
    expected = [float((top[:, :k] == target[:, None]).any(axis=1).mean()) for k in (1, 3, 5)]
    assert M.accuracy(dn.tensor(scores), dn.tensor(target), topk=(1, 3, 5)) == pytest.approx(expected, abs=0)


def test_accuracy_segmentation_layout():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)  # (N, C, H, W)
    target = rng.integers(0, 3, size=(2, 4, 5))
    assert M.accuracy(scores, target) == float((scores.argmax(1) == target).mean())


def test_confusion_and_prf_hand_case():
    m = M.confusion_matrix(PRED, TARGET, 3)
    np.testing.assert_array_equal(m, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    assert m.dtype == np.int64
    np.testing.assert_allclose(M.precision(PRED, TARGET, average=None), [1 / 2, 2 / 3, 1.0])
    np.testing.assert_allclose(M.recall(PRED, TARGET, average=None), [1 / 2, 1.0, 1 / 2])
    np.testing.assert_allclose(M.f1(PRED, TARGET, average=None), [1 / 2, 4 / 5, 2 / 3])
    assert M.precision(PRED, TARGET) == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert M.recall(PRED, TARGET, average="micro") == pytest.approx(4 / 6)
    assert M.f1(PRED, TARGET, average="weighted") == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    # from scores: argmax first; num_classes from the score width
    scores = np.eye(4, dtype=np.float32)[PRED]
    np.testing.assert_array_equal(M.confusion_matrix(scores, TARGET)[:3, :3], m)
    assert M.confusion_matrix(scores, TARGET).shape == (4, 4)


def test_binary_precision_recall():
    target = np.array([1, 1, 1, 0, 0, 0, 0])
    probs = np.array([0.9, 0.6, 0.2, 0.7, 0.1, 0.3, 0.4])  # TP 2, FN 1, FP 1
    assert M.precision(probs, target, average="binary") == pytest.approx(2 / 3)
    assert M.recall(probs, target, average="binary") == pytest.approx(2 / 3)
    assert M.f1(probs, target, average="binary", pos_label=0) == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    # zero_division: no positive prediction at all
    assert M.precision(np.zeros(3, dtype=np.int64), np.array([1, 0, 1]), average="binary") == 0.0
    assert M.precision(np.zeros(3, dtype=np.int64), np.array([1, 0, 1]), average="binary", zero_division=1.0) == 1.0


@pytest.mark.parametrize("average", ["macro", "micro", "weighted", None])
def test_prf_match_sklearn(average):
    rng = np.random.default_rng(2)
    k = 5
    target = rng.integers(0, k, size=300)
    pred = np.where(rng.random(300) < 0.6, target, rng.integers(0, k - 1, size=300))  # class 4 rarely predicted
    pred[pred == 4] = 3
    scores = np.eye(k, dtype=np.float32)[pred] + rng.random((300, k)).astype(np.float32) * 0.1
    kw = {"labels": list(range(k)), "average": average, "zero_division": 0}
    for ours, theirs in ((M.precision, skm.precision_score), (M.recall, skm.recall_score), (M.f1, skm.f1_score)):
        np.testing.assert_allclose(ours(dn.tensor(scores), dn.tensor(target), num_classes=k, average=average),
                                   theirs(target, pred, **kw), rtol=1e-12)
    np.testing.assert_array_equal(M.confusion_matrix(pred, target, k),
                                  skm.confusion_matrix(target, pred, labels=list(range(k))))


def test_binary_prf_match_sklearn():
    rng = np.random.default_rng(3)
    target = rng.integers(0, 2, size=200)
    probs = np.clip(target * 0.3 + rng.random(200) * 0.7, 0, 1)
    pred = (probs >= 0.5).astype(int)
    for ours, theirs in ((M.precision, skm.precision_score), (M.recall, skm.recall_score), (M.f1, skm.f1_score)):
        assert ours(probs, target, average="binary") == pytest.approx(theirs(target, pred), abs=1e-12)


def test_roc_auc_hand_cases_and_mann_whitney():
    assert M.roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert M.roc_auc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5  # a tie counts one half
    # 3 positives, 2 negatives; one positive ties a negative: pairs won = 2 + 2 + 1.5 → 5.5 / 6
    assert M.roc_auc([0.9, 0.7, 0.3, 0.3, 0.1], [1, 1, 1, 0, 0]) == pytest.approx(5.5 / 6)
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, size=400)
    scores = np.round(labels * 0.5 + rng.random(400), 1)  # many ties
    u = scipy.stats.mannwhitneyu(scores[labels == 1], scores[labels == 0]).statistic
    n1, n0 = labels.sum(), (1 - labels).sum()
    assert M.roc_auc(dn.tensor(scores.astype(np.float32)), dn.tensor(labels)) == pytest.approx(u / (n1 * n0))
    assert M.roc_auc(scores, labels) == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-12)
    two_col = np.stack([1 - scores, scores], axis=1)
    assert M.roc_auc(two_col, labels) == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-12)


@pytest.mark.parametrize("average", ["macro", "weighted"])
def test_multiclass_roc_auc_matches_sklearn(average):
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 4, size=300)
    logits = rng.normal(size=(300, 4)) + np.eye(4)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = skm.roc_auc_score(labels, probs, multi_class="ovr", average=average)
    assert M.roc_auc(probs, labels, average=average) == pytest.approx(expected, abs=1e-12)


def test_metric_errors():
    with pytest.raises(ValueError, match="4 predictions but 3 targets"):
        M.accuracy(np.zeros((4, 3), dtype=np.float32), np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match=r"topk must be >= 1"):
        M.accuracy(np.zeros((2, 3), dtype=np.float32), np.zeros(2, dtype=np.int64), topk=(0,))
    with pytest.raises(ValueError, match="needs class scores"):
        M.accuracy(np.zeros(2, dtype=np.float32), np.zeros(2, dtype=np.int64), topk=2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        M.confusion_matrix(np.array([0, 1]), np.array([0, 3]), num_classes=3)
    with pytest.raises(ValueError, match="average must be one of"):
        M.precision(PRED, TARGET, average="samples")
    with pytest.raises(ValueError, match="needs 2 classes"):
        M.recall(PRED, TARGET, average="binary")
    with pytest.raises(ValueError, match="only one class"):
        M.roc_auc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="empty input"):
        M.accuracy(np.zeros((0, 3), dtype=np.float32), np.zeros(0, dtype=np.int64))


def test_streaming_equals_one_shot():
    rng = np.random.default_rng(6)
    scores = rng.normal(size=(103, 6)).astype(np.float32)
    target = rng.integers(0, 6, size=103)
    streams = [M.Accuracy(), M.Accuracy(topk=3), M.Precision(), M.Recall(average="weighted"), M.F1(average="micro"),
               M.ConfusionMatrix()]
    for start in range(0, 103, 25):
        for s in streams:
            s.update(dn.tensor(scores[start:start + 25]), dn.tensor(target[start:start + 25]))
    assert streams[0].compute() == M.accuracy(scores, target)
    assert streams[1].compute() == M.accuracy(scores, target, topk=3)
    assert streams[1].name == "top3_accuracy"
    assert streams[2].compute() == pytest.approx(M.precision(scores, target))
    assert streams[3].compute() == pytest.approx(M.recall(scores, target, average="weighted"))
    assert streams[4].compute() == pytest.approx(M.accuracy(scores, target))  # micro F1 = accuracy
    np.testing.assert_array_equal(streams[5].compute(), M.confusion_matrix(scores, target))
    # state round trip (what a mid-epoch checkpoint stores)
    for s in streams:
        fresh = copy.deepcopy(s)
        fresh.reset()
        fresh.load_state_dict(s.state_dict())
        np.testing.assert_array_equal(fresh.compute(), s.compute())


def test_streaming_confusion_grows_and_auc_and_mean():
    cm = M.ConfusionMatrix()
    cm.update(np.array([0, 1]), np.array([0, 1]))
    cm.update(np.array([3]), np.array([2]))
    np.testing.assert_array_equal(cm.compute(), [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]])
    auc = M.AUROC()
    auc.update(np.array([0.1, 0.4]), np.array([0, 0]))
    auc.update(np.array([0.35, 0.8]), np.array([1, 1]))
    assert auc.compute() == 0.75
    mean = M.Mean()
    mean.update(1.0, 3)
    mean.update(2.0, 1)
    assert mean.compute() == 1.25
    fn = M.FunctionMetric(lambda o, t: float(np.mean(o)), name="avg")
    fn.update(np.ones((3, 2)), np.zeros(3))
    fn.update(np.zeros((1, 2)), np.zeros(1))
    assert fn.compute() == 0.75 and fn.name == "avg"


def test_get_metric_names():
    assert isinstance(M.get_metric("accuracy"), M.Accuracy)
    assert M.get_metric("top5").topk == 5 and M.get_metric("top5_accuracy").name == "top5_accuracy"
    assert isinstance(M.get_metric("f1"), M.F1) and isinstance(M.get_metric("auc"), M.AUROC)
    assert M.get_metric(("mine", len)).name == "mine"
    with pytest.raises(ValueError, match="unknown metric 'bogus'"):
        M.get_metric("bogus")
