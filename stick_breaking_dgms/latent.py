r"""The stochastic layer: a posterior family and the construction that makes the code.

The *family* (:mod:`.families`: Kumaraswamy, Gauss-Logit, Gamma, Gaussian) owns the math
of the posterior and the prior: its parameters from the encoder's last hidden layer h,
its training sampler, its KL. The *construction* turns the family's draws into the code
the decoder sees:

* stick-breaking (SB-VAE, SB-DGM): K-1 fractions v become K stick weights,
  :math:`\pi_k = v_k \prod_{j<k}(1 - v_j)`, :math:`\pi_K = \prod_{j<K}(1 - v_j)`;
* Gaussian (Gauss-VAE, Gauss-DGM): z is the code.

So a new family is a new module in :mod:`.families` and a registry line; nothing here
changes.
"""
import numpy as np

from .families import construction_of, get_family
from .stick_breaking import stick_breaking_expr, stick_breaking_numpy


def _identity(z):
    return z


def _sticks_from_logs(draws):
    r"""Stick weights from the draws' :math:`\log v` and :math:`\log(1 - v)` (last axis),
    :math:`\log\pi_k = \log v_k + \sum_{j<k}\log(1 - v_j)`, accurate where v rounds to 0
    or 1."""
    log_v, log_1m_v = draws["log_v"], draws["log_1m_v"]
    zeros = np.zeros(log_v.shape[:-1] + (1,))
    log_rest = np.concatenate([zeros, np.cumsum(log_1m_v, axis=-1)], axis=-1)
    with np.errstate(under="ignore"):
        return np.exp(np.concatenate([log_v, zeros], axis=-1) + log_rest)


# construction: (symbolic code from draws, NumPy code from importance draws, NumPy code
# from plain draws)
CONSTRUCTIONS = {
    "stick-breaking": (stick_breaking_expr, _sticks_from_logs, stick_breaking_numpy),
    "gaussian": (_identity, lambda draws: draws["z"], _identity),
}


def code_from_draws(construction, draws):
    """NumPy codes (float64) from a family's importance draws (``{"log_v", "log_1m_v"}`` or
    ``{"z"}``)."""
    return CONSTRUCTIONS[construction][1](draws)


def code_from_values(construction, values):
    """NumPy codes from plain draws of the fractions v, or of z (prior draws)."""
    return CONSTRUCTIONS[construction][2](values)


def n_latent_of(family, code_size):
    """The family's number of random variables for a code of ``code_size``: K-1 fractions
    for a stick-breaking family (K weights), L for the Gaussian."""
    return int(code_size) - 1 if construction_of(family) == "stick-breaking" else int(code_size)


class StochasticLayer:
    """The latent layer of every model: ``family`` drawn, then ``construction`` applied.

    Parameters
    ----------
    family : str
        A name of :data:`.families.FAMILIES`.
    n_in : int
        Size of the encoder's last hidden layer.
    size : int
        The code's size: the truncation level K (stick-breaking) or L (Gaussian).
    rng : numpy.random.Generator
        Draws the initial weights.
    **options
        The family's options (``alpha0``, ``taylor_terms``, ...).
    """

    def __init__(self, family, n_in, size, rng, **options):
        self.family = get_family(family)(n_in, n_latent_of(family, size), rng, **options)
        self.construction = self.family.construction
        self._code = CONSTRUCTIONS[self.construction][0]
        self.size = int(size)
        self.params = self.family.params

    def posterior(self, h):
        return self.family.posterior(h)

    def noise(self, srng, n):
        return self.family.noise(srng, n)

    def fractions(self, post, noise):
        """The family's reparameterised draw before the construction: v (or z)."""
        return self.family.sample(post, noise)

    def sample(self, post, noise):
        """The code of one reparameterised draw."""
        return self._code(self.family.sample(post, noise))

    def kl(self, post):
        return self.family.kl(post)

    def mean_code(self, post):
        """The code of the posterior mean (of the fractions, or of z)."""
        return self._code(self.family.mean_code(post))

    def prior_sample(self, srng, n):
        return self._code(self.family.prior_sample(srng, n))
