"""``sbdgm-sweep`` / ``python -m stick_breaking_dgms.sweep``: run a grid file on Dask.

Reads and checks the grid file (every run with its training script's own parser) before
anything starts -- a bad file exits with code 2 and ``file:line: reason`` -- records the
runs in the sweep folder, runs the unfinished ones (:mod:`.runner`), and writes
``summary.md`` / ``summary.json`` (:mod:`.aggregate`).

Exit codes: 0 every run finished; 1 some run failed (the others went on); 2 a bad grid
file or flag; 130 stopped by Ctrl-C (every started run saved; run the sweep again to
resume).
"""
import argparse
import os
import signal
import sys

from .grid import GridError, expand, load_grid


def build_parser():
    p = argparse.ArgumentParser(
        prog="sbdgm-sweep",
        description="Run a grid of training runs (models x data sets x label fractions x "
                    "swept flags x seeds, from a TOML grid file) as tasks on Dask. A "
                    "finished run is never repeated; an unfinished one resumes from its "
                    "checkpoint; a failed one is reported without stopping the others.",
        epilog="The grid file format, clusters and aggregation: docs/sweeps.md.")
    p.add_argument("grid", help="the grid file (TOML)")
    p.add_argument("--sweep-dir", metavar="DIR",
                   help="the sweep folder: one experiment directory per run under DIR/runs, "
                        "sweep.log, summary.md, summary.json. Default: "
                        "./experiments/sweep_<grid file name>")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on an existing Dask cluster (tcp://host:8786); the sweep folder "
                        "must be on a file system the workers share, at the same path. "
                        "Default: a LocalCluster with one worker per core")
    p.add_argument("--workers", type=_positive, metavar="N",
                   help=f"workers of the LocalCluster (default: one per core, here "
                        f"{os.cpu_count()})")
    p.add_argument("--retries", type=_non_negative, default=0, metavar="N",
                   help="Dask retries of a run whose training failed (it resumes from its "
                        "checkpoint). A lost worker's run is rescheduled regardless. "
                        "Default: %(default)s")
    p.add_argument("--lock-timeout", type=float, default=600.0, metavar="SECONDS",
                   help="how long a rescheduled run waits for the training of a lost worker "
                        "to save and release it. Default: %(default)s")
    p.add_argument("--progress", choices=["auto", "live", "lines"], default="auto",
                   help="live: redraw a block in place; lines: plain lines (auto: live on "
                        "a terminal)")
    p.add_argument("--dry-run", action="store_true",
                   help="check the grid file and list the runs' commands; run nothing")
    p.add_argument("--summary", action="store_true",
                   help="only (re)write and print the summary of the sweep folder")
    return p


def main(argv=None, out=None):
    """Run the sweep of the command line; return the exit code."""
    out = sys.stdout if out is None else out
    parser = build_parser()
    args = parser.parse_args(argv)
    sweep_dir = args.sweep_dir or os.path.join(
        "experiments", "sweep_" + os.path.splitext(os.path.basename(args.grid))[0])
    from .aggregate import markdown, write_summary
    if args.summary:
        try:
            rows = write_summary(sweep_dir)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(markdown(rows), file=out, end="")
        return 0
    try:
        grid = load_grid(args.grid)
        runs = expand(grid, sweep_dir)
    except GridError as e:
        print(f"sbdgm-sweep: error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        for run in runs:
            print(run.command(), file=out)
        print(f"{len(runs)} runs", file=out)
        return 0
    import importlib.util
    if importlib.util.find_spec("distributed") is None:
        print("sbdgm-sweep: error: Dask is not installed (pip install "
              "'stick_breaking_dgms[sweep]', or 'dask[distributed]')", file=sys.stderr)
        return 2
    from .manifest import write_manifest
    from .runner import run_sweep
    write_manifest(sweep_dir, grid, runs)
    live = {"auto": None, "live": True, "lines": False}[args.progress]
    # `kill PID` (or a batch system ending the job) stops the sweep as Ctrl-C does, every
    # running training saving its state; a sweep started in the background by a script
    # ignores SIGINT (POSIX), so SIGTERM is the way to stop it
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        outcome = run_sweep(runs, sweep_dir, scheduler=args.scheduler,
                            n_workers=args.workers, retries=args.retries, out=out, live=live,
                            lock_timeout=args.lock_timeout)
    finally:
        signal.signal(signal.SIGTERM, previous)
    rows = write_summary(sweep_dir)
    print(file=out)
    print(markdown(rows), file=out, end="")
    if outcome.failed:
        print(f"\n{len(outcome.failed)} run(s) failed (logs: <run dir>/output.log):",
              file=out)
        for message in outcome.failed.values():
            print(message, file=out)
    if outcome.stopped:
        print(f"\n{len(outcome.stopped)} run(s) stopped; run the same command again to "
              f"resume them.", file=out)
    return outcome.exit_code


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def console():
    sys.exit(main())


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _non_negative(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text}")
    return value
