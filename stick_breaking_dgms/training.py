"""The epoch loop shared by every model: early stopping, logs, checkpoints, NaN policy.

A *task* (see :mod:`.experiments`) supplies the compiled functions and the formats:

``n_train_batches``, ``train_metrics`` (names of what ``train_step`` returns),
``train_step(i)``, ``validate()`` and ``test()`` (dicts with a ``"score"``, lower is
better), ``format_epoch(epoch, train_means, valid, seconds)``,
``format_final(prefix, best_epoch, best_score, test, minutes)``, and the shared
variables to save: ``params``, ``optimizer_state`` (name -> shared) and ``rngs``.

The loop follows the original: after each epoch the validation score is computed;
a new best is marked ``***`` and its parameters kept; training stops once the best
is more than ``lookahead`` epochs old, or after ``max_epoch`` epochs; the test score
is computed with the best parameters. On top of that:

* the complete state (parameters, Adam state, random streams, position in the epoch,
  best so far, history) is checkpointed every ``checkpoint_every`` epochs, and on
  SIGINT/SIGTERM wherever the run is; resuming gives exactly the run that was not
  interrupted;
* a NaN in the training loss stops the run with the best parameters' test score
  (``on_nan="stop"``, the original's behaviour) or skips the batch
  (``on_nan="skip-batch"``, the update was already withheld inside the graph);
* the log and the metrics are rewritten atomically from the state after each epoch.

Checkpoints rotate: each save writes the new checkpoint to a temporary file, and once it
is complete on disk renames the current one to ``.prev.h5`` and the new one into place,
so a hard kill at any moment leaves at least one complete checkpoint (at most
``checkpoint_every`` epochs old), and a full disk fails before anything was renamed. A
checkpoint that was refused when the run resumed (damaged) is replaced, never rotated
over the sound ``.prev.h5`` the run resumed from.

Whether a run has finished is said by one thing: the status in its checkpoint's run
state (``running``, ``finished`` or ``nan``). The final checkpoint is written before the
log and the metrics; a run killed between the two is completed (log and metrics written
from the checkpoint, no training) by the next command that resumes it.

Test hook. ``SBDGM_TEST_INTERRUPT="SIGNAL@EVENT:N"`` (e.g. ``SIGTERM@step:250``) makes
the trainer send itself ``SIGNAL`` (SIGINT, SIGTERM, SIGKILL, ...) at a precise,
reproducible point, so tests can interrupt a real run where they want instead of
racing a timer. ``EVENT`` is

* ``step``: after the N-th training step of the run (counted over all epochs,
  ``epoch * n_train_batches + batch``; a resumed run keeps counting);
* ``validated``: after the validation pass of epoch N, before its checkpoint;
* ``checkpoint``: right after the periodic checkpoint at the end of epoch N is written;
* ``rotated``: inside that save, after the old checkpoint became ``.prev.h5`` and
  before the new one takes its name (only ``.prev.h5`` exists at that moment);
* ``final``: after the final checkpoint of a run that ran N epochs, before its log and
  metrics are written.

The variable is read once, when the Trainer is made; unset (the normal case) it costs
nothing. It exists for tests only.
"""
import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field

import h5py
import numpy as np

from .checkpoints import CheckpointError, check_shapes, write_checkpoint
from .fileio import atomic_path, write_text

EXIT_OK, EXIT_NAN = 0, 1


class RunWriteError(OSError):
    """One of a run's files could not be written (a full disk, permissions, ...).

    The message names the file and the system's reason, and says which checkpoint is
    left to resume from: every write is atomic, so what was written before is untouched.
    """

    def __init__(self, path, files, cause):
        kept = [p for p in (files.checkpoint, files.previous_checkpoint) if os.path.exists(p)]
        left = (f"the last checkpoint written, {kept[0]}, is intact: run the same command "
                f"again once the problem is solved to resume from it"
                if kept else "no checkpoint had been written yet")
        reason = cause.strerror or str(cause)
        super().__init__(cause.errno, f"cannot write {path}: {reason}; {left}")
        self.path, self.files, self.cause = path, files, cause

    def __str__(self):
        return self.strerror
TEST_INTERRUPT_ENV = "SBDGM_TEST_INTERRUPT"
TEST_INTERRUPT_EVENTS = ("step", "validated", "checkpoint", "rotated", "final")


