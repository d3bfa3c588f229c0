"""Numerical safety and hostile inputs.

* NaN policy, in-process at the Trainer level on real MNIST (a 5,000-image slice, small
  network): a poisoned batch (rows of the task's ``train_x`` set to NaN for one step)
  under ``--on-nan stop`` and ``--on-nan skip-batch``.
* ``Trainer.restore`` refuses checkpoints that do not fit the model built from the
  arguments, changes nothing when it refuses, and the previous checkpoint is used.
* KL(Kumaraswamy(a, b) || Beta(1, alpha0)) over the range ``--clip-kumaraswamy 0.25,15``
  allows.
* Property-based fuzzing (hypothesis) of every data loader: random bytes, truncated or
  bit-flipped valid files, valid containers (pickle, .mat, .npz, HDF5, cache) holding the
  wrong types and shapes. Each must load or raise DatasetError naming the file, within a
  watchdog, leaving no cache or temporary file behind.
"""
import dataclasses
import gzip
import io
import math
import os
import pickle
import warnings

import h5py
import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import integrate, special

from stick_breaking_dgms.checkpoints import CheckpointError, read_checkpoint, write_checkpoint
from stick_breaking_dgms.datasets import DatasetError, cache, frey, mnist
from stick_breaking_dgms.datasets import mnist_plus_rot, svhn
from stick_breaking_dgms.datasets.custom import load_custom
from stick_breaking_dgms.runfiles import RunFiles, load_latest_checkpoint

from helpers import Watchdog

SMALL = ["--hidden-size", "50", "--truncation-level", "10", "--progress", "never"]


# =========================================================================== NaN policy

@pytest.fixture(scope="module")
def small_mnist(mnist):
    d = mnist.astype("float32")
    return dataclasses.replace(d, train_x=d.train_x[:5000], train_y=d.train_y[:5000],
                               valid_x=d.valid_x[:1000], valid_y=d.valid_y[:1000],
                               test_x=d.test_x[:1000], test_y=d.test_y[:1000])


def _snapshot(task):
    return ({n: v.get_value().copy() for n, v in task.params.items()},
            {n: v.get_value().copy() for n, v in task.optimizer_state.items()},
            [r.get_value().bit_generator.state for r in task.rngs])


def _reset(task, snap):
    params, opt, rngs = snap
    for n, v in task.params.items():
        v.set_value(params[n].copy())
    for n, v in task.optimizer_state.items():
        v.set_value(opt[n].copy())
    for r, s in zip(task.rngs, rngs):
        g = r.get_value()
        g.bit_generator.state = s
        r.set_value(g)


@pytest.fixture(scope="module")
def tasks(small_mnist):
    """One compiled task per NaN policy, with their initial state to reset between tests."""
    from stick_breaking_dgms import cli
    from stick_breaking_dgms.factory import build_task
    out = {}
    for policy in ("stop", "skip-batch"):
        _, _, config = cli.parse_args("sb_vae", SMALL + ["--on-nan", policy])
        task = build_task(config, small_mnist)
        out[policy] = (task, _snapshot(task))
    return out


def _trainer(task, directory, policy, max_epoch=3):
    from stick_breaking_dgms.training import Trainer
    files = RunFiles(str(directory), "stickBreaking_vae", "t")
    out = io.StringIO()
    return Trainer(task, files, {"args": {"seed": 1}}, max_epoch, 100, on_nan=policy,
                   progress="never", out=out), files, out


def _poison(trainer, task, epoch, batch, record):
    """Make training batch ``batch`` of ``epoch`` all-NaN for one step (then restore it)."""
    real_step = task.train_step
    bs = task.batch_size

    def step(i):
        if trainer.state.epoch == epoch and i == batch:
            x = task.train_x.get_value(borrow=True)
            saved = x[i * bs:(i + 1) * bs].copy()
            x[i * bs:(i + 1) * bs] = np.nan
            task.train_x.set_value(x, borrow=True)
            before = {n: v.get_value().copy() for n, v in task.params.items()}
            try:
                values = real_step(i)
            finally:
                x[i * bs:(i + 1) * bs] = saved
                task.train_x.set_value(x, borrow=True)
            record.append((values, before, {n: v.get_value().copy()
                                            for n, v in task.params.items()}))
            return values
        return real_step(i)

    task.train_step = step
    return real_step


