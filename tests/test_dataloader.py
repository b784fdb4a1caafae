"""deepnum.data.DataLoader against torch.utils.data: loader arithmetic (2,000 samples at batch 500 → 4
iterations), batch composition, shuffling and its reproducibility from a generator state, collation,
argument checks, background loading (prefetch, worker threads) and the TensorDataset fast path."""
import collections
import threading

import numpy as np
import pytest
import torch
import torch.utils.data as tud

import deepnum as dn
from deepnum.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    Subset,
    TensorDataset,
    default_collate,
    default_convert,
    random_split,
)


def arange_dataset(n, features=3):
    x = np.arange(n * features, dtype=np.float32).reshape(n, features)
    return TensorDataset(dn.tensor(x), dn.arange(n)), tud.TensorDataset(torch.from_numpy(x), torch.arange(n))


class ListDataset(Dataset):
    """A generic (no fast path) map-style dataset of whatever samples it is given."""

    def __init__(self, samples):
        self.samples = samples

    def __getitem__(self, i):
        return self.samples[i]

    def __len__(self):
        return len(self.samples)


def labels(loader):
    return np.concatenate([batch[1].numpy() for batch in loader])


# ----------------------------------------------------------------- arithmetic and composition
@pytest.mark.parametrize("n, batch_size, drop_last, expected", [
    (2000, 500, False, 4), (2000, 500, True, 4), (2001, 500, False, 5), (2001, 500, True, 4),
    (10, 3, False, 4), (10, 3, True, 3), (3, 5, False, 1), (3, 5, True, 0), (0, 4, False, 0), (1, 1, False, 1),
])
def test_len_is_the_epoch_arithmetic(n, batch_size, drop_last, expected):
    ds, tds = arange_dataset(n)
    loader = DataLoader(ds, batch_size=batch_size, drop_last=drop_last, shuffle=True)
    assert len(loader) == expected == len(tud.DataLoader(tds, batch_size=batch_size, drop_last=drop_last))
    batches = list(loader)
    assert len(batches) == expected
    sizes = [len(b[0]) for b in batches]
    assert sum(sizes) == (n // batch_size * batch_size if drop_last else n)
    assert all(s == batch_size for s in sizes[:-1])


@pytest.mark.parametrize("batch_size, drop_last", [(1, False), (4, False), (4, True), (7, False), (30, True)])
@pytest.mark.parametrize("generic", [False, True])
def test_batches_without_shuffle_equal_torch(batch_size, drop_last, generic):
    ds, tds = arange_dataset(29)
    loader = DataLoader(ds, batch_size=batch_size, drop_last=drop_last,
                        collate_fn=(lambda b: default_collate(b)) if generic else None)
    assert loader.fast_path is not generic
    ours, theirs = list(loader), list(tud.DataLoader(tds, batch_size=batch_size, drop_last=drop_last))
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert isinstance(a, list) and len(a) == 2
        for u, v in zip(a, b):
            assert u.dtype == np.dtype(str(v.dtype).replace("torch.", ""))
            np.testing.assert_array_equal(u.numpy(), v.numpy())


def test_batch_size_none_disables_batching_as_torch():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    samples = [(x[i], i) for i in range(4)]
    loader = DataLoader(ListDataset(samples), batch_size=None)
    ours, theirs = list(loader), list(tud.DataLoader(ListDataset(samples), batch_size=None))
    assert len(loader) == 4 == len(ours) == len(theirs)
    for (a, i), (b, j) in zip(ours, theirs):
        assert isinstance(a, dn.Tensor) and a.shape == (3,) and isinstance(i, int)
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert i == j
    ds, _ = arange_dataset(5)
    assert [tuple(t.shape) for t in next(iter(DataLoader(ds, batch_size=None)))] == [(3,), ()]


# ----------------------------------------------------------------- shuffling and reproducibility
@pytest.mark.parametrize("generic", [False, True])
def test_shuffle_sees_every_sample_once_per_epoch(generic):
    ds, _ = arange_dataset(103)
    loader = DataLoader(ds, batch_size=10, shuffle=True, generator=dn.Generator().manual_seed(0),
                        collate_fn=(lambda b: default_collate(b)) if generic else None)
    epochs = [labels(loader) for _ in range(3)]
    for epoch in epochs:
        np.testing.assert_array_equal(np.sort(epoch), np.arange(103))
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    assert not np.array_equal(epochs[0], np.arange(103))


def test_equally_seeded_generators_give_identical_orders():
    ds, _ = arange_dataset(50)
    a = DataLoader(ds, batch_size=8, shuffle=True, generator=dn.Generator().manual_seed(11))
    b = DataLoader(ds, batch_size=8, shuffle=True, generator=dn.Generator().manual_seed(11))
    c = DataLoader(ds, batch_size=8, shuffle=True, generator=dn.Generator().manual_seed(12))
    for _ in range(3):
        order = labels(a)
        np.testing.assert_array_equal(order, labels(b))
        assert not np.array_equal(order, labels(c))


def test_global_generator_drives_shuffle_without_a_generator():
    ds, _ = arange_dataset(40)
    loader = DataLoader(ds, batch_size=8, shuffle=True)
    dn.manual_seed(5)
    first = [labels(loader) for _ in range(2)]
    dn.manual_seed(5)
    second = [labels(loader) for _ in range(2)]
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], first[1])


