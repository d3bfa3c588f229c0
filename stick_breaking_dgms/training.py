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

from .checkpoints import check_shapes, write_checkpoint
from .fileio import atomic_path, write_text

EXIT_OK, EXIT_NAN = 0, 1


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
    status: str = "running"
    total_seconds: float = 0.0


class Progress:
    """A one-line live display of the epoch on stderr (only on a terminal by default)."""

    def __init__(self, mode="auto", stream=sys.stderr, interval=0.2):
        self.enabled = mode == "always" or (mode == "auto" and stream.isatty())
        self.stream, self.interval, self.last, self.shown = stream, interval, 0.0, False

    def update(self, epoch, done, total, means, names, started):
        if not self.enabled:
            return
        now = time.time()
        if now - self.last < self.interval and done < total:
            return
        self.last = now
        width = 24
        filled = int(width * done / max(total, 1))
        rate = (now - started) / max(done, 1)
        metrics = " ".join(f"{n} {m:.3f}" for n, m in zip(names, means))
        self.stream.write(f"\repoch {epoch} [{'#' * filled}{'.' * (width - filled)}] "
                          f"{done}/{total} {metrics} eta {rate * (total - done):.0f}s\033[K")
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
    out : file
        Where epoch lines are printed.
    """

    def __init__(self, task, files, meta, max_epoch, lookahead, checkpoint_every=1,
                 on_nan="stop", progress="auto", out=sys.stdout):
        self.task, self.files, self.meta = task, files, meta
        self.max_epoch, self.lookahead = max_epoch, lookahead
        self.checkpoint_every, self.on_nan = checkpoint_every, on_nan
        self.progress = Progress(progress)
        self.out = out
        self.state = RunState(sums=[0.0] * len(task.train_metrics))
        self.best_params = None
        self.signal = None

    # -- state in and out --------------------------------------------------------------

    def restore(self, groups, meta):
        """Load a checkpoint's arrays and state into the task (shapes checked)."""
        path = self.files.checkpoint
        expected = {n: v.get_value(borrow=True).shape for n, v in self.task.params.items()}
        check_shapes(path, groups["params"], expected)
        if "optimizer" in groups:
            opt_expected = {n: v.get_value(borrow=True).shape
                            for n, v in self.task.optimizer_state.items()}
            check_shapes(path, groups["optimizer"], opt_expected, what="optimizer state")
            _set(self.task.optimizer_state, groups["optimizer"])
        _set(self.task.params, groups["params"])
        if "best" in groups:
            check_shapes(path, groups["best"], expected, what="best parameters")
            self.best_params = groups["best"]
        self.state = RunState(**meta["state"])
        set_rng_states(self.task.rngs, meta["rng_states"])

    def save_checkpoint(self, with_optimizer=True):
        groups = {"params": _get(self.task.params)}
        if with_optimizer:
            groups["optimizer"] = _get(self.task.optimizer_state)
        if self.best_params is not None:
            groups["best"] = self.best_params
        meta = dict(self.meta, state=asdict(self.state), rng_states=rng_states(self.task.rngs))
        started = time.time()
        if os.path.exists(self.files.checkpoint):
            os.replace(self.files.checkpoint, self.files.previous_checkpoint)
        write_checkpoint(self.files.checkpoint, groups, meta)
        return time.time() - started

    def save_best(self):
        meta = dict(self.meta, best_epoch=self.state.best_epoch, best_score=self.state.best_score)
        write_checkpoint(self.files.best, {"params": self.best_params}, meta)

    def write_outputs(self):
        """Rewrite the text log and the HDF5 metrics from the state (atomically)."""
        write_text(self.files.results, "".join(line + "\n" for line in self.state.lines))
        hist = self.state.history
        with atomic_path(self.files.metrics) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["meta"] = json.dumps(self.meta, sort_keys=True)
                f.attrs["status"] = self.state.status
                f.attrs["best_epoch"] = self.state.best_epoch
                f.attrs["best_score"] = self.state.best_score
                keys = sorted({k for h in hist for k in h}) if hist else []
                for k in keys:
                    f.create_dataset(k, data=np.array([h.get(k, np.nan) for h in hist]))
                if self.state.status in ("finished", "nan") and hasattr(self, "test_result"):
                    for k, v in self.test_result.items():
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

    def _interrupted(self):
        self.progress.clear()
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
                self.progress.update(st.epoch, st.batch, task.n_train_batches,
                                     [s / max(st.n_steps, 1) for s in st.sums], names, started)
                if self.signal is not None and st.batch < task.n_train_batches:
                    return self._interrupted()
            if st.n_steps == 0:
                return self._stop_on_nan(f"every training batch of epoch {st.epoch}")
            means = [s / st.n_steps for s in st.sums]
            valid = task.validate()
            epoch = st.epoch
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
                self.save_checkpoint()
            self.write_outputs()
            if self.signal is not None:
                return self._interrupted()
        return self._finish("Done!")

    def _finish(self, prefix, status="finished"):
        task, st = self.task, self.state
        if self.best_params is None:
            self.emit(f"{prefix} no epoch finished with a finite validation score; "
                      f"nothing to test")
            st.status = status
            self.save_checkpoint(with_optimizer=status == "finished")
            self.write_outputs()
            return EXIT_NAN
        last = _get(task.params)
        _set(task.params, self.best_params)
        self.test_result = task.test()
        self.emit(task.format_final(prefix, st.best_epoch, st.best_score, self.test_result,
                                    st.total_seconds / 60))
        st.status = status
        if status == "finished":
            _set(task.params, last)  # the checkpoint keeps the last epoch's parameters
            self.save_checkpoint()
            _set(task.params, self.best_params)
        else:  # never save non-finite parameters: keep the best ones
            self.save_checkpoint(with_optimizer=False)
        self.write_outputs()
        return EXIT_OK if status == "finished" else EXIT_NAN

    def _stop_on_nan(self, where):
        self.progress.clear()
        self.emit(f"found NaN in {where}...aborting training...")
        code = self._finish("Ended due to NaN!", status="nan")
        print("Training stopped on a NaN; the best epoch's parameters were restored and "
              "tested. Options: --on-nan skip-batch, --clip-kumaraswamy, "
              "--clip-gradient-norm.", file=self.out, flush=True)
        return code if code != EXIT_OK else EXIT_NAN
