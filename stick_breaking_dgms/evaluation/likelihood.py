r"""Marginal likelihood by importance sampling, for the SB-VAE and the Gauss-VAE.

.. math::

    \log p(x) \approx \log \frac1S \sum_{s=1}^S
        \frac{p(x \mid z_s)\, p(z_s)}{q(z_s \mid x)}, \qquad z_s \sim q(z \mid x)

with S = 100 by default, per example, and the test-set mean of :math:`-\log p(x)` with
its standard error.

* The posterior family draws the latent variable from its *exact* posterior and gives
  its log density under q and under the prior
  (:meth:`~stick_breaking_dgms.families.base.LatentFamily.importance_sample`). For the
  stick-breaking families these are the densities of the K-1 fractions v (Kumaraswamy,
  Beta or logit-Normal under q, Beta(1, alpha0) or its logit-Normal match under p); the
  map v -> pi is the same under both, so its Jacobian cancels. The draws are exact (the
  full Kumaraswamy with u uniform on (0, 1), not the training sampler's U(0.01, 0.99);
  exact Beta draws for the Gamma family, not Knowles' approximation) and taken in log
  space, so posteriors with b = 1e-37 give finite (huge) values instead of NaN.
* **Gauss-VAE.** :math:`z = \mu + \sigma\epsilon`, :math:`\log q` from
  :math:`\epsilon` directly, prior N(0, I).
* The encoder and decoder run in the model's precision (float32 by default); the
  posterior parameters, the latent densities, the codes and the reconstruction
  log-likelihood (summed from the decoder's logits) are float64.
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


def _build_posterior(lm):
    """Compile x -> the posterior parameters (float64); returns (function, their names)."""
    from ..backend import at, function
    x = at.matrix("x", dtype=lm.floatX)
    post = lm.net.latent.posterior(at.cast(lm.net.encoder(x), FLOAT64))
    names = sorted(post)
    return function([x], [post[k] for k in names]), names


def _build_log_lik(lm):
    """Compile (x (B, D), codes (B, S, K) float64) -> log p(x | code) (B, S), float64.

    The decoder runs in the model's precision; the log-likelihood is summed in float64
    from its logits. Gaussian likelihoods include the normalising constant.
    """
    from ..backend import at, function
    from ..objectives import nll_expr
    net = lm.net
    x = at.matrix("x", dtype=lm.floatX)
    code = at.tensor3("code", dtype=FLOAT64)
    n, s, k = code.shape[0], code.shape[1], code.shape[2]
    out = net.decode(at.cast(code.reshape((n * s, k)), lm.floatX))
    out = at.cast(out, FLOAT64).reshape((n, s, out.shape[-1]))
    log_lik = -nll_expr(net.likelihood, at.cast(x, FLOAT64)[:, None, :], out)
    if net.likelihood == "gaussian":
        log_lik = log_lik - at.cast(x.shape[1], FLOAT64) * HALF_LOG_2PI
    return function([x, code], log_lik)


def log_weights(lm, x, rng, samples):
    """Log importance weights of ``x``'s rows: (log w (B, S), log p(x|z) (B, S),
    {diagnostic: (B,)}).

    The family draws from its exact posterior and gives log q and log p of the drawn
    variable (:meth:`~..families.base.LatentFamily.importance_sample`); the construction
    turns the draws into codes; the decoder scores them.
    """
    from ..latent import code_from_draws
    family = lm.net.latent.family
    f_post, names = lm.compiled("posterior64", lambda: _build_posterior(lm))
    f_lik = lm.compiled("log_lik64", lambda: _build_log_lik(lm))
    xb = lm.cast_x(x)
    params = dict(zip(names, f_post(xb)))
    draws, log_q, log_p = family.importance_sample(rng, params, samples)
    log_lik = f_lik(xb, code_from_draws(lm.net.latent.construction, draws))
    with np.errstate(invalid="ignore"):
        log_w = log_lik + log_p - log_q
    return log_w, log_lik, family.diagnostics(params)


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
        A VAE (``sb_vae`` with any stick-breaking family, or ``gauss_vae``).
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
    ``zero_weight_samples`` (log-weight -inf), ``inf_samples`` (log-weight +inf), the
    family's per-example diagnostics under their names (``min_a`` and ``min_b`` for the
    Kumaraswamy, ...; their names in ``diagnostic_names``), and the scalars ``samples``
    and ``seconds``.
    """
    if lm.semi:
        raise ValueError("importance sampling is implemented for the VAEs (sb_vae, gauss_vae)")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    rng = np.random.default_rng(seed)
    batch = max(1, int(rows_per_batch) // int(samples))
    names = lm.net.latent.family.diagnostic_names
    parts = {k: [] for k in ("log_px", "elbo", "log_lik", "ess", "mc_se", "nan_samples",
                             "zero_weight_samples", "inf_samples") + names}
    started = time.time()
    for start in range(0, len(x), batch):
        log_w, log_lik, diagnostics = log_weights(lm, x[start:start + batch], rng, samples)
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
        for name in names:
            parts[name].append(diagnostics[name])
        if progress is not None:
            progress.update(min(start + batch, len(x)))
    out = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    out["samples"] = int(samples)
    out["seconds"] = time.time() - started
    out["diagnostic_names"] = names
    return out


def summarize(per_example, max_listed=10):
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
    names = tuple(per_example.get("diagnostic_names", ()))
    listed = []
    for i in order[:max_listed]:
        if not outlier[i]:
            break
        listed.append({"index": int(i), "nll": _num(nll[i]),
                       **{name: _num(per_example[name][i]) for name in names},
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
