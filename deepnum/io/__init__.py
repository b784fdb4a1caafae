"""``deepnum.io``: saving and loading. Tensors go to safetensors files (no pickle: loading runs no code,
and PyTorch/JAX read the same files); training checkpoints hold model, optimizer, scheduler, counters
and every random state in one file; ``torch_state_dict``/``load_torch_state_dict`` move weights to and
from PyTorch in memory; ``load_torch``/``save_torch``/``load_torch_checkpoint`` read and write
``torch.save``'s ``.pt`` files without torch and without running code from them (docs/interop.md).
Writes are atomic; loads are checked and raise ``CheckpointError`` naming the file. Needs the
``safetensors`` package (``pip install 'deepnum[io]'``) for the safetensors functions."""
from deepnum.io.checkpoint import load_checkpoint, save_checkpoint
from deepnum.io.interop import load_torch_state_dict, torch_state_dict
from deepnum.io.pytorch import UnsafeCheckpointError, load_torch, load_torch_checkpoint, save_torch
from deepnum.io.safetensors import CheckpointError, load, read_metadata, save

__all__ = ["CheckpointError", "UnsafeCheckpointError", "load", "load_checkpoint", "load_torch",
           "load_torch_checkpoint", "load_torch_state_dict", "read_metadata", "save", "save_checkpoint", "save_torch",
           "torch_state_dict"]
