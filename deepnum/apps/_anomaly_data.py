"""The two anomaly-detection data sets of ``deepnum anomaly``, split into train (normal only),
validation (for the threshold) and test.

``mnist``: the bundled MNIST sample (4,000 train / 1,000 test). One digit is the anomaly. Training
uses the other nine digits of the train split, minus a random 10 % kept as normal validation data;
the held-out digit's train-split images are the validation anomalies (used only by the 'f1'
threshold and the validation AUC, never for training). Test: the whole test split, anomaly = the
held-out digit (10 %).

``ecg``: the MIT-BIH record shipped in sktime (``load_dataset('ecg_anomaly')``), standardised with
the mean and standard deviation of the training stretch. Samples 0-3,999 give the training windows,
4,000-4,999 the (normal) validation windows, 5,000-7,499 the test windows, labelled anomalous when
they touch the annotated abnormal stretch (samples 6,936-7,287). The record has no anomaly before
sample 5,000, so its threshold can only be the 'percentile' one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["AnomalyData", "load_anomaly_data"]

ECG_VAL_START = 4000


@dataclass
class AnomalyData:
    """Arrays for one experiment. ``y_*``: 1 = anomaly; ``classes_test``: the finer class of each test
    sample (the digit for MNIST, normal/anomaly for ECG) for the latent plot and k-means."""

    name: str
    x_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes_test: np.ndarray
    class_names: list[str]
    output_activation: str | None
    description: str


def _mnist(holdout: int, seed: int, train_size: int | None) -> AnomalyData:
    from deepnum.data.datasets.mnist import mnist_arrays

    if not isinstance(holdout, int) or not 0 <= holdout <= 9:
        raise ValueError(f"deepnum anomaly: --holdout-digit must be an integer 0-9, got {holdout!r}")
    x, y = mnist_arrays("train")
    x_test, y_test = mnist_arrays("test")
    rng = np.random.default_rng(seed)
    normal = rng.permutation(np.flatnonzero(y != holdout))
    n_val = len(normal) // 10
    train_idx, val_idx = normal[n_val:], normal[:n_val]
    if train_size is not None:
        train_idx = train_idx[:train_size]
    anomalies = np.flatnonzero(y == holdout)
    x_val = np.concatenate([x[val_idx], x[anomalies]])
    y_val = np.r_[np.zeros(len(val_idx), np.int64), np.ones(len(anomalies), np.int64)]
    return AnomalyData("mnist", np.ascontiguousarray(x[train_idx]), x_val, y_val, np.asarray(x_test),
                       (y_test == holdout).astype(np.int64), np.asarray(y_test), [str(d) for d in range(10)],
                       "sigmoid", f"MNIST, digit {holdout} held out as the anomaly")


def _windows(series: np.ndarray, window: int, stride: int) -> np.ndarray:
    starts = np.arange(0, series.size - window + 1, stride)
    return np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(series, window)[starts][:, None, :])


def _ecg(window: int, stride: int) -> AnomalyData:
    from deepnum.data.datasets.timeseries import ECG_TRAIN_END, ecg_record, load_ecg_anomaly

    test = load_ecg_anomaly("test", window=window, stride=stride)
    signal, _ = ecg_record()
    train_part = signal[:ECG_VAL_START]
    mean, std = float(train_part.mean()), float(train_part.std())

    def norm(a: np.ndarray) -> np.ndarray:
        return ((a - np.float32(mean)) / np.float32(std)).astype(np.float32)

    x_train = _windows(norm(train_part), window, stride)
    x_val = _windows(norm(signal[ECG_VAL_START:ECG_TRAIN_END]), window, stride)
    y_test = np.asarray(test.targets)
    return AnomalyData("ecg", x_train, x_val, np.zeros(len(x_val), np.int64), norm(np.asarray(test.data)), y_test,
                       y_test.copy(), ["normal", "anomaly"], None,
                       f"MIT-BIH ECG (sktime mitdb), windows of {window} samples every {stride}")


def load_anomaly_data(name: str, *, holdout: int = 0, seed: int = 0, train_size: int | None = None,
                      window: int = 360, stride: int = 10) -> AnomalyData:
    """``name`` 'mnist' (``holdout``: the anomalous digit; ``train_size``: cap on training images) or
    'ecg' (``window``, ``stride`` in samples)."""
    if name == "mnist":
        return _mnist(holdout, seed, train_size)
    if name == "ecg":
        return _ecg(window, stride)
    raise ValueError(f"deepnum anomaly: --data must be 'mnist' or 'ecg', got {name!r}")