def test_restoring_the_generator_state_reproduces_an_epoch():
    g = dn.Generator().manual_seed(3)
    ds, _ = arange_dataset(64)
    loader = DataLoader(ds, batch_size=10, shuffle=True, generator=g)
    labels(loader)  # epoch 0
    state = g.get_state()  # checkpoint at the start of epoch 1
    epoch1 = []
    for batch in loader:  # other consumers of g during the epoch must not change its order
        epoch1.append(batch[1].numpy())
        dn.rand(4, generator=g)
    epoch2 = labels(loader)
    g.set_state(state)
    it = iter(loader)
    for i in range(3):  # resume: skip the batches already trained on, then continue
        np.testing.assert_array_equal(next(it)[1].numpy(), epoch1[i])
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in it]), np.concatenate(epoch1[3:]))
    assert not np.array_equal(np.concatenate(epoch1), epoch2)


def test_the_epoch_order_is_drawn_at_iter_not_at_first_next():
    g = dn.Generator().manual_seed(0)
    ds, _ = arange_dataset(20)
    loader = DataLoader(ds, batch_size=20, shuffle=True, generator=g)
    state = g.get_state()
    it = iter(loader)
    dn.rand(3, generator=g)
    first = next(it)[1].numpy()
    g.set_state(state)
    np.testing.assert_array_equal(next(iter(loader))[1].numpy(), first)


