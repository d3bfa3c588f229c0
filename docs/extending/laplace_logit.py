r"""Laplace-Logit posterior over the stick fractions: v = sigmoid(eta), eta Laplace.

:math:`\mu = h W_\mu`, :math:`s = \mathrm{softplus}(h W_s)` (no bias),
:math:`\eta = \mu + s\epsilon` with :math:`\epsilon` standard Laplace, and a Laplace prior
:math:`(m_0, s_0)` on :math:`\eta` matching Beta(1, alpha0) in logit space. The KL of two
Laplace distributions is closed-form:

.. math::

    \mathrm{KL} = \sum_k \log\frac{s_0}{s_k} + \frac{|\mu_k - m_0|}{s_0}
        + \frac{s_k}{s_0} e^{-|\mu_k - m_0| / s_k} - 1 .
"""
import math

import numpy as np

from ..backend import at, sigmoid, softplus
from .base import (LatentFamily, check_samples, check_uniform_range, constant_like,
                   log_softplus_pair)
from .gauss_logit import matched_prior

_NODES, _WEIGHTS = np.polynomial.laguerre.laggauss(32)  # E[f(|eps|)] = sum w f(x)


def _laplace_from_uniform(u):
    """Standard Laplace draws from u uniform on (-1/2, 1/2) (the inverse CDF)."""
    return at.switch(u < 0, at.log1p(2.0 * u), -at.log1p(-2.0 * u))


class LaplaceLogit(LatentFamily):
    r"""v = sigmoid(eta), eta ~ Laplace(mu, s) per fraction, Laplace(m0, s0) prior on eta.

    Parameters
    ----------
    n_in, n_latent, rng :
        See :class:`.base.LatentFamily` (``n_latent`` = K-1).
    alpha0 : float
        The Beta(1, alpha0) whose logit mean and variance the prior matches.
    """

    name = "laplace-logit"
    construction = "stick-breaking"
    model_prefix = "laplace_logit_"
    weight_names = ("W_mu", "W_scale")
    diagnostic_names = ("min_scale", "max_abs_mu")
    training_sampler_exact = False  # the training noise's uniform is clipped to (-0.49, 0.49)

    def __init__(self, n_in, n_latent, rng, alpha0=5.0):
        self.alpha0 = float(alpha0)
        m0, sd0 = matched_prior(alpha0)            # Normal match; a Laplace has var 2 s0^2
        self.prior_mean, self.prior_scale = m0, sd0 / math.sqrt(2.0)
        super().__init__(n_in, n_latent, rng)

    # -- symbolic: the training graph --------------------------------------------------
    def posterior(self, h):
        return {"mu": at.dot(h, self.W_mu), "scale": softplus(at.dot(h, self.W_scale))}

    def noise(self, srng, n):
        """u ~ U(-0.49, 0.49): the inverse CDF stays finite (as the original's U(0.01, 0.99))."""
        return srng.uniform(-0.49, 0.49, size=(n, self.n_latent))

    def sample(self, post, u):
        return sigmoid(post["mu"] + post["scale"] * _laplace_from_uniform(u))

    def kl(self, post):
        mu, s = post["mu"], post["scale"]
        m0, s0 = constant_like(self.prior_mean, mu), constant_like(self.prior_scale, mu)
        d = abs(mu - m0)
        return at.sum(at.log(s0 / s) + d / s0 + (s / s0) * at.exp(-d / s) - 1.0, axis=1)

    def mean_code(self, post):
        """E[sigmoid(eta)] by Gauss-Laguerre quadrature over |eps| (eps is symmetric)."""
        mu, s = at.shape_padright(post["mu"]), at.shape_padright(post["scale"])
        x, w = constant_like(_NODES, post["mu"]), constant_like(_WEIGHTS, post["mu"])
        return at.sum(0.5 * w * (sigmoid(mu + s * x) + sigmoid(mu - s * x)), axis=-1)

    def prior_sample(self, srng, n):
        u = srng.uniform(-0.49, 0.49, size=(n, self.n_latent))
        eta = self.prior_mean + self.prior_scale * _laplace_from_uniform(u)
        return at.cast(sigmoid(eta), self.W_mu.dtype)

    # -- NumPy, float64: evaluation ----------------------------------------------------
    def training_noise(self, rng, n):
        return rng.uniform(-0.49, 0.49, size=(n, self.n_latent))

    def prior_draw(self, rng, n):
        eta = rng.laplace(self.prior_mean, self.prior_scale, size=(n, self.n_latent))
        return 1.0 / (1.0 + np.exp(-eta))

    def importance_sample(self, rng, params, samples, uniform=None):
        """Exact Laplace draws of eta; ``log_q``, ``log_p`` their Laplace densities.
        The draws use no uniform on (0, 1), so ``uniform`` (checked) changes nothing."""
        check_uniform_range(uniform)
        return self._scored(params, lambda size: rng.laplace(0.0, 1.0, size=size), samples)

    def training_sample(self, rng, params, samples):
        """The training sampler, for the evaluation's ``training-sampler`` protocol: the
        clipped uniform of :meth:`training_noise` through the Laplace quantile, scored
        with the plain density (so it is biased, as the Kumaraswamy's is)."""
        def clipped(size):  # the Laplace quantile of u ~ U(-0.49, 0.49)
            u = rng.uniform(-0.49, 0.49, size=size)
            return -np.sign(u) * np.log1p(-2.0 * np.abs(u))
        return self._scored(params, clipped, samples)

    def _scored(self, params, standard_draws, samples):
        """Draws eta = mu + s * eps for eps from ``standard_draws(size)``, with the
        Laplace log densities of eta under q and under the prior."""
        mu, s = self._params64(params, ("mu", "scale"))
        samples = check_samples(samples)
        eps = standard_draws((mu.shape[0], samples, mu.shape[1]))
        mu, s = mu[:, None, :], s[:, None, :]
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            eta = mu + s * eps
            log_v, log_1m_v = log_softplus_pair(eta)
            log_q = np.sum(-np.log(2.0 * s) - np.abs(eps), axis=-1)
            log_p = np.sum(-math.log(2.0 * self.prior_scale)
                           - np.abs(eta - self.prior_mean) / self.prior_scale, axis=-1)
        return {"log_v": log_v, "log_1m_v": log_1m_v}, log_q, log_p

    def diagnostics(self, params):
        mu, s = self._params64(params, ("mu", "scale"))
        return {"min_scale": s.min(axis=1), "max_abs_mu": np.abs(mu).max(axis=1)}
