"""The latent families (stick_breaking_dgms.families), one harness for all of them.

For every family in FAMILIES (in the manner of PyMC's check_logp): the importance
sampler's log densities against SciPy on a grid with edges, its draws against the CDF
(Kolmogorov-Smirnov), the closed-form KL against Monte Carlo, the training draw against
the posterior mean, finite gradients at the edges, the registry, Knowles' sampler, and
the SB-VAE's latent layer against the original's graph and the evaluation's formulas.
Everything is float64 unless said otherwise.
"""
import numpy as np
import pytest
from scipy import integrate, special, stats

from stick_breaking_dgms import backend
from stick_breaking_dgms.backend import RandomStream, at, function, grad
from stick_breaking_dgms.families import (FAMILIES, GaussLogit, Kumaraswamy, get_family,
                                          knowles_ks_distance, matched_prior)

NAMES = list(FAMILIES)
STICK_BREAKING = [n for n in NAMES if FAMILIES[n].construction == "stick-breaking"]
ALPHA0 = 5.0
EDGES = np.array([1e-3, 0.1, 1.0, 10.0, 1e3])
TINY = np.finfo(np.float64).tiny


def inv_softplus(p):
    p = np.asarray(p, dtype=np.float64)
    return p + np.log(-np.expm1(-p))


def identity(p):
    return np.asarray(p, dtype=np.float64)


# How each family maps its two pre-activations to its posterior parameters (what the
# tests expect; checked in test_posterior_parameterisation).
SPEC = {
    "kumaraswamy": (("a", "b"), (inv_softplus, inv_softplus)),
    "gauss-logit": (("mu", "sigma"), (identity, inv_softplus)),
    "gamma": (("alpha", "beta"), (inv_softplus, inv_softplus)),
    "gaussian": (("mu", "log_sigma"), (identity, identity)),
}

# A grid of (first, second) posterior parameters per family, with edges.
GRIDS = {
    "kumaraswamy": [(a, b) for a in EDGES for b in EDGES],
    "gamma": [(a, b) for a in EDGES for b in EDGES],
    "gauss-logit": [(m, s) for m in (-5.0, -2.0, 0.0, 3.0) for s in EDGES],
    "gaussian": [(m, ls) for m in (-3.0, 0.0, 5.0) for ls in np.log(EDGES)],
}


def params_of(name, pairs):
    """{key: (n, 1) array} for a list of (first, second) parameter pairs."""
    keys, _ = SPEC[name]
    arr = np.asarray(pairs, dtype=np.float64)
    return {keys[0]: arr[:, :1].copy(), keys[1]: arr[:, 1:].copy()}


def make(name, **options):
    with backend.floatX_as("float64"):
        return FAMILIES[name](2, 1, np.random.default_rng(0), **options)


# ---------------------------------------------------------------------------------------
# The compiled harness: h -> posterior, training draw, KL, mean code, d(KL + draw)/dh.

L = 4  # latent columns of the harness graph


class Harness:
    """One compiled float64 graph per family: n_in = 2L, the first weight matrix picks
    h[:, :L], the second h[:, L:], so chosen posterior parameters are one softplus
    inverse away. The training noise comes from the family's own ``noise`` on a seeded
    RandomStream (reseeded on every call, so calls with the same seed share the noise)."""

    def __init__(self, name, **options):
        self.name = name
        with backend.floatX_as("float64"):
            fam = FAMILIES[name](2 * L, L, np.random.default_rng(0), **options)
            first, second = fam.params
            eye, zero = np.eye(L), np.zeros((L, L))
            first.set_value(np.vstack([eye, zero]))
            second.set_value(np.vstack([zero, eye]))
            h = at.matrix("h")
            post = fam.posterior(h)
            self.srng = RandomStream(1234)
            draw = fam.sample(post, fam.noise(self.srng, h.shape[0]))
            kl = fam.kl(post)
            loss = at.sum(kl) + at.sum(draw)
            self.keys = tuple(post)
            self.family = fam
            self.f = function([h], [post[k] for k in self.keys]
                              + [draw, kl, fam.mean_code(post), loss, grad(loss, h)])

    def at_h(self, h, seed=0):
        self.srng.seed(seed)
        out = self.f(np.asarray(h, dtype=np.float64))
        post = dict(zip(self.keys, out[:2]))
        draw, kl, mean, loss, g = out[2:]
        return {"post": post, "draw": draw, "kl": kl, "mean": mean, "loss": float(loss), "grad": g}

    def at_params(self, first, second, seed=0):
        """first, second: (n, L) arrays of the posterior's two parameters."""
        _, (inv1, inv2) = SPEC[self.name]
        return self.at_h(np.concatenate([inv1(first), inv2(second)], axis=1), seed)


