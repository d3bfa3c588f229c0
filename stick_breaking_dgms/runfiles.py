"""Where a run's files live, and whether a command starts a new run or resumes one.

A run is named like the original's: a prefix (``stickBreaking_vae``, ``gauss_vae``,
``sb_ss-dgm``, ``gauss_ss-dgm``) and the sorted arguments that define it. Its files,
in ``--experiment-dir``:

* ``<prefix>_results_<name>.txt``   the text log, one line per epoch and a final line
* ``<prefix>_metrics_<name>.h5``    the same per-epoch metrics as arrays
* ``<prefix>_checkpoint_<name>.h5`` the latest state (``.prev.h5``: the one before)
* ``<prefix>_params_<name>.h5``     the best parameters

Running the same command again resumes the run when it is unfinished; when it has
finished, a new run starts with a counter appended to the name (``_1``, ``_2``, ...),
as the original did, so a finished run's files are never overwritten.
"""
import hashlib
import os

from .checkpoints import CheckpointError, read_checkpoint

FINISHED = ("finished", "nan")


class RunFiles:
    """Paths of one run's files."""

    def __init__(self, experiment_dir, prefix, name):
        self.experiment_dir, self.prefix, self.name = experiment_dir, prefix, name

    def _path(self, kind, ext):
        return os.path.join(self.experiment_dir, f"{self.prefix}_{kind}_{self.name}{ext}")

    @property
    def results(self):
        return self._path("results", ".txt")

    @property
    def metrics(self):
        return self._path("metrics", ".h5")

    @property
    def checkpoint(self):
        return self._path("checkpoint", ".h5")

    @property
    def previous_checkpoint(self):
        return self._path("checkpoint", ".prev.h5")

    @property
    def best(self):
        return self._path("params", ".h5")

    def exists(self):
        return any(os.path.exists(p) for p in (self.results, self.checkpoint,
                                                self.previous_checkpoint))


def run_name(args, identity_keys, defaults):
    """Name from the sorted arguments: every key of the original's name, plus our extra
    options only where they differ from their defaults. Long names are shortened with a hash.
    """
    items = []
    for key in sorted(identity_keys):
        value = args[key]
        if key in defaults and defaults[key] == value:
            continue
        items.append(f"{key}_{value}")
    name = "_".join(items).replace(os.sep, "-")
    if len(name) > 180:
        name = name[:160] + "_" + hashlib.sha1(name.encode()).hexdigest()[:12]
    return name


def load_latest_checkpoint(files, log=print):
    """Read the run's checkpoint, falling back to the previous one if it is damaged.

    Returns (groups, meta, path) or None when the run has no checkpoint.
    Raises CheckpointError when checkpoints exist but none is sound.
    """
    errors = []
    for path in (files.checkpoint, files.previous_checkpoint):
        if not os.path.exists(path):
            continue
        try:
            groups, meta = read_checkpoint(path, required_groups=("params",))
        except CheckpointError as e:
            errors.append(str(e))
            log(f"warning: refusing checkpoint: {e}")
            continue
        if errors:
            log(f"using the previous good checkpoint {path}")
        return groups, meta, path
    if errors:
        raise CheckpointError("no sound checkpoint to resume from: " + "; ".join(errors)
                              + " (use --no-resume to start a new run)")
    return None


def resolve_run(experiment_dir, prefix, base_name, mode="auto", log=print):
    """Decide the run's files and whether to resume.

    mode: ``"auto"`` resumes an unfinished run with these arguments, else starts a new
    one; ``"resume"`` requires an unfinished run; ``"new"`` always starts a new run.
    Returns (RunFiles, checkpoint) where checkpoint is (groups, meta, path) or None.
    """
    candidates = []
    counter = 0
    while True:
        name = base_name if counter == 0 else f"{base_name}_{counter}"
        files = RunFiles(experiment_dir, prefix, name)
        if not files.exists():
            break
        candidates.append(files)
        counter += 1
    fresh = files  # the first unused name
    if not candidates:
        if mode == "resume":
            raise CheckpointError(f"--resume: no run named {prefix}_*_{base_name} in "
                                  f"{experiment_dir} to resume")
        return fresh, None
    last = candidates[-1]
    if mode == "new":
        return fresh, None
    checkpoint = load_latest_checkpoint(last, log)
    if checkpoint is None:
        # Started but never reached its first checkpoint: nothing to lose, start it over.
        if _log_says_finished(last.results):
            if mode == "resume":
                raise CheckpointError(f"--resume: run {last.results} has finished")
            return fresh, None
        return last, None
    status = checkpoint[1].get("state", {}).get("status")
    if status in FINISHED:
        if mode == "resume":
            raise CheckpointError(f"--resume: run {last.results} has already finished "
                                  f"(status {status}); run without --resume to start a new one")
        return fresh, None
    return last, checkpoint


def _log_says_finished(path):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return False
    return "Done!" in text or "Ended due to NaN" in text
