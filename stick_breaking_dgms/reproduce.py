"""Put our numbers beside the published ones: ``python -m stick_breaking_dgms.reproduce``.

Given best-parameters files (``*_params_*.h5``, or folders holding them), or training
them first with the paper's settings (``--train``), this computes the paper's tables

* ``likelihood``: test -log p(x) by importance sampling (S = ``--samples``, 100); with
  ``--protocols``, the same checkpoints under the author's later protocol, the training
  sampler's (biased) draws and large S, side by side
  (:mod:`.evaluation.likelihood`, "Evaluation protocols");
* ``knn``: kNN test error on latent codes (k = 3, 5, 10; sampled codes as the paper,
  posterior-mean codes besides) and on raw pixels, and its mean and spread over
  ``--knn-code-draws`` independent draws of the sampled codes (training sampler and
  exact posterior); the SB-VAE's active dimensions;
* ``semisup``: the semi-supervised models' test error (argmax q(y | x)) and the kNN
  (k = 5) pixel baseline with the same fraction of labels;

and writes a report folder (a new one; an existing folder gets a counter, never
overwritten). The report is written into a hidden folder beside it and moved into place
once complete, so a run that fails or is interrupted leaves no report folder behind:

* ``report.md``: measured vs published, the difference and a verdict per cell against
  stated tolerances, the diagnostics, the timings, the command, the date, the machine;
* ``results.json``: every number;
* ``per_example.npz``: per test example, the log p(x) estimates and their Monte Carlo
  errors, the active dimensions, the predicted labels;
* ``figures/*.png`` and a PDF beside each: learning curves, latent usage (the paper's
  Figure 2), 2-D embeddings of the codes, kNN error against k, semi-supervised error
  against the label fraction, samples from the prior and reconstructions (needs
  matplotlib: ``pip install -e .[figures]``).

Example (the full MNIST check)::

    python -m stick_breaking_dgms.reproduce runs/sbvae_full runs/gaussvae_full \\
        runs/sbdgm_10 --out results/mnist_full
"""
import argparse
import datetime
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from . import __version__
from .argtypes import blas_threads, neighbours, nonnegative_int, positive_float, positive_int
from .config import MODELS, derived_seeds
from .fileio import write_text
from .report import VAE_MODELS, build_cells, format_number, render_report

TABLES = ("likelihood", "knn", "semisup")
SEMI_MODELS = ("sb_ssdgm", "gauss_ssdgm")
ALL_MODELS = VAE_MODELS + SEMI_MODELS
LABEL_PERCENTS = (10, 5, 1)
DEFAULT_TOLERANCE_NATS = 1.0
DEFAULT_TOLERANCE_PP = 1.0

# Settings of the paper beyond the scripts' defaults, per data set, for --train.
# (the paper: semi-supervised networks are 4 x 500 with the last three residual on
# MNIST+rot and SVHN, alpha0 = 8 on SVHN; everything else is the scripts' defaults.)
_DEEP = ["--nb-hidden-layers", "4", "--hidden-type", "residual", "--skip", "3"]
PAPER_SETTINGS = {
    ("sb_ssdgm", "mnist_plus_rot"): _DEEP,
    ("gauss_ssdgm", "mnist_plus_rot"): _DEEP,
    ("sb_ssdgm", "svhn_pca"): _DEEP + ["--alpha0", "8"],
    ("gauss_ssdgm", "svhn_pca"): _DEEP,
}


class ReproduceError(Exception):
    """Bad input to the reproduce command (message for the user)."""


# -- command line -----------------------------------------------------------------------

def program_name():
    """How the user called the program: ``sbdgm-reproduce`` or ``python -m ...``."""
    called = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return called if called.startswith("sbdgm-") else "python -m stick_breaking_dgms.reproduce"


