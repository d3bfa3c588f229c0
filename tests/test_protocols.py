"""Evaluation protocols side by side: each one against a direct NumPy computation on a tiny
model, the author protocol's dropped sweeps, the large-S estimates, the kNN over several
code draws, and a reproduce run that reports them."""
import json
import math
import os

import numpy as np
import pytest
from scipy.special import logsumexp

from stick_breaking_dgms.evaluation import likelihood as lik
from stick_breaking_dgms.evaluation.knn import knn_errors, knn_errors_over_draws

D, H, K, ALPHA0 = 12, 8, 5, 5.0


def _softplus(t):
    return np.logaddexp(0.0, t)


def _inv_softplus(y):
    return np.log(np.expm1(y))


def _tiny_model(model="sb_vae", floatX="float64", family="kumaraswamy", data=None):
    """A model from ``factory.build_model`` with small sizes, no training. For the SB-VAE
    the posterior is moved to a <= 1, b <= alpha0 (tails at least as heavy as the prior's,
    so the weights p / q are bounded and the Monte Carlo errors meaningful), and the
    decoder made to depend on the code."""
    from stick_breaking_dgms.backend import floatX_as
    from stick_breaking_dgms.config import (DataConfig, ExperimentConfig, LatentConfig,
                                            NetworkConfig)
    from stick_breaking_dgms.evaluation.loading import LoadedModel
    from stick_breaking_dgms.factory import build_model
    config = ExperimentConfig(model, network=NetworkConfig(hidden_size=H),
                              latent=LatentConfig(family, size=K if family != "gaussian"
                                                  else K - 1, alpha0=ALPHA0),
                              floatX=floatX,
                              **({"data": DataConfig(dataset=data)} if data else {}))
    with floatX_as(floatX):
        net = build_model(config, D, "bernoulli")
    if model == "sb_vae" and family == "kumaraswamy":
        rng = np.random.default_rng(7)

        def put(name, value):
            var = net.params[name]
            var.set_value(np.asarray(value, dtype=var.dtype))
        put("encoder/0/W", 0.3 * rng.standard_normal((D, H)))
        put("encoder/0/b", np.ones(H))
        put("latent/W_a", _inv_softplus(0.8) / H + 0.05 * rng.standard_normal((H, K - 1)))
        put("latent/W_b", _inv_softplus(3.0) / H + 0.05 * rng.standard_normal((H, K - 1)))
        put("decoder/0/W", 2.0 * rng.standard_normal((K, H)))
        put("decoder/1/W", 1.0 * rng.standard_normal((H, D)))
    return LoadedModel(None, net, model, floatX, config), config, net


@pytest.fixture(scope="module")
def tiny():
    lm, _, net = _tiny_model()
    x = np.random.default_rng(0).random((16, D))
    p = {n: np.asarray(v.get_value(), dtype=np.float64) for n, v in net.params.items()}
    return lm, x, p


def _direct_log_w(p, x, u):
    """log w (N, S) of the SB-VAE by the plain formulas, from the uniforms u (N, S, K-1)."""
    h = np.maximum(x @ p["encoder/0/W"] + p["encoder/0/b"], 0.0)
    a = _softplus(h @ p["latent/W_a"])[:, None, :]
    b = _softplus(h @ p["latent/W_b"])[:, None, :]
    v = (1.0 - u ** (1.0 / b)) ** (1.0 / a)
    log_q = np.sum(np.log(a * b) + (a - 1) * np.log(v) + (b - 1) * np.log(1 - v ** a), -1)
    log_p = np.sum(np.log(ALPHA0) + (ALPHA0 - 1) * np.log(1 - v), -1)
    rest = np.cumprod(np.concatenate([np.ones(v.shape[:-1] + (1,)), 1 - v], -1), -1)
    pi = np.concatenate([v, np.ones(v.shape[:-1] + (1,))], -1) * rest
    hid = np.maximum(pi @ p["decoder/0/W"] + p["decoder/0/b"], 0.0)
    logits = hid @ p["decoder/1/W"] + p["decoder/1/b"]
    log_lik = np.sum(x[:, None, :] * logits - np.logaddexp(0.0, logits), -1)
    return log_lik + log_p - log_q


def _lme(log_w):
    return logsumexp(log_w, axis=1) - math.log(log_w.shape[1])