@pytest.fixture(scope="module")
def harness():
    cache = {}

    def get(name, **options):
        key = (name, tuple(sorted(options.items())))
        if key not in cache:
            cache[key] = Harness(name, **options)
        return cache[key]
    return get


def columns(pairs, rows):
    """(rows, L) arrays of the first and second parameters, pair j in column j (padded)."""
    pairs = list(pairs) + [pairs[0]] * (L - len(pairs))
    assert len(pairs) == L
    arr = np.asarray(pairs, dtype=np.float64)
    return np.tile(arr[:, 0], (rows, 1)), np.tile(arr[:, 1], (rows, 1))


# ---------------------------------------------------------------------------------------
# 1. importance_sample's log densities against SciPy, on a grid with edges.

def _v_and_1mv(latent):
    """v and 1 - v as float64, each from its own log (accurate where it is small)."""
    with np.errstate(under="ignore"):
        return np.exp(latent["log_v"]), np.exp(latent["log_1m_v"])


def _beta_logpdf(latent, alpha, beta):
    """scipy's Beta log density at v, from whichever of v and 1 - v is the smaller
    (Beta(alpha, beta) at v is Beta(beta, alpha) at 1 - v)."""
    v, w = _v_and_1mv(latent)
    alpha, beta = np.broadcast_arrays(alpha, beta, v)[:2]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.where(v <= 0.5, stats.beta.logpdf(v, alpha, beta),
                        stats.beta.logpdf(w, beta, alpha))


def _kumaraswamy_logpdf(latent, a, b):
    """log of a b v^(a-1) (1 - v^a)^(b-1), written out; log v from v or from 1 - v."""
    v, w = _v_and_1mv(latent)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_v = np.where(v <= 0.5, np.log(v), np.log1p(-w))
        log_1m_va = np.log(-np.expm1(a * log_v))  # log(1 - v^a), stable given log v
        return np.log(a) + np.log(b) + (a - 1.0) * log_v + (b - 1.0) * log_1m_va


def _comparable(name, latent):
    """Where the float64 reference is meaningful: v and 1 - v normal floats."""
    if name == "gaussian":
        return np.isfinite(latent["z"])
    v, w = _v_and_1mv(latent)
    return (v > TINY) & (w > TINY)


def reference_densities(name, fam, latent, params):
    """Per-element (n, S, 1) reference log q and log p."""
    keys, _ = SPEC[name]
    p1, p2 = params[keys[0]][:, None, :], params[keys[1]][:, None, :]
    if name == "kumaraswamy":
        return _kumaraswamy_logpdf(latent, p1, p2), _beta_logpdf(latent, 1.0, ALPHA0)
    if name == "gamma":
        return _beta_logpdf(latent, p1, p2), _beta_logpdf(latent, 1.0, ALPHA0)
    if name == "gauss-logit":
        eta = latent["log_v"] - latent["log_1m_v"]
        return (stats.norm.logpdf(eta, p1, p2),
                stats.norm.logpdf(eta, fam.prior_mean, fam.prior_std))
    z = latent["z"]
    return stats.norm.logpdf(z, p1, np.exp(p2)), stats.norm.logpdf(z)


