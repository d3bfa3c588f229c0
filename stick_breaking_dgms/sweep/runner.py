"""The Dask side of a sweep: a cluster, one task per unfinished run, Ctrl-C.

Dask does the scheduling, the retries (``retries=``), the rescheduling of the tasks of a
worker that died (``distributed.scheduler.allowed-failures`` losses per task) and the
dashboard; this module only submits :func:`.task.run_task` for every run that has not
finished, follows the futures and the tasks' events (:class:`.progress.Progress`),
and stops cleanly on Ctrl-C: a :class:`distributed.Event` tells every task to stop its
training (which saves its state), tasks not yet started return at once, and the sweep
waits for them all before it closes the cluster.

By default the cluster is a ``LocalCluster`` with one single-threaded worker process per
core (each training gets ``--blas-threads 1``). With ``scheduler=ADDRESS`` the runs go to
an existing cluster; the sweep folder must then be on a file system the workers share,
at the same path.
"""
import dataclasses
import os
import signal
import sys
import time
import uuid

from .progress import Progress
from .status import run_status
from .task import TOPIC, run_task

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 128 + signal.SIGINT


@dataclasses.dataclass
class SweepOutcome:
    """How a sweep invocation ended."""
    exit_code: int
    submitted: list             # run ids sent to Dask (the ones not finished before)
    done: list                  # run ids finished (this time or before)
    failed: dict                # run id -> message (with the log's last lines)
    stopped: list               # run ids stopped by Ctrl-C (state saved) or not started
    dashboard: object = None    # the dashboard's address, when there is one


def run_sweep(runs, sweep_dir, client=None, scheduler=None, n_workers=None, retries=0,
              out=None, live=None, poll=1.0, lock_timeout=600.0, stop_timeout=900.0):
    """Run every unfinished run of ``runs`` on Dask; return a :class:`SweepOutcome`.

    Parameters
    ----------
    runs : list of Run
        From :func:`.grid.expand`.
    sweep_dir : str
        The sweep folder (``sweep.log`` is appended there).
    client : distributed.Client, optional
        Use this client (and its cluster) and leave it open.
    scheduler : str, optional
        Address of an existing Dask scheduler (ignored when ``client`` is given).
    n_workers : int, optional
        Workers of the ``LocalCluster`` started otherwise (default: one per core).
    retries : int
        Dask retries of a run whose training failed (each resumes from its checkpoint).
        A worker lost mid-run does not count: Dask reschedules its task by itself.
    out : file, optional
        Where progress is shown (default ``sys.stdout``).
    live : bool, optional
        Redraw the progress block in place (default: when ``out`` is a terminal).
    poll : float
        Seconds between progress refreshes.
    lock_timeout : float
        How long a task waits for a lost attempt's training to release the run.
    stop_timeout : float
        After Ctrl-C, how long to wait for the trainings to save and exit.
    """
    out = sys.stdout if out is None else out
    progress = Progress(runs, sweep_dir, out=out, live=live)
    outcome = SweepOutcome(EXIT_OK, [], [], {}, [])
    try:
        todo = []
        for run in runs:
            status = run_status(run)
            if status in ("finished", "nan"):
                progress.already_done(run.id, status)
                outcome.done.append(run.id)
            else:
                todo.append(run)
        progress.line(f"sweep of {len(runs)} runs in {os.path.abspath(sweep_dir)}: "
                      f"{len(runs) - len(todo)} already finished, {len(todo)} to run")
        if not todo:
            return outcome
        own_client = own_cluster = None
        if client is None:
            client, own_cluster = _connect(scheduler, n_workers)
            own_client = client
        try:
            outcome.dashboard = _dashboard(client, local=own_cluster is not None)
            n = len(client.nthreads())
            progress.line(f"Dask scheduler {client.scheduler.address}, {n} workers; "
                          f"dashboard: {outcome.dashboard or 'not available (pip install bokeh)'}")
            _follow(client, todo, progress, outcome, retries, poll, lock_timeout,
                    stop_timeout)
        finally:
            if own_client is not None:
                own_client.close()
            if own_cluster is not None:
                own_cluster.close()
    finally:
        progress.line(progress.summary_line())
        progress.close()
    if outcome.failed:
        outcome.exit_code = EXIT_FAILED
    elif outcome.stopped:
        outcome.exit_code = EXIT_INTERRUPTED
    return outcome


