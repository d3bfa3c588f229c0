"""What a Dask worker does for one run: train it in a subprocess, report how it ended.

The training code installs signal handlers (it saves its state on SIGINT / SIGTERM), which
only the main thread of a process may do, and a Dask task runs in a worker's thread; so
each attempt is a subprocess (:mod:`.child`) of the task, killed by the kernel with
SIGTERM -- save and exit -- when its worker dies. Its stdout and stderr are appended to
``output.log`` in the run's directory.

An attempt

* returns at once when the run has already finished (a retry after the previous
  attempt's process finished, or a run done by an earlier sweep);
* waits while the run's lock is held: the process of a lost worker's attempt may still
  be saving its checkpoint; starting beside it would begin a second run;
* resumes the run (``--resume``) when it has files, else starts it;
* stops the training (SIGINT: save and exit) when the sweep's stop event is set;
* raises :class:`RunFailed`, with the last lines of the log, when the training failed,
  so Dask counts it (``retries``) and the sweep reports it.

It reports its start and end as Dask events under :data:`TOPIC` (``Client.subscribe_topic``).
"""
import errno
import os
import signal
import subprocess
import sys
import time

from ..runfiles import FINISHED
from .grid import Run
from .status import current_epoch, run_status

TOPIC = "sbdgm-sweep"
TAIL_LINES = 15
INTERRUPTED = "interrupted"   # stopped by the sweep, state saved
CANCELLED = "cancelled"       # the sweep stopped before this run started


class RunFailed(RuntimeError):
    """A training process that ended with an error (exit code, last lines of its log)."""

    def __init__(self, run_id, returncode, tail, log_path):
        self.run_id, self.returncode, self.tail, self.log_path = (run_id, returncode, tail,
                                                                  log_path)
        super().__init__(run_id, returncode, tail, log_path)

    def __str__(self):
        if self.returncode is None:
            what = "did not start"
        elif self.returncode < 0:
            what = f"killed by {signal.Signals(-self.returncode).name}"
        else:
            what = f"exit code {self.returncode}"
        return (f"run {self.run_id} failed ({what}); last lines of {self.log_path}:\n"
                + "\n".join("    " + line for line in self.tail))

    def __reduce__(self):  # pickled back to the client by Dask
        return (RunFailed, (self.run_id, self.returncode, self.tail, self.log_path))


def run_task(run_dict, stop_event=None, cwd=None, lock_timeout=600.0, poll=0.5):
    """Train (or resume, or skip) one run; return a dict describing how it ended.

    Parameters
    ----------
    run_dict : dict
        :meth:`.grid.Run.to_dict` of the run.
    stop_event : str, optional
        Name of a :class:`distributed.Event`; once set, the training is stopped with
        SIGINT (it saves its state) and the task returns with status "interrupted".
    cwd : str, optional
        Working directory of the training (where the sweep was started: relative
        ``--data-dir`` and ``--dataset`` paths mean what they meant there); ignored when
        it does not exist on the worker.
    lock_timeout : float
        Seconds to wait for a previous attempt's process to release the run.

    Returns
    -------
    dict
        ``run``, ``status`` ("finished", "nan", "interrupted", "cancelled"),
        ``returncode`` (None when nothing ran), ``skipped`` (already finished),
        ``worker``, ``seconds``.

    Raises
    ------
    RunFailed
        When the training ended with an error.
    """
    run = Run.from_dict(run_dict)
    started = time.time()
    worker = _worker()
    where = getattr(worker, "address", None)

    def result(status, returncode=None, skipped=False):
        return {"run": run.id, "status": status, "returncode": returncode,
                "skipped": skipped, "worker": where, "seconds": time.time() - started}

    status = run_status(run)
    if status in FINISHED:
        return result(status, skipped=True)
    stop = _event(stop_event)
    if _is_set(stop):
        return result(CANCELLED)
    if not _wait_for_lock(run, lock_timeout, stop, worker):
        return result(CANCELLED)
    resume = run.files.exists()
    os.makedirs(run.experiment_dir, exist_ok=True)
    _log(worker, {"run": run.id, "event": "start", "worker": where, "resume": resume,
                  "epoch": current_epoch(run), "time": time.time()})
    argv = list(run.argv) + (["--resume"] if resume else [])
    with open(run.output_log, "ab") as log:
        log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} "
                  f"{'resuming' if resume else 'starting'} on {where or 'this process'} "
                  f"(pid {os.getpid()}): {run.command()}\n".encode())
        log.flush()
        # start_new_session: a Ctrl-C at the sweep's terminal reaches the training only
        # through the stop event, the same way on a local and on a remote cluster.
        proc = subprocess.Popen(
            [sys.executable, "-m", "stick_breaking_dgms.sweep.child", str(os.getpid()),
             run.model, *argv],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=cwd if cwd and os.path.isdir(cwd) else None, start_new_session=True,
            env=training_environment())
    try:
        returncode, stopped = _wait(proc, stop, poll)
    except BaseException:
        # the task itself is going away: let the training save and exit
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        raise
    status = run_status(run)
    _log(worker, {"run": run.id, "event": "end", "worker": where, "returncode": returncode,
                  "status": status, "epoch": current_epoch(run), "time": time.time()})
    if returncode == 0 and status == "finished":
        return result("finished", returncode)
    if returncode == 1 and status == "nan":
        return result("nan", returncode)
    if stopped and returncode in (128 + signal.SIGINT, 128 + signal.SIGTERM):
        return result(INTERRUPTED, returncode)
    raise RunFailed(run.id, returncode, _tail(run.output_log), run.output_log)