@pytest.mark.parametrize("name", NAMES)
def test_importance_densities_match_scipy(name):
    fam = make(name)
    params = params_of(name, GRIDS[name])
    latent, log_q, log_p = fam.importance_sample(np.random.default_rng(1), params, 200)
    n = len(GRIDS[name])
    assert log_q.shape == log_p.shape == (n, 200)
    for arr in latent.values():
        assert arr.shape == (n, 200, 1)
        assert np.all(np.isfinite(arr)), "the log-space draws are finite on the whole grid"
    assert np.all(np.isfinite(log_q)) and np.all(np.isfinite(log_p))
    if name != "gaussian":
        # log v and log(1 - v) describe one number, each to full relative precision: the
        # smaller of v and 1 - v gives the other's log by log1p
        v, w = _v_and_1mv(latent)
        small_v, small_w = (v <= 0.5) & (v > TINY), (w < 0.5) & (w > TINY)
        assert small_v.any() and small_w.any()
        np.testing.assert_allclose(latent["log_1m_v"][small_v], np.log1p(-v[small_v]),
                                   rtol=1e-12, atol=0)
        np.testing.assert_allclose(latent["log_v"][small_w], np.log1p(-w[small_w]),
                                   rtol=1e-12, atol=0)
    ref_q, ref_p = reference_densities(name, fam, latent, params)
    ok = _comparable(name, latent)[..., 0] & np.isfinite(ref_q[..., 0]) & np.isfinite(ref_p[..., 0])
    # the comparison is not vacuous: most of the grid, and every pair in [0.1, 10], is compared
    assert ok.mean() > 0.5, f"only {ok.mean():.0%} of the draws comparable"
    pairs = np.asarray(GRIDS[name])
    if name in ("kumaraswamy", "gamma"):
        inner = np.all((pairs >= 0.1) & (pairs <= 10), axis=1)
        assert ok[inner].all()
    np.testing.assert_allclose(log_q[ok], ref_q[..., 0][ok], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(log_p[ok], ref_p[..., 0][ok], rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------------------
# 2. The exact sampler against the CDF (Kolmogorov-Smirnov on F(draw), which must be
# uniform; F is computed from the logs, so extreme parameters are tested too).

KS_PAIRS = {
    "kumaraswamy": [(0.5, 2.0), (3.0, 1.5), (0.05, 20.0), (20.0, 0.05)],
    "gamma": [(0.5, 2.0), (3.0, 1.5), (0.05, 0.2), (50.0, 20.0)],
    "gauss-logit": [(-2.0, 0.5), (1.0, 3.0), (0.5, 1e-3), (-20.0, 30.0)],
    "gaussian": [(0.0, 0.0), (-2.0, np.log(0.5)), (5.0, np.log(1e-3)), (1.0, np.log(1e3))],
}


def cdf_of_draws(name, fam, latent, p1, p2):
    if name == "kumaraswamy":
        log_1m_va = np.log(-np.expm1(p1 * latent["log_v"]))
        return -np.expm1(p2 * log_1m_va)
    if name == "gamma":
        v, w = _v_and_1mv(latent)
        return np.where(v <= 0.5, stats.beta.cdf(v, p1, p2), stats.beta.sf(w, p2, p1))
    if name == "gauss-logit":
        return stats.norm.cdf(latent["log_v"] - latent["log_1m_v"], p1, p2)
    return stats.norm.cdf(latent["z"], p1, np.exp(p2))


@pytest.mark.parametrize("name", NAMES)
def test_exact_sampler_matches_cdf(name):
    fam = make(name)
    pairs = KS_PAIRS[name]
    params = params_of(name, pairs)
    latent, _, _ = fam.importance_sample(np.random.default_rng(2), params, 20000)
    keys, _ = SPEC[name]
    u = cdf_of_draws(name, fam, latent, params[keys[0]][:, None, :], params[keys[1]][:, None, :])
    for i, pair in enumerate(pairs):
        p = stats.kstest(u[i, :, 0], "uniform").pvalue
        assert p > 1e-3, f"{name} {pair}: KS p-value {p:.2g}"


def test_ks_harness_detects_a_wrong_sampler():
    """The KS check above has power: Kumaraswamy's *training* draws, u ~ U(0.01, 0.99),
    do not have the Kumaraswamy distribution, and 100000 of them are rejected."""
    a, b = 0.5, 2.0
    u = np.random.default_rng(0).uniform(0.01, 0.99, 100000)
    v = (1 - u ** (1 / b)) ** (1 / a)
    assert stats.kstest(1 - (1 - v ** a) ** b, "uniform").pvalue < 1e-3


# ---------------------------------------------------------------------------------------
# 3. The closed-form KL against Monte Carlo.

KL_PAIRS = {
    # a >= 1, b >= 2 where 200 terms of the series converge (the tail is O(200^-b)), and
    # the prior itself (KL 0)
    "kumaraswamy": [(1.0, ALPHA0), (2.0, 3.0), (5.0, 2.0), (1.5, 8.0)],
    "gamma": [(1.0, ALPHA0), (0.5, 2.0), (3.0, 1.5), (0.2, 0.3)],
    "gauss-logit": [matched_prior(ALPHA0), (-1.0, 0.5), (2.0, 3.0), (0.0, 0.1)],
    "gaussian": [(0.0, 0.0), (1.0, -1.0), (-2.0, 0.5), (3.0, -3.0)],
}
KL_OPTIONS = {"kumaraswamy": {"digamma": "exact", "taylor_terms": 200}}
MC_SAMPLES = 40000


def beta_kl(a, b, a0, b0):
    """KL(Beta(a, b) || Beta(a0, b0)), closed form."""
    return (special.betaln(a0, b0) - special.betaln(a, b) + (a - a0) * special.digamma(a)
            + (b - b0) * special.digamma(b) + (a0 - a + b0 - b) * special.digamma(a + b))


def pair_rows(pairs):
    """(n, L) arrays: row i holds pair i in every column."""
    arr = np.asarray(pairs, dtype=np.float64)
    return np.repeat(arr[:, :1], L, axis=1), np.repeat(arr[:, 1:], L, axis=1)


@pytest.mark.parametrize("name", NAMES)
def test_kl_matches_monte_carlo(name, harness):
    options = KL_OPTIONS.get(name, {})
    pairs = KL_PAIRS[name]
    per_pair = harness(name, **options).at_params(*pair_rows(pairs))["kl"] / L
    assert np.all(np.isfinite(per_pair))
    rng = np.random.default_rng(3)
    fam = make(name, **options)
    params = params_of(name, pairs)
    if name == "gamma":
        # the KL is on the two Gamma variables: x ~ Gamma(alpha), y ~ Gamma(beta) against
        # Gamma(1) and Gamma(alpha0)
        alpha, beta = params["alpha"], params["beta"]
        x = stats.gamma(alpha).rvs((len(pairs), MC_SAMPLES), random_state=rng)
        y = stats.gamma(beta).rvs((len(pairs), MC_SAMPLES), random_state=rng)
        d = (stats.gamma.logpdf(x, alpha) - stats.gamma.logpdf(x, 1.0)
             + stats.gamma.logpdf(y, beta) - stats.gamma.logpdf(y, ALPHA0))
        # the importance sampler's densities give the (smaller) KL on v = x / (x + y)
        _, log_q, log_p = fam.importance_sample(rng, params, MC_SAMPLES)
        dv = log_q - log_p
        kl_v = beta_kl(alpha[:, 0], beta[:, 0], 1.0, ALPHA0)
        se_v = dv.std(axis=1) / np.sqrt(MC_SAMPLES)
        assert np.all(np.abs(dv.mean(axis=1) - kl_v) <= 4 * se_v + 1e-9), (dv.mean(axis=1), kl_v)
        assert np.all(kl_v <= per_pair + 1e-12)
    else:
        _, log_q, log_p = fam.importance_sample(rng, params, MC_SAMPLES)
        d = log_q - log_p
    mc, se = d.mean(axis=1), d.std(axis=1) / np.sqrt(MC_SAMPLES)
    # 1e-6: the 200-term series' truncation where the KL is 0 and MC has no variance
    assert np.all(np.abs(mc - per_pair) <= 4 * se + 1e-6), (name, mc, se, per_pair)
    assert abs(per_pair[0]) < 1e-6, "the KL vanishes at the prior"
    assert np.all(per_pair[1:] > 1e-3)


def test_kumaraswamy_faithful_kl_differs_from_exact():
    """The options reach the KL. The default (ten terms, series digamma) is the original's
    approximation: at a = 3, b = 1.5 under Beta(1, 3) it gives 1.880, the exact KL 2.085
    (REFERENCE.md 2); the series converges like m^(-1-b), so b = 1.5 needs thousands of
    terms (200 leave 0.0035 out)."""
    kl = {}
    with backend.floatX_as("float64"):
        a, b = at.matrix("a"), at.matrix("b")
        for opts in ({}, {"digamma": "exact", "taylor_terms": 5000}):
            fam = Kumaraswamy(1, 1, np.random.default_rng(0), alpha0=3.0, **opts)
            kl[len(opts)] = function([a, b], fam.kl({"a": a, "b": b}))([[3.0]], [[1.5]])[0]
    assert kl[0] == pytest.approx(1.880, abs=2e-3)
    assert kl[2] == pytest.approx(2.085, abs=2e-3)


# ---------------------------------------------------------------------------------------
# 4. The training draw: in (0, 1), its mean near the exact posterior mean; mean_code.

TRAIN_ROWS = 20000
TRAIN_PAIRS = {
    "kumaraswamy": [(0.5, 2.0), (3.0, 1.5), (1.0, 5.0), (2.0, 0.7)],
    # Knowles' draw is only accurate for small shapes (KS distance 0.37 at shape 1, 0.88 at
    # 5: the draw is capped at Gamma(a + 1)^(1/a)), so shapes > 1 are not checked: the
    # training draw there is not meant to be close to Beta(alpha, beta).
    "gamma": [(0.1, 0.3), (0.05, 0.2), (0.2, 0.1), (0.3, 0.3)],
    "gauss-logit": [(-2.0, 0.5), (1.0, 3.0), (0.0, 0.01), (3.0, 1.2)],
    "gaussian": [(0.0, 0.0), (-2.0, np.log(0.5)), (5.0, np.log(3.0)), (1.0, np.log(1e-2))],
}
UNIFORM_RANGE = (0.01, 0.99)


def exact_mean(name, p1, p2):
    if name == "kumaraswamy":  # E[v] = int_0^1 P(v > t) dt
        return integrate.quad(lambda t: (1 - t ** p1) ** p2, 0, 1, epsabs=1e-13)[0]
    if name == "gamma":
        return p1 / (p1 + p2)
    if name == "gauss-logit":
        return integrate.quad(lambda e: special.expit(e) * stats.norm.pdf(e, p1, p2),
                              p1 - 12 * p2, p1 + 12 * p2, epsabs=1e-13, limit=200)[0]
    return p1


def training_sampler_mean(name, p1, p2):
    """E[draw] under the training sampler itself (u ~ U(0.01, 0.99) for the Kumaraswamy
    and Knowles' draws): quadrature over u, independent of the Aesara graph."""
    lo, hi = UNIFORM_RANGE
    if name == "kumaraswamy":
        f = lambda u: (1 - u ** (1 / p2)) ** (1 / p1)  # noqa: E731
        return integrate.quad(f, lo, hi, epsabs=1e-13)[0] / (hi - lo)
    if name == "gamma":
        x, w = np.polynomial.legendre.leggauss(200)
        u, w = (lo + hi) / 2 + (hi - lo) / 2 * x, w / 2
        lx = (np.log(u) + special.gammaln(p1 + 1)) / p1
        ly = (np.log(u) + special.gammaln(p2 + 1)) / p2
        return np.einsum("i,j,ij->", w, w, special.expit(lx[:, None] - ly[None, :]))
    return exact_mean(name, p1, p2)  # Normal noise: the training draw is exact


def rounds_to_edge(name, p1, p2):
    """Whether a training draw may legitimately round to 0 or 1 in float64: Knowles' log x
    lies in [(log 0.01 + lgamma(a + 1)) / a, (log 0.99 + lgamma(a + 1)) / a], and
    v = sigmoid(log x - log y) rounds to 1 once log x - log y > 37 (Beta(0.2, 0.1) has
    that much mass within 1e-16 of 1)."""
    if name != "gamma":
        return False
    lo = [(np.log(0.01) + special.gammaln(p + 1)) / p for p in (p1, p2)]
    hi = [(np.log(0.99) + special.gammaln(p + 1)) / p for p in (p1, p2)]
    return max(hi[0] - lo[1], hi[1] - lo[0]) > 36


@pytest.mark.parametrize("name", NAMES)
def test_training_draw(name, harness):
    pairs = TRAIN_PAIRS[name]
    out = harness(name).at_params(*columns(pairs, TRAIN_ROWS))
    draw, mean = out["draw"], out["mean"]
    assert np.all(np.isfinite(draw))
    if name != "gaussian":
        assert np.all((draw >= 0) & (draw <= 1))
        strict = [j for j, pair in enumerate(pairs) if not rounds_to_edge(name, *pair)]
        assert strict
        assert np.all((draw[:, strict] > 0) & (draw[:, strict] < 1))
    for j, (p1, p2) in enumerate(pairs):
        exact = exact_mean(name, p1, p2)
        train = training_sampler_mean(name, p1, p2)
        mc, se = draw[:, j].mean(), draw[:, j].std() / np.sqrt(TRAIN_ROWS)
        assert abs(mc - train) <= 4 * se, (name, (p1, p2), mc, train, se)
        # the training sampler's own bias (the U(0.01, 0.99) clip, Knowles' approximation)
        assert abs(train - exact) < 0.015, (name, (p1, p2), train, exact)
        np.testing.assert_allclose(mean[:, j], exact, rtol=1e-8, atol=1e-9)


# ---------------------------------------------------------------------------------------
# 5. Gradients: finite at the edges, and right (central differences) inside.

@pytest.mark.parametrize("name", NAMES)
def test_gradients_finite_at_edges(name, harness):
    h_small = float(inv_softplus(1e-3))  # softplus(h) = 1e-3
    h_big = float(inv_softplus(50.0))  # softplus(h) = 50
    values = [h_small, h_big]
    rows = [[x, y] for x in values for y in values]  # every (first, second) combination
    h = np.array([[x] * L + [y] * L for x, y in rows])
    out = harness(name).at_h(h)
    if name in ("kumaraswamy", "gamma"):
        for p in out["post"].values():
            np.testing.assert_allclose(np.unique(np.round(p, 9)), [1e-3, 50.0], rtol=1e-9)
    assert np.all(np.isfinite(out["kl"])), out["kl"]
    assert np.all(np.isfinite(out["draw"]))
    assert np.all(np.isfinite(out["grad"])), out["grad"]


@pytest.mark.parametrize("name", NAMES)
def test_gradients_match_central_differences(name, harness):
    hz = harness(name)
    h = np.random.default_rng(4).uniform(-1.0, 1.5, (3, 2 * L))
    g = hz.at_h(h, seed=7)["grad"]
    step = 1e-6
    for i, j in [(0, 0), (1, L - 1), (2, L), (0, 2 * L - 1)]:
        hp, hm = h.copy(), h.copy()
        hp[i, j] += step
        hm[i, j] -= step
        fd = (hz.at_h(hp, seed=7)["loss"] - hz.at_h(hm, seed=7)["loss"]) / (2 * step)
        assert g[i, j] == pytest.approx(fd, rel=1e-5, abs=1e-7), (name, i, j)


# ---------------------------------------------------------------------------------------
# 6. Registry and protocol.

def test_get_family_rejects_unknown_names():
    with pytest.raises(ValueError) as err:
        get_family("nope")
    assert "nope" in str(err.value)
    for known in FAMILIES:
        assert known in str(err.value)
    with pytest.raises(ValueError):
        get_family(["kumaraswamy"])
    for name, cls in FAMILIES.items():
        assert get_family(name) is cls and cls.name == name


@pytest.mark.parametrize("name", NAMES)
def test_protocol(name):
    with backend.floatX_as("float64"):
        fam = FAMILIES[name](7, 3, np.random.default_rng(0))
    assert fam.construction in ("stick-breaking", "gaussian")
    assert len(fam.params) == 2
    assert [p.name for p in fam.params] == [f"latent/{w}" for w in fam.weight_names]
    assert all(p.name.startswith("latent/") for p in fam.params)
    assert all(p.get_value().shape == (7, 3) for p in fam.params)
    assert fam.code_size == (4 if fam.construction == "stick-breaking" else 3)
    # weights drawn in order from rng: the first matrix is the first draw
    expected = 0.01 * np.random.default_rng(0).standard_normal((7, 3))
    np.testing.assert_allclose(fam.params[0].get_value(), expected)
    keys, _ = SPEC[name]
    p1 = np.array([[0.5, 2.0, 3.0], [0.1, 0.2, 0.3]])
    p2 = np.array([[1.5, 0.4, 9.0], [4.0, 0.05, 0.7]])
    diag = fam.diagnostics({keys[0]: p1, keys[1]: p2})
    assert tuple(diag) == fam.diagnostic_names
    assert all(v.shape == (2,) for v in diag.values())
    first, second = fam.diagnostic_names
    expected = {"min_a": p1.min(1), "min_b": p2.min(1), "min_alpha": p1.min(1),
                "min_beta": p2.min(1), "min_sigma": p2.min(1), "max_abs_mu": np.abs(p1).max(1),
                "min_log_sigma": p2.min(1), "max_log_sigma": p2.max(1)}
    np.testing.assert_array_equal(diag[first], expected[first])
    np.testing.assert_array_equal(diag[second], expected[second])
    with pytest.raises(ValueError):
        fam.importance_sample(np.random.default_rng(0), {keys[0]: p1}, 3)


@pytest.mark.parametrize("name", NAMES)
def test_posterior_parameterisation(name, harness):
    """The posterior keys, and the maps from pre-activations the tests rely on."""
    out = harness(name).at_h(np.full((1, 2 * L), 0.3))
    keys, (inv1, inv2) = SPEC[name]
    assert tuple(out["post"]) == keys
    np.testing.assert_allclose(inv1(out["post"][keys[0]]), 0.3, rtol=1e-12)
    np.testing.assert_allclose(inv2(out["post"][keys[1]]), 0.3, rtol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_float32_graphs_stay_float32(name):
    """Models train in float32: no constant may promote a family's graph to float64."""
    with backend.floatX_as("float32"):
        fam = FAMILIES[name](3, 2, np.random.default_rng(0))
        h = at.matrix("h")
        post = fam.posterior(h)
        srng = RandomStream(0)
        outs = list(post.values()) + [fam.noise(srng, 4), fam.kl(post), fam.mean_code(post),
                                      fam.prior_sample(srng, 4)]
        outs.append(fam.sample(post, outs[2]))
    assert all(p.dtype == "float32" for p in fam.params)
    assert [o.dtype for o in outs] == ["float32"] * len(outs)


def test_gauss_logit_prior_options():
    m0, s0 = matched_prior(5.0)
    assert m0 == pytest.approx(-2.083, abs=1e-3) and s0 == pytest.approx(1.366, abs=1e-3)
    fam = make("gauss-logit")
    assert (fam.prior_mean, fam.prior_std) == (m0, s0)
    assert (make("gauss-logit", prior=(-1.6, 1.0)).prior_mean,
            make("gauss-logit", prior=(-1.6, 1.0)).prior_std) == (-1.6, 1.0)
    for bad, shown in [((0.0, 0.0), "0.0"), ((0.0, -1.0), "-1.0"), ((np.nan, 1.0), "nan"),
                       ((0.0, np.inf), "inf"), ("bogus", "bogus")]:
        with pytest.raises(ValueError, match=shown):
            GaussLogit(2, 1, np.random.default_rng(0), prior=bad)


def test_options_are_checked():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="bessel"):
        Kumaraswamy(2, 1, rng, digamma="bessel")
    for name in ("kumaraswamy", "gamma"):
        with pytest.raises(ValueError, match="-1"):
            FAMILIES[name](2, 1, rng, alpha0=-1.0)
    with pytest.raises(TypeError):
        FAMILIES["gaussian"](2, 1, rng, alpha0=5.0)


# ---------------------------------------------------------------------------------------
# 7. Knowles' approximation, measured.

def test_knowles_ks_distance():
    shapes = [0.1, 0.5, 1.0, 5.0, 10.0]
    d = {s: knowles_ks_distance(s) for s in shapes}
    assert all(np.isfinite(x) and 0 <= x <= 1 for x in d.values())
    assert d[5.0] > d[0.5]
    assert all(d[a] < d[b] for a, b in zip(shapes, shapes[1:])), d
    # REFERENCE.md section 10: 0.21, 0.37, 0.88 at shapes 0.5, 1, 5
    for s, ref in [(0.5, 0.21), (1.0, 0.37), (5.0, 0.88)]:
        assert d[s] == pytest.approx(ref, abs=0.02)
    assert knowles_ks_distance(0.5, seed=0) == d[0.5]  # seeded
    with pytest.raises(ValueError):
        knowles_ks_distance(0.0)


# ---------------------------------------------------------------------------------------
# 8. The SB-VAE's latent layer against the original's graph, and the evaluation's graph.

@pytest.mark.parametrize("clip", [None, (0.25, 15.0)])
def test_kumaraswamy_layer_builds_the_original_graph(clip):
    """The model's stochastic layer with the Kumaraswamy family is, node for node, the
    original's: a, b = softplus(h W) (clipped with the safety option), v from u, stick
    weights, the faithful KL summed over sticks (floored at 0 with the safety option)."""
    from stick_breaking_dgms.backend import softplus
    from stick_breaking_dgms.distributions import kumaraswamy_beta_kl_expr, kumaraswamy_sample_expr
    from stick_breaking_dgms.latent import StochasticLayer
    from stick_breaking_dgms.stick_breaking import stick_breaking_expr
    equal_computations = backend.lib.graph.basic.equal_computations
    k = 6
    with backend.floatX_as("float64"):
        layer = StochasticLayer("kumaraswamy", 5, k, np.random.default_rng(11),
                                alpha0=ALPHA0, clip=clip)
        assert [p.name for p in layer.params] == ["latent/W_a", "latent/W_b"]
        w_a, w_b = layer.params
        h, u = at.matrix("h"), at.matrix("u")
        a, b = softplus(at.dot(h, w_a)), softplus(at.dot(h, w_b))
        if clip is not None:
            a, b = at.clip(a, *clip), at.clip(b, *clip)
        per_stick = kumaraswamy_beta_kl_expr(a, b, 1.0, ALPHA0, 10, "series")
        if clip is not None:
            per_stick = at.maximum(per_stick, 0.0)
        expected = [at.sum(per_stick, axis=1),
                    stick_breaking_expr(kumaraswamy_sample_expr(a, b, u))]
        post = layer.posterior(h)
        got = [layer.kl(post), layer.sample(post, u)]
        assert equal_computations(got, expected)
        f = function([h, u], got + expected)
    x = np.random.default_rng(3).normal(0, 80, (9, 5))  # a and b from ~1e-30 to ~300
    uv = np.random.default_rng(4).uniform(0.01, 0.99, (9, k - 1))
    kl_new, code_new, kl_old, code_old = f(x, uv)
    assert np.array_equal(kl_old, kl_new) and np.array_equal(code_old, code_new)
    assert np.all(np.isfinite(kl_new)) and code_new.shape == (9, k)


def test_kumaraswamy_importance_sample_matches_evaluation_graph():
    """The NumPy port against its symbolic reference in distributions.py, on the same u."""
    from stick_breaking_dgms.distributions import (beta_log_pdf_from_logs_expr,
                                                   kumaraswamy_log_draw_expr,
                                                   kumaraswamy_log_pdf_from_logs_expr)
    values = np.array([1e-37, 1e-3, 0.1, 1.0, 10.0, 1e3])
    a, b = (g.ravel()[:, None] for g in np.meshgrid(values, values))
    a, b = np.hstack([a, b]), np.hstack([b, a])  # (36, 2): two sticks per row
    samples = 50
    with backend.floatX_as("float64"):
        am, bm = at.matrix("a"), at.matrix("b")
        noise = at.tensor3("noise")
        a3, b3 = am[:, None, :], bm[:, None, :]
        log_v, log_1m_v, log_1m_va = kumaraswamy_log_draw_expr(a3, b3, at.log(noise))
        log_q = at.sum(kumaraswamy_log_pdf_from_logs_expr(log_v, log_1m_va, a3, b3), axis=-1)
        log_p = at.sum(beta_log_pdf_from_logs_expr(log_v, log_1m_v, 1.0, ALPHA0), axis=-1)
        f = function([am, bm, noise], [log_v, log_1m_v, log_q, log_p])
    u = np.random.default_rng(8).random((len(a), samples, 2)) + 2.0 ** -54  # as the port draws u
    ref = f(a, b, u)
    fam = make("kumaraswamy")
    latent, lq, lp = fam.importance_sample(np.random.default_rng(8), {"a": a, "b": b}, samples)
    ours = [latent["log_v"], latent["log_1m_v"], lq, lp]
    for label, x, y in zip(("log_v", "log_1m_v", "log_q", "log_p"), ours, ref):
        assert np.all(np.isfinite(x)), label
        # log(1 - v): the graph's log(-expm1(-e^ell)) is accurate to ~1e-16 absolute only
        # where v < 1/2 (log of a number near 1); the port takes log1p there (see
        # families.kumaraswamy._log1m_exp_neg_exp), so they agree to 1e-15 absolute
        atol = 1e-15 if label in ("log_1m_v", "log_p") else 1e-300
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=atol, err_msg=label)
