"""The fused C kernels, checked against NumPy/SciPy, the plain Aesara graphs they replace,
their own NumPy ``perform``, finite differences, and on the edges (0, subnormals, inf,
NaN, huge and tiny parameters, non-contiguous inputs)."""
import numpy as np
import pytest
from scipy import special

from stick_breaking_dgms import kernels
from stick_breaking_dgms.backend import COp, Apply, at, function, grad, lib, parameter
from stick_breaking_dgms.distributions import kumaraswamy_beta_kl_graph
from stick_breaking_dgms.objectives import bernoulli_nll_graph

PY_MODE = lib.compile.mode.Mode(linker="py", optimizer="fast_run")


# -- the header's elementary functions, applied elementwise by a probe op ----------------

class _MathProbe(COp):
    """y = expr(x, z) elementwise (float64 vectors) with the functions of csrc/sbdgm_math.h."""

    __props__ = ("expr",)

    def __init__(self, expr):
        self.expr = expr  # a C expression of x and z, e.g. "sbdgm_log(x)"

    def make_node(self, x, z):
        x, z = at.as_tensor_variable(x), at.as_tensor_variable(z)
        return Apply(self, [x, z], [x.type()])

    def c_support_code(self, **kwargs):
        return kernels.MATH_HEADER

    def c_compile_args(self, **kwargs):
        return list(kernels.VECTOR_FLAGS)

    def c_code_cache_version(self):
        return (kernels._VERSION,)

    def perform(self, node, inputs, outputs):
        raise NotImplementedError

    def c_code(self, node, name, inputs, outputs, sub):
        (x, z), (y,) = inputs, outputs
        return f"""
        Py_XDECREF({y});
        {y} = (PyArrayObject*)PyArray_EMPTY(1, PyArray_DIMS({x}), NPY_FLOAT64, 0);
        if ({y} == NULL) {{ {sub['fail']} }}
        {{
            const double *__restrict__ X = (const double*)PyArray_DATA({x});
            const double *__restrict__ Z = (const double*)PyArray_DATA({z});
            double *__restrict__ Y = (double*)PyArray_DATA({y});
            npy_intp n = PyArray_SIZE({x});
            #pragma omp simd
            for (npy_intp i = 0; i < n; i++) {{
                double x = X[i], z = Z[i];
                (void)z;
                Y[i] = {self.expr};
            }}
        }}"""


_PROBES = {}


def probe(expr, x, z=None):
    """expr evaluated at every x (and z, same length) by the compiled probe."""
    if expr not in _PROBES:
        xv, zv = at.dvector("x"), at.dvector("z")
        _PROBES[expr] = function([xv, zv], _MathProbe(expr)(xv, zv))
    x = np.ascontiguousarray(x, dtype=np.float64)
    return _PROBES[expr](x, x if z is None else np.ascontiguousarray(z, dtype=np.float64))


LG = "({ double l, p; sbdgm_lgamma_psi(x, &l, &p); l; })"
PSI = "({ double l, p; sbdgm_lgamma_psi(x, &l, &p); p; })"


RNG = np.random.default_rng(20261201)
SPECIALS = np.array([0.0, -0.0, -1.0, np.inf, -np.inf, np.nan, 5e-324, 1e-310,
                     2.2250738585072014e-308, 1.0, 2.0, np.finfo(float).max])


def ulps(got, ref):
    return np.abs(got - ref) / np.spacing(np.abs(ref))


def test_log_is_within_two_ulp_and_exact_on_special_values():
    x = np.concatenate([np.exp(RNG.uniform(-745, 709, 100_000)), RNG.uniform(0, 4, 50_000),
                        1 + RNG.uniform(-1e-8, 1e-8, 1000), SPECIALS])
    got = probe("sbdgm_log(x)", x)
    with np.errstate(all="ignore"):
        ref = np.log(x)
    finite = np.isfinite(ref) & (ref != 0)
    assert ulps(got[finite], ref[finite]).max() <= 2.0
    assert np.median(ulps(got[finite], ref[finite])) == 0.0
    np.testing.assert_array_equal(got[~finite], ref[~finite])  # 0, -1, inf, nan, log(1) = 0


