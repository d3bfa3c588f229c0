#!/usr/bin/env python
"""Speed benchmark of the SB-VAE and the SB-DGM on real MNIST (not part of the test suite).

What it measures, for the SB-VAE (784-500-50, relu, batch 100, float32) and the SB-DGM
(10 % labels, latent 50, batch 100), with the scripts' default arguments:

* median train-step time in-process, after a warm-up, with 1 and 2 BLAS threads and with the
  count the scripts choose (``configure_blas_threads("auto")``);
* full-MNIST epoch time: every training batch, then ``validate()`` and ``test()``;
* cold and warm compile time of the task (each compiled function timed), in a child process
  with a fresh, empty Aesara ``compiledir`` (cold), then again with the same one (warm);
* time from command to the first training step of the real scripts (the line
  "Training for up to ..." printed just before it), warm cache, and the whole command;
* peak memory (``ru_maxrss``) of this process, of the PyTorch worker and of each child.

Two references, in the same run:

* PyTorch (CPU) doing the identical SB-VAE model and Adam update (``torch_reference.py``, run in
  a worker process), timed with 1 and 2 threads in rounds interleaved with ours, medians over
  all rounds; plus a check that it computes the same loss as ours for the same parameters and
  the same uniforms ``u``;
* the roofline: every matrix product of the compiled training function (its nodes and input
  shapes read from an Aesara profile of that function), each timed as a standalone ``sgemm``
  of the same shape and transposition in the same OpenBLAS, with 1 and 2 threads; epoch
  roofline = training batches x step roofline + evaluation calls x forward roofline (the same
  method on the evaluation function).

Targets (PASS/FAIL): SB-VAE step <= PyTorch step at the same thread count; SB-VAE epoch
<= 2 x its single-thread roofline; SB-DGM epoch <= 2 x its single-thread roofline.

Usage (PyTorch is a benchmark-only dependency)::

    pip install -r benchmarks/requirements.txt
    python benchmarks/speed.py            # full mode, ~5 minutes on 2 idle cores
    python benchmarks/speed.py --quick    # functional check, a few steps of everything

Writes JSON to ``benchmarks/results/<date>.json`` (or ``--output``) and prints a summary.
"""
import argparse
import datetime
import importlib.util
import json
import math
import os
import pickle
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

from procinfo import peak_rss_kib  # benchmarks/, the script's own directory

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
ORIG_ENV = dict(os.environ)  # before stick_breaking_dgms.backend adds its flags

MODELS = ("sb_vae", "sb_ssdgm")
SCRIPTS = {"sb_vae": "run_stickBreaking_VAE_experiments.py",
           "sb_ssdgm": "run_stickBreaking_ssDGM_experiments.py"}
FUNCTION_NAMES = {"sb_vae": ("train", "eval"), "sb_ssdgm": ("train", "errors", "predict")}
FIRST_STEP_MARK = "Training for up to"
EPOCH_LIMIT = 2.0  # epoch / single-thread roofline
STEP_LIMIT = 1.0  # ours / PyTorch at the same thread count

MODES = {
    # steps per timed block, rounds, warm-up steps, pause between blocks (OpenBLAS threads spin
    # ~0.1 s after their last call, OpenMP's a little: let them sleep before the next block),
    # epochs, training batches per epoch (None: all), profiled steps, sgemm repeats and rounds,
    # and whether a script runs to its end
    "quick": dict(block=8, rounds=2, warmup=3, settle_s=0.05, epochs=1, epoch_batches=10,
                  profile_steps=3, sgemm_repeats=10, sgemm_rounds=2, full_command=False),
    "full": dict(block=50, rounds=6, warmup=30, settle_s=0.3, epochs=3, epoch_batches=None,
                 profile_steps=10, sgemm_repeats=50, sgemm_rounds=3, full_command=True),
}

PARTS = ("torch", "dgm", "epoch", "roofline", "compile", "startup")


# -- small helpers --------------------------------------------------------------------------

def log(msg):
    load = os.getloadavg()[0]
    print(f"[bench {time.strftime('%H:%M:%S')} load {load:.2f}] {msg}", flush=True)


def ms(seconds):
    return None if seconds is None else round(1000.0 * seconds, 4)


def stats(samples):
    """Median and spread of a list of seconds, in milliseconds."""
    xs = sorted(samples)
    if not xs:
        return None
    q = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))]  # noqa: E731
    return {"median_ms": ms(statistics.median(xs)), "mean_ms": ms(statistics.fmean(xs)),
            "min_ms": ms(xs[0]), "p10_ms": ms(q(0.10)), "p90_ms": ms(q(0.90)), "n": len(xs)}


def mib(kib):
    return round(kib / 1024.0, 1)


def ratio(a, b):
    return None if a is None or b is None or b == 0 else round(a / b, 4)


def child_env(compiledir=None):
    """The user's environment, with ``compiledir`` replacing any in the backend's flags."""
    env = dict(ORIG_ENV)
    if compiledir is not None:
        from stick_breaking_dgms.backend import FLAGS_VARIABLE
        keep = [f for f in env.get(FLAGS_VARIABLE, "").split(",")
                if f.strip() and f.split("=", 1)[0].strip() not in ("compiledir", "base_compiledir")]
        env[FLAGS_VARIABLE] = ",".join(keep + [f"compiledir={compiledir}"])
    return env


# A child's ru_maxrss counts the memory of the process that forked it (Linux records the old
# address space's peak at exec), so the children are started through this small launcher:
# the peak it reads with wait4 is the child's own, plus at most the launcher's few MiB.
LAUNCHER = """
import os, signal, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
signal.signal(signal.SIGTERM, lambda s, f: os.kill(pid, s))
_, status, ru = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{os.waitstatus_to_exitcode(status)} {ru.ru_maxrss} {ru.ru_utime} {ru.ru_stime}")
"""