# -- each protocol against a direct computation ----------------------------------------------

@pytest.mark.parametrize("protocol", ["ours", "author", "training-sampler"])
def test_each_protocol_matches_a_direct_numpy_computation(tiny, protocol):
    lm, x, p = tiny
    (run,) = lik.protocol_runs([protocol], samples=40)
    per = lik.evaluate_protocol(lm, x, run, seed=11, rows_per_batch=10 ** 6)  # one batch
    rng = np.random.default_rng(11)
    size = (len(x), run.samples, K - 1)
    u = {"ours": lambda: rng.random(size) + 2.0 ** -54,
         "author": lambda: rng.uniform(1e-8, 1 - 1e-8, size),
         "training-sampler": lambda: rng.uniform(0.01, 0.99, size)}[protocol]()
    log_w = _direct_log_w(p, x, u)
    assert run.samples == (50 if protocol == "author" else 40)
    np.testing.assert_allclose(per["log_px"], _lme(log_w), rtol=0, atol=1e-9)
    np.testing.assert_allclose(per["elbo"], log_w.mean(axis=1), rtol=0, atol=1e-9)
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    np.testing.assert_allclose(per["ess"], w.sum(1) ** 2 / (w ** 2).sum(1), rtol=1e-9)
    row = lik.protocol_row(per, run, lm.family)
    nll = -_lme(log_w)
    assert row["mean_nll"] == pytest.approx(nll.mean(), abs=1e-9)
    assert row["median_nll"] == pytest.approx(np.median(nll), abs=1e-9)
    assert row["n"] == len(x) and row["dropped"] == 0 and row["n_outliers"] == 0
    assert row["dropped_unit"] == ("sweeps" if protocol == "author" else "examples")
    assert row["biased"] is (protocol == "training-sampler")  # the Kumaraswamy's is cut


def test_the_training_sampler_is_biased_and_the_exact_one_is_not():
    """A zero decoder makes p(x | z) = 2^-D for every z, so p(x) = 2^-D exactly and the
    estimate is log mean_s p(v_s) / q(v_s): its mean over many draws is E[w] = 1 for the
    exact sampler, but not for the training sampler's U(0.01, 0.99) scored with the
    plain density (E[w] = 0.98 of the mass, times the ratio in the middle)."""
    from stick_breaking_dgms.families import Kumaraswamy
    fam = Kumaraswamy(3, 4, np.random.default_rng(0), alpha0=ALPHA0)
    a, b = np.full((200, 4), 0.8), np.full((200, 4), 3.0)
    means = {}
    for sampler in ("exact", "training"):
        _, log_q, log_p = lik.draw_latents(fam, np.random.default_rng(1), {"a": a, "b": b},
                                           500, sampler)
        w = np.exp(log_p - log_q)
        means[sampler] = (w.mean(), w.std() / math.sqrt(w.size))
    m, se = means["exact"]
    assert abs(m - 1.0) < 4 * se
    m, se = means["training"]
    assert abs(m - 1.0) > 8 * se


def test_gamma_training_sample_is_knowles_draws_scored_with_the_beta_density():
    from scipy import stats
    from scipy.special import gamma as gamma_fn

    from stick_breaking_dgms.families import Gamma
    fam = Gamma(3, 4, np.random.default_rng(0), alpha0=ALPHA0)
    rng = np.random.default_rng(2)
    alpha, beta = 0.3 + rng.random((6, 4)), 0.5 + rng.random((6, 4))
    draws, log_q, log_p = fam.training_sample(np.random.default_rng(3),
                                              {"alpha": alpha, "beta": beta}, 7)
    u = np.random.default_rng(3).uniform(0.01, 0.99, size=(6, 7, 2, 4))
    al, be = alpha[:, None, :], beta[:, None, :]
    xg = (u[:, :, 0] * al * gamma_fn(al)) ** (1 / al)
    yg = (u[:, :, 1] * be * gamma_fn(be)) ** (1 / be)
    v = xg / (xg + yg)
    np.testing.assert_allclose(np.exp(draws["log_v"]), v, rtol=1e-10)
    np.testing.assert_allclose(log_q, stats.beta.logpdf(v, al, be).sum(-1), rtol=1e-9)
    np.testing.assert_allclose(log_p, stats.beta.logpdf(v, 1, ALPHA0).sum(-1), rtol=1e-9)
    assert not fam.training_sampler_exact
    with pytest.raises(ValueError, match="0 < low < high < 1"):
        fam.importance_sample(rng, {"alpha": alpha, "beta": beta}, 2, uniform=(0.0, 1.0))


