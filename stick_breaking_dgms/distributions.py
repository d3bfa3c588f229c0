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
the exact KL, but slowly: the terms fall like :math:`m^{-1-b}`, the rest of the sum after
M terms like :math:`M^{-b}`, so for b < 1 thousands of terms still miss by percents.

``method="exact"`` computes the exact KL instead (:func:`kumaraswamy_beta_kl_exact_graph`):
the sum is :math:`-E[\log(1 - v)]/b`, written as :math:`-1/b - \log a + D(a, b)` with
:math:`D` a bounded integral over :math:`w = 1 - v^a \sim \mathrm{Beta}(b, 1)`
(:func:`kumaraswamy_excess_expr`), integrated by the trapezoidal rule in
:math:`\mathrm{logit}(1 - w)`. That quadrature was chosen over an analytic tail for the
series: the asymptotic expansion of :math:`B(m/a, b)` in :math:`a/m` holds only for
:math:`m/a \gg b^2`, out of reach of any fixed number of terms when a and b are both
large, while the quadrature is uniformly accurate (to 1e-6 relative for a, b in
[1e-4, 1e4]) and is built from standard ops (so every linker runs it, JAX's included,
with no custom op to keep in step); its gradient is the same rule applied to the
integrand's derivatives, computed in the same pass. The digamma in the KL is computed
to float64 precision too (:func:`harmonic_number_expr`).
"""
import functools

import numpy as np

from .backend import at, function, lib
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


def kumaraswamy_beta_kl_expr(a, b, prior_alpha, prior_beta, taylor_terms=10, digamma="series",
                             method="series"):
    """Per-stick KL(Kumaraswamy(a, b) || Beta(prior_alpha, prior_beta)), elementwise in a, b.

    ``method="series"`` (the default, the original's KL): computed by the fused C kernel
    :class:`.kernels.KumaraswamyBetaKL` (the formula above, cut at ``taylor_terms``
    terms, with the ``digamma`` option, and its analytic gradient in one vectorised
    pass); :func:`kumaraswamy_beta_kl_graph` builds the same formula as a plain graph
    (the reference the kernel is tested against).

    ``method="exact"``: the exact KL, :func:`kumaraswamy_beta_kl_exact_graph` (a graph of
    standard ops, differentiated by the library); ``taylor_terms`` and ``digamma`` do not
    apply to it.

    ``a`` and ``b`` are broadcast to a common shape first. Other parameters as for
    :func:`kumaraswamy_beta_kl_graph`.
    """
    if method not in KL_METHODS:
        raise ValueError(f"method must be one of {KL_METHODS}, got {method!r}")
    a, b = at.as_tensor_variable(a), at.as_tensor_variable(b)
    dtype = str(np.result_type(a.dtype, b.dtype))
    a, b = at.broadcast_arrays(at.cast(a, dtype), at.cast(b, dtype))
    if method == "exact":
        return kumaraswamy_beta_kl_exact_graph(a, b, prior_alpha, prior_beta)
    from .kernels import kumaraswamy_beta_kl as kernel
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


# ---------------------------------------------------------------------------------------
# The exact KL (method="exact").
#
# With w = 1 - v^a ~ Beta(b, 1) and v = (1 - w)^{1/a}, the sum in the KL is -E[log(1 - v)]
# / b, and
#
#   E[log(1 - v)] = -1/b - log a + D(a, b),   D = E_w[f_a(w)],
#   f_a(w) = log(a (1 - (1 - w)^{1/a}) / w),
#
# since E[-log w] = 1/b. f_a is bounded (between 0 at w = 0 and log a at w = 1), and
# f_1 = 0: the terms that grow without bound as b -> 0 (-1/b) or a -> 0 (-log a) are
# taken out in closed form, and D is a well-behaved integral. D is integrated in
# sigma = logit(1 - w), in which 1 - w = sigmoid(sigma), w = sigmoid(-sigma) and the
# three places where the integrand changes are each about one unit wide: the bulk of the
# Beta(b, 1) density near sigma = -log b (b > 1), where f_a leaves 0 near sigma = -log a
# (a < 1), and the slow growth of f_a (like log(-sigma)) as w -> 1. The integrand
# decays exponentially on both sides, is analytic in a strip about the real axis, and
# the trapezoidal rule converges geometrically on it; the interval is placed from a and b.
# docs/kl_exact.md has the accuracy and the cost, and the alternatives measured.

#: nodes of the trapezoidal rule for D
EXACT_KL_NODES = 64
# The interval in sigma: [-_LEFT - max(log b, 0), min(_RIGHT + max(-log a, 0), sigma_w)],
# sigma_w where b softplus(sigma) = _WEIGHT_CUT. Beyond them the integrand is below
# about e^-20 of its size (the density's tail, like e^sigma below its bulk; f_a, like
# e^-sigma / min(a, 1) above; the density's e^-b softplus(sigma)).
_LEFT, _RIGHT, _WEIGHT_CUT = 22.0, 20.0, 34.0
KL_METHODS = ("series", "exact")

# Bernoulli-number coefficients B_2j / (2j) of the asymptotic series of the digamma:
# psi(x) ~ log x - 1/(2x) - sum_j c_j x^(-2j)
_PSI_ASYMPTOTIC = (1 / 12, -1 / 120, 1 / 252, -1 / 240, 1 / 132, -691 / 32760, 1 / 12)
_PSI_SHIFT = 10  # psi at x >= 10 from the series: the first term left out is < 1e-16


def harmonic_number_expr(b):
    r"""The harmonic number :math:`H_b = \psi(1 + b) + \gamma` of a float64 tensor, to
    float64 precision for every b > 0 (relative, also as b -> 0, where :math:`H_b \approx
    \zeta(2)\, b`).

    .. math::

        H_b = \sum_{k=1}^{9} \frac{b}{k (k + b)} + \psi(10 + b) - \psi(10)

    with the difference of digammas from their asymptotic series; every term is
    proportional to b for small b, so nothing cancels. The libraries' own digamma is
    good to about 1e-10 absolute, which is too coarse: the exact KL needs
    :math:`-\gamma - \psi(b) - 1/b = -H_b` to float64 precision where it is small.
    """
    # integers and constants in b's dtype: Aesara rounds Python floats to floatX
    n = _PSI_SHIFT
    k = _const(np.arange(1, n), b)
    b_ = at.shape_padright(b)
    out = at.sum(b_ / (k * (k + b_)), axis=-1)
    x = n + b
    log_ratio = at.log1p(b / n)  # log(x / n)
    # sum_j c_j (x^(-2j) - n^(-2j)), each difference as n^(-2j) expm1(-2j log(x / n)),
    # which keeps its relative precision as b -> 0
    for j, c in enumerate(_PSI_ASYMPTOTIC, start=1):
        out = out - _const(c * float(n) ** (-2 * j), b) * at.expm1((-2 * j) * log_ratio)
    return out + log_ratio + b / (2 * n * x)


def _trapezoid_weights(n):
    u = np.linspace(0.0, 1.0, n)
    w = np.full(n, 1.0 / (n - 1))
    w[0] = w[-1] = 0.5 / (n - 1)
    return u, w


def kumaraswamy_excess_expr(a, b, log_a=None):
    r""":math:`D(a, b) = E[\log(1 - v)] + 1/b + \log a` for v ~ Kumaraswamy(a, b), a, b
    float64 tensors of one shape, by the trapezoidal rule in :math:`\sigma = \mathrm{logit}(1 - w)`.

    .. math::

        D = \int_{-\infty}^{\infty} p_b(\sigma)\, f_a(\sigma)\, d\sigma, \qquad
        p_b = b\, e^{-b\, \mathrm{sp}(\sigma) - q}, \qquad
        f_a = \log(1 - e^{-q/a}) + \log a + \mathrm{sp}(\sigma)

    with sp = softplus, :math:`q = \mathrm{sp}(-\sigma) = -\log(1 - w)` and
    :math:`\mathrm{sp}(\sigma) = -\log w` (:math:`p_b` is the Beta(b, 1) density in
    :math:`\sigma`, :math:`f_a` the integrand :math:`f_a(w)`). The gradient is the same
    rule applied to the integrand's derivatives, computed alongside the value:

    .. math::

        \partial_a D = \int p_b\, \frac{1}{a}\Big(1 - \frac{x}{e^x - 1}\Big)\, d\sigma,
        \qquad
        \partial_b D = \int p_b \Big(\frac1b - \mathrm{sp}(\sigma)\Big) f_a\, d\sigma,
        \qquad x = q/a

    (the interval is placed from a and b, but its ends carry a negligible part of the
    integral, so the nodes are held fixed). The three integrands come from one
    elementwise op (:func:`_excess_terms_op`, one pass over the nodes), and the
    derivatives enter the graph as the gradient of D:
    :math:`D + (a - \bar a)\, \partial_a D + (b - \bar b)\, \partial_b D`, with the
    bars and the three integrals held constant for differentiation. The library's own
    gradient of the rule would take a backward pass over every node's intermediate
    values, which costs more than the forward pass. Second derivatives of D are not
    available.
    """
    if log_a is None:
        log_a = at.log(a)
    log_b = at.log(b)
    lo = -_LEFT - at.maximum(log_b, 0.0)
    # sigma_w: softplus^-1(_WEIGHT_CUT / b) = y + log(1 - e^-y), finite for any b
    y = _WEIGHT_CUT / b
    sigma_w = y + at.log(-at.expm1(-y))
    hi = at.maximum(at.minimum(_RIGHT + at.maximum(-log_a, 0.0), sigma_w), lo + 1.0)
    width = hi - lo
    u, w = _trapezoid_weights(EXACT_KL_NODES)
    pad = at.shape_padright
    terms = _excess_terms_op()(_const(u, a), _const(w, a), pad(lo), pad(width), pad(a),
                               pad(log_a), pad(b), pad(log_b))
    value, d_a, d_b = (at.sum(t, axis=-1) * width for t in terms)
    # no gradient through the rule itself (the library cannot differentiate the
    # three-output op, and need not)
    fixed = lib.gradient.disconnected_grad
    d_a, d_b = fixed(d_a / a), fixed(d_b)
    return fixed(value) + (a - fixed(a)) * d_a + (b - fixed(b)) * d_b


def _excess_terms_op():
    r"""The integrands of D, a dD/da and dD/db at one node, times the rule's weight, as
    one elementwise op with three outputs (one pass over the nodes, no arrays between).

    Inputs ``u, weight, lo, width, a, log_a, b, log_b`` (float64), the node
    :math:`\sigma = lo + width \cdot u`. With :math:`l = \log(1 + e^{-|\sigma|})`:
    :math:`-\log w = \max(\sigma, 0) + l`, :math:`q = \max(-\sigma, 0) + l`, the density
    :math:`b w^b (1 - w) = \exp(\log b + b \log w - q)`. :math:`f_a = \log(1 - e^{-x}) +
    \log a - \log w`, x = q/a: where w -> 0 it is the difference of two numbers near
    :math:`-\log w`, exact to ~1e-16 of it in absolute terms, which is what the integral
    needs. :math:`a\, \partial_a f_a = 1 - x/(e^x - 1)`, by its series
    :math:`x/2 - x^2/12` for x < 1e-3.
    """
    S = lib.scalar

    def c(v):
        return S.constant(np.float64(v))
    u, weight, lo, width, a, log_a, b, log_b = (
        S.float64(n) for n in ("u", "weight", "lo", "width", "a", "log_a", "b", "log_b"))
    sigma = lo + width * u
    l1 = S.log1p(S.exp(-S.abs(sigma)))
    minus_log_w = S.scalar_maximum(sigma, c(0.0)) + l1
    q = S.scalar_maximum(-sigma, c(0.0)) + l1
    density = S.exp(log_b - b * minus_log_w - q) * weight
    x = q / a
    one_m_e = -S.expm1(-x)                                            # 1 - e^-x
    f = S.log(one_m_e) + log_a + minus_log_w
    a_df_a = S.switch(S.lt(x, c(1e-3)), x * (c(0.5) - x / c(12.0)),
                      c(1.0) - x * (c(1.0) - one_m_e) / one_m_e)
    outputs = [density * f, density * a_df_a, density * (c(1.0) / b - minus_log_w) * f]
    return lib.tensor.elemwise.Elemwise(
        S.Composite([u, weight, lo, width, a, log_a, b, log_b], outputs))


def expected_log_1m_v_expr(a, b):
    r""":math:`E[\log(1 - v)]` under Kumaraswamy(a, b) (float64 tensors), exact to float64
    precision up to the quadrature of :func:`kumaraswamy_excess_expr`:
    :math:`-1/b - \log a + D(a, b)`."""
    log_a = at.log(a)
    return -1.0 / b - log_a + kumaraswamy_excess_expr(a, b, log_a)


def kumaraswamy_beta_kl_exact_graph(a, b, prior_alpha, prior_beta):
    r"""The exact per-stick KL(Kumaraswamy(a, b) || Beta(alpha, beta)), built from standard
    ops only (it runs under every linker, JAX's included).

    With :math:`E[\log(1 - v)] = -1/b - \log a + D(a, b)` (:func:`kumaraswamy_excess_expr`)
    and :math:`-\gamma - \psi(b) - 1/b = -H_b` (:func:`harmonic_number_expr`):

    .. math::

        \mathrm{KL} = -\frac{a - \alpha}{a} H_b + \beta \log a + \log b + \log B(\alpha, \beta)
            - 1 + \frac{\beta}{b} - (\beta - 1)\, D(a, b)

    which is closed-form for :math:`\beta = 1`. Computed in float64 and rounded once to
    the inputs' dtype (``a`` and ``b`` of one dtype and shape).
    """
    dtype = a.dtype
    a64, b64 = at.cast(a, "float64"), at.cast(b, "float64")
    alpha, beta = float(prior_alpha), float(prior_beta)

    def c(x):  # a float64 constant (a Python float would be rounded to floatX)
        return _const(x, a64)
    log_a = at.log(a64)
    kl = (-(a64 - c(alpha)) / a64 * harmonic_number_expr(b64) + c(beta) * log_a
          + at.log(b64) + c(float(_log_beta_fn(alpha, beta)) - 1.0) + c(beta) / b64)
    if beta != 1.0:
        kl = kl - c(beta - 1.0) * kumaraswamy_excess_expr(a64, b64, log_a)
    return at.cast(kl, dtype)


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
def _compiled_kl(dtype, prior_alpha, prior_beta, taylor_terms, digamma, method="series"):
    a = at.vector("a", dtype=dtype)
    b = at.vector("b", dtype=dtype)
    kl = kumaraswamy_beta_kl_expr(a, b, prior_alpha, prior_beta, taylor_terms, digamma, method)
    return function([a, b], at.cast(kl, dtype))


def kumaraswamy_beta_kl(a, b, prior_alpha, prior_beta, taylor_terms=10, digamma="series",
                        method="series"):
    """Per-stick KL(Kumaraswamy(a, b) || Beta(prior_alpha, prior_beta)) on NumPy arrays.

    ``a`` and ``b`` broadcast against each other; the result has their broadcast
    shape (the shape of ``a`` when they agree) and their float dtype. See
    :func:`kumaraswamy_beta_kl_expr` for the formula and the options (``method``:
    ``"series"``, the original's truncated series, or ``"exact"``).
    """
    if method not in KL_METHODS:
        raise ValueError(f"method must be one of {KL_METHODS}, got {method!r}")
    a = _float_array("a", a)
    b = _float_array("b", b)
    if np.any(~(a > 0)) or np.any(~(b > 0)):
        raise ValueError("Kumaraswamy parameters a and b must be positive")
    a, b = np.broadcast_arrays(a, b)
    dtype = str(_common_dtype(a, b))
    if method == "series":  # the compiled function of earlier versions, unchanged
        f = _compiled_kl(dtype, float(prior_alpha), float(prior_beta), int(taylor_terms),
                         digamma)
    else:
        f = _compiled_kl(dtype, float(prior_alpha), float(prior_beta), 10, "series", method)
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