def test_exp_is_within_two_ulp_and_saturates_cleanly():
    x = np.concatenate([RNG.uniform(-708.39, 709.78, 100_000), RNG.uniform(-1, 1, 50_000),
                        [0.0, -0.0, 709.0, 709.5, 709.78, -708.39]])
    got = probe("sbdgm_exp(x)", x)
    assert ulps(got, np.exp(x)).max() <= 2.0
    edges = np.array([709.79, 710.0, 1e300, np.inf, -708.4, -800.0, -np.inf, np.nan])
    np.testing.assert_array_equal(probe("sbdgm_exp(x)", edges),
                                  [np.inf, np.inf, np.inf, np.inf, 0, 0, 0, np.nan])


LGAMMA_GRID = np.concatenate([np.exp(RNG.uniform(np.log(1e-300), np.log(1e300), 50_000)),
                              RNG.uniform(0, 20, 50_000),
                              [1.0, 2.0, 8.0, 8.0 - 1e-12, 8.0 + 1e-12, 0.5, 1e-300, 1e300]])


def _abs_or_rel_error(got, ref):
    """Absolute error where |ref| < 1, relative above (what exp(log B) needs)."""
    return np.abs(got - ref) / np.maximum(1.0, np.abs(ref))


def test_log_gamma_and_digamma_match_scipy():
    x = LGAMMA_GRID
    assert _abs_or_rel_error(probe(LG, x), special.gammaln(x)).max() < 3e-14
    assert _abs_or_rel_error(probe(PSI, x), special.psi(x)).max() < 3e-14
    bad = np.array([0.0, -1.0, -np.inf, np.nan])
    assert np.isnan(probe(LG, bad)).all() and np.isnan(probe(PSI, bad)).all()
    np.testing.assert_array_equal(probe(LG, np.array([np.inf])), [np.inf])


def test_log_gamma_difference_matches_scipy():
    x = LGAMMA_GRID[:60_000]
    z = x + np.exp(RNG.uniform(np.log(1e-3), np.log(1e3), x.size))
    diff = "({ double d, px, pz; sbdgm_lgamma_diff_psi(x, z, &d, &px, &pz); d; })"
    psi_x = "({ double d, px, pz; sbdgm_lgamma_diff_psi(x, z, &d, &px, &pz); px; })"
    psi_z = "({ double d, px, pz; sbdgm_lgamma_diff_psi(x, z, &d, &px, &pz); pz; })"
    ref = special.gammaln(x) - special.gammaln(z)
    # the difference of two large log-gammas: error relative to their size
    scale = np.maximum(1.0, np.maximum(np.abs(special.gammaln(x)), np.abs(special.gammaln(z))))
    assert (np.abs(probe(diff, x, z) - ref) / scale).max() < 3e-14
    assert _abs_or_rel_error(probe(psi_x, x, z), special.psi(x)).max() < 3e-14
    assert _abs_or_rel_error(probe(psi_z, x, z), special.psi(z)).max() < 3e-14
    assert np.isnan(probe(diff, np.array([0.0, 1.0]), np.array([1.0, -1.0]))).all()


def test_trigamma_matches_scipy():
    x = np.exp(RNG.uniform(np.log(1e-8), np.log(1e8), 50_000))
    got = probe("sbdgm_trigamma(x)", x)
    np.testing.assert_allclose(got, special.polygamma(1, x), rtol=3e-14)
    assert np.isnan(probe("sbdgm_trigamma(x)", np.array([0.0, -2.0, np.nan]))).all()


# -- the KL kernel ------------------------------------------------------------------------

KL_GRID = np.array([0.05, 0.1, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 300.0])
PRIORS = [(1.0, 1.0), (1.0, 5.0), (1.0, 8.0), (2.0, 3.0), (0.5, 0.7)]


@pytest.fixture(scope="module")
def kl_functions():
    """(kernel, graph) compiled per (dtype, prior, terms, digamma): values and gradients."""
    cache = {}

    def get(dtype, alpha, beta, terms, digamma):
        key = (dtype, alpha, beta, terms, digamma)
        if key not in cache:
            a, b = at.vector("a", dtype=dtype), at.vector("b", dtype=dtype)
            outs = []
            for kl in (kernels.kumaraswamy_beta_kl(a, b, alpha, beta, terms, digamma),
                       kumaraswamy_beta_kl_graph(a, b, alpha, beta, terms, digamma)):
                outs += [kl] + grad(kl.sum(), [a, b])
            cache[key] = function([a, b], outs)
        return cache[key]
    return get


