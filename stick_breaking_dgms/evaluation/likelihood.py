r"""Marginal likelihood by importance sampling, for the SB-VAE and the Gauss-VAE.

.. math::

    \log p(x) \approx \log \frac1S \sum_{s=1}^S
        \frac{p(x \mid z_s)\, p(z_s)}{q(z_s \mid x)}, \qquad z_s \sim q(z \mid x)

with S = 100 by default, per example, and the test-set mean of :math:`-\log p(x)` with
its standard error.

* **SB-VAE.** The densities are those of the K-1 stick fractions v: Kumaraswamy(a, b)
  under q, Beta(1, alpha0) under p. The map v -> pi is the same under both, so its
  Jacobian cancels. The samples come from the *full* Kumaraswamy, u uniform on (0, 1)
  (not the training sampler's U(0.01, 0.99), whose draws do not have the Kumaraswamy
  density). Every quantity is taken in log space from :math:`t = \log(u)/b`:
  :math:`\log(1 - v^a) = t`, :math:`\log v = \mathrm{log1mexp}(t)/a`, and
  :math:`\log(1 - v)` through a series where it would underflow (see
  :func:`~stick_breaking_dgms.distributions.kumaraswamy_log_draw_expr`), so posteriors
  with b = 1e-37 give finite (huge) values instead of NaN.
* **Gauss-VAE.** :math:`z = \mu + \sigma\epsilon`, :math:`\log q` from
  :math:`\epsilon` directly, prior N(0, I).
* The encoder and decoder run in the model's precision (float32 by default); the
  posterior parameters, the latent densities, the stick weights and the
  reconstruction log-likelihood (summed from the decoder's logits) are float64.
  Gaussian likelihoods include the normalising constant :math:`\tfrac D2\log 2\pi`
  that the training objective leaves out.

Non-finite log-weights are counted, never dropped silently: a weight of exactly zero
(:math:`-\infty`) is a legitimate term of the sum; a NaN sample is left out of the
sum (it still counts in S) and reported; an example whose estimate is not finite is
reported and kept out of the finite mean, which is given beside the mean over all
examples. Examples whose estimate is far above the rest (beyond the upper quartile plus
``OUTLIER_IQR`` interquartile ranges) are listed with their smallest posterior
parameters, and the mean without them is reported beside the mean with them.
"""
import math
import time

import numpy as np

from .loading import FLOAT64

DEFAULT_SAMPLES = 100
OUTLIER_IQR = 3.0  # Tukey's "far out" fence
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _build_log_weights(lm):
    """Compile (x, noise) -> (log w (B, S), log p(x|z) (B, S), min a, min b (B,)) for a VAE."""
    from ..backend import at, function
    from ..distributions import (beta_log_pdf_from_logs_expr, kumaraswamy_log_draw_expr,
                                 kumaraswamy_log_pdf_from_logs_expr,
                                 stick_breaking_from_logs_expr)
    from ..objectives import nll_expr
    net = lm.net
    x = at.matrix("x", dtype=lm.floatX)
    noise = at.tensor3("noise", dtype=FLOAT64)  # (B, S, L)
    n, s = noise.shape[0], noise.shape[1]
    h = at.cast(net.encoder(x), FLOAT64)
    post = net.latent.posterior(h)
    if lm.kind == "stick-breaking":
        a, b = post["a"][:, None, :], post["b"][:, None, :]
        log_v, log_1m_v, log_1m_va = kumaraswamy_log_draw_expr(a, b, at.log(noise))
        log_q = at.sum(kumaraswamy_log_pdf_from_logs_expr(log_v, log_1m_va, a, b), axis=-1)
        log_p = at.sum(beta_log_pdf_from_logs_expr(log_v, log_1m_v, net.latent.prior_alpha,
                                                   net.latent.prior_beta), axis=-1)
        code = stick_breaking_from_logs_expr(log_v, log_1m_v)
        extremes = [at.min(post["a"], axis=1), at.min(post["b"], axis=1)]
    else:
        mu, log_sigma = post["mu"][:, None, :], post["log_sigma"][:, None, :]
        code = mu + at.exp(log_sigma) * noise
        log_q = at.sum(-HALF_LOG_2PI - log_sigma - 0.5 * noise ** 2, axis=-1)
        log_p = at.sum(-HALF_LOG_2PI - 0.5 * code ** 2, axis=-1)
        extremes = [at.min(post["log_sigma"], axis=1), at.max(post["log_sigma"], axis=1)]
    k = code.shape[-1]
    out = net.decode(at.cast(code.reshape((n * s, k)), lm.floatX))
    out = at.cast(out, FLOAT64).reshape((n, s, out.shape[-1]))
    x64 = at.cast(x, FLOAT64)[:, None, :]
    log_lik = -nll_expr(net.likelihood, x64, out)
    if net.likelihood == "gaussian":
        log_lik = log_lik - at.cast(x.shape[1], FLOAT64) * HALF_LOG_2PI
    log_w = log_lik + log_p - log_q
    return function([x, noise], [log_w, log_lik] + extremes)


