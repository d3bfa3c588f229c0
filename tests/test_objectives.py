"""Likelihoods and label terms against direct NumPy formulas."""
import numpy as np
import pytest

from stick_breaking_dgms.backend import at, function
from stick_breaking_dgms.objectives import (bernoulli_nll_expr, categorical_entropy_expr,
                                            categorical_nll_expr, gaussian_nll_expr,
                                            prediction_errors_expr)


def test_bernoulli_nll_is_the_cross_entropy_of_the_sigmoid():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(5, 7))  # grey levels, not binarised
    logits = rng.normal(scale=3, size=(5, 7))
    xs, ls = at.dmatrix(), at.dmatrix()
    got = function([xs, ls], bernoulli_nll_expr(xs, ls))(x, logits)
    p = 1 / (1 + np.exp(-logits))
    expected = -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # stays finite where the sigmoid saturates
    big = function([xs, ls], bernoulli_nll_expr(xs, ls))(np.ones((1, 2)), np.array([[-800.0, 800]]))
    np.testing.assert_allclose(big, [800.0])


def test_gaussian_nll_and_label_terms():
    rng = np.random.default_rng(1)
    x, m = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    xs, ms = at.dmatrix(), at.dmatrix()
    np.testing.assert_allclose(function([xs, ms], gaussian_nll_expr(xs, ms))(x, m),
                               0.5 * ((x - m) ** 2).sum(1))
    probs = rng.dirichlet(np.ones(10), size=6)
    y = np.array([0, 3, 9, 2, 2, 5], dtype=np.int32)
    ps, ys = at.dmatrix(), at.ivector()
    f = function([ps, ys], [categorical_nll_expr(ys, ps), categorical_entropy_expr(ps),
                            prediction_errors_expr(ys, ps)])
    nll, ent, err = f(probs, y)
    np.testing.assert_allclose(nll, -np.log(probs[np.arange(6), y]))
    np.testing.assert_allclose(ent, -(probs * np.log(probs)).sum(1))
    assert err == np.sum(probs.argmax(1) != y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softplus_matches_logaddexp_over_the_whole_range_and_its_gradient_is_sigmoid(dtype):
    from stick_breaking_dgms.backend import grad, softplus
    xs = at.vector("x", dtype=dtype)
    f = function([xs], [softplus(xs), grad(at.sum(softplus(xs)), xs)])
    grid = np.concatenate([-np.logspace(-8, 3, 400), [0.0], np.logspace(-8, 3, 400)])
    x = grid.astype(dtype)
    value, gradient = f(x)
    exact = np.logaddexp(0.0, x.astype(np.float64))
    ulp = np.finfo(dtype).eps
    tiny = np.finfo(dtype).tiny
    normal = exact > tiny  # below that the result is a subnormal or underflows to 0
    np.testing.assert_array_less(np.abs(value[normal] - exact[normal]), 3 * ulp * exact[normal])
    assert np.all(value[~normal] <= tiny)
    from scipy.special import expit
    np.testing.assert_allclose(gradient, expit(x.astype(np.float64)), rtol=4 * ulp, atol=tiny)
    specials = f(np.array([np.inf, -np.inf, np.nan], dtype=dtype))[0]
    assert specials[0] == np.inf and specials[1] == 0 and np.isnan(specials[2])
