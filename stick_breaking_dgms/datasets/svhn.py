"""SVHN reduced to 500 dimensions by PCA: 65,000 train / 8,257 valid / 26,032 test.

Where the data come from, in order:

1. the original preprocessed file ``<data_dir>/svhn_pca.pkl`` (or ``.pkl.gz``): a pickle
   of a dict with ``train_data`` (73,257 x D floats), ``train_labels``, ``test_data`` and
   ``test_labels`` (digits 0..9; a label 10 is read as 0). It is not online any more; use
   it if you have a copy. It is split as below, no PCA is applied;
2. otherwise the official cropped-digit files ``train_32x32.mat`` and ``test_32x32.mat``
   (format 2 of http://ufldl.stanford.edu/housenumbers/; ``X`` is 32 x 32 x 3 x N uint8,
   ``y`` is N x 1 with 10 meaning digit 0; ``extra_32x32.mat`` is not used), preprocessed
   by this package and cached in ``data_dir`` (see below).

Preprocessing of the ``.mat`` files (this package's; the paper only says "PCA, 500
dimensions"):

* each image becomes a row of 3,072 values in [0, 1] (pixel / 255), flattened in
  row, column, channel order (``color="rgb"``, the default), or, with ``color="grey"``,
  1,024 luma values 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601) in [0, 1];
* the last 8,257 of the 73,257 official training images (in file order) are the
  validation set, as in the paper; the 65,000 before them, shuffled with ``seed``, the
  training set; the 26,032 official test images are the test set;
* PCA is fitted on the 65,000 training rows only: mean, covariance (divided by n - 1),
  its eigenvectors for the 500 largest eigenvalues, in decreasing order, each with the sign
  that makes its largest-magnitude entry positive (so the result does not depend on the
  eigensolver's sign choice); features are ``(row - mean) @ components.T``, not whitened:
  feature k has variance eigenvalue k on the training set.

Cache: ``<data_dir>/svhn_pca_seed<seed>_<color>_k<components>.npz`` (sizes appended when
not the default), a deterministic ``.npz`` with a checksum (:mod:`.cache`) holding the six
split arrays, ``train_index`` / ``valid_index`` (which official training images went where),
and the projection: ``pca_mean``, ``pca_components``, ``pca_variance`` (float64). New images
are mapped with :func:`load_projection` and :meth:`PCAProjection.transform_images`.
"""
import os
from dataclasses import dataclass

import numpy as np

from .base import (Dataset, DatasetError, check_array, describe_object, missing_file,
                   read_mat, read_pickle, to_float32)
from .cache import load_or_build, read_cache

TRAIN_FILE = "train_32x32.mat"
TEST_FILE = "test_32x32.mat"
ORIGINAL_FILES = ("svhn_pca.pkl", "svhn_pca.pkl.gz")
URL = "http://ufldl.stanford.edu/housenumbers/"
N_TRAIN, N_VALID, N_TEST = 65000, 8257, 26032
N_COMPONENTS = 500
COLORS = ("rgb", "grey")
LUMA = np.array([0.299, 0.587, 0.114])
CACHE_VERSION = 1
GET_IT = (f"Download {TRAIN_FILE} and {TEST_FILE} (cropped digits, format 2) from {URL} "
          f"into the data directory (--data-dir), or put the original svhn_pca.pkl there.")