def _run_with_nan_batch(tasks, directory, policy, epoch=1):
    """Train from the fresh snapshot with batch 7 of ``epoch`` (1) all-NaN.

    Returns the exit code, the trainer, its files and output, and what the poisoned
    step recorded: (step outputs, parameters before, parameters after).
    """
    task, snap = tasks[policy]
    _reset(task, snap)
    trainer, files, out = _trainer(task, directory, policy)
    record = []
    real = _poison(trainer, task, epoch=epoch, batch=7, record=record)
    try:
        code = trainer.run()
    finally:
        task.train_step = real
    return code, trainer, files, out, record[0]


def _all_finite(arrays):
    return all(np.all(np.isfinite(a)) for a in arrays.values())


def test_nan_stop_reports_the_best_epoch_and_exits_nonzero(tasks, tmp_path):
    code, trainer, files, out, poisoned = _run_with_nan_batch(tasks, tmp_path, "stop")
    task = tasks["stop"][0]
    assert code != 0
    values, before, after = poisoned
    assert not all(math.isfinite(v) for v in values)
    lines = trainer.state.lines
    assert len(lines) == 3, lines
    assert lines[0].startswith("epoch 0,") and lines[0].endswith("***")
    assert lines[1] == "found NaN in training batch 7 of epoch 1...aborting training..."
    assert lines[2].startswith("Ended due to NaN! best epoch 0, best valid error")
    test_score = float(lines[2].split("test error ")[1].split(",")[0])
    assert math.isfinite(test_score)
    assert "Training stopped on a NaN" in out.getvalue()
    # the saved best and the final checkpoint hold the (finite) epoch-0 parameters
    best, best_meta = read_checkpoint(files.best)
    assert best_meta["best_epoch"] == 0 and _all_finite(best["params"])
    groups, meta = read_checkpoint(files.checkpoint)
    assert meta["state"]["status"] == "nan"
    for group in groups.values():
        assert _all_finite(group)
    for n in best["params"]:
        assert np.array_equal(groups["params"][n], best["params"][n])
        assert np.array_equal(task.params[n].get_value(), best["params"][n])
    with h5py.File(files.metrics, "r") as f:
        assert f.attrs["status"] == "nan"
        assert f.attrs["test_score"] == pytest.approx(test_score, abs=5e-5)
    with open(files.results) as f:
        assert f.read().splitlines() == lines


def test_a_nan_before_any_epoch_finished_says_nothing_was_tested(tasks, tmp_path):
    code, trainer, files, out, _ = _run_with_nan_batch(tasks, tmp_path, "stop", epoch=0)
    assert code != 0
    assert trainer.state.lines[-1].endswith("nothing to test")
    assert "no epoch had finished: nothing to test" in out.getvalue()
    assert "restored and tested" not in out.getvalue()
    assert not os.path.exists(files.best)


def test_nan_skip_batch_withholds_the_update_and_counts_it(tasks, tmp_path):
    code, trainer, files, out, poisoned = _run_with_nan_batch(tasks, tmp_path, "skip-batch")
    assert code == 0
    values, before, after = poisoned
    assert not all(math.isfinite(v) for v in values)
    for n in before:  # the poisoned batch changed nothing
        assert np.array_equal(before[n], after[n])
    lines = trainer.state.lines
    assert len(lines) == 4, lines
    assert "skipped" not in lines[0] and "skipped" not in lines[2]
    assert "skipped 1 NaN batches" in lines[1]
    assert lines[3].startswith("Done!") and lines[3].endswith("skipped 1 NaN batches in all")
    with h5py.File(files.metrics, "r") as f:
        assert list(f["skipped_batches"][()]) == [0, 1, 0]
        assert np.all(np.isfinite(f["train_nll"][()]))
    groups, _ = read_checkpoint(files.checkpoint)
    for group in groups.values():
        assert _all_finite(group)
    assert _all_finite(read_checkpoint(files.best)[0]["params"])


