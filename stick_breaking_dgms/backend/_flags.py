"""Settings both backends make before their library is imported: the float type and the
BLAS the compiled graphs link against, written in front of the user's own flags (which
win), in the library's flags variable only, and OpenBLAS's thread count when it is
loaded. The library reads them while it is imported; :func:`restore_environment` then
gives the process its environment back as it was, so importing the package changes no
environment variable."""
import importlib.util
import os

# What each backend module (_aesara.py, _pytensor.py) exports: the same names, checked
# when the package chooses one.
SURFACE = ("lib", "at", "config", "function", "grad", "scan", "shared", "optdb",
           "SharedVariable", "DisconnectedType", "grad_undefined", "Apply",
           "WalkingGraphRewriter", "node_rewriter", "COp", "UnaryScalarOp", "float32",
           "upgrade_to_float", "scalar_sigmoid", "as_tensor_variable", "Elemwise", "sigmoid",
           "RandomStream", "softmax", "NAME", "version", "JAX_AVAILABLE", "FLAGS_VARIABLE",
           "BLAS_LIBRARY", "BLAS_PREFIX", "profiling_module")

# The BLAS routines the libraries' C code calls, renamed where SciPy's OpenBLAS prefixes
# its symbols (scipy >= 1.13 ships libscipy_openblas with scipy_sgemm_ and so on).
BLAS_ROUTINES = [f"{t}{r}_" for t in "sd" for r in
                 ("gemm", "gemv", "ger", "dot", "axpy", "scal", "copy", "syrk", "trsm")]


def scipy_openblas():
    """(directory, file name, symbol prefix) of the LP64 OpenBLAS SciPy's wheel ships, or
    None. NumPy's own bundled OpenBLAS is ILP64 and cannot be linked by the graphs."""
    spec = importlib.util.find_spec("scipy")
    if spec is None or spec.origin is None:
        return None
    libdir = os.path.join(os.path.dirname(os.path.dirname(spec.origin)), "scipy.libs")
    if not os.path.isdir(libdir):
        return None
    for start, prefix in (("libopenblas", ""), ("libscipy_openblas", "scipy_")):
        names = sorted(f for f in os.listdir(libdir) if f.startswith(start)
                       and f.endswith(".so") and "64_" not in f)
        if names:
            return libdir, names[0], prefix
    return None


def user_flags(variable):
    """The user's settings in ``variable`` (``AESARA_FLAGS``, ``PYTENSOR_FLAGS``), by key."""
    flags = {}
    for item in os.environ.get(variable, "").split(","):
        if "=" in item:
            key, value = item.split("=", 1)
            flags[key.strip()] = value.strip()
    return flags


def configure(variable, extra=()):
    """Put our defaults in front of the user's flags in ``variable``; return the path of
    the linked OpenBLAS and its symbol prefix, or (None, None).

    ``extra``: more (key, value) defaults, each given only when the user has not set it.
    """
    user = user_flags(variable)
    ours, library, prefix = [], None, None
    if "floatX" not in user:
        ours.append("floatX=float32")
    if "blas__ldflags" not in user:
        found = scipy_openblas()
        if found is not None:
            libdir, name, prefix = found
            # "-l<name>" makes the linker look for "lib<name>.so": the file itself.
            flags = [f"-L{libdir}", f"-l{name[3:-3]}"]
            flags += [f"-D{r}={prefix}{r}" for r in BLAS_ROUTINES] if prefix else []
            ours.append("blas__ldflags=" + " ".join(flags))
            library = os.path.join(libdir, name)
    ours += [f"{k}={v}" for k, v in extra if k not in user]
    for name in (variable, "OPENBLAS_NUM_THREADS"):
        _SAVED.setdefault(name, os.environ.get(name))
    if ours:
        current = os.environ.get(variable, "")
        os.environ[variable] = ",".join(ours + ([current] if current else []))
    # OpenBLAS reads this when it is loaded (while the library is imported); small
    # matrices are often faster on one thread. The scripts set the count they run with
    # explicitly afterwards (backend.configure_blas_threads).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", os.environ.get("SBDGM_BLAS_THREADS", "1"))
    return library, prefix


_SAVED = {}  # variable -> its value before configure (None: unset)


def restore_environment():
    """Put back the variables :func:`configure` changed, once the library is imported."""
    for name, value in _SAVED.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _SAVED.clear()
