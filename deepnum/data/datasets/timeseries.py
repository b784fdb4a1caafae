"""Time series shipped inside the ``sktime`` wheel (``sktime/datasets/data/``), read with no network.

UCR/UEA classification problems (Dau et al., 2019; Bagnall et al., 2018), loaded with sktime's own
loaders (``load_basic_motions`` ...), which read the ``.ts`` files in the wheel and never download
(they call ``_load_provided_dataset`` on the package's data folder). The split is the archive's own
TRAIN/TEST. Series are float32 (channels, length), raw values (not normalised); labels are int64
indices into ``classes``, the sorted class names of train and test together (numerically sorted when
every name is an integer). Two problems have series of unequal length (``japanese_vowels``, ``plaid``):
they are zero-padded at the end to the longest series of both splits, and ``dataset.lengths``
holds each true length.

``ecg_anomaly``: ``sktime/datasets/data/mitdb/mitdb.csv``, 7,500 samples of one ECG record from the
MIT-BIH Arrhythmia Database (PhysioNet ``mitdb``, 360 Hz, about 21 s) with a point-wise anomaly label
(352 anomalous samples, one segment at 6,936-7,287). sktime has no loader for it, so the CSV is read
with NumPy. Split by time: ``train`` is samples 0-4,999 (all normal), ``test`` 5,000-7,499 (holds
the anomaly). Samples are windows (1, ``window``) starting every ``stride`` samples, labelled 1 when
any sample in the window is anomalous; ``dataset.series``/``point_labels`` hold the split's raw
signal and point labels, ``dataset.starts`` each window's start in it. (sktime ships no ECG200 or
ECG5000; this record is its only ECG data.)
"""
from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np

from deepnum.data.datasets._common import ArrayDataset, check_split, readonly, require_package

__all__ = ["SKTIME_INSTALL", "UCR_UEA", "load_ecg_anomaly", "load_ucr_uea"]

SKTIME_INSTALL = "pip install sktime"
# name -> (sktime loader, unequal length?)
UCR_UEA: dict[str, tuple[str, bool]] = {
    "basic_motions": ("load_basic_motions", False),
    "gunpoint": ("load_gunpoint", False),
    "arrow_head": ("load_arrow_head", False),
    "italy_power_demand": ("load_italy_power_demand", False),
    "osuleaf": ("load_osuleaf", False),
    "acsf1": ("load_acsf1", False),
    "japanese_vowels": ("load_japanese_vowels", True),
    "plaid": ("load_plaid", True),
}
ECG_TRAIN_END = 5000
_CACHE: dict[str, dict] = {}


def _sorted_classes(names: np.ndarray) -> list[str]:
    unique = sorted({str(v) for v in names})
    if all(u.lstrip("-").isdigit() for u in unique):
        unique.sort(key=int)
    return unique


def _padded(frame: object) -> tuple[np.ndarray, np.ndarray]:
    """A nested sktime DataFrame (one pandas Series per cell) as (N, C, max_len) zero-padded + lengths."""
    cells = [[np.asarray(frame.iloc[i, c], dtype=np.float32) for c in range(frame.shape[1])]
             for i in range(frame.shape[0])]
    lengths = np.array([max(len(s) for s in row) for row in cells], dtype=np.int64)
    out = np.zeros((len(cells), frame.shape[1], int(lengths.max())), dtype=np.float32)
    for i, row in enumerate(cells):   # one copy per series: the series differ in length
        for c, series in enumerate(row):
            out[i, c, :len(series)] = series
    return out, lengths