def run_child(cmd, env, cwd=ROOT, stop_after_mark=False, timeout=3600):
    """Run ``cmd``; return its output lines, wall time, time to FIRST_STEP_MARK, exit code, rusage."""
    fd, usage_path = tempfile.mkstemp(prefix="sbdgm-bench-usage-")
    os.close(fd)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-S", "-c", LAUNCHER, usage_path] + list(cmd),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                            text=True, bufsize=1)
    lines, mark, stopped = [], None, False
    deadline = start + timeout
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if mark is None and line.startswith(FIRST_STEP_MARK):
            mark = time.perf_counter() - start
            if stop_after_mark:
                proc.send_signal(signal.SIGTERM)  # forwarded; the trainer checkpoints and exits
                stopped = True
        if time.perf_counter() > deadline:
            proc.kill()
            break
    proc.stdout.close()
    proc.wait()
    wall = time.perf_counter() - start
    try:
        with open(usage_path) as f:
            code, maxrss, user, system = f.read().split()
        code, maxrss, user, system = int(code), int(maxrss), float(user), float(system)
    except (OSError, ValueError):
        code, maxrss, user, system = proc.returncode, 0, 0.0, 0.0
    finally:
        os.remove(usage_path)
    return {"lines": lines, "wall_s": wall, "first_step_s": mark, "returncode": code,
            "maxrss_kib": maxrss, "stopped": stopped, "user_s": user, "sys_s": system}


def machine_info():
    info = {"hostname": platform.node(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        info["cpu_model"] = names[0] if names else None
    except OSError:
        info["cpu_model"] = None
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, text=True,
                                            capture_output=True).stdout.strip() or None
        info["git_dirty"] = bool(subprocess.run(["git", "status", "--porcelain",
                                                 "--untracked-files=no"], cwd=ROOT, text=True,
                                                capture_output=True).stdout.strip())
    except OSError:
        info["git_commit"] = None
    return info


def machine_busy_seconds():
    """CPU seconds the whole machine has spent busy (Linux /proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    """CPU seconds of this process and of its children that have been waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def uptime():
    try:
        return subprocess.run(["uptime"], text=True, capture_output=True).stdout.strip()
    except OSError:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- child: build a task, timing each compiled function ---------------------------------------

def child_build(model):
    """Build the script's task for ``model`` (in a child with its own compiledir); print JSON."""
    t0 = time.perf_counter()
    from stick_breaking_dgms import backend
    t_import = time.perf_counter() - t0
    threads = backend.configure_blas_threads("auto")  # as the scripts; cached in compiledir
    t_threads = time.perf_counter() - t0 - t_import
    from stick_breaking_dgms import cli, experiments
    from stick_breaking_dgms.datasets import load_dataset
    from stick_breaking_dgms.factory import build_task
    _, args, args_config = cli.parse_args(model, [])
    t1 = time.perf_counter()
    data = load_dataset(args.dataset, data_dir=args.data_dir, seed=args.seed).astype(args.floatX)
    t_data = time.perf_counter() - t1
    compiles = []
    original = experiments.function

    def timed_function(*a, **k):
        start = time.perf_counter()
        f = original(*a, **k)
        compiles.append(time.perf_counter() - start)
        return f

    experiments.function = timed_function
    t2 = time.perf_counter()
    build_task(args_config, data)
    t_build = time.perf_counter() - t2
    names = FUNCTION_NAMES[model]
    named = {(names[i] if i < len(names) else f"function{i}"): round(t, 3)
             for i, t in enumerate(compiles)}
    print(json.dumps({"import_s": round(t_import, 3), "blas_threads": threads,
                      "blas_threads_s": round(t_threads, 3), "data_s": round(t_data, 3),
                      "build_s": round(t_build, 3), "compile_s": named,
                      "compiledir": backend.config.compiledir,
                      "in_child_total_s": round(time.perf_counter() - t0, 3),
                      "maxrss_kib": peak_rss_kib()}),
          flush=True)
    return 0


# -- PyTorch worker ----------------------------------------------------------------------------

class TorchWorker:
    """``torch_reference.py --serve`` in a process of its own, driven with pickled messages."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "torch_reference.py"),
                                      "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=child_env(), cwd=ROOT)

    def call(self, **msg):
        pickle.dump(msg, self.proc.stdin)
        self.proc.stdin.flush()
        reply = pickle.load(self.proc.stdout)
        if not reply.get("ok"):
            raise RuntimeError(f"torch worker: {reply.get('error')}")
        return reply

    def close(self):
        try:
            self.call(cmd="quit")
        except (OSError, EOFError, RuntimeError):
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.proc.wait()


# -- in-process measurements -------------------------------------------------------------------

class OurSteps:
    """Timed training steps of a task, batches in order, with a given BLAS thread count."""

    def __init__(self, backend, task):
        self.backend, self.task, self.index = backend, task, 0

    def __call__(self, n, threads):
        self.backend.set_blas_threads(threads)
        train, nb = self.task._train, self.task.n_train_batches
        times, out = [], None
        for _ in range(n):
            i = self.index
            self.index = (i + 1) % nb
            start = time.perf_counter()
            out = train(i)
            times.append(time.perf_counter() - start)
        if out is not None and not all(np.isfinite(np.asarray(o, dtype=float)).all() for o in out):
            raise FloatingPointError(f"non-finite training outputs {out}")
        return times


def interleaved(runners, rounds, block, warmup, settle_s=0.0):
    """Run each ``runners[name](n)`` in rounds (order rotated each round); medians over all.

    The first step of every block (right after switching configuration) is dropped, and
    each block starts ``settle_s`` after the previous one ended.
    """
    names = list(runners)
    for name in names:
        runners[name](warmup)
    samples = {name: [] for name in names}
    round_medians = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            time.sleep(settle_s)
            times = runners[name](block + 1)[1:]
            samples[name] += times
            round_medians[name].append(ms(statistics.median(times)))
    out = {}
    for name in names:
        out[name] = stats(samples[name])
        out[name]["round_medians_ms"] = round_medians[name]
    return out


def time_epochs(backend, task, threads, n_epochs, n_batches):
    """Epochs of ``n_batches`` training steps (all when None), then validate() and test()."""
    backend.set_blas_threads(threads)
    n_batches = task.n_train_batches if n_batches is None else min(n_batches, task.n_train_batches)
    # The evaluation function is compiled at its first call (once per run, not per epoch):
    # compile it before timing, so every timed epoch is a steady-state one.
    task.validate()
    epochs = []
    for _ in range(n_epochs):
        sums = None
        t0 = time.perf_counter()
        for i in range(n_batches):
            out = np.asarray(task._train(i), dtype=np.float64)
            sums = out if sums is None else sums + out
        t1 = time.perf_counter()
        valid = task.validate()
        t2 = time.perf_counter()
        test = task.test()
        t3 = time.perf_counter()
        epochs.append({"train_s": round(t1 - t0, 4), "valid_s": round(t2 - t1, 4),
                       "test_s": round(t3 - t2, 4), "total_s": round(t3 - t0, 4),
                       "train_means": [round(float(v), 4) for v in sums / n_batches],
                       "valid_score": valid["score"], "test_score": test["score"]})
    totals = [e["total_s"] for e in epochs]
    return {"train_batches": n_batches, "full_epoch": n_batches == task.n_train_batches,
            "blas_threads": threads, "epochs": epochs,
            "median_total_s": round(statistics.median(totals), 4), "min_total_s": min(totals),
            "median_train_s": round(statistics.median(e["train_s"] for e in epochs), 4),
            "median_eval_s": round(statistics.median(e["valid_s"] + e["test_s"]
                                                     for e in epochs), 4)}


def equivalence_check(backend, task, worker, x, seed=0):
    """Our per-example NLL and KL vs PyTorch's for the same parameters and the same u."""
    at = backend.at
    model = task.model
    xv, uv = at.matrix("x"), at.matrix("u")
    nll, kl = model.negative_elbo_terms(xv, noise=uv)
    f = backend.function([xv, uv], [nll, kl])
    k = model.latent.size
    u = np.random.default_rng(seed).uniform(0.01, 0.99, size=(len(x), k - 1)).astype(np.float32)
    x = np.ascontiguousarray(x, dtype=np.float32)
    ours_nll, ours_kl = (np.asarray(v, dtype=np.float64) for v in f(x, u))
    params = {name: p.get_value() for name, p in task.params.items()}
    reply = worker.call(cmd="terms", params=params, x=x, u=u)
    t_nll, t_kl = reply["nll"], reply["kl"]
    loss_ours, loss_torch = float(np.mean(ours_nll + ours_kl)), float(np.mean(t_nll + t_kl))

    def rel(a, b):
        return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-3)))

    result = {"batch": len(x), "loss_ours": loss_ours, "loss_torch": loss_torch,
              "loss_abs_diff": abs(loss_ours - loss_torch),
              "loss_rel_diff": abs(loss_ours - loss_torch) / abs(loss_torch),
              "nll_max_abs_diff": float(np.max(np.abs(ours_nll - t_nll))),
              "nll_max_rel_diff": rel(ours_nll, t_nll),
              "kl_max_abs_diff": float(np.max(np.abs(ours_kl - t_kl))),
              "kl_max_rel_diff": rel(ours_kl, t_kl),
              "kl_mean_ours": float(np.mean(ours_kl)), "nll_mean_ours": float(np.mean(ours_nll))}
    result["pass"] = bool(result["loss_rel_diff"] < 1e-4 and result["nll_max_rel_diff"] < 1e-4
                          and result["kl_max_abs_diff"] < 1e-3 * max(1.0, np.max(np.abs(t_kl))))
    return result


