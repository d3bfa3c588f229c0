"""What the input checks cost: loading MNIST and a trained checkpoint, two source trees
side by side.

Usage::

    git worktree add /tmp/sbdgm_before <commit>
    python benchmarks/load_checks.py --before /tmp/sbdgm_before --checkpoint RUN_checkpoint.h5 \\
        [--repeats 15] [--out benchmarks/results/load_checks.json]

Each measurement is a fresh Python process (so nothing is cached in memory between
them) that imports the tree's package and times, inside the process:

* ``mnist``: ``load_dataset("mnist")`` (the cached arrays of the data set, checked);
* ``checkpoint``: ``read_checkpoint`` of the full checkpoint (checksum and checks);
* ``rebuild``: ``rebuild_model`` of its best parameters (the model built from the stored
  configuration, parameters checked and loaded; no graph is compiled).

The trees alternate run by run, so both see the same load; medians are reported with the
load average before and after.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from stick_breaking_dgms.datasets import load_dataset
from stick_breaking_dgms.checkpoints import read_checkpoint
from stick_breaking_dgms.factory import rebuild_model
out = {}
t = time.perf_counter(); load_dataset("mnist", data_dir=sys.argv[3]); out["mnist"] = time.perf_counter() - t
t = time.perf_counter(); groups, meta = read_checkpoint(sys.argv[2], required_groups=("params",))
out["checkpoint"] = time.perf_counter() - t
t = time.perf_counter(); rebuild_model(sys.argv[2], meta, groups["best"]); out["rebuild"] = time.perf_counter() - t
print(json.dumps(out))
"""


def probe(tree, checkpoint, data_dir):
    env = dict(os.environ, PYTHONPATH=tree)
    r = subprocess.run([sys.executable, "-c", PROBE, tree, checkpoint, data_dir],
                       capture_output=True, text=True, env=env, cwd=tree, timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"probe failed in {tree}:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", required=True, help="source tree of the earlier version")
    p.add_argument("--checkpoint", required=True, help="a full checkpoint (with best params)")
    p.add_argument("--data-dir", default=os.path.join(HERE, "datasets"))
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--out", default=os.path.join(HERE, "benchmarks", "results",
                                                 "load_checks.json"))
    args = p.parse_args()
    args.checkpoint = os.path.abspath(args.checkpoint)  # the probes run in each tree
    args.data_dir = os.path.abspath(args.data_dir)
    trees = {"before": os.path.abspath(args.before), "after": HERE}
    times = {name: {k: [] for k in ("mnist", "checkpoint", "rebuild")} for name in trees}
    load_before = os.getloadavg()
    for name, tree in trees.items():  # warm the page cache and the data cache once
        probe(tree, args.checkpoint, args.data_dir)
    for _ in range(args.repeats):
        for name, tree in trees.items():
            for k, v in probe(tree, args.checkpoint, args.data_dir).items():
                times[name][k].append(v)
    load_after = os.getloadavg()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=args.before, capture_output=True,
                            text=True).stdout.strip()
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
              "before_commit": commit, "checkpoint": os.path.basename(args.checkpoint),
              "load_average_before": load_before, "load_average_after": load_after,
              "repeats": args.repeats,
              "median_ms": {n: {k: 1e3 * statistics.median(v) for k, v in t.items()}
                            for n, t in times.items()},
              "ratio_after_over_before": {k: statistics.median(times["after"][k])
                                          / statistics.median(times["before"][k])
                                          for k in times["after"]}}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, args.out)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
