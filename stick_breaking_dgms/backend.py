"""The symbolic backend: the only module of the package that imports Aesara.

Everything else does ``from stick_breaking_dgms.backend import at, function, ...``,
so that swapping Aesara for PyTensor (its maintained fork, same API) touches
this file alone.

Importing this module configures Aesara before its first import:

* ``floatX`` defaults to ``float32`` (Aesara's own default is float64);
* ``blas__ldflags`` points at the LP64 OpenBLAS that SciPy's wheel ships, so the
  compiled graphs call a real ``sgemm``/``dgemm`` instead of Aesara's NumPy C-API
  fallback (NumPy's own bundled OpenBLAS is ILP64 and cannot be linked);
* the number of BLAS threads starts at ``SBDGM_BLAS_THREADS`` (default 1); the
  scripts then set it with :func:`configure_blas_threads`, by default to the count
  measured fastest on this machine.

Settings given by the user in ``AESARA_FLAGS`` always win over these defaults.
"""
import contextlib
import ctypes
import importlib.util
import os

_BLAS_LIBRARY = None  # path of the OpenBLAS the compiled graphs link against


def _scipy_openblas():
    """Return (directory, file name) of SciPy's bundled OpenBLAS, or None."""
    spec = importlib.util.find_spec("scipy")
    if spec is None or spec.origin is None:
        return None
    libdir = os.path.join(os.path.dirname(os.path.dirname(spec.origin)), "scipy.libs")
    if not os.path.isdir(libdir):
        return None
    names = sorted(f for f in os.listdir(libdir)
                   if f.startswith("libopenblas") and f.endswith(".so"))
    return (libdir, names[0]) if names else None


def _user_flags():
    flags = {}
    for item in os.environ.get("AESARA_FLAGS", "").split(","):
        if "=" in item:
            key, value = item.split("=", 1)
            flags[key.strip()] = value.strip()
    return flags


def _configure():
    global _BLAS_LIBRARY
    user = _user_flags()
    ours = []
    if "floatX" not in user:
        ours.append("floatX=float32")
    if "blas__ldflags" not in user:
        found = _scipy_openblas()
        if found is not None:
            libdir, name = found
            # "-l<name>" makes the linker look for "lib<name>.so": the file itself.
            ours.append(f"blas__ldflags=-L{libdir} -l{name[3:-3]}")
            _BLAS_LIBRARY = os.path.join(libdir, name)
    if ours:
        current = os.environ.get("AESARA_FLAGS", "")
        os.environ["AESARA_FLAGS"] = ",".join(ours + ([current] if current else []))
    # OpenBLAS reads this when it is loaded; small matrices are often faster on one thread.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", os.environ.get("SBDGM_BLAS_THREADS", "1"))


_configure()

import numpy as np  # noqa: E402

import aesara  # noqa: E402
import aesara.tensor as at  # noqa: E402
from aesara import config, function, grad, scan, shared  # noqa: E402
from aesara.compile.sharedvalue import SharedVariable  # noqa: E402
from aesara.tensor.random.utils import RandomStream  # noqa: E402
from aesara.scalar.basic import UnaryScalarOp, float32, upgrade_to_float  # noqa: E402
from aesara.scalar.math import sigmoid as _scalar_sigmoid  # noqa: E402
from aesara.tensor.elemwise import Elemwise  # noqa: E402
from aesara.tensor.math import sigmoid  # noqa: E402
from aesara.tensor.special import softmax  # noqa: E402
# For the C kernels of .kernels: an Op with C code, its graph node, gradient markers.
from aesara.graph.basic import Apply  # noqa: E402
from aesara.gradient import DisconnectedType, grad_undefined  # noqa: E402
from aesara.link.c.op import COp  # noqa: E402
from aesara.tensor import as_tensor_variable  # noqa: E402

__all__ = ["aesara", "at", "config", "function", "grad", "scan", "shared", "parameter",
           "SharedVariable",
           "RandomStream", "softplus", "sigmoid", "softmax", "set_floatX", "floatX", "floatX_as",
           "set_blas_threads", "blas_library", "version", "Apply", "COp", "DisconnectedType",
           "grad_undefined", "as_tensor_variable", "register_inplace_rewrite"]

version = aesara.__version__


def parameter(value, name):
    """A shared variable whose type carries ``value``'s shape.

    With the shapes of the weights known when the graph is built, Aesara's shape
    inference works with constants instead of building a run-time check for every
    broadcast: the rewriting at compile time takes about half as long. Dimensions of
    length 1 stay unknown (a static 1 would make them broadcastable). Setting a value
    of another shape fails.
    """
    value = np.asarray(value)
    return shared(value, name=name, shape=tuple(None if n == 1 else n for n in value.shape))


