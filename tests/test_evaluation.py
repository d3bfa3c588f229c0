"""Evaluations: importance sampling against closed forms, kNN and active dimensions by hand."""
import math
import os

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import multivariate_normal

from stick_breaking_dgms.evaluation.knn import knn_classify, knn_errors, nearest_neighbours, vote
from stick_breaking_dgms.evaluation.latent_usage import (active_dimensions,
                                                         summarize_active_dimensions)
from stick_breaking_dgms.evaluation.likelihood import log_mean_exp, summarize


# -- kNN ---------------------------------------------------------------------------------

# One-dimensional training set; every test point below is chosen to hit a tie.
TRAIN_X = np.array([[0.0], [1.0], [-1.0], [2.0], [-2.0], [3.0]])
TRAIN_Y = np.array([0, 1, 2, 1, 2, 0])


def test_equal_distances_go_to_the_lower_training_index():
    # 0.5 is at distance 0.5 from #0 (x=0) and #1 (x=1); 1.5 from #2 (x=-1) and #3 (x=2)
    idx, dist, _, _ = nearest_neighbours(TRAIN_X, np.array([[0.5]]), 4)
    assert idx.tolist() == [[0, 1, 2, 3]]
    np.testing.assert_allclose(dist, [[0.5, 0.5, 1.5, 1.5]])
    # the tie at the k-th place is cut by index too: #2 in, #3 out
    idx, _, _, _ = nearest_neighbours(TRAIN_X, np.array([[0.5]]), 3)
    assert idx.tolist() == [[0, 1, 2]]


def test_equal_votes_go_to_the_label_of_the_best_ranked_neighbour():
    # neighbours of 0.5, nearest first: #0 (0), #1 (1), #2 (2), #3 (1)
    preds, bad = knn_classify(TRAIN_X, TRAIN_Y, np.array([[0.5], [10.0]]), ks=(1, 2, 3, 4))
    # k=2: labels 0 and 1 tie with one vote each -> 0, the label of the nearest
    # k=3: 0, 1, 2 tie -> 0;  k=4: label 1 has two votes -> 1
    assert [preds[k][0] for k in (1, 2, 3, 4)] == [0, 0, 0, 1]
    # 10.0: neighbours #5 (0), #3 (1), #1 (1): k=2 tie -> 0 (nearest), k=3 -> 1 (majority)
    assert [preds[k][1] for k in (1, 2, 3)] == [0, 0, 1]
    assert bad == {"bad_train": 0, "bad_test": 0}


def test_vote_breaks_ties_by_rank_not_by_label_value():
    # labels 2 and 1 tie (two votes each); 2 holds the nearest neighbour
    assert vote(np.array([[2, 1, 1, 2, 0]]), 3).tolist() == [2]
    assert vote(np.array([[1, 2, 2, 1, 0]]), 3).tolist() == [1]


def test_knn_errors_by_hand_and_non_finite_rows_are_counted():
    test_x = np.array([[0.5], [10.0], [-1.9], [np.nan]])
    test_y = np.array([1, 1, 2, 0])
    res = knn_errors(TRAIN_X, TRAIN_Y, test_x, test_y, ks=(1, 3))
    # k=1: predictions 0, 0, 2, none -> errors on rows 0, 1, 3
    # k=3: neighbours of -1.9 are #4 (2), #2 (2), #0 (0) -> 2;  predictions 0, 1, 2, none
    assert res["n_errors"] == {1: 3, 3: 2}
    assert res["errors"][3] == pytest.approx(0.5)
    assert res["bad_test"] == 1
    # a training row with a NaN is never a neighbour, and is counted
    train = np.vstack([TRAIN_X, [[np.nan]]])
    idx, _, bad_train, _ = nearest_neighbours(train, np.array([[0.0]]), 6)
    assert 6 not in idx[0] and bad_train.sum() == 1


def test_knn_matches_brute_force_with_many_ties():
    rng = np.random.default_rng(0)
    train = np.round(rng.standard_normal((3000, 3)) * 2) / 2  # a coarse grid: many ties
    test = np.round(rng.standard_normal((200, 3)) * 2) / 2
    d = ((test[:, None, :] - train[None, :, :]) ** 2).sum(-1)
    expected = np.argsort(d, axis=1, kind="stable")[:, :10]
    idx, dist, _, _ = nearest_neighbours(train, test, 10, block_bytes=8 * 3000 * 37)
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_allclose(dist ** 2, np.take_along_axis(d, expected, axis=1), atol=1e-12)