@pytest.mark.parametrize("digamma", ["series", "exact"])
@pytest.mark.parametrize("alpha,beta", PRIORS)
def test_kl_kernel_matches_the_aesara_graph_float64(kl_functions, alpha, beta, digamma):
    a, b = (g.ravel() for g in np.meshgrid(KL_GRID, KL_GRID))
    kl, da, db, kl_g, da_g, db_g = kl_functions("float64", alpha, beta, 10, digamma)(a, b)
    # Aesara's digamma (Bernardo's AS 103, in the exact mode's KL and in every gradient of
    # the graph) is itself good to ~3e-9 absolute and its trigamma (the exact mode's
    # d/db) to ~1e-7; the kernel's to 3e-14 (it matches SciPy: the test below).
    tol = 1e-11 if digamma == "series" else 5e-9
    np.testing.assert_allclose(kl, kl_g, rtol=tol, atol=tol)
    tol = 1e-8 if digamma == "series" else 2e-7  # the error of psi(b) times alpha / a^2
    np.testing.assert_allclose(da, da_g, rtol=tol, atol=tol)
    np.testing.assert_allclose(db, db_g, rtol=tol, atol=tol)


@pytest.mark.parametrize("digamma", ["series", "exact"])
@pytest.mark.parametrize("alpha,beta", [(1.0, 5.0), (2.0, 3.0)])
def test_kl_kernel_gradient_matches_finite_differences(kl_functions, alpha, beta, digamma):
    a, b = (g.ravel() for g in np.meshgrid(KL_GRID[1:-1], KL_GRID[1:-1]))
    f = kl_functions("float64", alpha, beta, 10, digamma)
    _, da, db = f(a, b)[:3]
    h = 1e-6
    num_da = (f(a * (1 + h), b)[0] - f(a * (1 - h), b)[0]) / (2 * h * a)
    num_db = (f(a, b * (1 + h))[0] - f(a, b * (1 - h))[0]) / (2 * h * b)
    np.testing.assert_allclose(da, num_da, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(db, num_db, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("digamma", ["series", "exact"])
def test_kl_kernel_matches_its_numpy_perform(digamma):
    a, b = (g.ravel() for g in np.meshgrid(KL_GRID, KL_GRID))
    av, bv = at.dvector("a"), at.dvector("b")
    op = kernels.KumaraswamyBetaKL(1.0, 5.0, 10, digamma)
    c = function([av, bv], op(av, bv))(a, b)
    py = function([av, bv], op(av, bv), mode=PY_MODE)(a, b)
    for got, ref in zip(c, py):
        np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-12)


def test_kl_kernel_float32_is_the_float64_value_rounded(kl_functions):
    a, b = (g.ravel() for g in np.meshgrid(KL_GRID, KL_GRID))
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    out32 = kl_functions("float32", 1.0, 5.0, 10, "series")(a32, b32)
    out64 = kl_functions("float64", 1.0, 5.0, 10, "series")(a32.astype(float), b32.astype(float))
    for got, ref in zip(out32[:3], out64[:3]):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, ref.astype(np.float32))


def test_kl_kernel_many_terms_and_shapes(kl_functions):
    # 2000 terms agree with the graph (of the same formula); n-d, empty, strided input
    a, b = (g.ravel() for g in np.meshgrid(KL_GRID[:5], KL_GRID[:5]))
    kl, _, _, kl_g = kl_functions("float64", 1.0, 5.0, 2000, "series")(a, b)[:4]
    np.testing.assert_allclose(kl, kl_g, rtol=1e-10, atol=1e-10)
    a3, b3 = at.dtensor3("a"), at.dtensor3("b")
    f3 = function([a3, b3], kernels.kumaraswamy_beta_kl(a3, b3, 1.0, 5.0))
    A = np.exp(RNG.normal(size=(3, 4, 5)))
    B = np.exp(RNG.normal(size=(5, 4, 3))).transpose(2, 1, 0)  # not C-contiguous
    got = f3(A, B)
    flat = kl_functions("float64", 1.0, 5.0, 10, "series")(A.ravel(), np.ascontiguousarray(B).ravel())
    np.testing.assert_allclose(got.ravel(), flat[0], rtol=1e-14)
    assert f3(np.zeros((0, 2, 3)), np.zeros((0, 2, 3))).shape == (0, 2, 3)


