"""UCI Optical Recognition of Handwritten Digits: 5,620 images of 8 x 8 pixels, 0..16.

The files are ``<data_dir>/optdigits.tra`` (3,823 rows) and ``optdigits.tes`` (1,797
rows) from the UCI Machine Learning Repository: comma-separated integers, 64 pixel values
in 0..16 and the digit as the 65th column. Pixels are scaled to [0, 1] (value / 16), the
likelihood is Bernoulli. The training file is shuffled with ``seed`` and split into
``n_valid`` validation rows and the rest for training; the test file is the test set.
Nothing is cached (reading the files takes milliseconds).
"""
import os

import numpy as np

from .base import Dataset, DatasetError, check_array, missing_file, seeded_split

FILES = ("optdigits.tra", "optdigits.tes")
GET_IT = ("Download optdigits.tra and optdigits.tes from the UCI Machine Learning "
          "Repository (data set 80, Optical Recognition of Handwritten Digits) into the "
          "data directory.")


def read_optdigits(path):
    """(x (N, 64) float32 in [0, 1], y (N,) int32) from one file, checked."""
    try:
        rows = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as err:
        raise DatasetError(f"{path}: not comma-separated integers ({err})") from None
    check_array(path, "the table", rows, ndim=2, shape=(None, 65), kinds="i")
    check_array(path, "the pixels", rows[:, :64], kinds="i", value_range=(0, 16))
    check_array(path, "the labels", rows[:, 64], kinds="i", value_range=(0, 9))
    return (rows[:, :64] / 16.0).astype(np.float32), rows[:, 64].astype(np.int32)


def load_optdigits(data_dir="./datasets", seed=1234, n_valid=500):
    """Optdigits: the training file less ``n_valid`` rows / ``n_valid`` rows / the test file."""
    paths = [os.path.join(data_dir, f) for f in FILES]
    for path in paths:
        if not os.path.exists(path):
            raise missing_file(path, "Optdigits", GET_IT)
    (x, y), (test_x, test_y) = (read_optdigits(p) for p in paths)
    if not 0 < n_valid < len(x):
        raise DatasetError(f"{paths[0]}: cannot hold out {n_valid} of {len(x)} rows")
    (train_x, train_y), (valid_x, valid_y) = seeded_split(x, y, (len(x) - n_valid, n_valid),
                                                          seed)
    return Dataset("optdigits", train_x, train_y, valid_x, valid_y, test_x, test_y,
                   likelihood="bernoulli", image_shape=(8, 8), source=paths[0])