def build_parser():
    p = argparse.ArgumentParser(
        prog=program_name(),
        description="Evaluate trained SB-VAE / Gauss-VAE / SB-DGM / Gauss-DGM runs as the paper "
                    "does and write a report of measured vs published numbers.",
        epilog="The model, data set and split of each file come from its stored arguments. "
               "Example: python -m stick_breaking_dgms.reproduce runs/sbvae_full "
               "runs/gaussvae_full --out results/mnist_full")
    from .cli import add_version
    add_version(p)
    p.add_argument("checkpoints", nargs="*", metavar="PATH",
                   help="best-parameters files (*_params_*.h5) or folders holding them")
    p.add_argument("--table", nargs="+", choices=TABLES, default=list(TABLES),
                   help="tables to compute. Default: all")
    p.add_argument("--out", default="reports/reproduce",
                   help="report folder; if it exists, _1, _2, ... is appended. "
                        "Default: %(default)s")
    g = p.add_argument_group("evaluation")
    g.add_argument("--samples", type=positive_int, default=100,
                   help="importance samples per test example. Default: %(default)s")
    g.add_argument("--seed", type=nonnegative_int, default=1234,
                   help="seed of the evaluation's random draws. Default: %(default)s")
    g.add_argument("--test-subset", type=positive_int, default=None, metavar="N",
                   help="evaluate on the first N test examples only (quick checks)")
    g.add_argument("--knn-k", type=neighbours, nargs="+", default=[3, 5, 10],
                   help="k of the kNN tables. Default: 3 5 10")
    g.add_argument("--protocols", nargs="+", default=["ours"], metavar="PROTOCOL",
                   choices=["ours", "author", "training-sampler", "large-s"],
                   help="likelihood protocols reported side by side for the same checkpoints "
                        "(ours: S = --samples, exact posterior; author: S = 50, u in "
                        "(1e-8, 1 - 1e-8), non-finite sample sweeps dropped; "
                        "training-sampler: the training sampler's draws with the plain "
                        "density, biased; large-s: S = 1,000 and 5,000 on "
                        "--large-s-subset examples and S = 1,000 on all, expensive). "
                        "ours always runs (it is the table's number). Default: ours")
    g.add_argument("--large-s-subset", type=positive_int, default=1000, metavar="N",
                   help="test examples of the large-s protocol's S = 5,000 and 1,000 rows "
                        "(the first N). Default: %(default)s")
    g.add_argument("--knn-code-draws", type=positive_int, default=10, metavar="D",
                   help="independent draws of the sampled codes for the kNN mean and spread, "
                        "with the training sampler and with the exact posterior (draw 1 of "
                        "the training sampler is the 'sampled codes' cell). "
                        "Default: %(default)s")
    g.add_argument("--knn-draws", type=positive_int, default=3,
                   help="label draws of the semi-supervised kNN (k = 5) pixel baseline "
                        "(mean +- std). Default: %(default)s")
    g.add_argument("--data-dir", default="./datasets",
                   help="where data sets are looked for. Default: %(default)s")
    g.add_argument("--rows-per-batch", type=positive_int, default=4000,
                   help="decoder rows per importance-sampling call. Default: %(default)s")
    g.add_argument("--tolerance-nats", type=positive_float, default=DEFAULT_TOLERANCE_NATS,
                   help="|measured - published| -log p(x) counted as agreement. "
                        "Default: %(default)s")
    g.add_argument("--tolerance-pp", type=positive_float, default=DEFAULT_TOLERANCE_PP,
                   help="|measured - published| error, in percentage points, counted as "
                        "agreement (at least twice the published +- where there is one). "
                        "Default: %(default)s")
    g.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    g.add_argument("--blas-threads", default="auto", type=blas_threads,
                   help="OpenBLAS threads of the compiled graphs (auto or a number). "
                        "Default: %(default)s")
    g.add_argument("--progress", default="auto", choices=["auto", "always", "never"],
                   help="progress lines on stderr for long steps (auto and always: a live "
                        "line on a terminal, a line per tenth of the work in a log; never: "
                        "none), the same choices as the training scripts'. "
                        "Default: %(default)s")
    g.add_argument("--mode", default="C", choices=["C", "JAX"],
                   help="C: the C virtual machine with the fused C kernels; JAX: the JAX linker "
                        "(PyTensor only, pip install jax; a GPU when JAX sees one). "
                        "Default: %(default)s")
    g = p.add_argument_group("training first (optional)")
    g.add_argument("--train", nargs="+", choices=ALL_MODELS, default=[], metavar="MODEL",
                   help="train these models with the paper's settings before evaluating "
                        f"({', '.join(ALL_MODELS)})")
    g.add_argument("--dataset", default="mnist", help="data set for --train. Default: mnist")
    g.add_argument("--max-epoch", type=positive_int, default=None, metavar="N",
                   help="maximum epochs of each --train run (required with --train)")
    g.add_argument("--labels", type=int, nargs="+", default=list(LABEL_PERCENTS),
                   choices=LABEL_PERCENTS, metavar="PERCENT",
                   help="label percentages of semi-supervised --train runs. Default: 10 5 1")
    g.add_argument("--experiment-dir", default="./experiments",
                   help="where --train runs write. Default: %(default)s")
    g.add_argument("--train-args", default="", metavar="'ARGS'",
                   help="extra flags for the training scripts, e.g. '--hidden-size 100'")
    return p


# -- small helpers ----------------------------------------------------------------------

def _log(*parts):
    print(*parts, flush=True)


