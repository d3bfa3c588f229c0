r"""Gauss-Logit posterior over the stick fractions (Table 1, "Gauss-Logit SB-VAE").

:math:`\mu = h W_\mu`, :math:`\sigma = \mathrm{softplus}(h W_\sigma)` (no bias),
:math:`\eta = \mu + \sigma\epsilon`, :math:`v = \mathrm{sigmoid}(\eta)`. The prior is a
Normal on :math:`\eta`, :math:`N(m_0, s_0^2)`, so the KL is the Gaussian KL on
:math:`\eta` (the sigmoid is the same map under q and p and cancels out of it):

.. math::

    \mathrm{KL} = \sum_k \log\frac{s_0}{\sigma_k}
        + \frac{\sigma_k^2 + (\mu_k - m_0)^2}{2 s_0^2} - \frac12 .

The paper never published :math:`(m_0, s_0)`. ``prior="matched"`` matches Beta(1, alpha0)
in logit space: :math:`m_0 = \psi(1) - \psi(\alpha_0)`,
:math:`s_0^2 = \psi'(1) + \psi'(\alpha_0)` (alpha0 = 5: -2.083, 1.366); a pair
``(m0, s0)`` gives the prior directly (ports use (-1.6, 1) and (0, 1)).
"""
import math

import numpy as np
from scipy import special

from ..backend import at, sigmoid, softplus
from .base import (HALF_LOG_2PI, LatentFamily, check_samples, check_uniform_range,
                   constant_like, log_softplus_pair)

# E[sigmoid(eta)] has no closed form. For sigma < 1.5 Gauss-Hermite quadrature on eps;
# above, Phi(mu/sigma) plus the integral of sigmoid(eta) - 1{eta > 0} (which decays like
# e^-|eta|) by Gauss-Laguerre; each is accurate to 1e-9 on its side of the switch
# (measured against scipy.integrate.quad for mu in [-5, 10], sigma in [1e-3, 1e3]).
_QUADRATURE_NODES = 32
_SWITCH_SIGMA = 1.5


def matched_prior(alpha0):
    """(m0, s0) of the Normal matching Beta(1, alpha0) in logit space (mean and variance)."""
    alpha0 = float(alpha0)
    if not (math.isfinite(alpha0) and alpha0 > 0):
        raise ValueError(f"alpha0 must be positive and finite, got {alpha0!r}")
    m0 = special.digamma(1.0) - special.digamma(alpha0)
    s0 = math.sqrt(special.polygamma(1, 1.0) + special.polygamma(1, alpha0))
    return float(m0), float(s0)


def resolve_prior(prior, alpha0):
    """``"matched"`` or a pair ``(m0, s0)`` -> (m0, s0) as floats, checked."""
    if isinstance(prior, str):
        if prior != "matched":
            raise ValueError(f"prior must be 'matched' or a pair (m0, s0), got {prior!r}")
        return matched_prior(alpha0)
    try:
        m0, s0 = (float(x) for x in prior)
    except (TypeError, ValueError):
        raise ValueError(f"prior must be 'matched' or a pair (m0, s0), got {prior!r}") from None
    if not (math.isfinite(m0) and math.isfinite(s0)):
        raise ValueError(f"prior (m0, s0) must be finite, got {prior!r}")
    if s0 <= 0:
        raise ValueError(f"prior scale s0 must be > 0, got s0 = {s0!r}")
    return m0, s0


