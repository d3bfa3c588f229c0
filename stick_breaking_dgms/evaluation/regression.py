"""The regression check: a short seeded MNIST run, evaluated, against a recorded reference.

The test suite (``tests/test_reproduce.py``) trains an SB-VAE and a Gauss-VAE for three
epochs and an SB-DGM for one (one hidden layer of 100 units, learning rate 0.01 so a
few epochs learn something, seed 1234, one BLAS thread, **float64**), runs the
``reproduce`` command on them (the first 500 test digits, S = 100, evaluation seed 1234)
and compares the numbers with ``tests/data/regression_mnist.json``.

Why float64: at this learning rate the training trajectory is chaotic. In float32 a
rounding-level difference (another CPU's BLAS kernel, another compiler target) grows
over the 1,350 steps into differences of one or two nats and several kNN points, more
than the small bugs the check exists to catch. In float64 the same differences start
nine orders of magnitude smaller and stay invisible, so the tolerances can be tight.
``tests/calibrate_regression.py`` measures both sides: the drift under every OpenBLAS
kernel this CPU can run (and other machine differences) and the shift of planted bugs;
the table is stored in the reference file (``measurements.calibration``).

Re-record the reference (after a deliberate change of the numbers) with::

    python -m stick_breaking_dgms.evaluation.regression --record tests/data/regression_mnist.json
    python tests/calibrate_regression.py --record tests/data/regression_mnist.json

and check a checkout against it without pytest with ``--check``. The tolerances are
stored in the reference with their justification (:data:`TOLERANCES`).
"""
import argparse
import datetime
import json
import math
import os
import platform
import shutil
import sys
import tempfile

SEED = 1234
COMMON_TRAIN = ["--hidden-size", "100", "--learning-rate", "0.01", "--blas-threads", "1",
                "--floatX", "float64", "--progress", "never", "--seed", str(SEED)]
TRAIN = {
    "sb_vae": COMMON_TRAIN + ["--max-epoch", "3"],
    "gauss_vae": COMMON_TRAIN + ["--max-epoch", "3"],
    "sb_ssdgm": COMMON_TRAIN + ["--max-epoch", "1", "--label-drop-percentage", "0.9"],
}
EVALUATE = ["--test-subset", "500", "--samples", "100", "--seed", str(SEED),
            "--blas-threads", "1", "--knn-draws", "1", "--knn-code-draws", "1",
            "--progress", "never"]

# Absolute tolerances per kind of number, set from the calibration
# (tests/calibrate_regression.py; its table is in the reference file under
# 'measurements.calibration'): far above the drift of every machine variant (OpenBLAS
# kernels, compiler target, NumPy's SIMD paths, BLAS threads), below the shift of every
# planted bug on at least one number.
TOLERANCES = {
    "nll": 0.1,          # nats: IS -log p(x) and the negative MC ELBO
    "knn": 1.0,          # percentage points: kNN error on codes (5 of 500 test digits)
    "active_dims": 0.1,  # sticks: mean active dimensions
    "semisup": 0.5,      # percentage points: SB-DGM test error after one epoch
    "exact": 1e-9,       # numbers that do not depend on training (pixel kNN): exact
}
JUSTIFICATION = (
    "Training and evaluation are deterministic for a fixed seed and one BLAS thread, so on "
    "one machine the numbers repeat exactly. Across machines (other BLAS kernels, other "
    "vector instructions, another compiler target) the float32 trajectories of this short, "
    "fast recipe drift apart by up to two nats; the check therefore trains in float64, where "
    "the measured drift of every machine variant is orders of magnitude below these "
    "tolerances, and every planted bug moves at least one number beyond them "
    "('measurements.calibration', made by tests/calibrate_regression.py). Pixel kNN does not "
    "depend on training and must match exactly.")


def train(directory, data_dir="./datasets", models=tuple(TRAIN), extra=None):
    """Train the regression runs into ``directory``; return their best-parameters files.

    ``extra`` maps a model to more training arguments (the calibration's variants)."""
    from .. import cli
    from .loading import find_checkpoints
    for model in models:
        code = cli.main(model, TRAIN[model] + list((extra or {}).get(model, ()))
                        + ["--experiment-dir", directory, "--data-dir", data_dir])
        if code != 0:
            raise RuntimeError(f"regression training of {model} exited with {code}")
    return find_checkpoints([directory])


def evaluate(paths, out, data_dir="./datasets", extra=()):
    """Run ``reproduce`` on the regression runs; return the report folder."""
    from .. import reproduce
    code = reproduce.main(list(paths) + ["--out", out, "--data-dir", data_dir] + EVALUATE
                          + list(extra))
    if code != 0:
        raise RuntimeError(f"reproduce exited with {code}")
    return out


def _by_paper_model(models):
    """``{paper's model key: entry}`` of a results table: a run trained with another KL
    (``sb_vae_kl_1_terms``) stands for its model, so that a planted change of the KL is
    judged on its numbers, not on their absence."""
    from ..published import split_variant
    out = dict(models)
    for key, entry in models.items():
        out.setdefault(split_variant(key)[0], entry)
    return out


