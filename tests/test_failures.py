"""The failure paths a user hits: kills at the worst moments, a full disk, folders that
cannot be written, hostile checkpoint metadata. Nothing may be lost, and every failure
ends with a message naming the file and an exit code, never a traceback.

The chains run the real script (``run_stickBreaking_VAE_experiments.py``) on real MNIST
with a small network (784-50-10 sticks, 2 epochs of 450 batches), interrupted at exact
points with the Trainer's test hook ``SBDGM_TEST_INTERRUPT`` (see
:mod:`stick_breaking_dgms.training`):

* a damaged checkpoint, resumed from ``.prev.h5``, and a SIGKILL inside the next save:
  the damaged file must not have been rotated over the sound one;
* a SIGKILL between the final checkpoint and the final log write: the same command must
  complete the run's log and metrics without training, not start a new run;
* a full disk (a small tmpfs, where this machine lets us mount one) while the run writes
  its end-of-epoch files: a clear message, the last checkpoint intact, and the run
  resumes once there is room.
"""
import hashlib
import os
import re
import signal
import subprocess
import threading

import h5py
import numpy as np
import pytest

from stick_breaking_dgms import classify, cli, reproduce
from stick_breaking_dgms.checkpoints import CheckpointError, read_checkpoint, write_checkpoint
from stick_breaking_dgms.fileio import EXIT_IO

from helpers import N_BATCHES, SMALL_RUN as ARGS, TIMING
from helpers import describe as _describe, only as _only, run_small as _run

pytestmark = pytest.mark.slow


def _lines(directory):
    with open(_only(directory, "*_results_*.txt")) as f:
        return [TIMING.sub("", line) for line in f.read().splitlines()]


def _state(path):
    return read_checkpoint(path)[1]["state"]


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# =========================================================================== kill chain

