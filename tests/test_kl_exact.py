r"""The exact KL(Kumaraswamy(a, b) || Beta(alpha, beta)) (``method="exact"``).

Checked against an mpmath reference over a, b in [1e-4, 1e4] (a log-spaced grid with its
corners, random points, and a few points beyond), for the SB-VAE's priors Beta(1, alpha0)
and two general Beta priors; its gradient against the reference's central differences;
``method="series"`` unchanged; a tiny SB-VAE trained with it; JAX's linker against C's.

The reference integrates :math:`E[\log(1 - v)]` in :math:`t = \log(1 - v^a) = \log(u)/b`
(density :math:`b e^{bt}` on t < 0), with :math:`\log v = \log(1 - e^t)/a` and
:math:`\log(1 - v) = \log(-\mathrm{expm1}(\log v))` formed without cancellation, at 30
digits, by tanh-sinh quadrature with break points at the density's scale 1/b and where
:math:`v^a \approx a`. At a = 1 it agrees with the closed form (Kumaraswamy(1, b) =
Beta(1, b)), which the tests check. It takes a few minutes, so its values are stored in
``tests/data/kl_exact_reference.json``; regenerate them (mpmath needed) with::

    python tests/test_kl_exact.py --regenerate
"""
import json
import os
import sys

import numpy as np
import pytest
from scipy import special

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "data", "kl_exact_reference.json")
PRIORS = ((1.0, 1.0), (1.0, 3.0), (1.0, 5.0), (1.0, 8.0), (2.5, 0.7), (0.5, 3.0))
GRADIENT_PRIORS = ((1.0, 5.0), (2.5, 0.7))
TOL = 1e-6  # relative, the exact KL's specification


# -- the reference (mpmath) -----------------------------------------------------------------

def expected_log_1m_v_mp(a, b, dps=30):
    """E[log(1 - v)], v ~ Kumaraswamy(a, b), by mpmath quadrature in t = log(1 - v^a)."""
    import mpmath as mp
    with mp.workdps(dps):
        a, b = mp.mpf(a), mp.mpf(b)

        def integrand(t):
            if t == 0:
                return mp.mpf(0)
            log_v = mp.log1p(-mp.exp(t)) / a                     # log v = log(1 - e^t) / a
            return b * mp.exp(b * t) * mp.log(-mp.expm1(log_v))  # times log(1 - v)

        # break points: the density's scale 1/b, and t = log a, where v^a ~ a (a < 1)
        cuts = {-1 / b, -10 / b, -40 / b, -0.1 / b, -0.01 / b, mp.log(a), mp.log(a) - 3,
                mp.log(a) + 3, -1, mp.mpf(-1e-3), mp.mpf(-1e-6), mp.mpf(-1e-12)}
        cuts = sorted(c for c in cuts if -60 / b < c < 0)
        return mp.quad(integrand, [-mp.inf] + cuts + [0])


def kl_mp(a, b, alpha, beta, log_1m_v):
    """The KL from E[log(1 - v)], with the true digamma, in mpmath."""
    import mpmath as mp
    a, b, alpha, beta = (mp.mpf(x) for x in (a, b, alpha, beta))
    e_log_va = -mp.euler - mp.digamma(b) - 1 / b          # E[log v^a], v^a ~ Beta(1, b)
    return ((a - alpha) / a * e_log_va + mp.log(a * b) + mp.log(mp.beta(alpha, beta))
            - (b - 1) / b - (beta - 1) * log_1m_v)