def svhn_images_to_rows(images, color="rgb", layout="mat"):
    """Flatten SVHN images to rows of values in [0, 1], as the cached features were made.

    Parameters
    ----------
    images : ndarray of uint8
        ``layout="mat"``: (32, 32, 3, N) as in the ``.mat`` files; ``layout="nhwc"``:
        (N, 32, 32, 3).
    color : {"rgb", "grey"}
        "rgb": 3,072 values per image in row, column, channel order; "grey": 1,024 luma
        values 0.299 R + 0.587 G + 0.114 B.
    """
    if color not in COLORS:
        raise ValueError(f"color must be one of {COLORS}, got {color!r}")
    images = np.asarray(images)
    if layout == "mat":
        images = np.moveaxis(images, -1, 0)
    elif layout != "nhwc":
        raise ValueError(f"layout must be 'mat' or 'nhwc', got {layout!r}")
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise ValueError(f"expected SVHN images of 32 x 32 x 3, got shape {images.shape} "
                         f"(as {layout!r} layout)")
    n = len(images)
    if color == "grey":
        rows = np.tensordot(images.astype(np.float32), LUMA.astype(np.float32), axes=([3], [0]))
        return (rows.reshape(n, -1) / np.float32(255)).astype(np.float32)
    return images.reshape(n, -1).astype(np.float32) / np.float32(255)


@dataclass
class PCAProjection:
    """A fitted PCA: ``features = (rows - mean) @ components.T``.

    ``mean`` (D,), ``components`` (K, D) orthonormal rows, ``variance`` (K,) the training
    variance of each feature (decreasing); ``color`` the flattening the rows need.
    """

    mean: np.ndarray
    components: np.ndarray
    variance: np.ndarray
    color: str = "rgb"

    def transform(self, rows, chunk=8192):
        """Features (N, K) float32 of rows (N, D)."""
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[1] != len(self.mean):
            raise ValueError(f"expected rows of {len(self.mean)} values, got shape {rows.shape}")
        out = np.empty((len(rows), len(self.components)), dtype=np.float32)
        for start in range(0, len(rows), chunk):
            block = rows[start:start + chunk].astype(np.float64) - self.mean
            out[start:start + chunk] = block @ self.components.T
        return out

    def transform_images(self, images, layout="mat"):
        """Features of raw uint8 SVHN images (see :func:`svhn_images_to_rows`)."""
        return self.transform(svhn_images_to_rows(images, self.color, layout))


def fit_pca(rows, n_components=N_COMPONENTS, color="rgb", chunk=8192):
    """Fit a :class:`PCAProjection` with ``n_components`` on ``rows`` (N, D).

    Eigen-decomposition of the covariance (accumulated in float64, chunk by chunk); each
    component's largest-magnitude entry is made positive.
    """
    rows = np.asarray(rows)
    n, d = rows.shape
    if not 0 < n_components <= d:
        raise ValueError(f"n_components must be in 1..{d}, got {n_components}")
    if n < 2:
        raise ValueError(f"PCA needs at least 2 rows, got {n}")
    mean = np.zeros(d)
    for start in range(0, n, chunk):
        mean += rows[start:start + chunk].sum(axis=0, dtype=np.float64)
    mean /= n
    cov = np.zeros((d, d))
    for start in range(0, n, chunk):
        block = rows[start:start + chunk].astype(np.float64) - mean
        cov += block.T @ block
    cov /= n - 1
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][:n_components]
    components = vectors[:, order].T.copy()
    pivot = np.argmax(np.abs(components), axis=1)
    components *= np.sign(components[np.arange(n_components), pivot])[:, None]
    variance = np.maximum(values[order], 0.0)
    return PCAProjection(mean, components, variance, color)


def read_svhn_mat(path, n_expected=None):
    """Images (32, 32, 3, N) uint8 and labels (N,) int32 in 0..9 of an official ``.mat`` file."""
    data = read_mat(path, ["X", "y"])
    x, y = data["X"], data["y"]
    check_array(path, "X", x, ndim=4, shape=(32, 32, 3, n_expected), kinds="u")
    if x.dtype != np.uint8:
        raise DatasetError(f"{path}: X has dtype {x.dtype}, expected uint8")
    check_array(path, "y", y, kinds="iuf", value_range=(1, 10))
    if y.shape not in ((x.shape[3], 1), (1, x.shape[3]), (x.shape[3],)):
        raise DatasetError(f"{path}: y has shape {y.shape}, expected ({x.shape[3]}, 1), "
                           f"one label per image of X")
    y = y.reshape(-1)
    if y.dtype.kind == "f" and np.any(y != np.round(y)):
        raise DatasetError(f"{path}: y holds non-integer labels, expected 1..10")
    return x, (y.astype(np.int32) % 10)  # SVHN writes digit 0 as label 10


