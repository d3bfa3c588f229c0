"""Stick-breaking weights: a valid simplex, the NumPy reference, exact finite gradients."""
import numpy as np
import pytest

from stick_breaking_dgms.backend import at, function, grad
from stick_breaking_dgms.distributions import stick_breaking_weights
from stick_breaking_dgms.stick_breaking import stick_breaking_expr, stick_breaking_numpy


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weights_form_a_simplex(dtype):
    rng = np.random.default_rng(0)
    v = rng.uniform(size=(200, 49)).astype(dtype)
    v[0, :5] = 0.0  # edges
    v[1, 3] = 1.0
    v[2, :] = 1.0
    pi = stick_breaking_weights(v)
    assert pi.shape == (200, 50) and pi.dtype == dtype
    assert np.all(pi >= 0)
    np.testing.assert_allclose(pi.sum(axis=1), 1.0, rtol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(pi, stick_breaking_numpy(v), rtol=1e-5 if dtype == np.float32
                               else 1e-12, atol=1e-7 if dtype == np.float32 else 1e-15)
    # v = 1 at stick 4 leaves (almost: one float ulp) nothing for the sticks after it
    assert np.all(pi[1, 4:] < 1e-6) and pi[1, 3] > 0
    assert pi[2, 0] == 1.0


def test_first_weight_is_first_fraction_and_last_takes_the_rest():
    v = np.array([[0.5, 0.5, 0.5]])
    np.testing.assert_allclose(stick_breaking_weights(v), [[0.5, 0.25, 0.125, 0.125]])


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match="shape"):
        stick_breaking_weights(np.ones(3))


def _gradient_function():
    v = at.dmatrix("v")
    c = at.dmatrix("c")  # weights of a linear functional of pi
    loss = at.sum(stick_breaking_expr(v) * c)
    return function([v, c], [loss, grad(loss, v)])


def _numeric_gradient(f, v, c, eps=1e-6):
    numeric = np.zeros_like(v)
    for idx in np.ndindex(v.shape):
        vp, vm = v.copy(), v.copy()
        vp[idx] += eps
        vm[idx] -= eps
        numeric[idx] = (f(vp, c)[0] - f(vm, c)[0]) / (2 * eps)
    return numeric


def test_gradient_is_exact_inside_the_unit_interval():
    f = _gradient_function()
    rng = np.random.default_rng(1)
    c = rng.normal(size=(3, 5))
    v = rng.uniform(0.05, 0.95, size=(3, 4))
    v[0, 3] = 0.0  # a zero fraction is fine for the log-space product
    _, g = f(v, c)
    np.testing.assert_allclose(g, _numeric_gradient(f, v, c), rtol=1e-6, atol=1e-8)


def test_gradient_is_finite_where_fractions_are_one():
    f = _gradient_function()
    rng = np.random.default_rng(2)
    c = rng.normal(size=(3, 5))
    v = rng.uniform(size=(3, 4))
    v[1, 1] = 1.0  # 1 - v = 0: cumprod's gradient would divide by zero here
    v[2, 0] = v[2, 2] = 1.0  # two zero factors
    _, g = f(v, c)
    assert np.all(np.isfinite(g))
    # the fractions before the first v = 1 still get their exact gradient
    np.testing.assert_allclose(g[1, :1], _numeric_gradient(f, v, c)[1, :1], rtol=1e-5)