# -- active dimensions --------------------------------------------------------------------

def test_active_dimensions_by_hand():
    pi = np.array([
        [1.0, 0.0, 0.0, 0.0],        # one stick covers everything
        [0.5, 0.495, 0.004, 0.001],  # remaining before stick 3: 0.005 <= 0.01 -> 2
        [0.5, 0.48, 0.015, 0.005],   # remaining before 3: 0.02, before 4: 0.005 -> 3
        [0.25, 0.25, 0.25, 0.25],    # remaining before 4: 0.25 -> all 4
        [0.5, 0.49, 0.0, 0.01],      # remaining before 3 is exactly 0.01: not counted -> 2
        [np.nan, 0.5, 0.25, 0.25],   # non-finite: -1, never counted in the means
    ])
    counts = active_dimensions(pi, definition="remainder_before")
    assert counts.tolist() == [1, 2, 3, 4, 2, -1]
    summary = summarize_active_dimensions(counts, labels=np.array([0, 0, 1, 1, 1, 0]))
    assert summary["mean"] == pytest.approx(12 / 5)
    assert summary["n_invalid"] == 1
    assert summary["per_class"] == {"0": pytest.approx(1.5), "1": pytest.approx(3.0)}
    assert active_dimensions(pi[:5], coverage=0.5,
                             definition="remainder_before").tolist() == [1, 1, 1, 2, 1]
    # the original's count: remaining stick after each of the first K - 1 breaks > 0.01
    assert active_dimensions(pi).tolist() == [0, 1, 2, 3, 1, -1]
    with pytest.raises(ValueError, match="definition"):
        active_dimensions(pi, definition="sticks")


def _original_count(pi, threshold=0.01):
    """The original's loop (encoders.py): after each break, is the remaining stick above
    the threshold?"""
    n = np.zeros(len(pi), dtype=np.int64)
    remaining = np.ones(len(pi))
    for k in range(pi.shape[1] - 1):
        remaining = remaining - pi[:, k]
        n += remaining > threshold
    return n


def test_active_dimensions_count_as_the_original_loop_does():
    rng = np.random.default_rng(3)
    v = rng.beta(1.0, 5.0, size=(500, 49))
    pi = np.concatenate([v, np.ones((500, 1))], axis=1) * np.cumprod(
        np.concatenate([np.ones((500, 1)), 1 - v], axis=1), axis=1)
    np.testing.assert_array_equal(active_dimensions(pi), _original_count(pi))
    np.testing.assert_array_equal(active_dimensions(pi, definition="remainder_before"),
                                  _original_count(pi) + 1)


# -- importance sampling: bookkeeping -----------------------------------------------------

def test_log_mean_exp_counts_every_non_finite_sample():
    log_w = np.array([[0.0, 0.0, 0.0, 0.0],
                      [0.0, -np.inf, 0.0, 0.0],
                      [0.0, np.nan, 0.0, 0.0],
                      [np.nan, np.nan, np.nan, np.nan],
                      [1000.0, 1000.0, -np.inf, np.inf]])
    est, n_nan, n_ninf, n_pinf = log_mean_exp(log_w)
    np.testing.assert_allclose(est[:3], [0.0, math.log(0.75), math.log(0.75)])
    assert np.isneginf(est[3]) and np.isposinf(est[4])
    assert n_nan.tolist() == [0, 0, 1, 4, 0]
    assert n_ninf.tolist() == [0, 1, 0, 0, 1]
    assert n_pinf.tolist() == [0, 0, 0, 0, 1]


