"""``deepnum.train``: the training loop (``fit``, ``evaluate``, ``History``), callbacks, metrics,
model summaries and training plots.

``history = fit(model, loader, epochs=10, optimizer=opt, loss_fn=nn.CrossEntropyLoss(), val_loader=val)``;
``summary(model, (1, 28, 28))`` or ``model.summary((1, 28, 28))``. Callbacks and metrics live in the
submodules ``deepnum.train.callbacks`` and ``deepnum.train.metrics``.
"""
from deepnum.train import callbacks, metrics
from deepnum.train._resume import TrainingInterrupted
from deepnum.train.ensemble import Ensemble
from deepnum.train.history import History
from deepnum.train.plots import plot_confusion_matrix, plot_history
from deepnum.train.summary import LayerSummary, ModelSummary, summary
from deepnum.train.trainer import FitState, evaluate, fit

__all__ = [
    "Ensemble", "FitState", "History", "LayerSummary", "ModelSummary", "TrainingInterrupted", "callbacks", "evaluate",
    "fit", "metrics", "plot_confusion_matrix", "plot_history", "summary",
]