@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The kill chain (cause: rotation after a fallback; a kill before the final log
    write), step by step with what the files held after each step, beside an
    uninterrupted reference run."""
    base = tmp_path_factory.mktemp("failures")
    work, reference = base / "chain", base / "reference"
    work.mkdir()
    reference.mkdir()
    steps = {}

    def run_chain():
        steps["A"] = _run(work, "SIGTERM@step:5")
        steps["B"] = _run(work, "SIGTERM@checkpoint:0")
        ckpt = _only(work, "*_checkpoint_*[0-9].h5")
        with open(ckpt, "r+b") as f:  # damage the newest checkpoint: .prev.h5 is the sound one
            f.truncate(os.path.getsize(ckpt) // 2)
        steps["prev_after_B"] = _sha(_only(work, "*_checkpoint_*.prev.h5"))
        # resumes from .prev.h5 and is killed inside the end-of-epoch-0 save, before the
        # new checkpoint takes its name
        steps["C"] = _run(work, "SIGKILL@rotated:0")
        steps["prev_after_C"] = _sha(_only(work, "*_checkpoint_*.prev.h5"))
        steps["files_after_C"] = sorted(os.listdir(work))
        # trains to the end; killed after the final checkpoint, before the log write
        steps["D"] = _run(work, "SIGKILL@final:2")
        steps["log_after_D"] = _lines(work)
        with h5py.File(_only(work, "*_metrics_*.h5"), "r") as f:
            steps["metrics_status_after_D"] = f.attrs["status"]
        steps["state_after_D"] = _state(_only(work, "*_checkpoint_*[0-9].h5"))
        steps["E"] = _run(work)

    def run_reference():
        steps["reference"] = _run(reference)

    threads = [threading.Thread(target=run_chain), threading.Thread(target=run_reference)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return work, reference, steps


def test_a_damaged_checkpoint_is_never_rotated_over_the_sound_one(chain):
    work, _, steps = chain
    assert steps["A"].returncode == 128 + signal.SIGTERM, _describe(steps["A"])
    assert steps["B"].returncode == 128 + signal.SIGTERM, _describe(steps["B"])
    c = steps["C"]
    assert c.returncode == -signal.SIGKILL, _describe(c)
    assert "using the previous good checkpoint" in c.stderr, _describe(c)
    assert "at epoch 0, batch 5" in c.stdout, _describe(c)
    # killed inside the save: .prev.h5 is still the sound checkpoint it resumed from
    assert steps["prev_after_C"] == steps["prev_after_B"]
    # the complete new checkpoint was still a temporary file; the next run removes it
    assert any(f.endswith(".tmp") for f in steps["files_after_C"]), steps["files_after_C"]
    d = steps["D"]
    assert "using the previous good checkpoint" in d.stderr, _describe(d)
    assert "at epoch 0, batch 5" in d.stdout, _describe(d)


def test_a_run_killed_before_its_final_log_write_is_completed_without_training(chain):
    work, reference, steps = chain
    assert steps["D"].returncode == -signal.SIGKILL, _describe(steps["D"])
    # the checkpoint says finished; the log and metrics lag it
    assert steps["state_after_D"]["status"] == "finished"
    assert not any(line.startswith("Done!") for line in steps["log_after_D"])
    assert steps["metrics_status_after_D"] == "running"
    e = steps["E"]
    assert e.returncode == 0, _describe(e)
    assert "writing them from the checkpoint, without training" in e.stdout, _describe(e)
    assert "Training for up to" not in e.stdout
    new_run = [f for f in os.listdir(work) if re.search(r"_1(\.prev)?\.(h5|txt|lock)$", f)]
    assert new_run == [], os.listdir(work)  # no new run beside it
    assert not [f for f in os.listdir(work) if f.endswith(".tmp")]
    ref = steps["reference"]
    assert ref.returncode == 0, _describe(ref)
    # the same log, test result included, as the run that was never interrupted
    assert _lines(work) == _lines(reference)
    assert _lines(work)[-1].startswith("Done!")
    for directory in (work, reference):
        with h5py.File(_only(directory, "*_metrics_*.h5"), "r") as f:
            assert f.attrs["status"] == "finished"
            assert any(k.startswith("test_") for k in f.attrs), dict(f.attrs)
    mine = read_checkpoint(_only(work, "*_checkpoint_*[0-9].h5"))[0]
    theirs = read_checkpoint(_only(reference, "*_checkpoint_*[0-9].h5"))[0]
    for group in ("params", "best"):
        for name, value in theirs[group].items():
            assert np.array_equal(mine[group][name], value), (group, name)


# =========================================================================== file systems

@pytest.fixture
def mount_tmpfs(tmp_path):
    """Mount a tmpfs with the given options (e.g. ``size=16m`` or ``ro``); skip where
    this machine does not let the tests mount one (not root)."""
    mounted = []

    def mount(options):
        target = tmp_path / f"mnt{len(mounted)}"
        target.mkdir()
        try:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
                               capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as e:
            pytest.skip(f"cannot mount a small file system here ({e})")
        if r.returncode != 0:
            pytest.skip(f"cannot mount a small file system here (needs root: "
                        f"{r.stderr.strip() or r.returncode})")
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30)


def _fill(directory):
    """Write a file until the file system is full; return its path."""
    path = os.path.join(str(directory), "filler")
    block = b"\0" * (1 << 16)
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError:
            pass
        try:
            while True:  # the last few bytes
                f.write(b"\0" * 512)
        except OSError:
            pass
    return path


def test_a_full_disk_keeps_the_last_checkpoint_and_the_run_resumes_after(mount_tmpfs):
    disk = mount_tmpfs("size=24m")
    work = disk / "runs"
    first = _run(work, f"SIGTERM@step:{N_BATCHES + 3}")
    assert first.returncode == 128 + signal.SIGTERM, _describe(first)
    ckpt = _only(work, "*_checkpoint_*[0-9].h5")
    before = _sha(ckpt)
    filler = _fill(disk)
    full = _run(work)  # resumes at epoch 1, batch 3; the end-of-epoch writes find no room
    assert full.returncode == EXIT_IO, _describe(full)
    assert "Traceback" not in full.stderr, _describe(full)
    assert "No space left on device" in full.stderr, _describe(full)
    assert f"{ckpt}, is intact" in full.stderr, _describe(full)
    assert _sha(ckpt) == before  # the last checkpoint survived unchanged
    assert not [f for f in os.listdir(work) if f.endswith(".tmp")], os.listdir(work)
    os.remove(filler)
    again = _run(work)
    assert again.returncode == 0, _describe(again)
    assert "at epoch 1, batch 3" in again.stdout, _describe(again)
    assert _lines(work)[-1].startswith("Done!")


def _cli_exit(argv, capsys, model="sb_vae"):
    with pytest.raises(SystemExit) as info:
        cli.main(model, argv)
    return info.value.code, capsys.readouterr().err


def test_an_experiment_dir_that_cannot_hold_a_run_is_named_with_exit_2(tmp_path, capsys,
                                                                     mount_tmpfs):
    small = ["--hidden-size", "20", "--truncation-level", "5", "--max-epoch", "1",
             "--progress", "never", "--blas-threads", "1"]
    a_file = tmp_path / "not_a_folder"
    a_file.write_text("x")
    code, err = _cli_exit(small + ["--experiment-dir", str(a_file)], capsys)
    assert code == 2 and "--experiment-dir" in err and "is not a folder" in err
    code, err = _cli_exit(small + ["--experiment-dir", ""], capsys)
    assert code == 2 and "--experiment-dir" in err and "empty path" in err
    read_only = mount_tmpfs("size=1m,ro")
    code, err = _cli_exit(small + ["--experiment-dir", str(read_only)], capsys)
    assert code == 2 and str(read_only) in err and "cannot write" in err
    code, err = _cli_exit(small + ["--experiment-dir", str(read_only / "sub")], capsys)
    assert code == 2 and str(read_only / "sub") in err and "cannot create" in err
    assert os.listdir(read_only) == []
    # the other programs' outputs: refused before any work, exit 2
    with pytest.raises(SystemExit) as info:
        classify.main(["any_params.h5", "--output", str(read_only / "p.npz")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--output" in err and "cannot write" in err
    with pytest.raises(SystemExit) as info:
        reproduce.main([str(tmp_path), "--out", str(read_only / "report")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--out" in err and "cannot write" in err


def test_a_folder_where_the_checkpoint_should_be_is_named(chain, tmp_path, capsys):
    _, reference, _ = chain
    work = tmp_path / "runs"
    work.mkdir()
    name = os.path.basename(_only(reference, "*_checkpoint_*[0-9].h5"))
    os.mkdir(work / name)
    code = cli.main("sb_vae", ARGS + ["--experiment-dir", str(work)])
    err = capsys.readouterr().err
    assert code == 1 and str(work / name) in err and "is a folder" in err


# =========================================================================== reproduce

CRAFTED = [  # (where in the metadata, value): hostile types a file could carry
    (("best_epoch",), "seven"), (("best_epoch",), [1, 2]), (("best_score",), {"a": 1}),
    (("best_score",), "nan"), (("dataset",), ["x"]), (("config", "network", "hidden_size"), "50"),
    (("config", "network"), 5), (("config",), "sb_vae"), (("config", "training", "max_epoch"), -3),
    (("config", "latent", "family"), ["kumaraswamy"]), (("model",), 7),
]


@pytest.mark.parametrize("where,value", CRAFTED, ids=[f"{'.'.join(w)}={v!r}" for w, v in CRAFTED])
def test_reproduce_survives_crafted_metadata_and_leaves_no_folder_when_it_fails(
        chain, tmp_path, capsys, where, value):
    _, reference, _ = chain
    groups, meta = read_checkpoint(_only(reference, "*_params_*.h5"))
    holder = meta
    for key in where[:-1]:
        holder = holder[key]
    holder[where[-1]] = value
    path = tmp_path / os.path.basename(_only(reference, "*_params_*.h5"))
    write_checkpoint(str(path), groups, meta)
    out = tmp_path / "reports" / "r"
    code = reproduce.main([str(path), "--table", "likelihood", "--samples", "2",
                           "--test-subset", "10", "--no-figures", "--progress", "never",
                           "--blas-threads", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code in (0, 1), err
    left = os.listdir(out.parent)
    if code == 1:
        assert str(path) in err, err
        assert left == [], left  # no report folder, no hidden partial one
    else:
        assert left == ["r"] and (out / "report.md").exists()


def test_reproduce_refuses_a_knn_k_beyond_its_bound(capsys):
    with pytest.raises(SystemExit) as info:
        reproduce.main(["somewhere", "--knn-k", "3", "1001"])
    assert info.value.code == 2
    assert "--knn-k" in capsys.readouterr().err


def test_reproduce_refuses_more_neighbours_than_training_examples(chain, tmp_path, capsys,
                                                                 mnist):
    """A model trained on MNIST evaluated on a user's 784-pixel file of 120 digits: k = 500
    is refused with a message, and no report folder is left."""
    _, reference, _ = chain
    groups, meta = read_checkpoint(_only(reference, "*_params_*.h5"))
    data = tmp_path / "digits.npz"
    np.savez(data, x=mnist.train_x[:120], y=mnist.train_y[:120])
    meta["config"]["data"]["dataset"] = str(data)
    path = tmp_path / os.path.basename(_only(reference, "*_params_*.h5"))
    write_checkpoint(str(path), groups, meta)
    out = tmp_path / "reports" / "r"
    code = reproduce.main([str(path), "--table", "knn", "--knn-k", "3", "500", "--no-figures",
                           "--progress", "never", "--blas-threads", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "--knn-k 500" in err and "training examples" in err, err
    assert os.listdir(out.parent) == []


def test_a_checkpoint_write_error_names_the_file_and_what_is_left(tmp_path):
    from stick_breaking_dgms.runfiles import RunFiles
    from stick_breaking_dgms.training import RunWriteError
    files = RunFiles(str(tmp_path), "stickBreaking_vae", "run")
    err = RunWriteError(files.checkpoint, files, OSError(28, "No space left on device"))
    assert str(err) == (f"cannot write {files.checkpoint}: No space left on device; no "
                        f"checkpoint had been written yet")
    write_checkpoint(files.previous_checkpoint, {"params": {"w": np.zeros(2)}}, {})
    err = RunWriteError(files.best, files, OSError(13, "Permission denied"))
    assert f"the last checkpoint written, {files.previous_checkpoint}, is intact" in str(err)
    with pytest.raises(CheckpointError):
        read_checkpoint(str(tmp_path / "absent.h5"))


def test_reproduce_on_a_small_labelled_set_skips_the_baselines_it_cannot_compute(
        tmp_path, capsys, mnist):
    """300 digits: 1 % labels are 2 examples, fewer than the baseline's k = 5; the report
    says so instead of failing. The semi-supervised model is an untrained one (its
    parameters as initialised): what is checked here is the evaluation, not the model."""
    import json
    from stick_breaking_dgms.backend import floatX_as
    from stick_breaking_dgms.config import (DataConfig, ExperimentConfig, LatentConfig,
                                            NetworkConfig)
    from stick_breaking_dgms.factory import build_model
    data = tmp_path / "digits.npz"
    np.savez(data, x=mnist.train_x[:300], y=mnist.train_y[:300])
    config = ExperimentConfig("sb_ssdgm", data=DataConfig(dataset=str(data)),
                              network=NetworkConfig(hidden_size=10),
                              latent=LatentConfig(size=5))
    with floatX_as(config.floatX):
        net = build_model(config, 784, "bernoulli")
    params = {n: v.get_value() for n, v in net.params.items()}
    path = tmp_path / "sb_ss-dgm_params_tiny.h5"
    write_checkpoint(str(path), {"params": params},
                     {"model": "sb_ssdgm", "config": config.to_dict(), "best_epoch": 0,
                      "best_score": 0.9, "n_classes": 10})
    out = tmp_path / "report"
    code = reproduce.main([str(path), "--table", "semisup", "--no-figures", "--progress",
                           "never", "--blas-threads", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    notes = json.load(open(out / "results.json"))["notes"]
    assert any("no kNN (k = 5) pixel baseline at 1 % labels" in n for n in notes), notes
    assert "pixel baseline at 1 % labels" in (out / "report.md").read_text()
