"""``deepnum.io``: saving and loading. Tensors go to safetensors files (no pickle: loading runs no code,
and PyTorch/JAX read the same files); training checkpoints hold model, optimizer, scheduler, counters
and every random state in one file; ``torch_state_dict``/``load_torch_state_dict`` move weights to and
from PyTorch. Writes are atomic; loads are checked and raise ``CheckpointError`` naming the file.
Needs the ``safetensors`` package (``pip install 'deepnum[io]'``) for the file functions."""
from deepnum.io.checkpoint import load_checkpoint, save_checkpoint
from deepnum.io.interop import load_torch_state_dict, torch_state_dict
from deepnum.io.safetensors import CheckpointError, load, read_metadata, save

__all__ = ["CheckpointError", "load", "load_checkpoint", "load_torch_state_dict", "read_metadata", "save",
           "save_checkpoint", "torch_state_dict"]