def test_summary_reports_outliers_without_dropping_them():
    n = 101
    log_px = -np.full(n, 100.0) - np.linspace(-5, 5, n)
    log_px[7] = -6e34  # a faithful-KL model's outlier (b ~ 1e-37 for some digits)
    log_px[9] = np.nan  # an example with no finite weight at all
    per = {"log_px": log_px, "elbo": log_px - 1, "ess": np.full(n, 50.0),
           "nan_samples": np.zeros(n, int), "zero_weight_samples": np.zeros(n, int),
           "inf_samples": np.zeros(n, int), "log_lik": np.zeros(n),
           "min_a": np.ones(n), "min_b": np.where(np.arange(n) == 7, 5e-37, 1.0),
           "diagnostic_names": ("min_a", "min_b"), "samples": 100, "seconds": 1.0}
    per["nan_samples"][9] = 100
    s = summarize(per)
    assert s["n"] == n and s["n_nonfinite"] == 1 and s["n_outliers"] == 2
    assert s["mean_nll"] == "nan"  # the mean over every example is not finite: said so
    nll = -log_px
    assert s["mean_nll_finite"] == pytest.approx(np.mean(nll[np.isfinite(nll)]))
    assert s["mean_nll_finite"] > 5e32  # the outlier is in the mean, not averaged away
    assert s["median_nll"] == pytest.approx(100.0, abs=0.2)
    assert s["mean_nll_without_outliers"] == pytest.approx(100.0, abs=0.2)
    assert [o["index"] for o in s["outliers"]] == [9, 7]
    assert s["outliers"][1]["min_b"] == pytest.approx(5e-37)
    assert s["nan_samples"] == 100 and s["examples_with_nan_samples"] == 1
    # an infinite density (log p(x) = +inf, -log p(x) = -inf) is listed among the outliers too
    log_px[11] = np.inf
    per["inf_samples"][11] = 3
    s = summarize(per)
    assert s["n_nonfinite"] == 2 and s["n_outliers"] == 3 and s["inf_samples"] == 3
    assert sorted(o["index"] for o in s["outliers"]) == [7, 9, 11]


# -- the log-space Kumaraswamy draw ----------------------------------------------------------

def _log_draw(a, b, u):
    from stick_breaking_dgms.backend import at, function
    from stick_breaking_dgms.distributions import kumaraswamy_log_draw_expr
    av, bv, uv = (at.dvector(n) for n in "abu")
    f = function([av, bv, uv], list(kumaraswamy_log_draw_expr(av, bv, at.log(uv))))
    return f(np.asarray(a, float), np.asarray(b, float), np.asarray(u, float))


def test_log_space_draw_matches_direct_formula_and_stays_finite_at_extremes():
    rng = np.random.default_rng(0)
    a, b, u = rng.uniform(0.3, 5, 200), rng.uniform(0.3, 5, 200), rng.uniform(0.01, 0.99, 200)
    log_v, log_1m_v, log_1m_va = _log_draw(a, b, u)
    v = (1 - u ** (1 / b)) ** (1 / a)
    np.testing.assert_allclose(log_v, np.log(v), rtol=1e-10)
    np.testing.assert_allclose(log_1m_v, np.log1p(-v), rtol=1e-8)
    np.testing.assert_allclose(log_1m_va, np.log1p(-v ** a), rtol=1e-10)
    # b = 5e-37: v rounds to 1 in float64, log(1 - v) = log(u)/b - log(a) to leading order
    a, b, u = np.array([1.0, 0.3]), np.array([5e-37, 5e-37]), np.array([0.5, 0.9])
    log_v, log_1m_v, log_1m_va = _log_draw(a, b, u)
    assert np.all(np.isfinite(log_1m_v))
    np.testing.assert_allclose(log_1m_v, np.log(u) / b - np.log(a), rtol=1e-12)
    # a tiny: v rounds to 0, log v is huge and finite, log(1 - v) = 0
    log_v, log_1m_v, _ = _log_draw([1e-30], [2.0], [0.5])
    np.testing.assert_allclose(log_v, np.log1p(-np.sqrt(0.5)) / 1e-30, rtol=1e-12)
    assert log_1m_v[0] == 0.0


# -- importance sampling against closed forms -------------------------------------------------

def _set(net, name, value):
    var = net.params[name]
    var.set_value(np.asarray(value, dtype=var.dtype))


@pytest.fixture(scope="module")
def linear_gaussian():
    """A Gauss-VAE with identity activations: x = z A + c + noise, p(x) = N(c, A'A + I).

    The encoder is set to the exact posterior (A's rows are orthogonal, so it is diagonal):
    h = [x - c, 1], mu = (x - c) A' Sigma, log sigma = log sqrt(Sigma).
    """
    from stick_breaking_dgms.evaluation.loading import LoadedModel
    from stick_breaking_dgms.models import VAE
    rng = np.random.default_rng(0)
    d, l = 5, 2
    net = VAE(d, [d + 1], [False], "identity", "gaussian", l, "gaussian", seed=0)
    q, _ = np.linalg.qr(rng.standard_normal((d, l)))
    scales = np.array([1.5, 0.7])
    A = (q * scales).T
    c = rng.standard_normal(d)
    sigma2 = 1 / (1 + scales ** 2)
    enc_w = np.zeros((d, d + 1))
    enc_w[:, :d] = np.eye(d)
    _set(net, "encoder/0/W", enc_w)
    _set(net, "encoder/0/b", np.r_[-c, 1.0])
    w_mu = np.zeros((d + 1, l))
    w_mu[:d] = A.T * sigma2
    w_sigma = np.zeros((d + 1, l))
    w_sigma[d] = 0.5 * np.log(sigma2)
    _set(net, "latent/W_mu", w_mu)
    _set(net, "latent/W_sigma", w_sigma)
    dec0 = np.zeros((l, d + 1))
    dec0[:, :d] = A
    dec1 = np.zeros((d + 1, d))
    dec1[:d] = np.eye(d)
    _set(net, "decoder/0/W", dec0)
    _set(net, "decoder/0/b", np.zeros(d + 1))
    _set(net, "decoder/1/W", dec1)
    _set(net, "decoder/1/b", c)
    x = rng.multivariate_normal(c, np.eye(d) + A.T @ A, size=200)
    true = multivariate_normal(c, np.eye(d) + A.T @ A).logpdf(x)
    return LoadedModel(None, net, "gauss_vae"), x, true, w_mu, w_sigma


