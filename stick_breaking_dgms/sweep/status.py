"""Where a run of the sweep stands, read from its own files.

A run has finished when its checkpoint's state says so (``meta["state"]["status"]``
"finished" or "nan", the values :data:`stick_breaking_dgms.runfiles.FINISHED` holds) and
its log and metrics have caught up (:func:`stick_breaking_dgms.runfiles.run_status`).
Only the run's base name is looked at: the sweep always resumes that run, never one
with a counter appended.
"""

from ..runfiles import FINISHED
from ..runfiles import run_status as files_status

NEW, UNFINISHED = "new", "unfinished"


def run_status(run):
    """"finished", "nan" (ended on a NaN, tested with its best parameters), "unfinished"
    (files exist: the next attempt resumes, or completes a run whose final log write a
    kill prevented) or "new" (nothing written yet); from
    :func:`stick_breaking_dgms.runfiles.run_status`, the training's own reading."""
    status = files_status(run.files)
    if status in FINISHED:
        return status
    return NEW if status == "absent" else UNFINISHED


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
