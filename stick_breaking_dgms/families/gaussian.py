r"""Diagonal Gaussian posterior with a standard normal prior (the Gauss-VAE).

:math:`\mu = h W_\mu`, :math:`\log\sigma = h W_\sigma`, :math:`z = \mu + \sigma\epsilon`,
prior N(0, I), :math:`\mathrm{KL} = \sum_l \tfrac12(\mu_l^2 + \sigma_l^2 - 1) - \log\sigma_l`.
The symbolic methods build the Gauss-VAE's graph of the original code.
"""
import numpy as np

from ..backend import at
from ..distributions import gaussian_kl_expr, gaussian_sample_expr
from .base import HALF_LOG_2PI, LatentFamily, check_samples, check_uniform_range


class Gaussian(LatentFamily):
    """N(mu, diag sigma^2) posterior over z in R^L, N(0, I) prior. No options."""

    name = "gaussian"
    construction = "gaussian"
    weight_names = ("W_mu", "W_sigma")
    diagnostic_names = ("min_log_sigma", "max_log_sigma")

    def __init__(self, n_in, n_latent, rng):
        super().__init__(n_in, n_latent, rng)

    def posterior(self, h):
        return {"mu": at.dot(h, self.W_mu), "log_sigma": at.dot(h, self.W_sigma)}

    def noise(self, srng, n):
        """eps ~ N(0, 1), shape (n, L)."""
        return srng.normal(0.0, 1.0, size=(n, self.n_latent))

    def sample(self, post, eps):
        return gaussian_sample_expr(post["mu"], post["log_sigma"], eps)

    def kl(self, post):
        return at.sum(gaussian_kl_expr(post["mu"], post["log_sigma"]), axis=1)

    def mean_code(self, post):
        return post["mu"]

    def prior_sample(self, srng, n):
        return srng.normal(0.0, 1.0, size=(n, self.n_latent))

    def training_noise(self, rng, n):
        """eps ~ N(0, 1), float64 (n, L), as :meth:`noise`."""
        return rng.standard_normal((n, self.n_latent))

    def prior_draw(self, rng, n):
        return rng.standard_normal((n, self.n_latent))

    def importance_sample(self, rng, params, samples, uniform=None):
        r"""Exact draws :math:`z = \mu + \sigma\epsilon`; ``log_q`` from :math:`\epsilon`
        directly (:math:`-\tfrac12\log 2\pi - \log\sigma - \epsilon^2/2`), ``log_p`` N(0, I).

        The draws use no uniform, so ``uniform`` (checked) changes nothing."""
        check_uniform_range(uniform)
        mu, log_sigma = self._params64(params, ("mu", "log_sigma"))
        samples = check_samples(samples)
        eps = rng.standard_normal((mu.shape[0], samples, mu.shape[1]))
        mu, log_sigma = mu[:, None, :], log_sigma[:, None, :]
        with np.errstate(over="ignore", invalid="ignore"):
            z = mu + np.exp(log_sigma) * eps
            log_q = np.sum(-HALF_LOG_2PI - log_sigma - 0.5 * eps ** 2, axis=-1)
            log_p = np.sum(-HALF_LOG_2PI - 0.5 * z ** 2, axis=-1)
        return {"z": z}, log_q, log_p

    def training_sample(self, rng, params, samples):
        """The training sampler (eps ~ N(0, 1)) is exact: :meth:`importance_sample`."""
        return self.importance_sample(rng, params, samples)

    def diagnostics(self, params):
        mu, log_sigma = self._params64(params, ("mu", "log_sigma"))
        return {"min_log_sigma": log_sigma.min(axis=1), "max_log_sigma": log_sigma.max(axis=1)}
