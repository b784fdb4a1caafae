"""Test-session settings. Torch is only the oracle here: its calls are tiny, and on the 2-core CI
machine its thread pool only adds contention, so it runs single-threaded (no result changes)."""
import torch

torch.set_num_threads(1)