def importance_noise(lm, rng, n, samples):
    """float64 noise (n, samples, L): u uniform on the open interval (0, 1), or eps ~ N(0, 1).

    ``rng.random()`` returns multiples of 2^-53 in [0, 1); adding 2^-54 moves them into
    (0, 1), so log(u) and log(1 - u) are always finite.
    """
    size = lm.net.latent.size
    if lm.kind == "stick-breaking":
        return rng.random((n, samples, size - 1)) + 2.0 ** -54
    return rng.standard_normal((n, samples, size))


def log_mean_exp(log_w):
    """Per row, log((1/S) sum_s exp(log_w)) with NaN entries left out of the sum (S unchanged).

    Returns (estimate, n_nan, n_neg_inf, n_pos_inf) per row.
    """
    log_w = np.asarray(log_w, dtype=np.float64)
    nan = np.isnan(log_w)
    n_neg_inf = np.sum(log_w == -np.inf, axis=1)
    n_pos_inf = np.sum(log_w == np.inf, axis=1)
    w = np.where(nan, -np.inf, log_w)
    top = np.max(w, axis=1)
    safe_top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        total = np.sum(np.exp(w - safe_top[:, None]), axis=1)
        est = safe_top + np.log(total) - math.log(log_w.shape[1])
    est = np.where(np.isposinf(top), np.inf, est)
    est = np.where(np.isneginf(top), -np.inf, est)
    return est, nan.sum(axis=1), n_neg_inf, n_pos_inf