def test_skip_batch_stops_when_every_batch_is_nan(tasks, tmp_path, small_mnist):
    task, snap = tasks["skip-batch"]
    _reset(task, snap)
    trainer, files, out = _trainer(task, tmp_path, "skip-batch", max_epoch=2)
    real = task.train_step
    task.train_step = lambda i: [float("nan")] * len(task.train_metrics) \
        if trainer.state.epoch == 1 else real(i)
    try:
        code = trainer.run()
    finally:
        task.train_step = real
    assert code != 0
    assert trainer.state.lines[1] == "found NaN in every training batch of epoch 1..." \
                                     "aborting training..."
    assert _all_finite(read_checkpoint(files.best)[0]["params"])


# =========================================================================== restore

def _finished_run(task, snap, directory):
    """Train two epochs: a finished checkpoint, and the resumable end-of-epoch-1 one in prev."""
    _reset(task, snap)
    trainer, files, _ = _trainer(task, directory, "skip-batch", max_epoch=2)
    trainer.run()
    return files


def test_restore_refuses_shapes_that_do_not_fit_and_changes_nothing(tasks, tmp_path):
    from stick_breaking_dgms.training import Trainer
    task, snap = tasks["skip-batch"]
    files = _finished_run(task, snap, tmp_path)
    # the final save rotated the last periodic checkpoint (end of epoch 1, running) to prev
    good_prev, prev_meta = read_checkpoint(files.previous_checkpoint)
    assert prev_meta["state"]["status"] == "running" and prev_meta["state"]["epoch"] == 2
    groups, meta = read_checkpoint(files.previous_checkpoint)
    # a checkpoint of a model with 20 sticks in a run with 10: valid file, wrong shapes
    groups["params"]["latent/W_a"] = np.zeros((50, 19), np.float32)
    write_checkpoint(files.checkpoint, groups, meta)
    _reset(task, snap)
    before = {n: v.get_value().copy() for n, v in task.params.items()}
    trainer = Trainer(task, files, {}, 2, 100, progress="never", out=io.StringIO())
    with pytest.raises(CheckpointError) as info:
        trainer.restore(groups, meta, files.checkpoint)
    message = str(info.value)
    assert files.checkpoint in message and "latent/W_a" in message and "(50, 9)" in message
    for n, v in task.params.items():  # nothing was applied
        assert np.array_equal(v.get_value(), before[n])
    assert trainer.state.epoch == 0
    # the CLI's loading: refuse it, use .prev.h5
    logged = []
    got = load_latest_checkpoint(files, logged.append,
                                 lambda g, m, p: trainer.restore(g, m, p))
    assert got[2] == files.previous_checkpoint
    assert any("refusing" in m and files.checkpoint in m for m in logged)
    assert trainer.state.epoch == 2 and trainer.state.status == "running"
    for n, v in task.params.items():
        assert np.array_equal(v.get_value(), good_prev["params"][n])


@pytest.mark.parametrize("damage", ["dtype", "rng", "state", "history", "history entry",
                                    "nan best"])
def test_restore_refuses_inconsistent_checkpoints(tasks, tmp_path, damage):
    from stick_breaking_dgms.training import Trainer
    task, snap = tasks["skip-batch"]
    files = _finished_run(task, snap, tmp_path)
    groups, meta = read_checkpoint(files.previous_checkpoint)
    if damage == "dtype":
        groups["params"] = {n: a.astype(np.float64) for n, a in groups["params"].items()}
    elif damage == "rng":
        meta["rng_states"] = [{"bit_generator": "MT19937", "state": {}}]
    elif damage == "state":
        meta["state"]["batch"] = 10 ** 6
    elif damage == "history":
        meta["state"]["history"] = []
    elif damage == "history entry":  # the right length, a value of the wrong type
        meta["state"]["history"][0]["skipped_batches"] = "x"
    else:
        groups["best"] = {n: np.full_like(a, np.nan) for n, a in groups["best"].items()}
    _reset(task, snap)
    trainer = Trainer(task, files, {}, 2, 100, progress="never", out=io.StringIO())
    with pytest.raises(CheckpointError) as info:
        trainer.restore(groups, meta, files.previous_checkpoint)
    assert files.previous_checkpoint in str(info.value)
    assert trainer.state.epoch == 0 and trainer.best_params is None


