"""Aesara 2.9.4 (Python 3.11, NumPy 1): configured, then imported."""
from ._flags import SURFACE, configure

FLAGS_VARIABLE = "AESARA_FLAGS"
BLAS_LIBRARY, BLAS_PREFIX = configure(FLAGS_VARIABLE)

import aesara as lib  # noqa: E402
import aesara.tensor as at  # noqa: E402
from aesara import config, function, grad, scan, shared  # noqa: E402
from aesara.compile import optdb  # noqa: E402
from aesara.compile.sharedvalue import SharedVariable  # noqa: E402
from aesara.gradient import DisconnectedType, grad_undefined  # noqa: E402
from aesara.graph.basic import Apply  # noqa: E402
from aesara.graph.rewriting.basic import WalkingGraphRewriter, node_rewriter  # noqa: E402
from aesara.link.c.op import COp  # noqa: E402
from aesara.scalar.basic import UnaryScalarOp, float32, upgrade_to_float  # noqa: E402
from aesara.scalar.math import sigmoid as scalar_sigmoid  # noqa: E402
from aesara.tensor import as_tensor_variable  # noqa: E402
from aesara.tensor.elemwise import Elemwise  # noqa: E402
from aesara.tensor.math import sigmoid  # noqa: E402
from aesara.tensor.random.utils import RandomStream  # noqa: E402
from aesara.tensor.special import softmax  # noqa: E402
from ._flags import restore_environment  # noqa: E402

restore_environment()  # the library has read its flags: the environment as it was

__all__ = list(SURFACE)  # noqa: F405 (the same names in both backends)

NAME = "aesara"
version = lib.__version__
JAX_AVAILABLE = False  # Aesara's JAX linker is not supported here (PyTensor's is)


def profiling_module():
    """Where the library keeps its profiles (benchmarks read and clear them)."""
    return lib.compile.profiling
