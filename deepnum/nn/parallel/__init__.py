"""``deepnum.nn.parallel``: ``DistributedDataParallel``, as ``torch.nn.parallel``."""
from deepnum.nn.parallel.distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