def _load_ucr(name: str) -> dict:
    require_package("sktime", SKTIME_INSTALL, name)
    loader_name, unequal = UCR_UEA[name]
    loader = getattr(importlib.import_module("sktime.datasets"), loader_name)
    raw = {}
    for split in ("train", "test"):
        if unequal:
            frame, y = loader(split=split)
            x, lengths = _padded(frame)
        else:
            x, y = loader(split=split, return_type="numpy3D")
            x = np.asarray(x, dtype=np.float32)
            lengths = np.full(x.shape[0], x.shape[2], dtype=np.int64)
        raw[split] = (x, np.asarray(y).astype(str), lengths)
    classes = _sorted_classes(np.concatenate([raw["train"][1], raw["test"][1]]))
    index = {c: i for i, c in enumerate(classes)}
    width = max(raw["train"][0].shape[2], raw["test"][0].shape[2])
    out: dict = {"classes": classes}
    for split, (x, y, lengths) in raw.items():
        if x.shape[2] < width:
            x = np.pad(x, ((0, 0), (0, 0), (0, width - x.shape[2])))
        labels = np.array([index[v] for v in y], dtype=np.int64)
        out[split] = (readonly(np.ascontiguousarray(x)), readonly(labels), readonly(lengths))
    return out


def load_ucr_uea(name: str, split: str = "train", *, transform: Callable | None = None,
                 target_transform: Callable | None = None) -> ArrayDataset:
    """A UCR/UEA problem shipped in sktime: (channels, length) float32 series, int64 labels."""
    if name not in UCR_UEA:
        raise ValueError(f"unknown UCR/UEA problem {name!r}; shipped ones: {', '.join(UCR_UEA)}")
    check_split(name, split, ("train", "test"))
    require_package("sktime", SKTIME_INSTALL, name)
    if name not in _CACHE:
        _CACHE[name] = _load_ucr(name)
    x, y, lengths = _CACHE[name][split]
    dataset = ArrayDataset(x, y, classes=_CACHE[name]["classes"], transform=transform,
                           target_transform=target_transform, name=f"{name}[{split}]")
    dataset.lengths = lengths
    return dataset


def ecg_record() -> tuple[np.ndarray, np.ndarray]:
    """The whole mitdb record: (signal (7500,) float32, point labels (7500,) int64)."""
    path = require_package("sktime", SKTIME_INSTALL, "ecg_anomaly") / "datasets" / "data" / "mitdb" / "mitdb.csv"
    if "ecg_anomaly" not in _CACHE:
        if not path.is_file():
            raise FileNotFoundError(f"dataset 'ecg_anomaly': the installed sktime has no {path}; "
                                    f"install a version that ships it with: {SKTIME_INSTALL}")
        table = np.loadtxt(path, delimiter=",", skiprows=1)
        if table.ndim != 2 or table.shape[1] != 2:
            raise ValueError(f"dataset 'ecg_anomaly': {path} should have columns data,label; got shape {table.shape}")
        _CACHE["ecg_anomaly"] = (readonly(table[:, 0].astype(np.float32)), readonly(table[:, 1].astype(np.int64)))
    return _CACHE["ecg_anomaly"]


def load_ecg_anomaly(split: str = "train", *, window: int = 180, stride: int | None = None,
                     transform: Callable | None = None, target_transform: Callable | None = None) -> ArrayDataset:
    """MIT-BIH ECG windows (1, window) float32, label 1 when the window touches the anomaly.
    ``stride`` defaults to ``window // 4``."""
    check_split("ecg_anomaly", split, ("train", "test"))
    stride = max(1, window // 4) if stride is None else stride
    signal, points = ecg_record()
    lo, hi = (0, ECG_TRAIN_END) if split == "train" else (ECG_TRAIN_END, signal.size)
    series, point_labels = signal[lo:hi], points[lo:hi]
    if int(window) != window or not 1 <= window <= series.size or int(stride) != stride or stride < 1:
        raise ValueError(f"dataset 'ecg_anomaly': window must be an integer in [1, {series.size}] and stride a "
                         f"positive integer, got window={window}, stride={stride}")
    starts = np.arange(0, series.size - window + 1, stride)
    x = np.lib.stride_tricks.sliding_window_view(series, window)[starts][:, None, :]
    y = np.lib.stride_tricks.sliding_window_view(point_labels, window)[starts].max(axis=1)
    dataset = ArrayDataset(readonly(x), readonly(y.astype(np.int64)), classes=["normal", "anomaly"],
                           transform=transform, target_transform=target_transform, name=f"ecg_anomaly[{split}]")
    dataset.series, dataset.point_labels, dataset.starts = series, point_labels, starts
    return dataset