class _Softplus(UnaryScalarOp):
    r"""softplus(x) = log(1 + exp(x)), as :math:`\max(x, 0) + \log1p(e^{-|x|})`.

    Aesara's own softplus calls ``log1p``, whose C library version is several times
    slower than ``log`` and dominated the Bernoulli likelihood. Here
    :math:`\log1p(e)` for :math:`e = e^{-|x|} \in (0, 1]` is computed from ``log``
    with Goldberg's correction, :math:`\log(u)\, e / (u - 1)` for :math:`u = 1 + e`
    (and :math:`e` itself when :math:`u` rounds to 1): within 2 ulp of the exact value
    in float32 and float64, 2.8 times faster. NaN and infinities propagate as expected.
    """

    @staticmethod
    def st_impl(x):
        return np.logaddexp(np.zeros_like(x), x)

    def impl(self, x):
        return self.st_impl(x)

    def grad(self, inputs, output_gradients):
        (x,), (gz,) = inputs, output_gradients
        return [gz * _scalar_sigmoid(x)]

    def c_code(self, node, name, inputs, outputs, sub):
        (x,), (z,) = inputs, outputs
        t = "npy_float32" if node.inputs[0].type == float32 else "npy_float64"
        return (f"{{ {t} e_ = exp(-fabs({x})); {t} u_ = 1 + e_;\n"
                f"  {z} = ({x} > 0 ? {x} : 0) + (u_ == 1 ? e_ : log(u_) * (e_ / (u_ - 1))); }}")

    def c_code_cache_version(self):
        return (1,)


softplus = Elemwise(_Softplus(upgrade_to_float, name="softplus_fast"), name="softplus")


def register_inplace_rewrite(name, op_class, make_inplace):
    """Register a graph rewrite that swaps nodes of ``op_class`` for in-place versions.

    ``make_inplace(fgraph, node)`` returns the replacement outputs, or False. It runs
    in Aesara's in-place phase (after the rewrites that need out-of-place nodes); a
    replacement that would destroy a value still needed is rejected by Aesara's
    destroy handler, and the node stays out of place.
    """
    from aesara.compile import optdb
    from aesara.graph.rewriting.basic import WalkingGraphRewriter, node_rewriter

    rewriter = node_rewriter([op_class], inplace=True)(make_inplace)
    optdb.register(name, WalkingGraphRewriter(
        rewriter, failure_callback=WalkingGraphRewriter.warn_inplace),
        "fast_run", "inplace", position=76)


def floatX():
    """The float dtype new graphs and parameters use (``'float32'`` or ``'float64'``)."""
    return config.floatX


def set_floatX(dtype):
    """Switch the float dtype for graphs and parameters built from now on."""
    if dtype not in ("float32", "float64"):
        raise ValueError(f"floatX must be 'float32' or 'float64', got {dtype!r}")
    config.floatX = dtype


@contextlib.contextmanager
def floatX_as(dtype):
    """Build graphs and parameters with ``dtype`` as floatX, then restore the previous one."""
    previous = config.floatX
    set_floatX(dtype)
    try:
        yield
    finally:
        config.floatX = previous


def blas_library():
    """Path of the OpenBLAS linked into compiled graphs, or None (NumPy C-API fallback)."""
    return _BLAS_LIBRARY


def set_blas_threads(n):
    """Set the thread count of the OpenBLAS the compiled graphs use. Returns True if set."""
    if _BLAS_LIBRARY is None:
        return False
    lib = ctypes.CDLL(_BLAS_LIBRARY)
    lib.openblas_set_num_threads(int(n))
    return True


def measure_blas_threads(shape=(100, 784, 500), candidates=None, repeats=30):
    """Time an sgemm of ``shape`` (m, k, n) with each thread count; return {threads: seconds}.

    Uses SciPy's BLAS wrapper, which calls the same OpenBLAS the compiled graphs link.
    """
    import time

    import numpy as np
    from scipy.linalg.blas import sgemm

    m, k, n = shape
    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal((m, k), dtype=np.float32))
    b = np.asfortranarray(rng.standard_normal((k, n), dtype=np.float32))
    candidates = candidates or sorted({1, min(2, os.cpu_count() or 1)})
    timings = {}
    for _ in range(2):  # interleave, keep the best of two rounds
        for threads in candidates:
            set_blas_threads(threads)
            sgemm(1.0, a, b)
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                sgemm(1.0, a, b)
                samples.append(time.perf_counter() - start)
            best = sorted(samples)[len(samples) // 2]
            timings[threads] = min(timings.get(threads, best), best)
    return timings


def _threads_cache_path():
    return os.path.join(config.compiledir, "stick_breaking_dgms_blas_threads.json")


def configure_blas_threads(threads="auto"):
    """Set the BLAS thread count and return it.

    ``"auto"`` measures one and two threads on the model's matrix shapes once per
    machine (cached beside Aesara's compiled code) and takes the faster; an integer
    is used as given.
    """
    import json
    import platform

    if _BLAS_LIBRARY is None:
        return 1
    if threads != "auto":
        set_blas_threads(int(threads))
        return int(threads)
    key = f"{platform.node()}|{os.cpu_count()}|{_BLAS_LIBRARY}"
    path = _threads_cache_path()
    try:
        with open(path) as f:
            cached = json.load(f)
        n = int(cached[key])
    except (OSError, ValueError, KeyError, TypeError):
        timings = measure_blas_threads()
        n = min(timings, key=timings.get)
        try:
            with open(path) as f:
                cached = json.load(f)
            if not isinstance(cached, dict):
                cached = {}
        except (OSError, ValueError):
            cached = {}
        cached[key] = n
        from .fileio import write_text
        try:
            write_text(path, json.dumps(cached))
        except OSError:
            pass  # an unwritable cache only costs a measurement next time
    set_blas_threads(n)
    return n
