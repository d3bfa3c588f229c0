r"""The protocol every latent family follows, and helpers the families share.

A *family* is the posterior :math:`q(\cdot \mid x)` of the stochastic layer together with
its prior, its reparameterised training sampler, its closed-form KL and an exact float64
sampler for importance sampling. Two constructions:

* ``"stick-breaking"``: the family gives K-1 fractions :math:`v_k \in (0, 1)`; the
  stick-breaking construction turns them into K weights
  :math:`\pi_k = v_k \prod_{j<k}(1 - v_j)`, :math:`\pi_K = \prod_{j<K}(1 - v_j)`.
* ``"gaussian"``: the family gives :math:`z \in \mathbb{R}^L`, handed to the decoder as is.

The posterior parameters are linear maps **without bias** of the encoder's last hidden
layer h (as in the original code), one weight matrix per parameter.
"""
import math

import numpy as np

from ..backend import at, parameter
from ..networks import init_weight

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
CONSTRUCTIONS = ("stick-breaking", "gaussian")
TRAINING_UNIFORM_RANGE = (0.01, 0.99)  # the original's u ~ U(0.01, 0.99), an implicit clip


class LatentFamily:
    r"""Base class of the latent families: the protocol, documented once.

    Attributes
    ----------
    name : str
        The registry name (:data:`stick_breaking_dgms.families.FAMILIES`).
    construction : {"stick-breaking", "gaussian"}
        Whether the family's draws are K-1 stick fractions v or a Gaussian code z.
    weight_names : tuple of str
        The weight matrices, created in this order (``"latent/" + name``).
    diagnostic_names : tuple of str
        Keys of :meth:`diagnostics`, e.g. ``("min_a", "min_b")``.
    model_prefix : str
        Prepended to the model's name in reports (``"gamma_"``: ``gamma_sb_vae``, the
        paper's "Gamma SB-VAE"); empty for the paper's own models.
    noise_ndim : int
        Dimensions of the training noise (2: (n, n_latent)).
    training_sampler_exact : bool
        Whether the training sampler draws from the exact posterior (so that
        :meth:`training_sample` is an unbiased importance sampler).

    Parameters
    ----------
    n_in : int
        Size of the encoder's last hidden layer h.
    n_latent : int
        K-1 (the number of fractions) for stick-breaking families, L for the Gaussian.
    rng : numpy.random.Generator
        Draws the initial weights, 0.01 * N(0, 1), one matrix per entry of
        ``weight_names`` in that order (so a model's initial weights depend on it).
    **options
        Family-specific, see each family.

    Notes
    -----
    Symbolic methods (Aesara graphs, used in training):

    * ``posterior(h)`` -> dict of (n, n_latent) tensors;
    * ``noise(srng, n)`` -> the training noise, from an Aesara ``RandomStream``;
    * ``sample(post, noise)`` -> the reparameterised draw, v (stick-breaking) or z;
    * ``kl(post)`` -> the per-example KL to the prior, summed over latents, shape (n,);
    * ``mean_code(post)`` -> the posterior mean of v, or mu;
    * ``prior_sample(srng, n)`` -> draws of v or z from the prior.

    NumPy float64 methods (evaluation):

    * ``training_noise(rng, n)`` -> the training sampler's noise as a float64 array
      (``noise_ndim`` dimensions), for sampled codes outside the training graph;
    * ``prior_draw(rng, n)`` -> prior draws of v or z;
    * ``importance_sample(rng, params, samples, uniform=None)`` -> ``(latent, log_q,
      log_p)``: exact posterior draws, ``latent`` = ``{"log_v", "log_1m_v"}`` or
      ``{"z"}``, arrays (n, samples, n_latent); ``log_q``, ``log_p`` (n, samples) summed
      over latents. ``uniform=(low, high)`` draws the sampler's uniforms (if it has any)
      from U(low, high) instead of the open (0, 1) (the ``author`` evaluation protocol's
      (1e-8, 1 - 1e-8)); the densities stay the plain ones;
    * ``training_sample(rng, params, samples)`` -> the same triple from the family's
      *training* sampler (its ``noise`` and ``sample``), scored with the plain densities
      of :meth:`importance_sample`: biased wherever that sampler is not exact (the
      ``training-sampler`` evaluation protocol). ``training_sampler_exact`` says which;
    * ``diagnostics(params)`` -> dict name -> (n,) array.
    """

    name = None
    construction = None
    weight_names = ()
    diagnostic_names = ()
    model_prefix = ""
    noise_ndim = 2
    training_sampler_exact = True

    def __init__(self, n_in, n_latent, rng):
        if int(n_in) < 1 or int(n_latent) < 1:
            raise ValueError(f"n_in and n_latent must be >= 1, got {n_in!r}, {n_latent!r}")
        self.n_in, self.n_latent = int(n_in), int(n_latent)
        self.params = []
        for wname in self.weight_names:
            w = parameter(init_weight(rng, self.n_in, self.n_latent), name=f"latent/{wname}")
            setattr(self, wname, w)
            self.params.append(w)

    @property
    def code_size(self):
        """What the decoder sees: K = n_latent + 1 stick weights, or the L coordinates of z."""
        return self.n_latent + 1 if self.construction == "stick-breaking" else self.n_latent

    # -- symbolic ---------------------------------------------------------------------

    def posterior(self, h):
        raise NotImplementedError

    def noise(self, srng, n):
        raise NotImplementedError

    def sample(self, post, noise):
        raise NotImplementedError

    def kl(self, post):
        raise NotImplementedError

    def mean_code(self, post):
        raise NotImplementedError

    def prior_sample(self, srng, n):
        raise NotImplementedError

    # -- NumPy, float64 ---------------------------------------------------------------

    def training_noise(self, rng, n):
        raise NotImplementedError

    def prior_draw(self, rng, n):
        raise NotImplementedError

    def importance_sample(self, rng, params, samples, uniform=None):
        raise NotImplementedError

    def training_sample(self, rng, params, samples):
        raise NotImplementedError

    def diagnostics(self, params):
        raise NotImplementedError

    def _params64(self, params, names):
        """The posterior parameters ``names`` as float64 arrays of one shape (n, n_latent)."""
        missing = [k for k in names if k not in params]
        if missing:
            raise ValueError(f"{self.name} needs posterior parameters {names}, missing {missing}")
        arrays = [np.asarray(params[k], dtype=np.float64) for k in names]
        shape = arrays[0].shape
        if len(shape) != 2 or any(x.shape != shape for x in arrays):
            raise ValueError(f"{self.name}: parameters must share one shape (n, n_latent), got "
                             + ", ".join(f"{k} {x.shape}" for k, x in zip(names, arrays)))
        return arrays

    def __repr__(self):
        return f"{type(self).__name__}(n_in={self.n_in}, n_latent={self.n_latent})"


