"""Frey Faces: 1,965 grey-level face images of 28 x 20 pixels, split 1,565 / 200 / 200.

The file is ``<data_dir>/frey_rawface.mat`` from Sam Roweis' data page,
https://cs.nyu.edu/~roweis/data/frey_rawface.mat (1.1 MB). No PyPI package ships it (the
``pods`` package only downloads it from that address). It holds one variable, ``ff``:
560 x 1,965 uint8, each column an image of 28 rows x 20 columns stored row by row, so the
images are ``ff.T.reshape(1965, 28, 20)``.

Pixels are scaled to [0, 1] (value / 255) and not binarised; the likelihood is Gaussian
(real-valued), as in the paper's Frey Faces experiment. There are no labels (``*_y`` are
None). The 1,965 images are shuffled with ``seed`` and split 1,565 train / 200 valid /
200 test; the paper gives no split, this one is the package's. The data are small, so
nothing is cached.
"""
import os

import numpy as np

from .base import Dataset, DatasetError, check_array, missing_file, read_mat, seeded_split

FILENAME = "frey_rawface.mat"
URL = "https://cs.nyu.edu/~roweis/data/frey_rawface.mat"
ROWS, COLS, N_IMAGES = 28, 20, 1965
SPLIT = (1565, 200, 200)
GET_IT = f"Download it from {URL} into the data directory (--data-dir)."


def read_frey_mat(path, n_expected=N_IMAGES):
    """Images (N, 560) float32 in [0, 1] from ``frey_rawface.mat`` (checked)."""
    ff = read_mat(path, ["ff"])["ff"]
    check_array(path, "ff", ff, ndim=2, shape=(ROWS * COLS, n_expected), kinds="u")
    if ff.dtype != np.uint8:
        raise DatasetError(f"{path}: ff has dtype {ff.dtype}, expected uint8")
    return np.ascontiguousarray(ff.T, dtype=np.float32) / np.float32(255)


def load_frey_faces(data_dir="./datasets", seed=1234, sizes=SPLIT):
    """Frey Faces split ``sizes`` (default 1,565 / 200 / 200) after a shuffle seeded with ``seed``.

    ``sizes`` must add up to the number of images in the file (1,965).
    """
    path = os.path.join(data_dir, FILENAME)
    if not os.path.exists(path):
        raise missing_file(path, "Frey Faces", GET_IT)
    sizes = tuple(int(s) for s in sizes)
    x = read_frey_mat(path, None)
    if len(x) != sum(sizes):
        raise DatasetError(f"{path}: ff holds {len(x)} images, expected {sum(sizes)} "
                           f"(the split {sizes})")
    (trx, _), (vax, _), (tex, _) = seeded_split(x, None, sizes, seed)
    return Dataset("frey_faces", trx, None, vax, None, tex, None, likelihood="gaussian",
                   image_shape=(ROWS, COLS), source=path)
