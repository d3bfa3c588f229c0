"""Calibrate the regression check: drift per CPU kernel, shift per planted bug.

The regression check (:mod:`stick_breaking_dgms.evaluation.regression`) compares the
numbers of short seeded MNIST runs with ``tests/data/regression_mnist.json``. It must
pass on every CPU and fail for the small real bugs it exists to catch. This script runs
the check's recipe once per *variant*, each in its own process, and tabulates how far
each variant moves every compared number:

* **machine variants** emulate another CPU on this one: OpenBLAS's kernel for another
  processor (``OPENBLAS_CORETYPE``; only kernels whose instructions this CPU has), the
  C code compiled for the baseline x86-64 instead of this CPU's ``-march``, NumPy
  without its AVX code paths, two BLAS threads. The check must pass under each.
* **planted bugs** patch the package in the child process (this file only; the package
  has no hook for them): Adam's beta1, the KL series, the Gaussian KL, the importance
  sampler, the number of importance samples, the semi-supervised weight. The check must
  fail under each.

Usage::

    python tests/calibrate_regression.py                    # every variant, a table
    python tests/calibrate_regression.py --record tests/data/regression_mnist.json
    python tests/calibrate_regression.py --variants Prescott,adam_beta1_0.9

``--record`` stores the table (as ``measurements.calibration``) in the reference file,
beside the numbers, so the margins stay visible. ``tests/test_regression_calibration.py``
runs a few variants of each kind in the test suite.
"""
import argparse
import concurrent.futures
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "data", "regression_mnist.json")

