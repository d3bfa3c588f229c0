r"""The stochastic layers: a stick-breaking latent and a Gaussian latent.

Both map the encoder's last hidden layer h to posterior parameters with linear maps
**without bias**, draw a reparameterised sample from noise, and give the KL to the
prior. The code handed to the decoder has ``size`` dimensions.

Stick-breaking (SB-VAE): :math:`a = \mathrm{softplus}(h W_a)`,
:math:`b = \mathrm{softplus}(h W_b)` for K-1 sticks, :math:`v \sim
\mathrm{Kumaraswamy}(a, b)` from :math:`u \sim U(0.01, 0.99)` (the original's
implicit clip), :math:`\pi = \mathrm{sticks}(v)`, prior :math:`v_k \sim
\mathrm{Beta}(1, \alpha_0)`.

Gaussian (Gauss-VAE): :math:`\mu = h W_\mu`, :math:`\log\sigma = h W_\sigma`,
:math:`z = \mu + \sigma\epsilon`, prior N(0, I).
"""
from .backend import at, parameter, softplus
from .distributions import (gaussian_kl_expr, gaussian_sample_expr, kumaraswamy_beta_kl_expr,
                            kumaraswamy_mean_expr, kumaraswamy_sample_expr)
from .networks import init_weight
from .stick_breaking import stick_breaking_expr

UNIFORM_RANGE = (0.01, 0.99)  # the original's u ~ U(0.01, 0.99)


class StickBreakingLatent:
    """Kumaraswamy posterior over K-1 stick fractions, Beta(1, alpha0) prior.

    Parameters
    ----------
    n_in : int
        Size of the encoder's last hidden layer.
    truncation : int
        K, the number of stick weights (K-1 fractions).
    alpha0 : float
        Prior concentration: v_k ~ Beta(1, alpha0).
    rng : numpy.random.Generator
    taylor_terms, digamma :
        KL options, see :func:`distributions.kumaraswamy_beta_kl_expr`.
    clip : (float, float) or None
        Bounds for a and b, and each stick's KL floored at 0 (off by default, as the
        original).
    """

    kind = "stick-breaking"

    def __init__(self, n_in, truncation, alpha0, rng, taylor_terms=10, digamma="series", clip=None):
        self.size = int(truncation)
        self.prior_alpha, self.prior_beta = 1.0, float(alpha0)
        self.taylor_terms, self.digamma, self.clip = int(taylor_terms), digamma, clip
        self.W_a = parameter(init_weight(rng, n_in, self.size - 1), name="latent/W_a")
        self.W_b = parameter(init_weight(rng, n_in, self.size - 1), name="latent/W_b")
        self.params = [self.W_a, self.W_b]

    def posterior(self, h):
        a = softplus(at.dot(h, self.W_a))
        b = softplus(at.dot(h, self.W_b))
        if self.clip is not None:
            a, b = at.clip(a, *self.clip), at.clip(b, *self.clip)
        return {"a": a, "b": b}

    def noise(self, srng, n, low=UNIFORM_RANGE[0], high=UNIFORM_RANGE[1]):
        return srng.uniform(low, high, size=(n, self.size - 1))

    def fractions(self, post, u):
        return kumaraswamy_sample_expr(post["a"], post["b"], u)

    def sample(self, post, u):
        return stick_breaking_expr(self.fractions(post, u))

    def kl(self, post):
        per_stick = kumaraswamy_beta_kl_expr(post["a"], post["b"], self.prior_alpha,
                                             self.prior_beta, self.taylor_terms, self.digamma)
        if self.clip is not None:
            # The true KL is never negative, but inside any box that holds the prior's
            # (a, b) = (1, alpha0) the ten-term series dips below 0 (and the series digamma
            # at small b: -0.2 at a = b = 0.25 under alpha0 = 1). With the safety option on,
            # each stick's KL is floored at 0, so the optimiser cannot exploit those dips.
            per_stick = at.maximum(per_stick, 0.0)
        return at.sum(per_stick, axis=1)

    def mean_code(self, post):
        """Stick weights of the Kumaraswamy mean of each fraction."""
        return stick_breaking_expr(kumaraswamy_mean_expr(post["a"], post["b"]))

    def prior_sample(self, srng, n):
        v = srng.beta(self.prior_alpha, self.prior_beta, size=(n, self.size - 1))
        return stick_breaking_expr(at.cast(v, self.W_a.dtype))


class GaussianLatent:
    """Diagonal Gaussian posterior N(mu, sigma^2) with a standard normal prior."""

    kind = "gaussian"

    def __init__(self, n_in, size, rng):
        self.size = int(size)
        self.W_mu = parameter(init_weight(rng, n_in, self.size), name="latent/W_mu")
        self.W_sigma = parameter(init_weight(rng, n_in, self.size), name="latent/W_sigma")
        self.params = [self.W_mu, self.W_sigma]

    def posterior(self, h):
        return {"mu": at.dot(h, self.W_mu), "log_sigma": at.dot(h, self.W_sigma)}

    def noise(self, srng, n):
        return srng.normal(0.0, 1.0, size=(n, self.size))

    def sample(self, post, eps):
        return gaussian_sample_expr(post["mu"], post["log_sigma"], eps)

    def kl(self, post):
        return at.sum(gaussian_kl_expr(post["mu"], post["log_sigma"]), axis=1)

    def mean_code(self, post):
        return post["mu"]

    def prior_sample(self, srng, n):
        return srng.normal(0.0, 1.0, size=(n, self.size))
