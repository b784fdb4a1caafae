"""deepnum.data: datasets, samplers and the DataLoader, as ``torch.utils.data``.

``from deepnum.data import DataLoader, TensorDataset, random_split``. The transforms and the
dataset registry live in the submodules ``deepnum.data.transforms`` and ``deepnum.data.datasets``,
imported explicitly (``from deepnum.data import transforms``) so that this package stays light.
"""
from deepnum.data._collate import default_collate, default_convert
from deepnum.data.dataloader import DataLoader
from deepnum.data.dataset import ConcatDataset, Dataset, IterableDataset, Subset, TensorDataset, random_split
from deepnum.data.sampler import (
    BatchSampler,
    DistributedSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)

__all__ = [
    "BatchSampler", "ConcatDataset", "DataLoader", "Dataset", "DistributedSampler", "IterableDataset",
    "RandomSampler", "Sampler", "SequentialSampler", "Subset", "SubsetRandomSampler", "TensorDataset",
    "WeightedRandomSampler",
    "default_collate", "default_convert", "random_split",
]
