"""Every custom op against its reference graph under every linker the backend offers.

In the manner of PyTensor's ``compare_jax_and_py``: each op (the three fused kernels and
the fast softplus) is compiled with the C linker, with the Python linker (its NumPy
``perform``) and, on PyTensor with jax installed, with the JAX linker (its twin in
``backend/jax.py``); its values and gradients are compared with the plain elementwise
graph it replaces, computed in float64 with the C linker, in float32 and float64.
"""
import numpy as np
import pytest

from stick_breaking_dgms import backend, kernels
from stick_breaking_dgms.backend import at, function, grad, lib
from stick_breaking_dgms.distributions import kumaraswamy_beta_kl_graph
from stick_breaking_dgms.objectives import bernoulli_nll_graph

RNG = np.random.default_rng(7)
JAX = backend.NAME == "pytensor" and backend._impl.JAX_AVAILABLE


def _mode(linker, dtype="float64"):
    if linker == "jax":
        from stick_breaking_dgms.backend import jax as twins  # registers the twins
        twins.configure(dtype)
        return "JAX"
    return lib.compile.mode.Mode(linker={"c": "cvm", "py": "py"}[linker],
                                 optimizer="fast_run")


LINKERS = ["c", "py", pytest.param("jax", marks=pytest.mark.skipif(
    not JAX, reason="the JAX linker needs PyTensor and jax"))]


# Each case: (inputs as float64 arrays, builder(symbolic inputs, use_kernel) -> outputs,
# float64 tolerance, float32 tolerance); tolerances relative to the largest |value|.
def _kl(digamma):
    grid = np.array([0.1, 0.3, 0.7, 1.0, 2.0, 5.0, 20.0])
    a, b = (g.ravel() for g in np.meshgrid(grid, grid))

    def build(a, b, kernel):
        f = kernels.kumaraswamy_beta_kl if kernel else kumaraswamy_beta_kl_graph
        kl = f(a, b, 1.0, 5.0, 10, digamma)
        return [kl] + grad(kl.sum(), [a, b])
    # the graph's digamma (Bernardo's AS 103) and trigamma are good to ~3e-9 and ~1e-7
    return [a, b], build, (1e-10 if digamma == "series" else 2e-7), 2e-6


def _bernoulli():
    logits = RNG.standard_normal((12, 9)) * np.array([0.1, 3.0, 30.0])[RNG.integers(0, 3, (12, 9))]
    x = RNG.uniform(0, 1, (12, 9))

    def build(x, logits, kernel):
        f = kernels.bernoulli_nll if kernel else bernoulli_nll_graph
        nll = f(x, logits)
        weights = at.as_tensor_variable(np.linspace(0.5, 1.5, 12).astype(nll.dtype))
        return [nll] + grad((nll * weights).sum(), [logits, x])
    return [x, logits], build, 1e-12, 2e-6


def _adam():
    shape = (7, 5)
    p, g = RNG.standard_normal(shape), RNG.standard_normal(shape)
    m, v = 0.1 * RNG.standard_normal(shape), RNG.uniform(0.01, 1.0, shape)

    def build(p, m, v, g, kernel):
        b1, b2 = 0.95, 0.999
        # constants in the parameters' dtype (a Python float would become a floatX one)
        step, eps = np.asarray(0.01, p.dtype), np.asarray(1e-8, p.dtype)
        if kernel:
            return list(kernels.adam_update(p, m, v, g, step, eps, b1, b2))
        c = lambda x: np.asarray(x, p.dtype)  # noqa: E731
        m2 = m + c(1 - b1) * (g - m)
        v2 = c(b2) * v + c(1 - b2) * g * g
        return [p - step * m2 / (at.sqrt(v2) + eps), m2, v2]
    return [p, m, v, g], build, 1e-14, 2e-7


def _softplus():
    x = np.concatenate([np.linspace(-40, 40, 81), [0.0, -1e-30, 1e-30, -100.0, 100.0]])

    def build(x, kernel):
        y = backend.softplus(x) if kernel else at.math.softplus(x)
        return [y] + grad(y.sum(), [x])
    return [x], build, 1e-15, 2e-7


CASES = {"kl_series": lambda: _kl("series"), "kl_exact": lambda: _kl("exact"),
         "bernoulli_nll": _bernoulli, "adam_update": _adam, "softplus": _softplus}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("linker", LINKERS)
@pytest.mark.parametrize("case", list(CASES))
def test_op_matches_its_reference_graph(case, linker, dtype):
    values, build, tol64, tol32 = CASES[case]()
    ref_inputs = [at.tensor(dtype="float64", shape=(None,) * v.ndim) for v in values]
    reference = function(ref_inputs, build(*ref_inputs, kernel=False), mode=_mode("c"))(*values)
    inputs = [at.tensor(dtype=dtype, shape=(None,) * v.ndim) for v in values]
    outputs = build(*inputs, kernel=True)
    f = function(inputs, outputs, mode=_mode(linker, dtype))
    if linker == "c":  # the fused C code runs, not a fallback
        ops = {type(n.op).__name__ for n in f.maker.fgraph.apply_nodes}
        scalar_ops = {type(getattr(n.op, "scalar_op", None)).__name__
                      for n in f.maker.fgraph.apply_nodes}
        assert ops & {"KumaraswamyBetaKL", "BernoulliNLL", "AdamUpdate"} \
            or "_Softplus" in scalar_ops or "Composite" in scalar_ops
    got = f(*[v.astype(dtype) for v in values])
    tol = tol64 if dtype == "float64" else tol32
    if linker == "jax" and dtype == "float32":
        # JAX's 64-bit types are off for float32 graphs (backend/jax.py), so the twins
        # compute in single precision where the C kernels use double: 100 float32 ulps
        # of the largest value.
        tol = max(tol, 100 * float(np.finfo(np.float32).eps))
    for i, (g, r) in enumerate(zip(got, reference)):
        g = np.asarray(g)
        assert g.dtype == dtype and g.shape == r.shape, (case, i)
        scale = max(1.0, float(np.max(np.abs(r))))
        err = float(np.max(np.abs(g.astype(np.float64) - r)))
        assert err <= tol * scale, f"{case} output {i}: max error {err:.3g}, scale {scale:.3g}"


@pytest.mark.skipif(not JAX, reason="the JAX linker needs PyTensor and jax")
def test_every_custom_op_has_a_jax_twin():
    from pytensor.link.jax.dispatch import jax_funcify

    from stick_breaking_dgms.backend import _Softplus, jax as twins  # noqa: F401 (registers)
    for op in (kernels.KumaraswamyBetaKL, kernels.BernoulliNLL, kernels.AdamUpdate,
               _Softplus):
        assert op in jax_funcify.registry, op.__name__