def jsonable(obj):
    """Plain Python for json.dumps: numpy scalars and arrays, non-finite floats as strings."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        if math.isfinite(v):
            return v
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return obj


def as_float(v):
    """Inverse of :func:`jsonable` for one number (None stays None)."""
    if v is None:
        return None
    return float(v)


def reserve_folder(path):
    """Create ``path``, or ``path_1``, ``path_2``, ... if it exists; return the one created."""
    base = path.rstrip(os.sep) or path
    parent = os.path.dirname(os.path.abspath(base))
    os.makedirs(parent, exist_ok=True)
    candidate, counter = base, 0
    while True:
        try:
            os.mkdir(candidate)
            return candidate
        except FileExistsError:
            counter += 1
            candidate = f"{base}_{counter}"


def staging_folder(path):
    """A new hidden folder beside ``path`` where the report is written until it is complete
    (``.<name>.<random>.partial``), so that a failed run leaves no report folder behind."""
    base = path.rstrip(os.sep) or path
    parent = os.path.dirname(os.path.abspath(base))
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix="." + os.path.basename(base) + ".", suffix=".partial",
                            dir=parent)


def publish_folder(staging, path):
    """Move the complete report from ``staging`` to ``path`` (``path_1``, ... if it exists);
    return the folder it went to."""
    final = reserve_folder(path)
    os.replace(staging, final)  # a folder renamed onto the empty folder just reserved
    return final


def out_folder_problem(path):
    """Why no report folder can be made at ``path`` (its nearest existing parent not a
    folder, or not writable), or None; checked before any work."""
    parent = os.path.dirname(os.path.abspath(path.rstrip(os.sep) or path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"{path}: {parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{path}: cannot write into {parent} (permission denied)"
    return None


def machine_description():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "unknown"
    return {"node": platform.node(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "python": platform.python_version(),
            "load_average_at_start": load}


def git_commit():
    """The checkout's commit and whether it has local changes (read-only), or None."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=10)
        return {"commit": commit.stdout.strip(),
                "local_changes": bool(dirty.stdout.strip()) if dirty.returncode == 0 else None}
    except (OSError, subprocess.SubprocessError):
        return None


def label_percent(config):
    """Percentage of labelled training examples of a semi-supervised run's configuration."""
    return int(round(100 * (1.0 - float(config.training.label_drop_percentage))))


def label_seed_of(seed):
    """The label-split seed the training scripts derive from ``--seed``."""
    return derived_seeds(seed)[1]


# -- training first -----------------------------------------------------------------------

def train_runs(opts):
    """Run the training scripts for ``--train``; return the best-parameters files made."""
    from . import cli  # the training scripts' command lines, with --train-args
    from .evaluation.loading import find_checkpoints
    made = []
    for model in opts.train:
        spec = MODELS[model]
        variants = ([["--label-drop-percentage", f"{1 - p / 100:.2f}"] for p in opts.labels]
                    if spec.semi else [[]])
        for variant in variants:
            argv = (["--dataset", opts.dataset, "--data-dir", opts.data_dir,
                     "--max-epoch", str(opts.max_epoch), "--experiment-dir", opts.experiment_dir,
                     "--progress", opts.progress]
                    + PAPER_SETTINGS.get((model, opts.dataset), []) + variant
                    + shlex.split(opts.train_args))
            _log(f"== training {model}: {' '.join(shlex.quote(a) for a in argv)}")
            started = time.time()
            code = cli.main(model, argv)
            params = [p for p in _params_files(opts.experiment_dir, spec.prefix)
                      if os.path.getmtime(p) >= started - 1]
            if not params:
                raise ReproduceError(f"training {model} (exit code {code}) left no "
                                     f"best-parameters file in {opts.experiment_dir}")
            newest = max(params, key=os.path.getmtime)
            if code != 0:
                _log(f"warning: training {model} ended with exit code {code}; evaluating its "
                     f"best parameters {newest}")
            made.extend(find_checkpoints([newest]))
    return made


def _params_files(directory, prefix):
    if not os.path.isdir(directory):
        return []
    return [os.path.join(directory, f) for f in os.listdir(directory)
            if f.startswith(prefix + "_params_") and f.endswith(".h5")]


# -- evaluation --------------------------------------------------------------------------