# -- the author protocol's sample sweeps -------------------------------------------------------

def test_author_sweeps_are_kept_by_the_finiteness_of_their_mean():
    log_w = np.zeros((3, 5))
    log_w[1, 1] = np.nan
    log_w[0, 3] = -np.inf
    log_w[2, 4] = np.inf
    log_w[:, 2] = 1e300  # a mean that overflows is finite: only a non-finite mean drops
    assert lik.author_sweeps(log_w).tolist() == [True, False, True, False, False]


def test_a_non_finite_sweep_is_dropped_for_every_example_and_counted(tiny, monkeypatch):
    """Two sweeps are spoiled in one example each (a NaN and a zero weight): the author
    protocol drops those two sweeps for every example and averages the 48 others; ours
    keeps both (the zero weight is a legitimate term, the NaN is counted)."""
    lm, x, _ = tiny
    family = lm.net.latent.family
    original = family.importance_sample

    def spoiled(rng, params, samples, uniform=None):
        draws, log_q, log_p = original(rng, params, samples, uniform=uniform)
        log_p = log_p.copy()
        log_p[2, 7] = np.nan
        log_p[5, 30] = -np.inf
        return draws, log_q, log_p

    monkeypatch.setattr(family, "importance_sample", spoiled)
    (run,) = lik.protocol_runs(["author"])
    per = lik.evaluate_protocol(lm, x, run, seed=5, rows_per_batch=10 ** 6)
    log_w, _, _ = lik.log_weights(lm, x, np.random.default_rng(5), 50, "author")
    keep = np.ones(50, bool)
    keep[[7, 30]] = False
    assert per["dropped_sweeps"] == 2 and per["kept_sweeps"].tolist() == keep.tolist()
    np.testing.assert_allclose(per["log_px"], _lme(log_w[:, keep]), rtol=0, atol=1e-12)
    row = lik.protocol_row(per, run, family)
    assert row["dropped"] == 2 and row["dropped_unit"] == "sweeps" and row["n"] == len(x)
    # every sweep spoiled: no estimate, as the original's NaN, and all 50 counted
    monkeypatch.setattr(family, "importance_sample",
                        lambda rng, params, samples, uniform=None: (
                            lambda d: (d[0], d[1], d[2] + np.nan))(
                            original(rng, params, samples, uniform=uniform)))
    per = lik.evaluate_protocol(lm, x, run, seed=5)
    assert per["dropped_sweeps"] == 50 and np.all(np.isnan(per["log_px"]))
    row = lik.protocol_row(per, run, family)
    assert row["dropped"] == 50 and row["mean_nll"] == "nan" and row["mean_ess"] is None


# -- large S ----------------------------------------------------------------------------------

def test_the_estimate_rises_with_s_in_expectation_and_large_s_agree(tiny):
    """E[log p_S(x)] increases with S (Jensen; the bias is about -var(w) / (2 S E[w]^2)):
    over seeds, S = 2 < S = 20 < S = 1000; and S = 1000 and S = 5000 agree within their
    Monte Carlo errors (the large-s protocol's rows)."""
    lm, x, _ = tiny
    means = {}
    for s in (2, 20):
        means[s] = np.mean([lik.importance_sampled_log_likelihood(lm, x, s, seed=seed)
                            ["log_px"].mean() for seed in range(12)])
    runs = [r for r in lik.protocol_runs(["large-s"], samples=100, large_s_subset=8)]
    assert [(r.samples, r.subset) for r in runs] == [(100, 8), (1000, 8), (5000, 8),
                                                      (1000, None)]
    per = {r.key: lik.evaluate_protocol(lm, x, r, seed=3) for r in runs}
    big = per["large-s/S=1000/all"]
    assert means[2] < means[20] < big["log_px"].mean()

    def mean_and_se(p):
        return p["log_px"].mean(), math.sqrt(np.sum(p["mc_se"] ** 2)) / len(p["log_px"])
    m1, se1 = mean_and_se(per["large-s/S=1000/subset"])
    m5, se5 = mean_and_se(per["large-s/S=5000/subset"])
    assert abs(m1 - m5) < 3 * math.hypot(se1, se5)
    assert se5 < se1  # the standard error shrinks like 1 / sqrt(S)
    rows = [lik.protocol_row(per[r.key], r, lm.family) for r in runs]
    assert [r["n"] for r in rows] == [8, 8, 8, len(x)]
    assert rows[0]["mean_ess"] < rows[1]["mean_ess"] < rows[2]["mean_ess"]
    assert rows[2]["label"] == "large S: S = 5,000, first 8 examples"
    # a subset larger than the set evaluated is the whole set, and says so
    run = lik.protocol_runs(["large-s"], samples=100, large_s_subset=1000)[0]
    row = lik.protocol_row(lik.evaluate_protocol(lm, x, run, seed=1), run, lm.family)
    assert row["n"] == len(x) and row["label"] == f"large S: S = 100, first {len(x)} examples"