def test_kl_kernel_edges_propagate_instead_of_crashing(kl_functions):
    f = kl_functions("float64", 1.0, 5.0, 10, "series")
    kl, da, db = f(np.array([np.nan, 1.0, 1e-30, 1e30, 1.0]),
                   np.array([1.0, np.nan, 1.0, 1.0, 1e-30]))[:3]
    assert np.isnan(kl[:2]).all() and np.isnan(da[:2]).all() and np.isnan(db[:2]).all()
    assert not np.isnan(kl[2:]).any()  # extreme but valid parameters: a number (maybe inf)


def test_kl_kernel_rejects_mismatched_inputs():
    a, b = at.dvector("a"), at.dvector("b")
    f = function([a, b], kernels.kumaraswamy_beta_kl(a, b, 1.0, 5.0))
    with pytest.raises(ValueError, match="same shape"):
        f(np.ones(3), np.ones(4))
    with pytest.raises(TypeError, match="same dtype"):
        kernels.kumaraswamy_beta_kl(a, at.fvector("b"), 1.0, 5.0)
    with pytest.raises(ValueError, match="digamma"):
        kernels.KumaraswamyBetaKL(1.0, 5.0, digamma="taylor")


# -- the Bernoulli kernel -----------------------------------------------------------------

@pytest.fixture(scope="module")
def bernoulli_functions():
    cache = {}

    def get(dtype):
        if dtype not in cache:
            x, lg = at.matrix("x", dtype=dtype), at.matrix("l", dtype=dtype)
            k, g = kernels.bernoulli_nll(x, lg), bernoulli_nll_graph(x, lg)
            cache[dtype] = function([x, lg], [k, g] + grad(k.sum(), [lg, x])
                                    + grad(g.sum(), [lg, x]))
        return cache[dtype]
    return get


def _logits(dtype, n=60, d=50):
    lg = RNG.standard_normal((n, d)) * np.array([0.1, 3.0, 30.0])[RNG.integers(0, 3, (n, d))]
    lg[0, :9] = [0.0, -0.0, 1e-30, -1e-30, 36.0, -36.0, 800.0, -800.0, 745.0]
    return lg.astype(dtype), RNG.uniform(0, 1, (n, d)).astype(dtype)


def test_bernoulli_kernel_matches_scipy_and_the_graph(bernoulli_functions):
    lg, x = _logits("float64")
    k, g, dl, dx, gdl, gdx = bernoulli_functions("float64")(x, lg)
    ref = (np.logaddexp(0.0, lg) - x * lg).sum(axis=1)
    np.testing.assert_allclose(k, ref, rtol=1e-14)
    np.testing.assert_allclose(k, g, rtol=1e-14)
    np.testing.assert_allclose(dl, special.expit(lg) - x, rtol=1e-15, atol=3e-16)
    np.testing.assert_allclose(dl, gdl, rtol=1e-14, atol=3e-16)
    np.testing.assert_allclose(dx, gdx, rtol=1e-15)


def test_bernoulli_kernel_float32_is_accurate(bernoulli_functions):
    lg, x = _logits("float32")
    k, _, dl = bernoulli_functions("float32")(x, lg)[:3]
    l64, x64 = lg.astype(float), x.astype(float)
    ref = (np.logaddexp(0.0, l64) - x64 * l64).sum(axis=1)
    np.testing.assert_array_equal(k, ref.astype(np.float32))  # summed in double, rounded once
    np.testing.assert_array_equal(dl, (special.expit(l64) - x64).astype(np.float32))


def test_bernoulli_kernel_scores_repeated_rows_and_checks_shapes():
    x, lg = at.dmatrix("x"), at.dmatrix("l")
    f = function([x, lg], kernels.bernoulli_nll(x, lg))
    X = RNG.uniform(size=(4, 7))
    L = RNG.normal(size=(12, 7))
    expected = (np.logaddexp(0, L) - np.repeat(X, 3, axis=0) * L).sum(1)
    np.testing.assert_allclose(f(X, L), expected, rtol=1e-14)
    np.testing.assert_allclose(function([x, lg], kernels.bernoulli_nll(x, lg), mode=PY_MODE)(X, L),
                               expected, rtol=1e-14)
    with pytest.raises(ValueError, match="do not fit"):
        f(X, L[:10])
    with pytest.raises(ValueError, match="do not fit"):
        f(X, L[:, :6])