class Evaluation:
    """Loads models and data once and fills ``self.results`` step by step."""

    def __init__(self, opts, out_dir):
        self.opts, self.out_dir = opts, out_dir
        self.results = {"checkpoints": [], "likelihood": {}, "knn": {}, "active_dimensions": {},
                        "semisup": {}, "semisup_knn_baseline": {}, "timings": {},
                        "figures": {}, "notes": [], "likelihood_protocols": {},
                        "knn_code_draws": {}}
        self._data = {}
        self.models = []
        self.arrays = {}  # per-example numbers, saved to per_example.npz

    # data and models
    def data(self, name, seed):
        key = (name, int(seed))
        if key not in self._data:
            from .datasets import load_dataset
            started = time.time()
            data = load_dataset(name, data_dir=self.opts.data_dir, seed=int(seed))
            self._data[key] = data
            _log(f"data: {data.describe()} (seed {seed}, {time.time() - started:.1f}s)")
        return self._data[key]

    def test_split(self, data):
        x, y = data.test_x, data.test_y
        if self.opts.test_subset is not None:
            x, y = x[:self.opts.test_subset], (None if y is None else y[:self.opts.test_subset])
        return x, y

    def load(self, paths):
        from .evaluation.loading import load_model, run_status
        seen = {}
        for path in paths:
            lm = load_model(path)
            net = lm.config.network
            info = {"path": os.path.abspath(path), "model": lm.model, "name": lm.name,
                    "dataset": lm.dataset, "seed": lm.config.seed,
                    "best_epoch": lm.best_epoch,
                    "best_valid_score": lm.best_score,
                    "latent_size": lm.latent_size, "floatX": lm.floatX,
                    "hidden": f"{net.nb_hidden_layers} x {net.hidden_size} "
                              f"{net.hidden_type} {net.activation_type}"}
            if lm.semi:
                info["labels_percent"] = label_percent(lm.config)
            info["posterior"] = lm.family.name
            info.update(lm.config.latent.options())
            info["run"] = run_status(path)
            key = (lm.name, lm.dataset) if not lm.semi else None
            if key is not None and key in seen:
                # several seeds of one configuration (a sweep's cell) are averaged; two
                # different configurations for one table row are ambiguous
                other_path, other = seen[key]
                differ = _differ_besides_seed(other, lm.config)
                if differ:
                    raise ReproduceError(f"two {lm.name} checkpoints for {lm.dataset} that "
                                         f"differ in {', '.join(differ)}: {other_path} and "
                                         f"{path}; give one of them (checkpoints that differ "
                                         f"only in --seed are averaged)")
            if key is not None and key not in seen:
                seen[key] = (path, lm.config)
            lm.info = info
            self.models.append(lm)
            self.results["checkpoints"].append(info)
            status = info["run"].get("status", "unknown")
            _log(f"loaded {lm.name} on {lm.dataset} from {path} (best epoch "
                 f"{info['best_epoch']}, run status {status})")

    def vaes(self):
        return [m for m in self.models if m.model in VAE_MODELS]

    def semis(self):
        return [m for m in self.models if m.model in SEMI_MODELS]

    def save_arrays(self):
        """Per-example numbers (test order, --test-subset applied) in per_example.npz."""
        from .fileio import atomic_path
        if not self.arrays:
            return
        with atomic_path(os.path.join(self.out_dir, "per_example.npz")) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **self.arrays)

    def progress(self, name, total, unit="examples"):
        from .evaluation.progress import StepProgress
        return StepProgress(name, total, unit, mode=self.opts.progress)

    def timed(self, key, seconds):
        self.results["timings"][key] = round(float(seconds), 2)

    # likelihood
    def likelihood(self):
        from .evaluation.likelihood import importance_sampled_log_likelihood, summarize
        for lm in self.vaes():
            data = self.data(lm.dataset, lm.config.seed)
            x, _ = self.test_split(data)
            progress = self.progress(f"importance sampling {lm.name} (S={self.opts.samples})",
                                     len(x))
            per = importance_sampled_log_likelihood(lm, x, samples=self.opts.samples,
                                                    seed=self.opts.seed,
                                                    rows_per_batch=self.opts.rows_per_batch,
                                                    progress=progress)
            progress.finish()
            summary = summarize(per)
            models = self.results["likelihood"].setdefault(lm.dataset, {})
            first = lm.name not in models  # later seeds of the row: per_seed only
            if first:
                for key in ("log_px", "mc_se", "elbo", "ess", "nan_samples") + tuple(
                        per["diagnostic_names"]):
                    self.arrays[f"likelihood/{lm.dataset}/{lm.name}/{key}"] = per[key]
                summary["n_test_total"] = int(len(data.test_x))
                summary["mean_mc_se"] = float(np.nanmean(per["mc_se"]))
                summary["elbo_below_is"] = _elbo_below(summary)
                models[lm.name] = summary
            _add_seed(models[lm.name], lm.config.seed, lm.info["path"],
                      {k: summary[k] for k in ("mean_nll", "se_nll", "median_nll",
                                               "n_outliers", "mean_nll_without_outliers")})
            self.timed(f"likelihood/{lm.dataset}/{lm.name}", per["seconds"])
            _log(f"{lm.name}: -log p(x) = {format_number(summary['mean_nll'])} +- "
                 f"{format_number(summary['se_nll'])} (median {format_number(summary['median_nll'])}, "
                 f"{summary['n_outliers']} outliers, {summary['nan_samples']} NaN samples) in "
                 f"{per['seconds']:.1f}s")
            self._protocols(lm, x, per, first)

    def _protocols(self, lm, x, ours, first):
        """The likelihood protocols of ``--protocols`` on this checkpoint, side by side;
        ``ours`` is the table's own run (``ours``, not recomputed)."""
        from .evaluation.likelihood import evaluate_protocol, protocol_row, protocol_runs
        runs = protocol_runs(set(self.opts.protocols) | {"ours"}, self.opts.samples,
                             self.opts.large_s_subset)
        rows = []
        for run in runs:
            if run.key == "ours":
                per = ours
            else:
                n = len(x) if run.subset is None else min(run.subset, len(x))
                progress = self.progress(f"likelihood protocol {run.key} of {lm.name} "
                                         f"(S={run.samples:,})", n)
                per = evaluate_protocol(lm, x, run, seed=self.opts.seed,
                                        rows_per_batch=self.opts.rows_per_batch,
                                        progress=progress)
                progress.finish()
                self.timed(f"likelihood/{lm.dataset}/{lm.name}/{run.key}", per["seconds"])
                if first:
                    self.arrays[f"likelihood_protocols/{lm.dataset}/{lm.name}/{run.key}/"
                                f"log_px"] = per["log_px"]
            row = protocol_row(per, run, lm.family)
            rows.append(row)
            if run.key != "ours":
                dropped = (f", {row['dropped']} of {run.samples} sweeps dropped"
                           if row["dropped_unit"] == "sweeps" else "")
                _log(f"{lm.name} [{row['label']}]: -log p(x) = "
                     f"{format_number(row['mean_nll'])} (median "
                     f"{format_number(row['median_nll'])}, mean ESS "
                     f"{format_number(row['mean_ess'], 1)}{dropped}) in "
                     f"{row['seconds']:.1f}s")
        self.results["likelihood_protocols"].setdefault(lm.dataset, {}).setdefault(
            lm.name, []).append({"seed": int(lm.config.seed), "path": lm.info["path"],
                                 "rows": rows})

    # knn and active dimensions
    def knn(self):
        from .evaluation.knn import knn_errors
        from .evaluation.latent_usage import (active_dimensions, mean_weight_per_dimension,
                                              summarize_active_dimensions)
        ks = sorted(set(self.opts.knn_k))
        done_pixels = set()
        for lm in self.vaes():
            data = self.data(lm.dataset, lm.config.seed)
            if data.train_y is None:
                self.results["notes"].append(f"{lm.dataset}: no labels, no kNN")
                continue
            x_test, y_test = self.test_split(data)
            if ks[-1] > len(data.train_x):
                raise ReproduceError(f"--knn-k {ks[-1]}: more neighbours than the "
                                     f"{len(data.train_x):,} training examples of "
                                     f"{lm.dataset}")
            rng = np.random.default_rng(self.opts.seed)
            started = time.time()
            progress = self.progress(f"codes of {lm.name}", len(data.train_x) + len(x_test))
            tr_s, tr_m = lm.codes(data.train_x, rng, progress=progress)
            progress.update(len(data.train_x))
            te_s, te_m = lm.codes(x_test, rng)
            progress.update(len(data.train_x) + len(x_test))
            progress.finish()
            self.timed(f"codes/{lm.dataset}/{lm.name}", time.time() - started)
            entry = {}
            for name, tr, te in (("sampled", tr_s, te_s), ("mean", tr_m, te_m)):
                progress = self.progress(f"kNN {lm.name} {name} codes "
                                         f"({len(tr):,} x {len(te):,})", len(te))
                res = knn_errors(tr, data.train_y, te, y_test, ks, progress=progress)
                progress.finish()
                entry[name] = res
                self.timed(f"knn/{lm.dataset}/{lm.name}/{name}", res["seconds"])
            models = self.results["knn"].setdefault(lm.dataset, {})
            first = lm.name not in models  # later seeds of the row: per_seed only
            if first:
                models[lm.name] = entry
            for name, res in entry.items():
                _add_seed(models[lm.name][name], lm.config.seed, lm.info["path"],
                          {"errors": dict(res["errors"])})
            _log(f"{lm.name}: kNN error (sampled codes) "
                 + ", ".join(f"k={k}: {100 * entry['sampled']['errors'][k]:.2f}%" for k in ks))
            self._knn_code_draws(lm, data, x_test, y_test, ks, (tr_s, te_s), entry["mean"])
            if first and lm.construction == "stick-breaking":  # active dimensions: sticks
                usage = {}
                for name, codes in (("mean", te_m), ("sampled", te_s)):
                    counts = active_dimensions(codes)
                    self.arrays[f"active_dimensions/{lm.dataset}/{lm.name}/{name}"] = counts
                    usage[name] = summarize_active_dimensions(counts, y_test)
                    rotated = data.extras.get("test_rotated")
                    if rotated is not None:
                        rotated = np.asarray(rotated)[:len(counts)].astype(bool)
                        usage[name]["rotated"] = float(np.mean(counts[rotated & (counts >= 0)]))
                        usage[name]["upright"] = float(np.mean(counts[~rotated & (counts >= 0)]))
                usage["mean_stick_weight"] = mean_weight_per_dimension(te_m)
                self.results["active_dimensions"].setdefault(lm.dataset, {})[lm.name] = usage
            if lm.dataset not in done_pixels:
                done_pixels.add(lm.dataset)
                progress = self.progress(f"kNN raw pixels ({len(data.train_x):,} x "
                                         f"{len(x_test):,})", len(x_test))
                res = knn_errors(data.train_x, data.train_y, x_test, y_test, ks,
                                 progress=progress)
                progress.finish()
                self.results["knn"][lm.dataset]["raw_pixels"] = {"pixels": res}
                self.timed(f"knn/{lm.dataset}/raw_pixels", res["seconds"])
                _log("raw pixels: kNN error "
                     + ", ".join(f"k={k}: {100 * res['errors'][k]:.2f}%" for k in ks))

    def _knn_code_draws(self, lm, data, x_test, y_test, ks, first_sampled, mean_res):
        """kNN over ``--knn-code-draws`` independent draws of the sampled codes, with the
        training sampler (draw 1: the codes of the 'sampled' cell, the paper's one-draw
        protocol) and with the exact posterior; the posterior-mean codes beside them."""
        from .evaluation.knn import knn_errors_over_draws
        draws = self.opts.knn_code_draws
        started = time.time()
        params_train = lm.posterior_params(data.train_x)
        params_test = lm.posterior_params(x_test)

        def sampled(sampler):
            for d in range(draws):
                if sampler == "training" and d == 0:
                    yield first_sampled
                    continue
                # an independent stream per (sampler, draw), train codes then test codes
                rng = np.random.default_rng([self.opts.seed, 0 if sampler == "training"
                                             else 1, d])
                yield (lm.drawn_codes(params_train, rng, sampler),
                       lm.drawn_codes(params_test, rng, sampler))

        out = {"seed": int(lm.config.seed), "path": lm.info["path"], "draws": draws,
               "one_draw_protocol": "training_sampler draw 1 (the 'sampled codes' cell)"}
        for key, sampler in (("training_sampler", "training"), ("exact_posterior", "exact")):
            progress = self.progress(f"kNN {lm.name} over {draws} draws of the "
                                     f"{key.replace('_', ' ')} codes", draws, unit="draws")
            out[key] = knn_errors_over_draws(sampled(sampler), data.train_y, y_test, ks,
                                             progress=progress.update)
            progress.finish()
        out["posterior_mean"] = {"errors": dict(mean_res["errors"])}
        self.results["knn_code_draws"].setdefault(lm.dataset, {}).setdefault(
            lm.name, []).append(out)
        self.timed(f"knn/{lm.dataset}/{lm.name}/code_draws", time.time() - started)
        for key in ("training_sampler", "exact_posterior"):
            r = out[key]
            _log(f"{lm.name}: kNN error over {draws} draws, {key.replace('_', ' ')} codes: "
                 + ", ".join(f"k={k}: {100 * r['mean'][k]:.2f}"
                             + (f" +- {100 * r['std'][k]:.2f}%" if r["std"][k] is not None
                                else "%") for k in ks))

    # semi-supervised
    def semisup(self):
        runs = {}
        for lm in self.semis():
            data = self.data(lm.dataset, lm.config.seed)
            x_test, y_test = self.test_split(data)
            started = time.time()
            probs = lm.label_probs(x_test)
            pred = np.argmax(probs, axis=1)
            self.arrays[f"semisup/{lm.dataset}/{lm.name}/{lm.info['labels_percent']}/"
                        f"{os.path.basename(lm.path)}/predictions"] = pred
            err = float(np.mean(pred != y_test))
            key = (lm.dataset, lm.name, lm.info["labels_percent"])
            runs.setdefault(key, []).append({"path": lm.info["path"], "error": err,
                                             "n_errors": int(np.sum(pred != y_test)),
                                             "n_test": int(len(y_test)),
                                             "best_epoch": lm.info["best_epoch"],
                                             "training_test_score":
                                                 lm.info["run"].get("test_score")})
            self.timed(f"semisup/{lm.dataset}/{lm.name}/{lm.info['labels_percent']}%/"
                       f"{len(runs[key])}", time.time() - started)
            _log(f"{lm.name} ({lm.info['labels_percent']} % labels): test error "
                 f"{100 * err:.2f}%")
        for (dataset, model, pct), rs in runs.items():
            errs = np.array([r["error"] for r in rs])
            self.results["semisup"].setdefault(dataset, {}).setdefault(model, {})[str(pct)] = {
                "runs": rs, "mean": float(errs.mean()),
                "std": float(errs.std(ddof=1)) if len(errs) > 1 else None, "n_runs": len(rs)}
        # the kNN (k = 5) pixel baseline with the same fraction of labels, over every
        # split the runs were trained on (a run's --seed shuffles the data, as in the
        # original) and knn_draws label draws on each
        seeds = {}
        for m in self.models:
            seeds.setdefault(m.dataset, set()).add(int(m.config.seed))
        for dataset in sorted(seeds):
            started = time.time()
            errs, n_labelled, why = {pct: [] for pct in LABEL_PERCENTS}, {}, {}
            for seed in sorted(seeds[dataset]):
                data = self.data(dataset, seed)
                if data.train_y is None:
                    continue
                for pct in LABEL_PERCENTS:
                    errors, n_labelled[pct], why[pct] = self._pixel_knn_draws(data, seed, pct)
                    errs[pct] += errors
            baseline = {}
            for pct in LABEL_PERCENTS:
                if not errs[pct]:  # a small data set: too few labels at this fraction
                    if why.get(pct):
                        self.results["notes"].append(f"{dataset}: no kNN (k = 5) pixel "
                                                     f"baseline at {pct} % labels ({why[pct]})")
                    continue
                e = np.array(errs[pct])
                baseline[str(pct)] = {"errors": e, "mean": float(e.mean()),
                                      "std": float(e.std(ddof=1)) if len(e) > 1 else None,
                                      "n_labelled": n_labelled[pct], "draws": len(e),
                                      "splits": len(seeds[dataset])}
                _log(f"kNN (k=5) pixels, {pct} % labels: {100 * e.mean():.2f}% "
                     f"({len(seeds[dataset])} split(s), {len(e)} label draws)")
            if baseline:
                self.results["semisup_knn_baseline"][dataset] = baseline
            self.timed(f"semisup/{dataset}/knn_pixels_k5", time.time() - started)

    def _pixel_knn_draws(self, data, seed, pct):
        """kNN (k = 5) pixel errors of ``knn_draws`` label draws of ``pct`` % on the split
        of ``seed``: (errors, labelled examples, why there are none when there are none)."""
        from .evaluation.knn import knn_errors
        from .experiments import LabelSplitError, split_labels
        x_test, y_test = self.test_split(data)
        errors, n, why = [], None, None
        for d in range(self.opts.knn_draws):
            try:
                labelled, _, _, _ = split_labels(len(data.train_x), 1 - pct / 100, 100,
                                                 label_seed_of(seed + d))
            except LabelSplitError as e:
                why = str(e)
                break
            if len(labelled) < 5:
                why = f"{len(labelled)} labelled examples, fewer than k = 5"
                break
            res = knn_errors(data.train_x[labelled], data.train_y[labelled], x_test, y_test,
                             (5,))
            errors.append(res["errors"][5])
            n = int(len(labelled))
        return errors, n, why

    # figures
    def figures(self):
        from . import figures
        from .evaluation.latent_usage import decoder_weight_norms
        from .evaluation.loading import learning_curve
        from .published import dataset_name, model_name
        if not figures.available():
            self.results["figures"] = {"skipped": "matplotlib is not installed: "
                                                  + figures.INSTALL_HINT}
            _log("figures skipped: matplotlib is not installed (" + figures.INSTALL_HINT + ")")
            return
        fig_dir = os.path.join(self.out_dir, "figures")
        os.makedirs(fig_dir, exist_ok=True)
        made = {}
        started = time.time()
        by_dataset = {}
        for lm in self.vaes():
            by_dataset.setdefault(lm.dataset, []).append(lm)
        for dataset, lms in by_dataset.items():
            curves, keys = {}, {}
            for lm in lms:
                curve = learning_curve(lm.path)
                if curve is not None:
                    curves[model_name(lm.name)] = curve
                    keys[model_name(lm.name)] = lm.name
            if curves:
                path = os.path.join(fig_dir, f"learning_curves_{dataset}.png")
                figures.learning_curves(curves, path, dataset_name(dataset), keys=keys)
                made[f"learning_curves_{dataset}"] = path
            panels = []
            for lm in lms:
                usage = self.results["active_dimensions"].get(dataset, {}).get(lm.name, {})
                panels.append({"title": f"{model_name(lm.name)} ({dataset_name(dataset)})",
                               "row_norms": decoder_weight_norms(lm),
                               "mean_weight": usage.get("mean_stick_weight")
                               if lm.construction == "stick-breaking" else None})
                if lm.construction == "stick-breaking" and usage.get("mean_stick_weight") is None:
                    panels[-1]["mean_weight"] = self._mean_stick_weight(lm)
            path = os.path.join(fig_dir, f"latent_usage_{dataset}.png")
            figures.latent_usage(panels, path)
            made[f"latent_usage_{dataset}"] = path
            data = self.data(dataset, lms[0].config.seed)
            x_test, y_test = self.test_split(data)
            for lm in lms if y_test is not None else ():  # the paper's t-SNE panels
                _, codes = lm.codes(x_test[:2000], np.random.default_rng(self.opts.seed))
                path = os.path.join(fig_dir, f"latent_embedding_{lm.name}_{dataset}.png")
                figures.latent_embedding(codes, y_test[:2000], path, f"{model_name(lm.name)} "
                                         f"({dataset_name(dataset)}): posterior-mean codes")
                made[f"latent_embedding_{lm.name}_{dataset}"] = path
            if data.image_shape is None:
                continue
            for lm in lms:
                rng = np.random.default_rng(self.opts.seed)
                prior = _prior_codes(lm, rng, 100)
                images = lm.decode_mean(prior)
                path = os.path.join(fig_dir, f"prior_samples_{lm.name}_{dataset}.png")
                figures.image_grid(images, data.image_shape, path,
                                   f"{model_name(lm.name)}: samples from the prior (means)")
                made[f"prior_samples_{lm.name}_{dataset}"] = path
                x = data.test_x[:30]
                _, mean_codes = lm.codes(x, rng)
                recon = lm.decode_mean(mean_codes)
                path = os.path.join(fig_dir, f"reconstructions_{lm.name}_{dataset}.png")
                figures.reconstructions(x, recon, data.image_shape, path,
                                        f"{model_name(lm.name)}: test digits (odd rows) and "
                                        f"reconstructions from the posterior mean (even rows)")
                made[f"reconstructions_{lm.name}_{dataset}"] = path
        made.update(figures.report_figures(self.results, fig_dir))  # semisup and kNN plots
        self.results["figures"] = {k: os.path.relpath(v, self.out_dir) for k, v in made.items()}
        self.timed("figures", time.time() - started)

    def _mean_stick_weight(self, lm):
        from .evaluation.latent_usage import mean_weight_per_dimension
        data = self.data(lm.dataset, lm.config.seed)
        x, _ = self.test_split(data)
        _, means = lm.codes(x, np.random.default_rng(self.opts.seed))
        return mean_weight_per_dimension(means)