def test_protocol_names_and_the_semi_supervised_model_are_checked():
    with pytest.raises(ValueError, match="unknown evaluation protocol 'theirs'"):
        lik.protocol_runs(["ours", "theirs"])
    with pytest.raises(ValueError, match="sampler must be one of"):
        lik.draw_latents(None, None, {}, 1, "clipped")
    # the order of the rows is that of PROTOCOLS, whatever the order asked
    keys = [r.key for r in lik.protocol_runs(["training-sampler", "author", "ours"])]
    assert keys == ["ours", "author", "training-sampler"]
    lm, _, _ = _tiny_model("sb_ssdgm", "float32")
    (run,) = lik.protocol_runs(["author"])
    with pytest.raises(ValueError, match="implemented for the VAEs"):
        lik.evaluate_protocol(lm, np.zeros((2, D)), run)
    from stick_breaking_dgms import reproduce
    choices = [a for a in reproduce.build_parser()._actions if a.dest == "protocols"][0]
    assert tuple(choices.choices) == lik.PROTOCOLS


# -- kNN over several code draws -----------------------------------------------------------

def test_knn_over_draws_gives_each_draw_and_their_mean_and_spread():
    rng = np.random.default_rng(0)
    train_y, test_y = rng.integers(0, 3, 60), rng.integers(0, 3, 25)
    draws = [(rng.standard_normal((60, 2)) + train_y[:, None],
              rng.standard_normal((25, 2)) + test_y[:, None]) for _ in range(4)]
    res = knn_errors_over_draws(iter(draws), train_y, test_y, (1, 5))
    for k in (1, 5):
        each = [knn_errors(tr, train_y, te, test_y, (k,))["errors"][k] for tr, te in draws]
        assert res["errors_per_draw"][k] == each
        assert res["mean"][k] == pytest.approx(np.mean(each))
        assert res["std"][k] == pytest.approx(np.std(each, ddof=1))
        assert (res["min"][k], res["max"][k]) == (min(each), max(each))
    assert res["draws"] == 4 and res["n_test"] == 25
    assert len(set(res["errors_per_draw"][5])) > 1  # the draws do differ
    one = knn_errors_over_draws(iter(draws[:1]), train_y, test_y, (1,))
    assert one["std"][1] is None and one["draws"] == 1
    with pytest.raises(ValueError, match="no code draw"):
        knn_errors_over_draws(iter([]), train_y, test_y, (1,))


def test_drawn_codes_follow_the_sampler_and_the_training_draw_is_the_codes_one(tiny):
    """``drawn_codes(..., "training")`` consumes the noise as ``codes`` does: the same
    rng state gives the same sampled codes (up to rounding); the exact posterior's codes
    reach beyond what u in (0.01, 0.99) can give."""
    lm, x, _ = tiny
    params = lm.posterior_params(x)
    sampled, _ = lm.codes(x, np.random.default_rng(4))
    drawn = lm.drawn_codes(params, np.random.default_rng(4), "training")
    np.testing.assert_allclose(drawn, sampled, rtol=1e-9, atol=1e-12)
    assert drawn.shape == (len(x), K) and np.allclose(drawn.sum(1), 1.0)
    p1 = {k: v[:1].repeat(4000, axis=0) for k, v in params.items()}  # one digit, 4000 codes
    exact = lm.drawn_codes(p1, np.random.default_rng(5), "exact")[:, 0]
    training = lm.drawn_codes(p1, np.random.default_rng(5), "training")[:, 0]
    assert exact.min() < training.min() and exact.max() > training.max()
    with pytest.raises(ValueError, match="sampler must be 'exact' or 'training'"):
        lm.drawn_codes(params, np.random.default_rng(0), "author")


