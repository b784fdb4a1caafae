"""``deepnum.optim``: optimizers and learning-rate schedulers with PyTorch's update rules."""
from deepnum.optim import lr_scheduler
from deepnum.optim.adagrad import Adagrad
from deepnum.optim.adam import Adam
from deepnum.optim.adamw import AdamW
from deepnum.optim.optimizer import Optimizer
from deepnum.optim.rmsprop import RMSprop
from deepnum.optim.sgd import SGD

__all__ = ["Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "SGD", "lr_scheduler"]