def metrics_from_results(results):
    """The compared numbers, flat: {name: (value, kind)}."""
    out = {}
    results = dict(results)
    for table in ("likelihood", "knn", "active_dimensions", "semisup"):
        results[table] = {d: _by_paper_model(m) for d, m in results[table].items()}
    lik = results["likelihood"].get("mnist", {})
    for model in ("sb_vae", "gauss_vae"):
        if model in lik:
            out[f"{model}/is_nll"] = (float(lik[model]["mean_nll"]), "nll")
            out[f"{model}/mc_neg_elbo"] = (-float(lik[model]["mean_elbo"]), "nll")
    knn = results["knn"].get("mnist", {})
    for model in ("sb_vae", "gauss_vae"):
        for codes in ("sampled", "mean"):
            res = knn.get(model, {}).get(codes)
            if res:
                for k, v in res["errors"].items():
                    out[f"{model}/knn_{codes}_k{k}"] = (100 * float(v), "knn")
    if "raw_pixels" in knn:
        for k, v in knn["raw_pixels"]["pixels"]["errors"].items():
            out[f"raw_pixels/knn_k{k}"] = (100 * float(v), "exact")
    usage = results["active_dimensions"].get("mnist", {}).get("sb_vae")
    if usage:
        out["sb_vae/active_dims_mean_code"] = (float(usage["mean"]["mean"]), "active_dims")
        out["sb_vae/active_dims_sampled"] = (float(usage["sampled"]["mean"]), "active_dims")
    ss = results["semisup"].get("mnist", {}).get("sb_ssdgm", {}).get("10")
    if ss:
        out["sb_ssdgm/error_10"] = (100 * float(ss["mean"]), "semisup")
    base = results["semisup_knn_baseline"].get("mnist", {}).get("10")
    if base:
        out["knn_pixels_k5/error_10"] = (100 * float(base["mean"]), "exact")
    return out


def compare(measured, reference):
    """Rows (name, measured, expected, tolerance, ok) for every reference number."""
    rows = []
    for name, ref in reference["metrics"].items():
        expected, tol = float(ref["value"]), float(ref["tolerance"])
        value = measured.get(name, (None, None))[0]
        ok = value is not None and math.isfinite(value) and abs(value - expected) <= tol
        rows.append((name, value, expected, tol, ok))
    return rows


def run(workdir, data_dir="./datasets", train_extra=None, evaluate_extra=()):
    """Train and evaluate in ``workdir``; return (report folder, {name: (value, kind)})."""
    paths = train(os.path.join(workdir, "runs"), data_dir, extra=train_extra)
    report = evaluate(paths, os.path.join(workdir, "report"), data_dir, evaluate_extra)
    with open(os.path.join(report, "results.json")) as f:
        results = json.load(f)
    return report, metrics_from_results(results)


def record(path, metrics, extra=None):
    from ..fileio import write_text
    doc = {
        "description": "Evaluation of the short seeded MNIST regression runs "
                       "(stick_breaking_dgms.evaluation.regression); compared by "
                       "tests/test_reproduce.py",
        "recorded": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.node()}, {platform.machine()}, {os.cpu_count()} cores",
        "train": TRAIN, "evaluate": EVALUATE, "tolerances": TOLERANCES,
        "justification": JUSTIFICATION,
        # full precision: the calibration's drifts are far below any rounding we would pick
        "metrics": {name: {"value": float(value), "tolerance": TOLERANCES[kind],
                           "kind": kind}
                    for name, (value, kind) in sorted(metrics.items())},
    }
    if extra:
        doc.update(extra)
    write_text(path, json.dumps(doc, indent=1) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m stick_breaking_dgms.evaluation.regression",
                                description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", metavar="JSON", help="write the reference file")
    mode.add_argument("--check", metavar="JSON", help="compare with the reference file")
    p.add_argument("--workdir", default=None, help="where to train (default: a temporary "
                                                   "folder)")
    p.add_argument("--data-dir", default="./datasets")
    opts = p.parse_args(argv)
    workdir = opts.workdir or tempfile.mkdtemp(prefix="sbdgm_regression_")
    try:
        _, metrics = run(workdir, opts.data_dir)
    finally:
        if not opts.workdir:  # a temporary folder of about 20 MB
            shutil.rmtree(workdir, ignore_errors=True)
    if opts.record:
        extra = {}
        if os.path.exists(opts.record):  # keep the measurements behind the tolerances
            with open(opts.record) as f:
                old = json.load(f)
            if old.get("train") == TRAIN and old.get("evaluate") == EVALUATE:
                extra = {k: old[k] for k in ("measurements",) if k in old}
        record(opts.record, metrics, extra)
        print(f"recorded {len(metrics)} numbers in {opts.record}")
        if not extra:
            print("the recipe changed: measure the tolerances' margins again with "
                  "python tests/calibrate_regression.py --record " + opts.record)
        return 0
    with open(opts.check) as f:
        reference = json.load(f)
    rows = compare(metrics, reference)
    for name, value, expected, tol, ok in rows:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {value} (reference {expected} +- {tol})")
    return 0 if all(r[-1] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
