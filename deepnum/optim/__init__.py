"""``deepnum.optim``: optimizers and learning-rate schedulers with PyTorch's update rules."""
from deepnum.optim import lr_scheduler
from deepnum.optim.optimizer import Optimizer
from deepnum.optim.sgd import SGD