# =========================================================================== KL range

CLIP = (0.25, 15.0)
GRID = np.round(np.linspace(*CLIP, 296), 10)  # step 0.05, holds 1, 3, 5 and 8 exactly
ALPHA0S = [1.0, 3.0, 5.0, 8.0]


def _kl_by_quadrature(a, b, beta):
    """The true KL(Kumaraswamy(a, b) || Beta(1, beta)) by integrating over the quantile."""
    def integrand(t):
        log_s = np.log1p(-t) / b  # log(1 - v^a)
        s = np.exp(log_s)
        log_v = (np.log1p(-s) if s < 0.5 else np.log(-np.expm1(log_s))) / a
        log_1mv = np.log(-np.expm1(log_v)) if log_v > -np.log(2) else np.log1p(-np.exp(log_v))
        log_q = np.log(a) + np.log(b) + (a - 1) * log_v + (b - 1) * log_s
        log_p = (beta - 1) * log_1mv - special.betaln(1.0, beta)
        return log_q - log_p

    with warnings.catch_warnings():  # near KL = 0 the relative tolerance cannot be met
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        return integrate.quad(integrand, 0.0, 1.0, limit=500, epsabs=1e-12,
                              epsrel=1e-10)[0]


@pytest.fixture(scope="module")
def faithful_kl():
    """The model's default KL (ten-term series, series digamma) on the clipped range."""
    from stick_breaking_dgms.distributions import kumaraswamy_beta_kl
    out = {}
    for dtype in (np.float32, np.float64):
        a, b = np.meshgrid(GRID.astype(dtype), GRID.astype(dtype), indexing="ij")
        for alpha0 in ALPHA0S:
            out[dtype.__name__, alpha0] = (a, b, kumaraswamy_beta_kl(a, b, 1.0, alpha0))
    return out


# Measured on this grid (float32 and float64 agree to 1e-6): the faithful KL is negative
#   alpha0 = 1: at a = b = 0.25 only, -0.200 (the series digamma, -1/(12 b^2) = -1.33 there);
#   alpha0 = 3: 20 points with a in [0.95, 1.05], b in [2.65, 3.3], down to -0.00239;
#   alpha0 = 5: 5 points with a = 1, b in [4.9, 5.1], down to -0.000266;
#   alpha0 = 8: 2 points with a = 1, b in {7.95, 8}, down to -2.0e-5;
# all from the ten-term cut of the series (or, for alpha0 = 1, the series digamma), where
# the true KL is >= 0 (0 at a = 1, b = alpha0); test_kl_negative_region pins that down.
# So clipping a and b alone cannot make the faithful KL non-negative: the safety option
# also floors each stick's KL at 0 (families.Kumaraswamy.kl), which is what the
# model trains on. This test checks the model's clipped KL, not the bare formula.
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("alpha0", ALPHA0S)
def test_clipped_kl_is_nonnegative(faithful_kl, dtype, alpha0):
    from stick_breaking_dgms import backend
    from stick_breaking_dgms.backend import at, function
    from stick_breaking_dgms.families import Kumaraswamy
    a, b, faithful = faithful_kl[dtype, alpha0]
    with backend.floatX_as(dtype):
        latent = Kumaraswamy(1, 1, np.random.default_rng(0), alpha0=alpha0, clip=(0.25, 15.0))
        av, bv = at.vector("a"), at.vector("b")
        # what the posterior can emit: a and b clipped to the box; one stick per row
        post = {"a": at.clip(av, 0.25, 15.0)[:, None], "b": at.clip(bv, 0.25, 15.0)[:, None]}
        kl = function([av, bv], latent.kl(post))(a.ravel(), b.ravel()).reshape(a.shape)
    assert np.all(np.isfinite(kl))
    neg = kl < 0
    assert not neg.any(), (f"KL < 0 at {neg.sum()} of {kl.size} points, min {kl.min():.3g} at "
                           f"a = {a[np.unravel_index(kl.argmin(), kl.shape)]}, "
                           f"b = {b[np.unravel_index(kl.argmin(), kl.shape)]}")
    # the floor changes nothing where the faithful KL is already non-negative
    keep = faithful >= 0
    np.testing.assert_allclose(kl[keep], faithful[keep], rtol=1e-5 if dtype == "float32"
                               else 1e-12, atol=1e-6 if dtype == "float32" else 1e-12)
    assert np.all(kl[~keep] == 0)