def _differ_besides_seed(a, b):
    """The flat configuration keys on which configurations ``a`` and ``b`` differ, the
    seed left out."""
    fa, fb = a.flat(), b.flat()
    return sorted(k for k in set(fa) | set(fb)
                  if k != "seed" and json.dumps(fa.get(k)) != json.dumps(fb.get(k)))


def _add_seed(entry, seed, path, values):
    """Record one run's ``values`` under ``entry["per_seed"]`` (the runs a cell rests on)."""
    entry.setdefault("per_seed", []).append(dict(values, seed=int(seed), path=path))


def _prior_codes(lm, rng, n):
    """Codes from the prior: the stick weights of prior fractions, or N(0, I) draws."""
    from .latent import code_from_values
    return code_from_values(lm.construction, lm.family.prior_draw(rng, n))


def _elbo_below(summary):
    """Whether the mean ELBO is below the IS estimate of log p(x) (up to one standard error)."""
    try:
        elbo, nll = float(summary["mean_elbo"]), float(summary["mean_nll_finite"])
        se = float(summary["se_nll_finite"])
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(elbo) and math.isfinite(nll)):
        return None
    return bool(elbo <= -nll + (se if math.isfinite(se) else 0.0))


# -- main ---------------------------------------------------------------------------------

def main(argv=None):
    """Run the command; return the exit code."""
    parser = build_parser()
    opts = parser.parse_args(argv)
    if opts.train and opts.max_epoch is None:
        parser.error("--train needs --max-epoch N (the paper's runs stop early, after up to "
                     "2000 epochs)")
    if not opts.checkpoints and not opts.train:
        parser.error("give best-parameters files or folders, or --train MODEL --max-epoch N")
    if not opts.out.strip():
        parser.error("argument --out: an empty path; expected a folder for the report")
    problem = out_folder_problem(opts.out)
    if problem:
        parser.error(f"argument --out: {problem}")
    argv_list = sys.argv[1:] if argv is None else list(argv)
    command = "python -m stick_breaking_dgms.reproduce " + " ".join(shlex.quote(a)
                                                                     for a in argv_list)
    from . import backend
    try:
        backend.set_mode(opts.mode)
    except backend.BackendError as e:
        parser.error(f"argument --mode: {e}")
    threads = backend.configure_blas_threads(opts.blas_threads)
    from .checkpoints import CheckpointError
    from .evaluation.loading import find_checkpoints
    try:
        paths = find_checkpoints(opts.checkpoints) if opts.checkpoints else []
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from .fileio import EXIT_IO, describe_os_error
    try:
        out_dir = staging_folder(opts.out)
    except OSError as e:
        print(f"error: --out: {describe_os_error(e)}", file=sys.stderr)
        return EXIT_IO
    try:
        code = _evaluate(opts, out_dir, command, threads, paths)
        if code == 0:
            final = publish_folder(out_dir, opts.out)
            if os.path.normpath(final) != os.path.normpath(opts.out):
                _log(f"{opts.out} exists: the report went to {final}")
            _log(f"report: {os.path.join(final, 'report.md')}")
        return code
    except OSError as e:  # a full disk, permissions: nothing half-written is kept
        print(f"error: {describe_os_error(e)}", file=sys.stderr)
        return EXIT_IO
    finally:
        if os.path.isdir(out_dir):  # not published: the run failed or was interrupted
            shutil.rmtree(out_dir, ignore_errors=True)


