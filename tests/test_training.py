"""A short real-MNIST run through the original entry point: learning, logs, checkpoints."""
import math
import os
import re

import h5py
import numpy as np
import pytest

from stick_breaking_dgms import cli
from stick_breaking_dgms.checkpoints import read_checkpoint
from stick_breaking_dgms.runfiles import RunFiles

ARGS = ["--hidden-size", "100", "--max-epoch", "3", "--progress", "never"]
UNTRAINED_NLL = 784 * math.log(2)  # Bernoulli(0.5) on every pixel


def _files(directory):
    results = [f for f in os.listdir(directory) if "_results_" in f]
    assert len(results) == 1
    name = results[0][len("stickBreaking_vae_results_"):-len(".txt")]
    return RunFiles(str(directory), "stickBreaking_vae", name)


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("experiments")
    code = cli.main("sb_vae", ARGS + ["--experiment-dir", str(directory)])
    return code, _files(directory)


def _epoch_lines(path):
    with open(path) as f:
        lines = f.read().splitlines()
    return [l for l in lines if l.startswith("epoch ")], lines


def test_short_run_learns_and_writes_the_log(short_run):
    code, files = short_run
    assert code == 0
    epochs, lines = _epoch_lines(files.results)
    assert len(epochs) == 3
    valid = [float(re.search(r"valid error ([0-9.]+)", l).group(1)) for l in epochs]
    assert valid[0] < UNTRAINED_NLL - 100
    assert valid[2] < valid[0]
    assert lines[-1].startswith("Done! best epoch 2, best valid error")
    assert epochs[0].endswith("***")
    assert "name" not in files.results  # named from the arguments, as the original
    assert "hidden_size_100" in files.results and "truncation_level_50" in files.results


def test_metrics_file_holds_the_same_numbers(short_run):
    _, files = short_run
    epochs, _ = _epoch_lines(files.results)
    with h5py.File(files.metrics, "r") as f:
        assert f.attrs["status"] == "finished"
        assert list(f["epoch"][()]) == [0, 1, 2]
        for key, pattern in [("train_nll", r"training loss \(NLL\) ([0-9.]+)"),
                             ("train_kl", r"kl divergence ([0-9.]+)"),
                             ("valid_score", r"valid error ([0-9.]+)")]:
            logged = [float(re.search(pattern, l).group(1)) for l in epochs]
            np.testing.assert_allclose(f[key][()], logged, atol=5e-5)
        assert math.isfinite(f.attrs["test_score"])


def test_checkpoint_reloads_to_identical_parameters(short_run, mnist):
    _, files = short_run
    groups, meta = read_checkpoint(files.checkpoint, required_groups=("params", "optimizer"))
    best, best_meta = read_checkpoint(files.best)
    assert meta["state"]["status"] == "finished" and meta["state"]["epoch"] == 3
    assert best_meta["best_epoch"] == 2
    # the last epoch was the best: the saved best and last parameters agree
    for name, value in best["params"].items():
        np.testing.assert_array_equal(value, groups["best"][name])
        np.testing.assert_array_equal(value, groups["params"][name])
    # a fresh model restored from the checkpoint holds exactly these arrays
    _, _, config = cli.parse_args("sb_vae", ARGS)
    from stick_breaking_dgms.factory import build_task
    from stick_breaking_dgms.training import Trainer, rng_states
    task = build_task(config, mnist.astype("float32"))
    trainer = Trainer(task, files, {}, 3, 100)
    trainer.restore(groups, meta)
    for name, var in task.params.items():
        np.testing.assert_array_equal(var.get_value(), groups["params"][name])
        assert var.get_value().dtype == np.float32
    for name, var in task.optimizer_state.items():
        np.testing.assert_array_equal(var.get_value(), groups["optimizer"][name])
    assert rng_states(task.rngs) == meta["rng_states"]
    assert meta["args"]["seed"] == 1234


def test_second_run_with_same_arguments_does_not_overwrite(short_run, tmp_path):
    _, files = short_run
    before = open(files.results).read()
    code = cli.main("sb_vae", ["--hidden-size", "100", "--max-epoch", "1", "--progress",
                               "never", "--experiment-dir", files.experiment_dir])
    assert code == 0
    assert open(files.results).read() == before
    assert os.path.exists(RunFiles(files.experiment_dir, files.prefix, files.name + "_1").results)
    # the lock files say no process holds them (a holder writes its pid in them)
    for name in (files.name, files.name + "_1"):
        lock = RunFiles(files.experiment_dir, files.prefix, name).lock.path
        assert os.path.exists(lock) and os.path.getsize(lock) == 0


# -- the epoch loop itself, on a scripted task (no Aesara): early stopping, progress ----------