def test_clip_kumaraswamy_flag_reaches_the_posterior_and_the_kl():
    """--clip-kumaraswamy 0.25,15 from the command line: whatever the encoder emits, a and b
    stay in the box and every stick's KL is >= 0 (the model's own posterior and KL)."""
    from stick_breaking_dgms import cli
    from stick_breaking_dgms.backend import at, function
    from stick_breaking_dgms.factory import build_model
    _, _, config = cli.parse_args("sb_vae", ["--clip-kumaraswamy", "0.25,15", "--hidden-size",
                                             "4", "--truncation-level", "6"])
    net = build_model(config, 784, "bernoulli")
    rng = np.random.default_rng(0)
    net.latent.family.W_a.set_value(rng.normal(0, 30, (4, 5)).astype("float32"))
    net.latent.family.W_b.set_value(rng.normal(0, 30, (4, 5)).astype("float32"))
    h = at.matrix("h")
    post = net.latent.posterior(h)
    f = function([h], [post["a"], post["b"], net.latent.kl(post), net.latent.kl(
        {"a": post["a"], "b": post["b"]})])
    hs = np.concatenate([rng.normal(0, 3, (500, 4)), np.eye(4) * 50, -np.eye(4) * 50,
                         np.zeros((1, 4))]).astype("float32")
    a, b, kl, _ = f(hs)
    assert a.min() >= 0.25 and a.max() <= 15 and b.min() >= 0.25 and b.max() <= 15
    assert (a == 0.25).any() and (a == 15).any()  # the encoder really hit both bounds
    assert np.all(np.isfinite(kl)) and np.all(kl >= 0)
    _, off, _ = cli.parse_args("sb_vae", [])
    assert off.clip_kumaraswamy is None  # off by default, as the original


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("alpha0", ALPHA0S)
def test_kl_negative_region(faithful_kl, dtype, alpha0):
    """Where the clipped faithful KL is negative, how negative, and what the truth is."""
    a, b, kl = faithful_kl[dtype, alpha0]
    assert np.all(np.isfinite(kl))  # clipping keeps every value finite
    neg = kl < 0
    if alpha0 == 1.0:
        # KL(Kumaraswamy(a, b) || Uniform) has no series; only the digamma series errs,
        # and only where b is small and a < 1
        assert np.all(a[neg] < 1) and np.all(b[neg] < 0.5)
        assert kl.min() > -0.21
    else:
        assert np.all(np.abs(a[neg] - 1) <= 0.05 + 1e-6)
        assert np.all(np.abs(b[neg] - alpha0) <= 0.35 + 1e-6)
        assert kl.min() > {3.0: -0.0025, 5.0: -0.0003, 8.0: -2.5e-5}[alpha0]
    for ai, bi, ki in zip(a[neg], b[neg], kl[neg]):
        truth = _kl_by_quadrature(float(ai), float(bi), alpha0)
        assert truth >= -1e-9, (ai, bi, truth)
        assert ki < truth  # the faithful value underestimates the truth there


@pytest.mark.parametrize("alpha0", ALPHA0S)
def test_exact_digamma_with_many_terms_is_nonnegative_on_the_clipped_range(alpha0):
    """The truth side: exact digamma and 2,000 terms (a lower bound of the true KL, since
    every term of the series is positive) on a coarser grid, float64. At a = 1, b = alpha0
    the true KL is 0 and the 2,000-term cut leaves -5e-10 (alpha0 = 3) at most."""
    from stick_breaking_dgms.distributions import kumaraswamy_beta_kl
    g = np.round(np.arange(1, 61) * 0.25, 10)  # step 0.25 over [0.25, 15]
    assert 1.0 in g and alpha0 in g
    a, b = np.meshgrid(g, g, indexing="ij")
    kl = kumaraswamy_beta_kl(a, b, 1.0, alpha0, taylor_terms=2000, digamma="exact")
    # at a = 1, b = alpha0 the KL is 0; the 2,000-term cut leaves < 1e-9 of the series
    assert kl.min() >= -1e-9


