"""The reproduction report: one cell per published number, and the markdown around it.

:func:`build_cells` pairs every measured number with the published one (from
:mod:`.published`) and gives the difference and a verdict against the stated
tolerance; :func:`render_report` writes ``report.md`` from the cells, the raw results
and the run's metadata. :mod:`.reproduce` computes the numbers and calls both.
"""
import math
import os

VAE_MODELS = ("sb_vae", "gauss_vae")


def format_number(v, digits=2):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    v = float(v)
    if not math.isfinite(v):
        return str(v)
    if abs(v) >= 1e6:
        return f"{v:.3g}"
    return f"{v:.{digits}f}"


def _signed(v):
    """A difference with its sign, as :func:`format_number` writes numbers."""
    text = format_number(v)
    return text if text.startswith(("-", "n", "—")) else "+" + text


def verdict(measured, published, tolerance):
    """``agrees`` / ``better`` / ``worse`` (lower is better), or the reason there is none."""
    if measured is None:
        return "not measured"
    if published is None:
        return "no published number"
    if not math.isfinite(measured):
        return "not finite"
    diff = measured - published
    if abs(diff) <= tolerance:
        return "agrees"
    return "better (lower)" if diff < 0 else "worse (higher)"


def build_cells(results, opts):
    """One row per published cell of the requested tables, plus measured-only rows."""
    from .published import records
    cells = []
    tables = set(opts.table)

    def add(table, dataset, model, setting, measured, measured_pm, published, tolerance,
            note="", detail="", n_runs=None):
        pub_value = None if published is None else published.value
        pub_pm = None if published is None else published.pm
        if published is not None and published.pm is not None and table != "likelihood":
            tolerance = max(tolerance, 2 * published.pm)
        diff = (None if measured is None or pub_value is None or not math.isfinite(measured)
                else measured - pub_value)
        cells.append({"table": table, "dataset": dataset, "model": model, "setting": setting,
                      "published": pub_value, "published_pm": pub_pm, "measured": measured,
                      "measured_pm": measured_pm, "difference": diff, "tolerance": tolerance,
                      "verdict": verdict(measured, pub_value, tolerance), "note": note,
                      "detail": detail, "n_runs": n_runs if measured is not None else 0})

    if "likelihood" in tables:
        measured_keys = set()
        lik = results["likelihood"]
        for rec in records("likelihood"):
            s = lik.get(rec.dataset, {}).get(rec.model)
            m, pm = _likelihood_measured(s)
            measured_keys.add((rec.dataset, rec.model))
            add("likelihood", rec.dataset, rec.model, {}, m, pm, rec, opts.tolerance_nats,
                detail=_likelihood_detail(s), n_runs=_n_runs(s))
        for dataset, models in lik.items():
            for model, s in models.items():
                if (dataset, model) not in measured_keys:
                    m, pm = _likelihood_measured(s)
                    add("likelihood", dataset, model, {}, m, pm, None, opts.tolerance_nats,
                        detail=_likelihood_detail(s), n_runs=_n_runs(s))
    if "knn" in tables:
        knn = results["knn"]
        seen = set()
        for rec in records("knn"):
            k = rec.setting["k"]
            entry = knn.get(rec.dataset, {}).get(rec.model, {})
            kind = "pixels" if rec.model == "raw_pixels" else "sampled"
            m, pm = _knn_measured(entry.get(kind), k)
            seen.add((rec.dataset, rec.model, kind, k))
            add("knn", rec.dataset, rec.model, {"k": k, "codes": kind}, m, pm, rec,
                opts.tolerance_pp, n_runs=None if kind == "pixels" else _n_runs(entry.get(kind)))
        for dataset, models in knn.items():
            for model, entry in models.items():
                for kind, res in entry.items():
                    for k in sorted(int(x) for x in res["errors"]):
                        if (dataset, model, kind, k) not in seen:
                            m, pm = _knn_measured(res, k)
                            add("knn", dataset, model, {"k": k, "codes": kind}, m, pm, None,
                                opts.tolerance_pp,
                                n_runs=None if kind == "pixels" else _n_runs(res))
    if "semisup" in tables:
        ss, base = results["semisup"], results["semisup_knn_baseline"]
        seen = set()
        for rec in records("semisup"):
            pct = str(rec.setting["labels_percent"])
            if rec.model == "knn_pixels_k5":
                entry = base.get(rec.dataset, {}).get(pct)
            else:
                entry = ss.get(rec.dataset, {}).get(rec.model, {}).get(pct)
            m, pm = _semisup_measured(entry)
            seen.add((rec.dataset, rec.model, pct))
            add("semisup", rec.dataset, rec.model, {"labels_percent": int(pct)}, m, pm, rec,
                opts.tolerance_pp, n_runs=(entry or {}).get("n_runs"))
        for dataset, models in ss.items():
            for model, by_pct in models.items():
                for pct, entry in by_pct.items():
                    if (dataset, model, pct) not in seen:
                        m, pm = _semisup_measured(entry)
                        add("semisup", dataset, model, {"labels_percent": int(pct)}, m, pm,
                            None, opts.tolerance_pp, n_runs=entry.get("n_runs"))
    return cells


