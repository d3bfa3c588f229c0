"""Value types of the command-line programs' flags (argparse ``type=`` functions).

Each turns the flag's text into a value or raises ``argparse.ArgumentTypeError``, which
argparse words as ``argument --flag: message`` with exit code 2. The bounds are those of
:mod:`.config`, so a value a script accepts is a value the configuration accepts.
"""
import argparse
import os

import numpy as np

from .config import (MAX_BLAS_THREADS, MAX_COUNT, MAX_LAYERS, MAX_SEED, MAX_TAYLOR_TERMS,
                     MAX_UNITS)


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


def _int_in(low, high, what=None):
    return _number(int, low, high, what=what or f"an integer in [{low}, {high:,}]")


positive_int = _int_in(1, MAX_COUNT)
nonnegative_int = _int_in(0, MAX_COUNT)
units = _int_in(1, MAX_UNITS)
layers = _int_in(1, MAX_LAYERS)
skip_count = _int_in(0, MAX_LAYERS)
taylor_terms = _int_in(1, MAX_TAYLOR_TERMS)
seed = _int_in(0, MAX_SEED)
# kNN's k: its sort keeps k neighbours per test example; beyond a thousand the table says
# nothing the paper's k = 3, 5, 10 do not
MAX_NEIGHBOURS = 1000
neighbours = _int_in(1, MAX_NEIGHBOURS)
truncation_int = _int_in(2, MAX_UNITS, f"an integer in [2, {MAX_UNITS:,}] (at least two stick "
                                       f"weights)")
positive_float = _number(float, 0.0, low_open=True, what="a number > 0")
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


_threads = _int_in(1, MAX_BLAS_THREADS)


def blas_threads(text):
    """``auto`` or a thread count."""
    if text == "auto":
        return text
    return _threads(text)


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