def _evaluate(opts, out_dir, command, threads, paths):
    """Train (``--train``), evaluate and write the report into ``out_dir``; exit code."""
    from . import backend
    from .checkpoints import CheckpointError
    from .datasets import DatasetError
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": command, "machine": machine_description(),
            "package_version": __version__, "backend": backend.describe(),
            "blas_threads": threads, "git": git_commit(),
            "options": {k: v for k, v in vars(opts).items()}}
    ev = Evaluation(opts, out_dir)
    results_path = os.path.join(out_dir, "results.json")

    def save():
        ev.results["cells"] = build_cells(ev.results, opts)
        write_text(results_path, json.dumps(jsonable({"meta": meta, **ev.results}), indent=1,
                                            sort_keys=False) + "\n")

    started = time.time()
    try:
        if opts.train:
            t0 = time.time()
            paths += train_runs(opts)
            ev.timed("training", time.time() - t0)
        ev.load(paths)
        steps = [("likelihood", ev.likelihood), ("knn", ev.knn), ("semisup", ev.semisup)]
        for name, step in steps:
            if name in opts.table:
                _log(f"== {name}")
                step()
                save()
        if not opts.no_figures:
            _log("== figures")
            ev.figures()
        ev.timed("total", time.time() - started)
        save()
        ev.save_arrays()
    except (ReproduceError, CheckpointError, DatasetError) as e:
        print(f"error: {e}; no report written", file=sys.stderr)
        return 1
    report = render_report(jsonable(ev.results), ev.results["cells"], opts, meta)
    write_text(os.path.join(out_dir, "report.md"), report)
    return 0


def console():
    sys.exit(main())


if __name__ == "__main__":
    console()
