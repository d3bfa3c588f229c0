"""PyTensor (the maintained fork of Aesara; NumPy 2, Python >= 3.11): configured, then
imported.

Two defaults differ from Aesara's and are set here unless the user set them in
``PYTENSOR_FLAGS``: the linker (PyTensor's default, Numba, runs the package's C kernels
through their Python ``perform``, a hundred times slower: ``linker=cvm`` keeps Aesara's
C virtual machine), and the BLAS (SciPy >= 1.13 ships its OpenBLAS with every symbol
prefixed, ``scipy_sgemm_``; the BLAS routines the C code calls are renamed to them).
"""
import importlib.util
import warnings

from ._flags import SURFACE, configure, user_flags

FLAGS_VARIABLE = "PYTENSOR_FLAGS"
_user = user_flags(FLAGS_VARIABLE)
BLAS_LIBRARY, BLAS_PREFIX = configure(
    FLAGS_VARIABLE, extra=[] if "mode" in _user else [("linker", "cvm")])

import pytensor as lib  # noqa: E402
import pytensor.tensor as at  # noqa: E402
from pytensor import config, function, grad, scan, shared  # noqa: E402
from pytensor.compile import optdb  # noqa: E402
from pytensor.compile.sharedvalue import SharedVariable  # noqa: E402
from pytensor.gradient import DisconnectedType, grad_undefined  # noqa: E402
from pytensor.graph.basic import Apply  # noqa: E402
from pytensor.graph.rewriting.basic import WalkingGraphRewriter, node_rewriter  # noqa: E402
from pytensor.link.c.op import COp  # noqa: E402
from pytensor.scalar.basic import UnaryScalarOp, float32, upgrade_to_float  # noqa: E402
from pytensor.scalar.math import sigmoid as scalar_sigmoid  # noqa: E402
from pytensor.tensor import as_tensor_variable  # noqa: E402
from pytensor.tensor.elemwise import Elemwise  # noqa: E402
from pytensor.tensor.math import sigmoid  # noqa: E402
from pytensor.tensor.random.utils import RandomStream  # noqa: E402
from pytensor.tensor.special import softmax  # noqa: E402
from ._flags import restore_environment  # noqa: E402

restore_environment()  # the library has read its flags: the environment as it was

__all__ = list(SURFACE)  # noqa: F405 (the same names in both backends)

# The package builds its random draws with RandomStream, which PyTensor 3.3 still runs
# exactly as Aesara does but announces as deprecated on every model built.
warnings.filterwarnings("ignore", message="RandomStream is deprecated",
                        category=FutureWarning)

NAME = "pytensor"
version = lib.__version__
JAX_AVAILABLE = importlib.util.find_spec("jax") is not None


def profiling_module():
    """Where the library keeps its profiles (benchmarks read and clear them)."""
    from pytensor.compile.debug import profiling
    return profiling
