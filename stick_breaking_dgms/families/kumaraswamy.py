r"""Kumaraswamy posterior over the stick fractions, Beta(1, alpha0) prior (the SB-VAE).

:math:`a = \mathrm{softplus}(h W_a)`, :math:`b = \mathrm{softplus}(h W_b)`;
:math:`q(v) = a b v^{a-1} (1 - v^a)^{b-1}` on (0, 1); training draw
:math:`v = (1 - u^{1/b})^{1/a}` with :math:`u \sim U(0.01, 0.99)` (the original's
implicit clip); KL to Beta(1, alpha0) per :mod:`..distributions` (ten-term series and the
series digamma by default, as the original; ``kl="exact"`` for the exact KL).

The symbolic methods build exactly the original's graph (same functions, weight order
W_a, W_b, same noise; tests/test_families.py checks it node for node), except that
:meth:`sample` returns the fractions v; the stick weights are the construction's
(:mod:`..latent`).
"""
import math

import numpy as np

from ..backend import at, softplus
# _SERIES_BELOW: the threshold of the evaluation graph's series branches, shared so that
# the port switches where the graph does
from ..distributions import (_SERIES_BELOW, DIGAMMA_CHOICES, KL_METHODS,
                             kumaraswamy_beta_kl_expr, kumaraswamy_mean_expr,
                             kumaraswamy_sample_expr)
from .base import (TRAINING_UNIFORM_RANGE, LatentFamily, beta_log_pdf_from_logs, check_samples,
                   draw_uniform, log1mexp)


def _log_neg_log1mexp(t):
    """log(-log(1 - e^t)) for t < 0; t + e^t / 2 below -20 (the graph's series branch)."""
    small = t < _SERIES_BELOW
    safe = np.where(small, -1.0, t)
    return np.where(small, t + 0.5 * np.exp(t), np.log(-log1mexp(safe)))


def _log1m_exp_neg_exp(ell):
    """log(1 - exp(-e^ell)); ell - e^ell / 2 below -20 (the graph's series branch).

    Above -20 the graph takes log(-expm1(-e^ell)) everywhere, which is accurate to
    1e-16 absolute but not relative where e^ell > log 2 (v < 1/2, log(1 - v) close to 0:
    the log of a number that rounds near 1). Here log1mexp(-e^ell) picks
    log1p(-exp(-e^ell)) there, accurate relative too; the two differ by ~1e-16.
    """
    small = ell < _SERIES_BELOW
    safe = np.where(small, 0.0, ell)
    return np.where(small, ell - 0.5 * np.exp(ell), log1mexp(-np.exp(safe)))


def kumaraswamy_log_draw(a, b, log_u):
    r"""NumPy port of :func:`..distributions.kumaraswamy_log_draw_expr` (log(1 - v) more
    accurate relatively, see :func:`_log1m_exp_neg_exp`).

    With :math:`t = \log(u)/b`: :math:`\log(1 - v^a) = t`,
    :math:`\log v = \mathrm{log1mexp}(t)/a`,
    :math:`\log(1 - v) = \log(1 - \exp(-e^{\log(-\log(1 - e^t)) - \log a}))`.
    Returns ``(log_v, log_1m_v, log_1m_va)``.
    """
    t = log_u / b
    log_v = log1mexp(t) / a
    log_1m_v = _log1m_exp_neg_exp(_log_neg_log1mexp(t) - np.log(a))
    return log_v, log_1m_v, t


