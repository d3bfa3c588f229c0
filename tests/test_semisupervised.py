"""Semi-supervised DGMs (SB-DGM, Gauss-DGM): the costs against a NumPy loop over the labels,
shared parameters, the labelled batch size, a short real-MNIST run and the classify tool."""
import dataclasses
import os
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from scipy.special import gammaln

from stick_breaking_dgms import backend, classify, cli
from stick_breaking_dgms.backend import at, function
from stick_breaking_dgms.checkpoints import read_checkpoint, write_checkpoint
from stick_breaking_dgms.experiments import LabelSplitError, SemiSupervisedTask, split_labels
from stick_breaking_dgms.models import SemiSupervisedDGM
from stick_breaking_dgms.runfiles import RunFiles

N_CLASSES = 10


float_x = backend.floatX_as


# -- NumPy reference, written independently of the package --------------------------------

def np_softplus(x):
    return np.logaddexp(0.0, x)


def np_relu(x):
    return np.maximum(x, 0.0)


def np_kumaraswamy_draw(a, b, u):
    return (1.0 - u ** (1.0 / b)) ** (1.0 / a)


def np_stick_breaking(v):
    n, k1 = v.shape
    pi = np.empty((n, k1 + 1))
    remaining = np.ones(n)
    for k in range(k1):
        pi[:, k] = v[:, k] * remaining
        remaining = remaining * (1.0 - v[:, k])
    pi[:, k1] = remaining
    return pi


def np_kumaraswamy_beta_kl(a, b, alpha0, terms=10):
    """The original's KL to Beta(1, alpha0): ten series terms, psi(b) by its asymptotic series."""
    psi_b = np.log(b) - 1.0 / (2.0 * b) - 1.0 / (12.0 * b ** 2)
    kl = (a - 1.0) / a * (-0.57721 - psi_b - 1.0 / b)
    kl += np.log(a * b) + (gammaln(1.0) + gammaln(alpha0) - gammaln(1.0 + alpha0))
    kl -= (b - 1.0) / b
    series = np.zeros_like(a)
    for m in range(1, terms + 1):
        beta_fn = np.exp(gammaln(m / a) + gammaln(b) - gammaln(m / a + b))
        series += beta_fn / (m + a * b)
    kl += (alpha0 - 1.0) * b * series
    return kl.sum(axis=1)


def np_bernoulli_nll(x, logits):
    return np.sum(np_softplus(logits) - x * logits, axis=-1)


class NumpyDGM:
    """The SB-DGM / Gauss-DGM forward pass for a 1-hidden-layer ReLU model, from its arrays."""

    def __init__(self, p, kind, alpha0=5.0):
        self.p, self.kind, self.alpha0 = p, kind, alpha0

    def encode(self, x):
        p = self.p
        h = np_relu(x @ p["encoder/0/W"] + p["encoder/0/b"])
        logits = h @ p["classifier/W"] + p["classifier/b"]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        q = np.clip(e / e.sum(axis=1, keepdims=True), 1e-4, 1 - 1e-4)
        return h, q

    def latent(self, h, noise):
        p = self.p
        if self.kind == "kumaraswamy":
            a, b = np_softplus(h @ p["latent/W_a"]), np_softplus(h @ p["latent/W_b"])
            code = np_stick_breaking(np_kumaraswamy_draw(a, b, noise))
            kl = np_kumaraswamy_beta_kl(a, b, self.alpha0)
        else:
            mu, log_sigma = h @ p["latent/W_mu"], h @ p["latent/W_sigma"]
            code = mu + np.exp(log_sigma) * noise
            kl = np.sum(0.5 * (mu ** 2 + np.exp(2 * log_sigma) - 1) - log_sigma, axis=1)
        return code, kl

    def decode(self, code, label):
        p = self.p
        h = np_relu(code @ p["decoder/0/W"] + p["decoder/0/b"] + p["decoder/0/W_y"][label])
        return h @ p["decoder/1/W"] + p["decoder/1/b"]

    def unlabelled(self, x, noise):
        h, q = self.encode(x)
        code, kl = self.latent(h, noise)
        expected_nll = np.zeros(len(x))
        for y in range(N_CLASSES):  # the explicit loop over the ten labels
            labels = np.full(len(x), y)
            expected_nll += q[:, y] * np_bernoulli_nll(x, self.decode(code, labels))
        entropy = -np.sum(q * np.log(q), axis=1)
        return expected_nll, kl, entropy, q

    def labelled(self, x, y, noise):
        h, q = self.encode(x)
        code, kl = self.latent(h, noise)
        return np_bernoulli_nll(x, self.decode(code, y)), kl, -np.log(q[np.arange(len(y)), y])