def regenerate(path=REFERENCE, seed=0):
    """Write the reference file (a few minutes)."""
    import mpmath as mp
    mp.mp.dps = 30
    grid = [10.0 ** (k / 2) for k in range(-8, 9)]                      # 1e-4 .. 1e4
    rng = np.random.default_rng(seed)
    rand = [tuple(float(x) for x in 10.0 ** rng.uniform(-4, 4, 2)) for _ in range(120)]
    beyond = [(a, b) for a in (1e-6, 1e6) for b in (1e-6, 1e6)] + [(1e-6, 1.0), (1.0, 1e6),
                                                                   (1e6, 1.0), (1.0, 1e-6)]
    points = [(a, b) for a in grid for b in grid] + rand + beyond
    out = {"about": "E[log(1 - v)] and KL(Kumaraswamy(a, b) || Beta(alpha, beta)) by mpmath "
                    "(30 digits); regenerate with python tests/test_kl_exact.py --regenerate",
           "priors": PRIORS, "a": [], "b": [], "set": [], "log_1m_v": [], "kl": []}
    for a, b in points:
        g = expected_log_1m_v_mp(a, b)
        out["a"].append(a)
        out["b"].append(b)
        out["set"].append("grid" if a in grid and b in grid and (a, b) not in rand
                          else "beyond" if (a, b) in beyond else "random")
        out["log_1m_v"].append(float(g))
        out["kl"].append([float(kl_mp(a, b, al, be, g)) for al, be in PRIORS])
    # gradients: central differences of the reference (relative step 1e-9 at 40 digits)
    grads = {"a": [], "b": [], "priors": GRADIENT_PRIORS, "kl_da": [], "kl_db": []}
    spread = (1e-4, 0.05, 0.7, 3.0, 60.0, 1e4)
    for a in spread:
        for b in spread:
            da, db = [], []
            for al, be in GRADIENT_PRIORS:
                def kl(x, y):
                    return kl_mp(x, y, al, be, expected_log_1m_v_mp(x, y, dps=40))
                with mp.workdps(40):
                    h = mp.mpf("1e-9")
                    x, y = mp.mpf(a), mp.mpf(b)
                    da.append(float((kl(x * (1 + h), y) - kl(x * (1 - h), y)) / (2 * h * x)))
                    db.append(float((kl(x, y * (1 + h)) - kl(x, y * (1 - h))) / (2 * h * y)))
            grads["a"].append(a)
            grads["b"].append(b)
            grads["kl_da"].append(da)
            grads["kl_db"].append(db)
    out["gradient"] = grads
    with open(path, "w") as f:
        json.dump(out, f, indent=0)
        f.write("\n")


@pytest.fixture(scope="module")
def ref():
    with open(REFERENCE) as f:
        r = json.load(f)
    for k in ("a", "b", "log_1m_v", "kl"):
        r[k] = np.array(r[k])
    r["set"] = np.array(r["set"])
    return r


# -- the implementation, compiled once per dtype --------------------------------------------

@pytest.fixture(scope="module")
def exact_kl():
    """{"float64": f(a, b) -> [KL per prior of PRIORS] + [dKL/da, dKL/db per
    GRADIENT_PRIORS], "float32": the same for the prior Beta(1, 5) only}."""
    from stick_breaking_dgms.backend import at, function, grad
    from stick_breaking_dgms.distributions import kumaraswamy_beta_kl_expr

    def build(dtype, priors, gradient_priors):
        a, b = at.vector("a", dtype=dtype), at.vector("b", dtype=dtype)
        kls = [kumaraswamy_beta_kl_expr(a, b, al, be, method="exact") for al, be in priors]
        grads = []
        for prior in gradient_priors:
            grads += grad(kls[priors.index(prior)].sum(), [a, b])
        return function([a, b], kls + grads)
    return {"float64": build("float64", PRIORS, GRADIENT_PRIORS),
            "float32": build("float32", ((1.0, 5.0),), ((1.0, 5.0),))}


def _relative(got, want):
    # a KL of exactly 0 (a = 1, b = beta, prior Beta(1, beta)) is met to rounding
    return np.abs(got - want) / np.maximum(np.abs(want), 1e-12)