class Kumaraswamy(LatentFamily):
    r"""Kumaraswamy(a, b) posterior on each of the K-1 fractions, Beta(1, alpha0) prior.

    Parameters
    ----------
    n_in, n_latent, rng :
        See :class:`.base.LatentFamily` (``n_latent`` = K-1).
    alpha0 : float
        Prior concentration, :math:`v_k \sim \mathrm{Beta}(1, \alpha_0)`.
    taylor_terms : int
        Terms of the KL's series (10 in the original).
    digamma : {"series", "exact"}
        The original's asymptotic series for psi(b), or the true digamma.
    clip : (float, float) or None
        Bounds for a and b; each stick's KL is then floored at 0. Off by default.
    kl : {"series", "exact"}
        ``"series"``: the original's KL, its series cut at ``taylor_terms`` terms with the
        ``digamma`` option (the default); ``"exact"``: the exact KL
        (:func:`..distributions.kumaraswamy_beta_kl_exact_graph`), for which
        ``taylor_terms`` and ``digamma`` do not apply.
    """

    name = "kumaraswamy"
    construction = "stick-breaking"
    weight_names = ("W_a", "W_b")
    diagnostic_names = ("min_a", "min_b")
    training_sampler_exact = False  # u ~ U(0.01, 0.99): the tails are cut

    def __init__(self, n_in, n_latent, rng, alpha0=5.0, taylor_terms=10, digamma="series",
                 clip=None, kl="series"):
        if not (math.isfinite(float(alpha0)) and float(alpha0) > 0):
            raise ValueError(f"alpha0 must be positive and finite, got {alpha0!r}")
        if digamma not in DIGAMMA_CHOICES:
            raise ValueError(f"digamma must be one of {DIGAMMA_CHOICES}, got {digamma!r}")
        if int(taylor_terms) < 1:
            raise ValueError(f"taylor_terms must be >= 1, got {taylor_terms!r}")
        if clip is not None and not (len(clip) == 2 and 0 < clip[0] < clip[1]):
            raise ValueError(f"clip must be None or (low, high) with 0 < low < high, got {clip!r}")
        if kl not in KL_METHODS:
            raise ValueError(f"kl must be one of {KL_METHODS}, got {kl!r}")
        self.prior_alpha, self.prior_beta = 1.0, float(alpha0)
        self.taylor_terms, self.digamma, self.clip = int(taylor_terms), digamma, clip
        self.kl_method = kl
        super().__init__(n_in, n_latent, rng)

    def posterior(self, h):
        a = softplus(at.dot(h, self.W_a))
        b = softplus(at.dot(h, self.W_b))
        if self.clip is not None:
            a, b = at.clip(a, *self.clip), at.clip(b, *self.clip)
        return {"a": a, "b": b}

    def noise(self, srng, n, low=TRAINING_UNIFORM_RANGE[0], high=TRAINING_UNIFORM_RANGE[1]):
        """u ~ U(0.01, 0.99), shape (n, K-1)."""
        return srng.uniform(low, high, size=(n, self.n_latent))

    def sample(self, post, u):
        """The fractions v = (1 - u^(1/b))^(1/a)."""
        return kumaraswamy_sample_expr(post["a"], post["b"], u)

    def kl(self, post):
        per_stick = kumaraswamy_beta_kl_expr(post["a"], post["b"], self.prior_alpha,
                                             self.prior_beta, self.taylor_terms, self.digamma,
                                             self.kl_method)
        if self.clip is not None:
            # The truncated series dips below 0 near the prior's (1, alpha0): with the safety
            # option on, the floor keeps the optimiser from exploiting it (a no-op on the
            # exact KL, which is >= 0 up to rounding).
            per_stick = at.maximum(per_stick, 0.0)
        return at.sum(per_stick, axis=1)

    def mean_code(self, post):
        """E[v] = b B(1 + 1/a, b)."""
        return kumaraswamy_mean_expr(post["a"], post["b"])

    def prior_sample(self, srng, n):
        v = srng.beta(self.prior_alpha, self.prior_beta, size=(n, self.n_latent))
        return at.cast(v, self.W_a.dtype)

    def training_noise(self, rng, n):
        """u ~ U(0.01, 0.99), float64 (n, K-1), as :meth:`noise`."""
        return rng.uniform(TRAINING_UNIFORM_RANGE[0], TRAINING_UNIFORM_RANGE[1],
                           size=(n, self.n_latent))

    def prior_draw(self, rng, n):
        return rng.beta(self.prior_alpha, self.prior_beta, size=(n, self.n_latent))

    def importance_sample(self, rng, params, samples, uniform=None):
        r"""Exact Kumaraswamy(a, b) draws, u uniform on the open (0, 1), in log space.

        ``log_q`` is the Kumaraswamy density of v, ``log_p`` the Beta(1, alpha0) density;
        the Jacobian of v -> pi is the same under both and left out.

        ``uniform=(low, high)`` draws u ~ U(low, high) instead, the same inverse CDF
        :math:`v = (1 - u^{1/b})^{1/a}` and the same (plain) densities: the draws then
        follow the Kumaraswamy restricted to u in (low, high), which the plain density
        does not describe (its mass there is high - low, not 1). For (1e-8, 1 - 1e-8) the
        difference is 2e-8 of the mass; for the training sampler's (0.01, 0.99) it biases
        the estimate.
        """
        a, b = self._params64(params, ("a", "b"))
        samples = check_samples(samples)
        u = draw_uniform(rng, (a.shape[0], samples, a.shape[1]), uniform)
        a, b = a[:, None, :], b[:, None, :]
        with np.errstate(divide="ignore", over="ignore", under="ignore"):
            log_v, log_1m_v, log_1m_va = kumaraswamy_log_draw(a, b, np.log(u))
            log_q = np.log(a) + np.log(b) + (a - 1.0) * log_v + (b - 1.0) * log_1m_va
            log_p = beta_log_pdf_from_logs(log_v, log_1m_v, self.prior_alpha, self.prior_beta)
        return ({"log_v": log_v, "log_1m_v": log_1m_v}, log_q.sum(axis=-1), log_p.sum(axis=-1))

    def training_sample(self, rng, params, samples):
        """The training sampler's draws (u ~ U(0.01, 0.99)) with the plain Kumaraswamy
        density: :meth:`importance_sample` with ``uniform=(0.01, 0.99)`` (biased)."""
        return self.importance_sample(rng, params, samples, uniform=TRAINING_UNIFORM_RANGE)

    def diagnostics(self, params):
        a, b = self._params64(params, ("a", "b"))
        return {"min_a": a.min(axis=1), "min_b": b.min(axis=1)}