def training_environment(environ=None):
    """The environment of a training started by a worker: the worker's, less the
    ``MALLOC_TRIM_THRESHOLD_`` that Dask's nanny sets for its worker processes
    (``distributed.nanny.pre-spawn-environ``) when it has that value.

    With the threshold at Dask's 64 KiB, glibc hands every large freed block back to the
    system, and a training, which frees and reallocates arrays of a few MB every step,
    pays page faults for them again: about 1.4 x the time per epoch (docs/sweeps.md,
    "What a sweep costs"). A threshold the user set to another value is left alone.
    """
    env = dict(os.environ if environ is None else environ)
    try:
        import dask.config
        dask_value = dask.config.get("distributed.nanny.pre-spawn-environ", {}).get(
            "MALLOC_TRIM_THRESHOLD_")
    except ImportError:
        dask_value = None
    if dask_value is not None and env.get("MALLOC_TRIM_THRESHOLD_") == str(dask_value):
        del env["MALLOC_TRIM_THRESHOLD_"]
    return env


def _wait(proc, stop, poll):
    """Wait for the training; SIGINT it once the stop event is set. (exit code, stopped)."""
    stopped = False
    while True:
        try:
            return proc.wait(timeout=poll), stopped
        except subprocess.TimeoutExpired:
            pass
        if not stopped and _is_set(stop):
            proc.send_signal(signal.SIGINT)  # the training saves its state and exits
            stopped = True


def _wait_for_lock(run, timeout, stop, worker):
    """Wait until no process holds the run's lock; False if the sweep stopped meanwhile.

    The probe takes the lock for an instant: the only other process that could want it
    is a previous attempt's training, which already holds it (it takes it at start).
    """
    path = run.files.lock.path
    deadline, told = time.monotonic() + timeout, False
    while True:
        if _lock_free(path):
            return True
        if _is_set(stop):
            return False
        if not told:
            holder = run.files.lock.holder()
            _log(worker, {"run": run.id, "event": "waiting", "holder": holder,
                          "time": time.time()})
            told = True
        if time.monotonic() > deadline:
            raise RunFailed(run.id, None, [f"the run's lock {path} is still held (pid "
                                           f"{run.files.lock.holder()}) after "
                                           f"{timeout:.0f} s"], path)
        time.sleep(0.2)


def _lock_free(path):
    try:
        import fcntl
    except ImportError:
        return True
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise
    finally:
        os.close(fd)  # releases the probe's lock
    return True


def _tail(path, n=TAIL_LINES):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError as e:
        return [f"(cannot read the log: {e})"]
    return [line for line in lines if line.strip()][-n:]


def _worker():
    try:
        from distributed import get_worker
        return get_worker()
    except (ImportError, ValueError):
        return None  # called outside a Dask worker (a test, a plain loop)


def _event(name):
    if name is None:
        return None
    from distributed import Event
    return Event(name)


def _is_set(event):
    if event is None:
        return False
    try:
        return event.is_set()
    except Exception:  # the scheduler is gone: the sweep is over, stop
        return True


def _log(worker, msg):
    if worker is not None:
        worker.log_event(TOPIC, msg)