# -- helpers -------------------------------------------------------------------------

def constant_like(value, like):
    """A constant of ``like``'s dtype: a Python float would be rounded to floatX (float32)."""
    return at.constant(np.asarray(value, dtype=like.dtype))


def check_samples(samples):
    if int(samples) < 1:
        raise ValueError(f"samples must be >= 1, got {samples!r}")
    return int(samples)


def open_uniform(rng, size):
    """float64 uniforms on the open interval (0, 1).

    ``rng.random()`` returns multiples of 2^-53 in [0, 1); adding 2^-54 moves them into
    (0, 1) so that log(u) and log(1 - u) are finite (as :mod:`..evaluation.likelihood`).
    """
    return rng.random(size) + 2.0 ** -54


def check_uniform_range(uniform):
    """``None`` or a pair ``(low, high)`` with 0 < low < high < 1, as floats (the bounds
    open, so that log(u) and log(1 - u) stay finite; ``None`` is the whole open (0, 1))."""
    if uniform is None:
        return None
    try:
        low, high = (float(v) for v in uniform)
    except (TypeError, ValueError):
        raise ValueError(f"uniform must be None or (low, high), got {uniform!r}") from None
    if not 0.0 < low < high < 1.0:
        raise ValueError(f"uniform must be (low, high) with 0 < low < high < 1, got "
                         f"{uniform!r}")
    return low, high


def draw_uniform(rng, size, uniform=None):
    """Uniforms on the open (0, 1) (:func:`open_uniform`), or on ``uniform = (low, high)``
    (``rng.uniform``: the training sampler's (0.01, 0.99), the ``author`` protocol's
    (1e-8, 1 - 1e-8))."""
    uniform = check_uniform_range(uniform)
    if uniform is None:
        return open_uniform(rng, size)
    return rng.uniform(uniform[0], uniform[1], size=size)


def log1mexp(x):
    """log(1 - exp(x)) for x < 0, with the branches of Aesara's ``log1mexp``."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x < -math.log(2.0), np.log1p(-np.exp(x)), np.log(-np.expm1(x)))


def log_softplus_pair(eta):
    """(log sigmoid(eta), log(1 - sigmoid(eta))) = (-softplus(-eta), -softplus(eta))."""
    return -np.logaddexp(0.0, -eta), -np.logaddexp(0.0, eta)


def beta_log_pdf_from_logs(log_v, log_1m_v, alpha, beta):
    """Beta(alpha, beta) log density from log v and log(1 - v) (float64, broadcasting).

    A term whose coefficient is exactly zero is left out so it cannot give 0 * inf
    (alpha = 1 for the stick-breaking prior).
    """
    from scipy.special import betaln
    alpha, beta = np.asarray(alpha, np.float64), np.asarray(beta, np.float64)
    out = -betaln(alpha, beta) + np.zeros_like(log_v)
    if np.any(alpha != 1.0):
        out = out + np.where(alpha == 1.0, 0.0, (alpha - 1.0) * log_v)
    if np.any(beta != 1.0):
        out = out + np.where(beta == 1.0, 0.0, (beta - 1.0) * log_1m_v)
    return out
