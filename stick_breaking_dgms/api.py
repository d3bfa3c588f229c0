"""The package from Python: what the scripts do, given a configuration instead of flags.

>>> from stick_breaking_dgms import api                                # doctest: +SKIP
>>> from stick_breaking_dgms.config import ExperimentConfig, LatentConfig
>>> cfg = ExperimentConfig("sb_vae", latent=LatentConfig("gamma"))     # doctest: +SKIP
>>> run = api.fit(cfg, experiment_dir="runs")                          # doctest: +SKIP
>>> run.best_epoch, run.test, run.history[-1]["valid_score"]           # doctest: +SKIP
>>> model = run.model()                       # the best parameters    # doctest: +SKIP
>>> api.log_likelihood(model, x_test, samples=100)                     # doctest: +SKIP

* :func:`fit` trains (or resumes) and returns a :class:`Run`: the run's files, how it
  ended, its per-epoch history, its best epoch and test metrics, and its trained model;
  :func:`train` does the same and returns the scripts' exit code.
* :func:`load` rebuilds a trained model from any of its files (best parameters or
  checkpoint); :func:`log_likelihood`, :func:`latent_codes` and :func:`classify` evaluate
  it on arrays, as ``sbdgm-reproduce`` and ``sbdgm-classify`` do.

:func:`train` loads the data, names the run from the configuration as the original
scripts name it, resumes an unfinished run of the same configuration from its
checkpoint (bit-identically) or starts a new one, trains until early stopping and writes
the run's files (:mod:`.runfiles`). Configuration that does not fit the data (a batch
larger than the training set, labels the split cannot draw) raises
:class:`~.config.ConfigError`; unusable data :class:`~.datasets.DatasetError`; a
checkpoint that cannot be resumed :class:`~.checkpoints.CheckpointError`.
"""
import json
import os
import sys
import time

from . import __version__
from .checkpoints import CheckpointError
from .config import ConfigError, config_of_checkpoint
from .runfiles import IDENTITY_KEYS, resolve_run, run_name_of


def train(config, experiment_dir="./experiments/", resume="auto", blas_threads="auto",
          progress="auto", out=None, mode="C"):
    """Train (or resume) the run of ``config`` in ``experiment_dir``; return the exit code.

    Parameters
    ----------
    config : ExperimentConfig
    experiment_dir : str
        Where the run's files go (created if missing).
    resume : {"auto", "resume", "new"}
        auto: resume the unfinished run of this configuration if there is one; resume:
        require one; new: always start a new run (with a counter in its name).
    blas_threads : int or "auto"
        OpenBLAS threads (auto: one, or the count measured fastest on this machine; a
        resumed run keeps the count it ran with, so its results stay bit-identical).
    progress : {"auto", "always", "never"}
        The live progress line (auto: when stderr is a terminal).
    out : file, optional
        Where messages go (default: the current ``sys.stdout``).
    mode : {"C", "JAX"}
        The linker (:func:`~.backend.set_mode`); JAX needs PyTensor and jax. A run
        resumes only in the mode it started in.

    Returns
    -------
    int
        0 when training ended normally; 1 on a NaN with ``on_nan="stop"``; 128 + the
        signal number when Ctrl-C or SIGTERM stopped it (its state saved).
    """
    return _run(config, experiment_dir, resume, blas_threads, progress, out, mode)[0]


