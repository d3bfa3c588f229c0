"""Interrupted real-MNIST runs resume to exactly the uninterrupted run; runs are deterministic.

Every run here is a subprocess of the real script (``run_stickBreaking_VAE_experiments.py``)
on real MNIST with a small network (784-50-10 sticks, 2 epochs of 450 batches).

Interruptions are placed with the Trainer's test hook, ``SBDGM_TEST_INTERRUPT=SIGNAL@EVENT:N``
(see :mod:`stick_breaking_dgms.training`): the process sends itself the signal at an exact
step, after a validation pass, right after a checkpoint, or in the middle of the checkpoint
rotation. Polling the log from outside cannot hit "step 5" or "between the rename and the
write" reproducibly; the hook can, and it costs nothing when the variable is unset.

Two chains of interruptions run side by side (each process resumes what the previous one
left), plus three uninterrupted runs (seed 1234 twice, seed 4321 once):

* graceful: SIGTERM after 5 steps, SIGINT mid-epoch 0, SIGTERM right after the epoch-0
  checkpoint (which is then truncated, so the next process must fall back to ``.prev.h5``),
  SIGTERM mid-epoch 1, SIGTERM after the very last step, then a clean finish;
* hard: SIGKILL after 5 steps (nothing saved yet: the next process starts over), right
  after the epoch-0 checkpoint, mid-epoch 1, and between renaming the checkpoint to
  ``.prev.h5`` and writing the new one, then a clean finish.

After each interruption the test checks where the next process resumed (or that it
started over), and at the end that both chains produced bit-identical parameters, Adam
state, random-stream state, best parameters and log lines (timings removed) to the
uninterrupted run.
"""
import os
import re
import signal
import subprocess
import sys
import threading

import h5py
import numpy as np
import pytest

from stick_breaking_dgms.checkpoints import read_checkpoint

from helpers import N_BATCHES, ROOT, TIMING
from helpers import describe as _describe, only as _only, run_small as _run

pytestmark = pytest.mark.slow


# (hook, expected exit code, where the *next* process resumes: (epoch, batch, which file)
# or None when it must start over because nothing was saved yet, damage done in between)
GRACEFUL = [
    ("SIGTERM@step:5", 128 + signal.SIGTERM, (0, 5, "checkpoint"), None),
    ("SIGINT@step:200", 128 + signal.SIGINT, (0, 200, "checkpoint"), None),
    # right after the end-of-epoch-0 checkpoint; then that checkpoint is truncated, so the
    # next process must refuse it and resume from .prev.h5 (the SIGINT state, batch 200)
    ("SIGTERM@checkpoint:0", 128 + signal.SIGTERM, (0, 200, "prev"), "truncate"),
    (f"SIGTERM@step:{N_BATCHES + 250}", 128 + signal.SIGTERM, (1, 250, "checkpoint"), None),
    # after the very last training step: validation, checkpoint, then the clean exit
    (f"SIGTERM@step:{2 * N_BATCHES}", 128 + signal.SIGTERM, (2, 0, "checkpoint"), None),
]
HARD = [
    ("SIGKILL@step:5", -signal.SIGKILL, None, None),
    ("SIGKILL@checkpoint:0", -signal.SIGKILL, (1, 0, "checkpoint"), None),
    (f"SIGKILL@step:{N_BATCHES + 250}", -signal.SIGKILL, (1, 0, "checkpoint"), None),
    # between renaming the checkpoint to .prev.h5 and writing the new one
    ("SIGKILL@rotated:1", -signal.SIGKILL, (1, 0, "prev"), None),
]


