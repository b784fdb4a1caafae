"""Every differentiable op, one file per family. Tensor methods and the top-level ``deepnum.*``
functions are thin names for these."""
from deepnum.functional import activation, array, compare, indexing, joining, linalg, math, reduction
from deepnum.functional.activation import *  # noqa: F403
from deepnum.functional.array import *  # noqa: F403
from deepnum.functional.compare import *  # noqa: F403
from deepnum.functional.indexing import *  # noqa: F403
from deepnum.functional.joining import *  # noqa: F403
from deepnum.functional.linalg import *  # noqa: F403
from deepnum.functional.math import *  # noqa: F403
from deepnum.functional.reduction import *  # noqa: F403

# The layer families (conv, pooling, normalization, loss, ...) are not star-imported: they are
# deepnum.nn.functional's, not top-level deepnum names. Their module names must not shadow an op
# name exported here (a submodule import binds its name on this package).

_MODULES = (math, compare, array, joining, linalg, reduction, activation, indexing)
__all__ = [name for module in _MODULES for name in module.__all__]
