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

_MODULES = (math, compare, array, joining, linalg, reduction, activation, indexing)
__all__ = [name for module in _MODULES for name in module.__all__]
