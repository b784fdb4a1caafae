"""Model ensembles: average the predictions of several independently trained networks (L. K. Hansen,
P. Salamon, "Neural network ensembles", IEEE TPAMI 1990; B. Lakshminarayanan, A. Pritzel, C. Blundell,
"Simple and scalable predictive uncertainty estimation using deep ensembles", NeurIPS 2017).

``Ensemble(models)`` is a ``Module`` whose forward returns **log-probabilities**
``log((1/M) Σ_m softmax(f_m(x)))``, computed stably as ``logsumexp_m(log_softmax(f_m(x))) - log M``.
These are valid logits: ``softmax`` of them gives the averaged probabilities back, ``argmax`` gives the
ensemble's vote, and ``CrossEntropyLoss`` on them is the ensemble's negative log-likelihood, so
``train.evaluate(ensemble, loader, loss_fn=nn.CrossEntropyLoss())`` works unchanged. With
``average='logits'`` the forward returns the mean of the members' logits instead (a geometric mean of
the probabilities, renormalised). The ensemble starts in eval mode (its members are trained models);
``ensemble.train()`` switches every member back, as any Module.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from deepnum.functional.activation import log_softmax, softmax
from deepnum.functional.joining import stack
from deepnum.functional.reduction import logsumexp, mean
from deepnum.nn.modules.container import ModuleList
from deepnum.nn.modules.module import Module
from deepnum.tensor import Tensor

__all__ = ["Ensemble"]

_AVERAGES = ("probs", "logits")


class Ensemble(Module):
    """Average of ``models``' predictions for (N, ...) inputs; each member returns (N, C) logits.
    ``average='probs'`` (default) returns log of the mean probability, ``'logits'`` the mean logit."""

    def __init__(self, models: Iterable[Module], average: str = "probs") -> None:
        super().__init__()
        members = list(models)
        if not members:
            raise ValueError("Ensemble: models must hold at least one Module, got none")
        bad = [f"{i}: {type(m).__name__}" for i, m in enumerate(members) if not isinstance(m, Module)]
        if bad:
            raise TypeError(f"Ensemble: every member must be a deepnum.nn.Module, got {', '.join(bad)}")
        if average not in _AVERAGES:
            raise ValueError(f"Ensemble: average must be one of {_AVERAGES}, got {average!r}")
        self.members = ModuleList(members)
        self.average = average
        self.eval()

    def __len__(self) -> int:
        return len(self.members)

    def member_logits(self, x: Any) -> list[Tensor]:
        """Each member's (N, C) logits, first member first; raises if their shapes differ."""
        outputs = [m(x) for m in self.members]
        shapes = [tuple(o.shape) for o in outputs]
        if any(o.ndim != 2 for o in outputs) or len(set(shapes)) != 1:
            raise ValueError(f"Ensemble: every member must return (N, C) logits of one shape, got {shapes}")
        return outputs

    def forward(self, x: Any) -> Tensor:
        logits = stack(self.member_logits(x), 0)                   # (M, N, C)
        if self.average == "logits":
            return mean(logits, 0)
        return logsumexp(log_softmax(logits, -1), 0) - math.log(len(self.members))

    def predict_proba(self, x: Any) -> Tensor:
        """The ensemble's (N, C) class probabilities (the softmax of ``forward``)."""
        return softmax(self.forward(x), -1)

    def extra_repr(self) -> str:
        return f"members={len(self.members)}, average={self.average!r}"
