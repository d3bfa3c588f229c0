r"""Kumaraswamy, Beta and Gaussian distributions: samplers, log densities and KL terms.

Two layers of API:

* ``*_expr`` functions build Aesara expressions; the models use them.
* :func:`kumaraswamy_beta_kl`, :func:`kumaraswamy_sample`, :func:`stick_breaking_weights`
  and :func:`gaussian_kl` take and return plain NumPy arrays. They compile the
  expressions once per configuration and dtype (float32 or float64, from the input)
  and cache the compiled functions.

KL(Kumaraswamy(a, b) || Beta(alpha, beta)), per stick (Nalisnick & Smyth, 2017):

.. math::

    \mathrm{KL} = \frac{a - \alpha}{a}\Big(-\gamma - \psi(b) - \frac{1}{b}\Big)
        + \log(ab) + \log B(\alpha, \beta) - \frac{b - 1}{b}
        + (\beta - 1)\, b \sum_{m=1}^{\infty} \frac{B(m/a,\, b)}{m + ab}

The original code cuts the sum at ten terms and replaces :math:`\psi(b)` by the
asymptotic series :math:`\log b - 1/(2b) - 1/(12 b^2)` with :math:`\gamma = 0.57721`;
that is the default here (``taylor_terms=10, digamma="series"``). ``digamma="exact"``
uses the true digamma and the full Euler constant; with enough terms the result is
the exact KL (the series converges like :math:`m^{-1-b}`).
"""
import functools

import numpy as np

from .backend import at, function
from .stick_breaking import stick_breaking_expr

EULER_GAMMA_ORIGINAL = 0.57721  # as written in the original code
DIGAMMA_CHOICES = ("series", "exact")


def _const(value, like):
    """A constant of ``like``'s dtype (a Python float would be cast to floatX)."""
    return at.constant(np.asarray(value, dtype=like.dtype))


def log_beta_fn_expr(x, y):
    """log B(x, y) = log Gamma(x) + log Gamma(y) - log Gamma(x + y)."""
    return at.gammaln(x) + at.gammaln(y) - at.gammaln(x + y)


def digamma_series_expr(b):
    r"""The original's stand-in for :math:`\psi(b)`: :math:`\log b - 1/(2b) - 1/(12 b^2)`."""
    return at.log(b) - 1.0 / (2.0 * b) - 1.0 / (12.0 * b ** 2)


def kumaraswamy_beta_kl_expr(a, b, prior_alpha, prior_beta, taylor_terms=10, digamma="series"):
    """Per-stick KL(Kumaraswamy(a, b) || Beta(prior_alpha, prior_beta)), elementwise in a, b.

    Computed by the fused C kernel :class:`.kernels.KumaraswamyBetaKL` (the formula
    above and its analytic gradient in one vectorised pass); ``a`` and ``b`` are
    broadcast to a common shape first. :func:`kumaraswamy_beta_kl_graph` builds the
    same formula as a plain Aesara graph (the reference the kernel is tested against).
    Parameters as for :func:`kumaraswamy_beta_kl_graph`.
    """
    from .kernels import kumaraswamy_beta_kl as kernel
    a, b = at.as_tensor_variable(a), at.as_tensor_variable(b)
    dtype = str(np.result_type(a.dtype, b.dtype))
    a, b = at.broadcast_arrays(at.cast(a, dtype), at.cast(b, dtype))
    return kernel(a, b, prior_alpha, prior_beta, taylor_terms, digamma)


def kumaraswamy_beta_kl_graph(a, b, prior_alpha, prior_beta, taylor_terms=10, digamma="series"):
    """Per-stick KL(Kumaraswamy(a, b) || Beta(prior_alpha, prior_beta)) as an Aesara graph.

    Parameters
    ----------
    a, b : tensor
        Kumaraswamy parameters (any shape, positive).
    prior_alpha, prior_beta : float
        Beta prior parameters (the SB-VAE uses Beta(1, alpha0)).
    taylor_terms : int
        Terms m = 1..taylor_terms of the series for E[log(1 - v)].
    digamma : {"series", "exact"}
        ``"series"``: the original's asymptotic series for psi(b) and gamma = 0.57721;
        ``"exact"``: Aesara's digamma and the full Euler constant.
    """
    if digamma not in DIGAMMA_CHOICES:
        raise ValueError(f"digamma must be one of {DIGAMMA_CHOICES}, got {digamma!r}")
    if int(taylor_terms) < 1:
        raise ValueError(f"taylor_terms must be >= 1, got {taylor_terms!r}")
    # Constants in a's dtype: Aesara would round Python floats to floatX (float32).
    alpha_c, beta_m1_c = _const(prior_alpha, a), _const(float(prior_beta) - 1.0, a)
    kl = at.log(a * b) - (b - 1.0) / b
    if float(prior_beta) != 1.0:
        # B(m/a, b) / (m + a b) for all m at once; log Gamma(b) is shared by the terms.
        m = _const(np.arange(1, int(taylor_terms) + 1), a)
        a_, b_ = at.shape_padright(a), at.shape_padright(b)
        m_over_a = m / a_
        log_beta_terms = at.gammaln(m_over_a) + at.gammaln(b_) - at.gammaln(m_over_a + b_)
        series = at.sum(at.exp(log_beta_terms) / (m + a_ * b_), axis=-1)
        kl = kl + beta_m1_c * b * series
    if digamma == "series":
        psi_b, euler = digamma_series_expr(b), EULER_GAMMA_ORIGINAL
    else:
        psi_b, euler = at.psi(b), float(np.euler_gamma)
    kl = kl + (a - alpha_c) / a * (-_const(euler, a) - psi_b - 1.0 / b)
    return kl + _const(_log_beta_fn(prior_alpha, prior_beta), a)


