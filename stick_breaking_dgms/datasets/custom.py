"""Your own data from a ``.npz`` or HDF5 (``.h5`` / ``.hdf5``) file.

The file holds, at its top level, either

* ``x``: N x D numbers (or N x H x W images, flattened, ``image_shape`` set to (H, W)),
  optional ``y``: N integer labels in 0..C-1, and optional ``split``: N integers, 0 = train,
  1 = validation, 2 = test. Without ``split`` the rows are shuffled with the seed and cut
  80% / 10% / 10% (``fractions``); or
* predefined splits ``train_x``, ``valid_x``, ``test_x`` (same D), with labels
  ``train_y``, ``valid_y``, ``test_y`` for all three or for none.

A relative path is looked for in the working directory, then in ``data_dir``.
Other arrays in the file are ignored. Inputs must be finite; they are cast to float32.
The likelihood is "bernoulli" or "gaussian" when given; when not, it is inferred --
Bernoulli when every value is in [0, 1], else Gaussian -- and the returned
``Dataset.likelihood_inferred`` is True (``describe()`` says "(inferred)"). Forcing
"bernoulli" on values outside [0, 1] is an error. Nothing is cached.

Example::

    np.savez("mydata.npz", x=images.reshape(len(images), -1) / 255.0, y=labels)
    python run_stickBreaking_VAE_experiments.py --dataset mydata.npz
"""
import os

import numpy as np

from .base import (Dataset, DatasetError, check_array, check_likelihood, infer_likelihood,
                   seeded_split, split_sizes, to_float32)

SUFFIXES = (".npz", ".h5", ".hdf5")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
PARTS = ("train", "valid", "test")
NAMES = ("x", "y", "split") + tuple(f"{p}_{v}" for p in PARTS for v in "xy")
# An HDF5 dataset may declare far more data than its file holds (unwritten chunks read as
# the fill value); one declaring more than this is refused before it is read.
# An array may expand to at most this many times its file's size (or 1 GiB): a crafted
# .npz or HDF5 file must not make us fill the memory.
H5_RATIO_LIMIT, H5_MIN_LIMIT = 1000, 1 << 30


def looks_like_path(name):
    """True when ``name`` reads as a file path: a data-file suffix or a directory part."""
    name = os.fspath(name)
    seps = [s for s in (os.sep, os.altsep) if s]
    return name.lower().endswith(SUFFIXES) or any(s in name for s in seps)


def read_arrays(path):
    """The arrays of :data:`NAMES` present at the top level of ``path`` (.npz or HDF5).

    Every read error -- truncation, random bytes, object arrays, non-array entries --
    becomes a :class:`DatasetError` naming the file.
    """
    lower = path.lower()
    if not lower.endswith(SUFFIXES):
        raise DatasetError(f"{path}: unsupported file type, expected one of "
                           f"{', '.join(SUFFIXES)}")
    if not os.path.isfile(path):
        raise DatasetError(f"custom data set not found: expected the file "
                           f"{os.path.abspath(path)} (a {', '.join(SUFFIXES)} file with an "
                           f"array 'x', or 'train_x' / 'valid_x' / 'test_x'; see "
                           f"docs/user/datasets.md, section 'Your own data')")
    limit = max(H5_MIN_LIMIT, H5_RATIO_LIMIT * os.path.getsize(path))
    try:
        if lower.endswith(".npz"):
            _check_npz_sizes(path, limit)
            with np.load(path, allow_pickle=False) as npz:
                if not hasattr(npz, "files"):
                    raise ValueError("a single .npy array, not an .npz archive")
                found = list(npz.files)
                arrays = {k: npz[k] for k in NAMES if k in npz.files}
        else:
            import h5py  # imported here: only HDF5 files need it

            with h5py.File(path, "r") as f:
                found = list(f.keys())
                arrays = {}
                for k in NAMES:
                    if k in f:
                        if not isinstance(f[k], h5py.Dataset):
                            raise ValueError(f"{k!r} is a {type(f[k]).__name__}, "
                                             f"expected a dataset (array)")
                        nbytes = int(np.prod(f[k].shape, dtype=np.float64)) \
                            * f[k].dtype.itemsize
                        if nbytes > limit:  # a crafted file must not make us fill the RAM
                            raise ValueError(f"{k!r} declares shape {f[k].shape} "
                                             f"({nbytes:,} bytes), implausible for a "
                                             f"{os.path.getsize(path):,}-byte file")
                        _check_written(f[k], k, nbytes)
                        arrays[k] = np.asarray(f[k][()])
    except Exception as e:  # zipfile, zlib, numpy, h5py all raise their own types
        kind = "npz archive" if lower.endswith(".npz") else "HDF5 file"
        raise DatasetError(f"{path}: not a readable {kind} (truncated or corrupted?): "
                           f"{type(e).__name__}: {e}") from None
    return arrays, found


def _check_npz_sizes(path, limit):
    """Refuse an .npz member that would expand past ``limit`` bytes (a decompression bomb)."""
    import zipfile
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if name in NAMES and info.file_size > limit:
                raise ValueError(f"{name!r} expands to {info.file_size:,} bytes, implausible "
                                 f"for a {os.path.getsize(path):,}-byte file")