# -- roofline ----------------------------------------------------------------------------------

GEMM_CLASSES = {"Gemm": (2, 3, True), "CGemm": (2, 3, True), "Dot22": (0, 1, False),
                "Dot22Scalar": (0, 1, False), "Dot": (0, 1, False)}
GEMV_CLASSES = {"Gemv": 2, "CGemv": 2}  # matrix input index
GER_CLASSES = {"Ger": 0, "CGer": 0}
BATCHED_CLASSES = {"BatchedDot": (0, 1)}
MATMUL_HINTS = ("gemm", "gemv", "ger", "dot", "blas")


def _layout(shape, strides, itemsize=4):
    """'C', 'F' (a transposed view, as the graph's InplaceDimShuffle{1,0}) or 'strided'."""
    if strides == "c" or shape is None or len(shape) < 2:
        return "C"
    if not isinstance(strides, (tuple, list)):
        return "C"
    if strides[-1] == itemsize:
        return "C"
    if strides[0] == itemsize and strides[1] == itemsize * shape[0]:
        return "F"
    return "strided"


def matmul_nodes(fn):
    """The matrix-product nodes of a compiled (profiled, with profile_memory) function.

    Returns (nodes, unknown): each node as a dict with m, k, n, layouts, FLOPs and its
    profiled time per call; ``unknown`` lists BLAS-like nodes the method does not cover.
    """
    prof = fn.profile
    nodes, unknown = [], []
    calls_total = max(prof.fct_callcount, 1)
    for (fgraph, node), t in prof.apply_time.items():
        cls = type(node.op).__name__
        shapes = [prof.variable_shape.get(v) for v in node.inputs]
        strides = [prof.variable_strides.get(v) for v in node.inputs]
        calls = prof.apply_callcount.get((fgraph, node), 0) or 1
        rec = {"op": str(node.op), "class": cls, "calls_per_fn_call": calls / calls_total,
               "profiled_ms_per_call": ms(t / calls)}
        if cls in GEMM_CLASSES:
            ix, iy, acc = GEMM_CLASSES[cls]
            xs, ys = shapes[ix], shapes[iy]
            if xs is None or ys is None or len(xs) != 2 or len(ys) != 2:
                if cls == "Dot" and xs is not None and ys is not None:
                    # matrix-vector / vector-vector Dot: a thin product
                    if len(xs) == 2 and len(ys) == 1:
                        xs, ys = xs, (ys[0], 1)
                    elif len(xs) == 1 and len(ys) == 2:
                        xs, ys = (1, xs[0]), ys
                    elif len(xs) == 1 and len(ys) == 1:
                        xs, ys = (1, xs[0]), (ys[0], 1)
                    else:
                        unknown.append(rec)
                        continue
                else:
                    unknown.append(rec)
                    continue
            m, k = xs
            n = ys[1]
            rec.update(m=int(m), k=int(k), n=int(n), accumulate=acc,
                       x_layout=_layout(xs, strides[ix]), y_layout=_layout(ys, strides[iy]),
                       timed_as="sgemm")
        elif cls in GEMV_CLASSES:
            a = shapes[GEMV_CLASSES[cls]]
            if a is None:
                unknown.append(rec)
                continue
            rec.update(m=int(a[0]), k=int(a[1]), n=1, accumulate=True,
                       x_layout=_layout(a, strides[GEMV_CLASSES[cls]]), y_layout="C",
                       timed_as="sgemm with n=1")
        elif cls in GER_CLASSES:
            a = shapes[GER_CLASSES[cls]]
            if a is None:
                unknown.append(rec)
                continue
            rec.update(m=int(a[0]), k=1, n=int(a[1]), accumulate=True, x_layout="C",
                       y_layout="C", timed_as="sgemm with k=1")
        elif cls in BATCHED_CLASSES:
            xs, ys = (shapes[i] for i in BATCHED_CLASSES[cls])
            if xs is None or ys is None or len(xs) != 3:
                unknown.append(rec)
                continue
            rec.update(batch=int(xs[0]), m=int(xs[1]), k=int(xs[2]), n=int(ys[2]),
                       accumulate=False, x_layout="C", y_layout="C",
                       timed_as="batch x sgemm")
        else:
            if any(h in cls.lower() for h in MATMUL_HINTS) and "dimshuffle" not in cls.lower():
                unknown.append(rec)
            continue
        rec["flops"] = 2 * rec.get("batch", 1) * rec["m"] * rec["k"] * rec["n"]
        rec["key"] = [rec["m"], rec["k"], rec["n"], rec["x_layout"], rec["y_layout"],
                      rec["accumulate"]]
        nodes.append(rec)
    return nodes, unknown