class GaussLogit(LatentFamily):
    r"""v = sigmoid(eta), eta ~ N(mu, sigma^2) per fraction, N(m0, s0^2) prior on eta.

    Parameters
    ----------
    n_in, n_latent, rng :
        See :class:`.base.LatentFamily` (``n_latent`` = K-1).
    prior : "matched" or (float, float)
        The prior on eta, see the module docstring.
    alpha0 : float
        The Beta(1, alpha0) that ``prior="matched"`` matches.
    """

    name = "gauss-logit"
    construction = "stick-breaking"
    model_prefix = "gauss_logit_"
    weight_names = ("W_mu", "W_sigma")
    diagnostic_names = ("min_sigma", "max_abs_mu")

    def __init__(self, n_in, n_latent, rng, prior="matched", alpha0=5.0):
        self.alpha0 = float(alpha0)
        self.prior_mean, self.prior_std = resolve_prior(prior, alpha0)
        super().__init__(n_in, n_latent, rng)

    def posterior(self, h):
        return {"mu": at.dot(h, self.W_mu), "sigma": softplus(at.dot(h, self.W_sigma))}

    def noise(self, srng, n):
        """eps ~ N(0, 1), shape (n, K-1)."""
        return srng.normal(0.0, 1.0, size=(n, self.n_latent))

    def sample(self, post, eps):
        return sigmoid(post["mu"] + post["sigma"] * eps)

    def kl(self, post):
        mu, sigma = post["mu"], post["sigma"]
        m0, s0 = constant_like(self.prior_mean, mu), constant_like(self.prior_std, mu)
        per = (at.log(s0) - at.log(sigma) + (sigma ** 2 + (mu - m0) ** 2) / (2.0 * s0 ** 2)
               - 0.5)
        return at.sum(per, axis=1)

    def mean_code(self, post):
        r""":math:`E[\mathrm{sigmoid}(\eta)]` by quadrature (see ``_QUADRATURE_NODES``)."""
        mu, sigma = post["mu"], post["sigma"]
        mu_, s_ = at.shape_padright(mu), at.shape_padright(sigma)
        x, w = np.polynomial.hermite.hermgauss(_QUADRATURE_NODES)
        hermite = at.sum(constant_like(w / math.sqrt(math.pi), mu)
                         * sigmoid(mu_ + s_ * constant_like(math.sqrt(2.0) * x, mu)), axis=-1)
        # E[sigmoid(eta)] = Phi(mu/sigma) + int_0^inf sigmoid(-x) [N(-x) - N(x)] dx, the
        # integrand e^-x [N(-x) - N(x)] / (1 + e^-x): smooth when sigma is not small.
        x, w = np.polynomial.laguerre.laggauss(_QUADRATURE_NODES)
        xc, wc = constant_like(x, mu), constant_like(w, mu)

        def normal_pdf(t):
            return at.exp(-0.5 * ((t - mu_) / s_) ** 2) / (s_ * math.sqrt(2.0 * math.pi))

        laguerre = (0.5 * at.erfc(-mu / (sigma * math.sqrt(2.0)))
                    + at.sum(wc * (normal_pdf(-xc) - normal_pdf(xc)) / (1.0 + at.exp(-xc)),
                             axis=-1))
        return at.switch(sigma < _SWITCH_SIGMA, hermite, laguerre)

    def prior_sample(self, srng, n):
        eta = srng.normal(self.prior_mean, self.prior_std, size=(n, self.n_latent))
        return at.cast(sigmoid(eta), self.W_mu.dtype)

    def training_noise(self, rng, n):
        """eps ~ N(0, 1), float64 (n, K-1), as :meth:`noise`."""
        return rng.standard_normal((n, self.n_latent))

    def prior_draw(self, rng, n):
        """v = sigmoid(eta), eta ~ N(m0, s0^2)."""
        eta = self.prior_mean + self.prior_std * rng.standard_normal((n, self.n_latent))
        return 1.0 / (1.0 + np.exp(-eta))

    def importance_sample(self, rng, params, samples, uniform=None):
        r"""Exact draws of eta; ``log_q``, ``log_p`` are the Normal densities of eta.

        v = sigmoid(eta) under both q and p, so the Jacobian of eta -> v (and of v -> pi)
        cancels and is left out. ``log_v = -softplus(-eta)``, ``log_1m_v = -softplus(eta)``.
        The draws use no uniform, so ``uniform`` (checked) changes nothing.
        """
        check_uniform_range(uniform)
        mu, sigma = self._params64(params, ("mu", "sigma"))
        samples = check_samples(samples)
        eps = rng.standard_normal((mu.shape[0], samples, mu.shape[1]))
        mu, sigma = mu[:, None, :], sigma[:, None, :]
        m0, s0 = self.prior_mean, self.prior_std
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            eta = mu + sigma * eps
            log_v, log_1m_v = log_softplus_pair(eta)
            log_q = np.sum(-HALF_LOG_2PI - np.log(sigma) - 0.5 * eps ** 2, axis=-1)
            log_p = np.sum(-HALF_LOG_2PI - math.log(s0) - 0.5 * ((eta - m0) / s0) ** 2, axis=-1)
        return {"log_v": log_v, "log_1m_v": log_1m_v}, log_q, log_p

    def training_sample(self, rng, params, samples):
        """The training sampler (eps ~ N(0, 1)) is exact: :meth:`importance_sample`."""
        return self.importance_sample(rng, params, samples)

    def diagnostics(self, params):
        mu, sigma = self._params64(params, ("mu", "sigma"))
        return {"min_sigma": sigma.min(axis=1), "max_abs_mu": np.abs(mu).max(axis=1)}
