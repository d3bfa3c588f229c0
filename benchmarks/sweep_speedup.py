"""What a sweep gains on this machine: the same runs one after another, each alone in its
own process (what a user would type without the sweep), against ``sbdgm-sweep`` on a
LocalCluster with one and with N workers.

Usage::

    python benchmarks/sweep_speedup.py [--runs 4] [--epochs 20] [--hidden-size 200]
        [--workers 2] [--rounds 1] [--out benchmarks/results/sweep_speedup.json]

The grid is ``--runs`` SB-VAEs on MNIST that differ only by seed, real MNIST, one BLAS
thread each (the sweep's workers set one; the sequential baseline passes
``--blas-threads 1``). Each round runs the three ways side by side in fresh folders:

* ``sequential``: each run's training command (``Run.argv``, as ``--dry-run`` lists it)
  in a fresh process, one after another;
* ``sweep_1``: ``sbdgm-sweep --workers 1``; its excess over ``sequential`` is the sweep's
  own cost (cluster start and stop, one task and one child process per run);
* ``sweep_N``: ``sbdgm-sweep --workers N``.

Reported: wall times, the speed-up ``sequential / sweep_N``, the overhead
``(sweep_1 - sequential) / runs`` per run, and the load average before and after each
measurement. Nothing else should run on the machine meanwhile.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)

from stick_breaking_dgms.sweep.grid import expand, load_grid  # noqa: E402

GRID = """\
models = ["sb_vae"]
datasets = ["mnist"]
seeds = [{seeds}]
epochs = {epochs}

[flags]
hidden-size = {hidden}
"""


def _bin(name):
    return os.path.join(os.path.dirname(sys.executable), name)


def sequential(grid_path, folder):
    runs = expand(load_grid(grid_path), folder)
    start = time.perf_counter()
    for run in runs:
        os.makedirs(run.experiment_dir, exist_ok=True)
        script = _bin("sbdgm-train-" + run.model.replace("_", "-"))
        with open(run.output_log, "w") as log:
            subprocess.run([script, *run.argv, "--blas-threads", "1", "--progress", "never"],
                           stdout=log, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - start


def sweep(grid_path, folder, workers):
    start = time.perf_counter()
    with open(folder + ".out", "w") as log:
        subprocess.run([_bin("sbdgm-sweep"), grid_path, "--sweep-dir", folder,
                        "--workers", str(workers), "--progress", "lines"],
                       stdout=log, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=4)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--hidden-size", type=int, default=200)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--out", default=os.path.join(HERE, "benchmarks", "results",
                                                 "sweep_speedup.json"))
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    args = p.parse_args(argv)

    work = tempfile.mkdtemp(prefix="sbdgm_sweep_speedup_")
    grid_path = os.path.join(work, "grid.toml")
    with open(grid_path, "w") as f:
        f.write(GRID.format(seeds=", ".join(str(s) for s in range(1, args.runs + 1)),
                            epochs=args.epochs, hidden=args.hidden_size))
    ways = {"sequential": lambda d: sequential(grid_path, d),
            "sweep_1": lambda d: sweep(grid_path, d, 1),
            f"sweep_{args.workers}": lambda d: sweep(grid_path, d, args.workers)}
    times = {k: [] for k in ways}
    loads = []
    try:
        # compile the graphs once so that no way pays the cold cache
        warm = expand(load_grid(grid_path), os.path.join(work, "warmup"))[0]
        os.makedirs(warm.experiment_dir)
        subprocess.run([_bin("sbdgm-train-sb-vae"), *warm.argv, "--max-epoch", "1",
                        "--progress", "never"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        for r in range(args.rounds):
            for name, way in ways.items():
                before = os.getloadavg()
                t = way(os.path.join(work, f"{name}_{r}"))
                times[name].append(t)
                loads.append({"way": name, "round": r, "before": before,
                              "after": os.getloadavg()})
                print(f"round {r + 1}: {name}: {t:.1f} s (load {before[0]:.2f} -> "
                      f"{loads[-1]['after'][0]:.2f})", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    many = f"sweep_{args.workers}"
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "settings": {"runs": args.runs, "epochs": args.epochs,
                     "hidden_size": args.hidden_size, "workers": args.workers,
                     "rounds": args.rounds},
        "wall_s": times, "median_s": med,
        "speedup": med["sequential"] / med[many],
        "sweep_overhead_per_run_s": (med["sweep_1"] - med["sequential"]) / args.runs,
        "load_average": loads,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, args.out)
    print(f"sequential {med['sequential']:.1f} s, sweep on 1 worker {med['sweep_1']:.1f} s, "
          f"on {args.workers} workers {med[many]:.1f} s: speed-up {result['speedup']:.2f}, "
          f"sweep overhead {result['sweep_overhead_per_run_s']:.1f} s per run ({args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