# OpenBLAS kernels (DYNAMIC_ARCH names) and the CPU flags each needs. Names that OpenBLAS
# maps to one of these (Penryn -> Core2, Atom -> Nehalem, ...) are left out. The
# Bulldozer family's kernels use AMD's FMA4, which Zen dropped (SIGILL there).
KERNELS = {
    "Prescott": (), "Core2": (), "Nehalem": (), "Barcelona": ("sse4a",),
    "Sandybridge": ("avx",), "Bulldozer": ("avx", "fma4"), "Piledriver": ("avx", "fma4"),
    "Steamroller": ("avx", "fma4"), "Excavator": ("avx2", "fma4"),
    "Haswell": ("avx2", "fma"), "Zen": ("avx2", "fma"),
    "SkylakeX": ("avx512f", "avx512bw", "avx512dq", "avx512vl"),
    "Cooperlake": ("avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_bf16"),
}


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def runnable_kernels():
    """The OpenBLAS kernels this CPU can execute (none off x86-64)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return []
    flags = cpu_flags()
    return [k for k, need in KERNELS.items() if set(need) <= flags]


# ---------------------------------------------------------------------------- bugs
# Each planted bug: (description, function applying it in the child, extra train args
# per model, extra evaluation args).

def _adam_beta1():
    from stick_breaking_dgms import optimizers
    defaults = list(optimizers.adam.__defaults__)
    defaults[1] = 0.9
    optimizers.adam.__defaults__ = tuple(defaults)


def _gauss_kl_twice():
    from stick_breaking_dgms.families import gaussian
    original = gaussian.gaussian_kl_expr
    gaussian.gaussian_kl_expr = lambda mu, log_sigma: 2 * original(mu, log_sigma)


def _importance_u_clipped():
    from stick_breaking_dgms.families import base, kumaraswamy
    original = kumaraswamy.draw_uniform

    def clipped(rng, size, uniform=None):  # the exact posterior's u, squeezed into (0.01, 0.99)
        if uniform is None:
            return 0.01 + 0.98 * base.open_uniform(rng, size)
        return original(rng, size, uniform)
    kumaraswamy.draw_uniform = clipped


def _nothing():
    pass


SB = ("sb_vae", "sb_ssdgm")
BUGS = {
    "adam_beta1_0.9": ("Adam's beta1 0.9 instead of 0.95 (every model)", _adam_beta1, {}, []),
    "kl_series_1_term": ("the Kumaraswamy KL series cut at one term instead of ten",
                         _nothing, {m: ["--kl-taylor-terms", "1"] for m in SB}, []),
    "gauss_kl_twice": ("the Gaussian KL without its factor 1/2 (Gauss-VAE)",
                       _gauss_kl_twice, {}, []),
    "importance_u_0.01_0.99": ("importance draws u from U(0.01, 0.99), scored with the plain "
                               "Kumaraswamy density (evaluation only)",
                               _importance_u_clipped, {}, []),
    "samples_10": ("S = 10 importance samples instead of 100 (evaluation only)",
                   _nothing, {}, ["--samples", "10"]),
    "supervised_weight_0.5": ("the SB-DGM's supervised weight 0.5 instead of 0.375",
                              _nothing, {"sb_ssdgm": ["--supervised-weight", "0.5"]}, []),
}


def machine_variants():
    """{name: (description, environment overrides, extra train args)}."""
    out = {}
    for k in runnable_kernels():
        out[k] = (f"OpenBLAS kernel {k}", {"OPENBLAS_CORETYPE": k}, [])
    if platform.machine() in ("x86_64", "AMD64"):
        from stick_breaking_dgms.backend import FLAGS_VARIABLE
        flags = os.environ.get(FLAGS_VARIABLE, "")
        out["march_x86-64"] = (
            "C code compiled for baseline x86-64 (SSE2, no FMA) instead of this CPU",
            {FLAGS_VARIABLE: ",".join(filter(None, [flags, "gcc__cxxflags=-march=x86-64"]))},
            [])
        out["numpy_sse"] = (
            "NumPy's AVX, AVX2, FMA and AVX-512 code paths switched off (NPY_DISABLE_CPU_FEATURES)",
            {"NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX "
                                         "AVX512_CLX AVX512_CNL AVX512_ICL AVX2 FMA3 F16C AVX"},
            [])
    out["blas_threads_2"] = ("two BLAS threads in training and evaluation", {},
                             ["--blas-threads", "2"])
    return out


# ---------------------------------------------------------------------------- child

def child(name, out, workdir, data_dir):
    """Run the regression recipe with variant ``name`` applied; write its numbers."""
    from stick_breaking_dgms.evaluation import regression
    train_extra, eval_extra = {}, []
    if name in BUGS:
        _, apply, train_extra, eval_extra = BUGS[name]
        apply()
    elif name != "baseline":
        _, _, extra = machine_variants()[name]
        train_extra = {m: extra for m in regression.TRAIN}
        eval_extra = extra
    # the figures feed no compared number and cost a third of the evaluation
    _, metrics = regression.run(workdir, data_dir, train_extra=train_extra,
                                evaluate_extra=list(eval_extra) + ["--no-figures"])
    with open(out, "w") as f:
        json.dump({k: v for k, (v, _) in metrics.items()}, f, indent=1)


def run_variant(name, data_dir, log_dir, work_root=None):
    """Run one variant in a fresh process; return {number: value}. Its runs and report
    go in a folder under ``work_root`` (the system's temporary folder by default),
    removed at the end; the test suite passes its own temporary folder, so that a run
    killed midway leaves nothing behind."""
    env = dict(os.environ)
    if name in machine_variants():
        env.update(machine_variants()[name][1])
    work = tempfile.mkdtemp(prefix=f"sbdgm_calibration_{name}_", dir=work_root)
    try:
        out = os.path.join(work, "numbers.json")
        log = os.path.join(log_dir, f"{name}.log")
        with open(log, "w") as f:
            code = subprocess.call(
                [sys.executable, os.path.abspath(__file__), "--child", name, "--out", out,
                 "--workdir", os.path.join(work, "run"), "--data-dir", data_dir],
                stdout=f, stderr=subprocess.STDOUT, env=env)
        if code != 0:
            with open(log) as f:
                tail = "".join(f.readlines()[-20:])
            raise RuntimeError(f"variant {name} exited with {code} (log {log}):\n{tail}")
        with open(out) as f:
            return json.load(f)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def verdict(name, numbers, reference):
    """(passes, [names out of tolerance]) of the check on ``numbers``."""
    from stick_breaking_dgms.evaluation import regression
    measured = {k: (v, None) for k, v in numbers.items()}
    failed = [row[0] for row in regression.compare(measured, reference) if not row[-1]]
    return not failed, failed


def table(results, reference):
    """Markdown: one row per compared number, one column per variant (delta from the
    reference), then the tolerance and the margins."""
    metrics = sorted(reference["metrics"])
    machine = [n for n in results if n not in BUGS]
    bugs = [n for n in results if n in BUGS]
    head = ["number", "reference", "tol"] + machine + bugs
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in metrics:
        ref = reference["metrics"][m]
        row = [m, f"{ref['value']:g}", f"{ref['tolerance']:g}"]
        for n in machine + bugs:
            v = results[n].get(m)
            row.append("—" if v is None else f"{v - ref['value']:+.2g}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def summary(results, reference):
    """{variant: {"kind", "passes", "out_of_tolerance", "delta"}} for the reference file."""
    out = {}
    variants = machine_variants()
    for name, numbers in results.items():
        ok, failed = verdict(name, numbers, reference)
        kind = "bug" if name in BUGS else "machine"
        desc = BUGS[name][0] if name in BUGS else (variants[name][0] if name in variants
                                                   else "this machine as it is")
        delta = {m: _sig(numbers[m] - reference["metrics"][m]["value"])
                 for m in sorted(reference["metrics"]) if m in numbers}
        out[name] = {"kind": kind, "change": desc, "passes": ok, "out_of_tolerance": failed,
                     "delta": delta}
    return out


def _sig(x):
    """``x`` to three significant digits (a drift of 1e-13 stays visible)."""
    return float(f"{x:.3g}")


def margins(summ, reference):
    """Per number: largest machine drift, smallest shift of a bug that moves it beyond
    its tolerance, and the tolerance."""
    out = {}
    for m, ref in sorted(reference["metrics"].items()):
        drift = max((abs(s["delta"].get(m, 0.0)) for s in summ.values()
                     if s["kind"] == "machine"), default=0.0)
        caught = [abs(s["delta"][m]) for s in summ.values()
                  if s["kind"] == "bug" and m in s["out_of_tolerance"]]
        out[m] = {"tolerance": ref["tolerance"], "max_machine_drift": _sig(drift),
                  "smallest_caught_bug_shift": _sig(min(caught)) if caught else None}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", default="all",
                   help="comma-separated names (default: every machine variant and bug)")
    p.add_argument("--record", metavar="JSON",
                   help="store the calibration in this reference file")
    p.add_argument("--reference", default=REFERENCE)
    p.add_argument("--data-dir", default="./datasets")
    p.add_argument("--log-dir", default=None, help="keep each variant's log here")
    p.add_argument("--jobs", type=int, default=1, help="variants run at once (default 1)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    if opts.child:
        child(opts.child, opts.out, opts.workdir, opts.data_dir)
        return 0
    known = ["baseline"] + list(machine_variants()) + list(BUGS)
    names = known if opts.variants == "all" else opts.variants.split(",")
    unknown = [n for n in names if n not in known]
    if unknown:
        p.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(known)}")
    with open(opts.reference) as f:
        reference = json.load(f)
    log_dir = opts.log_dir or tempfile.mkdtemp(prefix="sbdgm_calibration_logs_")
    os.makedirs(log_dir, exist_ok=True)
    results, errors = {}, {}
    # Each variant is one process with one BLAS thread: --jobs 2 uses both cores of a
    # two-core machine (the numbers do not depend on it; see the 'blas_threads_2' row).
    with concurrent.futures.ThreadPoolExecutor(opts.jobs) as pool:
        futures = {pool.submit(run_variant, n, opts.data_dir, log_dir): n for n in names}
        for future in concurrent.futures.as_completed(futures):
            name = futures[future]
            try:
                results[name] = future.result()
            except RuntimeError as e:  # reported, and the others go on
                errors[name] = str(e)
                print(f"{name}: did not run: {e}", flush=True)
                continue
            ok, failed = verdict(name, results[name], reference)
            print(f"{name}: check {'passes' if ok else 'fails'}"
                  + (f" ({len(failed)} numbers out of tolerance)" if failed else ""), flush=True)
    results = {n: results[n] for n in names if n in results}
    print(table(results, reference))
    summ = summary(results, reference)
    wrong = [n for n, s in summ.items() if s["passes"] != (s["kind"] == "machine")]
    if errors:
        print(f"calibration FAILED: {', '.join(errors)} did not run; nothing recorded")
        return 1
    if opts.record:
        from stick_breaking_dgms.fileio import write_text
        reference.setdefault("measurements", {})["calibration"] = {
            "how": "python tests/calibrate_regression.py --record (each variant trained and "
                   "evaluated in its own process; delta = variant - reference)",
            "machine": f"{platform.node()}, {platform.processor() or platform.machine()}, "
                       f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}",
            "variants": summ, "margins": margins(summ, reference)}
        write_text(opts.record, json.dumps(reference, indent=1) + "\n")
        print(f"recorded the calibration in {opts.record}")
    if wrong:
        print("calibration FAILED: " + ", ".join(
            f"{n} ({'passes' if summ[n]['passes'] else 'fails'})" for n in wrong))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
