"""The Python API (stick_breaking_dgms.api): fit a run from a configuration, get its history,
its trained model and its evaluations; the same files and numbers as the scripts."""
import io
import math

import numpy as np
import pytest

from stick_breaking_dgms import api
from stick_breaking_dgms.config import (DataConfig, ExperimentConfig, LatentConfig,
                                        NetworkConfig, TrainingConfig)


@pytest.fixture(scope="module")
def digits(mnist, tmp_path_factory):
    """2,000 MNIST digits as a user's file (a quick data set for real training)."""
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x=mnist.train_x[:2000], y=mnist.train_y[:2000])
    return str(path)


def _config(model, digits, **training):
    latent = LatentConfig(size=5) if model.startswith("sb") else LatentConfig("gaussian", size=5)
    return ExperimentConfig(model, data=DataConfig(dataset=digits),
                            network=NetworkConfig(hidden_size=20), latent=latent,
                            training=TrainingConfig(max_epoch=2, **training))


@pytest.fixture(scope="module")
def vae_run(digits, tmp_path_factory):
    out = io.StringIO()
    run = api.fit(_config("sb_vae", digits), str(tmp_path_factory.mktemp("runs")),
                  blas_threads=1, progress="never", out=out)
    return run, out.getvalue()


def test_fit_returns_the_run_with_its_history_and_test_metrics(vae_run):
    run, printed = vae_run
    assert run.exit_code == 0 and run.status == "finished" and run.stopped_by == "max_epoch"
    assert [h["epoch"] for h in run.history] == [0, 1]
    assert all(math.isfinite(h["valid_score"]) for h in run.history)
    assert run.best_epoch in (0, 1)
    assert run.best_score == min(h["valid_score"] for h in run.history)
    assert math.isfinite(run.test["score"])
    # what the script prints: where each file goes, and the final line with the test score
    for path in (run.files.results, run.files.metrics, run.files.metrics_csv,
                 run.files.best):
        assert path in printed
    assert "compiling its graphs" in printed
    assert run.config.network.hidden_size == 20
    assert "status='finished'" in repr(run)


def test_the_trained_model_evaluates_from_python(vae_run, mnist):
    run, _ = vae_run
    model = run.model()
    x = mnist.test_x[:20]
    result = api.log_likelihood(model, x, samples=5)
    assert result["log_px"].shape == (20,) and np.all(np.isfinite(result["log_px"]))
    assert result["summary"]["n"] == 20
    sampled, means = api.latent_codes(model, x)
    assert sampled.shape == means.shape == (20, 5)
    np.testing.assert_allclose(means.sum(axis=1), 1.0, atol=1e-4)  # stick weights
    with pytest.raises(ValueError, match="has no classifier"):
        api.classify(model, x)


def test_a_run_is_read_back_from_its_files(vae_run):
    run, _ = vae_run
    again = api.Run.of(run.files)
    assert again.history == run.history and again.test == run.test


def test_a_semi_supervised_run_classifies_from_python(digits, mnist, tmp_path):
    run = api.fit(_config("sb_ssdgm", digits, label_drop_percentage=0.5), str(tmp_path),
                  blas_threads=1, progress="never", out=io.StringIO())
    assert run.exit_code == 0 and math.isfinite(run.test["score"])
    labels, probs = api.classify(run.model(), mnist.test_x[:50])
    assert labels.shape == (50,) and probs.shape == (50, 10)
    np.testing.assert_array_equal(labels, probs.argmax(axis=1))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