def test_reference_matches_the_closed_form_at_a_equal_1(ref):
    at1 = (ref["a"] == 1.0)
    assert at1.sum() >= 17
    b = ref["b"][at1]
    # Kumaraswamy(1, b) = Beta(1, b): E[log(1 - v)] = psi(b) - psi(1 + b) = -1/b
    np.testing.assert_allclose(ref["log_1m_v"][at1], -1.0 / b, rtol=1e-15)
    for j, (alpha, beta) in enumerate(PRIORS):
        # KL(Beta(1, b) || Beta(alpha, beta)) = log B(alpha, beta) - log B(1, b)
        #   + (1 - alpha) psi(1) + (b - beta) psi(b) + (alpha - 1 + beta - b) psi(1 + b),
        # with psi(b) = psi(1 + b) - 1/b (the two large digammas cancel in float64)
        closed = (special.betaln(alpha, beta) + np.log(b)
                  + (alpha - 1.0) * (special.psi(1.0 + b) + np.euler_gamma) - 1.0 + beta / b)
        assert np.max(np.abs(ref["kl"][at1, j] - closed)
                      / np.maximum(np.abs(closed), 1.0)) < 1e-13


def test_reference_covers_the_range_with_its_corners(ref):
    grid = ref["set"] == "grid"
    a, b = ref["a"][grid], ref["b"][grid]
    assert grid.sum() == 17 * 17
    for corner in ((1e-4, 1e-4), (1e-4, 1e4), (1e4, 1e-4), (1e4, 1e4)):
        assert np.any((a == corner[0]) & (b == corner[1]))
    # and the faithful series is far off somewhere in it (the test can fail)
    from stick_breaking_dgms.distributions import kumaraswamy_beta_kl
    series = kumaraswamy_beta_kl(a, b, 1.0, 5.0)
    assert np.max(_relative(series, ref["kl"][grid, PRIORS.index((1.0, 5.0))])) > 0.1


def test_exact_kl_float64_matches_the_reference(ref, exact_kl):
    out = exact_kl["float64"](ref["a"], ref["b"])
    worst = []
    for j, prior in enumerate(PRIORS):
        rel = _relative(out[j], ref["kl"][:, j])
        i = int(np.argmax(rel))
        worst.append((float(rel[i]), prior, float(ref["a"][i]), float(ref["b"][i])))
    assert max(worst)[0] <= TOL, f"worst relative error {max(worst)}"


def test_expected_log_1m_v_matches_the_reference(ref):
    from stick_breaking_dgms.backend import at, function
    from stick_breaking_dgms.distributions import expected_log_1m_v_expr
    a, b = at.dvectors("a", "b")
    got = function([a, b], expected_log_1m_v_expr(a, b))(ref["a"], ref["b"])
    want = ref["log_1m_v"]
    # relative to the terms it is made of, -1/b - log a and the integral D (|D| <= |log a|):
    # the quadrature's error on D (the KL's own tolerance is tested above)
    scale = np.abs(want) + 1.0 / ref["b"] + np.abs(np.log(ref["a"])) + 1.0
    assert np.max(np.abs(got - want) / scale) < 1e-7


def test_harmonic_number_is_accurate_for_small_and_large_b():
    from stick_breaking_dgms.backend import at, function
    from stick_breaking_dgms.distributions import harmonic_number_expr
    b = at.dvector("b")
    f = function([b], harmonic_number_expr(b))
    small = np.logspace(-12, -2, 21)
    # H_b = sum_k>=2 (-1)^k zeta(k) b^(k-1), 12 terms are exact to float64 for b <= 1e-2
    series = sum((-1) ** k * special.zeta(k) * small ** (k - 1) for k in range(2, 14))
    np.testing.assert_allclose(f(small), series, rtol=1e-14)
    large = np.logspace(-1, 8, 37)
    np.testing.assert_allclose(f(large), special.psi(1 + large) + np.euler_gamma, rtol=1e-14)


def test_gradient_matches_the_reference(ref, exact_kl):
    g = ref["gradient"]
    a, b = np.array(g["a"]), np.array(g["b"])
    out = exact_kl["float64"](a, b)[len(PRIORS):]
    for j, _ in enumerate(GRADIENT_PRIORS):
        for got, key in zip(out[2 * j:2 * j + 2], ("kl_da", "kl_db")):
            want = np.array(g[key])[:, j]
            assert np.all(np.isfinite(got))
            rel = np.abs(got - want) / np.abs(want)
            assert np.max(rel) <= TOL, (key, j, float(np.max(rel)), a[np.argmax(rel)],
                                        b[np.argmax(rel)])