def read_original(path):
    """train_x, train_y, test_x, test_y of the original ``svhn_pca.pkl`` (checked)."""
    data = read_pickle(path)
    keys = ("train_data", "train_labels", "test_data", "test_labels")
    if not isinstance(data, dict) or any(k not in data for k in keys):
        raise DatasetError(f"{path}: expected a pickled dict with keys {', '.join(keys)}, got "
                           f"{describe_object(data)}")
    out = []
    for part in ("train", "test"):
        x, y = data[part + "_data"], data[part + "_labels"]
        check_array(path, part + "_data", x, ndim=2, kinds="f")
        check_array(path, part + "_labels", y, kinds="iuf", value_range=(0, 10))
        if y.size != len(x) or y.ndim > 2:
            raise DatasetError(f"{path}: {part}_labels has shape {y.shape}, expected "
                               f"({len(x)},), one label per row of {part}_data")
        y = y.reshape(-1)
        if y.dtype.kind == "f" and np.any(y != np.round(y)):
            raise DatasetError(f"{path}: {part}_labels holds non-integer labels")
        out += [to_float32(path, part + "_data", x), y.astype(np.int32) % 10]
    if out[0].shape[1] != out[2].shape[1]:
        raise DatasetError(f"{path}: train_data has {out[0].shape[1]} columns, test_data "
                           f"{out[2].shape[1]}; expected the same")
    return out


def _shuffle_split(n, n_train, n_valid, seed, path):
    if n_train + n_valid > n:
        raise DatasetError(f"{path}: {n} training examples, need n_train + n_valid = "
                           f"{n_train} + {n_valid}")
    # validation: the last n_valid official training images, in file order (the paper's
    # split); training: n_train of the ones before them, shuffled with the seed
    train = np.random.default_rng(seed).permutation(n - n_valid)[:n_train]
    return train, np.arange(n - n_valid, n)


def cache_path(data_dir, seed, color="rgb", n_components=N_COMPONENTS, n_train=N_TRAIN,
               n_valid=N_VALID):
    """Where the features for these options are cached."""
    sizes = "" if (n_train, n_valid) == (N_TRAIN, N_VALID) else f"_t{n_train}_v{n_valid}"
    return os.path.join(data_dir, f"svhn_pca_seed{seed}_{color}_k{n_components}{sizes}.npz")


def _expected(n_train, n_valid, n_components, d):
    return {"train_x": ((n_train, n_components), np.float32), "train_y": ((n_train,), np.int32),
            "valid_x": ((n_valid, n_components), np.float32), "valid_y": ((n_valid,), np.int32),
            "test_x": ((None, n_components), np.float32), "test_y": ((None,), np.int32),
            "train_index": ((n_train,), np.int32), "valid_index": ((n_valid,), np.int32),
            "pca_mean": ((d,), np.float64), "pca_components": ((n_components, d), np.float64),
            "pca_variance": ((n_components,), np.float64)}


def load_projection(path):
    """The :class:`PCAProjection` saved in a SVHN cache file (checked; CacheError if bad)."""
    arrays, meta = read_cache(path, _expected(None, None, None, None),
                              {"dataset": "svhn_pca", "version": CACHE_VERSION})
    return PCAProjection(arrays["pca_mean"], arrays["pca_components"], arrays["pca_variance"],
                         meta["color"])