def test_importance_sampling_is_exact_with_the_exact_posterior(linear_gaussian):
    from stick_breaking_dgms.evaluation.likelihood import importance_sampled_log_likelihood
    lm, x, true, _, _ = linear_gaussian
    res = importance_sampled_log_likelihood(lm, x, samples=20, seed=1)
    # every weight equals p(x): the estimate is exact up to the float32 decoder
    np.testing.assert_allclose(res["log_px"], true, atol=1e-4)
    assert np.all(res["mc_se"] < 1e-4)


def test_importance_sampling_finds_the_true_value_within_its_standard_error(linear_gaussian):
    from stick_breaking_dgms.evaluation.likelihood import importance_sampled_log_likelihood
    lm, x, true, w_mu, w_sigma = linear_gaussian
    try:  # a deliberately wrong posterior: shrunk means, wrong widths
        _set(lm.net, "latent/W_mu", 0.7 * w_mu)
        _set(lm.net, "latent/W_sigma", w_sigma + np.r_[np.zeros((5, 2)), [[0.4, -0.3]]])
        res = importance_sampled_log_likelihood(lm, x, samples=100, seed=2, rows_per_batch=700)
    finally:
        _set(lm.net, "latent/W_mu", w_mu)
        _set(lm.net, "latent/W_sigma", w_sigma)
    diff = res["log_px"] - true
    se_of_mean = math.sqrt(np.sum(res["mc_se"] ** 2)) / len(diff)
    assert abs(diff.mean()) < 3 * se_of_mean
    assert np.mean(np.abs(diff) < 2 * res["mc_se"]) > 0.85
    assert np.all(res["mc_se"] > 1e-3)  # the test is not the trivial exact case
    assert np.all(res["elbo"] <= res["log_px"] + 1e-9)  # Jensen, with the same draws


def _prior_density(family, alpha0):
    """The prior density of one fraction v under ``family``'s prior."""
    if family == "gauss-logit":  # N(m0, s0^2) on logit(v), moment-matched to Beta(1, alpha0)
        from stick_breaking_dgms.families import matched_prior
        m0, s0 = matched_prior(alpha0)
        return lambda v: (math.exp(-0.5 * ((math.log(v / (1 - v)) - m0) / s0) ** 2)
                          / (s0 * math.sqrt(2 * math.pi) * v * (1 - v)))
    return lambda v: alpha0 * (1 - v) ** (alpha0 - 1)  # Beta(1, alpha0)


