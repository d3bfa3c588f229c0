"""The symbolic backend: Aesara or PyTensor, chosen once, at import.

Everything else in the package does ``from stick_breaking_dgms.backend import at,
function, ...``: this package is the only place that imports a graph library. The two
libraries share one API (PyTensor is Aesara's maintained fork), and each module here
(:mod:`._aesara`, :mod:`._pytensor`) exports the same narrow surface.

The choice: the environment variable ``SBDGM_BACKEND`` (``aesara`` | ``pytensor``) when
set, else Aesara if it is installed, else PyTensor. Importing configures the library
before its own import, in its flags variable only (``AESARA_FLAGS`` or
``PYTENSOR_FLAGS``; the user's settings there always win):

* ``floatX`` defaults to ``float32`` (the libraries' default is float64);
* ``blas__ldflags`` points at the LP64 OpenBLAS that SciPy's wheel ships, so the
  compiled graphs call a real ``sgemm``/``dgemm`` instead of the NumPy C-API fallback
  (NumPy's own bundled OpenBLAS is ILP64 and cannot be linked);
* PyTensor only: ``linker=cvm``, as Aesara's default (:mod:`._pytensor` says why);
* the number of BLAS threads starts at ``SBDGM_BLAS_THREADS`` (default 1; through
  ``OPENBLAS_NUM_THREADS`` when unset); the scripts then set it with
  :func:`configure_blas_threads`, by default to the count measured fastest.

``--mode JAX`` (PyTensor only) compiles the graphs with the JAX linker: :func:`set_mode`
and :mod:`.jax`, which registers the JAX twins of the custom ops.
"""
import contextlib
import ctypes
import importlib
import importlib.util
import os

import numpy as np

CHOICES = ("aesara", "pytensor")
ENV_VARIABLE = "SBDGM_BACKEND"
MODES = ("C", "JAX")


class BackendError(ImportError):
    """No usable backend: an unknown ``SBDGM_BACKEND``, or the library is not installed."""


def _choose():
    asked = os.environ.get(ENV_VARIABLE, "").strip().lower()
    if asked:
        if asked not in CHOICES:
            raise BackendError(f"{ENV_VARIABLE}={asked!r}: expected one of "
                               f"{', '.join(CHOICES)}")
        if importlib.util.find_spec(asked) is None:
            raise BackendError(f"{ENV_VARIABLE}={asked}: {asked} is not installed in this "
                               f"environment (pip install {asked})")
        return asked
    for name in CHOICES:
        if importlib.util.find_spec(name) is not None:
            return name
    raise BackendError("neither Aesara nor PyTensor is installed: install the package with "
                       "pip (Aesara on Python 3.11, PyTensor on Python >= 3.12)")


NAME = _choose()
_impl = importlib.import_module(f"._{NAME}", __name__)
_missing = [n for n in importlib.import_module("._flags", __name__).SURFACE
            if not hasattr(_impl, n)]
if _missing:  # a backend module that does not export the whole surface is a bug here
    raise BackendError(f"the {NAME} backend module lacks {', '.join(_missing)}")

lib = _impl.lib  # the library module (aesara or pytensor)
version = _impl.version
FLAGS_VARIABLE = _impl.FLAGS_VARIABLE  # AESARA_FLAGS or PYTENSOR_FLAGS
at, config, function, grad, scan, shared = (_impl.at, _impl.config, _impl.function,
                                            _impl.grad, _impl.scan, _impl.shared)
SharedVariable, RandomStream = _impl.SharedVariable, _impl.RandomStream
sigmoid, softmax = _impl.sigmoid, _impl.softmax
# For the C kernels of .kernels: an Op with C code, its graph node, gradient markers.
Apply, COp, DisconnectedType = _impl.Apply, _impl.COp, _impl.DisconnectedType
grad_undefined, as_tensor_variable = _impl.grad_undefined, _impl.as_tensor_variable
_BLAS_LIBRARY, _BLAS_PREFIX = _impl.BLAS_LIBRARY, _impl.BLAS_PREFIX

__all__ = ["NAME", "lib", "version", "FLAGS_VARIABLE", "at", "config", "function", "grad", "scan", "shared",
           "parameter", "SharedVariable", "RandomStream", "softplus", "sigmoid", "softmax",
           "set_floatX", "floatX", "floatX_as", "set_blas_threads", "blas_threads",
           "blas_library",
           "configure_blas_threads", "Apply", "COp", "DisconnectedType", "grad_undefined",
           "as_tensor_variable", "register_inplace_rewrite", "describe", "mode",
           "set_mode", "BackendError"]


def describe():
    """``"Aesara 2.9.4"`` or ``"PyTensor 3.3.8"`` (with `` (JAX)`` in JAX mode)."""
    name = {"aesara": "Aesara", "pytensor": "PyTensor"}[NAME]
    return f"{name} {version}" + (" (JAX)" if _MODE == "JAX" else "")


def parameter(value, name):
    """A shared variable whose type carries ``value``'s shape.

    With the shapes of the weights known when the graph is built, shape inference works
    with constants instead of building a run-time check for every broadcast: the
    rewriting at compile time takes about half as long. Dimensions of length 1 stay
    unknown (a static 1 would make them broadcastable). Setting a value of another shape
    fails.
    """
    value = np.asarray(value)
    return shared(value, name=name, shape=tuple(None if n == 1 else n for n in value.shape))


