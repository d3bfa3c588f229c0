"""Sweeps on Dask: a tiny grid on a two-worker LocalCluster (loopback, worker processes).

The runs train small networks (784-20-5) on a 1,000-image subset of real MNIST saved as
an .npz file (800 / 100 / 100 after the split), so one run is a few seconds, mostly the
process start. Checked here:

* every run of the grid finishes, each in its own directory, and a second sweep does
  nothing (no task is submitted, no file changes);
* a run that fails (a damaged data file) is reported with its log's last lines while
  the others finish;
* a worker killed (SIGKILL) in the middle of a run: the training dies with it (it gets
  SIGTERM from the kernel and saves), Dask reschedules the task, the run resumes from
  its checkpoint on a worker and ends bit-identical to an uninterrupted run;
* the summary chooses the swept setting by validation score and gives the right means
  and standard deviations (exact numbers on fabricated metrics files, and against the
  real runs' log lines);
* bad grid files are refused before anything starts (exit code 2, file:line: reason).
"""
import contextlib
import glob
import io
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

import h5py
import numpy as np
import pytest

distributed = pytest.importorskip("distributed")  # the "sweep" extra (in "test")

from stick_breaking_dgms.checkpoints import read_checkpoint  # noqa: E402
from stick_breaking_dgms.sweep import aggregate, cli  # noqa: E402
from stick_breaking_dgms.sweep.grid import GridError, expand, load_grid  # noqa: E402
from stick_breaking_dgms.sweep.manifest import write_manifest  # noqa: E402
from stick_breaking_dgms.sweep.runner import run_sweep  # noqa: E402
from stick_breaking_dgms.sweep.status import run_status  # noqa: E402

from helpers import Watchdog  # noqa: E402

pytestmark = pytest.mark.slow