class SgemmBench:
    """Standalone sgemm of a graph node's shape and layout, called as Aesara's C code calls it.

    Aesara computes the C-contiguous z (m, n) = x (m, k) y (k, n) as the Fortran product
    z^T = y^T x^T, passing each operand with 'N' when it is C-contiguous and 'T' when it is a
    transposed view. SciPy's ``sgemm`` (the same OpenBLAS as the compiled graphs) is given the
    same buffers and flags, writing in place into a preallocated Fortran ``c``.
    """

    def __init__(self, key, rng):
        from scipy.linalg.blas import sgemm
        m, k, n, xl, yl, acc = key
        self.key = tuple(key)
        x = rng.standard_normal((k, m), dtype=np.float32).T if xl == "F" else \
            rng.standard_normal((m, k), dtype=np.float32)
        y = rng.standard_normal((n, k), dtype=np.float32).T if yl == "F" else \
            rng.standard_normal((k, n), dtype=np.float32)
        a, ta = (y, 1) if yl == "F" else (y.T, 0)
        b, tb = (x, 1) if xl == "F" else (x.T, 0)
        check = sgemm(1.0, a, b, trans_a=ta, trans_b=tb)
        if not np.allclose(check.T, x.astype(np.float64) @ y.astype(np.float64), rtol=1e-3,
                           atol=1e-3 * math.sqrt(k)):
            raise AssertionError(f"sgemm mapping wrong for {key}")
        self.c = np.zeros((n, m), dtype=np.float32, order="F")
        beta = 1.0 if acc else 0.0
        c = self.c
        self.call = lambda: sgemm(1.0, a, b, beta=beta, c=c, trans_a=ta, trans_b=tb,
                                  overwrite_c=1)
        if not np.shares_memory(self.call(), c):
            raise AssertionError("sgemm did not write in place: the timing would include a copy")

    def time(self, repeats):
        call, samples = self.call, []
        call()
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            samples.append(time.perf_counter() - start)
        if self.key[5]:
            self.c.fill(0.0)
        return statistics.median(samples)


def time_sgemms(backend, keys, repeats, rounds, threads=(1, 2)):
    """{key: {threads: seconds}}: the median of ``repeats`` calls, the best of ``rounds``."""
    rng = np.random.default_rng(0)
    benches = {tuple(k): SgemmBench(k, rng) for k in keys}
    best = {k: {} for k in benches}
    for _ in range(rounds):
        for t in threads:
            backend.set_blas_threads(t)
            for k, bench in benches.items():
                s = bench.time(repeats)
                best[k][t] = min(best[k].get(t, s), s)
    return best


def roofline_of(nodes, timings):
    """Per-call roofline (seconds) at 1 thread, 2 threads and the best per node."""
    out = {"1": 0.0, "2": 0.0, "best": 0.0}
    for node in nodes:
        t = timings[tuple(node["key"])]
        reps = node.get("batch", 1) * node["calls_per_fn_call"]
        node["sgemm_ms"] = {str(th): ms(s) for th, s in t.items()}
        out["1"] += reps * t[1]
        out["2"] += reps * t[2]
        out["best"] += reps * min(t.values())
    return out


def profile_breakdown(fn, top=12):
    """Where the time of a profiled function goes: per op class and the slowest nodes."""
    prof = fn.profile
    calls = max(prof.fct_callcount, 1)
    by_class = {}
    for (fgraph, node), t in prof.apply_time.items():
        name = type(node.op).__name__
        if name == "Elemwise":
            scalar = getattr(node.op, "scalar_op", None)
            name = "Elemwise{Composite}" if type(scalar).__name__ == "Composite" else \
                f"Elemwise{{{type(scalar).__name__}}}"
        by_class[name] = by_class.get(name, 0.0) + t
    total = sum(by_class.values())
    nodes = sorted(prof.apply_time.items(), key=lambda kv: -kv[1])[:top]
    return {
        "profiled_calls": prof.fct_callcount,
        "ops_ms_per_call": ms(total / calls),
        "function_ms_per_call": ms(prof.fct_call_time / calls),
        "by_class_ms_per_call": {k: ms(v / calls) for k, v in
                                 sorted(by_class.items(), key=lambda kv: -kv[1])},
        "by_class_fraction": {k: round(v / total, 4) for k, v in
                              sorted(by_class.items(), key=lambda kv: -kv[1])} if total else {},
        "top_nodes": [{"op": str(node.op)[:160], "ms_per_call": ms(t / calls),
                       "out_shape": [prof.variable_shape.get(o) for o in node.outputs]}
                      for (fgraph, node), t in nodes],
    }


