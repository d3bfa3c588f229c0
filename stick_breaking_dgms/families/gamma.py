r"""Gamma posterior over the stick fractions (Table 1, "Gamma SB-VAE").

:math:`\alpha = \mathrm{softplus}(h W_\alpha)`, :math:`\beta = \mathrm{softplus}(h W_\beta)`
(no bias); :math:`x \sim \mathrm{Gamma}(\alpha, 1)`, :math:`y \sim \mathrm{Gamma}(\beta, 1)`,
:math:`v = x / (x + y) \sim \mathrm{Beta}(\alpha, \beta)`. The prior Beta(1, alpha0) is
realised as Gamma(1, 1) and Gamma(alpha0, 1), and the KL is taken on the Gamma variables
(an upper bound of the KL on v):

.. math::

    \mathrm{KL} = \sum_k \mathrm{KL_g}(\alpha_k \,\|\, 1) + \mathrm{KL_g}(\beta_k \,\|\, \alpha_0),
    \qquad \mathrm{KL_g}(a \,\|\, a_0) = (a - a_0)\psi(a) - \log\Gamma(a) + \log\Gamma(a_0).

Training draws use Knowles' approximate inverse CDF :math:`G^{-1}(u; a) \approx
(u\, a\, \Gamma(a))^{1/a}` in log space, :math:`\log x = (\log u + \log\Gamma(a + 1))/a`
(:math:`u^{1/a}` underflows for small a), :math:`v = \mathrm{sigmoid}(\log x - \log y)`,
with :math:`u \sim U(0.01, 0.99)` as the Kumaraswamy sampler. The approximation is good only
for small shapes (:func:`knowles_ks_distance`: 0.05 at a = 0.1, 0.21 at 0.5, 0.88 at 5):
the draw is capped at :math:`\Gamma(a + 1)^{1/a}`. Importance sampling draws v exactly.
"""
import math

import numpy as np
from scipy import special

from ..backend import at, sigmoid, softplus
from .base import (TRAINING_UNIFORM_RANGE, LatentFamily, beta_log_pdf_from_logs, check_samples,
                   constant_like, draw_uniform, log_softplus_pair)


def knowles_log_draw(log_u, shape):
    """NumPy: log of Knowles' approximate Gamma(shape, 1) draw,
    (log u + lgamma(shape + 1)) / shape."""
    return (log_u + special.gammaln(shape + 1.0)) / shape


def knowles_ks_distance(shape, n=20000, seed=0):
    """Kolmogorov-Smirnov distance between Knowles' draws (u ~ U(0.01, 0.99)) and Gamma(shape, 1).

    Parameters
    ----------
    shape : float
        The Gamma shape (> 0).
    n : int
        Number of draws.
    seed : int
        Seeds ``numpy.random.default_rng``.
    """
    from scipy import stats  # only here: importing scipy.stats is slow
    shape = float(shape)
    if not (math.isfinite(shape) and shape > 0):
        raise ValueError(f"shape must be positive and finite, got {shape!r}")
    u = np.random.default_rng(seed).uniform(*TRAINING_UNIFORM_RANGE, size=int(n))
    x = np.exp(knowles_log_draw(np.log(u), shape))
    return float(stats.kstest(x, stats.gamma(shape).cdf).statistic)


def exact_log_gamma(rng, shape, size, uniform=None):
    r"""log of exact Gamma(shape, 1) draws, finite for tiny shapes.

    :math:`x = g\,U^{1/a}` with :math:`g \sim \mathrm{Gamma}(a + 1)`, U uniform on (0, 1), is
    Gamma(a) (Marsaglia and Tsang's boost); in logs :math:`\log g + \log(U)/a`, which stays
    finite where x itself underflows. ``uniform=(low, high)`` draws U from U(low, high)
    (see :func:`.base.draw_uniform`).
    """
    g = rng.standard_gamma(np.broadcast_to(shape + 1.0, size))
    return np.log(g) + np.log(draw_uniform(rng, size, uniform)) / shape


def gamma_kl_expr(a, a0):
    r""":math:`\mathrm{KL}(\mathrm{Gamma}(a, 1) \,\|\, \mathrm{Gamma}(a_0, 1))`, ``a0`` a number."""
    a0c = constant_like(a0, a)
    return (a - a0c) * at.psi(a) - at.gammaln(a) + constant_like(special.gammaln(a0), a)