def _run(config, experiment_dir, resume, blas_threads, progress, out, mode):
    """:func:`train`'s work; returns (exit code, the run's :class:`~.runfiles.RunFiles`)."""
    out = sys.stdout if out is None else out
    started = time.time()
    check_experiment_dir(experiment_dir)
    from . import backend
    backend.set_mode(mode)  # BackendError when JAX cannot be used here
    backend.set_floatX(config.floatX)
    threads = backend.configure_blas_threads(blas_threads)
    from .datasets import load_dataset
    print(f"stick_breaking_dgms {__version__} on {backend.describe()} "
          f"(floatX {config.floatX}, BLAS: {backend.blas_library() or 'NumPy C-API fallback'}, "
          f"{threads} thread{'s' if threads != 1 else ''})", file=out, flush=True)
    if mode == "JAX":
        from .backend.jax import devices
        print(f"JAX devices: {', '.join(str(d) for d in devices())}", file=out, flush=True)
    d = config.data
    options = {} if d.likelihood is None else {"likelihood": d.likelihood}
    data = load_dataset(d.dataset, data_dir=d.data_dir, seed=config.seed, **options)
    check_fits(config, data)
    print("Dataset:", data.describe(), f"(from {data.source})", file=out, flush=True)
    data = data.astype(config.floatX)

    prepare_experiment_dir(experiment_dir)
    files, checkpoint = resolve_run(experiment_dir, config.spec.prefix, run_name_of(config),
                                    resume)
    try:  # the run's lock is held from here on
        return _train(config, data, files, checkpoint, threads, blas_threads, progress,
                      started, backend, out), files
    finally:
        files.lock.release()


def fit(config, experiment_dir="./experiments/", resume="auto", blas_threads="auto",
        progress="auto", out=None, mode="C"):
    """Train (or resume) the run of ``config`` like :func:`train`; return its :class:`Run`.

    Parameters as :func:`train`. A run stopped by Ctrl-C has ``status == "running"``
    (fit it again to resume it).
    """
    code, files = _run(config, experiment_dir, resume, blas_threads, progress, out, mode)
    return Run.of(files, code)


class Run:
    """A training run as its files describe it.

    Attributes
    ----------
    files : runfiles.RunFiles
        Where its log, metrics, checkpoint and best parameters are.
    exit_code : int
        What the script would have returned (0 finished, 1 NaN, 128 + n signal n).
    status : {"running", "finished", "nan"}
    stopped_by : {"early stopping", "max_epoch", "nan", None}
    history : list of dict
        One dict per epoch: ``epoch``, ``seconds``, ``train_*`` and ``valid_*`` metrics.
    best_epoch : int
        -1 when no epoch had a finite validation score.
    best_score : float
        The best validation score (lower is better).
    test : dict
        The best parameters' test metrics (``score`` and the model's others), once ended.
    config : config.ExperimentConfig
    """

    def __init__(self, files, exit_code, state, config):
        self.files, self.exit_code, self.config = files, exit_code, config
        self.status, self.stopped_by = state.get("status"), state.get("stopped_by")
        self.history = list(state.get("history") or [])
        self.best_epoch = state.get("best_epoch", -1)
        self.best_score = state.get("best_score")
        self.test = dict(state.get("test_result") or {})

    @classmethod
    def of(cls, files, exit_code=None):
        """The Run of ``files`` (a :class:`~.runfiles.RunFiles`) from its newest sound
        checkpoint."""
        from .runfiles import load_latest_checkpoint
        found = load_latest_checkpoint(files, lambda message: None)
        if found is None:
            raise CheckpointError(f"{files.checkpoint}: the run has no checkpoint yet")
        _, meta, path = found
        return cls(files, exit_code, meta.get("state") or {}, config_of_checkpoint(meta, path))

    def model(self):
        """The trained model with its best parameters (:func:`load`)."""
        return load(self.files.best)

    def __repr__(self):
        return (f"Run({self.files.name!r}, status={self.status!r}, stopped_by="
                f"{self.stopped_by!r}, epochs={len(self.history)}, best_epoch="
                f"{self.best_epoch}, test={self.test})")


def load(path):
    """Rebuild the trained model of a best-parameters file or a checkpoint.

    Returns an :class:`~.evaluation.loading.LoadedModel`: ``.net`` (the network, its
    parameters loaded), ``.config``, ``.codes(x, rng)``, ``.decode_mean(codes)`` and,
    for the semi-supervised models, ``.label_probs(x)``. Raises CheckpointError naming
    ``path`` when the file is unsound or does not fit the model it describes.
    """
    from .evaluation.loading import load_model
    return load_model(os.fspath(path))