def parse_test_interrupt(text):
    """``"SIGTERM@step:250"`` -> (signal number, "step", 250); None for an empty value."""
    if not text:
        return None
    try:
        name, rest = text.split("@", 1)
        event, count = rest.split(":", 1)
        sig = signal.Signals[name.strip().upper()]
        count = int(count)
    except (ValueError, KeyError):
        raise ValueError(f"{TEST_INTERRUPT_ENV}={text!r}: expected SIGNAL@EVENT:N, e.g. "
                         f"SIGTERM@step:250") from None
    if event not in TEST_INTERRUPT_EVENTS:
        raise ValueError(f"{TEST_INTERRUPT_ENV}={text!r}: EVENT must be one of "
                         f"{', '.join(TEST_INTERRUPT_EVENTS)}")
    return int(sig), event, count


@dataclass
class RunState:
    """Everything besides the arrays that a resumed run needs."""

    epoch: int = 0  # epochs completed
    batch: int = 0  # next training batch within the current epoch
    sums: list = None  # per-metric sums over the epoch's finite batches
    n_steps: int = 0  # finite batches so far in the epoch
    skipped: int = 0  # non-finite batches so far in the epoch
    seconds: float = 0.0  # training time spent in the current epoch
    best_epoch: int = -1
    best_score: float = math.inf
    history: list = field(default_factory=list)  # one dict per epoch
    lines: list = field(default_factory=list)  # the log's lines
    status: str = "running"  # "finished" or "nan" once the run has ended
    total_seconds: float = 0.0
    test_result: dict = None  # the best parameters' test metrics, once tested
    stopped_by: str = None  # once ended: "early stopping", "max_epoch" or "nan"


