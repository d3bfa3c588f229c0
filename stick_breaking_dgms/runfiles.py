"""Where a run's files live, and whether a command starts a new run or resumes one.

A run is named like the original's: a prefix (``stickBreaking_vae``, ``gauss_vae``,
``sb_ss-dgm``, ``gauss_ss-dgm``) and the sorted arguments that define it. Its files,
in ``--experiment-dir``:

* ``<prefix>_results_<name>.txt``   the text log, one line per epoch and a final line
* ``<prefix>_metrics_<name>.h5``    the same per-epoch metrics as arrays
* ``<prefix>_metrics_<name>.csv``   the same again as a table (one row per epoch)
* ``<prefix>_checkpoint_<name>.h5`` the latest state (``.prev.h5``: the one before)
* ``<prefix>_params_<name>.h5``     the best parameters
* ``.<prefix>_<name>.lock``         held (``flock``) by the process writing the run

Running the same command again resumes the run when it is unfinished; when it has
finished, a new run starts with a counter appended to the name (``_1``, ``_2``, ...),
as the original did, so a finished run's files are never overwritten. A run that
another process is writing (its lock is held) is never touched either: ``--resume``
refuses, the default starts a new run beside it.
"""
import contextlib
import errno
import hashlib
import os

from .checkpoints import CheckpointError, read_checkpoint
from .fileio import remove_stale_temporaries

FINISHED = ("finished", "nan")

# Values that name a run as in the original (its flags but --experiment-dir, --lookahead,
# --max-epoch), by their flat names (:meth:`.config.ExperimentConfig.flat`) ...
ORIGINAL_NAME_KEYS = ("activation_type", "alpha0", "batch_size", "dataset", "hidden_size",
                      "hidden_type", "learning_rate", "nb_hidden_layers", "skip",
                      "truncation_level", "latent_size", "label_drop_percentage",
                      "supervised_weight")
# ... and ours, which enter the name only when they differ from their defaults.
EXTRA_NAME_KEYS = ("seed", "posterior", "logit_prior", "kl", "kl_taylor_terms", "digamma",
                   "floatX", "likelihood", "clip_kumaraswamy", "clip_gradient_norm", "on_nan")
# A checkpoint resumes only a run whose configuration agrees on all of them.
IDENTITY_KEYS = ORIGINAL_NAME_KEYS + EXTRA_NAME_KEYS


class RunLock:
    """An exclusive ``flock`` on a run's lock file, released when the process ends.

    The kernel drops the lock when the holder dies, even by SIGKILL, so a stale lock
    never blocks a resume. The lock file itself is left in place (removing it would let
    two processes hold locks on different files of the same name).
    """

    def __init__(self, path):
        self.path, self.fd = path, None

    def acquire(self):
        """Take the lock without waiting; return False when another process holds it."""
        try:
            import fcntl
        except ImportError:  # no flock (Windows): no protection against concurrent runs
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise
        with contextlib.suppress(OSError):  # the pid is for messages only (a full disk)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return True

    def release(self):
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)  # no holder now: the file says so
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None

    def holder(self):
        """The pid written by the holder (for messages), or None."""
        try:
            with open(self.path) as f:
                return int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            return None


class RunFiles:
    """Paths of one run's files."""

    def __init__(self, experiment_dir, prefix, name):
        self.experiment_dir, self.prefix, self.name = experiment_dir, prefix, name
        self.lock = RunLock(os.path.join(experiment_dir, f".{prefix}_{name}.lock"))

    def _path(self, kind, ext):
        return os.path.join(self.experiment_dir, f"{self.prefix}_{kind}_{self.name}{ext}")

    @property
    def results(self):
        return self._path("results", ".txt")

    @property
    def metrics(self):
        return self._path("metrics", ".h5")

    @property
    def metrics_csv(self):
        return self._path("metrics", ".csv")

    @property
    def checkpoint(self):
        return self._path("checkpoint", ".h5")

    @property
    def previous_checkpoint(self):
        return self._path("checkpoint", ".prev.h5")

    @property
    def best(self):
        return self._path("params", ".h5")

    def all_paths(self):
        return [self.results, self.metrics, self.metrics_csv, self.checkpoint,
                self.previous_checkpoint, self.best]

    def exists(self):
        return any(os.path.exists(p) for p in (self.results, self.checkpoint,
                                                self.previous_checkpoint))

    def remove_stale_temporaries(self):
        """Delete temporary files a killed process left (call only while holding the lock)."""
        return remove_stale_temporaries(self.all_paths())


def run_name_of(config):
    """The run name of an :class:`~.config.ExperimentConfig`, as the original scripts
    name it from their arguments (unchanged for every command of earlier versions)."""
    from .config import ExperimentConfig
    flat = config.flat()
    defaults = ExperimentConfig(config.model).flat()
    keys = [k for k in ORIGINAL_NAME_KEYS if k in flat]
    extra = [k for k in EXTRA_NAME_KEYS if k in flat]
    return run_name(flat, keys + extra, {k: defaults[k] for k in extra})


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


def load_latest_checkpoint(files, log=print, validate=None):
    """Read the run's checkpoint, falling back to the previous one if it is not sound.

    ``validate(groups, meta, path)``, when given, is called on each readable checkpoint
    and may refuse it by raising CheckpointError (e.g. shapes that do not fit the model
    built from the arguments); the previous checkpoint is then tried.

    Returns (groups, meta, path) or None when the run has no checkpoint.
    Raises CheckpointError when checkpoints exist but none is sound.
    """
    errors = []
    for path in (files.checkpoint, files.previous_checkpoint):
        if not os.path.exists(path):
            continue
        try:
            groups, meta = read_checkpoint(path, required_groups=("params",))
            if validate is not None:
                validate(groups, meta, path)
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