def log_likelihood(model, x, samples=100, seed=1234, progress=None):
    r"""Importance-sampled :math:`\log p(x)` of each row of ``x`` under a VAE (SB-VAE,
    Gauss-VAE) loaded with :func:`load`, as ``sbdgm-reproduce`` computes it.

    Returns a dict with ``log_px`` (per row), ``mc_se``, ``elbo``, ``ess`` and the
    summary of :func:`.evaluation.likelihood.summarize` under ``summary`` (mean, median,
    outliers, ...).
    """
    from .evaluation.likelihood import importance_sampled_log_likelihood, summarize
    per = importance_sampled_log_likelihood(model, x, samples=samples, seed=seed,
                                            progress=progress)
    return dict(per, summary=summarize(per))


def latent_codes(model, x, seed=1234):
    """(sampled codes, posterior-mean codes) of the rows of ``x``: the stick weights (or
    Gaussian draws) the kNN tables classify."""
    import numpy as np
    return model.codes(x, np.random.default_rng(seed))


def classify(model, x):
    """(predicted labels, q(y | x)) of the rows of ``x`` under a semi-supervised model
    loaded with :func:`load`: argmax q(y | x), as ``sbdgm-classify``."""
    from .backend import floatX_as
    from .classify import predict
    if not model.config.semi:
        raise ValueError(f"{model.path}: the {model.config.spec.title} has no classifier")
    with floatX_as(model.floatX):
        return predict(model.net, x)


def print_run_files(files, out):
    """Say where each of the run's files goes."""
    for what, path in (("log", files.results), ("metrics", files.metrics),
                       ("metrics table", files.metrics_csv),
                       ("checkpoint", f"{files.checkpoint} (the one before: .prev.h5)"),
                       ("best parameters", files.best)):
        print(f"  {what + ':':17s}{path}", file=out, flush=True)


def check_experiment_dir(path):
    """Raise ConfigError (key ``experiment_dir``) when ``path`` cannot hold a run: empty,
    an existing file, or an existing folder this process cannot write into. Checked
    before the data are loaded, so a bad folder is said at once."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ConfigError("experiment_dir", "an empty path; expected a folder for the run's "
                                            "files")
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError("experiment_dir", f"{path} exists and is not a folder")
    if os.path.isdir(path) and not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError("experiment_dir", f"{path}: cannot write into this folder "
                                            f"(permission denied)")


def prepare_experiment_dir(path):
    """Create the experiment folder; ConfigError naming it when that fails."""
    check_experiment_dir(path)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise ConfigError("experiment_dir", f"{path}: cannot create this folder "
                                            f"({e.strerror or e})") from None


def check_fits(config, data):
    """Raise ConfigError when the configuration cannot train on ``data``, before any file
    is touched (labels the semi-supervised model needs, a batch larger than the data)."""
    from .datasets import DatasetError
    t = config.training
    if t.batch_size > len(data.train_x):
        raise ConfigError("batch_size", f"{t.batch_size} is larger than the training set "
                                        f"({len(data.train_x)} examples)")
    if config.semi:
        from .config import MAX_CLASSES
        if any(y is None for y in (data.train_y, data.valid_y, data.test_y)):
            raise DatasetError(f"{data.source or data.name}: the semi-supervised model needs "
                               f"labels for every split (an integer array 'y', or train_y / "
                               f"valid_y / test_y); this data set has none")
        if data.n_classes > MAX_CLASSES:
            raise DatasetError(f"{data.source or data.name}: the largest label is "
                               f"{data.n_classes - 1:,}; the classifier takes labels 0 to "
                               f"{MAX_CLASSES - 1:,} (one output per label)")
        if data.n_classes < 2:
            raise DatasetError(f"{data.source or data.name}: the labels take "
                               f"{data.n_classes} value; the classifier needs at least 2 "
                               f"classes")
        from .experiments import LabelSplitError, split_labels
        try:
            split_labels(len(data.train_x), t.label_drop_percentage, t.batch_size,
                         config.label_seed)
        except LabelSplitError as e:
            raise ConfigError("label_drop_percentage", str(e)) from None


def _identity_mismatch(stored, config):
    """The run-defining values on which a checkpoint's configuration and ``config`` differ."""
    mine, theirs = config.flat(), stored.flat()
    differ = []
    for key in IDENTITY_KEYS:
        if key not in mine:
            continue
        a, b = json.loads(json.dumps(theirs.get(key))), json.loads(json.dumps(mine[key]))
        if a != b:
            differ.append(f"{key} {theirs.get(key, '(absent)')!r} in the checkpoint, "
                          f"{mine[key]!r} now")
    return differ


