"""Training-step time of the SB-VAE with each stick-breaking posterior family, side by side.

Builds the paper's SB-VAE (784-500-50 sticks, batch 100, float32, the scripts' defaults)
with ``--posterior kumaraswamy``, ``gauss-logit`` and ``gamma`` on real MNIST, compiles
each training step, then times them interleaved: ``--rounds`` rounds, each running
``--block`` steps of every family in turn, so that a change of machine load hits all of
them alike. Prints the median step time of each family and its ratio to the Kumaraswamy
model, with the machine's load average, and writes them as JSON with ``--output``.

    python benchmarks/families.py --rounds 20 --block 50 --output benchmarks/results/families.json
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

FAMILIES = ("kumaraswamy", "gauss-logit", "gamma")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--block", type=int, default=50, help="steps per family per round")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    p.add_argument("--output", default=None, help="write the results as JSON here")
    opts = p.parse_args(argv)
    if opts.rounds < 1 or opts.block < 1 or opts.threads < 1:
        p.error("--rounds, --block and --threads must be >= 1")

    from stick_breaking_dgms import backend, cli
    from stick_breaking_dgms.factory import build_task
    from stick_breaking_dgms.datasets import load_dataset
    backend.set_blas_threads(opts.threads)
    data = load_dataset("mnist", seed=1234).astype("float32")
    tasks, compile_s = {}, {}
    for family in FAMILIES:
        _, args, args_config = cli.parse_args("sb_vae", ["--posterior", family])
        t0 = time.perf_counter()
        task = build_task(args_config, data)
        task.train_step(0)  # compiles
        compile_s[family] = time.perf_counter() - t0
        tasks[family] = task
        print(f"{family}: built and compiled in {compile_s[family]:.1f} s", flush=True)
    n = min(t.n_train_batches for t in tasks.values())
    steps = {f: [] for f in FAMILIES}
    load_before = os.getloadavg()
    for r in range(opts.rounds):
        for family, task in tasks.items():
            t0 = time.perf_counter()
            for i in range(opts.block):
                task.train_step((r * opts.block + i) % n)
            steps[family].append((time.perf_counter() - t0) / opts.block)
    load_after = os.getloadavg()
    median = {f: statistics.median(v) for f, v in steps.items()}
    result = {
        "what": "median training-step time of the SB-VAE (784-500-50, batch 100, float32) "
                "per posterior family, interleaved rounds",
        "machine": f"{platform.node()}, {platform.machine()}, {os.cpu_count()} cores",
        "blas_threads": opts.threads, "rounds": opts.rounds, "block": opts.block,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "compile_seconds": {f: round(s, 2) for f, s in compile_s.items()},
        "median_step_ms": {f: round(1000 * m, 3) for f, m in median.items()},
        "ratio_to_kumaraswamy": {f: round(m / median["kumaraswamy"], 3)
                                 for f, m in median.items()},
    }
    for f in FAMILIES:
        print(f"{f:12s} median step {1000 * median[f]:.3f} ms "
              f"({result['ratio_to_kumaraswamy'][f]:.2f}x the Kumaraswamy)")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    if opts.output:
        from stick_breaking_dgms.fileio import write_text
        os.makedirs(os.path.dirname(os.path.abspath(opts.output)), exist_ok=True)
        write_text(opts.output, json.dumps(result, indent=1) + "\n")
        print(f"written: {opts.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