def _log_beta_fn(x, y):
    from scipy.special import betaln
    return betaln(x, y)


def kumaraswamy_sample_expr(a, b, u):
    r"""Reparameterised Kumaraswamy draw :math:`v = (1 - u^{1/b})^{1/a}` for uniform ``u``.

    Computed as :math:`\exp(\log(-\mathrm{expm1}(\log(u)/b))/a)`, which is the same
    number with full precision when :math:`u^{1/b}` is close to 1.
    """
    return at.exp(at.log(-at.expm1(at.log(u) / b)) / a)


def kumaraswamy_mean_expr(a, b):
    r"""E[v] under Kumaraswamy(a, b): :math:`b\,B(1 + 1/a,\, b)`."""
    return b * at.exp(log_beta_fn_expr(1.0 + 1.0 / a, b))


def gaussian_kl_expr(mu, log_sigma):
    r"""KL(N(mu, sigma^2) || N(0, 1)) per coordinate: :math:`\tfrac12(\mu^2 + \sigma^2 - 1) - \log\sigma`."""
    return 0.5 * (mu ** 2 + at.exp(2.0 * log_sigma) - 1.0) - log_sigma


def gaussian_sample_expr(mu, log_sigma, eps):
    """Reparameterised Gaussian draw mu + sigma * eps."""
    return mu + at.exp(log_sigma) * eps


# ---------------------------------------------------------------------------------------
# NumPy API: compiled once per configuration and dtype.

def _float_array(name, x):
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real array, got dtype {arr.dtype}")
    return arr.astype(arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64)


def _common_dtype(*arrays):
    return np.result_type(*arrays)


@functools.lru_cache(maxsize=None)
def _compiled_kl(dtype, prior_alpha, prior_beta, taylor_terms, digamma):
    a = at.vector("a", dtype=dtype)
    b = at.vector("b", dtype=dtype)
    kl = kumaraswamy_beta_kl_expr(a, b, prior_alpha, prior_beta, taylor_terms, digamma)
    return function([a, b], at.cast(kl, dtype))


def kumaraswamy_beta_kl(a, b, prior_alpha, prior_beta, taylor_terms=10, digamma="series"):
    """Per-stick KL(Kumaraswamy(a, b) || Beta(prior_alpha, prior_beta)) on NumPy arrays.

    ``a`` and ``b`` broadcast against each other; the result has their broadcast
    shape (the shape of ``a`` when they agree) and their float dtype. See
    :func:`kumaraswamy_beta_kl_expr` for the formula and the options.
    """
    a = _float_array("a", a)
    b = _float_array("b", b)
    if np.any(~(a > 0)) or np.any(~(b > 0)):
        raise ValueError("Kumaraswamy parameters a and b must be positive")
    a, b = np.broadcast_arrays(a, b)
    dtype = str(_common_dtype(a, b))
    f = _compiled_kl(dtype, float(prior_alpha), float(prior_beta), int(taylor_terms), digamma)
    out = f(np.ascontiguousarray(a, dtype).ravel(), np.ascontiguousarray(b, dtype).ravel())
    return out.reshape(a.shape)


@functools.lru_cache(maxsize=None)
def _compiled_sample(dtype):
    a, b, u = (at.vector(n, dtype=dtype) for n in "abu")
    return function([a, b, u], kumaraswamy_sample_expr(a, b, u))


def kumaraswamy_sample(a, b, u):
    """Kumaraswamy draws v = (1 - u^(1/b))^(1/a) for uniforms ``u`` (NumPy arrays, broadcast)."""
    a, b, u = (_float_array(n, x) for n, x in zip("abu", (a, b, u)))
    a, b, u = np.broadcast_arrays(a, b, u)
    dtype = str(_common_dtype(a, b, u))
    f = _compiled_sample(dtype)
    flat = [np.ascontiguousarray(x, dtype).ravel() for x in (a, b, u)]
    return f(*flat).reshape(a.shape)


@functools.lru_cache(maxsize=None)
def _compiled_sticks(dtype):
    v = at.matrix("v", dtype=dtype)
    return function([v], stick_breaking_expr(v))