class profiling:
    """Aesara profiling with shapes and strides (Stack VM) while inside; restores the config.

    The flags must stay on while the profiled functions run: the VM reads them per call.
    """

    def __init__(self, backend):
        self.cfg = backend.config

    def __enter__(self):
        self.old = (self.cfg.profile, self.cfg.profile_memory)
        self.cfg.profile, self.cfg.profile_memory = True, True
        return self

    def __exit__(self, *exc):
        self.cfg.profile, self.cfg.profile_memory = self.old
        return False


def profiled_task(backend, config, data):
    """The task compiled with profiling (call it inside ``profiling``)."""
    from stick_breaking_dgms.factory import build_task
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CVM does not support memory profiling"
        task = build_task(config, data)
    # no profile dumps to stderr at exit
    pending = getattr(backend.profiling_module(), "_atexit_print_list", None)
    if isinstance(pending, list):
        pending.clear()
    return task


PROFILE_THREADS = 1  # BLAS threads of the profiled runs: per-node times free of thread scheduling


def roofline(backend, config, data, mode, eval_fn_name):
    """Profile the training and evaluation functions, time their sgemms, sum up."""
    with profiling(backend):
        t0 = time.perf_counter()
        task = profiled_task(backend, config, data)
        build_s = time.perf_counter() - t0
        backend.set_blas_threads(PROFILE_THREADS)
        train = task._train
        for i in range(2):
            train(i)
        train.profile.reset()
        for i in range(mode["profile_steps"]):
            train(i)
        evaluate = getattr(task, eval_fn_name)
        evaluate = getattr(evaluate, "function", evaluate)  # compiled on first use
        evaluate.profile.reset()
        task.validate()
        task.test()
    eval_calls = evaluate.profile.fct_callcount
    if not any(evaluate.profile.apply_callcount.values()) or \
            not any(train.profile.apply_callcount.values()):
        raise RuntimeError("the profile recorded no node: is Aesara's profiling working?")
    step_nodes, step_unknown = matmul_nodes(train)
    eval_nodes, eval_unknown = matmul_nodes(evaluate)
    keys = {tuple(n["key"]) for n in step_nodes + eval_nodes}
    timings = time_sgemms(backend, sorted(keys), mode["sgemm_repeats"], mode["sgemm_rounds"])
    step = roofline_of(step_nodes, timings)
    fwd = roofline_of(eval_nodes, timings)
    breakdown = profile_breakdown(train)
    matmul_ms = sum(n["profiled_ms_per_call"] * n["calls_per_fn_call"] for n in step_nodes)
    breakdown["matmul_ms_per_call"] = round(matmul_ms, 4)
    breakdown["matmul_fraction"] = round(matmul_ms / breakdown["ops_ms_per_call"], 4) \
        if breakdown["ops_ms_per_call"] else None
    result = {
        "profiled_build_s": round(build_s, 2),
        "step_flops": sum(n["flops"] * n["calls_per_fn_call"] for n in step_nodes),
        "eval_flops_per_call": sum(n["flops"] * n["calls_per_fn_call"] for n in eval_nodes),
        "eval_calls_per_valid_and_test": eval_calls,
        "n_train_batches": task.n_train_batches,
        "step_roofline_ms": {k: ms(v) for k, v in step.items()},
        "eval_call_roofline_ms": {k: ms(v) for k, v in fwd.items()},
        "sgemm_gflops": {" x ".join(map(str, k[:3])) + f" {k[3]}{k[4]}{' acc' if k[5] else ''}":
                         {str(t): round(2 * k[0] * k[1] * k[2] / s / 1e9, 1)
                          for t, s in v.items()} for k, v in timings.items()},
        "step_nodes": step_nodes, "eval_nodes": eval_nodes,
        "unknown_blas_nodes": step_unknown + eval_unknown,
        "profile_blas_threads": PROFILE_THREADS,
        "profile": breakdown,
        "eval_profile": profile_breakdown(evaluate, top=6),
    }
    result["_step_s"], result["_fwd_s"] = step, fwd
    return result


def epoch_roofline(roof, n_batches):
    """Roofline of an epoch of ``n_batches`` training steps plus the validation + test pass."""
    return {k: round(n_batches * roof["_step_s"][k]
                     + roof["eval_calls_per_valid_and_test"] * roof["_fwd_s"][k], 4)
            for k in ("1", "2", "best")}


# -- subprocess measurements -------------------------------------------------------------------

def compile_times(model, compiledir):
    """Cold (fresh compiledir) then warm (same compiledir) task builds in child processes."""
    out = {}
    for label in ("cold", "warm"):
        log(f"{model}: {label} compile (child, compiledir {compiledir})")
        r = run_child([sys.executable, os.path.abspath(__file__), "--child-build", model],
                      child_env(compiledir))
        record = {"wall_s": round(r["wall_s"], 3), "returncode": r["returncode"],
                  "maxrss_mib": mib(r["maxrss_kib"]), "cpu_s": round(r["user_s"] + r["sys_s"], 2)}
        try:
            record.update(json.loads([ln for ln in r["lines"] if ln.startswith("{")][-1]))
            record["maxrss_mib_self"] = mib(record.pop("maxrss_kib"))
        except (IndexError, ValueError):
            record["error"] = "\n".join(r["lines"][-20:])
        out[label] = record
    return out