def _duration(seconds):
    """``42s``, ``7m05s``, ``3h12m``: short enough for a progress line."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """A one-line live display of the epoch on stderr (only on a terminal by default).

    The line is cut to the terminal's width (measured at each redraw), so it never wraps
    and the next redraw overwrites it whole. It shows the epoch's position, the running
    means of the training metrics, the epoch's ETA, the epochs since the best one and an
    upper bound on the run's remaining time (the epochs left before ``max_epoch`` or early
    stopping, whichever comes first, at this epoch's pace).
    """

    def __init__(self, mode="auto", stream=sys.stderr, interval=0.2):
        self.enabled = mode == "always" or (mode == "auto" and stream.isatty())
        self.stream, self.interval, self.last, self.shown = stream, interval, 0.0, False

    def update(self, epoch, done, total, means, names, started, since_best=None,
               epochs_left=None):
        """``epochs_left``: whole epochs that may follow this one (None: unknown)."""
        if not self.enabled:
            return
        now = time.time()
        if now - self.last < self.interval and done < total:
            return
        self.last = now
        rate = (now - started) / max(done, 1)
        eta = rate * (total - done)
        parts = [f"epoch {epoch} {100 * done // max(total, 1):3d}% {done}/{total}",
                 " ".join(f"{n} {m:.3f}" for n, m in zip(names, means)),
                 f"eta {_duration(eta)}"]
        if since_best is not None:
            parts.append(f"best {since_best} ep ago")
        if epochs_left is not None:
            parts.append(f"run <= {_duration(eta + epochs_left * rate * total)}")
        import shutil
        width = shutil.get_terminal_size((80, 24)).columns
        line = " | ".join(p for p in parts if p)[:max(width - 1, 10)]
        self.stream.write(f"\r{line}\033[K")
        self.stream.flush()
        self.shown = True

    def clear(self):
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False


def _get(shared_vars):
    return {name: np.array(v.get_value(borrow=True)) for name, v in shared_vars.items()}


def _set(shared_vars, arrays):
    for name, v in shared_vars.items():
        v.set_value(np.asarray(arrays[name], dtype=v.dtype))


def rng_states(rngs):
    return [r.get_value(borrow=True).bit_generator.state for r in rngs]


def set_rng_states(rngs, states):
    if len(states) != len(rngs):
        raise ValueError(f"checkpoint has {len(states)} random streams, the model {len(rngs)}")
    for r, state in zip(rngs, states):
        gen = r.get_value(borrow=True)
        gen.bit_generator.state = state
        r.set_value(gen, borrow=True)


class Trainer:
    """Runs a task's epochs; see the module docstring.

    Parameters
    ----------
    task : object with the interface described above
    files : runfiles.RunFiles
    meta : dict
        JSON-able description of the run (its arguments, seed, versions), saved in
        every checkpoint.
    max_epoch, lookahead : int
    checkpoint_every : int
        Save the full state every this many epochs (and on interruption, and at the end).
    on_nan : {"stop", "skip-batch"}
    progress : {"auto", "always", "never"}
    out : file, optional
        Where epoch lines are printed (default: ``sys.stdout`` when the Trainer is made).
    """

    def __init__(self, task, files, meta, max_epoch, lookahead, checkpoint_every=1,
                 on_nan="stop", progress="auto", out=None):
        self.task, self.files, self.meta = task, files, meta
        self.max_epoch, self.lookahead = max_epoch, lookahead
        self.checkpoint_every, self.on_nan = checkpoint_every, on_nan
        self.progress = Progress(progress)
        self.out = sys.stdout if out is None else out  # the current stdout, not import's
        self.state = RunState(sums=[0.0] * len(task.train_metrics))
        self.best_params = None
        self.signal = None
        self.checkpoint_seconds = []  # time of each periodic save, for measurements
        # True while files.checkpoint is one the run refused on resuming (damaged): the next
        # save replaces it instead of rotating it over the sound .prev.h5
        self.checkpoint_damaged = False
        self._test_interrupt = parse_test_interrupt(os.environ.get(TEST_INTERRUPT_ENV))

    def _hook(self, event, count):
        """Send ourselves the test signal when (event, count) is the configured point."""
        if self._test_interrupt is not None and self._test_interrupt[1:] == (event, count):
            os.kill(os.getpid(), self._test_interrupt[0])

    # -- state in and out --------------------------------------------------------------

    def restore(self, groups, meta, path=None):
        """Load a checkpoint's arrays and state into the task.

        Everything is checked first -- array names, shapes and dtypes against the model
        built from the arguments, finite best parameters, the run state, the random
        streams' states -- and a CheckpointError naming ``path`` raised before anything
        is changed, so a refused checkpoint leaves the task as it was.
        """
        path = path or self.files.checkpoint
        task = self.task

        def expected(shared_vars):
            return ({n: v.get_value(borrow=True).shape for n, v in shared_vars.items()},
                    {n: v.get_value(borrow=True).dtype for n, v in shared_vars.items()})

        if not isinstance(groups.get("params"), dict):
            raise CheckpointError(f"{path}: missing the 'params' arrays")
        shapes, dtypes = expected(task.params)
        check_shapes(path, groups["params"], shapes, dtypes=dtypes)
        state = _check_state(path, meta, len(task.train_metrics), task.n_train_batches)
        optimizer = groups.get("optimizer")
        if optimizer is None and state.status == "running":
            raise CheckpointError(f"{path}: missing the 'optimizer' arrays (Adam's state)")
        if optimizer is not None:
            opt_shapes, opt_dtypes = expected(task.optimizer_state)
            check_shapes(path, optimizer, opt_shapes, what="optimizer state", dtypes=opt_dtypes)
        best = groups.get("best")
        if best is not None:
            check_shapes(path, best, shapes, what="best parameters", dtypes=dtypes)
            if not all(np.all(np.isfinite(a)) for a in best.values()):
                raise CheckpointError(f"{path}: the best parameters are not finite")
        if best is None and state.best_epoch >= 0:
            raise CheckpointError(f"{path}: the state has a best epoch but no best parameters")
        rngs = _checked_rng_states(path, task.rngs, meta.get("rng_states"))
        # all checked: apply
        if optimizer is not None:
            _set(task.optimizer_state, optimizer)
        _set(task.params, groups["params"])
        self.best_params = best
        self.state = state
        for r, gen in zip(task.rngs, rngs):
            r.set_value(gen, borrow=True)
        self.checkpoint_damaged = (os.path.abspath(path) != os.path.abspath(self.files.checkpoint)
                                   and os.path.exists(self.files.checkpoint))

    def save_checkpoint(self, with_optimizer=True, periodic=False):
        """Rotate the checkpoint to ``.prev.h5`` and write the current state; return seconds."""
        started = time.time()
        groups = {"params": _get(self.task.params)}
        if with_optimizer:
            groups["optimizer"] = _get(self.task.optimizer_state)
        if self.best_params is not None:
            groups["best"] = self.best_params
        meta = dict(self.meta, state=asdict(self.state), rng_states=rng_states(self.task.rngs))
        previous = None if self.checkpoint_damaged else self.files.previous_checkpoint
        between = (lambda: self._hook("rotated", self.state.epoch - 1)) if periodic else None
        try:
            write_checkpoint(self.files.checkpoint, groups, meta, previous, between)
        except OSError as e:
            raise RunWriteError(self.files.checkpoint, self.files, e) from None
        self.checkpoint_damaged = False
        seconds = time.time() - started
        if periodic:
            self.checkpoint_seconds.append(seconds)
        return seconds

    def save_best(self):
        meta = dict(self.meta, best_epoch=self.state.best_epoch, best_score=self.state.best_score)
        try:
            write_checkpoint(self.files.best, {"params": self.best_params}, meta)
        except OSError as e:
            raise RunWriteError(self.files.best, self.files, e) from None

    def write_outputs(self):
        """Rewrite the text log and the HDF5 metrics from the state (atomically)."""
        for path, write in ((self.files.results, self._write_log),
                            (self.files.metrics_csv, self._write_metrics_csv),
                            (self.files.metrics, self._write_metrics)):
            try:
                write()
            except OSError as e:
                raise RunWriteError(path, self.files, e) from None

    def _write_log(self):
        write_text(self.files.results, "".join(line + "\n" for line in self.state.lines))

    def _write_metrics_csv(self):
        """The per-epoch metrics as a CSV table: ``epoch`` first, then the other columns
        in alphabetical order; an empty cell where an epoch lacks a value."""
        hist = self.state.history
        keys = sorted({k for h in hist for k in h} - {"epoch"})
        rows = [",".join(["epoch"] + keys)]
        for h in hist:
            rows.append(",".join([str(h.get("epoch", ""))]
                                 + [repr(h[k]) if k in h else "" for k in keys]))
        write_text(self.files.metrics_csv, "\n".join(rows) + "\n")

    def _write_metrics(self):
        hist = self.state.history
        with atomic_path(self.files.metrics) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["meta"] = json.dumps(self.meta, sort_keys=True)
                f.attrs["status"] = self.state.status
                f.attrs["best_epoch"] = self.state.best_epoch
                f.attrs["best_score"] = self.state.best_score
                if self.state.stopped_by:
                    f.attrs["stopped_by"] = self.state.stopped_by
                keys = sorted({k for h in hist for k in h}) if hist else []
                for k in keys:
                    f.create_dataset(k, data=np.array([h.get(k, np.nan) for h in hist]))
                if self.state.status in ("finished", "nan") and self.state.test_result:
                    for k, v in self.state.test_result.items():
                        f.attrs["test_" + k] = v

    def emit(self, line):
        self.progress.clear()
        print(line, file=self.out, flush=True)
        self.state.lines.append(line)

    # -- signals ---------------------------------------------------------------------

    def _on_signal(self, signum, frame):
        self.signal = signum

    def _install_handlers(self):
        self._old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def _remove_handlers(self):
        for s, h in self._old.items():
            signal.signal(s, h)

    def _interrupted(self, saved=False):
        self.progress.clear()
        if not saved:
            self.save_checkpoint()
            self.write_outputs()
        name = signal.Signals(self.signal).name
        where = (f"epoch {self.state.epoch}, batch {self.state.batch} of "
                 f"{self.task.n_train_batches}")
        print(f"Interrupted by {name} at {where}; state saved to {self.files.checkpoint}. "
              f"Run the same command again to resume.", file=self.out, flush=True)
        return 128 + self.signal

    # -- the loop ----------------------------------------------------------------------

    def run(self):
        """Train until early stopping, max_epoch, a NaN or a signal; return an exit code."""
        self._install_handlers()
        try:
            return self._run()
        finally:
            self._remove_handlers()
            self.progress.clear()

    def _run(self):
        task, st = self.task, self.state
        names = task.train_metrics
        stop = st.epoch > 0 and st.epoch - 1 - st.best_epoch > self.lookahead
        while st.epoch < self.max_epoch and not stop:
            started = time.time()
            seconds_before = st.seconds
            for i in range(st.batch, task.n_train_batches):
                values = task.train_step(i)
                if all(math.isfinite(v) for v in values):
                    st.sums = [s + float(v) for s, v in zip(st.sums, values)]
                    st.n_steps += 1
                elif self.on_nan == "stop":
                    return self._stop_on_nan(f"training batch {i} of epoch {st.epoch}")
                else:
                    st.skipped += 1
                st.batch = i + 1
                st.seconds = seconds_before + time.time() - started
                self._hook("step", st.epoch * task.n_train_batches + st.batch)
                self.progress.update(st.epoch, st.batch, task.n_train_batches,
                                     [s / max(st.n_steps, 1) for s in st.sums], names, started,
                                     *self._outlook())
                if self.signal is not None and st.batch < task.n_train_batches:
                    return self._interrupted()
            if st.n_steps == 0:
                return self._stop_on_nan(f"every training batch of epoch {st.epoch}")
            means = [s / st.n_steps for s in st.sums]
            valid = task.validate()
            epoch = st.epoch
            self._hook("validated", epoch)
            is_best = math.isfinite(valid["score"]) and valid["score"] < st.best_score
            if is_best:
                candidate = _get(task.params)
                is_best = all(np.all(np.isfinite(a)) for a in candidate.values())
            if not math.isfinite(valid["score"]) and self.on_nan == "stop":
                return self._stop_on_nan(f"the validation pass of epoch {epoch}")
            line = task.format_epoch(epoch, means, valid, st.seconds)
            if st.skipped:
                line += f", skipped {st.skipped} NaN batches"
            if is_best:
                st.best_epoch, st.best_score = epoch, float(valid["score"])
                self.best_params = candidate
                line += " ***"
            elif epoch - st.best_epoch > self.lookahead:
                stop = True
            self.emit(line)
            record = {"epoch": epoch, "seconds": st.seconds, "best": int(is_best),
                      "skipped_batches": st.skipped}
            record.update({"train_" + n: m for n, m in zip(names, means)})
            record.update({"valid_" + k: float(v) for k, v in valid.items()})
            st.history.append(record)
            st.total_seconds += st.seconds
            st.epoch, st.batch, st.n_steps, st.skipped, st.seconds = epoch + 1, 0, 0, 0, 0.0
            st.sums = [0.0] * len(names)
            if is_best:
                self.save_best()
            if st.epoch % self.checkpoint_every == 0 or self.signal is not None:
                self.save_checkpoint(periodic=True)
                self._hook("checkpoint", epoch)
            self.write_outputs()
            if self.signal is not None:
                return self._interrupted(saved=True)
        st.stopped_by = "early stopping" if stop else "max_epoch"
        return self._finish("Done!")

    def _outlook(self):
        """(epochs since the best one or None, whole epochs that may follow this one)."""
        st = self.state
        since = st.epoch - 1 - st.best_epoch if st.best_epoch >= 0 else None
        last = self.max_epoch - 1  # the last epoch early stopping may still allow
        if st.best_epoch >= 0:
            last = min(last, st.best_epoch + self.lookahead + 1)
        return since, max(0, last - st.epoch)

    def _finish(self, prefix, status="finished"):
        task, st = self.task, self.state
        if self.best_params is None:
            self.emit(f"{prefix} no epoch finished with a finite validation score; "
                      f"nothing to test")
            st.status = status
            self.save_checkpoint(with_optimizer=status == "finished")
            self._hook("final", st.epoch)
            self.write_outputs()
            return EXIT_NAN
        last = _get(task.params)
        _set(task.params, self.best_params)
        test = task.test()
        st.test_result = {k: float(v) for k, v in test.items()}
        line = task.format_final(prefix, st.best_epoch, st.best_score, test,
                                 st.total_seconds / 60)
        skipped = sum(int(h.get("skipped_batches", 0)) for h in st.history)
        if skipped:
            line += f", skipped {skipped} NaN batches in all"
        self.emit(line)
        st.status = status
        if status == "finished":
            _set(task.params, last)  # the checkpoint keeps the last epoch's parameters
            self.save_checkpoint()
            _set(task.params, self.best_params)
        else:  # never save non-finite parameters: keep the best ones
            self.save_checkpoint(with_optimizer=False)
        self._hook("final", st.epoch)
        self.write_outputs()
        return EXIT_OK if status == "finished" else EXIT_NAN

    def complete(self):
        """Write the log and metrics of a restored run whose checkpoint says it has ended
        (a kill came between its final checkpoint and its final log write); no training.
        Returns the exit code the run ended with."""
        self.write_outputs()
        return EXIT_OK if self.state.status == "finished" else EXIT_NAN

    def _stop_on_nan(self, where):
        self.progress.clear()
        self.state.stopped_by = "nan"
        self.emit(f"found NaN in {where}...aborting training...")
        code = self._finish("Ended due to NaN!", status="nan")
        what = ("the best epoch's parameters were restored and tested"
                if self.best_params is not None else "no epoch had finished: nothing to test")
        print(f"Training stopped on a NaN; {what}. Options: --on-nan skip-batch, "
              f"--clip-kumaraswamy, --clip-gradient-norm.", file=self.out, flush=True)
        return code if code != EXIT_OK else EXIT_NAN


def _check_state(path, meta, n_metrics, n_batches):
    """The RunState of a checkpoint's metadata, checked; CheckpointError if it is not sound."""
    raw = meta.get("state")
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: no run state in the metadata")
    try:
        state = RunState(**raw)
    except TypeError as e:
        raise CheckpointError(f"{path}: the run state does not fit this version: {e}") from None

    def is_int(x):
        return isinstance(x, int) and not isinstance(x, bool)

    def is_num(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    problems = []
    if not (is_int(state.epoch) and state.epoch >= 0):
        problems.append(f"epoch {state.epoch!r}")
    if not (is_int(state.batch) and 0 <= state.batch <= n_batches):
        problems.append(f"batch {state.batch!r} (an epoch has {n_batches} batches)")
    if not (isinstance(state.sums, list) and len(state.sums) == n_metrics
            and all(is_num(x) for x in state.sums)):
        problems.append(f"metric sums {state.sums!r}")
    for key in ("n_steps", "skipped"):
        if not (is_int(getattr(state, key)) and getattr(state, key) >= 0):
            problems.append(f"{key} {getattr(state, key)!r}")
    if not (is_int(state.best_epoch) and is_int(state.epoch)
            and -1 <= state.best_epoch <= state.epoch - 1 or state.best_epoch == -1):
        problems.append(f"best epoch {state.best_epoch!r}")
    if not is_num(state.best_score) or math.isnan(state.best_score):
        problems.append(f"best score {state.best_score!r}")
    if not (isinstance(state.lines, list) and all(isinstance(x, str) for x in state.lines)):
        problems.append("log lines")
    if not (isinstance(state.history, list)
            and all(isinstance(h, dict) and all(isinstance(k, str) and is_num(v)
                                                for k, v in h.items())
                    for h in state.history)
            and len(state.history) == (state.epoch if is_int(state.epoch) else -1)):
        problems.append("history")
    if not (is_num(state.seconds) and is_num(state.total_seconds)):
        problems.append("timings")
    if state.status not in ("running", "finished", "nan"):
        problems.append(f"status {state.status!r}")
    if state.stopped_by not in (None, "early stopping", "max_epoch", "nan"):
        problems.append(f"stopped by {state.stopped_by!r}")
    if state.test_result is not None and not (
            isinstance(state.test_result, dict)
            and all(isinstance(k, str) and is_num(v) for k, v in state.test_result.items())):
        problems.append("test result")
    if problems:
        raise CheckpointError(f"{path}: damaged run state: " + ", ".join(problems))
    return state


def _checked_rng_states(path, rngs, states):
    """Copies of the task's generators set to ``states``; CheckpointError if they do not fit."""
    import copy

    if not isinstance(states, list) or len(states) != len(rngs):
        n = len(states) if isinstance(states, list) else states
        raise CheckpointError(f"{path}: checkpoint has {n} random stream states, the model "
                              f"{len(rngs)}")
    out = []
    for i, (r, state) in enumerate(zip(rngs, states)):
        gen = copy.deepcopy(r.get_value(borrow=True))
        try:
            if not isinstance(state, dict) or \
                    state.get("bit_generator") != gen.bit_generator.state["bit_generator"]:
                raise ValueError(f"not a {gen.bit_generator.state['bit_generator']} state")
            gen.bit_generator.state = state
        except (TypeError, ValueError, KeyError, OverflowError) as e:
            raise CheckpointError(f"{path}: random stream {i}: invalid state ({e})") from None
        out.append(gen)
    return out