# =========================================================================== loader fuzzing

FUZZ = settings(max_examples=int(os.environ.get("SBDGM_FUZZ_EXAMPLES", 40)), deadline=10000,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])


def _write_pickle(path, obj):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _frey_ff(n=30):
    return np.random.default_rng(0).integers(0, 256, (560, n), dtype=np.uint8)


def _svhn_mat(path, n=6):
    rng = np.random.default_rng(1)
    scipy.io.savemat(path, {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                            "y": rng.integers(1, 11, (n, 1)).astype(np.uint8)})


def _mnist_pickle(path, n=4):
    rng = np.random.default_rng(2)
    _write_pickle(path, tuple((rng.random((n, 784), dtype=np.float32),
                               rng.integers(0, 10, n).astype(np.int64)) for _ in range(3)))


def _mpr_original(path, n=20):
    rng = np.random.default_rng(3)
    _write_pickle(path, {"inputs": rng.random((n, 784), dtype=np.float32),
                         "labels": rng.integers(0, 10, n), "rotated": rng.random(n) < 0.5})


def _svhn_original(path, n=8):
    rng = np.random.default_rng(4)
    _write_pickle(path, {"train_data": rng.standard_normal((n, 5)).astype(np.float32),
                         "train_labels": rng.integers(1, 11, (n, 1)),
                         "test_data": rng.standard_normal((3, 5)).astype(np.float32),
                         "test_labels": rng.integers(1, 11, 3)})


def _read_small_mnist(path):
    """read_mnist_pickle for a 12-image fixture (the real file has 70,000; same checks)."""
    saved, mnist.N_IMAGES = mnist.N_IMAGES, 12
    try:
        return mnist.read_mnist_pickle(path)
    finally:
        mnist.N_IMAGES = saved


CACHE_EXPECTED = {"inputs": ((4, 3), np.float32), "labels": ((4,), np.int32)}
CACHE_META = {"dataset": "fuzz", "version": 1}


def _cache(path):
    cache.write_cache(path, {"inputs": np.ones((4, 3), np.float32),
                             "labels": np.arange(4, dtype=np.int32)}, CACHE_META)


def _custom_npz(path):
    np.savez(path, x=np.random.default_rng(5).random((10, 3)), y=np.arange(10) % 3)


def _custom_h5(path):
    with h5py.File(path, "w") as f:
        f["x"] = np.random.default_rng(6).random((10, 3))
        f["y"] = np.arange(10) % 3


# name -> (file name, writer of a valid small file, reader)
LOADERS = {
    "mnist pickle": ("mnist.pkl.gz", _mnist_pickle, _read_small_mnist),
    "mnist_plus_rot pickle": ("mnist_plus_rot.pkl", _mpr_original,
                              lambda p: mnist_plus_rot.read_original(p, 20)),
    "mnist_plus_rot pickle.gz": ("mnist_plus_rot.pkl.gz", _mpr_original,
                                 lambda p: mnist_plus_rot.read_original(p, 20)),
    "mnist_plus_rot cache": ("mpr.npz", _cache,
                             lambda p: cache.read_cache(p, CACHE_EXPECTED, CACHE_META)),
    "svhn mat": ("train_32x32.mat", _svhn_mat, svhn.read_svhn_mat),
    "svhn pickle": ("svhn_pca.pkl", _svhn_original, svhn.read_original),
    "svhn cache": ("svhn_pca_seed1_rgb_k5.npz", _cache, svhn.load_projection),
    "frey mat": ("frey_rawface.mat", lambda p: scipy.io.savemat(p, {"ff": _frey_ff()}),
                 lambda p: frey.read_frey_mat(p, None)),
    "custom npz": ("custom.npz", _custom_npz, load_custom),
    "custom h5": ("custom.h5", _custom_h5, load_custom),
}


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
    base = tmp_path_factory.mktemp("valid")
    out = {}
    for key, (name, make, read) in LOADERS.items():
        path = str(base / name)
        make(path)
        if key != "svhn cache":  # a generic cache is not an SVHN one: refused, not loaded
            read(path)  # the valid file loads
        with open(path, "rb") as f:
            out[key] = f.read()
    return out