def startup(model, compiledir, expdir, full_command):
    """The real script, warm cache: seconds to the line printed before the first step, and in all."""
    cmd = [sys.executable, os.path.join(ROOT, SCRIPTS[model]), "--max-epoch", "1",
           "--experiment-dir", expdir, "--progress", "never"]
    log(f"{model}: {' '.join(os.path.basename(c) if c == sys.executable else c for c in cmd)}")
    r = run_child(cmd, child_env(compiledir), stop_after_mark=not full_command)
    ready = None
    threads = None
    for line in r["lines"]:
        m = re.search(r"ready after ([0-9.]+)s", line)
        if m and line.startswith(FIRST_STEP_MARK):
            ready = float(m.group(1))
        m = re.search(r"(\d+) threads?\)", line)
        if m and threads is None and "BLAS" in line:
            threads = int(m.group(1))
    return {"command": " ".join(["python"] + cmd[1:]),
            "first_step_s": None if r["first_step_s"] is None else round(r["first_step_s"], 3),
            "script_reports_ready_s": ready, "blas_threads": threads,
            "full_command_s": round(r["wall_s"], 3) if full_command and not r["stopped"] else None,
            "stopped_after_first_step": r["stopped"], "returncode": r["returncode"],
            "maxrss_mib": mib(r["maxrss_kib"]), "output_tail": r["lines"][-4:]}


