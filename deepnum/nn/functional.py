"""``deepnum.nn.functional``: the stateless form of every layer, loss and activation, under the
names of ``torch.nn.functional``. The ops themselves live in ``deepnum.functional``."""
from deepnum.functional.activation import *  # noqa: F403
from deepnum.functional.attention import *  # noqa: F403
from deepnum.functional.conv import *  # noqa: F403
from deepnum.functional.dropout import *  # noqa: F403
from deepnum.functional.indexing import gather  # noqa: F401
from deepnum.functional.joining import pad  # noqa: F401
from deepnum.functional.loss import *  # noqa: F403
from deepnum.functional.math import tanh  # noqa: F401
from deepnum.functional.normalization import *  # noqa: F403
from deepnum.functional.pooling import *  # noqa: F403
from deepnum.functional.sparse import *  # noqa: F403
from deepnum.functional.upsampling import *  # noqa: F403
from deepnum.nn.modules.linear import linear  # noqa: F401