class _ScriptedTask:
    """A task whose validation scores follow a script; training does nothing."""

    train_metrics = ("nll", "kl")
    n_train_batches = 3

    def __init__(self, scores):
        import collections
        self.scores = list(scores)
        self.validated = 0
        self.params, self.optimizer_state = collections.OrderedDict(), collections.OrderedDict()
        self.rngs = []

    def train_step(self, i):
        return [1.0, 2.0]

    def validate(self):
        self.validated += 1
        return {"score": self.scores[self.validated - 1]}

    def test(self):
        return {"score": 42.0}

    @staticmethod
    def format_epoch(epoch, means, valid, seconds):
        return f"epoch {epoch}, valid error {valid['score']:.4f}"

    @staticmethod
    def format_final(prefix, best_epoch, best_score, test, minutes):
        return f"{prefix} best epoch {best_epoch}, best valid error {best_score:.4f}, " \
               f"test error {test['score']:.4f}"


def test_early_stopping_waits_lookahead_epochs_after_the_best(tmp_path):
    import io
    from stick_breaking_dgms.training import Trainer
    scores = [5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 3.05, 2.0]  # best at epoch 2; 2.0 comes too late
    task = _ScriptedTask(scores)
    trainer = Trainer(task, RunFiles(str(tmp_path), "scripted", "t"), {}, max_epoch=100,
                      lookahead=3, progress="never", out=io.StringIO())
    assert trainer.run() == 0
    lines = trainer.state.lines
    # epochs 3, 4, 5 are within the lookahead of 3 after the best epoch 2; epoch 6 is past it
    assert [l.split(",")[0] for l in lines[:-1]] == [f"epoch {e}" for e in range(7)]
    assert [l.endswith("***") for l in lines[:-1]] == [True, True, True] + [False] * 4
    assert lines[-1] == "Done! best epoch 2, best valid error 3.0000, test error 42.0000"
    assert task.validated == 7
    _check_outputs(trainer, "early stopping", 7)


def _check_outputs(trainer, stopped_by, epochs):
    """The metrics file says how the run ended; the CSV table holds the HDF5 metrics."""
    import csv
    import h5py
    with h5py.File(trainer.files.metrics, "r") as f:
        assert f.attrs["status"] == "finished" and f.attrs["stopped_by"] == stopped_by
        assert f.attrs["test_score"] == 42.0
        valid = f["valid_score"][()]
    with open(trainer.files.metrics_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(epochs))
    assert [float(r["valid_score"]) for r in rows] == list(valid)
    assert {"train_nll", "train_kl", "seconds", "best"} <= set(rows[0])


def test_a_run_stopped_by_max_epoch_says_so(tmp_path):
    import io
    from stick_breaking_dgms.training import Trainer
    task = _ScriptedTask([5.0, 4.0, 3.0])  # still improving when max_epoch stops it
    trainer = Trainer(task, RunFiles(str(tmp_path), "scripted", "t"), {}, max_epoch=3,
                      lookahead=3, progress="never", out=io.StringIO())
    assert trainer.run() == 0
    _check_outputs(trainer, "max_epoch", 3)


def test_progress_line_shows_the_epoch_and_is_cleared():
    import io
    from stick_breaking_dgms.training import Progress
    stream = io.StringIO()  # not a terminal: "auto" stays quiet, "always" draws
    quiet = Progress("auto", stream=stream)
    quiet.update(0, 1, 10, [1.0], ["nll"], 0.0)
    assert stream.getvalue() == ""
    live = Progress("always", stream=stream, interval=0.0)
    live.update(3, 5, 10, [123.456, 7.0], ["nll", "kl"], 0.0)
    text = stream.getvalue()
    assert text.startswith("\repoch 3  50% 5/10") and "nll 123.456" in text
    assert "kl 7.000" in text and "eta" in text
    live.clear()
    assert stream.getvalue().endswith("\r\033[K")


@pytest.mark.parametrize("columns", [40, 80, 200])
def test_progress_line_never_wraps_and_shows_the_outlook(monkeypatch, columns):
    """Cut to the terminal's width (a wrapped line would leave a stale copy at every
    redraw); the epochs since the best one and the bound on the run's remaining time."""
    import io
    import os as _os
    import time as _time
    from stick_breaking_dgms.training import Progress
    monkeypatch.setenv("COLUMNS", str(columns))  # what shutil.get_terminal_size reads first
    stream = io.StringIO()
    live = Progress("always", stream=stream, interval=0.0)
    started = _time.time() - 10.0  # 10 s for 100 of 400 batches: 30 s left in the epoch
    live.update(12, 100, 400, [101.5, 22.25, 7.0], ["nll", "kl", "loss"], started,
                since_best=4, epochs_left=96)
    line = stream.getvalue()
    body = line[1:-len("\033[K")]
    assert line.startswith("\r") and line.endswith("\033[K") and "\n" not in line
    assert len(body) <= columns - 1, (len(body), body)
    if columns >= 200:  # everything fits: epoch ETA 30s, run <= 30 s + 96 x 40 s
        assert "eta 30s" in body and "best 4 ep ago" in body and "run <= 1h04m" in body
    assert _os.environ["COLUMNS"] == str(columns)
