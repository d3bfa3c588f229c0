"""Classify a data split with a trained semi-supervised model (SB-DGM or Gauss-DGM).

``python -m stick_breaking_dgms.classify CHECKPOINT [--split test] [--output FILE]``
(console script ``sbdgm-classify``).

CHECKPOINT is a run's best-parameters file (``<prefix>_params_<args>.h5``) or its full
checkpoint (``<prefix>_checkpoint_<args>.h5``; ``--weights`` picks its best or its last
parameters). The model is rebuilt from the configuration stored in the file
(:func:`.factory.rebuild_model`), the parameters are loaded after checking their names and
shapes, and the split is classified with argmax q(y | x) -- the rule training used for
early stopping and for its final test error, so on the test split of the training data
this reproduces the error count of the run's final log line.

Prints the error rate in % and as a count (when the split has labels) and, with
``--output``, writes the predicted labels and q(y | x) to a ``.npz`` (arrays
``predicted``, ``probs`` and ``labels``) or ``.csv`` file (columns ``index``, ``label``,
``predicted``, ``q0`` ... ``q9``), atomically; an existing file is kept unless
``--force``.

Exit codes: 0 success; 1 the checkpoint is missing, damaged, not of a semi-supervised
model or does not fit the data; 2 bad command-line values; 74 ``--output`` could not be
written (a full disk, permissions).
"""
import argparse
import os
import sys
import time

import numpy as np

from . import __version__
from .argtypes import blas_threads, dataset_arg, positive_int, seed
from .config import MODELS

SEMI_SUPERVISED = tuple(m for m, spec in MODELS.items() if spec.semi)
OUTPUT_FORMATS = (".npz", ".csv")
PREDICT_BATCH = 1000  # as the training task's evaluation: the same float32 products


class ClassifyError(Exception):
    """A problem with the checkpoint or the data; the message names the file."""


def build_parser():
    p = argparse.ArgumentParser(
        prog="sbdgm-classify",
        description="Classify a data split with a trained SB-DGM / Gauss-DGM: print the "
                    "error rate of argmax q(y|x) and optionally write the predictions.",
        epilog="Exit codes: 0 success, 1 missing/damaged checkpoint or one of a model that "
               "does not classify, 2 bad arguments, 74 --output could not be written.")
    from .cli import add_version
    add_version(p)
    p.add_argument("checkpoint",
                   help="the run's best-parameters file (<prefix>_params_<args>.h5) or its "
                        "full checkpoint (<prefix>_checkpoint_<args>.h5)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"],
                   help="which split of the data set to classify. Default: %(default)s")
    p.add_argument("--dataset", type=dataset_arg, default=None,
                   help="data set name or file; default: the one the model was trained on")
    p.add_argument("--data-dir", default=None,
                   help="where data files are looked for; default: the training run's")
    p.add_argument("--seed", type=seed, default=None,
                   help="seed of the train/valid/test shuffle; default: the training run's")
    p.add_argument("--weights", default="best", choices=["best", "last"],
                   help="for a full checkpoint: the best epoch's parameters or the last "
                        "epoch's (a best-parameters file only has the best). "
                        "Default: %(default)s")
    p.add_argument("--output", default=None, metavar="FILE",
                   help="write the predicted labels and q(y|x) to FILE (.npz or .csv)")
    p.add_argument("--force", action="store_true",
                   help="overwrite --output if it exists")
    p.add_argument("--batch-size", type=positive_int, default=PREDICT_BATCH,
                   help="examples per call of the compiled classifier. Default: %(default)s")
    p.add_argument("--blas-threads", type=blas_threads, default=1,
                   help="OpenBLAS threads (auto: the count measured fastest). "
                        "Default: %(default)s")
    return p


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.output is not None:
        ext = os.path.splitext(args.output)[1].lower()
        if ext not in OUTPUT_FORMATS:
            parser.error(f"argument --output: {args.output!r} must end in "
                         f"{' or '.join(OUTPUT_FORMATS)}")
        if os.path.isdir(args.output):
            parser.error(f"argument --output: {args.output} is a directory")
        if os.path.exists(args.output) and not args.force:
            parser.error(f"argument --output: {args.output} exists; use --force to "
                         f"overwrite it")
        problem = output_folder_problem(args.output)
        if problem:
            parser.error(f"argument --output: {problem}")
    return parser, args


