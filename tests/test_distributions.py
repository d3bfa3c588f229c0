"""Distributions and KL terms, checked against SciPy, numerical integration and an
independent NumPy transcription of the original ten-term formula."""
import numpy as np
import pytest
from scipy import integrate, special, stats

from stick_breaking_dgms.distributions import (gaussian_kl, kumaraswamy_beta_kl,
                                               kumaraswamy_sample)

GRID = np.array([0.1, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0])
ALPHA0S = [1.0, 5.0, 8.0]


def original_kl_numpy(a, b, prior_alpha, prior_beta, terms=10):
    """The original Theano code's KL, transcribed term by term in float64."""
    def beta_fn(x, y):
        return np.exp(special.gammaln(x) + special.gammaln(y) - special.gammaln(x + y))
    kl = np.zeros_like(a, dtype=np.float64)
    for m in range(1, terms + 1):
        kl += 1.0 / (m + a * b) * beta_fn(m / a, b)
    kl *= (prior_beta - 1) * b
    psi_b_taylor_approx = np.log(b) - 1.0 / (2 * b) - 1.0 / (12 * b ** 2)
    kl += (a - prior_alpha) / a * (-0.57721 - psi_b_taylor_approx - 1 / b)
    kl += np.log(a * b) + np.log(beta_fn(prior_alpha, prior_beta))
    kl += -(b - 1) / b
    return kl


def _log1mexp(x):
    """log(1 - exp(x)) for a scalar x < 0, accurate on both sides of -log 2."""
    return np.log(-np.expm1(x)) if x > -np.log(2) else np.log1p(-np.exp(x))


def kl_by_quadrature(a, b, prior_alpha, prior_beta):
    """KL = int_0^1 [log q(v(t)) - log p(v(t))] dt with v(t) the Kumaraswamy quantile.

    Everything is computed from log s = log(1 - v^a) = log(1 - t) / b, so no log of a
    difference that rounds to zero, even when v is within 1e-300 of 0 or 1.
    """
    log_norm_p = special.betaln(prior_alpha, prior_beta)

    def integrand(t):
        log_s = np.log1p(-t) / b
        s = np.exp(log_s)
        log_v = (np.log1p(-s) if s < 0.5 else np.log(-np.expm1(log_s))) / a
        log_1mv = _log1mexp(log_v) if log_v < -1e-300 else log_s - np.log(a)
        log_q = np.log(a) + np.log(b) + (a - 1) * log_v + (b - 1) * log_s
        log_p = (prior_alpha - 1) * log_v + (prior_beta - 1) * log_1mv - log_norm_p
        return log_q - log_p

    value, err = integrate.quad(integrand, 0.0, 1.0, limit=500, epsabs=1e-12, epsrel=1e-11)
    return value, err


def test_quadrature_reference_is_exact_where_known():
    # Kumaraswamy(1, b) is Beta(1, b): the KL is 0.
    for beta in ALPHA0S:
        value, _ = kl_by_quadrature(1.0, beta, 1.0, beta)
        assert abs(value) < 1e-9


@pytest.mark.parametrize("alpha0", ALPHA0S)
def test_exact_kl_matches_numerical_integration(alpha0):
    terms = 2000
    a, b = (g.ravel() for g in np.meshgrid(GRID, GRID))
    kl = kumaraswamy_beta_kl(a, b, 1.0, alpha0, taylor_terms=terms, digamma="exact")
    # Tail of the series after `terms` terms: t_m ~ C m^(-1-b), so sum_{m>M} ~ t_M * M / b.
    last = np.exp(special.gammaln(terms / a) + special.gammaln(b)
                  - special.gammaln(terms / a + b)) / (terms + a * b)
    tail = (alpha0 - 1.0) * b * last * terms / b
    reference = np.array([kl_by_quadrature(ai, bi, 1.0, alpha0)[0] for ai, bi in zip(a, b)])
    converged = tail < 1e-6 * np.maximum(np.abs(reference), 1e-2)
    assert converged.sum() >= 0.4 * len(a), "too few converged cells: the test would be vacuous"
    np.testing.assert_allclose(kl[converged], reference[converged], rtol=1e-4, atol=1e-6)
    # Where it has not converged the truncated series can only underestimate the KL.
    assert np.all(kl[~converged] <= reference[~converged] + 1e-6)


