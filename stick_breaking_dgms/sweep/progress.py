"""Progress of a sweep a person can follow: queued / running / done / failed.

:class:`Progress` keeps the state of every run, fed by the tasks' Dask events (a run
started, resumed, waits for a lost attempt to save) and by the futures' results, and
reads the current epoch of each running run from its text log (one line per finished
epoch). It writes plain, timestamped lines to ``<sweep>/sweep.log`` (appended, so
re-runs of a sweep read as one history) and, on a terminal, redraws a small block:
the counts and one line per running run; elsewhere (a pipe, a batch job's output) it
prints the same plain lines as the log.
"""
import os
import re
import sys
import threading
import time

from .status import current_epoch

LOG = "sweep.log"
QUEUED, RUNNING, DONE, FAILED, STOPPED = "queued", "running", "done", "failed", "stopped"


class Progress:
    """States of the runs of one sweep invocation, shown live and logged.

    Parameters
    ----------
    runs : list of Run
    sweep_dir : str
        ``sweep.log`` goes there.
    out : file
        The terminal (or any stream).
    live : bool or None
        Redraw a block in place (None: when ``out`` is a terminal).
    """

    def __init__(self, runs, sweep_dir, out=None, live=None):
        self.out = sys.stdout if out is None else out
        self.live = _isatty(self.out) if live is None else live
        self.runs = {r.id: r for r in runs}
        self.state = {r.id: QUEUED for r in runs}
        self.info = {r.id: {"epoch": 0, "worker": None, "attempts": 0} for r in runs}
        self.max_epoch = {r.id: _max_epoch(r.argv) for r in runs}
        self._lock = threading.Lock()
        self._drawn = 0
        os.makedirs(sweep_dir, exist_ok=True)
        self._log = open(os.path.join(sweep_dir, LOG), "a", encoding="utf-8")

    # -- what happened ------------------------------------------------------------------

    def line(self, text):
        """A plain line in the log (and on the terminal)."""
        with self._lock:
            self._line(text)

    def already_done(self, run_id, status):
        with self._lock:
            self.state[run_id] = DONE
            self.info[run_id]["status"] = status

    def on_event(self, event):
        """Handler for ``Client.subscribe_topic``: ``(timestamp, message)``."""
        _, msg = event if isinstance(event, tuple) else (None, event)
        run_id = msg.get("run") if isinstance(msg, dict) else None
        if run_id not in self.state:
            return
        with self._lock:
            info = self.info[run_id]
            kind = msg.get("event")
            if kind == "start":
                self.state[run_id] = RUNNING
                info["attempts"] += 1
                info["worker"] = msg.get("worker")
                info["epoch"] = msg.get("epoch", 0)
                verb = "resumed at epoch %d" % info["epoch"] if msg.get("resume") else "started"
                again = f" (attempt {info['attempts']})" if info["attempts"] > 1 else ""
                self._line(f"{run_id}: {verb} on {info['worker'] or 'a worker'}{again}")
            elif kind == "waiting":
                self._line(f"{run_id}: waiting for the previous attempt (pid "
                           f"{msg.get('holder')}) to save and release the run")
            elif kind == "end":
                info["epoch"] = msg.get("epoch", info["epoch"])

    def finished(self, run_id, result):
        """A task's result (:func:`.task.run_task`)."""
        with self._lock:
            status = result.get("status")
            self.info[run_id]["status"] = status
            if status in ("finished", "nan"):
                self.state[run_id] = DONE
                what = "already finished" if result.get("skipped") else (
                    f"finished in {result.get('seconds', 0):.0f} s"
                    + (" (ended on a NaN; best epoch's parameters tested)"
                       if status == "nan" else ""))
            else:
                self.state[run_id] = STOPPED
                what = ("stopped, state saved" if status == "interrupted"
                        else "not started (sweep stopped)")
            self._line(f"{run_id}: {what}")

    def failed(self, run_id, message):
        with self._lock:
            self.state[run_id] = FAILED
            self.info[run_id]["status"] = "failed"
            self._line(f"{run_id}: FAILED: {message}")

    # -- showing it -----------------------------------------------------------------------

    def counts(self):
        with self._lock:
            return self._counts()

    def refresh(self):
        """Read the running runs' epochs; log each new epoch; redraw the terminal block."""
        with self._lock:
            for run_id, state in self.state.items():
                if state != RUNNING:
                    continue
                epoch = current_epoch(self.runs[run_id])
                if epoch != self.info[run_id]["epoch"]:
                    self.info[run_id]["epoch"] = epoch
                    self._line(f"{run_id}: epoch {self._epoch_text(run_id)}", in_block=True)
            self._draw()

    def summary_line(self):
        c = self.counts()
        return (f"{c[QUEUED]} queued, {c[RUNNING]} running, {c[DONE]} done, "
                f"{c[FAILED]} failed" + (f", {c[STOPPED]} stopped" if c[STOPPED] else "")
                + f" (of {sum(c.values())})")

    def close(self):
        with self._lock:
            self._clear()
            self._log.close()

    # -- internals (the lock held) ---------------------------------------------------------

    def _counts(self):
        c = dict.fromkeys((QUEUED, RUNNING, DONE, FAILED, STOPPED), 0)
        for s in self.state.values():
            c[s] += 1
        return c

    def _epoch_text(self, run_id):
        total = self.max_epoch[run_id]
        epoch = self.info[run_id]["epoch"]
        return f"{epoch}/{total}" if total else str(epoch)

    def _line(self, text, in_block=False):
        """Log ``text``; show it too, unless the live block already shows it."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._log.write(f"{stamp} {text}\n")
        self._log.flush()
        if not self.live:
            print(f"{stamp} {text}", file=self.out, flush=True)
        elif not in_block:
            self._clear()
            print(text, file=self.out, flush=True)
            self._draw()

    def _draw(self):
        if not self.live:
            return
        self._clear()
        c = self._counts()
        lines = [f"[sweep] {c[QUEUED]} queued, {c[RUNNING]} running, {c[DONE]} done, "
                 f"{c[FAILED]} failed"]
        for run_id, state in self.state.items():
            if state == RUNNING:
                lines.append(f"  {run_id}  epoch {self._epoch_text(run_id)}  "
                             f"{self.info[run_id]['worker'] or ''}")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self._drawn = len(lines)

    def _clear(self):
        if self.live and self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")  # up n lines, clear to the end
            self.out.flush()
            self._drawn = 0


def _max_epoch(argv):
    for a in argv:
        m = re.fullmatch(r"--max-epoch=(\d+)", a)
        if m:
            return int(m.group(1))
    return None


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
