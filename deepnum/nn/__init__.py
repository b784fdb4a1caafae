"""``deepnum.nn``: Module, Parameter, layers, losses and initialisers with PyTorch's names."""
from deepnum.nn import functional, init, parallel, utils
from deepnum.nn.modules.activation import *  # noqa: F403
from deepnum.nn.modules.attention import *  # noqa: F403
from deepnum.nn.modules.batchnorm import *  # noqa: F403
from deepnum.nn.modules.container import ModuleDict, ModuleList, Sequential
from deepnum.nn.modules.conv import *  # noqa: F403
from deepnum.nn.modules.dropout import *  # noqa: F403
from deepnum.nn.modules.linear import Flatten, Identity, Linear, Unflatten
from deepnum.nn.modules.loss import *  # noqa: F403
from deepnum.nn.modules.module import Module
from deepnum.nn.modules.normalization import *  # noqa: F403
from deepnum.nn.modules.pooling import *  # noqa: F403
from deepnum.nn.modules.positional import *  # noqa: F403
from deepnum.nn.modules.rnn import *  # noqa: F403
from deepnum.nn.modules.sparse import *  # noqa: F403
from deepnum.nn.modules.transformer import *  # noqa: F403
from deepnum.nn.modules.upsampling import *  # noqa: F403
from deepnum.nn.parameter import Buffer, Parameter
