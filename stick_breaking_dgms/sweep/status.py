"""Where a run of the sweep stands, read from its own files.

A run has finished when its checkpoint's state says so (``meta["state"]["status"]``
"finished" or "nan", the values :data:`stick_breaking_dgms.runfiles.FINISHED` holds);
the metrics file's ``status`` attribute is the fallback when no checkpoint can be read.
Only the run's base name is looked at: the sweep always resumes that run, never one
with a counter appended.
"""
import os

from ..checkpoints import CheckpointError, read_checkpoint
from ..runfiles import FINISHED

NEW, UNFINISHED = "new", "unfinished"


def run_status(run):
    """"finished", "nan" (ended on a NaN, tested with its best parameters), "unfinished"
    (files exist: the next attempt resumes) or "new" (nothing written yet)."""
    files = run.files
    for path in (files.checkpoint, files.previous_checkpoint):
        if not os.path.exists(path):
            continue
        try:
            _, meta = read_checkpoint(path)
        except CheckpointError:
            continue  # the training process falls back to .prev.h5 the same way
        state = meta.get("state")
        status = state.get("status") if isinstance(state, dict) else None
        if status in FINISHED:
            return status
        return UNFINISHED
    status = metrics_attrs(run).get("status")
    if status in FINISHED:
        return status
    return UNFINISHED if files.exists() else NEW


def is_finished(run):
    return run_status(run) in FINISHED


def metrics_attrs(run):
    """The attributes of the run's metrics file (status, best_score, test_score, ...), or
    {} when it is missing or unreadable."""
    import h5py
    try:
        with h5py.File(run.files.metrics, "r") as f:
            return {k: _plain(v) for k, v in f.attrs.items()}
    except (OSError, ValueError):
        return {}


def current_epoch(run):
    """Epochs finished so far, from the run's text log (one line per epoch), or 0."""
    try:
        with open(run.files.results, encoding="utf-8", errors="replace") as f:
            return sum(1 for line in f if line.startswith("epoch "))
    except OSError:
        return 0


def _plain(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "item"):
        return value.item()
    return value
