"""The training process of a sweep task: ``python -m stick_breaking_dgms.sweep.child
PARENT_PID MODEL FLAGS...`` runs the model's script (:func:`stick_breaking_dgms.cli.main`)
with FLAGS, tied to the life of its parent, the Dask worker that started it.

On Linux ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` makes the kernel send SIGTERM when the
parent dies (even by SIGKILL): the training then saves its state and exits, releasing
the run's lock, so the retry of the task on another worker can resume the run. Set in
the child itself rather than in a ``preexec_fn`` (unsafe in a multi-threaded worker);
the parent may die before the call, so the parent's pid is checked after it.
"""
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid, signum=signal.SIGTERM):
    """Ask the kernel for ``signum`` when the parent dies; exit if it already has."""
    if sys.platform.startswith("linux"):
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
            err = ctypes.get_errno()
            print(f"warning: prctl(PR_SET_PDEATHSIG) failed: {os.strerror(err)}; this run "
                  f"outlives its worker if the worker dies", file=sys.stderr, flush=True)
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        sys.exit(128 + int(signum))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parent, model, flags = int(argv[0]), argv[1], argv[2:]
    die_with_parent(parent)
    sys.argv[0] = "sbdgm-train-" + model.replace("_", "-")  # argparse names the script
    from ..cli import main as train_main
    return train_main(model, flags)


if __name__ == "__main__":
    sys.exit(main())