@pytest.mark.parametrize("family", ["kumaraswamy", "gauss-logit", "gamma"])
def test_stick_breaking_importance_sampling_matches_numerical_integration(family):
    """K = 2 (one fraction): p(x) = int p(x | [v, 1-v]) p(v) dv, for every stick-breaking
    family's exact importance sampler and densities."""
    from stick_breaking_dgms.evaluation.likelihood import importance_sampled_log_likelihood
    from stick_breaking_dgms.evaluation.loading import LoadedModel
    from stick_breaking_dgms.models import VAE
    rng = np.random.default_rng(1)
    d, h, alpha0 = 6, 4, 3.0
    net = VAE(d, [h], [False], "relu", family, 2, "bernoulli", seed=0, alpha0=alpha0)
    prior = _prior_density(family, alpha0)
    for name, var in net.params.items():
        scale = 2.0 if name.startswith("decoder") else 0.5
        var.set_value(np.asarray(scale * rng.standard_normal(var.get_value().shape), var.dtype))
    if family == "gauss-logit":
        # the posterior's logit-Normal tails must be at least as heavy as the prior's
        # (sigma >= s0 = 1.43 here), else the weights p / q are unbounded and S = 2000
        # draws underestimate p(x) beyond their standard error
        net.params["latent/W_sigma"].set_value(np.full((h, 1), 1.0, net.params[
            "latent/W_sigma"].dtype))
        net.params["encoder/0/b"].set_value(np.full(h, 1.0, net.params["encoder/0/b"].dtype))
    p = {n: v.get_value().astype(np.float64) for n, v in net.params.items()}
    x = rng.random((20, d))

    def log_lik(xx, v):
        hid = np.maximum(np.array([v, 1 - v]) @ p["decoder/0/W"] + p["decoder/0/b"], 0)
        logits = hid @ p["decoder/1/W"] + p["decoder/1/b"]
        return np.sum(xx * logits - np.logaddexp(0, logits))

    def true_log_px(xx):
        f = lambda v: math.exp(log_lik(xx, v)) * prior(v)  # noqa: E731
        return math.log(integrate.quad(f, 0, 1, epsabs=0, epsrel=1e-10, limit=200)[0])

    true = np.array([true_log_px(xx) for xx in x])
    lm = LoadedModel(None, net, "sb_vae")
    res = importance_sampled_log_likelihood(lm, x, samples=2000, seed=5)
    diff = res["log_px"] - true
    assert np.all(np.abs(diff) < 4 * res["mc_se"])
    assert abs(diff.mean()) < 3 * math.sqrt(np.sum(res["mc_se"] ** 2)) / len(diff)
    assert res["nan_samples"].sum() == 0


def test_stick_breaking_weights_average_to_one():
    """A decoder with zero weights gives p(x | z) = 2^-D for every z, so p(x) = 2^-D exactly.

    The estimate is then log mean_s prod_k p(v_k) / q(v_k) over five sticks: it checks the
    normalising constants of both densities and that the weights are taken per stick.
    """
    from stick_breaking_dgms.evaluation.likelihood import importance_sampled_log_likelihood
    from stick_breaking_dgms.evaluation.loading import LoadedModel
    from stick_breaking_dgms.models import VAE
    d, h, k = 6, 4, 6
    net = VAE(d, [h], [False], "relu", "kumaraswamy", k, "bernoulli", seed=0, alpha0=5.0)
    for name, var in net.params.items():
        var.set_value(np.zeros_like(var.get_value()))
    _set(net, "encoder/0/b", np.ones(h))  # h = relu(0 x + 1) = 1 for every input
    inv_softplus = lambda y: np.log(np.expm1(y))  # noqa: E731
    # away from the prior's a = 1, b = 5, with tails at least as heavy (a <= 1, b <= 5),
    # so that the weights p / q are bounded and the estimate's variance finite
    a = np.array([0.3, 0.5, 0.7, 1.0, 0.4])
    b = np.array([1.0, 2.0, 5.0, 1.5, 3.0])
    _set(net, "latent/W_a", np.tile(inv_softplus(a) / h, (h, 1)))
    _set(net, "latent/W_b", np.tile(inv_softplus(b) / h, (h, 1)))
    lm = LoadedModel(None, net, "sb_vae")
    x = np.random.default_rng(0).random((8, d))
    res = importance_sampled_log_likelihood(lm, x, samples=3000, seed=3)
    diff = res["log_px"] + d * math.log(2)
    assert np.all(np.abs(diff) < 4 * res["mc_se"])
    assert np.all(res["mc_se"] < 0.1)


def test_importance_draws_are_uniform_on_the_whole_open_interval():
    """The full Kumaraswamy, not the training sampler's U(0.01, 0.99): with a = b = 1 the
    draws v = 1 - u are uniform on the whole open interval."""
    from scipy.stats import kstest

    from stick_breaking_dgms.families import Kumaraswamy

    family = Kumaraswamy(3, 49, np.random.default_rng(0))
    ones = np.ones((40, 49))
    draws, _, _ = family.importance_sample(np.random.default_rng(0), {"a": ones, "b": ones},
                                           100)
    v = np.exp(draws["log_v"])
    assert v.shape == (40, 100, 49)
    assert 0.0 < v.min() < 0.001 and 0.999 < v.max() < 1.0
    assert kstest(v.ravel(), "uniform").pvalue > 1e-3