def output_folder_problem(path):
    """Why a new file cannot be written at ``path`` (its folder missing, not a folder or
    not writable), or None. Checked before the work, so it is not lost at the end."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(folder):
        return f"{path}: the folder {folder} does not exist"
    if not os.path.isdir(folder):
        return f"{path}: {folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{path}: cannot write into the folder {folder} (permission denied)"
    return None


def load_classifier_checkpoint(path, weights="best"):
    """Read a checkpoint of a semi-supervised model.

    Returns (metadata, parameter arrays, description of the parameters).
    Raises :class:`ClassifyError` (or CheckpointError) naming ``path`` when it is unusable.
    """
    from .checkpoints import read_checkpoint
    from .config import config_of_checkpoint
    groups, meta = read_checkpoint(path, required_groups=("params",))
    config = config_of_checkpoint(meta, path)
    if not config.semi:
        raise ClassifyError(f"{path}: a checkpoint of the {config.spec.title} "
                            f"({config.model}), which has no classifier; expected one of "
                            f"{', '.join(SEMI_SUPERVISED)}")
    if "state" in meta:  # a full checkpoint: last parameters, and the best ones if any
        if weights == "last":
            params, what = groups["params"], f"last epoch ({meta['state'].get('epoch', 0) - 1})"
        elif "best" in groups:
            best = meta["state"].get("best_epoch")
            params, what = groups["best"], f"best epoch ({best})"
        else:
            raise ClassifyError(f"{path}: this checkpoint has no best parameters yet (no "
                                f"epoch finished); use --weights last")
    else:
        if weights == "last":
            raise ClassifyError(f"{path}: a best-parameters file has no last-epoch "
                                f"parameters; use the run's _checkpoint_ file for "
                                f"--weights last")
        params, what = groups["params"], f"best epoch ({meta.get('best_epoch')})"
    return meta, params, what


def _load_data(args, stored):
    from .datasets import load_dataset
    d = stored.data
    dataset = args.dataset if args.dataset is not None else d.dataset
    data_dir = args.data_dir if args.data_dir is not None else d.data_dir
    seed = args.seed if args.seed is not None else stored.seed
    options = {} if d.likelihood is None else {"likelihood": d.likelihood}
    return load_dataset(dataset, data_dir=data_dir, seed=seed, **options)


def predict(model, x, batch_size=PREDICT_BATCH):
    """(predicted labels, q(y | x)) for the rows of ``x``: argmax of the clipped softmax.

    The model clips q(y | x) into [1e-4, 1 - 1e-4] as the original does (its log enters
    the objective), so a clipped row sums to slightly more than 1 (up to 1.0008 with ten
    classes); the rows returned here are divided by their sums, which keeps the argmax.
    """
    from .backend import at, floatX, function
    xs = at.matrix("x")
    probs = model.label_probs(xs)
    f = function([xs], [at.argmax(probs, axis=1), probs])
    labels, all_probs = [], []
    for start in range(0, len(x), batch_size):
        lab, p = f(np.ascontiguousarray(x[start:start + batch_size], dtype=floatX()))
        labels.append(lab)
        all_probs.append(p)
    if not labels:
        return np.zeros(0, dtype=np.int64), np.zeros((0, model.n_classes), dtype=floatX())
    probs = np.concatenate(all_probs)
    return np.concatenate(labels), probs / probs.sum(axis=1, keepdims=True)


def write_predictions(path, predicted, probs, labels, info, force=False):
    """Write the predictions to ``path`` (.npz or .csv) atomically."""
    from .fileio import atomic_path
    if os.path.exists(path) and not force:
        raise ClassifyError(f"{path}: exists; use --force to overwrite it")
    ext = os.path.splitext(path)[1].lower()
    with atomic_path(path) as tmp:
        if ext == ".npz":
            with open(tmp, "wb") as f:  # np.savez(name) would append .npz to the temp name
                arrays = dict(predicted=predicted.astype(np.int64), probs=probs)
                if labels is not None:
                    arrays["labels"] = labels.astype(np.int64)
                np.savez(f, **arrays, **{k: np.asarray(v) for k, v in info.items()})
        else:
            n_classes = probs.shape[1]
            header = ",".join(["index", "label", "predicted"]
                              + [f"q{c}" for c in range(n_classes)])
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(header + "\n")
                for i in range(len(predicted)):
                    label = "" if labels is None else str(int(labels[i]))
                    q = ",".join(f"{v:.6g}" for v in probs[i])
                    f.write(f"{i},{label},{int(predicted[i])},{q}\n")


def run(args):
    """Classify as ``args`` say; return the exit code. Raises ClassifyError, CheckpointError."""
    started = time.time()
    meta, params, what = load_classifier_checkpoint(args.checkpoint, args.weights)
    from . import backend
    from .factory import rebuild_model
    backend.configure_blas_threads(args.blas_threads)
    # The model is checked against the file before the data are loaded (fail fast). Its
    # input size comes from the first weight matrix (compared with the data below); the
    # likelihood does not enter q(y | x), the stored one or Bernoulli serves.
    stored, net = rebuild_model(args.checkpoint, meta, params)
    with backend.floatX_as(stored.floatX):  # the graphs' dtype, as in training
        return _classify(args, started, stored, net, what)


def _classify(args, started, stored, net, what):
    from .datasets import DatasetError
    n_in_model = net.n_in
    try:
        data = _load_data(args, stored)
    except DatasetError as e:
        raise ClassifyError(str(e)) from None
    if data.n_in != n_in_model:
        raise ClassifyError(f"{args.checkpoint}: the model takes {n_in_model} inputs, the data "
                            f"set {data.name} has {data.n_in} dimensions")
    x, y = data.split(args.split)
    if y is not None and len(y) and int(np.max(y)) >= net.n_classes:
        raise ClassifyError(f"{data.source or data.name}: the {args.split} split has labels "
                            f"up to {int(np.max(y)):,}; the model in {args.checkpoint} "
                            f"predicts {net.n_classes} classes (0 to {net.n_classes - 1}), "
                            f"so its error rate there would be meaningless")
    print(f"{stored.spec.title}, {what} parameters, from {args.checkpoint}",
          flush=True)
    print(f"Data: {data.describe()} (from {data.source}); classifying the {args.split} split "
          f"({len(x):,} examples)", flush=True)
    predicted, probs = predict(net, x, args.batch_size)
    if y is not None and len(y):
        errors = int(np.sum(predicted != y))
        print(f"{args.split} error {errors / len(y):.2%} ({errors:,} of {len(y):,})", flush=True)
    else:
        print(f"the {args.split} split has no labels: no error rate", flush=True)
    if args.output is not None:
        info = dict(split=args.split, checkpoint=os.path.abspath(args.checkpoint),
                    model=stored.model, weights=what, package_version=__version__)
        write_predictions(args.output, predicted, probs, y, info, force=args.force)
        print(f"Predictions written to {args.output}", flush=True)
    print(f"({time.time() - started:.1f}s)", flush=True)
    return 0


def main(argv=None):
    """Entry point; returns the exit code (argument errors exit 2 through argparse)."""
    _, args = parse_args(argv)
    from .checkpoints import CheckpointError
    try:
        return run(args)
    except (CheckpointError, ClassifyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # --output could not be written (a full disk, permissions)
        from .fileio import EXIT_IO, describe_os_error
        print(f"error: {describe_os_error(e)}", file=sys.stderr)
        return EXIT_IO


def console():
    sys.exit(main())


if __name__ == "__main__":
    console()