# -- main --------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="functional check: a few steps of everything, partial epochs, scripts "
                        "stopped at their first step")
    p.add_argument("--output", default=None,
                   help="JSON output path (default benchmarks/results/<date>.json)")
    p.add_argument("--skip", default="",
                   help=f"comma-separated parts to leave out: {', '.join(PARTS)}")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temporary compiledirs")
    p.add_argument("--child-build", choices=MODELS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    bad = args.skip - set(PARTS)
    if bad:
        p.error(f"argument --skip: unknown part(s) {', '.join(sorted(bad))}; "
                f"expected some of {', '.join(PARTS)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.child_build:
        return child_build(args.child_build)
    mode_name = "quick" if args.quick else "full"
    mode = MODES[mode_name]
    started = time.time()
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H%M%S")
    output = args.output or os.path.join(HERE, "results",
                                         f"{stamp}{'-quick' if args.quick else ''}.json")
    result = {"benchmark": "stick_breaking_dgms speed", "mode": mode_name, "date": stamp,
              "argv": sys.argv[1:], "settings": mode, "skipped": sorted(args.skip),
              "machine": machine_info(), "uptime_start": uptime(),
              "loadavg_start": os.getloadavg(), "phases": []}
    busy_start, own_start = machine_busy_seconds(), own_cpu_seconds()
    have_torch = importlib.util.find_spec("torch") is not None and "torch" not in args.skip
    if not have_torch and "torch" not in args.skip:
        log("PyTorch is not installed: `pip install -r benchmarks/requirements.txt` "
            "(torch==2.13.0, CPU); its reference is skipped")
    result["machine"]["uptime"] = result["uptime_start"]
    log(f"mode {mode_name}; {result['uptime_start']}")

    def phase(name):
        result["phases"].append({"name": name, "t_s": round(time.time() - started, 1),
                                 "loadavg": os.getloadavg()})
        log(name)

    from stick_breaking_dgms import backend, cli
    from stick_breaking_dgms.datasets import load_dataset
    from stick_breaking_dgms.factory import build_task
    import scipy
    cache = os.path.join(backend.config.compiledir, "stick_breaking_dgms_blas_threads.json")
    try:
        with open(cache) as f:
            cached = json.load(f)
        source = f"cached in {cache}" if any(k.startswith(platform.node() + "|")
                                             for k in cached) else "measured now"
    except (OSError, ValueError):
        source = "measured now"
    auto = backend.configure_blas_threads("auto")
    result["blas_threads_auto_source"] = source
    result["blas_threads_measured_now_ms"] = {
        str(k): ms(v) for k, v in backend.measure_blas_threads().items()}
    result["machine"].update(numpy=np.__version__, scipy=scipy.__version__,
                             backend=backend.describe(), blas_library=backend.blas_library(),
                             compiledir=backend.config.compiledir)
    result["blas_threads_auto"] = auto
    log(f"BLAS threads chosen as the scripts do (auto): {auto} ({source}); sgemm 100x784x500 "
        f"now: {result['blas_threads_measured_now_ms']} ms by thread count")
    _, vae_args, vae_args_config = cli.parse_args("sb_vae", [])
    _, dgm_args, dgm_args_config = cli.parse_args("sb_ssdgm", [])
    data = load_dataset("mnist", data_dir=os.path.join(ROOT, "datasets"),
                        seed=vae_args.seed).astype("float32")
    result["dataset"] = data.describe()
    vae, dgm = {}, {}
    result["sb_vae"], result["sb_ssdgm"] = vae, dgm
    tmp_root = tempfile.mkdtemp(prefix="sbdgm-bench-")
    worker = None
    try:
        # --- SB-VAE: steps, ours vs PyTorch, interleaved -------------------------------------
        phase("sb_vae: building the task (in-process, default compiledir)")
        t0 = time.perf_counter()
        vae_task = build_task(vae_args_config, data)
        vae["in_process_build_s"] = round(time.perf_counter() - t0, 2)
        vae["n_train_batches"] = vae_task.n_train_batches
        ours = OurSteps(backend, vae_task)
        runners = {"ours_1": lambda n: ours(n, 1), "ours_2": lambda n: ours(n, 2)}
        if have_torch:
            phase("sb_vae: starting the PyTorch worker")
            worker = TorchWorker()
            npy = os.path.join(tmp_root, "train_x.npy")
            np.save(npy, np.ascontiguousarray(data.train_x, dtype=np.float32))
            init = {name: p.get_value() for name, p in vae_task.params.items()}
            setup = worker.call(cmd="setup", train_x=npy, params=init, batch_size=100, seed=1234)
            os.remove(npy)
            result["machine"]["torch"] = setup["torch"]
            phase("sb_vae: equivalence check at the initial parameters")
            first = data.train_x[:100]
            vae["equivalence_initial"] = equivalence_check(backend, vae_task, worker, first, 0)
            log(f"equivalence (initial): {vae['equivalence_initial']}")
            runners["torch_1"] = lambda n: worker.call(cmd="steps", n=n, threads=1)["times"]
            runners["torch_2"] = lambda n: worker.call(cmd="steps", n=n, threads=2)["times"]
            runners = {k: runners[k] for k in ("ours_1", "torch_1", "ours_2", "torch_2")}
        phase(f"sb_vae: train steps, {mode['rounds']} interleaved rounds of {mode['block']}")
        steps = interleaved(runners, mode["rounds"], mode["block"], mode["warmup"],
                            mode["settle_s"])
        steps["ours_auto"] = dict(steps[f"ours_{auto}"], blas_threads=auto)
        vae["step"] = steps
        if have_torch:
            phase("sb_vae: equivalence check at the trained parameters")
            vae["equivalence_trained"] = equivalence_check(backend, vae_task, worker,
                                                           data.train_x[100:200], 1)
            log(f"equivalence (after {ours.index} steps): {vae['equivalence_trained']}")
        if "epoch" not in args.skip:
            phase("sb_vae: epochs (auto threads)")
            vae["epoch"] = time_epochs(backend, vae_task, auto, mode["epochs"],
                                       mode["epoch_batches"])
        vae_task = ours = runners = None  # free the task before the next one
        result["maxrss_mib_after_sb_vae"] = mib(peak_rss_kib())

        # --- SB-DGM ----------------------------------------------------------------------------
        if "dgm" not in args.skip:
            phase("sb_ssdgm: building the task (in-process)")
            t0 = time.perf_counter()
            dgm_task = build_task(dgm_args_config, data)
            dgm["in_process_build_s"] = round(time.perf_counter() - t0, 2)
            dgm["n_train_batches"] = dgm_task.n_train_batches
            dgm["labelled_batch_size"] = dgm_task.labelled_batch_size
            ours_dgm = OurSteps(backend, dgm_task)
            phase("sb_ssdgm: train steps, interleaved 1 / 2 threads")
            dsteps = interleaved({"ours_1": lambda n: ours_dgm(n, 1),
                                  "ours_2": lambda n: ours_dgm(n, 2)},
                                 mode["rounds"], mode["block"], mode["warmup"],
                                 mode["settle_s"])
            dsteps["ours_auto"] = dict(dsteps[f"ours_{auto}"], blas_threads=auto)
            dgm["step"] = dsteps
            if "epoch" not in args.skip:
                phase("sb_ssdgm: epochs (auto threads)")
                dgm["epoch"] = time_epochs(backend, dgm_task, auto, mode["epochs"],
                                           mode["epoch_batches"])
            dgm_task = ours_dgm = None
        if worker is not None:
            info = worker.call(cmd="info")
            result["torch_parallel_info"] = info["parallel_info"]
            result["torch_worker_maxrss_mib"] = mib(info["peak_rss_kib"])
            worker.close()
            worker = None

        # --- roofline ----------------------------------------------------------------------
        if "roofline" not in args.skip:
            phase("sb_vae: roofline (profiled build, sgemm timings)")
            vae["roofline"] = roofline(backend, vae_args_config, data, mode, "_eval")
            if "dgm" not in args.skip:
                phase("sb_ssdgm: roofline")
                dgm["roofline"] = roofline(backend, dgm_args_config, data, mode,
                                           "_errors")
        result["in_process_maxrss_mib"] = mib(peak_rss_kib())

        # --- children: compile, scripts ---------------------------------------------------
        models = [m for m in MODELS if m == "sb_vae" or "dgm" not in args.skip]
        # the scripts run with the compiledir warmed by the compile children, or with the
        # default one (warmed by the in-process builds above) when those are skipped
        dirs = {m: (None if "compile" in args.skip else os.path.join(tmp_root, f"compiledir-{m}"))
                for m in models}
        if "compile" not in args.skip:
            for m in models:
                phase(f"{m}: cold / warm compile")
                os.makedirs(dirs[m])
                (vae if m == "sb_vae" else dgm)["compile"] = compile_times(m, dirs[m])
        if "startup" not in args.skip:
            for m in models:
                phase(f"{m}: script, time to first step")
                expdir = os.path.join(tmp_root, f"experiments-{m}")
                (vae if m == "sb_vae" else dgm)["startup"] = startup(m, dirs[m], expdir,
                                                                     mode["full_command"])
    finally:
        if worker is not None:
            worker.close()
        if not args.keep_tmp:
            shutil.rmtree(tmp_root, ignore_errors=True)
        else:
            result["tmp_dir"] = tmp_root

    result["loadavg_end"] = os.getloadavg()
    result["uptime_end"] = uptime()
    result["elapsed_s"] = round(time.time() - started, 1)
    if busy_start is not None:
        # what other processes took from the machine meanwhile (the load average counts
        # the benchmark's own threads, so it cannot tell a quiet machine from a busy one)
        others = (machine_busy_seconds() - busy_start) - (own_cpu_seconds() - own_start)
        result["other_processes_cpu_s"] = round(max(others, 0.0), 1)
    from stick_breaking_dgms.fileio import write_text
    try:
        summarize(result)
    finally:  # the measurements are written even if the summary fails
        for model in ("sb_vae", "sb_ssdgm"):
            roof = result[model].get("roofline")
            if roof:
                roof.pop("_step_s", None)
                roof.pop("_fwd_s", None)
        write_text(output, json.dumps(result, indent=1, default=str) + "\n")
        log(f"wrote {output}")
    print(json.dumps(result["summary"], indent=1, default=str))
    failed = any(t["status"] == "FAIL" for t in result["summary"]["targets"])
    return 1 if (args.strict and failed) else 0


def verdict(value, limit):
    if value is None:
        return "ERROR"
    return "PASS" if value <= limit else "FAIL"


def summarize(result):
    """Ratios, targets and a compact summary (also printed)."""
    vae, dgm = result["sb_vae"], result["sb_ssdgm"]
    auto = result["blas_threads_auto"]
    s = {"mode": result["mode"], "date": result["date"],
         "load": {"start": result["uptime_start"], "end": result["uptime_end"]},
         "blas_threads_auto": auto, "blas_threads_auto_source": result["blas_threads_auto_source"],
         "blas_threads_measured_now_ms": result["blas_threads_measured_now_ms"]}
    step = vae.get("step", {})
    med = {k: v["median_ms"] for k, v in step.items()}
    s["sb_vae_step_ms"] = med
    if "torch_1" in med:
        torch_best = min(med["torch_1"], med["torch_2"])
        s["sb_vae_step_ratio"] = {
            "ours_auto/torch_same_threads": ratio(med["ours_auto"], med[f"torch_{auto}"]),
            "ours_1/torch_1": ratio(med["ours_1"], med["torch_1"]),
            "ours_2/torch_2": ratio(med["ours_2"], med["torch_2"]),
            "ours_auto/torch_best": ratio(med["ours_auto"], torch_best),
            "ours_best/torch_best": ratio(min(med["ours_1"], med["ours_2"]), torch_best)}
    for eq in ("equivalence_initial", "equivalence_trained"):
        if eq in vae:
            s[f"sb_vae_{eq}"] = {k: vae[eq][k] for k in ("loss_ours", "loss_torch",
                                                         "loss_rel_diff", "nll_max_rel_diff",
                                                         "kl_max_abs_diff", "pass")}
    if dgm.get("step"):
        s["sb_ssdgm_step_ms"] = {k: v["median_ms"] for k, v in dgm["step"].items()}
    targets = []
    for name, part in (("sb_vae", vae), ("sb_ssdgm", dgm)):
        ep, roof = part.get("epoch"), part.get("roofline")
        if roof:
            s[f"{name}_roofline"] = {"step_gflop": round(roof["step_flops"] / 1e9, 4),
                                     "step_ms": roof["step_roofline_ms"],
                                     "eval_call_ms": roof["eval_call_roofline_ms"],
                                     "eval_calls": roof["eval_calls_per_valid_and_test"],
                                     "matmul_fraction_of_profiled_step":
                                         roof["profile"]["matmul_fraction"],
                                     "unknown_blas_nodes": len(roof["unknown_blas_nodes"])}
            if part.get("step"):
                s[f"{name}_roofline"]["ours_auto_step/step_roofline_1"] = ratio(
                    part["step"]["ours_auto"]["median_ms"], roof["step_roofline_ms"]["1"])
        if ep:
            s[f"{name}_epoch_s"] = {"median_total": ep["median_total_s"],
                                    "median_train": ep["median_train_s"],
                                    "median_valid_plus_test": ep["median_eval_s"],
                                    "train_batches": ep["train_batches"],
                                    "full_epoch": ep["full_epoch"], "blas_threads": ep["blas_threads"]}
        if ep and roof:
            er = epoch_roofline(roof, ep["train_batches"])
            part["epoch_roofline_s"] = er
            r = ratio(ep["median_total_s"], er["1"])
            s[f"{name}_epoch_s"]["roofline"] = er
            s[f"{name}_epoch_s"]["ours/roofline_1"] = r
            targets.append({"name": f"{name} epoch <= {EPOCH_LIMIT:g} x single-thread roofline"
                                    + ("" if ep["full_epoch"] else " (partial epoch: --quick)"),
                            "value": r, "limit": EPOCH_LIMIT,
                            "status": verdict(r, EPOCH_LIMIT)})
        comp = part.get("compile")
        if comp:
            s[f"{name}_compile_s"] = {
                label: {"train_function": c.get("compile_s", {}).get("train"),
                        "all_functions": round(sum(c.get("compile_s", {}).values()), 3),
                        "child_wall": c["wall_s"], "child_cpu": c.get("cpu_s"),
                        "child_maxrss_mib": c["maxrss_mib"]}
                for label, c in comp.items()}
        st = part.get("startup")
        if st:
            s[f"{name}_script"] = {k: st[k] for k in ("first_step_s", "script_reports_ready_s",
                                                      "full_command_s", "maxrss_mib",
                                                      "blas_threads", "returncode")}
    if "sb_vae_step_ratio" in s:
        r = s["sb_vae_step_ratio"]["ours_auto/torch_same_threads"]
        targets.insert(0, {"name": f"sb_vae step <= PyTorch step ({auto} thread"
                                   f"{'s' if auto != 1 else ''}, as ours)",
                           "value": r, "limit": STEP_LIMIT,
                           "status": verdict(r, STEP_LIMIT),
                           "vs_torch_best": s["sb_vae_step_ratio"]["ours_auto/torch_best"]})
    else:
        targets.insert(0, {"name": "sb_vae step <= PyTorch step", "value": None,
                           "limit": STEP_LIMIT, "status": "SKIP"})
    s["targets"] = targets
    s["memory_mib"] = {"in_process": result.get("in_process_maxrss_mib"),
                       "after_sb_vae_in_process": result.get("maxrss_mib_after_sb_vae"),
                       "torch_worker": result.get("torch_worker_maxrss_mib")}
    for name, part in (("sb_vae", vae), ("sb_ssdgm", dgm)):
        for label, c in part.get("compile", {}).items():
            s["memory_mib"][f"{name}_{label}_compile_child"] = c.get("maxrss_mib")
        if part.get("startup"):
            s["memory_mib"][f"{name}_script"] = part["startup"]["maxrss_mib"]
    s["elapsed_s"] = result["elapsed_s"]
    cpus = result["machine"]["cpu_count"] or 1
    others = result.get("other_processes_cpu_s")
    if others is not None:
        share = others / (result["elapsed_s"] * cpus)
        s["other_processes_cpu_share"] = round(share, 3)
        if share > 0.1:
            s["load_warning"] = (f"other processes used {share:.0%} of the {cpus} CPUs during "
                                 f"the run: timings are inflated and noisy, two-thread ones "
                                 f"above all (threads wait for descheduled peers); rerun on a "
                                 f"quiet machine")
    elif result["loadavg_start"][0] > 0.5 * cpus:
        s["load_warning"] = (f"load average {result['loadavg_start'][0]:.1f} on {cpus} CPUs "
                             f"when the run started: rerun on a quiet machine")
    if "load_warning" in s:
        print(f"WARNING: {s['load_warning']}", flush=True)
    result["summary"] = s
    print()
    for t in targets:
        print(f"{t['status']}: {t['name']}: {t['value']} (limit {t['limit']})"
              + (f"; vs PyTorch's best {t['vs_torch_best']}" if "vs_torch_best" in t else ""),
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