# ----------------------------------------------------------------- collation
def to_numpy(obj):
    """Nested structure with every (deepnum or torch) tensor as a NumPy array."""
    if isinstance(obj, dn.Tensor | torch.Tensor):
        return obj.numpy()
    if isinstance(obj, dict):
        return {k: to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(to_numpy(v) for v in obj) if not hasattr(obj, "_fields") else obj._make(map(to_numpy, obj))
    return obj


def assert_same_structure(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_same_structure(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            assert_same_structure(u, v)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


Point = collections.namedtuple("Point", "x y")


def make_samples(lib_tensor):
    rng = np.random.default_rng(0)
    return [{
        "image": lib_tensor(rng.random((2, 3), dtype=np.float32)),
        "label": i,
        "flag": i % 2 == 0,
        "array": rng.integers(0, 9, size=4).astype(np.int32),
        "scalar": np.float32(i / 2),
        "name": f"s{i}",
        "nested": (i, [lib_tensor(np.full(2, i, dtype=np.int64)), {"deep": np.float64(i)}]),
        "point": Point(i, lib_tensor(np.ones(1, dtype=np.float32))),
    } for i in range(4)]


def test_default_collate_matches_torch_on_nested_samples():
    ours = to_numpy(default_collate(make_samples(dn.tensor)))
    theirs = to_numpy(tud.default_collate(make_samples(torch.tensor)))
    assert_same_structure(ours, theirs)
    assert isinstance(ours["nested"], list)  # tuples come back as lists, as torch's


def test_default_collate_number_dtypes():
    assert default_collate([1, 2, 3]).dtype == dn.int64
    assert default_collate([True, False]).dtype == dn.bool
    floats = default_collate([0.5, 1.5])
    assert floats.dtype == dn.float32  # the default dtype (torch gives float64: no silent float64 here)
    np.testing.assert_array_equal(floats.numpy(), [0.5, 1.5])
    assert default_collate([1, 2.5]).dtype == dn.float32
    assert default_collate([np.float64(1), np.float64(2)]).dtype == dn.float64  # NumPy scalars keep their dtype
    assert default_collate([np.zeros(2, np.float16)] * 3).shape == (3, 2)
    dn.set_default_dtype(dn.float64)
    try:
        assert default_collate([0.5]).dtype == dn.float64
    finally:
        dn.set_default_dtype(dn.float32)


def test_default_collate_keeps_gradients():
    xs = [dn.randn(3, requires_grad=True) for _ in range(4)]
    batch = default_collate([(x, 0) for x in xs])[0]
    (batch * dn.arange(4.0).reshape(4, 1)).sum().backward()
    for i, x in enumerate(xs):
        np.testing.assert_array_equal(x.grad.numpy(), np.full(3, float(i), np.float32))


@pytest.mark.parametrize("samples, error, words", [
    ([(dn.zeros(3, 2), 0), (dn.zeros(3, 2), 1), (dn.zeros(3, 3), 2)], RuntimeError,
     ["field [0]", "sample 0 has shape (3, 2)", "sample 2 has shape (3, 3)"]),
    ([{"image": np.zeros((1, 4))}, {"image": np.zeros((2, 4))}], RuntimeError,
     ["field ['image']", "(1, 4)", "(2, 4)"]),
    ([dn.zeros(2), dn.zeros(3)], RuntimeError, ["the samples do not stack", "(2,)", "(3,)"]),
    ([[1, 2], [1]], RuntimeError, ["equal size", "length 2 in sample 0 but 1 in sample 1"]),
    ([None, None], TypeError, ["found <class 'NoneType'>"]),
    ([{"a": np.array(["x"])}] * 2, TypeError, ["<U1", "field ['a']"]),
    ([{"a": 1}, {"b": 1}], KeyError, ["sample 1 has no key 'a'"]),
    ([(dn.zeros(2),), (np.zeros(2),)], TypeError, ["field [0]", "sample 1 is a ndarray"]),
    ([1, "a"], TypeError, ["sample 1 is a str"]),
    ([], ValueError, ["empty batch"]),
])
def test_default_collate_errors_name_the_field_and_shapes(samples, error, words):
    with pytest.raises(error) as info:
        default_collate(samples)
    for word in words:
        assert word in str(info.value)


def test_default_convert_as_torch():
    data = {"a": np.arange(3), "b": (np.float32(2), 1.5, "s"), "c": [np.zeros(2, np.float32)]}
    assert_same_structure(to_numpy(default_convert(data)), to_numpy(tud.default_convert(data)))
    assert isinstance(default_convert(np.arange(3)), dn.Tensor)
    assert default_convert(1.5) == 1.5


# ----------------------------------------------------------------- loader arguments
@pytest.mark.parametrize("kwargs, text", [
    ({"sampler": [0, 1], "shuffle": True}, "sampler option is mutually exclusive with shuffle"),
    ({"batch_sampler": [[0]], "batch_size": 2}, "batch_sampler option is mutually exclusive"),
    ({"batch_sampler": [[0]], "drop_last": True}, "batch_sampler option is mutually exclusive"),
    ({"batch_size": None, "drop_last": True}, "mutually exclusive with drop_last"),
    ({"num_workers": -1}, "num_workers option should be non-negative"),
    ({"timeout": -1}, "timeout option should be non-negative"),
    ({"prefetch_factor": 2}, "prefetch_factor option could only be specified"),
    ({"persistent_workers": True}, "persistent_workers option needs num_workers > 0"),
    ({"batch_size": 0}, "batch_size should be a positive integer value"),
])
def test_loader_argument_errors_as_torch(kwargs, text):
    ds, tds = arange_dataset(4)
    with pytest.raises(ValueError, match=text):
        DataLoader(ds, **kwargs)
    with pytest.raises(ValueError):
        tud.DataLoader(tds, **kwargs)


# ----------------------------------------------------------------- background loading
@pytest.mark.parametrize("options", [{"prefetch": True}, {"num_workers": 2}, {"num_workers": 3, "prefetch_factor": 1}])
@pytest.mark.parametrize("generic", [False, True])
def test_background_loading_gives_the_same_batches_in_order(options, generic):
    ds, _ = arange_dataset(57)
    collate = (lambda b: default_collate(b)) if generic else None
    plain = DataLoader(ds, batch_size=5, shuffle=True, generator=dn.Generator().manual_seed(8), collate_fn=collate)
    background = DataLoader(ds, batch_size=5, shuffle=True, generator=dn.Generator().manual_seed(8),
                            collate_fn=collate, **options)
    for _ in range(2):
        for a, b in zip(plain, background, strict=True):
            np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
            np.testing.assert_array_equal(a[1].numpy(), b[1].numpy())


def test_background_loading_runs_in_another_thread_and_cleans_up():
    seen = set()

    class Recording(ListDataset):
        def __getitem__(self, i):
            seen.add(threading.current_thread().name)
            return super().__getitem__(i)

    before = threading.active_count()
    loader = DataLoader(Recording(list(range(40))), batch_size=4, prefetch=True)
    for i, _ in enumerate(loader):
        if i == 2:
            break
    assert any(name.startswith("deepnum-loader") for name in seen)
    assert threading.main_thread().name not in seen
    assert threading.active_count() == before


def test_background_loading_reraises_errors_and_calls_worker_init_fn():
    class Failing(ListDataset):
        def __getitem__(self, i):
            if i == 9:
                raise KeyError("sample 9 is broken")
            return i

    with pytest.raises(KeyError, match="sample 9 is broken"):
        list(DataLoader(Failing(list(range(12))), batch_size=2, prefetch=True))
    ids = []
    loader = DataLoader(ListDataset(list(range(12))), batch_size=2, num_workers=2, worker_init_fn=ids.append)
    assert sum(len(b) for b in loader) == 12
    assert sorted(ids) == list(range(len(ids))) and 1 <= len(ids) <= 2


# ----------------------------------------------------------------- TensorDataset fast path
def test_fast_path_equals_generic_path_including_subsets():
    rng = np.random.default_rng(0)
    ds = TensorDataset(dn.tensor(rng.random((200, 2, 3), dtype=np.float32)), dn.tensor(rng.integers(0, 5, 200)),
                       dn.tensor(rng.random(200) > 0.5))
    for data in (ds, random_split(ds, [0.75, 0.25], generator=dn.Generator().manual_seed(1))[0]):
        fast = DataLoader(data, batch_size=32, shuffle=True, generator=dn.Generator().manual_seed(0))
        slow = DataLoader(data, batch_size=32, shuffle=True, generator=dn.Generator().manual_seed(0),
                          collate_fn=lambda b: default_collate(b))
        assert fast.fast_path and not slow.fast_path
        for a, b in zip(fast, slow, strict=True):
            assert isinstance(a, list) and isinstance(b, list) and len(a) == len(b) == 3
            for u, v in zip(a, b):
                assert u.dtype == v.dtype and u.shape == v.shape
                np.testing.assert_array_equal(u.numpy(), v.numpy())


def test_fast_path_through_a_subset_with_tensor_indices():
    ds, _ = arange_dataset(10)
    loader = DataLoader(Subset(ds, dn.tensor([7, 2, 5])), batch_size=2)
    assert loader.fast_path and [b[1].tolist() for b in loader] == [[7, 2], [5]]


def test_fast_path_keeps_gradients_of_tensors_that_require_them():
    w = dn.arange(6.0).reshape(3, 2).requires_grad_()
    (batch,) = next(iter(DataLoader(TensorDataset(w), batch_size=2, sampler=[2, 0])))
    batch.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [[1, 1], [0, 0], [1, 1]])


def test_10000_samples_at_batch_128_take_the_fast_path(monkeypatch):
    ds = TensorDataset(dn.randn(10000, 1, 28, 28, generator=dn.Generator().manual_seed(0)), dn.arange(10000))
    loader = DataLoader(ds, batch_size=128, shuffle=True, generator=dn.Generator().manual_seed(2))
    assert loader.fast_path and len(loader) == 79

    def no_per_sample_reads(self, index):
        raise AssertionError("the fast path must not read samples one by one")

    monkeypatch.setattr(TensorDataset, "__getitem__", no_per_sample_reads)
    monkeypatch.setattr(BatchSampler, "__iter__", lambda self: pytest.fail("no per-index lists on the fast path"))
    count, ids = 0, []
    for x, i in loader:
        count += 1
        assert x.shape == (len(i), 1, 28, 28) and x.dtype == dn.float32 and i.dtype == dn.int64
        np.testing.assert_array_equal(x.numpy(), ds.tensors[0].numpy()[i.numpy()])
        ids.append(i.numpy())
    assert count == 79 and [len(b) for b in ids[-2:]] == [128, 10000 - 78 * 128]
    np.testing.assert_array_equal(np.sort(np.concatenate(ids)), np.arange(10000))
