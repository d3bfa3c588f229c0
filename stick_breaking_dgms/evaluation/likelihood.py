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

Evaluation protocols
--------------------
The paper's protocol was never published; :func:`protocol_runs` names the ones compared
side by side on the same checkpoint (:func:`evaluate_protocol`, :func:`protocol_row`):

``ours``
    S = 100, the exact posterior, every example and every sample kept (the above).
``author``
    The first author's later code (``calc_margLikelihood``): S = 50, the uniforms of
    the draw from U(1e-8, 1 - 1e-8), and every *sample sweep* whose mean is not finite
    dropped. A sweep is one importance sample drawn for every evaluated example (column
    s of the (N, S) log-weights); its mean is over the N examples, so one example's NaN
    or infinite log-weight drops draw s for all of them. The estimate of each example is
    then the log-mean-exp over the kept sweeps, divided by their number
    (:func:`author_sweeps`); the number dropped is reported.
``training-sampler``
    The training sampler's draws (u ~ U(0.01, 0.99) for the Kumaraswamy, Knowles' draws
    for the Gamma) scored with the plain densities: biased where that sampler is not
    exact (:attr:`~..families.base.LatentFamily.training_sampler_exact`).
``large-s``
    S = 100, 1,000 and 5,000 on the first ``large_s_subset`` examples, and S = 1,000 on
    all of them: :math:`E[\log\hat p_S(x)]` increases with S towards log p(x) (Jensen),
    so the gap between the rows measures the bias of S = 100.