def _status(meta):
    state = meta.get("state")
    return state.get("status") if isinstance(state, dict) else None


def resolve_run(experiment_dir, prefix, base_name, mode="auto", log=print):
    """Decide the run's files and whether to resume, and lock the run.

    mode: ``"auto"`` resumes an unfinished run with these arguments, else starts a new
    one; ``"resume"`` requires an unfinished run; ``"new"`` always starts a new run.
    Returns (RunFiles, checkpoint) where checkpoint is (groups, meta, path) or None; the
    returned run's lock is held (``files.lock``) and its stale temporary files removed.
    Raises CheckpointError when the choice cannot be made safely.
    """
    candidates = []
    counter = 0
    while True:
        name = base_name if counter == 0 else f"{base_name}_{counter}"
        files = RunFiles(experiment_dir, prefix, name)
        _refuse_folders(files)
        if not files.exists() and not (os.path.exists(files.lock.path) and _locked(files)):
            break
        candidates.append(files)
        counter += 1
    if candidates and mode != "new":
        last = candidates[-1]
        files, checkpoint = _resume_choice(last, mode, log)
        if files is not None:
            if files.lock.acquire():
                files.remove_stale_temporaries()
                return files, checkpoint
            # another process took the run between our check and now
            if mode == "resume":
                raise CheckpointError(f"--resume: run {last.results} is being written by "
                                      f"another process (pid {files.lock.holder()})")
            log(f"run {last.results} is being written by another process; starting a new "
                f"run beside it")
    elif mode == "resume":
        raise CheckpointError(f"--resume: no run named {prefix}_*_{base_name} in "
                              f"{experiment_dir} to resume")
    return _fresh(experiment_dir, prefix, base_name, counter, log), None


def _refuse_folders(files):
    """CheckpointError when a folder sits where one of the run's files should be (it
    would make a write fail only after training)."""
    for path in files.all_paths() + [files.lock.path]:
        if os.path.isdir(path):
            raise CheckpointError(f"{path} is a folder where the run's file of that name "
                                  f"should be; move it away (or use another "
                                  f"--experiment-dir)")


def _locked(files):
    if files.lock.acquire():
        files.lock.release()
        return False
    return True


def _fresh(experiment_dir, prefix, base_name, counter, log):
    """The first name from ``counter`` on with no files and a lock we can take."""
    while True:
        name = base_name if counter == 0 else f"{base_name}_{counter}"
        files = RunFiles(experiment_dir, prefix, name)
        if not files.exists() and files.lock.acquire():
            if files.exists():  # created between the check and the lock: not ours
                files.lock.release()
            else:
                files.remove_stale_temporaries()
                return files
        counter += 1


def _resume_choice(last, mode, log):
    """(files, checkpoint) to resume ``last``, or (None, None) to start a new run."""
    if _locked(last):
        if mode == "resume":
            raise CheckpointError(f"--resume: run {last.results} is being written by another "
                                  f"process (pid {last.lock.holder()})")
        log(f"run {last.results} is being written by another process (pid "
            f"{last.lock.holder()}); starting a new run beside it")
        return None, None
    finished = _log_says_finished(last.results)
    try:  # quietly: the caller loads it again, checked against the model, and says so
        checkpoint = load_latest_checkpoint(last, lambda message: None)
    except CheckpointError:
        if finished:  # a finished run whose checkpoint is damaged: still never overwrite it
            if mode == "resume":
                raise CheckpointError(f"--resume: run {last.results} has finished") from None
            return None, None
        raise
    if checkpoint is None:
        # Started but never reached its first checkpoint: nothing to lose, start it over.
        if finished:
            if mode == "resume":
                raise CheckpointError(f"--resume: run {last.results} has finished")
            return None, None
        return last, None
    status = _status(checkpoint[1])
    if status in FINISHED and not outputs_complete(last, checkpoint[1]):
        # killed between the final checkpoint and the final log write: the caller
        # completes the log and metrics from the checkpoint, without training
        return last, checkpoint
    if status in FINISHED:
        if mode == "resume":
            raise CheckpointError(f"--resume: run {last.results} has already finished "
                                  f"(status {status}); run without --resume to start a new one")
        return None, None
    return last, checkpoint


def outputs_complete(files, meta):
    """Whether the run's outputs caught up with its checkpoint's run state.

    The log and then the metrics are rewritten from the state after each checkpoint, so
    they lag it only when a process was killed in between; the metrics file, written
    last, says the state's status once both are written.
    """
    state = meta.get("state") if isinstance(meta, dict) else None
    if not isinstance(state, dict):
        return False
    try:
        import h5py
        with h5py.File(files.metrics, "r") as f:
            return f.attrs.get("status") == state.get("status")
    except (OSError, ValueError, TypeError):
        return False


def run_status(files):
    """What a run's files say of it, without changing them.

    Returns one of ``"absent"`` (no files), ``"locked"`` (a process is writing it),
    ``"unfinished"`` (a command would resume it; also a run that ended but whose log is
    incomplete), ``"finished"``, ``"nan"`` (stopped on a NaN) or ``"damaged"`` (files but
    no sound checkpoint, and no log saying it ended).
    """
    if not files.exists():
        return "absent"
    if _locked(files):
        return "locked"
    try:
        checkpoint = load_latest_checkpoint(files, lambda message: None)
    except CheckpointError:
        return "finished" if _log_says_finished(files.results) else "damaged"
    if checkpoint is None:
        return "finished" if _log_says_finished(files.results) else "unfinished"
    status = _status(checkpoint[1])
    if status in FINISHED and outputs_complete(files, checkpoint[1]):
        return status
    return "unfinished"


def _log_says_finished(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return False
    return "Done!" in text or "Ended due to NaN" in text
