"""Likelihoods and label terms against direct NumPy formulas."""
import numpy as np

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