def build_features(train_path, test_path, seed, color="rgb", n_components=N_COMPONENTS,
                   n_train=N_TRAIN, n_valid=N_VALID):
    """Read the two ``.mat`` files, split, fit the PCA, project: the arrays of the cache."""
    x, y = read_svhn_mat(train_path)
    tx, ty = read_svhn_mat(test_path)
    train_idx, valid_idx = _shuffle_split(x.shape[3], n_train, n_valid, seed, train_path)
    rows = svhn_images_to_rows(x, color)
    del x
    if n_components > min(n_train - 1, rows.shape[1]):
        raise DatasetError(f"{train_path}: cannot fit {n_components} PCA components on "
                           f"{n_train} training rows of {rows.shape[1]} values")
    pca = fit_pca(rows[train_idx], n_components, color)
    return {"train_x": pca.transform(rows[train_idx]), "train_y": y[train_idx],
            "valid_x": pca.transform(rows[valid_idx]), "valid_y": y[valid_idx],
            "test_x": pca.transform_images(tx), "test_y": ty,
            "train_index": train_idx.astype(np.int32), "valid_index": valid_idx.astype(np.int32),
            "pca_mean": pca.mean, "pca_components": pca.components,
            "pca_variance": pca.variance}


def find_original(data_dir):
    """Path of the original ``svhn_pca.pkl[.gz]`` in ``data_dir``, or None."""
    for name in ORIGINAL_FILES:
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return path
    return None


def load_svhn_pca(data_dir="./datasets", seed=1234, color="rgb", n_components=N_COMPONENTS,
                  n_train=N_TRAIN, n_valid=N_VALID, rebuild=False, use_original=True):
    """SVHN-PCA: ``n_train`` / ``n_valid`` (last of the shuffled training set) / official test.

    Parameters
    ----------
    data_dir : str
        Where the files are looked for and the features cached.
    seed : int
        Seed of the shuffle of the official training set (and so of the PCA fit).
    color : {"rgb", "grey"}
        Flattening of the images before PCA (module docstring).
    n_components : int
        PCA dimensions (500 in the paper).
    n_train, n_valid : int
        Split sizes (65,000 and 8,257 in the paper; smaller for tests).
    rebuild : bool
        Rebuild the cache even when a valid one exists.
    use_original : bool
        Prefer the original ``svhn_pca.pkl`` when it is in ``data_dir``.
    """
    if color not in COLORS:
        raise DatasetError(f"SVHN: color must be one of {', '.join(COLORS)}, got {color!r}")
    original = find_original(data_dir) if use_original else None
    extras = {}
    if original is not None:
        trx, try_, tex, tey = read_original(original)
        train_idx, valid_idx = _shuffle_split(len(trx), n_train, n_valid, seed, original)
        parts = (trx[train_idx], try_[train_idx], trx[valid_idx], try_[valid_idx], tex, tey)
        source = original
    else:
        path = cache_path(data_dir, seed, color, n_components, n_train, n_valid)
        train_path = os.path.join(data_dir, TRAIN_FILE)
        test_path = os.path.join(data_dir, TEST_FILE)

        def build():
            for p, what in ((train_path, "SVHN training set"), (test_path, "SVHN test set")):
                if not os.path.exists(p):
                    raise missing_file(p, what, GET_IT)
            arrays = build_features(train_path, test_path, seed, color, n_components,
                                    n_train, n_valid)
            return arrays, {}

        d = 3072 if color == "rgb" else 1024
        meta = {"dataset": "svhn_pca", "version": CACHE_VERSION, "seed": seed, "color": color,
                "n_components": n_components, "n_train": n_train, "n_valid": n_valid}
        arrays, _ = load_or_build(path, _expected(n_train, n_valid, n_components, d), meta,
                                  build, rebuild=rebuild,
                                  sources={"train_32x32.mat": train_path,
                                           "test_32x32.mat": test_path})
        parts = tuple(arrays[k] for k in ("train_x", "train_y", "valid_x", "valid_y",
                                          "test_x", "test_y"))
        extras = {"train_index": arrays["train_index"], "valid_index": arrays["valid_index"]}
        source = path
    return Dataset("svhn_pca", *parts, likelihood="gaussian", image_shape=None, source=source,
                   extras=extras)