def effective_sample_size(log_w):
    """(sum w)^2 / sum w^2 per row over the finite log-weights (S when all weights are equal)."""
    w = np.where(np.isfinite(log_w), log_w, -np.inf)
    top = np.max(w, axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.exp(w - top)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(e, axis=1) ** 2 / np.sum(e ** 2, axis=1)


def monte_carlo_se(log_w):
    r"""Delta-method standard error of the estimate :math:`\log\hat p(x)`, per row.

    :math:`\mathrm{se} \approx \sqrt{(S/\mathrm{ESS} - 1)/S}`, the relative standard error
    of the mean weight (0 when all weights are equal).
    """
    s = np.asarray(log_w).shape[1]
    ess = effective_sample_size(log_w)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(np.maximum(s / ess - 1.0, 0.0) / s)


def importance_sampled_log_likelihood(lm, x, samples=DEFAULT_SAMPLES, seed=1234,
                                      rows_per_batch=4000, progress=None):
    """Per-example importance-sampling estimates for the rows of ``x``.

    Parameters
    ----------
    lm : LoadedModel
        A VAE (``sb_vae`` or ``gauss_vae``).
    x : array (N, D)
    samples : int
        S, the importance samples per example.
    seed : int
        Seeds the draws; the draws do not depend on the batch size.
    rows_per_batch : int
        Decoder rows per compiled call (examples per batch = rows_per_batch // S).
    progress : StepProgress or None

    Returns a dict of per-example arrays: ``log_px`` (the estimate), ``elbo`` (the mean
    log-weight, a Monte Carlo ELBO with the same draws), ``log_lik`` (mean reconstruction
    log-likelihood), ``ess`` (effective sample size), ``mc_se`` (the estimate's
    Monte Carlo standard error, :func:`monte_carlo_se`), ``nan_samples``,
    ``zero_weight_samples`` (log-weight -inf), ``inf_samples`` (log-weight +inf),
    ``extreme_0`` / ``extreme_1`` (min a and min b, or min and max log sigma), and the
    scalars ``samples`` and ``seconds``.
    """
    if lm.semi:
        raise ValueError("importance sampling is implemented for the VAEs (sb_vae, gauss_vae)")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    f = lm.compiled("log_weights", lambda: _build_log_weights(lm))
    rng = np.random.default_rng(seed)
    batch = max(1, int(rows_per_batch) // int(samples))
    parts = {k: [] for k in ("log_px", "elbo", "log_lik", "ess", "mc_se", "nan_samples",
                             "zero_weight_samples", "inf_samples", "extreme_0", "extreme_1")}
    started = time.time()
    for start in range(0, len(x), batch):
        xb = lm.cast_x(x[start:start + batch])
        noise = importance_noise(lm, rng, len(xb), samples)
        log_w, log_lik, e0, e1 = f(xb, noise)
        est, n_nan, n_ninf, n_pinf = log_mean_exp(log_w)
        with np.errstate(invalid="ignore"):
            finite = np.where(np.isnan(log_w), np.nan, log_w)
            elbo = np.nanmean(finite, axis=1) if finite.size else finite
        parts["log_px"].append(est)
        parts["elbo"].append(elbo)
        parts["log_lik"].append(np.mean(log_lik, axis=1))
        parts["ess"].append(effective_sample_size(log_w))
        parts["mc_se"].append(monte_carlo_se(log_w))
        parts["nan_samples"].append(n_nan)
        parts["zero_weight_samples"].append(n_ninf)
        parts["inf_samples"].append(n_pinf)
        parts["extreme_0"].append(e0)
        parts["extreme_1"].append(e1)
        if progress is not None:
            progress.update(min(start + batch, len(x)))
    out = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    out["samples"] = int(samples)
    out["seconds"] = time.time() - started
    return out


def summarize(per_example, kind="stick-breaking", max_listed=10):
    """The test-set summary of :func:`importance_sampled_log_likelihood`'s output.

    ``nll`` is -log p(x). Returns a JSON-able dict: ``n``, ``mean_nll`` (over every
    example; not finite if one is not), ``se_nll`` (standard error of that mean),
    ``n_finite``, ``mean_nll_finite``, ``se_nll_finite``, ``median_nll``, quartiles,
    ``outlier_threshold``, ``n_outliers``, ``mean_nll_without_outliers``, ``outliers``
    (the worst ones with their posterior extremes), ``mean_elbo``, ``se_elbo``, the
    non-finite sample counts, ``mean_ess``, ``min_ess``.
    """
    nll = -np.asarray(per_example["log_px"], dtype=np.float64)
    n = len(nll)
    finite = np.isfinite(nll)
    fin = nll[finite]

    def mean_se(v):
        if len(v) == 0:
            return float("nan"), float("nan")
        se = float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
        return float(np.mean(v)), se

    with np.errstate(invalid="ignore", over="ignore"):
        mean_all, se_all = mean_se(nll)
    mean_fin, se_fin = mean_se(fin)
    if len(fin):
        q1, med, q3 = (float(q) for q in np.percentile(fin, [25, 50, 75]))
    else:
        q1 = med = q3 = float("nan")
    threshold = q3 + OUTLIER_IQR * (q3 - q1)
    outlier = ~finite | (nll > threshold)
    kept = nll[~outlier]
    mean_kept, se_kept = mean_se(kept)
    # worst first: the non-finite estimates (NaN, +inf, and -inf from log p(x) = +inf), then
    # the largest -log p(x)
    order = np.argsort(np.where(finite, -nll, -np.inf), kind="stable")
    names = (("min_a", "min_b") if kind == "stick-breaking"
             else ("min_log_sigma", "max_log_sigma"))
    listed = []
    for i in order[:max_listed]:
        if not outlier[i]:
            break
        listed.append({"index": int(i), "nll": _num(nll[i]),
                       names[0]: _num(per_example["extreme_0"][i]),
                       names[1]: _num(per_example["extreme_1"][i]),
                       "nan_samples": int(per_example["nan_samples"][i])})
    elbo = np.asarray(per_example["elbo"], dtype=np.float64)
    elbo_fin = elbo[np.isfinite(elbo)]
    mean_elbo, se_elbo = mean_se(elbo_fin)
    ess = np.asarray(per_example["ess"], dtype=np.float64)
    ess = ess[np.isfinite(ess)]
    return {
        "n": n, "samples": int(per_example.get("samples", 0)),
        "mean_nll": _num(mean_all), "se_nll": _num(se_all),
        "n_finite": int(finite.sum()), "n_nonfinite": int(n - finite.sum()),
        "mean_nll_finite": _num(mean_fin), "se_nll_finite": _num(se_fin),
        "median_nll": _num(med), "q1_nll": _num(q1), "q3_nll": _num(q3),
        "outlier_rule": f"-log p(x) > Q3 + {OUTLIER_IQR:g} IQR, or not finite",
        "outlier_threshold": _num(threshold), "n_outliers": int(outlier.sum()),
        "mean_nll_without_outliers": _num(mean_kept), "se_nll_without_outliers": _num(se_kept),
        "outliers": listed,
        "mean_elbo": _num(mean_elbo), "se_elbo": _num(se_elbo),
        "n_elbo_nonfinite": int(len(elbo) - len(elbo_fin)),
        "nan_samples": int(np.sum(per_example["nan_samples"])),
        "examples_with_nan_samples": int(np.sum(np.asarray(per_example["nan_samples"]) > 0)),
        "zero_weight_samples": int(np.sum(per_example["zero_weight_samples"])),
        "inf_samples": int(np.sum(per_example["inf_samples"])),
        "mean_ess": _num(np.mean(ess)) if len(ess) else None,
        "min_ess": _num(np.min(ess)) if len(ess) else None,
        "mean_log_lik": _num(np.mean(per_example["log_lik"])),
        "seconds": _num(per_example.get("seconds", float("nan"))),
    }


def _num(v):
    """A float for JSON: finite numbers as is, inf / nan as strings."""
    v = float(v)
    if math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