def test_gradient_is_finite_at_the_corners(exact_kl):
    edge = np.array([1e-4, 1e4])
    a, b = (x.ravel() for x in np.meshgrid(edge, edge))
    for dtype in ("float64", "float32"):
        for out in exact_kl[dtype](a.astype(dtype), b.astype(dtype)):
            assert np.all(np.isfinite(out)), dtype


def test_float32_is_the_float64_result_rounded(ref, exact_kl):
    a32, b32 = ref["a"].astype(np.float32), ref["b"].astype(np.float32)
    got = exact_kl["float32"](a32, b32)
    want = exact_kl["float64"](a32.astype(np.float64), b32.astype(np.float64))
    j = len(PRIORS) + 2 * GRADIENT_PRIORS.index((1.0, 5.0))
    want = [want[PRIORS.index((1.0, 5.0))], want[j], want[j + 1]]
    assert len(got) == 3
    for g, w in zip(got, want):
        assert g.dtype == np.float32
        # computed in float64 and rounded once: within one float32 ulp of the float64 value
        assert np.all(np.abs(g.astype(np.float64) - w) <= np.spacing(np.abs(w).astype(np.float32)))


def test_series_is_unchanged():
    from stick_breaking_dgms import distributions, kernels
    from stick_breaking_dgms.backend import at, function
    rng = np.random.default_rng(3)
    a, b = 10.0 ** rng.uniform(-1.5, 1.8, (2, 50))
    for dtype in ("float64", "float32"):
        av, bv = a.astype(dtype), b.astype(dtype)
        x, y = at.vector("a", dtype=dtype), at.vector("b", dtype=dtype)
        direct = function([x, y], kernels.kumaraswamy_beta_kl(x, y, 1.0, 5.0, 10, "series"))
        default = distributions.kumaraswamy_beta_kl(av, bv, 1.0, 5.0)
        named = distributions.kumaraswamy_beta_kl(av, bv, 1.0, 5.0, 10, "series", method="series")
        np.testing.assert_array_equal(default, direct(av, bv))
        np.testing.assert_array_equal(named, default)
        expr = distributions.kumaraswamy_beta_kl_expr(x, y, 1.0, 5.0)
        assert isinstance(expr.owner.op, kernels.KumaraswamyBetaKL)
    # the documented case: ten terms give 1.880 where the KL is 2.085
    series = distributions.kumaraswamy_beta_kl(3.0, 1.5, 1.0, 3.0)
    exact = distributions.kumaraswamy_beta_kl(3.0, 1.5, 1.0, 3.0, method="exact")
    assert abs(series - 1.880) < 1e-3 and abs(exact - 2.085) < 1e-3


def test_unknown_method_is_refused():
    from stick_breaking_dgms.distributions import kumaraswamy_beta_kl, kumaraswamy_beta_kl_expr
    from stick_breaking_dgms.families import get_family
    with pytest.raises(ValueError, match="method"):
        kumaraswamy_beta_kl(1.0, 1.0, 1.0, 5.0, method="quad")
    with pytest.raises(ValueError, match="method"):
        kumaraswamy_beta_kl_expr(np.ones(2), np.ones(2), 1.0, 5.0, method="Exact")
    with pytest.raises(ValueError, match="kl"):
        get_family("kumaraswamy")(4, 3, np.random.default_rng(0), kl="quad")


def test_configuration_and_flag():
    from stick_breaking_dgms import cli
    from stick_breaking_dgms.config import ConfigError, ExperimentConfig, LatentConfig
    from stick_breaking_dgms.families import options_of
    assert "kl" in options_of("kumaraswamy")
    _, _, c = cli.parse_args("sb_vae", ["--kl", "exact"])
    assert c.latent == LatentConfig(kl="exact") and c.latent.options()["kl"] == "exact"
    assert c.flat()["kl"] == "exact"
    assert ExperimentConfig.from_flat("sb_vae", c.flat()) == c
    assert ExperimentConfig.from_dict(c.to_dict()) == c
    assert ExperimentConfig("sb_vae").latent.kl == "series"  # the faithful default
    with pytest.raises(ConfigError) as e:
        LatentConfig(kl="quadrature").validate()
    assert e.value.key == "kl"
    with pytest.raises(ConfigError) as e:  # no series to cut in the exact KL
        LatentConfig(kl="exact", taylor_terms=20).validate()
    assert e.value.key == "kl_taylor_terms"
    with pytest.raises(ConfigError) as e:
        LatentConfig("gamma", kl="exact").validate()
    assert e.value.key == "kl"
    with pytest.raises(SystemExit):
        cli.parse_args("sb_vae", ["--kl", "quad"])