# -- the costs against the NumPy loop, in float64 --------------------------------------------

D_IN, HIDDEN, LATENT, N_U, N_L, WEIGHT = 30, 16, 6, 7, 5, 0.375


@pytest.fixture(scope="module", params=["kumaraswamy", "gaussian"])
def costs64(request):
    """A small float64 model with large random weights, and its compiled terms (once per kind)."""
    kind = request.param
    with float_x("float64"):
        model = SemiSupervisedDGM(D_IN, [HIDDEN], [False], "relu", kind, LATENT, "bernoulli",
                                  seed=11)
        rng = np.random.default_rng(5)
        for var in model.params.values():  # far from the tiny initial weights: q(y|x) peaked,
            var.set_value(rng.normal(0, 0.5, var.get_value().shape))  # labels matter
        x_u, x_l, u_u, u_l = (at.matrix(n) for n in ("x_u", "x_l", "u_u", "u_l"))
        y = at.ivector("y")
        unlabelled = model.unlabelled_terms(x_u, noise=u_u)
        labelled = model.labelled_terms(x_l, y, noise=u_l)
        # cost() draws its own noise: hand it ours, in the order it asks (labelled first)
        given = iter([u_l, u_u])
        model.latent.noise = lambda srng, n: next(given)
        total, terms = model.cost(x_l, y, x_u, WEIGHT)
        assert next(given, None) is None  # both branches asked for noise
        f = function([x_u, x_l, y, u_u, u_l],
                     list(unlabelled) + list(labelled) + [total, terms["unlabelled_nll"]])
    params = {name: var.get_value() for name, var in model.params.items()}
    assert all(v.dtype == np.float64 for v in params.values())
    return kind, f, NumpyDGM(params, kind)


def _inputs(kind, seed=0):
    rng = np.random.default_rng(seed)
    xu, xl = rng.uniform(size=(N_U, D_IN)), rng.uniform(size=(N_L, D_IN))
    y = rng.integers(0, N_CLASSES, N_L).astype(np.int32)
    if kind == "kumaraswamy":
        uu = rng.uniform(0.01, 0.99, (N_U, LATENT - 1))
        ul = rng.uniform(0.01, 0.99, (N_L, LATENT - 1))
    else:
        uu, ul = rng.normal(size=(N_U, LATENT)), rng.normal(size=(N_L, LATENT))
    return xu, xl, y, uu, ul