# -- the reproduce command ---------------------------------------------------------------------

def test_reproduce_reports_the_protocols_side_by_side(tmp_path, capsys):
    from stick_breaking_dgms import reproduce
    from stick_breaking_dgms.checkpoints import write_checkpoint
    rng = np.random.default_rng(0)
    data = str(tmp_path / "digits.npz")
    np.savez(data, x=rng.random((200, D)), y=rng.integers(0, 3, 200))
    _, config, net = _tiny_model("sb_vae", "float32", data=data)
    path = str(tmp_path / "sb_vae_params_tiny.h5")
    write_checkpoint(path, {"params": {n: v.get_value() for n, v in net.params.items()}},
                     {"model": "sb_vae", "config": config.to_dict(), "best_epoch": 0,
                      "best_score": 1.0})
    out = str(tmp_path / "report")
    code = reproduce.main([path, "--table", "likelihood", "knn", "--protocols", "ours",
                           "author", "training-sampler", "--samples", "20", "--knn-k", "1",
                           "3", "--knn-code-draws", "3", "--no-figures", "--progress",
                           "never", "--blas-threads", "1", "--out", out])
    assert code == 0, capsys.readouterr().err
    results = json.load(open(os.path.join(out, "results.json")))
    (entry,) = results["likelihood_protocols"][data]["sb_vae"]
    rows = {r["key"]: r for r in entry["rows"]}
    assert list(rows) == ["ours", "author", "training-sampler"]
    table = results["likelihood"][data]["sb_vae"]
    assert rows["ours"]["mean_nll"] == table["mean_nll"]  # the table's own run
    assert rows["author"]["samples"] == 50 and rows["author"]["dropped_unit"] == "sweeps"
    assert rows["training-sampler"]["biased"] is True
    text = open(os.path.join(out, "report.md")).read()
    assert "## Evaluation protocols side by side" in text
    lines = text.splitlines()
    for r in rows.values():
        (line,) = [ln for ln in lines if f"| {r['label']} |" in ln]
        assert f"| {reproduce.format_number(r['mean_nll'])} ± " in line
        assert f"of {r['samples']:,} |" in line
    (line,) = [ln for ln in lines if "| author: S = 50" in ln]
    assert f"| {rows['author']['dropped']} of 50 sweeps |" in line
    (line,) = [ln for ln in lines if "| training sampler, plain density" in ln]
    assert "**biased**" in line
    # kNN over three code draws: draw 1 of the training sampler is the 'sampled' cell
    (knn,) = results["knn_code_draws"][data]["sb_vae"]
    sampled = results["knn"][data]["sb_vae"]["sampled"]["errors"]
    for k in ("1", "3"):
        assert knn["training_sampler"]["errors_per_draw"][k][0] == sampled[k]
        assert knn["training_sampler"]["draws"] == knn["exact_posterior"]["draws"] == 3
        each = knn["exact_posterior"]["errors_per_draw"][k]
        assert knn["exact_posterior"]["mean"][k] == pytest.approx(np.mean(each))
    assert "| training sampler (draw 1: the paper's one-draw protocol) |" in text
    assert "| posterior mean (deterministic) |" in text
    # the default runs ours only, and shows no likelihood protocol table
    out2 = str(tmp_path / "report2")
    assert reproduce.main([path, "--table", "likelihood", "--samples", "5", "--no-figures",
                           "--progress", "never", "--blas-threads", "1", "--out", out2]) == 0
    text = open(os.path.join(out2, "report.md")).read()
    assert "### Likelihood: test -log p(x) under each protocol" not in text
    (entry,) = json.load(open(os.path.join(out2, "results.json")))[
        "likelihood_protocols"][data]["sb_vae"]
    assert [r["key"] for r in entry["rows"]] == ["ours"]