class _Softplus(_impl.UnaryScalarOp):
    r"""softplus(x) = log(1 + exp(x)), as :math:`\max(x, 0) + \log1p(e^{-|x|})`.

    The libraries' own softplus calls ``log1p``, whose C library version is several
    times slower than ``log`` and dominated the Bernoulli likelihood. Here
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
        return [gz * _impl.scalar_sigmoid(x)]

    def c_code(self, node, name, inputs, outputs, sub):
        (x,), (z,) = inputs, outputs
        t = "npy_float32" if node.inputs[0].type == _impl.float32 else "npy_float64"
        return (f"{{ {t} e_ = exp(-fabs({x})); {t} u_ = 1 + e_;\n"
                f"  {z} = ({x} > 0 ? {x} : 0) + (u_ == 1 ? e_ : log(u_) * (e_ / (u_ - 1))); }}")

    def c_code_cache_version(self):
        return (1,)


softplus = _impl.Elemwise(_Softplus(_impl.upgrade_to_float, name="softplus_fast"),
                          name="softplus")


def register_inplace_rewrite(name, op_class, make_inplace):
    """Register a graph rewrite that swaps nodes of ``op_class`` for in-place versions.

    ``make_inplace(fgraph, node)`` returns the replacement outputs, or False. It runs in
    the library's in-place phase (after the rewrites that need out-of-place nodes); a
    replacement that would destroy a value still needed is rejected by the destroy
    handler, and the node stays out of place.
    """
    walking = _impl.WalkingGraphRewriter
    rewriter = _impl.node_rewriter([op_class], inplace=True)(make_inplace)
    _impl.optdb.register(name, walking(rewriter, failure_callback=walking.warn_inplace),
                         "fast_run", "inplace", position=76)


# -- float type ----------------------------------------------------------------------------

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


# -- linker mode -----------------------------------------------------------------------------

_MODE = "C"


def mode():
    """``"C"`` (the C virtual machine, the default) or ``"JAX"``."""
    return _MODE


def set_mode(name):
    """Compile the graphs built from now on with the C linker (``"C"``) or with JAX.

    JAX needs PyTensor and the ``jax`` package; the custom ops' JAX twins are registered
    on the first switch. Raises BackendError saying what is missing.
    """
    global _MODE
    if name not in MODES:
        raise BackendError(f"mode {name!r}: expected one of {', '.join(MODES)}")
    if name == "JAX":
        if NAME != "pytensor":
            raise BackendError(f"--mode JAX needs the PyTensor backend; this environment "
                               f"runs {describe()} (set {ENV_VARIABLE}=pytensor in an "
                               f"environment with PyTensor, Python >= 3.12)")
        if not _impl.JAX_AVAILABLE:
            raise BackendError("--mode JAX needs the jax package: pip install "
                               "'stick_breaking_dgms[jax]' (or pip install jax)")
        from . import jax as _jax  # registers the JAX twins of the custom ops
        _jax.configure(floatX())
        config.mode = "JAX"
    elif _MODE == "JAX":
        config.mode = "FAST_RUN"
    _MODE = name


def profiling_module():
    return _impl.profiling_module()


# -- BLAS ----------------------------------------------------------------------------------

def blas_library():
    """Path of the OpenBLAS linked into compiled graphs, or None (NumPy C-API fallback)."""
    return _BLAS_LIBRARY


def _openblas(name):
    return getattr(ctypes.CDLL(_BLAS_LIBRARY), f"{_BLAS_PREFIX or ''}openblas_{name}")


def set_blas_threads(n):
    """Set the thread count of the OpenBLAS the compiled graphs use. Returns True if set."""
    if _BLAS_LIBRARY is None:
        return False
    _openblas("set_num_threads")(int(n))
    return True


def blas_threads():
    """The thread count OpenBLAS runs with (it caps a larger request at its build's
    maximum), or 1 without a linked OpenBLAS."""
    if _BLAS_LIBRARY is None:
        return 1
    return int(_openblas("get_num_threads")())


def measure_blas_threads(shape=(100, 784, 500), candidates=None, repeats=30):
    """Time an sgemm of ``shape`` (m, k, n) with each thread count; return {threads: seconds}.

    Uses SciPy's BLAS wrapper, which calls the same OpenBLAS the compiled graphs link.
    """
    import time

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
    return os.path.join(str(config.compiledir), "stick_breaking_dgms_blas_threads.json")


def configure_blas_threads(threads="auto"):
    """Set the BLAS thread count and return it.

    ``"auto"`` measures one and two threads on the model's matrix shapes once per
    machine (cached beside the library's compiled code) and takes the faster; an integer
    is used as given.
    """
    import json
    import platform

    if _BLAS_LIBRARY is None:
        return 1
    if threads != "auto":
        set_blas_threads(int(threads))
        return blas_threads()  # what runs, which OpenBLAS may have capped
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
        from ..fileio import write_text
        try:
            write_text(path, json.dumps(cached))
        except OSError:
            pass  # an unwritable cache only costs a measurement next time
    set_blas_threads(n)
    return blas_threads()


# OpenBLAS starts with one thread (SBDGM_BLAS_THREADS to change it) unless the user set
# OPENBLAS_NUM_THREADS: set here rather than left to the environment variable, which
# OpenBLAS reads only when it is loaded, and the library may load it later.
if "OPENBLAS_NUM_THREADS" not in os.environ:
    try:
        set_blas_threads(max(1, int(os.environ.get("SBDGM_BLAS_THREADS", "1"))))
    except (ValueError, OSError, AttributeError):
        pass  # an unreadable value or an OpenBLAS without the call: its own default