def _seeds(entry):
    """The per-run records of a row measured on several runs (seeds), or []."""
    runs = (entry or {}).get("per_seed") or []
    return runs if len(runs) > 1 else []


def _n_runs(entry):
    """How many runs a measured row rests on (None: not measured)."""
    if not entry:
        return None
    return max(1, len((entry or {}).get("per_seed") or []))


def _mean_sd(values):
    values = [float(v) for v in values]
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return mean, sd


def _likelihood_measured(summary):
    """(mean, ±): one run's test-set mean and its standard error, or the mean over runs
    (seeds) of their test-set means and the runs' standard deviation."""
    if summary is None:
        return None, None
    if _seeds(summary):
        return _mean_sd(r["mean_nll"] for r in _seeds(summary))
    m = summary["mean_nll"]
    m = float(m) if not isinstance(m, str) else float(m)
    se = summary["se_nll"]
    return m, (None if se is None else float(se))


def _likelihood_detail(summary):
    """The usable numbers beside a mean that outliers move: the median and the mean
    without the outliers (empty when there are none)."""
    runs = _seeds(summary)
    if runs:
        if not any(r.get("n_outliers") for r in runs):
            return ""
        median = _mean_sd(r["median_nll"] for r in runs)[0]
        clean = _mean_sd(r["mean_nll_without_outliers"] for r in runs)[0]
        return (f"mean over the runs of their medians {format_number(median)} and of their "
                f"means without outliers {format_number(clean)}; outliers per run "
                f"{', '.join(str(int(r['n_outliers'])) for r in runs)}")
    if not summary or not summary.get("n_outliers"):
        return ""
    n = int(summary["n_outliers"])
    return (f"median {format_number(summary.get('median_nll'))}; mean without the {n} "
            f"outlier{'s' if n != 1 else ''} {format_number(summary.get('mean_nll_without_outliers'))}")


def _knn_measured(res, k):
    """(error in %, ±): one run's, or the mean and standard deviation over runs (seeds)."""
    if res is None:
        return None, None

    def at_k(errors):
        v = errors.get(k, errors.get(str(k)))
        return None if v is None else 100.0 * float(v)

    runs = [at_k(r["errors"]) for r in _seeds(res)]
    if runs and None not in runs:
        return _mean_sd(runs)
    return at_k(res["errors"]), None


def _semisup_measured(entry):
    if entry is None:
        return None, None
    std = entry.get("std")
    return 100.0 * entry["mean"], (None if std is None else 100.0 * std)


# -- the report ---------------------------------------------------------------------------

def setting_text(setting):
    parts = []
    if "k" in setting:
        parts.append(f"k = {setting['k']}")
    if "codes" in setting:
        parts.append({"sampled": "sampled codes", "mean": "posterior-mean codes",
                      "pixels": "pixels"}[setting["codes"]])
    if "labels_percent" in setting:
        parts.append(f"{setting['labels_percent']} % labels")
    return ", ".join(parts)


def _runs_text(n):
    """The runs column: how many runs a number rests on; one run is marked as such."""
    if not n:
        return "—"
    return "1 (single run)" if n == 1 else str(n)


def _pm(v, pm, digits=2):
    if v is None:
        return "not measured"
    return format_number(v, digits) + (f" ± {format_number(pm, digits)}" if pm is not None else "")