def _truncate_checkpoint(directory):
    path = _only(directory, "*_checkpoint_*[0-9].h5")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _chain(directory, steps, record):
    for hook, _, _, damage in steps + [("", 0, None, None)]:
        record.append((hook, _run(directory, hook)))
        if damage == "truncate":
            _truncate_checkpoint(directory)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """All the subprocesses, three at a time (the chains are sequential inside)."""
    base = tmp_path_factory.mktemp("resume")
    dirs = {k: base / k for k in ("graceful", "hard", "reference", "repeat", "other_seed")}
    for d in dirs.values():
        d.mkdir()
    out = {"graceful": [], "hard": []}

    def singles():
        out["reference"] = _run(dirs["reference"])
        out["repeat"] = _run(dirs["repeat"])
        out["other_seed"] = _run(dirs["other_seed"], extra=["--seed", "4321"])

    threads = [threading.Thread(target=_chain, args=(dirs["graceful"], GRACEFUL,
                                                     out["graceful"])),
               threading.Thread(target=_chain, args=(dirs["hard"], HARD, out["hard"])),
               threading.Thread(target=singles)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return dirs, out


def _final(directory):
    log = _only(directory, "*_results_*.txt")
    checkpoint = _only(directory, "*_checkpoint_*[0-9].h5")
    best = _only(directory, "*_params_*.h5")
    with open(log) as f:
        lines = [TIMING.sub("", line) for line in f.read().splitlines()]
    groups, meta = read_checkpoint(checkpoint, required_groups=("params", "optimizer", "best"))
    best_groups, best_meta = read_checkpoint(best)
    with h5py.File(_only(directory, "*_metrics_*.h5"), "r") as f:
        metrics = {k: f[k][()] for k in f if k != "seconds"}
    return lines, groups, meta, best_groups, metrics


def _assert_same_run(a, b):
    lines_a, groups_a, meta_a, best_a, metrics_a = a
    lines_b, groups_b, meta_b, best_b, metrics_b = b
    assert lines_a == lines_b
    assert len(lines_a) == 3 and lines_a[-1].startswith("Done! best epoch 1")
    for group in ("params", "optimizer", "best"):
        assert groups_a[group].keys() == groups_b[group].keys()
        for name in groups_a[group]:
            x, y = groups_a[group][name], groups_b[group][name]
            assert x.dtype == y.dtype and x.shape == y.shape
            assert np.array_equal(x, y), f"{group}/{name} differs: max |diff| " \
                                         f"{np.max(np.abs(x - y))}"
    for name in best_a["params"]:
        assert np.array_equal(best_a["params"][name], best_b["params"][name])
    assert meta_a["rng_states"] == meta_b["rng_states"]
    state_a, state_b = meta_a["state"], meta_b["state"]
    for key in ("epoch", "batch", "best_epoch", "best_score", "status"):
        assert state_a[key] == state_b[key]
    assert metrics_a.keys() == metrics_b.keys()
    for key in metrics_a:
        assert np.array_equal(metrics_a[key], metrics_b[key]), key


def _check_chain(directory, steps, procs):
    assert len(procs) == len(steps) + 1
    for i, ((hook, code, resume, damage), (_, proc)) in enumerate(zip(steps, procs)):
        assert proc.returncode == code, f"{hook}: {_describe(proc)}"
        if code > 0:  # SIGINT / SIGTERM: a clean exit with a message
            name = hook.split("@")[0]
            assert f"Interrupted by {name} at epoch" in proc.stdout, _describe(proc)
            assert "Traceback" not in proc.stderr, _describe(proc)
        nxt = procs[i + 1][1]
        if resume is None:
            assert "Resuming" not in nxt.stdout and "New run " in nxt.stdout, \
                f"after {hook} the next run should start over: {_describe(nxt)}"
        else:
            epoch, batch, which = resume
            m = re.search(r"Resuming .* from (\S+) at epoch (\d+), batch (\d+)", nxt.stdout)
            assert m, f"after {hook}: {_describe(nxt)}"
            assert (int(m.group(2)), int(m.group(3))) == (epoch, batch), \
                f"after {hook}: {m.group(0)}"
            assert m.group(1).endswith(".prev.h5") == (which == "prev"), \
                f"after {hook}: resumed from {m.group(1)}, expected the {which} checkpoint"
        if damage:
            assert "warning: refusing checkpoint" in nxt.stderr and "truncated" in nxt.stderr \
                and "using the previous good checkpoint" in nxt.stderr, _describe(nxt)
    last = procs[-1][1]
    assert last.returncode == 0, _describe(last)
    # nothing half-written is left behind
    leftovers = [f for f in os.listdir(directory) if f.endswith(".tmp")]
    assert leftovers == []


def test_uninterrupted_runs_with_the_same_seed_are_bit_identical(runs):
    dirs, out = runs
    for key in ("reference", "repeat"):
        assert out[key].returncode == 0, _describe(out[key])
    _assert_same_run(_final(dirs["reference"]), _final(dirs["repeat"]))
    _, _, meta, _, _ = _final(dirs["reference"])
    assert meta["args"]["seed"] == 1234 and meta["seed"] == 1234
    assert meta["blas_threads"] == 1


def test_a_different_seed_gives_a_different_run(runs):
    dirs, out = runs
    assert out["other_seed"].returncode == 0, _describe(out["other_seed"])
    ref, other = _final(dirs["reference"]), _final(dirs["other_seed"])
    assert other[2]["seed"] == 4321
    assert "seed_4321" in _only(dirs["other_seed"], "*_results_*.txt")
    epochs_ref = [l for l in ref[0] if l.startswith("epoch")]
    epochs_other = [l for l in other[0] if l.startswith("epoch")]
    assert all(a != b for a, b in zip(epochs_ref, epochs_other))
    for name in ref[1]["params"]:
        assert not np.array_equal(ref[1]["params"][name], other[1]["params"][name]), name
    assert ref[2]["rng_states"] != other[2]["rng_states"]


@pytest.mark.parametrize("chain", ["graceful", "hard"])
def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(runs, chain):
    dirs, out = runs
    steps = GRACEFUL if chain == "graceful" else HARD
    _check_chain(dirs[chain], steps, out[chain])
    _assert_same_run(_final(dirs["reference"]), _final(dirs[chain]))


# -- the semi-supervised model: two random streams, labelled and unlabelled batches -------

SS_SCRIPT = os.path.join(ROOT, "run_stickBreaking_ssDGM_experiments.py")
SS_ARGS = ["--hidden-size", "50", "--latent-size", "10", "--max-epoch", "2",
           "--progress", "never", "--blas-threads", "1"]
SS_BATCHES = 405  # 40,500 unlabelled images / 100 (10 % labels, batches of 11 labelled)
SS_CHAIN = [
    ("SIGTERM@step:100", 128 + signal.SIGTERM, (0, 100, "checkpoint"), None),
    (f"SIGKILL@step:{SS_BATCHES + 150}", -signal.SIGKILL, (1, 0, "checkpoint"), None),
    (f"SIGTERM@step:{SS_BATCHES + 300}", 128 + signal.SIGTERM, (1, 300, "checkpoint"), None),
]


def _run_ss(directory, hook=""):
    env = dict(os.environ)
    env.pop("SBDGM_TEST_INTERRUPT", None)
    if hook:
        env["SBDGM_TEST_INTERRUPT"] = hook
    return subprocess.run([sys.executable, SS_SCRIPT, *SS_ARGS, "--experiment-dir",
                           str(directory)], capture_output=True, text=True, env=env,
                          timeout=600, cwd=ROOT)


def test_interrupted_semi_supervised_run_equals_the_uninterrupted_one(tmp_path):
    reference, chain = tmp_path / "reference", tmp_path / "chain"
    reference.mkdir()
    chain.mkdir()
    ref_proc = _run_ss(reference)
    assert ref_proc.returncode == 0, _describe(ref_proc)
    procs = [(hook, _run_ss(chain, hook)) for hook, *_ in SS_CHAIN] + [("", _run_ss(chain))]
    _check_chain(chain, SS_CHAIN, procs)
    _assert_same_run(_final(reference), _final(chain))
