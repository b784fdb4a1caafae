"""The sentences of ``deepnum caption``: a tiny grammar over the digits of a canvas, read left to right,
a word-level vocabulary with ``<pad>``, ``<bos>`` and ``<eos>``, and the padded token arrays that
teacher forcing trains on.

The grammar (one digit, two, three)::

    a 3
    a 3 left of an 8
    a 3 , a 1 and a 7 from left to right

"an" before 8 (the only digit name that starts with a vowel sound), "a" otherwise.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PAD", "BOS", "EOS", "Vocabulary", "caption", "encode_captions"]

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
_WORDS = ("a", "an", *[str(d) for d in range(10)], "left", "of", ",", "and", "from", "to", "right")


def _article(digit: int) -> str:
    return "an" if digit == 8 else "a"


def caption(digits: Sequence[int]) -> list[str]:
    """The sentence for ``digits`` (read left to right) as a list of words."""
    ds = [int(d) for d in digits]
    if not 1 <= len(ds) <= 3 or any(not 0 <= d <= 9 for d in ds):
        raise ValueError(f"caption: expected 1 to 3 digits in 0..9, got {list(digits)}")
    phrases = [[_article(d), str(d)] for d in ds]
    if len(ds) == 1:
        return phrases[0]
    if len(ds) == 2:
        return [*phrases[0], "left", "of", *phrases[1]]
    return [*phrases[0], ",", *phrases[1], "and", *phrases[2], "from", "left", "to", "right"]


@dataclass(frozen=True)
class Vocabulary:
    """Word ↔ index: 0 ``<pad>``, 1 ``<bos>``, 2 ``<eos>``, then the grammar's words."""

    words: tuple[str, ...] = (PAD, BOS, EOS, *_WORDS)

    def __len__(self) -> int:
        return len(self.words)

    @property
    def pad(self) -> int:
        return self.words.index(PAD)

    @property
    def bos(self) -> int:
        return self.words.index(BOS)

    @property
    def eos(self) -> int:
        return self.words.index(EOS)

    def encode(self, words: Sequence[str]) -> list[int]:
        unknown = [w for w in words if w not in self.words]
        if unknown:
            raise ValueError(f"Vocabulary.encode: unknown word(s) {unknown}")
        return [self.words.index(w) for w in words]

    def decode(self, ids: Sequence[int]) -> list[str]:
        """The words of ``ids`` up to the first ``<eos>``, without ``<bos>``/``<pad>``."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos:
                break
            if i not in (self.pad, self.bos):
                out.append(self.words[i])
        return out


def encode_captions(sentences: Sequence[Sequence[str]], vocab: Vocabulary, length: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Teacher-forcing arrays (N, length) int64: inputs ``<bos> w1 .. wn`` and targets ``w1 .. wn <eos>``,
    padded with ``<pad>`` (which the loss ignores)."""
    n = len(sentences)
    inputs = np.full((n, length), vocab.pad, np.int64)
    targets = np.full((n, length), vocab.pad, np.int64)
    for i, words in enumerate(sentences):
        ids = vocab.encode(words)
        if len(ids) + 1 > length:
            raise ValueError(f"encode_captions: sentence {i} has {len(ids)} words; length {length} holds "
                             f"at most {length - 1}")
        inputs[i, :len(ids) + 1] = [vocab.bos, *ids]
        targets[i, :len(ids) + 1] = [*ids, vocab.eos]
    return inputs, targets
