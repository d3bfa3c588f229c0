"""Adam against a hand computation; the NaN guard and gradient clipping."""
import numpy as np
import pytest

from stick_breaking_dgms.backend import at, function, shared
from stick_breaking_dgms.optimizers import adam, training_updates


def test_one_and_two_adam_steps_by_hand():
    w0 = np.array([1.0, -2.0, 0.5])
    w = shared(w0.copy(), name="w")
    target = np.array([0.0, 1.0, 3.0])
    loss = at.sum((w - target) ** 2)
    updates = adam(loss, [w])
    assert list(u.name for u in updates) == ["adam/m/w", "adam/v/w", "w", "adam/t"]
    step = function([], loss, updates=updates)
    lr, b1, b2, eps = 3e-4, 0.95, 0.999, 1e-8
    m = v = np.zeros(3)
    expected = w0.copy()
    for t in (1, 2):
        step()
        g = 2 * (expected - target)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        expected = expected - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        np.testing.assert_allclose(w.get_value(), expected, rtol=1e-12)
    # first step moves every coordinate by almost exactly lr (bias correction)
    assert np.allclose(np.abs(w0 - expected), 2 * lr, rtol=0.05)


def test_adam_accepts_gradients():
    w = shared(np.ones(2), name="w2")
    updates = adam([at.constant(np.array([1.0, -1.0]))], [w], learning_rate=0.1)
    function([], [], updates=updates)()
    np.testing.assert_allclose(w.get_value(), [0.9, 1.1], rtol=1e-6)
    with pytest.raises(ValueError):
        adam([at.constant(np.ones(2))] * 2, [w])


def test_nonfinite_batch_leaves_every_state_unchanged():
    w = shared(np.ones(2), name="w3")
    x = at.dvector("x")
    loss = at.sum(w * x)
    updates, _ = training_updates(loss, [w], 0.1, skip_nonfinite=True)
    step = function([x], loss, updates=updates)
    step(np.array([1.0, 1.0]))
    state = [u.get_value().copy() for u in updates]
    out = step(np.array([np.nan, 1.0]))
    assert np.isnan(out)
    for u, before in zip(updates, state):
        np.testing.assert_array_equal(u.get_value(), before)
    step(np.array([1.0, 1.0]))
    assert not np.allclose(w.get_value(), state[2])


def test_gradient_norm_clipping():
    w = shared(np.zeros(2), name="w4")
    loss = at.sum(w * np.array([300.0, 400.0]))  # gradient norm 500
    updates, norm = training_updates(loss, [w], 1.0, clip_gradient_norm=5.0, beta1=0.0,
                                     beta2=0.0, epsilon=0.0)
    f = function([], norm, updates=updates)
    assert f() == pytest.approx(500.0)
    # Adam with beta = 0 moves by lr * g / |g| per coordinate regardless of scale
    np.testing.assert_allclose(w.get_value(), [-1.0, -1.0])
    m = [u for u in updates if u.name == "adam/m/w4"][0]
    np.testing.assert_allclose(m.get_value(), [3.0, 4.0])  # clipped gradient, norm 5


def test_a_finite_loss_with_a_nonfinite_gradient_is_withheld_and_reported():
    import math
    from stick_breaking_dgms.experiments import _Task
    from stick_breaking_dgms.optimizers import finite_step_expr
    w = shared(np.array([0.0, 1.0]), name="w5")
    loss = at.sum(at.sqrt(w))  # finite (1.0), but d sqrt(w) / dw is inf at w = 0
    updates, norm = training_updates(loss, [w], 0.1, skip_nonfinite=True)
    step = function([], [loss, finite_step_expr(loss, norm)], updates=updates)
    value, applied = step()
    assert value == 1.0 and not applied
    np.testing.assert_array_equal(w.get_value(), [0.0, 1.0])
    # a task in skip-batch mode turns a withheld step into non-finite metrics, so the
    # Trainer counts it as a skipped batch
    task = _Task()
    task._reports_step, task._train = True, lambda i: [1.0, 2.0, False]
    assert all(math.isnan(v) for v in task.train_step(0))
    task._train = lambda i: [1.0, 2.0, True]
    assert task.train_step(0) == [1.0, 2.0]