def _follow(client, todo, progress, outcome, retries, poll, lock_timeout, stop_timeout):
    from distributed import Event, as_completed
    token = uuid.uuid4().hex[:12]
    stop = Event(f"sbdgm-sweep-stop-{token}", client=client)
    client.subscribe_topic(TOPIC, progress.on_event)
    cwd = os.getcwd()
    futures = {}
    for run in todo:
        future = client.submit(run_task, run.to_dict(), stop.name, cwd, lock_timeout,
                               key=f"sbdgm-sweep-{run.id}-{token}", pure=False,
                               retries=retries)
        futures[future] = run
    outcome.submitted = [r.id for r in todo]
    pending = as_completed(list(futures))
    deadline, collected = None, set()
    try:
        while not pending.is_empty():
            try:
                for future in pending.next_batch(block=False):
                    _collect(future, futures[future], progress, outcome)
                    collected.add(future)
                progress.refresh()
                if deadline is not None and time.monotonic() > deadline:
                    progress.line(f"gave up waiting after {stop_timeout:.0f} s for the "
                                  f"trainings to stop")
                    break
                time.sleep(poll)
            except KeyboardInterrupt:
                if deadline is not None:
                    progress.line("second Ctrl-C: leaving now; trainings still saving "
                                  "finish on their own")
                    break
                progress.line("Ctrl-C: stopping; running trainings save their state "
                              "(Ctrl-C again to leave at once)")
                stop.set()
                deadline = time.monotonic() + stop_timeout
    finally:
        client.unsubscribe_topic(TOPIC)
        # left behind by a second Ctrl-C or the stop timeout: their trainings save on their
        # own (SIGINT sent) or never started
        outcome.stopped += [run.id for future, run in futures.items()
                            if future not in collected]


def _collect(future, run, progress, outcome):
    if future.status == "finished":
        result = future.result()
        progress.finished(run.id, result)
        if result["status"] in ("finished", "nan"):
            outcome.done.append(run.id)
        else:
            outcome.stopped.append(run.id)
    elif future.status == "cancelled":
        progress.finished(run.id, {"status": "cancelled"})
        outcome.stopped.append(run.id)
    else:
        error = future.exception()
        message = str(error) if type(error).__name__ == "RunFailed" else \
            f"{type(error).__name__}: {error}"
        progress.failed(run.id, message)
        outcome.failed[run.id] = message


def _connect(scheduler, n_workers):
    """(client, cluster we started or None)."""
    from distributed import Client, LocalCluster
    if scheduler is not None:
        return Client(scheduler), None
    cluster = LocalCluster(n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=1,
                           processes=True)
    client = Client(cluster)
    # A Ctrl-C at the terminal reaches the whole process group, our workers included;
    # they must live on until the stop event has made every training save its state.
    client.register_plugin(IgnoreSigint(), name="sbdgm-sweep-ignore-sigint")
    return client, cluster


try:
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPlugin
except ImportError:  # without Dask the module still imports (for the docs and the CLI's
    _WorkerPlugin = object  # error message); nothing here runs without it


class IgnoreSigint(_WorkerPlugin):
    """Worker plugin: the worker process ignores SIGINT (the sweep stops it instead)."""

    name = "sbdgm-sweep-ignore-sigint"

    def setup(self, worker):
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:  # not the main thread: cannot change handlers there
            pass


def _dashboard(client, local):
    """The dashboard's address, or None. Dask serves it only with bokeh installed (on the
    scheduler's machine: known here only for a cluster we started)."""
    import importlib.util
    if local and importlib.util.find_spec("bokeh") is None:
        return None
    try:
        if "dashboard" not in client.scheduler_info()["services"]:
            return None
        return client.dashboard_link
    except Exception:
        return None