def _check_written(dataset, name, nbytes):
    """Refuse an HDF5 dataset whose storage was declared but not (or only partly) written:
    HDF5 would read the missing part as its fill value, zeros."""
    if nbytes == 0:
        return
    if dataset.chunks is None:
        written = dataset.id.get_storage_size()
        if written < nbytes:
            raise ValueError(f"{name!r} declares shape {dataset.shape} ({nbytes:,} bytes) "
                             f"but only {written:,} bytes were written")
        return
    expected = int(np.prod([-(-n // c) for n, c in zip(dataset.shape, dataset.chunks)]))
    written = dataset.id.get_num_chunks()
    if written < expected:
        raise ValueError(f"{name!r} declares shape {dataset.shape} but only {written:,} of "
                         f"its {expected:,} chunks were written")


def _inputs(path, name, x):
    check_array(path, name, x, kinds="fiub")
    if x.ndim not in (2, 3) or len(x) == 0 or x[0].size == 0:
        raise DatasetError(f"{path}: {name} has shape {x.shape}, expected (N, D) rows or "
                           f"(N, H, W) images with N, D > 0")
    return to_float32(path, name, x.reshape(len(x), -1))


def _labels(path, name, y, n):
    check_array(path, name, y, kinds="iu")
    if y.shape not in ((n,), (n, 1)):
        raise DatasetError(f"{path}: {name} has shape {y.shape}, expected ({n},), one label "
                           f"per row")
    y = y.reshape(-1)
    if n and y.min() < 0:
        raise DatasetError(f"{path}: {name} has label {y.min()}, expected labels 0..C-1")
    if n and y.max() > np.iinfo(np.int32).max:
        raise DatasetError(f"{path}: {name} has label {y.max()}, expected labels 0..C-1")
    return y.astype(np.int32)


def load_custom(path, seed=1234, likelihood=None, fractions=SPLIT_FRACTIONS, data_dir=None):
    """Load your own data set from ``path`` (see the module docstring for the layout).

    Parameters
    ----------
    path : str
        A ``.npz``, ``.h5`` or ``.hdf5`` file.
    seed : int
        Seed of the shuffle when the file has no predefined split.
    likelihood : {None, "bernoulli", "gaussian"}
        None: inferred from the values.
    fractions : (float, float, float)
        Train / valid / test fractions when the file has no predefined split.
    data_dir : str, optional
        A relative ``path`` that does not exist from the working directory is looked for
        here too (``--dataset mine.npz --data-dir datasets`` finds ``datasets/mine.npz``).
    """
    path = os.fspath(path)
    if data_dir and not os.path.isabs(path) and not os.path.exists(path) \
            and os.path.isfile(os.path.join(data_dir, path)):
        path = os.path.join(data_dir, path)
    arrays, found = read_arrays(path)
    predefined = sorted(k for k in arrays if k not in ("x", "y", "split"))
    if "x" in arrays and predefined:
        raise DatasetError(f"{path}: has both 'x' and {predefined}; expected either 'x' "
                           f"(+ 'y', 'split') or train_x / valid_x / test_x")
    image_shape = None
    if "x" in arrays:
        raw = arrays["x"]
        x = _inputs(path, "x", raw)
        image_shape = tuple(raw.shape[1:]) if raw.ndim == 3 else None
        y = _labels(path, "y", arrays["y"], len(x)) if "y" in arrays else None
        if "split" in arrays:
            split = arrays["split"]
            check_array(path, "split", split, kinds="iu", value_range=(0, 2))
            if split.shape != (len(x),):
                raise DatasetError(f"{path}: split has shape {split.shape}, expected "
                                   f"({len(x)},), one of 0 / 1 / 2 per row of x")
            parts = [(x[split == i], None if y is None else y[split == i]) for i in range(3)]
        else:
            sizes = split_sizes(len(x), fractions)
            parts = seeded_split(x, y, sizes, seed)
    elif any(k.endswith("_x") for k in predefined):
        missing = [f"{p}_x" for p in PARTS if f"{p}_x" not in arrays]
        if missing:
            raise DatasetError(f"{path}: predefined splits need train_x, valid_x and test_x; "
                               f"{', '.join(missing)} missing")
        with_y = [p for p in PARTS if f"{p}_y" in arrays]
        if with_y and len(with_y) != 3:
            raise DatasetError(f"{path}: labels for {', '.join(with_y)} only; expected "
                               f"train_y, valid_y and test_y, or no labels")
        parts, dims = [], set()
        for p in PARTS:
            raw = arrays[f"{p}_x"]
            x = _inputs(path, f"{p}_x", raw)
            dims.add(raw.shape[1:])
            if raw.ndim == 3:
                image_shape = tuple(raw.shape[1:])
            y = _labels(path, f"{p}_y", arrays[f"{p}_y"], len(x)) if with_y else None
            parts.append((x, y))
        if len(dims) != 1:
            raise DatasetError(f"{path}: train_x, valid_x and test_x have different "
                               f"shapes per example {sorted(map(str, dims))}, expected one")
    else:
        raise DatasetError(f"{path}: no array 'x' and no train_x / valid_x / test_x (found "
                           f"{found}); expected 'x' (N x D) with optional 'y' and 'split', or "
                           f"predefined splits")
    for name, (px, _) in zip(PARTS, parts):
        if len(px) == 0:
            raise DatasetError(f"{path}: the {name} split is empty, expected at least one row "
                               f"in each of train / valid / test")
    xs = [px for px, _ in parts]
    if likelihood is None:
        likelihood, inferred = infer_likelihood(xs), True
    else:
        check_likelihood(path, likelihood, xs)
        inferred = False
    (trx, try_), (vax, vay), (tex, tey) = parts
    name = os.path.splitext(os.path.basename(path))[0]
    return Dataset(name, trx, try_, vax, vay, tex, tey, likelihood=likelihood,
                   image_shape=image_shape, source=os.path.abspath(path),
                   likelihood_inferred=inferred)