def _check(directory, name, read, data):
    """Write ``data`` as ``name``; ``read`` loads it or raises DatasetError naming it, and
    leaves the directory as it was."""
    directory.mkdir(exist_ok=True)
    for f in directory.iterdir():
        f.unlink()
    path = directory / name
    path.write_bytes(data)
    with Watchdog(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            read(str(path))
            loaded = True
        except DatasetError as e:
            assert name in str(e), str(e)
            loaded = False
    assert sorted(os.listdir(directory)) == [name], "a cache or temp file was left behind"
    return loaded


@FUZZ
@given(key=st.sampled_from(sorted(LOADERS)), data=st.binary(max_size=3000))
def test_fuzz_loaders_random_bytes(tmp_path, key, data):
    name, _, read = LOADERS[key]
    assert not _check(tmp_path / "d", name, read, data)


@FUZZ
@given(key=st.sampled_from(sorted(LOADERS)), cut=st.floats(0.0, 1.0, exclude_max=True),
       flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 255)),
                      max_size=3))
def test_fuzz_loaders_truncated_or_flipped(tmp_path, valid_files, key, cut, flips):
    name, _, read = LOADERS[key]
    data = bytearray(valid_files[key])
    if cut:
        data = data[:int(len(data) * cut)]
    for where, mask in flips:
        if data:
            data[int(where * len(data))] ^= mask
    _check(tmp_path / "d", name, read, bytes(data))


# -- valid containers with the wrong contents ------------------------------------------

DTYPES = ["f4", "f8", "i1", "i8", "u1", "u4", "?", "c8", "U3", "S2", "M8[s]"]


@st.composite
def arrays(draw, max_dims=4):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = tuple(draw(st.lists(st.integers(0, 5), max_size=max_dims)))
    n = int(np.prod(shape))
    kind = draw(st.sampled_from(["zeros", "random", "special"]))
    if dtype.kind in "US":
        return np.full(shape, "ab", dtype=dtype)
    if dtype.kind == "M":
        return np.zeros(shape, dtype=dtype)
    if kind == "zeros":
        return np.zeros(shape, dtype=dtype)
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    values = rng.standard_normal(n) * draw(st.sampled_from([1.0, 10.0, 1e6, 1e40]))
    if kind == "special" and n:
        values[rng.integers(0, n)] = draw(st.sampled_from([np.nan, np.inf, -np.inf, -1.0]))
    with np.errstate(all="ignore"):
        return values.astype(dtype).reshape(shape)


python_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.floats(), st.text(max_size=5),
              arrays()),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.tuples(children, children),
                               st.dictionaries(st.text(max_size=5), children, max_size=3)),
    max_leaves=8)


def _pair():
    return st.one_of(st.tuples(arrays(3), arrays(2)), python_values)


@FUZZ
@given(obj=st.one_of(st.tuples(_pair(), _pair(), _pair()), python_values),
       key=st.sampled_from(["mnist pickle"]))
def test_fuzz_mnist_pickle_wrong_contents(tmp_path, obj, key):
    name, _, read = LOADERS[key]
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb") as f:
        pickle.dump(obj, f, protocol=2)
    _check(tmp_path / "d", name, read, buf.getvalue())


@FUZZ
@given(key=st.sampled_from(["mnist_plus_rot pickle", "svhn pickle"]),
       values=st.dictionaries(st.sampled_from(["inputs", "labels", "rotated", "train_data",
                                               "train_labels", "test_data", "test_labels"]),
                              st.one_of(arrays(), python_values), max_size=7),
       whole=st.one_of(st.none(), python_values))
def test_fuzz_pickled_dicts_wrong_contents(tmp_path, key, values, whole):
    name, _, read = LOADERS[key]
    _check(tmp_path / "d", name, read, pickle.dumps(values if whole is None else whole,
                                                    protocol=2))