def stick_breaking_weights(v):
    """Stick weights pi of shape (N, K) from fractions v of shape (N, K-1) (NumPy)."""
    v = _float_array("v", v)
    if v.ndim != 2:
        raise ValueError(f"v must have shape (N, K-1), got shape {v.shape}")
    return _compiled_sticks(str(v.dtype))(np.ascontiguousarray(v))


@functools.lru_cache(maxsize=None)
def _compiled_gaussian_kl(dtype):
    mu = at.vector("mu", dtype=dtype)
    log_sigma = at.vector("log_sigma", dtype=dtype)
    return function([mu, log_sigma], gaussian_kl_expr(mu, log_sigma))


def gaussian_kl(mu, log_sigma):
    """KL(N(mu, sigma^2) || N(0, 1)) per coordinate, on NumPy arrays."""
    mu, log_sigma = np.broadcast_arrays(_float_array("mu", mu), _float_array("log_sigma", log_sigma))
    dtype = str(_common_dtype(mu, log_sigma))
    f = _compiled_gaussian_kl(dtype)
    return f(np.ascontiguousarray(mu, dtype).ravel(),
             np.ascontiguousarray(log_sigma, dtype).ravel()).reshape(mu.shape)


# ---------------------------------------------------------------------------------------
# Log-space draws and densities, for importance sampling (meant for float64 graphs). The
# evaluation runs their NumPy port (families.kumaraswamy.importance_sample); these graphs
# are its symbolic reference, which tests/test_families.py checks it against.
#
# A Kumaraswamy draw from a uniform u is v = (1 - u^(1/b))^(1/a). Everything the
# densities need follows from t = log(u) / b without forming v:
#   log(1 - v^a) = t,   log v = log1mexp(t) / a,   log(1 - v) = log1mexp(log v).
# The last one underflows (to log(0)) when log v rounds to 0, i.e. for b or a far from
# the usual range (models trained with the faithful KL emit b ~ 1e-37 for some digits);
# it is computed from log(-log v) with a series where the direct form would underflow.

_SERIES_BELOW = -20.0  # below this, e^x < 2.1e-9 and the two-term series is exact in float64


def log_neg_log1mexp_expr(t):
    r""":math:`\log(-\log(1 - e^t))` for :math:`t < 0`, finite however negative t is.

    For :math:`t < -20` it is :math:`t + e^t/2` (the next term is :math:`O(e^{2t})`).
    """
    small = t < _SERIES_BELOW
    safe = at.switch(small, -1.0, t)
    return at.switch(small, t + 0.5 * at.exp(t), at.log(-at.log1mexp(safe)))


def log1m_exp_neg_exp_expr(ell):
    r""":math:`\log(1 - \exp(-e^{\ell}))`, finite however negative :math:`\ell` is.

    For :math:`\ell < -20` it is :math:`\ell - e^{\ell}/2`.
    """
    small = ell < _SERIES_BELOW
    safe = at.switch(small, 0.0, ell)
    return at.switch(small, ell - 0.5 * at.exp(ell), at.log(-at.expm1(-at.exp(safe))))


def kumaraswamy_log_draw_expr(a, b, log_u):
    r"""Logarithms of a Kumaraswamy(a, b) draw from :math:`\log u`, u uniform on (0, 1).

    Returns ``(log_v, log_1m_v, log_1m_va)``: :math:`\log v`, :math:`\log(1 - v)` and
    :math:`\log(1 - v^a)` for :math:`v = (1 - u^{1/b})^{1/a}`, each accurate where v
    itself would round to 0 or 1.
    """
    t = log_u / b
    log_v = at.log1mexp(t) / a
    log_1m_v = log1m_exp_neg_exp_expr(log_neg_log1mexp_expr(t) - at.log(a))
    return log_v, log_1m_v, t


def kumaraswamy_log_pdf_from_logs_expr(log_v, log_1m_va, a, b):
    r"""Kumaraswamy log density from :math:`\log v` and :math:`\log(1 - v^a)`."""
    return at.log(a) + at.log(b) + (a - 1.0) * log_v + (b - 1.0) * log_1m_va


def beta_log_pdf_from_logs_expr(log_v, log_1m_v, alpha, beta):
    r"""Beta(alpha, beta) log density from :math:`\log v` and :math:`\log(1 - v)`.

    ``alpha`` and ``beta`` are Python numbers; a term whose coefficient is zero
    (alpha = 1 for the stick-breaking prior) is left out, so it cannot give 0 * inf.
    """
    out = -_const(_log_beta_fn(alpha, beta), log_v) + at.zeros_like(log_v)
    if float(alpha) != 1.0:
        out = out + _const(float(alpha) - 1.0, log_v) * log_v
    if float(beta) != 1.0:
        out = out + _const(float(beta) - 1.0, log_v) * log_1m_v
    return out