"""
import dataclasses
import math
import time

import numpy as np

from .loading import FLOAT64

DEFAULT_SAMPLES = 100
OUTLIER_IQR = 3.0  # Tukey's "far out" fence
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)

PROTOCOLS = ("ours", "author", "training-sampler", "large-s")
SAMPLERS = ("exact", "author", "training")
AUTHOR_SAMPLES = 50
AUTHOR_UNIFORM = (1e-8, 1.0 - 1e-8)
LARGE_SAMPLES = (1000, 5000)
LARGE_FULL_SAMPLES = 1000
DEFAULT_LARGE_S_SUBSET = 1000


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


def _check_sampler(sampler):
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    return sampler


def draw_latents(family, rng, params, samples, sampler="exact"):
    """The family's draws and their plain log densities, ``(draws, log_q, log_p)``.

    ``sampler``: ``"exact"`` (:meth:`~..families.base.LatentFamily.importance_sample`),
    ``"author"`` (the same with the uniforms from :data:`AUTHOR_UNIFORM`) or
    ``"training"`` (:meth:`~..families.base.LatentFamily.training_sample`, biased where
    the training sampler is not exact).
    """
    _check_sampler(sampler)
    if sampler == "training":
        return family.training_sample(rng, params, samples)
    return family.importance_sample(rng, params, samples,
                                    uniform=AUTHOR_UNIFORM if sampler == "author" else None)


def log_weights(lm, x, rng, samples, sampler="exact"):
    """Log importance weights of ``x``'s rows: (log w (B, S), log p(x|z) (B, S),
    {diagnostic: (B,)}).

    The family draws from its exact posterior (or the ``sampler`` of
    :func:`draw_latents`) and gives log q and log p of the drawn variable
    (:meth:`~..families.base.LatentFamily.importance_sample`); the construction turns
    the draws into codes; the decoder scores them.
    """
    from ..latent import code_from_draws
    family = lm.net.latent.family
    f_post, names = lm.posterior_function()
    f_lik = lm.compiled("log_lik64", lambda: _build_log_lik(lm))
    xb = lm.cast_x(x)
    params = dict(zip(names, f_post(xb)))
    draws, log_q, log_p = draw_latents(family, rng, params, samples, sampler)
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


def author_sweeps(log_w):
    r"""Which sample sweeps the ``author`` protocol keeps: a boolean mask over the S columns.

    Column s of ``log_w`` (N, S) is one sweep, importance sample s of every example; it
    is kept when its mean over the N examples is finite (neither NaN nor :math:`\pm\infty`),
    exactly as ``calc_margLikelihood`` tests ``samples.mean()``.
    """
    log_w = np.asarray(log_w, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        means = np.mean(log_w, axis=0)
    return np.isfinite(means)


def _per_example(log_w, log_lik):
    """The per-example numbers of one batch (or of all examples) of log-weights."""
    if log_w.shape[1] == 0:  # every sweep dropped: no estimate (the original returns NaN)
        nan, zero = np.full(len(log_w), np.nan), np.zeros(len(log_w), dtype=np.int64)
        return {"log_px": nan, "elbo": nan, "log_lik": nan, "ess": nan, "mc_se": nan,
                "nan_samples": zero, "zero_weight_samples": zero, "inf_samples": zero}
    est, n_nan, n_ninf, n_pinf = log_mean_exp(log_w)
    with np.errstate(invalid="ignore"):
        finite = np.where(np.isnan(log_w), np.nan, log_w)
        elbo = np.nanmean(finite, axis=1) if finite.size else finite
    return {"log_px": est, "elbo": elbo, "log_lik": np.mean(log_lik, axis=1),
            "ess": effective_sample_size(log_w), "mc_se": monte_carlo_se(log_w),
            "nan_samples": n_nan, "zero_weight_samples": n_ninf, "inf_samples": n_pinf}


def importance_sampled_log_likelihood(lm, x, samples=DEFAULT_SAMPLES, seed=1234,
                                      rows_per_batch=4000, progress=None, sampler="exact",
                                      drop_nonfinite_sweeps=False):
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
    sampler : {"exact", "author", "training"}
        The draws (:func:`draw_latents`); ``"exact"`` unless a protocol says otherwise.
    drop_nonfinite_sweeps : bool
        The ``author`` protocol: drop every sample sweep (column of the (N, S)
        log-weights over all of ``x``) whose mean over the examples is not finite
        (:func:`author_sweeps`), and estimate from the kept ones. The log-weights of all
        examples are then held until the end (N x S floats).

    Returns a dict of per-example arrays: ``log_px`` (the estimate), ``elbo`` (the mean
    log-weight, a Monte Carlo ELBO with the same draws), ``log_lik`` (mean reconstruction
    log-likelihood), ``ess`` (effective sample size), ``mc_se`` (the estimate's
    Monte Carlo standard error, :func:`monte_carlo_se`), ``nan_samples``,
    ``zero_weight_samples`` (log-weight -inf), ``inf_samples`` (log-weight +inf), the
    family's per-example diagnostics under their names (``min_a`` and ``min_b`` for the
    Kumaraswamy, ...; their names in ``diagnostic_names``), and the scalars ``samples``,
    ``seconds``, ``sampler``, ``dropped_sweeps`` (0 unless sweeps are dropped) and
    ``kept_sweeps`` (a boolean mask over the S sweeps, all True unless dropped).
    """
    if lm.semi:
        raise ValueError("importance sampling is implemented for the VAEs (sb_vae, gauss_vae)")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    _check_sampler(sampler)
    rng = np.random.default_rng(seed)
    batch = max(1, int(rows_per_batch) // int(samples))
    names = lm.net.latent.family.diagnostic_names
    keys = ("log_px", "elbo", "log_lik", "ess", "mc_se", "nan_samples",
            "zero_weight_samples", "inf_samples")
    parts = {k: [] for k in keys + names}
    held = {"log_w": [], "log_lik": []}  # all examples' weights, to drop whole sweeps
    started = time.time()
    for start in range(0, len(x), batch):
        log_w, log_lik, diagnostics = log_weights(lm, x[start:start + batch], rng, samples,
                                                  sampler)
        if drop_nonfinite_sweeps:
            held["log_w"].append(log_w)
            held["log_lik"].append(log_lik)
        else:
            for k, v in _per_example(log_w, log_lik).items():
                parts[k].append(v)
        for name in names:
            parts[name].append(diagnostics[name])
        if progress is not None:
            progress.update(min(start + batch, len(x)))
    kept = np.ones(int(samples), dtype=bool)
    if drop_nonfinite_sweeps and held["log_w"]:
        log_w = np.concatenate(held["log_w"])
        kept = author_sweeps(log_w)
        for k, v in _per_example(log_w[:, kept],
                                 np.concatenate(held["log_lik"])[:, kept]).items():
            parts[k].append(v)
    out = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    out["samples"] = int(samples)
    out["seconds"] = time.time() - started
    out["diagnostic_names"] = names
    out["sampler"] = sampler
    out["kept_sweeps"] = kept
    out["dropped_sweeps"] = int(np.sum(~kept))
    return out


@dataclasses.dataclass(frozen=True)
class ProtocolRun:
    """One row of the protocol comparison: how log p(x) is estimated.

    Attributes
    ----------
    protocol : str
        The protocol it belongs to, one of :data:`PROTOCOLS`.
    key : str
        A short unique name of the row (``"ours"``, ``"large-s/S=5000/subset"``, ...).
    samples : int
        S, importance samples per example.
    sampler : str
        The draws, one of :data:`SAMPLERS` (:func:`draw_latents`).
    drop_nonfinite_sweeps : bool
        Whether non-finite sample sweeps are dropped (the ``author`` protocol).
    subset : int or None
        The first ``subset`` examples only; None: all of them.
    """
    protocol: str
    key: str
    samples: int
    sampler: str = "exact"
    drop_nonfinite_sweeps: bool = False
    subset: int = None

    def describe(self, n=None):
        """The row's label in the report; ``n``: the examples evaluated (fewer than
        ``subset`` when the set is smaller)."""
        subset = self.subset if n is None or self.subset is None else min(self.subset, n)
        where = "all examples" if subset is None else f"first {subset:,} examples"
        if self.protocol == "author":
            return (f"author: S = {self.samples}, u in (1e-8, 1 - 1e-8), non-finite sweeps "
                    f"dropped")
        if self.protocol == "training-sampler":
            return f"training sampler, plain density: S = {self.samples}"
        if self.protocol == "large-s":
            return f"large S: S = {self.samples:,}, {where}"
        return f"ours: S = {self.samples}, exact posterior"


def protocol_runs(protocols, samples=DEFAULT_SAMPLES, large_s_subset=DEFAULT_LARGE_S_SUBSET):
    """The rows of the protocols named in ``protocols`` (a subset of :data:`PROTOCOLS`).

    ``samples`` is the S of ``ours`` and ``training-sampler`` (the same S, so that the two
    differ only in the sampler) and of the large-S comparison's baseline row;
    ``author`` uses S = :data:`AUTHOR_SAMPLES`. ``large-s`` gives S = ``samples``, 1,000
    and 5,000 on the first ``large_s_subset`` examples and S = 1,000 on all of them.
    Rows come in the order of :data:`PROTOCOLS`, whatever the order asked.
    """
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise ValueError(f"unknown evaluation protocol {unknown[0]!r}; expected some of "
                         f"{', '.join(PROTOCOLS)}")
    if int(samples) < 1:
        raise ValueError(f"samples must be >= 1, got {samples!r}")
    if int(large_s_subset) < 1:
        raise ValueError(f"large_s_subset must be >= 1, got {large_s_subset!r}")
    samples, subset = int(samples), int(large_s_subset)
    runs = []
    if "ours" in protocols:
        runs.append(ProtocolRun("ours", "ours", samples))
    if "author" in protocols:
        runs.append(ProtocolRun("author", "author", AUTHOR_SAMPLES, "author", True))
    if "training-sampler" in protocols:
        runs.append(ProtocolRun("training-sampler", "training-sampler", samples, "training"))
    if "large-s" in protocols:
        for s in sorted({samples, *LARGE_SAMPLES}):  # S = --samples as the baseline
            runs.append(ProtocolRun("large-s", f"large-s/S={s}/subset", s, subset=subset))
        runs.append(ProtocolRun("large-s", f"large-s/S={LARGE_FULL_SAMPLES}/all",
                                LARGE_FULL_SAMPLES))
    return runs


def evaluate_protocol(lm, x, run, seed=1234, rows_per_batch=4000, progress=None):
    """:func:`importance_sampled_log_likelihood` of ``x`` (its first ``run.subset`` rows)
    under the protocol row ``run`` (:class:`ProtocolRun`)."""
    xs = x if run.subset is None else x[:run.subset]
    return importance_sampled_log_likelihood(
        lm, xs, samples=run.samples, seed=seed, rows_per_batch=rows_per_batch,
        progress=progress, sampler=run.sampler,
        drop_nonfinite_sweeps=run.drop_nonfinite_sweeps)


def protocol_row(per_example, run, family=None):
    """A protocol's row of the comparison, from its per-example output.

    Returns a JSON-able dict: ``protocol``, ``key``, ``label``, ``samples``, ``sampler``,
    ``n`` (examples), ``mean_nll``, ``se_nll``, ``median_nll``, ``n_outliers``,
    ``mean_nll_without_outliers``, ``mean_ess``, ``mean_mc_se``, ``dropped`` with
    ``dropped_unit`` (``"sweeps"`` of ``samples`` for the ``author`` protocol,
    ``"examples"`` otherwise: every example is kept, so 0), ``n_nonfinite``,
    ``seconds``, and ``biased`` (True for the training sampler where it is not exact,
    per ``family.training_sampler_exact``) with ``note``.
    """
    s = summarize(per_example, max_listed=0)
    biased = bool(run.sampler == "training" and family is not None
                  and not family.training_sampler_exact)
    if run.sampler == "training":
        note = ("draws of the training sampler scored with the plain density"
                if biased else "the training sampler is exact for this posterior: unbiased")
    elif run.drop_nonfinite_sweeps:
        note = "the original drops such sweeps silently"
    else:
        note = ""
    mc = np.asarray(per_example["mc_se"], dtype=np.float64)
    mc = mc[np.isfinite(mc)]
    return {"protocol": run.protocol, "key": run.key, "label": run.describe(s["n"]),
            "samples": run.samples, "sampler": run.sampler, "subset": run.subset,
            "n": s["n"], "mean_nll": s["mean_nll"], "se_nll": s["se_nll"],
            "median_nll": s["median_nll"], "n_outliers": s["n_outliers"],
            "mean_nll_without_outliers": s["mean_nll_without_outliers"],
            "mean_ess": s["mean_ess"], "mean_mc_se": _num(np.mean(mc)) if len(mc) else None,
            "dropped": int(per_example.get("dropped_sweeps", 0))
            if run.drop_nonfinite_sweeps else 0,
            "dropped_unit": "sweeps" if run.drop_nonfinite_sweeps else "examples",
            "n_nonfinite": s["n_nonfinite"], "seconds": s["seconds"],
            "biased": biased, "note": note}


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
