"""Model graphs: finite gradients at the sampler's edges, dtypes, reconstruction terms."""
import numpy as np
import pytest

from stick_breaking_dgms import backend
from stick_breaking_dgms.backend import at, function, grad
from stick_breaking_dgms.models import VAE
from stick_breaking_dgms.objectives import bernoulli_nll_expr


def _small_vae(kind="kumaraswamy", **options):
    return VAE(784, [20], [False], "relu", kind, 6, "bernoulli", seed=3, **options)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_loss_gradients_are_finite_where_draws_hit_zero_and_one(dtype):
    with backend.floatX_as(dtype):
        model = _small_vae()
        x = at.matrix("x")
        a, b, u = at.matrix("a"), at.matrix("b"), at.matrix("u")
        post = {"a": a, "b": b}
        v = model.latent.fractions(post, u)
        logits = model.decode(model.latent.sample(post, u))
        loss = at.mean(bernoulli_nll_expr(x, logits) + model.latent.kl(post))
        wrt = model.decoder.params + [a, b]  # the decoder, and the encoder's outputs
        f = function([x, a, b, u], [v, loss] + grad(loss, wrt))
    rng = np.random.default_rng(0)
    xv = rng.uniform(size=(2, 784)).astype(dtype)
    av = np.full((2, 5), 1.0, dtype)
    bv = np.full((2, 5), 1.0, dtype)
    uv = np.full((2, 5), 0.5, dtype)
    av[0, 1], bv[0, 1], uv[0, 1] = 0.01, 0.01, 0.01  # u^(1/b) underflows: v = 1
    av[1, 2], bv[1, 2], uv[1, 2] = 0.01, 100.0, 0.99  # (1 - u^(1/b))^(1/a) underflows: v = 0
    out = f(xv, av, bv, uv)
    v_val = out[0]
    assert v_val[0, 1] == 1.0 and v_val[1, 2] == 0.0
    assert np.isfinite(out[1])
    for g in out[2:]:
        assert np.all(np.isfinite(g))


def test_training_graph_is_float32_end_to_end(mnist):
    from stick_breaking_dgms.optimizers import training_updates
    model = _small_vae()
    x = at.matrix("x")
    nll, kl = model.negative_elbo_terms(x)
    updates, _ = training_updates(at.mean(nll + kl), model.params.values(), 3e-4)
    f = function([x], [at.mean(nll), at.mean(kl)], updates=updates)
    float64 = [str(v) for v in f.maker.fgraph.variables
               if getattr(v.type, "dtype", None) == "float64"]
    assert float64 == [], f"float64 in the float32 training graph: {float64[:5]}"
    assert np.isfinite(f(mnist.train_x[:50])).all()


def test_training_function_has_no_runtime_broadcast_checks(mnist):
    # Static shapes of weights and training batches let the rewriting drop every
    # Assert that shape inference would otherwise add (and halve the compile time).
    from stick_breaking_dgms.experiments import VAETask
    task = VAETask(_small_vae(), mnist.astype("float32"), 100, 3e-4)
    ops = {type(node.op).__name__ for node in task._train.maker.fgraph.apply_nodes}
    assert not ops & {"Assert", "CheckAndRaise"}, sorted(ops)
    assert np.isfinite(task.train_step(0)).all()


def test_negative_elbo_terms_with_given_noise_match_numpy():
    model = _small_vae("gaussian")
    x, eps = at.matrix("x"), at.matrix("eps")
    nll, kl = model.negative_elbo_terms(x, eps)
    f = function([x, eps], [nll, kl])
    rng = np.random.default_rng(4)
    xv = rng.uniform(size=(3, 784)).astype(np.float32)
    ev = rng.normal(size=(3, 6)).astype(np.float32)
    p = {k: v.get_value() for k, v in model.params.items()}
    h = np.maximum(xv @ p["encoder/0/W"] + p["encoder/0/b"], 0)
    mu, log_sigma = h @ p["latent/W_mu"], h @ p["latent/W_sigma"]
    z = mu + np.exp(log_sigma) * ev
    h2 = np.maximum(z @ p["decoder/0/W"] + p["decoder/0/b"], 0)
    logits = h2 @ p["decoder/1/W"] + p["decoder/1/b"]
    prob = 1 / (1 + np.exp(-logits))
    expected_nll = -np.sum(xv * np.log(prob) + (1 - xv) * np.log(1 - prob), axis=1)
    expected_kl = np.sum(0.5 * (mu ** 2 + np.exp(2 * log_sigma) - 1) - log_sigma, axis=1)
    got_nll, got_kl = f(xv, ev)
    np.testing.assert_allclose(got_nll, expected_nll, rtol=1e-5)
    # near 0 the KL is a difference of O(1) terms: float32 absolute precision
    np.testing.assert_allclose(got_kl, expected_kl, rtol=1e-4, atol=1e-6)