def test_a_trained_model_is_rebuilt_with_its_training_seed(tmp_path):
    """load_model (reproduce) and classify rebuild a model from its stored configuration
    with the seed training used (so both agree), from this version's checkpoints (which
    store the configuration) and earlier ones (which stored the flags); a stored seed
    that is not an integer is a clear CheckpointError naming the seed."""
    from stick_breaking_dgms import cli
    from stick_breaking_dgms.checkpoints import CheckpointError, write_checkpoint
    from stick_breaking_dgms.config import derived_seeds
    from stick_breaking_dgms.evaluation.loading import load_model
    from stick_breaking_dgms.factory import build_model
    _, args, config = cli.parse_args("gauss_vae", ["--hidden-size", "3", "--latent-size", "2",
                                                   "--seed", "77"])
    assert config.model_seed == derived_seeds(77)[0]
    net = build_model(config, 5, "bernoulli")
    params = {n: v.get_value() for n, v in net.params.items()}
    for name, meta in [("new", {"model": "gauss_vae", "config": config.to_dict()}),
                       ("old", {"model": "gauss_vae", "args": vars(args)})]:
        path = str(tmp_path / f"{name}.h5")
        write_checkpoint(path, {"params": params}, meta)
        lm = load_model(path)
        assert lm.config == config
        # the same seed gives the same initial weights: every parameter equals the stored
        # one even before loading, and the random stream starts where training's started
        fresh = build_model(lm.config, 5, "bernoulli")
        for n, v in fresh.params.items():
            np.testing.assert_array_equal(v.get_value(), params[n])
    bad = str(tmp_path / "bad.h5")
    write_checkpoint(bad, {"params": params}, {"model": "gauss_vae",
                                               "args": {**vars(args), "seed": "abc"}})
    with pytest.raises(CheckpointError, match="seed: expected an integer"):
        load_model(bad)


def test_the_regression_check_leaves_no_working_folder(tmp_path, monkeypatch, capsys):
    """``regression --check`` trains in a temporary folder (about 20 MB) and removes it,
    whether the check passes or the training fails."""
    import json
    import tempfile
    from stick_breaking_dgms.evaluation import regression
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where mkdtemp puts it
    made = []

    def fake_run(workdir, data_dir="./datasets"):
        made.append(workdir)
        with open(os.path.join(workdir, "checkpoint.h5"), "wb") as f:
            f.write(b"\0" * 1000)
        return None, {"sb_vae/is_nll": (100.0, "nll")}

    reference = tmp_path / "reference.json"
    reference.write_text(json.dumps({"metrics": {"sb_vae/is_nll": {
        "value": 100.0, "tolerance": 1.0, "kind": "nll"}}}))
    monkeypatch.setattr(regression, "run", fake_run)
    assert regression.main(["--check", str(reference)]) == 0
    monkeypatch.setattr(regression, "run", lambda *a, **k: (_ for _ in ()).throw(
        RuntimeError("training failed")))
    with pytest.raises(RuntimeError):
        regression.main(["--check", str(reference)])
    assert made and not os.path.exists(made[0])
    assert os.listdir(tmp_path) == ["reference.json"]


def test_regression_numbers_of_a_run_with_another_kl_stand_for_its_model():
    """A planted KL change (--kl-taylor-terms 1) renames the report's rows; the regression
    check still compares their numbers instead of failing on their absence."""
    from stick_breaking_dgms.evaluation.regression import metrics_from_results
    results = {"likelihood": {"mnist": {"sb_vae_kl_1_terms": {"mean_nll": 101.5,
                                                              "mean_elbo": -105.0}}},
               "knn": {"mnist": {"sb_vae_kl_1_terms": {"sampled": {"errors": {"5": 0.12}}}}},
               "active_dimensions": {"mnist": {"sb_vae_kl_1_terms": {
                   "mean": {"mean": 23.0}, "sampled": {"mean": 22.5}}}},
               "semisup": {"mnist": {"sb_ssdgm_kl_1_terms": {"10": {"mean": 0.05}}}},
               "semisup_knn_baseline": {}}
    m = metrics_from_results(results)
    assert m["sb_vae/is_nll"][0] == 101.5 and m["sb_vae/mc_neg_elbo"][0] == 105.0
    assert m["sb_vae/knn_sampled_k5"][0] == pytest.approx(12.0)
    assert m["sb_vae/active_dims_sampled"][0] == 22.5
    assert m["sb_ssdgm/error_10"][0] == pytest.approx(5.0)
    assert "gauss_vae/is_nll" not in m