@pytest.mark.parametrize("mode", ["c", "py"])
def test_bernoulli_gradient_has_no_subnormal_entries(mode):
    # a trained decoder's blank pixels: logits far below -87, where sigma is subnormal in
    # float32; the gradient through the mean (x 1 / batch size) must stay free of them
    x, lg = at.matrix("x"), at.matrix("l")
    cost = at.mean(kernels.bernoulli_nll(x, lg))
    f = function([x, lg], [cost, grad(cost, lg)],
                 **({"mode": PY_MODE} if mode == "py" else {}))
    L = np.concatenate([np.linspace(-200, -60, 50), RNG.normal(size=50) * 4]).astype("float32")
    L = np.tile(L, (100, 1))
    X = np.zeros_like(L)
    X[:, 60:] = RNG.uniform(size=(100, 40)) > 0.5
    _, g = f(X, L)
    tiny = np.finfo(np.float32).tiny
    assert not ((g != 0) & (np.abs(g) < tiny)).any()
    expected = (special.expit(L.astype(np.float64)) - X) / 100
    assert ((np.abs(expected) < tiny) & (expected != 0)).any()  # the plain gradient has them
    kept = np.abs(expected) >= kernels.DLOGITS_FLUSH * tiny / 100
    np.testing.assert_allclose(g[kept], expected[kept], rtol=1e-6)
    # below the threshold: dropped (0) or, after the 1 / 100, the same number
    assert np.all((g[~kept] == 0) | np.isclose(g[~kept], expected[~kept], rtol=1e-6, atol=0))
    assert (g[~kept] == 0).sum() >= ((np.abs(expected) < tiny) & (expected != 0)).sum()


def test_bernoulli_expr_dispatches_the_semi_supervised_layout():
    from stick_breaking_dgms.objectives import bernoulli_nll_expr
    x, lg = at.dmatrix("x"), at.dtensor3("l")
    f = function([x, lg], bernoulli_nll_expr(x[:, None, :], lg))
    X, L = RNG.uniform(size=(4, 7)), RNG.normal(size=(4, 3, 7))
    np.testing.assert_allclose(f(X, L), (np.logaddexp(0, L) - X[:, None, :] * L).sum(-1),
                               rtol=1e-14)
    assert any(isinstance(n.op, kernels.BernoulliNLL) for n in f.maker.fgraph.toposort())


# -- the Adam kernel ----------------------------------------------------------------------