TIMING = re.compile(r"(, )?(training )?time [0-9.]+[sm]")
SMALL = 'hidden-size = 20\n'


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, mnist):
    """1,000 real MNIST images with labels, as a data file the scripts read."""
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, x=mnist.train_x[:1000], y=mnist.train_y[:1000].astype(np.int64))
    return str(path)


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def _grid(tmp_path, text, name="grid.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _sweep(client, grid_path, sweep_dir, watchdog=True, runs=None):
    # expand() swaps sys.stderr while the scripts' parser runs: not in a second thread
    runs = expand(load_grid(grid_path), sweep_dir) if runs is None else runs
    write_manifest(sweep_dir, load_grid(grid_path), runs)
    out = io.StringIO()
    with Watchdog(300) if watchdog else contextlib.nullcontext():
        outcome = run_sweep(runs, sweep_dir, client=client, out=out, live=False, poll=0.2)
    return runs, outcome, out.getvalue()


def _snapshot(sweep_dir):
    """{path: (size, mtime_ns)} of every file of the runs."""
    return {p: (os.stat(p).st_size, os.stat(p).st_mtime_ns)
            for p in glob.glob(os.path.join(sweep_dir, "runs", "*", "*"))}


def _final_test_error(run):
    with open(run.files.results) as f:
        last = f.read().splitlines()[-1]
    return float(re.search(r"test error ([0-9.]+)%", last).group(1)) / 100


def _worker_and_training_malloc_trim():
    from stick_breaking_dgms.sweep.task import training_environment
    return (os.environ.get("MALLOC_TRIM_THRESHOLD_"),
            training_environment().get("MALLOC_TRIM_THRESHOLD_"))


def test_training_does_not_inherit_the_workers_malloc_trim_threshold(client):
    # Dask's nanny sets a 64 KiB trim threshold in its workers, which slows a training
    # started by them by ~1.4x; the trainings get the worker's environment without it
    worker, training = client.submit(_worker_and_training_malloc_trim, pure=False).result()
    assert worker is not None
    assert training is None
    # a value the user chose is theirs
    from stick_breaking_dgms.sweep.task import training_environment
    env = training_environment({"MALLOC_TRIM_THRESHOLD_": "1000000", "HOME": "/x"})
    assert env == {"MALLOC_TRIM_THRESHOLD_": "1000000", "HOME": "/x"}


# -- a whole sweep, then nothing to do -------------------------------------------------------

def test_sweep_runs_every_run_once_and_summarizes(client, tiny_data, tmp_path):
    grid = _grid(tmp_path, f"""
models = ["sb_ssdgm"]
datasets = ["{tiny_data}"]
label_fractions = [0.1]
alpha0 = [1, 5]
seeds = [1, 2]
epochs = 2
[flags]
{SMALL}latent-size = 5
""")
    sweep_dir = str(tmp_path / "sweep")
    runs, outcome, text = _sweep(client, grid, sweep_dir)
    assert outcome.exit_code == 0, text
    assert sorted(outcome.done) == sorted(r.id for r in runs) and len(runs) == 4
    assert not outcome.failed and not outcome.stopped
    assert len({r.experiment_dir for r in runs}) == 4
    for run in runs:
        assert run_status(run) == "finished"
        with open(run.files.results) as f:
            assert f.read().splitlines()[-1].startswith("Done!")
    log = open(os.path.join(sweep_dir, "sweep.log")).read()
    assert log.count(": started on tcp://127.0.0.1:") == 4
    assert "0 queued, 0 running, 4 done, 0 failed" in log

    # the summary: alpha0 chosen by the mean validation error, test error over the seeds
    rows = aggregate.write_summary(sweep_dir)
    assert len(rows) == 1
    row = rows[0]
    by_alpha = {}
    for run in runs:
        with h5py.File(run.files.metrics) as f:
            by_alpha.setdefault(dict(run.setting)["alpha0"], []).append(
                (float(f.attrs["best_score"]), float(f.attrs["test_score"]), run))
    valid_means = {a: statistics.fmean(v for v, _, _ in rs) for a, rs in by_alpha.items()}
    best = min(valid_means, key=lambda a: (valid_means[a], [1, 5].index(a)))
    assert row.chosen == {"alpha0": best} and row.n_runs == 2 and row.planned == 2
    logged = [_final_test_error(r) for _, _, r in by_alpha[best]]  # the log's final lines
    assert row.test_mean == pytest.approx(statistics.mean(logged), abs=1e-12)
    assert row.test_std == pytest.approx(statistics.stdev(logged), abs=1e-12)
    summary = json.load(open(os.path.join(sweep_dir, "summary.json")))
    assert summary["cells"][0]["chosen"] == {"alpha0": best}
    assert f"alpha0 {best}" in open(os.path.join(sweep_dir, "summary.md")).read()

    # again: nothing is submitted and no run's file changes
    before = _snapshot(sweep_dir)
    again = run_sweep(runs, sweep_dir, client=client, out=io.StringIO(), live=False)
    assert again.exit_code == 0 and again.submitted == [] and len(again.done) == 4
    assert _snapshot(sweep_dir) == before


# -- a failing run does not stop the others --------------------------------------------------

def test_failed_run_is_reported_and_the_others_finish(client, tiny_data, tmp_path):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 this is not a zip archive")
    grid = _grid(tmp_path, f"""
models = ["gauss_vae"]
datasets = ["{tiny_data}", "{broken}"]
seeds = [3]
epochs = 1
[flags]
{SMALL}latent-size = 5
""")
    sweep_dir = str(tmp_path / "sweep")
    runs, outcome, text = _sweep(client, grid, sweep_dir)
    good, bad = runs
    assert outcome.exit_code == 1
    assert outcome.done == [good.id] and run_status(good) == "finished"
    assert list(outcome.failed) == [bad.id]
    message = outcome.failed[bad.id]
    assert "exit code 1" in message and "broken.npz" in message  # the log's last lines
    assert "FAILED" in text and bad.id in text
    rows = aggregate.summarize(sweep_dir)
    assert [(r.dataset, r.n_runs) for r in rows] == [(tiny_data, 1), (str(broken), 0)]


# -- a worker dies mid-run -----------------------------------------------------------------

def _ppid(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="the training's death with its worker uses Linux's prctl")
def test_killed_worker_run_resumes_bit_identically(client, tiny_data, tmp_path):
    grid = _grid(tmp_path, f"""
models = ["sb_vae"]
datasets = ["{tiny_data}"]
seeds = [7]
epochs = 60
[flags]
{SMALL}truncation-level = 5
lookahead = 1000
""")
    sweep_dir = str(tmp_path / "sweep")
    (run,) = expand(load_grid(grid), sweep_dir)

    # the same command, uninterrupted, in another directory (in parallel with the sweep)
    reference_dir = str(tmp_path / "reference")
    argv = [a if not a.startswith("--experiment-dir=") else f"--experiment-dir={reference_dir}"
            for a in run.argv]
    reference = subprocess.Popen(
        [sys.executable, "-m", "stick_breaking_dgms.sweep.child", str(os.getpid()),
         run.model, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    result = {}
    thread = threading.Thread(target=lambda: result.update(
        zip(("runs", "outcome", "text"), _sweep(client, grid, sweep_dir, watchdog=False,
                                                runs=[run]))))
    thread.start()
    killed = None
    with Watchdog(300):
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and thread.is_alive():
            epochs = 0
            if os.path.exists(run.files.results):
                epochs = sum(1 for ln in open(run.files.results) if ln.startswith("epoch "))
            if epochs >= 4:
                training = run.files.lock.holder()
                worker = _ppid(training)
                os.kill(worker, signal.SIGKILL)
                killed = (training, worker, epochs)
                break
            time.sleep(0.05)
        thread.join()
        assert reference.wait() == 0, reference.stderr.read().decode()
    assert killed is not None, "the run finished before it could be interrupted"
    outcome = result["outcome"]
    assert outcome.exit_code == 0 and outcome.done == [run.id], result["text"]
    with pytest.raises(ProcessLookupError):  # the training died with its worker
        os.kill(killed[0], 0)
    log = open(run.output_log).read()
    assert log.count("=== ") == 2 and "resuming on" in log, log
    assert "Interrupted by SIGTERM" in log  # it saved its state on the way out
    assert "attempt 2" in result["text"]

    # bit-identical to the uninterrupted run: parameters, Adam, best, log lines
    mine = read_checkpoint(run.files.checkpoint)
    (ref_path,) = glob.glob(os.path.join(reference_dir, "*_checkpoint_*[!v].h5"))
    theirs = read_checkpoint(ref_path)
    for group in ("params", "optimizer", "best"):
        assert mine[0][group].keys() == theirs[0][group].keys()
        for name, value in mine[0][group].items():
            np.testing.assert_array_equal(value, theirs[0][group][name], err_msg=name)
    lines = [TIMING.sub("", ln) for ln in mine[1]["state"]["lines"]]
    assert lines == [TIMING.sub("", ln) for ln in theirs[1]["state"]["lines"]]
    assert len(lines) == 61


# -- the summary's numbers, exactly ------------------------------------------------------------

def test_summary_means_and_standard_deviations(tmp_path):
    data = tmp_path / "d.npz"
    data.write_bytes(b"")  # parsing only checks that the file exists
    grid_path = _grid(tmp_path, f"""
models = ["sb_ssdgm", "gauss_ssdgm", "sb_vae"]
datasets = ["{data}"]
label_fractions = [0.1, 0.01]
alpha0 = [1, 3]
seeds = [1, 2, 3]
""")
    sweep_dir = str(tmp_path / "sweep")
    grid = load_grid(grid_path)
    runs = expand(grid, sweep_dir)
    assert len(runs) == 2 * 2 * 3 + 2 * 3 + 2 * 3  # sb_ssdgm, gauss_ssdgm, sb_vae
    write_manifest(sweep_dir, grid, runs)
    rng = np.random.default_rng(0)
    values = {}
    for run in runs:
        valid, test = rng.uniform(0.01, 0.2, size=2).round(4)
        status = "finished"
        if run.seed == 3 and run.model == "gauss_ssdgm" and run.label_fraction == 0.01:
            status = "running"  # not finished: must not count
        if run.seed == 2 and run.model == "sb_vae" and dict(run.setting)["alpha0"] == 3:
            status = "nan"  # ended on a NaN, tested with its best parameters: counts
        os.makedirs(run.experiment_dir)
        with h5py.File(run.files.metrics, "w") as f:
            f.attrs["status"] = status
            f.attrs["best_score"] = valid
            if status != "running":
                f.attrs["test_score"] = test
        values[run.id] = (valid, test, status)
    rows = aggregate.write_summary(sweep_dir)
    assert [(r.model, r.label_fraction) for r in rows] == [
        ("sb_ssdgm", 0.1), ("sb_ssdgm", 0.01), ("gauss_ssdgm", 0.1), ("gauss_ssdgm", 0.01),
        ("sb_vae", None)]
    for row in rows:
        cell = [r for r in runs if r.cell == (row.model, row.dataset, row.label_fraction)]
        settings = {}
        for r in cell:
            if values[r.id][2] != "running":
                settings.setdefault(r.setting, []).append(values[r.id])
        chosen = min(settings, key=lambda s: statistics.fmean(v for v, _, _ in settings[s]))
        tests = [t for _, t, _ in settings[chosen]]
        assert row.chosen == dict(chosen)
        assert row.n_runs == len(tests)
        assert row.test_mean == pytest.approx(statistics.fmean(tests), rel=1e-12)
        assert row.test_std == pytest.approx(statistics.stdev(tests), rel=1e-12)
        assert row.metric == ("test NLL" if row.model == "sb_vae" else "test error")
    assert rows[3].n_runs == 2 and rows[3].planned == 3  # the unfinished run left out
    md = open(os.path.join(sweep_dir, "summary.md")).read()
    assert f"{100 * rows[0].test_mean:.2f}% ± {100 * rows[0].test_std:.2f}" in md
    assert "2 of 3" in md
    doc = json.load(open(os.path.join(sweep_dir, "summary.json")))
    assert [c["test_std"] for c in doc["cells"]] == [r.test_std for r in rows]


def test_summary_of_one_run_has_no_standard_deviation(tmp_path):
    rows = aggregate.select([aggregate.RunResult(
        _FakeRun("r1", ("sb_vae", "mnist", None), ()), "finished", 90.0, 91.5)])
    assert rows[0].test_mean == 91.5 and rows[0].test_std is None and rows[0].n_runs == 1


class _FakeRun:
    def __init__(self, id, cell, setting):
        self.id, self.cell, self.setting = id, cell, setting
        self.model, self.dataset, self.label_fraction = cell


# -- bad grid files: refused before anything starts ----------------------------------------------

GOOD = """models = ["sb_ssdgm"]
datasets = ["mnist"]
label_fractions = [0.1]
seeds = [1]
"""

BAD = [
    ("models = [\"sb_vae\"\nseeds = [1]\n", 2, "not valid TOML"),
    (GOOD.replace('"sb_ssdgm"', '"sb_ssdgm", "sb_dgm"'), 1, "unknown model 'sb_dgm'"),
    (GOOD + "[flags]\nhidden-size = 0\n", 6, "argument --hidden-size"),
    (GOOD + "[flags]\nno-such-flag = 1\n", 6, "unrecognized arguments: --no-such-flag=1"),
    (GOOD + "[flags]\ntruncation-level = 5\n", 6, "--truncation-level"),  # not the SS-DGM's
    (GOOD.replace("[1]", "[1,\n  2, 1]"), 5, "listed twice"),
    (GOOD.replace('["mnist"]', '["mnist", "./mnist/../mnist"]'), None, "no file"),
    (GOOD + "[flags]\nseed = 2\n", 6, "use the top-level key seeds"),
    (GOOD.replace("label_fractions = [0.1]", "label_fractions = [1.5]"), 3, "in (0, 1]"),
    (GOOD + "alpha = [1, 2]\n", 5, "unknown key 'alpha'"),
    (GOOD.replace('"sb_ssdgm"', '"gauss_ssdgm"') + "alpha0 = [1, 2]\n", 5,
     "none of the models (gauss_ssdgm) has --alpha0"),
]


@pytest.mark.parametrize("text,line,reason", BAD)
def test_bad_grid_is_refused_before_anything_starts(tmp_path, capsys, text, line, reason):
    path = _grid(tmp_path, text)
    sweep_dir = tmp_path / "sweep"
    assert cli.main([path, "--sweep-dir", str(sweep_dir)]) == 2
    err = capsys.readouterr().err
    assert reason in err
    where = f"{path}:{line}: " if line else f"{path}: "
    assert where in err, err
    assert not sweep_dir.exists()  # nothing started, nothing written


def test_duplicate_run_directories_are_refused(tmp_path, tiny_data):
    other = tmp_path / "other"
    other.mkdir()
    copy = other / "tiny.npz"
    copy.write_bytes(b"")
    grid = _grid(tmp_path, GOOD.replace('["mnist"]', f'["{tiny_data}", "{copy}"]'))
    with pytest.raises(GridError, match="the same run as"):
        expand(load_grid(grid), str(tmp_path / "sweep"))


def test_grid_expansion_is_the_users_command(tmp_path):
    grid = _grid(tmp_path, GOOD.replace("[0.1]", "[0.1, 0.05, 0.01]") + """
alpha0 = [1, 5]
epochs = 7
[flags]
hidden-size = 50
[flags.sb_ssdgm]
latent-size = 10
""")
    runs = expand(load_grid(grid), str(tmp_path / "s"))
    assert len(runs) == 6
    assert [r.argv[2] for r in runs[::2]] == ["--label-drop-percentage=0.9",
                                              "--label-drop-percentage=0.95",
                                              "--label-drop-percentage=0.99"]
    from stick_breaking_dgms.cli import parse_args
    _, args, config = parse_args("sb_ssdgm", list(runs[1].argv))
    assert (config.latent.options()["alpha0"], config.network.hidden_size, config.latent.size,
            config.training.max_epoch, args.blas_threads) == (5.0, 50, 10, 7, 1)
    assert runs[1].command().startswith("sbdgm-train-sb-ssdgm --dataset=mnist --seed=1 ")


def test_dry_run_lists_commands(tmp_path, capsys):
    assert cli.main([_grid(tmp_path, GOOD), "--dry-run",
                     "--sweep-dir", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sbdgm-train-sb-ssdgm --dataset=mnist") and "1 runs" in out
    assert not (tmp_path / "s").exists()


# -- Ctrl-C ------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["ctrl-c", "kill"])
def test_ctrl_c_stops_the_sweep_with_every_run_saved(tiny_data, tmp_path, how):
    """SIGINT to the sweep's process group, as a terminal's Ctrl-C sends it, or SIGTERM to
    the sweep alone (``kill PID``, for a sweep started in the background, which ignores
    SIGINT): the running training saves its state, the queued run never starts, the sweep
    exits 130."""
    grid = _grid(tmp_path, f"""
models = ["sb_vae"]
datasets = ["{tiny_data}"]
seeds = [1, 2]
epochs = 300
[flags]
{SMALL}truncation-level = 5
lookahead = 1000
""")
    sweep_dir = str(tmp_path / "sweep")
    first, second = expand(load_grid(grid), sweep_dir)
    sweep = subprocess.Popen(
        [sys.executable, "-m", "stick_breaking_dgms.sweep", grid, "--sweep-dir", sweep_dir,
         "--workers", "1", "--progress", "lines"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    with Watchdog(240):
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and sweep.poll() is None:
            if os.path.exists(first.files.results) and sum(
                    1 for ln in open(first.files.results) if ln.startswith("epoch ")) >= 2:
                break
            time.sleep(0.05)
        training = first.files.lock.holder()
        if how == "ctrl-c":
            os.killpg(sweep.pid, signal.SIGINT)
        else:
            sweep.send_signal(signal.SIGTERM)
        text = sweep.communicate()[0].decode()
    assert sweep.returncode == 130, text
    assert "Ctrl-C: stopping" in text and "2 run(s) stopped" in text
    assert "Interrupted by SIGINT" in open(first.output_log).read()
    assert run_status(first) == "unfinished" and os.path.exists(first.files.checkpoint)
    assert run_status(second) == "new"  # queued, never started
    with pytest.raises(ProcessLookupError):  # no training left behind
        os.kill(training, 0)


class _ProgressRun:
    """What Progress reads of a run: its id, argv (the epoch cap) and text log's path."""
    def __init__(self, tmp_path, id):
        self.id, self.argv = id, ("--max-epoch=9",)
        self.files = type("F", (), {"results": str(tmp_path / f"{id}.txt")})()


def test_progress_block_on_a_terminal(tmp_path):
    from stick_breaking_dgms.sweep.progress import Progress
    out = io.StringIO()
    p = Progress([_ProgressRun(tmp_path, "a"), _ProgressRun(tmp_path, "b")], str(tmp_path), out=out, live=True)
    p.on_event((0, {"run": "a", "event": "start", "worker": "tcp://w1", "epoch": 0}))
    (tmp_path / "a.txt").write_text("epoch 0, x\nepoch 1, y\n")
    p.refresh()
    p.finished("a", {"status": "finished", "seconds": 3})
    p.failed("b", "exit code 1")
    p.close()
    text = out.getvalue()
    assert "  a  epoch 2/9  tcp://w1" in text  # the running run's line in the block
    assert "a: epoch" not in text             # ... and not also scrolled above it
    assert "\x1b[2F\x1b[J" in text            # the block is redrawn in place
    assert "[sweep] 0 queued, 0 running, 1 done, 1 failed" in text
    log = open(tmp_path / "sweep.log").read()
    assert [ln.split(" ", 2)[2] for ln in log.splitlines()] == [
        "a: started on tcp://w1", "a: epoch 2/9", "a: finished in 3 s", "b: FAILED: exit code 1"]


def test_progress_lines_repeat_the_log(tmp_path):
    """Off a terminal (a pipe, a batch job's output) every line of sweep.log is printed,
    epochs included, so the job's output alone shows how far each run is."""
    from stick_breaking_dgms.sweep.progress import Progress
    out = io.StringIO()
    p = Progress([_ProgressRun(tmp_path, "a")], str(tmp_path), out=out, live=False)
    p.on_event((0, {"run": "a", "event": "start", "worker": "tcp://w1", "epoch": 0}))
    (tmp_path / "a.txt").write_text("epoch 0, x\n")
    p.refresh()
    p.finished("a", {"status": "finished", "seconds": 3})
    p.close()
    assert "\x1b[" not in out.getvalue()
    assert out.getvalue() == open(tmp_path / "sweep.log").read()
    assert [ln.split(" ", 2)[2] for ln in out.getvalue().splitlines()] == [
        "a: started on tcp://w1", "a: epoch 1/9", "a: finished in 3 s"]
