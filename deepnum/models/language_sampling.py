"""Sampling text from a language model, one token at a time (autoregressive generation).

At every step the model's logits z for the next token are turned into a distribution

    p_i ∝ exp(z_i / T)  over the top-k tokens (the k largest z_i; the others get probability 0),

with temperature T (T < 1 sharpens the distribution towards the most likely tokens, T > 1 flattens
it; T = 0 is the limit: greedy decoding, always the argmax) and top-k truncation (A. Fan, M. Lewis,
Y. Dauphin, "Hierarchical neural story generation", ACL 2018). A token is drawn from p by inverting
its cumulative distribution with one uniform number from a seeded ``deepnum.Generator``, so the same
seed gives the same text. The probabilities are computed on the host in float64 (sampling is not
part of any graph).

A recurrent model (``model.recurrent`` true: ``forward(x, state) -> (logits, state)``) reads the
prompt once and then feeds one character at a time, carrying its state; any other model
(``forward(x) -> logits``) is run on the whole context, cropped to its last ``model.block_size``
tokens when it has that attribute.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deepnum.autograd.grad_mode import no_grad
from deepnum.backend import to_device
from deepnum.random import Generator, default_generator
from deepnum.tensor import Tensor

__all__ = ["generate", "next_token_probs", "sample_next"]


def _check_options(temperature: float, top_k: int | None) -> None:
    if not (isinstance(temperature, int | float) and temperature >= 0 and np.isfinite(temperature)):
        raise ValueError(f"generate: temperature must be a finite number ≥ 0 (0 = greedy), got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, int | np.integer) or isinstance(top_k, bool) or top_k < 1):
        raise ValueError(f"generate: top_k must be None or a positive integer, got {top_k!r}")


def next_token_probs(logits: Any, temperature: float = 1.0, top_k: int | None = None) -> np.ndarray:
    """The sampling distribution (float64, same shape) of next-token ``logits`` (..., V) after
    temperature and top-k (see the module docstring). ``temperature=0`` gives the one-hot argmax
    (the first maximum), and so does ``top_k=1``."""
    _check_options(temperature, top_k)
    z = np.asarray(logits.detach().numpy() if isinstance(logits, Tensor) else logits, dtype=np.float64)
    if z.ndim == 0 or z.shape[-1] == 0:
        raise ValueError(f"next_token_probs: expected logits of shape (..., V) with V ≥ 1, got {z.shape}")
    vocab = z.shape[-1]
    if temperature == 0 or top_k == 1:
        return np.eye(vocab)[np.argmax(z, axis=-1)]
    z = z / temperature
    if top_k is not None and top_k < vocab:
        # exactly k tokens survive, ties broken towards the lower index (as argmax does)
        order = np.argsort(-z, axis=-1, kind="stable")
        dropped = order[..., top_k:]
        np.put_along_axis(z, dropped, -np.inf, axis=-1)
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=-1, keepdims=True)


def sample_next(logits: Any, temperature: float = 1.0, top_k: int | None = None,
                generator: Generator | None = None) -> np.ndarray:
    """One token id per row of ``logits`` (N, V), drawn from ``next_token_probs`` by inverse-CDF
    sampling with one uniform number per row from ``generator`` (the global one by default)."""
    p = next_token_probs(logits, temperature, top_k)
    if p.ndim != 2:
        raise ValueError(f"sample_next: expected logits of shape (N, V), got {p.shape}")
    if temperature == 0 or top_k == 1:
        return np.argmax(p, axis=-1).astype(np.int64)
    u = (generator or default_generator).rng.random((p.shape[0], 1))
    cdf = np.cumsum(p, axis=-1)
    ids = (cdf < u * cdf[:, -1:]).sum(axis=-1)
    return np.minimum(ids, p.shape[1] - 1).astype(np.int64)


def _prompt_array(prompt_ids: Any) -> tuple[np.ndarray, bool]:
    """(N, T) int64 array of the prompt and whether it was given as one sequence (1-D)."""
    if isinstance(prompt_ids, Tensor):
        prompt_ids = prompt_ids.detach().numpy()
    array = np.asarray(prompt_ids if not isinstance(prompt_ids, str) else None)
    if array.dtype == object or (array.size and array.dtype.kind not in "iu"):
        raise TypeError(f"generate: prompt_ids must be integer token ids (a sequence, array or Tensor), got "
                        f"{type(prompt_ids).__name__} of dtype {array.dtype}")
    if array.ndim not in (1, 2) or array.shape[-1] == 0:
        raise ValueError(f"generate: expected a non-empty prompt of shape (T,) or (N, T), got {array.shape}")
    single = array.ndim == 1
    return array.astype(np.int64).reshape(1, -1) if single else array.astype(np.int64), single


def _model_device(model: Any) -> str:
    for p in model.parameters():
        return p.device
    return "cpu"


def generate(model: Any, prompt_ids: Sequence[int] | np.ndarray | Tensor, max_new_tokens: int,
             temperature: float = 1.0, top_k: int | None = None, generator: Generator | None = None) -> Tensor:
    """Extend ``prompt_ids`` ((T,) or (N, T) token ids) by ``max_new_tokens`` tokens sampled from
    ``model``; returns the prompt followed by the new tokens, an int64 Tensor (T + max_new_tokens,)
    or (N, T + max_new_tokens). Runs in eval mode under ``no_grad`` (the mode is restored after).
    ``temperature=0`` (or ``top_k=1``) decodes greedily; see the module docstring."""
    _check_options(temperature, top_k)
    if not isinstance(max_new_tokens, int | np.integer) or isinstance(max_new_tokens, bool) or max_new_tokens < 0:
        raise ValueError(f"generate: max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
    ids, single = _prompt_array(prompt_ids)
    device = _model_device(model)
    recurrent = bool(getattr(model, "recurrent", False))
    block = getattr(model, "block_size", None)
    new = np.empty((ids.shape[0], int(max_new_tokens)), dtype=np.int64)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            state, feed = None, ids
            for i in range(int(max_new_tokens)):
                if recurrent:
                    logits, state = model(Tensor._make(to_device(feed, device)), state)
                else:
                    context = np.concatenate([ids, new[:, :i]], axis=1)
                    feed = context[:, -block:] if block else context
                    logits = model(Tensor._make(to_device(feed, device)))
                last = to_device(logits.data[:, -1], "cpu")
                new[:, i] = sample_next(last, temperature, top_k, generator)
                feed = new[:, i:i + 1]
    finally:
        model.train(was_training)
    out = np.concatenate([ids, new], axis=1)
    return Tensor._make(out[0] if single else out)
