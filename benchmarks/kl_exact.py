"""The cost of the exact KL (``--kl exact``) against the original's ten-term series.

In one process, one BLAS thread, float32, the SB-VAE with the scripts' defaults (MNIST,
784-500-50 truncation, batch 100):

* training step: the median step time of each KL over ``--rounds`` rounds of ``--steps``
  steps, the two configurations' rounds interleaved so that machine load falls on both
  alike; the load average is recorded at the start and after every round;
* the KL alone: its value and gradient on a (100, 49) batch of (a, b), for the series and
  for the candidates of the exact KL (the trapezoidal rule with several node counts, and
  the series with many terms and the true digamma), each with its largest relative error
  over the reference grid of ``tests/data/kl_exact_reference.json`` (prior Beta(1, 5)).

Writes ``benchmarks/results/kl_exact.json``::

    python benchmarks/kl_exact.py [--steps 50] [--rounds 5]
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


def load():
    return [round(x, 2) for x in os.getloadavg()]


def training_steps(steps, rounds, log):
    from stick_breaking_dgms.config import ExperimentConfig, LatentConfig
    from stick_breaking_dgms.datasets import load_dataset
    from stick_breaking_dgms.factory import build_task
    out, tasks = {}, {}
    data = None
    for kl in ("series", "exact"):
        config = ExperimentConfig("sb_vae", latent=LatentConfig(kl=kl))
        if data is None:
            data = load_dataset("mnist", data_dir=os.path.join(ROOT, "datasets"),
                                seed=config.seed).astype("float32")
        start = time.perf_counter()
        task = build_task(config, data)
        [float(v) for v in task.train_step(0)]
        out[kl] = {"compile_s": round(time.perf_counter() - start, 1), "medians_ms": []}
        tasks[kl] = task
        log(f"{kl}: built and compiled in {out[kl]['compile_s']} s")
    loads, i = [], 1
    n = tasks["series"].n_train_batches
    for r in range(rounds):
        for kl in (("series", "exact") if r % 2 == 0 else ("exact", "series")):
            times = []
            for _ in range(steps):
                start = time.perf_counter()
                [float(v) for v in tasks[kl].train_step(i % n)]
                times.append(time.perf_counter() - start)
                i += 1
            out[kl]["medians_ms"].append(round(1e3 * statistics.median(times), 3))
        loads.append(load())
        log(f"round {r}: series {out['series']['medians_ms'][-1]:.2f} ms, exact "
            f"{out['exact']['medians_ms'][-1]:.2f} ms, load {loads[-1]}")
    for kl in out:
        out[kl]["median_step_ms"] = statistics.median(out[kl]["medians_ms"])
    out["exact_over_series"] = round(out["exact"]["median_step_ms"]
                                     / out["series"]["median_step_ms"], 3)
    return out, loads


def kl_alone(repeats, log):
    from stick_breaking_dgms import distributions
    from stick_breaking_dgms.backend import at, function, grad
    with open(os.path.join(ROOT, "tests", "data", "kl_exact_reference.json")) as f:
        ref = json.load(f)
    grid = np.array([s == "grid" for s in ref["set"]])
    ref_a, ref_b = np.array(ref["a"])[grid], np.array(ref["b"])[grid]
    ref_kl = np.array(ref["kl"])[grid, [tuple(p) for p in ref["priors"]].index((1.0, 5.0))]
    rng = np.random.default_rng(0)
    # a, b as a trained SB-VAE's posterior spreads them
    a = (10.0 ** rng.uniform(-1.3, 1.8, (100, 49))).astype(np.float32)
    b = (10.0 ** rng.uniform(-1.3, 1.8, (100, 49))).astype(np.float32)
    candidates = [("series, 10 terms (the original)", dict(method="series")),
                  ("series, 1000 terms, true digamma",
                   dict(method="series", taylor_terms=1000, digamma="exact"))]
    candidates += [(f"exact, trapezoidal rule, {n} nodes", dict(method="exact", nodes=n))
                   for n in (48, 64, 80, 96)]
    out = {}
    default_nodes = distributions.EXACT_KL_NODES
    try:
        for name, opts in candidates:
            opts = dict(opts)
            distributions.EXACT_KL_NODES = opts.pop("nodes", default_nodes)
            fns = {}
            for dtype in ("float32", "float64"):
                x, y = at.matrix("a", dtype=dtype), at.matrix("b", dtype=dtype)
                kl = distributions.kumaraswamy_beta_kl_expr(x, y, 1.0, 5.0, **opts)
                fns[dtype] = function([x, y], [kl.sum()] + grad(kl.sum(), [x, y])), kl, x, y
            f = fns["float32"][0]
            f(a, b)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                f(a, b)
                times.append(time.perf_counter() - start)
            _, kl, x, y = fns["float64"]
            g = function([x, y], kl)
            got = g(ref_a[:, None], ref_b[:, None])[:, 0]
            err = np.abs(got - ref_kl) / np.abs(ref_kl)
            i = int(np.argmax(err))
            out[name] = {"value_and_gradient_ms": round(1e3 * statistics.median(times), 3),
                         "max_relative_error": float(err[i]),
                         "at": [float(ref_a[i]), float(ref_b[i])]}
            log(f"{name}: {out[name]}")
    finally:
        distributions.EXACT_KL_NODES = default_nodes
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=50, help="of the KL-alone timings")
    p.add_argument("--output", default=os.path.join(HERE, "results", "kl_exact.json"))
    opts = p.parse_args(argv)
    from stick_breaking_dgms import backend
    backend.set_blas_threads(1)

    def log(msg):
        print(msg, flush=True)
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "command": " ".join(sys.argv), "backend": backend.describe(),
              "cpu_count": os.cpu_count(), "blas_threads": 1, "floatX": "float32",
              "model": "sb_vae, 784-500-50 (truncation), batch 100, MNIST",
              "steps": opts.steps, "rounds": opts.rounds, "load_average_at_start": load()}
    result["training_step"], result["load_average_after_each_round"] = training_steps(
        opts.steps, opts.rounds, log)
    result["kl_alone_100x49_float32"] = kl_alone(opts.repeats, log)
    result["load_average_at_end"] = load()
    os.makedirs(os.path.dirname(opts.output), exist_ok=True)
    with open(opts.output, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(f"wrote {opts.output}")


if __name__ == "__main__":
    main()
