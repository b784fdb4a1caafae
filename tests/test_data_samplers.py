"""deepnum.data's samplers, random_split and dataset wrappers against torch.utils.data: sampler
orders and statistics with seeded generators, torch's rounding of split fractions, TensorDataset,
Subset, ConcatDataset and IterableDataset."""
import warnings

import numpy as np
import pytest
import torch
import torch.utils.data as tud

import deepnum as dn
from deepnum.data import (
    BatchSampler,
    ConcatDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    random_split,
)
from tests.test_dataloader import ListDataset, arange_dataset, labels


# ----------------------------------------------------------------- samplers
def test_sequential_and_batch_sampler_equal_torch():
    assert list(SequentialSampler(range(7))) == list(tud.SequentialSampler(range(7)))
    for bs, drop in [(3, False), (3, True), (7, False), (10, True)]:
        ours = BatchSampler(SequentialSampler(range(7)), bs, drop)
        theirs = tud.BatchSampler(tud.SequentialSampler(range(7)), bs, drop)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)
        assert list(BatchSampler([5, 3, 1, 0, 2], bs, drop)) == list(tud.BatchSampler([5, 3, 1, 0, 2], bs, drop))


def test_random_sampler_without_replacement():
    g = dn.Generator().manual_seed(0)
    sampler = RandomSampler(range(10), generator=g)
    assert len(sampler) == 10
    assert sorted(sampler) == list(range(10))
    long = RandomSampler(range(10), num_samples=25, generator=g)
    drawn = list(long)
    assert len(long) == 25 == len(drawn)
    np.testing.assert_array_equal(np.sort(drawn[:10]), np.arange(10))  # whole permutations first
    np.testing.assert_array_equal(np.sort(drawn[10:20]), np.arange(10))
    assert len(set(drawn[20:])) == 5


def test_random_sampler_with_replacement():
    sampler = RandomSampler(range(5), replacement=True, num_samples=2000, generator=dn.Generator().manual_seed(1))
    drawn = np.array(list(sampler))
    assert drawn.shape == (2000,) and drawn.min() == 0 and drawn.max() == 4
    counts = np.bincount(drawn, minlength=5)
    assert np.all(np.abs(counts - 400) < 80)  # ~4.5 sigma of Binomial(2000, 0.2)
    assert len(RandomSampler(range(5), replacement=True)) == 5


@pytest.mark.parametrize("kwargs, error, text", [
    ({"replacement": 1}, TypeError, "replacement should be a boolean value"),
    ({"num_samples": 0}, ValueError, "num_samples should be a positive integer"),
    ({"num_samples": 2.5}, ValueError, "num_samples should be a positive integer"),
])
def test_random_sampler_validation(kwargs, error, text):
    with pytest.raises(error, match=text):
        RandomSampler(range(3), **kwargs)
    with pytest.raises(error):
        tud.RandomSampler(range(3), **kwargs)


def test_subset_random_sampler():
    g = dn.Generator().manual_seed(2)
    sampler = SubsetRandomSampler([4, 8, 15, 16, 23, 42], generator=g)
    first, second = list(sampler), list(sampler)
    assert sorted(first) == sorted(second) == [4, 8, 15, 16, 23, 42] and len(sampler) == 6
    assert first != second
    assert sorted(SubsetRandomSampler(dn.tensor([3, 1]))) == [1, 3]


def test_weighted_random_sampler_honours_weights():
    weights = [1.0, 0.0, 3.0, 6.0]
    sampler = WeightedRandomSampler(weights, num_samples=20000, generator=dn.Generator().manual_seed(4))
    drawn = np.array(list(sampler))
    assert len(sampler) == 20000 == len(drawn)
    freq = np.bincount(drawn, minlength=4) / 20000
    assert freq[1] == 0
    np.testing.assert_allclose(freq, [0.1, 0.0, 0.3, 0.6], atol=0.015)
    without = list(WeightedRandomSampler(dn.tensor(weights), 3, replacement=False,
                                         generator=dn.Generator().manual_seed(0)))
    assert sorted(without) == [0, 2, 3]


@pytest.mark.parametrize("weights, num_samples, replacement, error, text", [
    ([[1.0, 2.0]], 2, True, ValueError, "1d sequence"),
    ([1.0, -1.0], 2, True, ValueError, "non-negative"),
    ([0.0, 0.0], 2, True, ValueError, "not all zero"),
    ([1.0, 0.0, 1.0], 3, False, ValueError, "without replacement from 2 non-zero weights"),
    ([1.0], 0, True, ValueError, "num_samples should be a positive integer"),
    ([1.0], 1, "yes", TypeError, "replacement should be a boolean"),
])
def test_weighted_random_sampler_validation(weights, num_samples, replacement, error, text):
    with pytest.raises(error, match=text):
        WeightedRandomSampler(weights, num_samples, replacement)


def test_batch_sampler_validation():
    with pytest.raises(ValueError, match="batch_size should be a positive integer value, but got batch_size=0"):
        BatchSampler(range(3), 0, False)
    with pytest.raises(TypeError, match="drop_last should be a boolean value"):
        BatchSampler(range(3), 2, 0)


def test_loader_with_custom_samplers():
    ds, _ = arange_dataset(10)
    sampler = WeightedRandomSampler([0.0] * 5 + [1.0] * 5, 12, generator=dn.Generator().manual_seed(0))
    loader = DataLoader(ds, batch_size=5, sampler=sampler)
    assert len(loader) == 3 and loader.fast_path
    got = labels(loader)
    assert len(got) == 12 and got.min() >= 5
    by_batches = DataLoader(ds, batch_sampler=[[9, 0], [3], [4, 4, 4]])
    assert [b[1].tolist() for b in by_batches] == [[9, 0], [3], [4, 4, 4]] and len(by_batches) == 3
    assert labels(DataLoader(ds, batch_size=4, sampler=[7, 1, 2])).tolist() == [7, 1, 2]