def test_tiny_sb_vae_trains_with_the_exact_kl():
    from stick_breaking_dgms import backend
    from stick_breaking_dgms.backend import at, function
    from stick_breaking_dgms.distributions import kumaraswamy_beta_kl
    from stick_breaking_dgms.models import VAE
    from stick_breaking_dgms.optimizers import training_updates
    with backend.floatX_as("float32"):
        model = VAE(784, [20], [False], "relu", "kumaraswamy", 6, "bernoulli", seed=3,
                    alpha0=5.0, kl="exact")
        x = at.matrix("x")
        nll, kl = model.negative_elbo_terms(x)
        post = model.posterior(x)
        loss = at.mean(nll + kl)
        updates, _ = training_updates(loss, model.params.values(), 3e-3)
        step = function([x], [loss, kl, post["a"], post["b"]], updates=updates)
    data = (np.random.default_rng(0).uniform(size=(50, 784)) < 0.3).astype(np.float32)
    losses = []
    for _ in range(5):
        value, kl_value, a, b = step(data)
        assert np.isfinite(value) and np.all(np.isfinite(kl_value))
        losses.append(float(value))
    # the model's KL is the exact one of its posterior parameters
    want = kumaraswamy_beta_kl(a.astype(np.float64), b.astype(np.float64), 1.0, 5.0,
                               method="exact").sum(axis=1)
    np.testing.assert_allclose(kl_value, want, rtol=1e-5)
    assert losses[-1] < losses[0]


JAX = False
try:
    from stick_breaking_dgms import backend as _backend
    JAX = _backend.NAME == "pytensor" and _backend._impl.JAX_AVAILABLE
except ImportError:  # pragma: no cover
    pass


@pytest.mark.skipif(not JAX, reason="the JAX linker needs PyTensor and jax")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_jax_linker_runs_the_graph(ref, exact_kl, dtype):
    """Standard ops only: PyTensor's JAX linker runs it without a twin."""
    from stick_breaking_dgms.backend import at, function, grad
    from stick_breaking_dgms.backend import jax as twins
    from stick_breaking_dgms.distributions import kumaraswamy_beta_kl_expr
    twins.configure(dtype)
    try:
        a, b = at.vector("a", dtype=dtype), at.vector("b", dtype=dtype)
        kl = kumaraswamy_beta_kl_expr(a, b, 1.0, 5.0, method="exact")
        f = function([a, b], [kl] + grad(kl.sum(), [a, b]), mode="JAX")
        av, bv = ref["a"].astype(dtype), ref["b"].astype(dtype)
        got = f(av, bv)
        want = exact_kl["float64"](av.astype(np.float64), bv.astype(np.float64))
    finally:
        twins.configure("float32")
    j = PRIORS.index((1.0, 5.0))
    for g, w in zip(got, [want[j]] + want[len(PRIORS):len(PRIORS) + 2]):
        assert np.asarray(g).dtype == dtype
        if dtype == "float64":
            np.testing.assert_allclose(g, w, rtol=1e-10)
        else:
            # JAX computes float32 graphs in single precision (backend/jax.py): tens of
            # float32 ulps of the terms the KL is made of (beta / b, log a, the value)
            scale = np.abs(w) + 1.0 / bv + np.abs(np.log(av))
            err = np.abs(np.asarray(g, np.float64) - w)
            assert np.all(err <= 50 * np.finfo(np.float32).eps * scale), "float32"


if __name__ == "__main__":
    if sys.argv[1:] == ["--regenerate"]:
        regenerate()
        print(f"wrote {REFERENCE}")
    else:
        print(__doc__)