def _mat_bytes(variables):
    buf = io.BytesIO()
    scipy.io.savemat(buf, variables)
    return buf.getvalue()


mat_values = st.one_of(arrays(), st.text(max_size=5), st.integers(-5, 300),
                       st.dictionaries(st.sampled_from(["a", "b"]), arrays(2), max_size=2))


@FUZZ
@given(key=st.sampled_from(["svhn mat", "frey mat"]),
       variables=st.dictionaries(st.sampled_from(["X", "y", "ff", "other"]), mat_values,
                                 max_size=3))
def test_fuzz_mat_files_wrong_contents(tmp_path, key, variables):
    name, _, read = LOADERS[key]
    variables = {k: v for k, v in variables.items()
                 if not (isinstance(v, np.ndarray) and v.dtype.kind in "M")}
    try:
        data = _mat_bytes(variables)
    except Exception:  # savemat cannot write this value: not a file to test
        assume(False)
    _check(tmp_path / "d", name, read, data)


custom_names = st.sampled_from(["x", "y", "split", "train_x", "valid_x", "test_x", "train_y",
                                "valid_y", "test_y", "other"])


@FUZZ
@given(contents=st.dictionaries(custom_names, arrays(), max_size=5))
def test_fuzz_custom_npz_wrong_contents(tmp_path, contents):
    buf = io.BytesIO()
    np.savez(buf, **contents)
    _check(tmp_path / "d", "custom.npz", load_custom, buf.getvalue())


@FUZZ
@given(contents=st.dictionaries(custom_names, st.one_of(arrays(), st.just("group"),
                                                        st.just("huge")), max_size=5))
def test_fuzz_custom_h5_wrong_contents(tmp_path, contents):
    directory = tmp_path / "h"
    directory.mkdir(exist_ok=True)
    path = directory / "src.h5"
    with h5py.File(path, "w") as f:
        for k, v in contents.items():
            if isinstance(v, str) and v == "group":
                f.create_group(k)
            elif isinstance(v, str):  # declared 8 TB, stored as nothing (fill value)
                f.create_dataset(k, shape=(10 ** 6, 10 ** 6), dtype="f8", chunks=(1, 1024))
            elif v.dtype.kind == "U":
                f[k] = v.astype("S")
            elif v.dtype.kind == "M":
                continue
            else:
                f[k] = v
    data = path.read_bytes()
    _check(tmp_path / "d", "custom.h5", load_custom, data)


@FUZZ
@given(members=st.dictionaries(st.sampled_from(["inputs", "labels", "__meta__",
                                                "__checksum__", "extra"]),
                               st.one_of(arrays(), st.text(max_size=30).map(np.array)),
                               max_size=5),
       key=st.sampled_from(["mnist_plus_rot cache", "svhn cache"]))
def test_fuzz_caches_wrong_contents(tmp_path, members, key):
    name, _, read = LOADERS[key]
    buf = io.BytesIO()
    np.savez(buf, **members)
    assert not _check(tmp_path / "d", name, read, buf.getvalue())


def test_corrupt_sources_never_leave_a_cache(tmp_path):
    """A build from a corrupt source raises DatasetError and writes no cache."""
    rng = np.random.default_rng(7)
    for attempt in range(3):
        d = tmp_path / f"mpr{attempt}"
        d.mkdir()
        (d / "mnist.pkl.gz").write_bytes(rng.bytes(500 * (attempt + 1)))
        with Watchdog(), pytest.raises(DatasetError, match="mnist.pkl.gz"):
            mnist_plus_rot.load_mnist_plus_rot(str(d), n_per_half=5, allow_download=False)
        assert sorted(os.listdir(d)) == ["mnist.pkl.gz"]
        s = tmp_path / f"svhn{attempt}"
        s.mkdir()
        (s / "train_32x32.mat").write_bytes(rng.bytes(700 * (attempt + 1)))
        _svhn_mat(str(s / "test_32x32.mat"))
        with Watchdog(), pytest.raises(DatasetError, match="train_32x32.mat"):
            svhn.load_svhn_pca(str(s), n_train=3, n_valid=1, n_components=2)
        assert sorted(os.listdir(s)) == ["test_32x32.mat", "train_32x32.mat"]