def render_report(results, cells, opts, meta):
    from .published import dataset_name, model_name, paper
    from .figures import INSTALL_HINT
    lines = []
    w = lines.append
    w("# Reproduction report: measured vs published")
    w("")
    w(f"Paper: {paper()}.")
    w("")
    w(f"* date (UTC): {meta['date']}")
    w(f"* command: `{meta['command']}`")
    m = meta["machine"]
    w(f"* machine: {m['node']}, {m['cpu']}, {m['cpu_count']} cores, {m['platform']}, "
      f"Python {m['python']}; load average at start {m['load_average_at_start']} "
      f"(timings are wall times on this shared machine)")
    backend = meta.get("backend") or f"Aesara {meta.get('aesara_version')}"  # older reports
    w(f"* software: stick_breaking_dgms {meta['package_version']}, {backend}, "
      f"BLAS threads {meta['blas_threads']}"
      + (f", git commit {meta['git']['commit'][:12]}"
         + (" with local changes" if meta['git'].get('local_changes') else "")
         if meta.get("git") else ""))
    test_note = (f"the first {opts.test_subset:,} test examples" if opts.test_subset
                 else "the whole test set")
    protocols = list(getattr(opts, "protocols", None) or ["ours"])
    w(f"* evaluation: {test_note}; {opts.samples} importance samples per example; "
      f"evaluation seed {opts.seed}; likelihood protocols: {', '.join(protocols)}"
      + (f" (large S on the first {opts.large_s_subset:,} examples)"
         if "large-s" in protocols else "")
      + (f"; kNN over {opts.knn_code_draws} draws of the sampled codes"
         if "knn" in opts.table and getattr(opts, "knn_code_draws", None) else ""))
    w(f"* tolerances: -log p(x) agrees when |measured - published| <= {opts.tolerance_nats:g} "
      f"nats; error rates when |measured - published| <= {opts.tolerance_pp:g} percentage "
      f"points, or twice the published ± where that is larger. Otherwise the verdict says "
      f"whether ours is better (lower) or worse (higher).")
    w("")
    w("## Checkpoints evaluated")
    w("")
    if results["checkpoints"]:
        w("| model | data set | network | best epoch | best valid score | run status | file |")
        w("|---|---|---|---|---|---|---|")
        for c in results["checkpoints"]:
            run = c.get("run", {})
            status = run.get("status", "no metrics file")
            if status == "running":
                status = (f"**still running** ({run.get('epochs_done', '?')} epochs done; "
                          f"best parameters so far)")
            elif status == "finished" and run.get("stopped_by") == "max_epoch":
                status = (f"stopped by --max-epoch after {run.get('epochs_done', '?')} epochs "
                          f"(before early stopping)")
            elif status == "finished" and run.get("stopped_by") == "early stopping":
                status = f"finished by early stopping ({run.get('epochs_done', '?')} epochs)"
            extra = (f", {c['labels_percent']} % labels" if "labels_percent" in c else "")
            score = c.get("best_valid_score")
            w(f"| {model_name(c.get('name', c['model']))}{extra} | {dataset_name(c['dataset'])} | "
              f"{c['hidden']}, latent {c['latent_size']} | {c.get('best_epoch')} | "
              f"{format_number(score, 4) if score is not None else '—'} | {status} | "
              f"`{os.path.basename(c['path'])}` |")
    else:
        w("None.")
    w("")
    w("## Measured vs published")
    for table, title, unit in (("likelihood", "Marginal likelihood: test -log p(x)", "nats"),
                               ("knn", "kNN test error on latent codes", "%"),
                               ("semisup", "Semi-supervised test error", "%")):
        rows = [c for c in cells if c["table"] == table]
        if table not in opts.table:
            continue
        w("")
        w(f"### {title} ({unit}, lower is better)")
        w("")
        if table == "likelihood":
            w(f"Importance sampling with S = {opts.samples}; measured ± is the standard error "
              f"of the test-set mean for a single run, the standard deviation over the runs "
              f"(seeds) where a row rests on several (the runs column). The mean is over every "
              f"example (outliers included; see the diagnostics below, which are those of "
              f"the row's first run).")
        elif table == "knn":
            w("The paper's protocol classifies sampled latent codes; posterior-mean codes are "
              "measured besides (no published number). Where a row rests on several runs "
              "(seeds), ± is their standard deviation. Ties: equal distances go to the lower "
              "training index; equal votes to the tied label with the best-ranked neighbour.")
        else:
            w("Test error of argmax q(y | x) with the best validation parameters; ± is the "
              "standard deviation over runs (none for a single run). The kNN (k = 5) baseline "
              f"classifies pixels with the labelled fraction of the training set only "
              f"({opts.knn_draws} label draws on the data split of each seed evaluated; ± "
              f"is over all of them).")
        w("")
        w(f"| model | data set | setting | published ({unit}) | measured ({unit}) | runs | "
          f"difference ({unit}) | verdict |")
        w("|---|---|---|---|---|---|---|---|")
        for c in rows:
            note = f" ({c['note']})" if c["note"] and c["measured"] is None else ""
            published = ("—" if c["published"] is None
                         else _pm(c["published"], c["published_pm"]))
            diff = "—" if c["difference"] is None else _signed(c["difference"])
            detail = f" ({c['detail']})" if c.get("detail") else ""
            w(f"| {model_name(c['model'])} | {dataset_name(c['dataset'])} | "
              f"{setting_text(c['setting']) or '—'} | {published} | "
              f"{_pm(c['measured'], c['measured_pm'])}{note}{detail} | "
              f"{_runs_text(c.get('n_runs'))} | {diff} | {c['verdict']} |")
    _protocol_sections(w, results, opts)
    lik = results["likelihood"]
    if lik:
        w("")
        w("## Importance-sampling diagnostics")
        w("")
        w("Outliers: examples with -log p(x) above Q3 + 3 IQR of the test set, or not finite. "
          "They stay in the reported mean; the mean without them is shown beside it. "
          "NaN samples are left out of an example's sum (and counted here); zero-weight "
          "(log w = -inf) and infinite-weight (log w = +inf) samples are counted; an example "
          "whose estimate is not finite is counted and left out of the 'finite' mean only.")
        w("")
        w("| model | data set | n | mean ± SE | mean of finite | median | outliers | "
          "mean without outliers | MC ELBO ± SE | ELBO <= IS | NaN samples | zero-weight "
          "samples | infinite-weight samples | mean ESS | time |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for dataset, models in lik.items():
            for model, s in models.items():
                w(f"| {model_name(model)} | {dataset_name(dataset)} | {s['n']:,} | "
                  f"{format_number(s['mean_nll'])} ± {format_number(s['se_nll'])} | "
                  f"{format_number(s['mean_nll_finite'])} ({s['n_finite']:,} finite) | "
                  f"{format_number(s['median_nll'])} | {s['n_outliers']} | "
                  f"{format_number(s['mean_nll_without_outliers'])} | "
                  f"{format_number(_negated(s['mean_elbo']))} ± {format_number(s['se_elbo'])} | "
                  f"{_yesno(s.get('elbo_below_is'))} | "
                  f"{s['nan_samples']} | {s['zero_weight_samples']} | "
                  f"{s.get('inf_samples', 0)} | {format_number(s['mean_ess'], 1)} | "
                  f"{format_number(s['seconds'], 1)} s |")
        w("")
        w("(The MC ELBO column is the negative ELBO, -mean_s log w, from the same draws.)")
        for dataset, models in lik.items():
            for model, s in models.items():
                if s["outliers"]:
                    w("")
                    w(f"Worst outliers of {model_name(model)} on {dataset_name(dataset)} "
                      f"(test index, -log p(x), smallest posterior parameters):")
                    w("")
                    for o in s["outliers"]:
                        params = ", ".join(f"{k} {_short(v)}" for k, v in o.items()
                                           if k not in ("index", "nll", "nan_samples"))
                        w(f"* #{o['index']}: {format_number(o['nll'])} ({params}; "
                          f"{o['nan_samples']} NaN samples)")
    usage = results["active_dimensions"]
    if usage:
        w("")
        w("## Active dimensions (SB-VAE)")
        w("")
        w("Sticks needed to cover 99 % of the stick (a stick counts while the remaining stick "
          "before it exceeds 0.01), on the test set.")
        w("")
        w("| model | data set | codes | mean | median | min–max | per class (mean) |")
        w("|---|---|---|---|---|---|---|")
        for dataset, models in usage.items():
            for model, u in models.items():
                for kind in ("mean", "sampled"):
                    s = u[kind]
                    per = ", ".join(f"{k}: {v:.1f}" for k, v in s.get("per_class", {}).items())
                    extra = ""
                    if "rotated" in s:
                        extra = f"; rotated {s['rotated']:.1f}, upright {s['upright']:.1f}"
                    w(f"| {model_name(model)} | {dataset_name(dataset)} | "
                      f"{'posterior mean' if kind == 'mean' else 'sampled'} | "
                      f"{format_number(s['mean'])} | {format_number(s['median'], 1)} | {s['min']}–{s['max']} | "
                      f"{per}{extra} |")
        w("")
        w("The paper's numbers (MNIST+rot; it does not say which codes it counted):")
        w("")
        w("| data set | digits | published | measured, posterior mean | measured, sampled | "
          "difference (mean codes) |")
        w("|---|---|---|---|---|---|")
        from .published import records
        for rec in records("active_dimensions"):
            subset = rec.setting.get("subset")
            u = usage.get(rec.dataset, {}).get(rec.model)
            got = [u[k].get(subset) if u else None for k in ("mean", "sampled")]
            diff = "—" if got[0] is None else f"{got[0] - rec.value:+.2f}"
            w(f"| {dataset_name(rec.dataset)} | {subset} | {format_number(rec.value, 1)} | "
              f"{_pm(got[0], None)} | {_pm(got[1], None)} | {diff} |")
    figs = results["figures"]
    w("")
    w("## Figures")
    w("")
    if isinstance(figs, dict) and "skipped" in figs:
        w(f"Not made: {figs['skipped']}. Install matplotlib ({INSTALL_HINT}) and run the "
          f"command again to get them.")
    elif not figs:
        w("None (no VAE checkpoint, or --no-figures).")
    else:
        for key, rel in figs.items():
            w(f"* {key}: [`{rel}`]({rel}) ([PDF]({os.path.splitext(rel)[0]}.pdf))")
        for key, rel in figs.items():
            w("")
            w(f"![{key}]({rel})")
    w("")
    w("## Wall times")
    w("")
    w("| step | seconds |")
    w("|---|---|")
    for key, sec in results["timings"].items():
        w(f"| {key} | {sec:.1f} |")
    if results["notes"]:
        w("")
        w("## Notes")
        w("")
        for n in results["notes"]:
            w(f"* {n}")
    w("")
    w("All numbers are in `results.json` beside this file; per-example values (log p(x) "
      "estimates and their Monte Carlo errors, active dimensions, predicted labels, in test "
      "order) in `per_example.npz`.")
    return "\n".join(lines) + "\n"


def _protocol_sections(w, results, opts):
    """The likelihood protocols (when more than ``ours`` ran) and the kNN over several code
    draws, for the same checkpoints, side by side."""
    from .published import dataset_name, model_name
    protocols = results.get("likelihood_protocols") or {}
    shown = {d: m for d, m in protocols.items()
             if any(len(c["rows"]) > 1 for cs in m.values() for c in cs)}
    draws = results.get("knn_code_draws") or {}
    if not shown and not draws:
        return
    w("")
    w("## Evaluation protocols side by side")
    if shown:
        w("")
        w("### Likelihood: test -log p(x) under each protocol (nats)")
        w("")
        w("The paper's protocol was never published. `ours`: S importance samples from the "
          "exact posterior, every example kept. `author`: the first author's later code, "
          "S = 50, u in (1e-8, 1 - 1e-8), every sample sweep (one draw for all examples) "
          "whose mean over the examples is not finite dropped (counted here). "
          "`training sampler`: the training sampler's draws (u ~ U(0.01, 0.99) for the "
          "Kumaraswamy, Knowles' draws for the Gamma) scored with the plain density, "
          "**biased** where that sampler is not exact. `large S`: the same estimator with "
          "more samples; -log p(x) falls towards its true value as S grows, so the gap to "
          "the S = 100 row of the same examples is the bias of S = 100. Outliers: "
          "-log p(x) > Q3 + 3 IQR, or not finite; ESS: the mean effective sample size.")
        w("")
        w("| model | data set | protocol | seed | examples | mean ± SE | median | outliers | "
          "mean without outliers | mean ESS | dropped | time | note |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for dataset, models in shown.items():
            for model, checkpoints in models.items():
                for c in checkpoints:
                    for r in c["rows"]:
                        note = ("**biased**: " + r["note"]) if r.get("biased") else r["note"]
                        dropped = (f"{r['dropped']} of {r['samples']} sweeps"
                                   if r["dropped_unit"] == "sweeps"
                                   else f"{r['dropped']} examples")
                        w(f"| {model_name(model)} | {dataset_name(dataset)} | {r['label']} | "
                          f"{c['seed']} | {r['n']:,} | {format_number(r['mean_nll'])} ± "
                          f"{format_number(r['se_nll'])} | {format_number(r['median_nll'])} | "
                          f"{r['n_outliers']} | "
                          f"{format_number(r['mean_nll_without_outliers'])} | "
                          f"{format_number(r['mean_ess'], 1)} of {r['samples']:,} | "
                          f"{dropped} | {format_number(r['seconds'], 1)} s | {note or '—'} |")
    if draws:
        w("")
        w("### kNN test error over independent code draws (%)")
        w("")
        w("Each sampled-code row is the mean ± the standard deviation over independent draws "
          "of every training and test code (minimum–maximum in brackets). Training sampler: "
          "the model's own sampler (u ~ U(0.01, 0.99) for the Kumaraswamy); its draw 1 is "
          "the codes of the 'sampled codes' row above, the paper's one-draw protocol. Exact "
          "posterior: the full Kumaraswamy (u uniform on (0, 1)). Posterior mean: "
          "deterministic, one value.")
        w("")
        ks = sorted({int(k) for models in draws.values() for cs in models.values()
                     for c in cs for k in c["training_sampler"]["mean"]})
        w("| model | data set | codes | seed | draws | "
          + " | ".join(f"k = {k}" for k in ks) + " |")
        w("|---|---|---|---|---|" + "---|" * len(ks))
        for dataset, models in draws.items():
            for model, checkpoints in models.items():
                for c in checkpoints:
                    for key, label in (("training_sampler", "training sampler (draw 1: the "
                                                            "paper's one-draw protocol)"),
                                       ("exact_posterior", "exact posterior")):
                        r = c[key]
                        cells = [_draws_cell(r, k) for k in ks]
                        w(f"| {model_name(model)} | {dataset_name(dataset)} | {label} | "
                          f"{c['seed']} | {r['draws']} | " + " | ".join(cells) + " |")
                    errors = c["posterior_mean"]["errors"]
                    cells = ["—" if _at_k(errors, k) is None
                             else format_number(100 * float(_at_k(errors, k))) for k in ks]
                    w(f"| {model_name(model)} | {dataset_name(dataset)} | posterior mean "
                      f"(deterministic) | {c['seed']} | 1 | " + " | ".join(cells) + " |")


def _draws_cell(r, k):
    """``mean ± sd (min–max)`` in % at one k, from
    :func:`..evaluation.knn.knn_errors_over_draws` (keys are strings after JSON)."""
    def get(d):
        return _at_k(d, k)
    mean, sd = get(r["mean"]), get(r["std"])
    if mean is None:
        return "—"
    text = format_number(100 * float(mean))
    if sd is not None:
        text += f" ± {format_number(100 * float(sd))}"
    return text + (f" ({format_number(100 * float(get(r['min'])))}–"
                   f"{format_number(100 * float(get(r['max'])))})")


def _at_k(values, k):
    """``values[k]`` of a {k: value} dict whose keys may be ints or strings, or None."""
    if not isinstance(values, dict):
        return None
    return values.get(str(k), values.get(k))


def _negated(v):
    if isinstance(v, str):
        return {"inf": "-inf", "-inf": "inf"}.get(v, v)
    return None if v is None else -float(v)


def _short(v):
    return v if isinstance(v, str) else f"{float(v):.3g}"


def _yesno(v):
    return "—" if v is None else ("yes" if v else "**no**")