class Gamma(LatentFamily):
    r"""Beta(alpha, beta) posterior on each fraction through two Gamma variables.

    Parameters
    ----------
    n_in, n_latent, rng :
        See :class:`.base.LatentFamily` (``n_latent`` = K-1).
    alpha0 : float
        Prior Beta(1, alpha0), as Gamma(1, 1) and Gamma(alpha0, 1).

    Notes
    -----
    The training noise is one tensor of shape (n, 2, K-1): ``u[:, 0]`` drives x (shape
    alpha), ``u[:, 1]`` drives y (shape beta), both U(0.01, 0.99).
    """

    name = "gamma"
    construction = "stick-breaking"
    model_prefix = "gamma_"
    weight_names = ("W_alpha", "W_beta")
    diagnostic_names = ("min_alpha", "min_beta")
    noise_ndim = 3
    training_sampler_exact = False  # Knowles' approximate inverse CDF

    def __init__(self, n_in, n_latent, rng, alpha0=5.0):
        if not (math.isfinite(float(alpha0)) and float(alpha0) > 0):
            raise ValueError(f"alpha0 must be positive and finite, got {alpha0!r}")
        self.prior_alpha, self.prior_beta = 1.0, float(alpha0)
        super().__init__(n_in, n_latent, rng)

    def posterior(self, h):
        return {"alpha": softplus(at.dot(h, self.W_alpha)),
                "beta": softplus(at.dot(h, self.W_beta))}

    def noise(self, srng, n, low=TRAINING_UNIFORM_RANGE[0], high=TRAINING_UNIFORM_RANGE[1]):
        """u ~ U(0.01, 0.99), shape (n, 2, K-1): [:, 0] for x, [:, 1] for y."""
        return srng.uniform(low, high, size=(n, 2, self.n_latent))

    def sample(self, post, u):
        """v = sigmoid(log x - log y) from Knowles' approximate log-Gamma draws."""
        alpha, beta = post["alpha"], post["beta"]
        log_x = (at.log(u[:, 0, :]) + at.gammaln(alpha + 1.0)) / alpha
        log_y = (at.log(u[:, 1, :]) + at.gammaln(beta + 1.0)) / beta
        return sigmoid(log_x - log_y)

    def kl(self, post):
        per = (gamma_kl_expr(post["alpha"], self.prior_alpha)
               + gamma_kl_expr(post["beta"], self.prior_beta))
        return at.sum(per, axis=1)

    def mean_code(self, post):
        """E[v] = alpha / (alpha + beta)."""
        return post["alpha"] / (post["alpha"] + post["beta"])

    def prior_sample(self, srng, n):
        v = srng.beta(self.prior_alpha, self.prior_beta, size=(n, self.n_latent))
        return at.cast(v, self.W_alpha.dtype)

    def training_noise(self, rng, n):
        """u ~ U(0.01, 0.99), float64 (n, 2, K-1), as :meth:`noise`."""
        return rng.uniform(TRAINING_UNIFORM_RANGE[0], TRAINING_UNIFORM_RANGE[1],
                           size=(n, 2, self.n_latent))

    def prior_draw(self, rng, n):
        return rng.beta(self.prior_alpha, self.prior_beta, size=(n, self.n_latent))

    def importance_sample(self, rng, params, samples, uniform=None):
        r"""Exact Beta(alpha, beta) draws in log space from two exact log-Gamma draws.

        Draw order: the x draws (Gamma(alpha + 1), then U), then the y draws.
        :math:`\log v = \log x - \mathrm{logaddexp}(\log x, \log y)
        = -\mathrm{softplus}(\log y - \log x)` and likewise :math:`\log(1 - v)`.
        ``log_q`` is the Beta(alpha, beta) density of v, ``log_p`` the Beta(1, alpha0)
        density; the Jacobian of v -> pi cancels and is left out. ``uniform=(low, high)``
        draws the boost's U from U(low, high) (:func:`exact_log_gamma`).
        """
        alpha, beta = self._params64(params, ("alpha", "beta"))
        samples = check_samples(samples)
        size = (alpha.shape[0], samples, alpha.shape[1])
        alpha, beta = alpha[:, None, :], beta[:, None, :]
        with np.errstate(divide="ignore", over="ignore", under="ignore", invalid="ignore"):
            log_x = exact_log_gamma(rng, alpha, size, uniform)
            log_y = exact_log_gamma(rng, beta, size, uniform)
            return self._scored(log_x, log_y, alpha, beta)

    def _scored(self, log_x, log_y, alpha, beta):
        """(draws, log_q, log_p) of v = x / (x + y) from log x, log y (n, S, K-1)."""
        with np.errstate(divide="ignore", over="ignore", under="ignore", invalid="ignore"):
            # log v = log x - logaddexp(log x, log y) = -softplus(log y - log x), written as
            # the latter: the difference form cancels to 0 where v (or 1 - v) < 1e-16
            log_v, log_1m_v = log_softplus_pair(log_x - log_y)
            log_q = beta_log_pdf_from_logs(log_v, log_1m_v, alpha, beta)
            log_p = beta_log_pdf_from_logs(log_v, log_1m_v, self.prior_alpha, self.prior_beta)
        return {"log_v": log_v, "log_1m_v": log_1m_v}, log_q.sum(axis=-1), log_p.sum(axis=-1)

    def training_sample(self, rng, params, samples):
        r"""Knowles' draws of the training sampler (u ~ U(0.01, 0.99), as :meth:`sample`)
        scored with the plain Beta(alpha, beta) density: biased (Knowles' draws are capped
        at :math:`\Gamma(a + 1)^{1/a}`). The uniforms are drawn as one (n, S, 2, K-1)
        array, ``[:, :, 0]`` for x and ``[:, :, 1]`` for y, as :meth:`training_noise` per
        sample.
        """
        alpha, beta = self._params64(params, ("alpha", "beta"))
        samples = check_samples(samples)
        u = rng.uniform(TRAINING_UNIFORM_RANGE[0], TRAINING_UNIFORM_RANGE[1],
                        size=(alpha.shape[0], samples, 2, alpha.shape[1]))
        alpha, beta = alpha[:, None, :], beta[:, None, :]
        log_x = knowles_log_draw(np.log(u[:, :, 0]), alpha)
        log_y = knowles_log_draw(np.log(u[:, :, 1]), beta)
        return self._scored(log_x, log_y, alpha, beta)

    def diagnostics(self, params):
        alpha, beta = self._params64(params, ("alpha", "beta"))
        return {"min_alpha": alpha.min(axis=1), "min_beta": beta.min(axis=1)}