# ----------------------------------------------------------------- random_split
@pytest.mark.parametrize("n, lengths", [
    (10, [0.33, 0.33, 0.34]), (11, [0.5, 0.5]), (7, [0.1, 0.1, 0.8]), (2000, [0.8, 0.2]), (1001, [0.9, 0.1]),
    (5, [1.0]), (13, [0.25, 0.25, 0.25, 0.25]), (2, [0.1, 0.1, 0.8]), (10, [3, 7]), (10, [0, 10]),
])
def test_random_split_lengths_equal_torch(n, lengths):
    with warnings.catch_warnings(record=True) as torch_warned:
        warnings.simplefilter("always")
        theirs = tud.random_split(range(n), lengths, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        ours = random_split(ListDataset(list(range(n))), lengths, generator=dn.Generator().manual_seed(0))
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    assert bool(warned) == bool(torch_warned)  # a split of length 0 warns, as torch's
    together = np.concatenate([np.asarray([s[i] for i in range(len(s))], dtype=np.int64) for s in ours])
    np.testing.assert_array_equal(np.sort(together), np.arange(n))  # disjoint and complete


def test_random_split_is_deterministic_for_a_seed():
    ds, _ = arange_dataset(100)
    a = random_split(ds, [0.7, 0.3], generator=dn.Generator().manual_seed(9))
    b = random_split(ds, [70, 30], generator=dn.Generator().manual_seed(9))
    c = random_split(ds, [70, 30], generator=dn.Generator().manual_seed(10))
    assert a[0].indices == b[0].indices and a[1].indices == b[1].indices
    assert a[0].indices != c[0].indices
    assert isinstance(a[0], Subset) and a[0][0][1].item() == a[0].indices[0]


def test_random_split_errors():
    ds = ListDataset(list(range(10)))
    with pytest.raises(ValueError, match="does not equal the length of the input dataset"):
        random_split(ds, [3, 3])
    with pytest.raises(ValueError, match="fraction at index 0 is not between 0 and 1"):
        random_split(ds, [1.5, -0.5])
    with pytest.raises(ValueError, match="non-negative integers or fractions"):
        random_split(ds, [2.5, 7.5])


# ----------------------------------------------------------------- datasets
def test_tensor_dataset_items_and_size_mismatch():
    ds, _ = arange_dataset(6)
    x, y = ds[2]
    np.testing.assert_array_equal(x.numpy(), [6, 7, 8])
    assert y.shape == () and y.item() == 2 and len(ds) == 6
    with pytest.raises(ValueError, match=r"size mismatch.*\(6, 3\), \(5,\)"):
        TensorDataset(dn.zeros(6, 3), dn.zeros(5))
    with pytest.raises(ValueError, match="0-d"):
        TensorDataset(dn.tensor(1.0))


def test_concat_dataset_and_add():
    a, b = ListDataset([0, 1, 2]), ListDataset([10, 11])
    both = a + b
    assert isinstance(both, ConcatDataset) and len(both) == 5 and both.cumulative_sizes == [3, 5]
    assert [both[i] for i in range(5)] == [0, 1, 2, 10, 11] and both[-1] == 11 and both[-5] == 0
    with pytest.raises(ValueError, match="should not exceed dataset length"):
        both[-6]
    with pytest.raises(IndexError):
        both[5]
    with pytest.raises(ValueError, match="empty iterable"):
        ConcatDataset([])
    assert labels(DataLoader(ConcatDataset([arange_dataset(3)[0], arange_dataset(2)[0]]), batch_size=2)).tolist() \
        == [0, 1, 2, 0, 1]


def test_subset_and_base_dataset():
    ds = Subset(ListDataset(list("abcdef")), [5, 0, 3])
    assert len(ds) == 3 and ds[0] == "f" and ds.__getitems__([2, 1]) == ["d", "a"]
    assert ds.__getbatch__ is None
    with pytest.raises(NotImplementedError):
        Dataset()[0]


class Stream(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        return self.n


@pytest.mark.parametrize("prefetch", [False, True])
def test_iterable_dataset(prefetch):
    loader = DataLoader(Stream(7), batch_size=3, prefetch=prefetch)
    assert len(loader) == 3 and [b.tolist() for b in loader] == [[0, 1, 2], [3, 4, 5], [6]]
    dropping = DataLoader(Stream(7), batch_size=3, drop_last=True, prefetch=prefetch)
    assert len(dropping) == 2 and [b.tolist() for b in dropping] == [[0, 1, 2], [3, 4, 5]]
    assert list(DataLoader(Stream(3), batch_size=None, prefetch=prefetch)) == [0, 1, 2]
    torch_stream = type("TorchStream", (tud.IterableDataset,), {"__iter__": lambda self: iter(range(7))})()
    torch_batches = [b.tolist() for b in tud.DataLoader(torch_stream, batch_size=3)]
    assert torch_batches == [b.tolist() for b in loader]
    with pytest.raises(ValueError, match="expected unspecified shuffle option"):
        DataLoader(Stream(3), shuffle=True)
    with pytest.raises(NotImplementedError, match="prefetch=True"):
        DataLoader(Stream(3), num_workers=2)