def _adam_reference(p, m, v, g, step, eps, b1, b2, dtype):
    c = lambda x: np.asarray(x, dtype)  # noqa: E731
    m = m + c(1 - b1) * (g - m)
    v = c(b2) * v + c(1 - b2) * g * g
    return p - c(step) * m / (np.sqrt(v) + c(eps)), m, v


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adam_kernel_matches_numpy_over_steps_in_place(dtype):
    p0 = RNG.standard_normal((31, 17)).astype(dtype)
    p = parameter(p0.copy(), "p")
    m = parameter(np.zeros_like(p0), "m")
    v = parameter(np.zeros_like(p0), "v")
    g = at.matrix("g", dtype=dtype)
    step, eps = np.asarray(1e-3, dtype), np.asarray(1e-8, dtype)
    new = kernels.adam_update(p, m, v, g, step, eps, 0.95, 0.999)
    f = function([g], [], updates=list(zip((p, m, v), new)))
    (node,) = [n for n in f.maker.fgraph.toposort() if isinstance(n.op, kernels.AdamUpdate)]
    assert node.op.inplace
    ref = (p0, np.zeros_like(p0), np.zeros_like(p0))
    for _ in range(3):
        grads = RNG.standard_normal(p0.shape).astype(dtype)
        f(grads)
        ref = _adam_reference(*ref, grads, step, eps, 0.95, 0.999, dtype)
    tol = dict(rtol=2e-7, atol=1e-7) if dtype == "float32" else dict(rtol=1e-15, atol=1e-16)
    for var, expected in zip((p, m, v), ref):
        np.testing.assert_allclose(var.get_value(), expected, **tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode", ["c", "py"])
def test_adam_kernel_flushes_subnormal_moments_without_moving_the_parameters(dtype, mode):
    tiny = np.finfo(dtype).tiny
    # moments a step away from the subnormal range, a weight whose gradient is now 0
    # (a blank pixel), and a normal control column
    p0 = RNG.standard_normal((4, 3)).astype(dtype) * 0.01
    m0 = np.array([[1.5 * tiny, -1.02 * tiny, 0.5], [tiny, 3 * tiny, 1e-3]] * 2, dtype)
    v0 = np.array([[tiny, 1.0005 * tiny, 0.2], [20 * tiny, tiny, 1e-6]] * 2, dtype)
    p, m, v = (parameter(a.copy(), n) for a, n in ((p0, "p"), (m0, "m"), (v0, "v")))
    g = at.matrix("g", dtype=dtype)
    step, eps = np.asarray(3e-4, dtype), np.asarray(1e-8, dtype)
    new = kernels.adam_update(p, m, v, g, step, eps, 0.95, 0.999)
    f = function([g], [], updates=list(zip((p, m, v), new)),
                 **({"mode": PY_MODE} if mode == "py" else {}))
    grads = np.zeros_like(p0)
    grads[:, 2] = 0.1
    f(grads)
    p_ref, m_ref, v_ref = _adam_reference(p0, m0, v0, grads, step, eps, 0.95, 0.999, dtype)
    assert ((np.abs(m_ref[:, :2]) < tiny) & (m_ref[:, :2] != 0)).any()  # the reference has them
    for got, ref in ((m.get_value(), m_ref), (v.get_value(), v_ref)):
        subnormal = (np.abs(ref) < tiny) & (ref != 0)
        assert not ((np.abs(got) < tiny) & (got != 0)).any()
        np.testing.assert_array_equal(got[subnormal], 0)
        np.testing.assert_allclose(got[~subnormal], ref[~subnormal], rtol=2e-7)
    # the weights of the zero-gradient columns do not move, with or without the flush
    np.testing.assert_array_equal(p.get_value()[:, :2], p0[:, :2])
    np.testing.assert_array_equal(p_ref[:, :2], p0[:, :2])
    np.testing.assert_allclose(p.get_value(), p_ref, rtol=2e-7)


def test_adam_kernel_stays_out_of_place_when_the_old_value_is_still_read():
    p = parameter(np.ones((5, 3)), "p")
    m, v = parameter(np.zeros((5, 3)), "m"), parameter(np.zeros((5, 3)), "v")
    g = at.dmatrix("g")
    p_new, m_new, v_new = kernels.adam_update(p, m, v, g, 0.1, 1e-8, 0.9, 0.999)
    # the step withheld by a switch reads the old p after the update: no in-place
    ok = at.lt(at.sum(g), 100.0)
    f = function([g], p_new, updates=[(p, at.switch(ok, p_new, p)), (m, m_new), (v, v_new)])
    node = [n for n in f.maker.fgraph.toposort() if isinstance(n.op, kernels.AdamUpdate)][0]
    assert not node.op.inplace
    out = f(np.full((5, 3), 2.0))
    np.testing.assert_allclose(out, 1.0 - 0.1 * (0.2 / (np.sqrt(0.004) + 1e-8)))
    np.testing.assert_allclose(p.get_value(), out)
    f(np.full((5, 3), 100.0))  # withheld: p keeps its value
    np.testing.assert_allclose(p.get_value(), out)


def test_training_graph_uses_the_kernels_in_float32(mnist):
    from stick_breaking_dgms.experiments import VAETask
    from stick_breaking_dgms.models import VAE
    from stick_breaking_dgms.backend import floatX_as
    from stick_breaking_dgms.datasets.base import Dataset
    small = Dataset("mnist-small", mnist.train_x[:200], mnist.train_y[:200], mnist.valid_x[:100],
                    mnist.valid_y[:100], mnist.test_x[:100], mnist.test_y[:100], "bernoulli")
    with floatX_as("float32"):
        net = VAE(784, [20], [False], "relu", "kumaraswamy", 6, "bernoulli", seed=3)
        task = VAETask(net, small.astype("float32"), batch_size=50, learning_rate=1e-3)
    ops = [type(n.op) for n in task._train.maker.fgraph.toposort()]
    assert kernels.KumaraswamyBetaKL in ops and kernels.BernoulliNLL in ops
    adams = [n.op for n in task._train.maker.fgraph.toposort()
             if isinstance(n.op, kernels.AdamUpdate)]
    assert len(adams) == len(net.params) and all(op.inplace for op in adams)