def test_unlabelled_cost_equals_a_loop_over_the_ten_labels(costs64):
    kind, f, ref = costs64
    xu, xl, y, uu, ul = _inputs(kind)
    got_nll, got_kl, got_entropy, got_q = f(xu, xl, y, uu, ul)[:4]
    nll, kl, entropy, q = ref.unlabelled(xu, uu)
    # the label distribution is far from uniform, so a mixed-up label would show
    assert q.max() > 0.5 and np.ptp(q, axis=1).min() > 0.1
    np.testing.assert_allclose(got_q, q, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got_nll, nll, rtol=1e-11)
    np.testing.assert_allclose(got_kl, kl, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got_entropy, entropy, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(np.mean(got_nll + got_kl - got_entropy),
                               np.mean(nll + kl - entropy), rtol=1e-11)


def test_labelled_terms_and_total_cost_match_numpy(costs64):
    kind, f, ref = costs64
    xu, xl, y, uu, ul = _inputs(kind, seed=1)
    out = f(xu, xl, y, uu, ul)
    got_l_nll, got_l_kl, got_label_nll, got_total, got_u_nll = out[4:]
    nll_l, kl_l, label_nll = ref.labelled(xl, y, ul)
    np.testing.assert_allclose(got_l_nll, nll_l, rtol=1e-11)
    np.testing.assert_allclose(got_l_kl, kl_l, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got_label_nll, label_nll, rtol=1e-11, atol=1e-14)
    nll_u, kl_u, entropy, _ = ref.unlabelled(xu, uu)
    expected = (WEIGHT * np.mean(nll_l + kl_l + label_nll)
                + (1 - WEIGHT) * np.mean(nll_u + kl_u - entropy))
    np.testing.assert_allclose(got_total, expected, rtol=1e-11)
    np.testing.assert_allclose(got_u_nll, np.mean(nll_u), rtol=1e-11)


# -- one set of weights for both branches ----------------------------------------------------

def test_a_training_step_moves_both_branches_alike(mnist):
    """The labelled decode and the y-th slice of the batched unlabelled decode agree before and
    after one step of the real training function, and every parameter is trained."""
    small = dataclasses.replace(mnist, train_x=mnist.train_x[:1000],
                                train_y=mnist.train_y[:1000])
    model = SemiSupervisedDGM(784, [20], [False], "relu", "kumaraswamy", 5, "bernoulli",
                              seed=2)
    task = SemiSupervisedTask(model, small, 100, 1e-3, 0.9, 0.375, label_seed=0)
    assert (task.n_train_batches, task.labelled_batch_size) == (9, 100 // 9)
    code, y = at.matrix("code"), at.ivector("y")
    both = function([code, y], [model.decode_label(code, y), model.decode_all_labels(code)])
    rng = np.random.default_rng(0)
    codes = rng.dirichlet(np.ones(5), size=30).astype(np.float32)
    labels = np.tile(np.arange(N_CLASSES), 3).astype(np.int32)
    rows = np.arange(30)

    def outputs():
        single, batched = both(codes, labels)
        assert batched.shape == (30, N_CLASSES, 784)
        return single, batched[rows, labels]

    before = {n: v.get_value().copy() for n, v in task.params.items()}
    single0, batched0 = outputs()
    np.testing.assert_allclose(single0, batched0, rtol=1e-6, atol=1e-6)
    assert np.isfinite(task.train_step(0)).all()
    single1, batched1 = outputs()
    np.testing.assert_allclose(single1, batched1, rtol=1e-6, atol=1e-6)
    moved_single, moved_batched = single1 - single0, batched1 - batched0
    assert np.abs(moved_single).max() > 1e-3  # the step did move the outputs ...
    np.testing.assert_allclose(moved_single, moved_batched, atol=1e-5)  # ... alike
    for name, value in before.items():  # one cost trains every weight, W_y included
        assert not np.array_equal(task.params[name].get_value(), value), name


def _branch_function(model):
    """Per example, from the same x, label y and noise u: the labelled branch's NLL(x | pi, y),
    KL and -log q(y | x), and the unlabelled branch's NLL for label y, KL and -log q(y | x)."""
    from stick_breaking_dgms.objectives import nll_expr
    x, y, u = at.matrix("x"), at.ivector("y"), at.matrix("u")
    nll_l, kl_l, label_nll = model.labelled_terms(x, y, noise=u)
    code = model.latent.sample(model.latent.posterior(model.encoder(x)), u)
    nll_all = nll_expr(model.likelihood, x[:, None, :], model.decode_all_labels(code))
    _, kl_u, _, probs = model.unlabelled_terms(x, noise=u)
    rows = at.arange(x.shape[0])
    return function([x, y, u], [nll_l, kl_l, label_nll, nll_all[rows, y], kl_u,
                                -at.log(probs[rows, y])])


def test_a_training_step_changes_the_labelled_and_unlabelled_branches_alike(mnist):
    """Whole branches (encoder, latent, classifier, decoder) on the same input, label and
    noise: equal before and after a step of the real training function, so the step moved
    them alike."""
    small = dataclasses.replace(mnist, train_x=mnist.train_x[:1000],
                                train_y=mnist.train_y[:1000])
    model = SemiSupervisedDGM(784, [20], [False], "relu", "kumaraswamy", 5, "bernoulli",
                              seed=2)
    task = SemiSupervisedTask(model, small, 100, 1e-3, 0.9, 0.375, label_seed=0)
    f = _branch_function(model)
    x = mnist.valid_x[:40]
    y = mnist.valid_y[:40].astype(np.int32)
    u = np.random.default_rng(3).uniform(0.01, 0.99, (40, 4)).astype(np.float32)
    before = f(x, y, u)
    for i in range(3):
        assert np.isfinite(task.train_step(i)).all()
    after = f(x, y, u)
    for values in (before, after):
        labelled, unlabelled = values[:3], values[3:]
        for a, b in zip(labelled, unlabelled):
            np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-5)
    moved = [a1 - a0 for a0, a1 in zip(before, after)]
    assert np.abs(moved[0]).max() > 1e-2 and np.abs(moved[2]).max() > 1e-4
    for a, b in zip(moved[:3], moved[3:]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)


def test_semi_supervised_graphs_are_float32_end_to_end(mnist):
    small = dataclasses.replace(mnist, train_x=mnist.train_x[:1000],
                                train_y=mnist.train_y[:1000])
    model = SemiSupervisedDGM(784, [20], [False], "relu", "kumaraswamy", 5, "bernoulli",
                              seed=2)
    task = SemiSupervisedTask(model, small, 100, 1e-3, 0.9, 0.375, label_seed=0)
    task.validate()  # compiles the error-counting function too
    for f in (task._train, task._errors.function):
        float64 = [str(v) for v in f.maker.fgraph.variables
                   if getattr(v.type, "dtype", None) == "float64"]
        assert float64 == [], f"float64 in a float32 graph: {float64[:5]}"


def test_a_nan_in_a_semi_supervised_step_stops_with_the_best_test_error(mnist, tmp_path):
    """The original's NaN rule for the SB-DGM: stop, restore the best epoch, report its test
    error (% and count), exit non-zero; the NaN check covers the total cost."""
    import io
    from stick_breaking_dgms.training import Trainer
    small = dataclasses.replace(mnist, train_x=mnist.train_x[:1000],
                                train_y=mnist.train_y[:1000])
    model = SemiSupervisedDGM(784, [20], [False], "relu", "kumaraswamy", 5, "bernoulli",
                              seed=2)
    task = SemiSupervisedTask(model, small, 100, 1e-3, 0.9, 0.375, label_seed=0)
    assert task.train_metrics[-1] == "cost"
    files = RunFiles(str(tmp_path), PREFIX, "nan")
    out = io.StringIO()
    trainer = Trainer(task, files, {"args": {}}, 3, 30, progress="never", out=out)
    real = task.train_step

    def step(i):  # batch 4 of epoch 1: the labelled x turn NaN for one step
        if trainer.state.epoch == 1 and i == 4:
            x = task.xl.get_value(borrow=True)
            lb = task.labelled_batch_size
            saved = x[i * lb:(i + 1) * lb].copy()
            x[i * lb:(i + 1) * lb] = np.nan
            try:
                return real(i)
            finally:
                x[i * lb:(i + 1) * lb] = saved
        return real(i)

    task.train_step = step
    code = trainer.run()
    lines = trainer.state.lines
    assert code != 0 and len(lines) == 3, lines
    assert lines[1] == "found NaN in training batch 4 of epoch 1...aborting training..."
    assert re.match(r"^Ended due to NaN! best epoch 0, best valid error [0-9.]+% \([0-9,]+\), "
                    r"test error [0-9.]+% \([0-9,]+\)", lines[2]), lines[2]
    best, meta = read_checkpoint(files.best)
    assert meta["best_epoch"] == 0
    assert all(np.all(np.isfinite(a)) for a in best["params"].values())


# -- labelled batch size -----------------------------------------------------------------------

@pytest.mark.parametrize("drop,n_labelled,n_batches,labelled_batch", [
    (0.90, 4500, 405, 11),  # 40,500 unlabelled / 100 = 405 batches; 4,500 // 405 = 11
    (0.95, 2250, 427, 5),  # 42,750 / 100 = 427 (.5); 2,250 // 427 = 5
    (0.99, 450, 445, 1),  # 44,550 / 100 = 445 (.5); 450 // 445 = 1
    (0.70, 13500, 315, 42),  # 0.7 * 45000 is 31499.999... in floating point
])
def test_labelled_batch_size(drop, n_labelled, n_batches, labelled_batch):
    labelled, unlabelled, nb, lb = split_labels(45000, drop, 100, seed=7)
    assert (len(labelled), len(unlabelled), nb, lb) == (n_labelled, 45000 - n_labelled,
                                                        n_batches, labelled_batch)
    assert len(np.union1d(labelled, unlabelled)) == 45000  # a partition of the training set
    again, _, _, _ = split_labels(45000, drop, 100, seed=7)
    other, _, _, _ = split_labels(45000, drop, 100, seed=8)
    np.testing.assert_array_equal(labelled, again)  # chosen with the seed
    assert not np.array_equal(labelled, other)


def test_too_few_labels_names_the_flags_and_the_smallest_batch():
    with pytest.raises(LabelSplitError) as exc:
        split_labels(45000, 0.999, 10, seed=0)  # 45 labels for 4,495 batches
    message = str(exc.value)
    assert "--batch-size" in message and "--label-drop-percentage" in message
    smallest = int(re.search(r"at least (\d+)", message).group(1))
    assert split_labels(45000, 0.999, smallest, seed=0)[3] == 1
    with pytest.raises(LabelSplitError):
        split_labels(45000, 0.999, smallest - 1, seed=0)


def test_too_few_labels_exit_code_2_from_the_script(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main("sb_ssdgm", ["--label-drop-percentage", "0.999", "--batch-size", "10",
                              "--experiment-dir", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--batch-size" in err and "--label-drop-percentage" in err
    assert os.listdir(tmp_path) == []  # stopped before any run file (or lock) was made


# -- a short real-MNIST run at 10 % labels, then classify ------------------------------------

RUN_ARGS = ["--hidden-size", "100", "--latent-size", "20", "--max-epoch", "2",
            "--learning-rate", "0.003", "--blas-threads", "1", "--progress", "never"]
PREFIX = "sb_ss-dgm"
EPOCH = re.compile(r"^epoch (\d+), \(supervised training loss \(NLL\) ([0-9.]+), unsupervised "
                   r"training loss \(NLL\) ([0-9.]+)\), \(supervised training kl-div ([0-9.]+), "
                   r"unsupervised training kl-div ([0-9.]+)\), valid error ([0-9.]+)% "
                   r"\(([0-9,]+)\), time [0-9.]+s( \*\*\*)?$")
FINAL = re.compile(r"^Done! best epoch (\d+), best valid error ([0-9.]+)% \(([0-9,]+)\), "
                   r"test error ([0-9.]+)% \(([0-9,]+)\), training time [0-9.]+m$")


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ss_experiments")
    code = cli.main("sb_ssdgm", RUN_ARGS + ["--experiment-dir", str(directory)])
    results = [f for f in os.listdir(directory) if "_results_" in f]
    assert len(results) == 1
    name = results[0][len(PREFIX + "_results_"):-len(".txt")]
    with open(os.path.join(directory, results[0])) as f:
        lines = f.read().splitlines()
    return code, RunFiles(str(directory), PREFIX, name), lines


def _count(text):
    return int(text.replace(",", ""))


def test_short_run_learns_and_writes_log_metrics_checkpoints(short_run):
    code, files, lines = short_run
    assert code == 0
    assert len(lines) == 3, lines
    epochs = [EPOCH.match(line) for line in lines[:2]]
    assert all(epochs), lines
    final = FINAL.match(lines[2])
    assert final, lines[2]
    valid = [float(m.group(6)) for m in epochs]
    assert min(valid) < 30.0  # chance is 90 %
    best = int(final.group(1))
    assert valid[best] == min(valid) and epochs[best].group(8)
    assert _count(final.group(3)) == _count(epochs[best].group(7))
    assert float(final.group(4)) < 30.0
    assert "label_drop_percentage_0.9" in files.name and "latent_size_20" in files.name

    with h5py.File(files.metrics, "r") as f:
        assert f.attrs["status"] == "finished"
        assert f.attrs["best_epoch"] == best
        np.testing.assert_array_equal(f["epoch"][()], [0, 1])
        for key, group in [("train_labelled_nll", 2), ("train_unlabelled_nll", 3),
                           ("train_labelled_kl", 4), ("train_unlabelled_kl", 5)]:
            np.testing.assert_allclose(f[key][()], [float(m.group(group)) for m in epochs],
                                       atol=5e-5)
        np.testing.assert_allclose(100 * f["valid_score"][()], valid, atol=5e-3)
        np.testing.assert_array_equal(f["valid_errors"][()], [_count(m.group(7)) for m in epochs])
        assert f.attrs["test_errors"] == _count(final.group(5))

    groups, meta = read_checkpoint(files.checkpoint, required_groups=("params", "optimizer",
                                                                       "best"))
    assert meta["model"] == "sb_ssdgm" and meta["state"]["status"] == "finished"
    best_groups, best_meta = read_checkpoint(files.best)
    assert best_meta["best_epoch"] == best
    assert "decoder/0/W_y" in best_groups["params"] and "classifier/W" in best_groups["params"]
    for name, value in best_groups["params"].items():
        np.testing.assert_array_equal(value, groups["best"][name])


def test_classify_reproduces_the_logged_test_error(short_run, tmp_path, capsys):
    _, files, lines = short_run
    final = FINAL.match(lines[-1])
    out = tmp_path / "test_predictions.npz"
    assert classify.main([files.best, "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    m = re.search(r"test error ([0-9.]+)% \(([0-9,]+) of 10,000\)", printed)
    assert m, printed
    assert _count(m.group(2)) == _count(final.group(5))
    assert m.group(1) == final.group(4)
    with np.load(out) as saved:
        predicted, probs, labels = saved["predicted"], saved["probs"], saved["labels"]
        assert str(saved["split"]) == "test"
    assert predicted.shape == (10000,) and probs.shape == (10000, N_CLASSES)
    np.testing.assert_array_equal(predicted, probs.argmax(axis=1))
    assert int(np.sum(predicted != labels)) == _count(final.group(5))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)  # renormalised after the clip


def test_classify_full_checkpoint_valid_split_to_csv(short_run, tmp_path, capsys):
    _, files, lines = short_run
    final = FINAL.match(lines[-1])
    out = tmp_path / "valid.csv"
    out.write_text("keep me")
    # an existing output is refused at parsing (exit 2) unless --force
    with pytest.raises(SystemExit) as exc:
        classify.main([files.checkpoint, "--split", "valid", "--output", str(out)])
    assert exc.value.code == 2 and "--force" in capsys.readouterr().err
    assert out.read_text() == "keep me"
    assert classify.main([files.checkpoint, "--split", "valid", "--output", str(out),
                          "--force"]) == 0
    printed = capsys.readouterr().out
    m = re.search(r"valid error [0-9.]+% \(([0-9,]+) of 5,000\)", printed)
    assert m and _count(m.group(1)) == _count(final.group(3)), printed  # best valid count
    rows = np.loadtxt(out, delimiter=",", skiprows=1)
    assert out.read_text().splitlines()[0] == "index,label,predicted," + ",".join(
        f"q{c}" for c in range(N_CLASSES))
    assert rows.shape == (5000, 3 + N_CLASSES)
    assert int(np.sum(rows[:, 1] != rows[:, 2])) == _count(final.group(3))
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []  # atomic write


# -- classify's error paths --------------------------------------------------------------------

def test_classify_missing_file(tmp_path, capsys):
    path = tmp_path / "nothing_here.h5"
    assert classify.main([str(path)]) == 1
    err = capsys.readouterr().err
    assert str(path) in err and "not found" in err


def test_classify_corrupted_files(short_run, tmp_path, capsys):
    _, files, _ = short_run
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(os.urandom(4096))
    truncated = tmp_path / "truncated.h5"
    data = open(files.best, "rb").read()
    truncated.write_bytes(data[:len(data) // 2])
    flipped = tmp_path / "flipped.h5"
    shutil.copy(files.best, flipped)
    groups, meta = read_checkpoint(files.best)
    # flip bytes inside the largest array (the first encoder matrix is 784 x 100 floats)
    target = groups["params"]["encoder/0/W"].tobytes()[4000:4032]
    raw = bytearray(open(flipped, "rb").read())
    at_ = raw.find(target)
    assert at_ > 0
    raw[at_:at_ + 32] = bytes(255 - c for c in raw[at_:at_ + 32])
    flipped.write_bytes(bytes(raw))
    for path in (garbage, truncated, flipped):
        assert classify.main([str(path)]) == 1
        err = capsys.readouterr().err
        assert str(path) in err, err
    assert "checksum" in err  # the flipped one is caught by the checksum


def test_classify_refuses_a_vae_checkpoint_and_mismatched_shapes(short_run, tmp_path, capsys):
    _, files, _ = short_run
    groups, meta = read_checkpoint(files.best)
    vae = tmp_path / "stickBreaking_vae_params.h5"
    write_checkpoint(vae, {"params": {"encoder/0/W": np.zeros((784, 100), np.float32)}},
                     {"model": "sb_vae", "args": cli.defaults_of("sb_vae"), "best_epoch": 0})
    assert classify.main([str(vae)]) == 1
    err = capsys.readouterr().err
    assert str(vae) in err and "sb_vae" in err and "no classifier" in err
    anonymous = tmp_path / "no_model.h5"
    write_checkpoint(anonymous, groups, {"best_epoch": 0})
    assert classify.main([str(anonymous)]) == 1
    assert str(anonymous) in capsys.readouterr().err
    wrong = tmp_path / "wrong_shapes.h5"
    config = dict(meta["config"], latent=dict(meta["config"]["latent"], size=30))
    write_checkpoint(wrong, groups, dict(meta, config=config))
    assert classify.main([str(wrong)]) == 1
    err = capsys.readouterr().err
    assert str(wrong) in err and "shape" in err
    last_from_params = classify.main([files.best, "--weights", "last"])
    assert last_from_params == 1 and "--weights last" in capsys.readouterr().err


@pytest.mark.parametrize("argv,flag", [
    (["x.h5", "--split", "train2"], "--split"),
    (["x.h5", "--output", "predictions.txt"], "--output"),
    (["x.h5", "--seed", "-1"], "--seed"),
    (["x.h5", "--dataset", "cifar10"], "--dataset"),
    (["x.h5", "--weights", "worst"], "--weights"),
    ([], "checkpoint"),
])
def test_classify_bad_flags_exit_2(argv, flag, capsys):
    with pytest.raises(SystemExit) as exc:
        classify.main(argv)
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err


def test_classify_runs_as_module_and_console_script(tmp_path):
    missing = str(tmp_path / "missing_params.h5")
    run = subprocess.run([sys.executable, "-m", "stick_breaking_dgms.classify", missing],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and missing in run.stderr, run.stderr
    bad = subprocess.run([sys.executable, "-m", "stick_breaking_dgms.classify", missing,
                          "--split", "all"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--split" in bad.stderr
    script = os.path.join(os.path.dirname(sys.executable), "sbdgm-classify")
    if not os.path.exists(script):
        pytest.skip("sbdgm-classify not installed (pip install -e . creates it)")
    help_run = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    assert help_run.returncode == 0 and "--output" in help_run.stdout


# -- your own data: the Gauss-DGM on a three-class file; a file without labels -----------------

def test_gauss_dgm_trains_on_your_own_three_class_file_and_classify_reads_it(mnist, tmp_path,
                                                                             capsys):
    """Digits 0, 1 and 2 of MNIST saved as a user's .npz: the classifier gets three outputs,
    the Gauss-DGM script learns (well under the 67 % of chance) and classify agrees."""
    keep = mnist.train_y < 3
    x, y = mnist.train_x[keep][:3000], mnist.train_y[keep][:3000]
    path = tmp_path / "digits012.npz"
    np.savez(path, x=x, y=y)
    out_dir = tmp_path / "runs"
    code = cli.main("gauss_ssdgm", ["--dataset", str(path), "--hidden-size", "50",
                                    "--latent-size", "10", "--max-epoch", "2",
                                    "--label-drop-percentage", "0.8", "--learning-rate", "0.003",
                                    "--blas-threads", "1", "--progress", "never",
                                    "--experiment-dir", str(out_dir)])
    assert code == 0
    (log,) = [os.path.join(out_dir, f) for f in os.listdir(out_dir) if "_results_" in f]
    with open(log) as f:
        lines = f.read().splitlines()
    final = [ln for ln in lines if ln.startswith("Done!")]
    assert final and FINAL.match(final[0]), lines[-5:]
    assert float(FINAL.match(final[0]).group(4)) < 20.0
    best = [os.path.join(out_dir, f) for f in os.listdir(out_dir) if "_params_" in f]
    groups, meta = read_checkpoint(best[0])
    assert groups["params"]["classifier/W"].shape == (50, 3)
    assert groups["params"]["decoder/0/W_y"].shape == (3, 50)
    assert meta["n_classes"] == 3
    capsys.readouterr()
    assert classify.main([best[0]]) == 0
    assert f"test error {FINAL.match(final[0]).group(4)}%" in capsys.readouterr().out
    # labels the three-output model cannot predict: refused, not scored
    keep = mnist.train_y < 6
    other = tmp_path / "digits0to5.npz"
    np.savez(other, x=mnist.train_x[keep][:600], y=mnist.train_y[keep][:600])
    assert classify.main([best[0], "--dataset", str(other)]) == 1
    err = capsys.readouterr().err
    assert str(other) in err and "labels up to 5" in err and "predicts 3 classes" in err


def test_semi_supervised_script_refuses_a_file_without_labels(tmp_path, capsys):
    path = tmp_path / "unlabelled.npz"
    np.savez(path, x=np.random.default_rng(0).uniform(size=(200, 12)))
    out_dir = tmp_path / "runs"
    code = cli.main("sb_ssdgm", ["--dataset", str(path), "--experiment-dir", str(out_dir),
                                 "--progress", "never"])
    assert code == 1
    err = capsys.readouterr().err
    assert str(path) in err and "needs labels" in err
    assert not out_dir.exists() or os.listdir(out_dir) == []