def _train(config, data, files, checkpoint, threads, blas_threads, progress, started,
           backend, out):
    from .factory import build_task
    from .runfiles import load_latest_checkpoint
    from .training import Trainer
    print("... building the model and compiling its graphs (about a minute the first time on "
          "a machine; the compiled code is cached, later runs take seconds)", file=out,
          flush=True)
    task = build_task(config, data)
    meta = {"model": config.model, "config": config.to_dict(), "args": config.flat(),
            "package_version": __version__, "backend": backend.NAME,
            "backend_version": backend.version, "mode": backend.mode(),
            "dataset": data.describe(), "dataset_source": data.source,
            "latent_size": config.latent.size, "seed": config.seed,
            "model_seed": config.model_seed, "label_seed": config.label_seed,
            "blas_threads": threads}
    if config.semi:
        meta["n_classes"] = data.n_classes
    t = config.training
    trainer = Trainer(task, files, meta, t.max_epoch, t.lookahead, t.checkpoint_every,
                      t.on_nan, progress, out=out)
    if checkpoint is not None:
        def validate(groups, ckpt_meta, path):
            if ckpt_meta.get("model") != config.model:
                raise CheckpointError(f"{path}: not a checkpoint of the {config.model} model")
            if ckpt_meta.get("mode", "C") != backend.mode():
                raise CheckpointError(f"{path}: made in {ckpt_meta.get('mode', 'C')} mode "
                                      f"(another random stream and other kernels); resume "
                                      f"it with --mode {ckpt_meta.get('mode', 'C')}")
            differ = _identity_mismatch(config_of_checkpoint(ckpt_meta, path), config)
            if differ:
                raise CheckpointError(f"{path}: made with another configuration: "
                                      + "; ".join(differ))
            trainer.restore(groups, ckpt_meta, path)  # checks shapes, state, streams

        try:
            checkpoint = load_latest_checkpoint(
                files, lambda m: print(m, file=sys.stderr, flush=True), validate)
        except CheckpointError as e:
            raise CheckpointError(f"cannot resume: {e}") from None
    if checkpoint is not None and trainer.state.status != "running":
        print(f"{files.results}: the run had ended (its checkpoint {checkpoint[2]} says "
              f"{trainer.state.status}) but its log and metrics were not written; writing them "
              f"from the checkpoint, without training", file=out, flush=True)
        return trainer.complete()
    if checkpoint is not None:
        _, ckpt_meta, path = checkpoint
        saved_threads = ckpt_meta.get("blas_threads")
        if isinstance(saved_threads, int) and saved_threads != threads:
            if blas_threads == "auto":
                # The thread count changes the matrix products' last bits: keep the run's.
                backend.set_blas_threads(saved_threads)
                meta["blas_threads"] = threads = saved_threads
                print(f"Using {threads} BLAS thread{'s' if threads != 1 else ''} as the run "
                      f"did before (bit-identical results)", file=out, flush=True)
            else:
                print(f"warning: the run used {saved_threads} BLAS threads, now "
                      f"{threads}: results are no longer bit-identical to an uninterrupted "
                      f"run", file=sys.stderr, flush=True)
        print(f"Resuming {files.results} from {path} at epoch {trainer.state.epoch}, batch "
              f"{trainer.state.batch}", file=out, flush=True)
        for line in trainer.state.lines:
            print(line, file=out, flush=True)
    else:
        print(f"New run {files.name} in {files.experiment_dir}", file=out, flush=True)
    print_run_files(files, out)
    print(f"Training for up to {t.max_epoch} epochs ({task.n_train_batches} batches each; "
          f"ready after {time.time() - started:.1f}s)", file=out, flush=True)
    return trainer.run()
