"""Scores for generated sentences: corpus-level BLEU (K. Papineni, S. Roukos, T. Ward, W.-J. Zhu,
"BLEU: a method for automatic evaluation of machine translation", ACL 2002) and exact match.

BLEU-N multiplies a brevity penalty by the geometric mean of the modified n-gram precisions
p_1 ... p_N. Corpus level, as in the paper (section 2.2): the clipped n-gram matches and the
candidate n-gram counts are each summed over all sentences before dividing, and the brevity penalty
``BP = 1 if c > r else exp(1 − r/c)`` uses the total candidate length c and the sum r of the
reference lengths closest to each candidate's length (ties: the shorter). A clipped count is an
n-gram's count in the candidate capped at its largest count in any one reference. No smoothing: if
some p_n is 0 the score is 0 (the paper's definition; NLTK's ``corpus_bleu`` does the same).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

__all__ = ["bleu_statistics", "corpus_bleu", "exact_match"]


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _closest_length(refs: Sequence[Sequence[str]], c: int) -> int:
    return min((len(r) for r in refs), key=lambda length: (abs(length - c), length))


def bleu_statistics(references: Sequence[Sequence[Sequence[str]]], candidates: Sequence[Sequence[str]],
                    max_n: int = 4) -> tuple[list[int], list[int], int, int]:
    """The sums BLEU is made of: clipped matches and candidate n-gram totals for n = 1..max_n, the
    candidate length c and the effective reference length r. ``references[i]`` lists the reference
    token lists of candidate ``i``."""
    if len(references) != len(candidates):
        raise ValueError(f"corpus_bleu: {len(candidates)} candidates but {len(references)} reference lists")
    if max_n < 1:
        raise ValueError(f"corpus_bleu: max_n must be >= 1, got {max_n}")
    matches, totals, c, r = [0] * max_n, [0] * max_n, 0, 0
    for i, (refs, cand) in enumerate(zip(references, candidates, strict=True)):
        if isinstance(cand, str) or any(isinstance(ref, str) for ref in refs) or not refs:
            raise TypeError(f"corpus_bleu: candidate {i} must be a token list with a non-empty list of token-list "
                            "references (split sentences into words first)")
        c += len(cand)
        r += _closest_length(refs, len(cand))
        for n in range(1, max_n + 1):
            counts = _ngrams(cand, n)
            best: Counter = Counter()
            for ref in refs:
                best |= _ngrams(ref, n)
            matches[n - 1] += sum(min(k, best[g]) for g, k in counts.items())
            totals[n - 1] += max(len(cand) - n + 1, 0)
    return matches, totals, c, r


def corpus_bleu(references: Sequence[Sequence[Sequence[str]]], candidates: Sequence[Sequence[str]],
                max_n: int = 4) -> float:
    """Corpus-level BLEU-``max_n`` (uniform weights 1/max_n) in [0, 1]."""
    matches, totals, c, r = bleu_statistics(references, candidates, max_n)
    if c == 0 or any(m == 0 for m in matches):
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / max_n
    brevity = 1.0 if c > r else math.exp(1.0 - r / c)
    return brevity * math.exp(log_precision)


def exact_match(references: Sequence[Sequence[str]], candidates: Sequence[Sequence[str]]) -> float:
    """The fraction of candidates equal, token for token, to their reference."""
    if len(references) != len(candidates):
        raise ValueError(f"exact_match: {len(candidates)} candidates but {len(references)} references")
    if not candidates:
        return 0.0
    return sum(list(a) == list(b) for a, b in zip(references, candidates, strict=True)) / len(candidates)