@pytest.mark.parametrize("alpha0", ALPHA0S)
def test_exact_kl_is_zero_for_matching_distributions(alpha0):
    kl = kumaraswamy_beta_kl(np.array([1.0]), np.array([alpha0]), 1.0, alpha0,
                             taylor_terms=2000, digamma="exact")
    assert abs(kl[0]) < 1e-6


def test_faithful_kl_reproduces_known_quirks():
    # the original's known quirks: a = 1, b = alpha0 gives about -0.0003 instead of 0 ...
    kl = kumaraswamy_beta_kl(np.array([1.0]), np.array([5.0]), 1.0, 5.0)
    assert -0.001 < kl[0] < 0
    # ... and the ten-term cut underestimates a = 3, b = 1.5 under Beta(1, 3): 1.880 vs 2.085.
    faithful = kumaraswamy_beta_kl(np.array([3.0]), np.array([1.5]), 1.0, 3.0)
    exact, _ = kl_by_quadrature(3.0, 1.5, 1.0, 3.0)
    assert faithful[0] == pytest.approx(1.880, abs=1e-3)
    assert exact == pytest.approx(2.085, abs=1e-3)


@pytest.mark.parametrize("alpha0", ALPHA0S)
def test_default_kl_matches_original_formula_float64(alpha0):
    a, b = (g.ravel() for g in np.meshgrid(GRID, GRID))
    ours = kumaraswamy_beta_kl(a, b, 1.0, alpha0)
    assert ours.dtype == np.float64 and ours.shape == a.shape
    np.testing.assert_allclose(ours, original_kl_numpy(a, b, 1.0, alpha0), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("alpha0", ALPHA0S)
def test_default_kl_matches_original_formula_float32(alpha0):
    a, b = (g.ravel().astype(np.float32) for g in np.meshgrid(GRID, GRID))
    ours = kumaraswamy_beta_kl(a, b, 1.0, alpha0)
    assert ours.dtype == np.float32
    # The kernel computes in double and rounds once: float32 precision of the result
    # itself (the float64 formula at the float32 inputs), plus double-precision rounding
    # relative to the terms that are summed (log Gamma of m/a up to 100).
    reference = original_kl_numpy(a.astype(np.float64), b.astype(np.float64), 1.0, alpha0)
    scale = (np.abs(np.log(a * b)) + np.abs((a - 1) / a) * (np.abs(np.log(b)) + 1 / b ** 2)
             + 1 + (alpha0 - 1) * b * special.gammaln(10 / a + b) + 1)
    np.testing.assert_array_less(np.abs(ours - reference),
                                 np.spacing(np.abs(reference).astype(np.float32)) + 1e-12 * scale)


def test_kl_keeps_shape_and_broadcasts():
    a = np.full((4, 49), 0.7)
    b = np.full((4, 49), 2.0)
    assert kumaraswamy_beta_kl(a, b, 1.0, 5.0).shape == (4, 49)
    assert kumaraswamy_beta_kl(a, 2.0, 1.0, 5.0).shape == (4, 49)


def test_kl_rejects_bad_parameters():
    with pytest.raises(ValueError, match="positive"):
        kumaraswamy_beta_kl(np.array([0.0]), np.array([1.0]), 1.0, 5.0)
    with pytest.raises(ValueError, match="digamma"):
        kumaraswamy_beta_kl(np.array([1.0]), np.array([1.0]), 1.0, 5.0, digamma="taylor")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("a,b", [(0.5, 0.5), (1.0, 1.0), (2.0, 5.0), (5.0, 2.0), (0.3, 3.0),
                                 (20.0, 0.7)])
def test_kumaraswamy_sampler_passes_ks_test(a, b, dtype):
    rng = np.random.default_rng(7)
    u = rng.uniform(size=4000).astype(dtype)
    v = kumaraswamy_sample(np.full_like(u, a), np.full_like(u, b), u)
    assert v.dtype == dtype
    cdf = lambda x: 1.0 - (1.0 - x ** a) ** b  # noqa: E731
    assert stats.kstest(v.astype(np.float64), cdf).pvalue > 1e-3


def test_kumaraswamy_sampler_is_the_inverse_cdf():
    u = np.linspace(0.01, 0.99, 99)
    v = kumaraswamy_sample(np.full_like(u, 2.5), np.full_like(u, 0.8), u)
    # v = F^-1(1 - u) with F(x) = 1 - (1 - x^a)^b, i.e. (1 - v^a)^b = u
    np.testing.assert_allclose((1.0 - v ** 2.5) ** 0.8, u, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gaussian_kl_closed_form(dtype):
    rng = np.random.default_rng(3)
    mu = rng.normal(size=50).astype(dtype)
    log_sigma = rng.normal(scale=0.5, size=50).astype(dtype)
    sigma = np.exp(log_sigma.astype(np.float64))
    # KL(N(mu, s^2) || N(0,1)) = log(1/s) + (s^2 + mu^2)/2 - 1/2, from the general formula
    expected = np.log(1.0 / sigma) + (sigma ** 2 + mu.astype(np.float64) ** 2) / 2 - 0.5
    got = gaussian_kl(mu, log_sigma)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, expected, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-6 if dtype == np.float32 else 1e-14)
    # and against SciPy's entropy-based KL by quadrature for one coordinate
    kl_quad, _ = integrate.quad(
        lambda z: stats.norm.pdf(z, mu[0], sigma[0])
        * (stats.norm.logpdf(z, mu[0], sigma[0]) - stats.norm.logpdf(z)), -30, 30)
    assert got[0] == pytest.approx(kl_quad, rel=1e-4)


def _log_density_function():
    from stick_breaking_dgms.backend import at, function
    from stick_breaking_dgms.distributions import (beta_log_pdf_from_logs_expr,
                                                   kumaraswamy_log_draw_expr,
                                                   kumaraswamy_log_pdf_from_logs_expr)
    a, b, log_u = at.dvector("a"), at.dvector("b"), at.dvector("log_u")
    log_v, log_1m_v, log_1m_va = kumaraswamy_log_draw_expr(a, b, log_u)
    return function([a, b, log_u], [log_v, log_1m_v,
                                    kumaraswamy_log_pdf_from_logs_expr(log_v, log_1m_va, a, b),
                                    beta_log_pdf_from_logs_expr(log_v, log_1m_v, 1.0, 5.0),
                                    beta_log_pdf_from_logs_expr(log_v, log_1m_v, 2.5, 0.5)])


def test_log_densities_match_scipy_on_a_grid():
    f = _log_density_function()
    a, b, u = (g.ravel() for g in np.meshgrid([0.3, 1.0, 4.0], [0.5, 2.0, 9.0],
                                              [0.001, 0.2, 0.5, 0.9, 0.999]))
    log_v, log_1m_v, log_q, log_p, log_p2 = f(a, b, np.log(u))
    v = (1 - u ** (1 / b)) ** (1 / a)
    np.testing.assert_allclose(np.exp(log_v), v, rtol=1e-10)
    np.testing.assert_allclose(log_1m_v, np.log1p(-v), rtol=1e-8, atol=1e-12)
    kuma = np.log(a * b) + (a - 1) * np.log(v) + (b - 1) * np.log1p(-v ** a)
    np.testing.assert_allclose(log_q, kuma, rtol=1e-9)
    np.testing.assert_allclose(log_p, stats.beta.logpdf(v, 1.0, 5.0), rtol=1e-9)
    np.testing.assert_allclose(log_p2, stats.beta.logpdf(v, 2.5, 0.5), rtol=1e-9)
    # the Kumaraswamy log density integrates to one
    total, _ = integrate.quad(lambda x: np.exp(np.log(0.7 * 3.0) - 0.3 * np.log(x)
                                               + 2.0 * np.log1p(-x ** 0.7)), 0, 1)
    assert total == pytest.approx(1.0, abs=1e-8)


def test_log_densities_stay_finite_where_v_rounds_to_zero_or_one():
    f = _log_density_function()
    # b = 1e-37 (seen in trained models): v rounds to 1; a = 1e-3 with u near 1: v rounds to 0
    log_v, log_1m_v, log_q, log_p, _ = f(np.array([1.0, 1e-3]), np.array([1e-37, 1.0]),
                                          np.log(np.array([0.5, 0.999])))
    for out in (log_v, log_1m_v, log_q, log_p):
        assert np.all(np.isfinite(out))
    assert log_1m_v[0] < -700 and log_v[1] < -700  # far beyond float64's exp range
