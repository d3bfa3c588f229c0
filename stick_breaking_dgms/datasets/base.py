"""What every loader returns, and the one error type loaders raise."""
import gzip
import os
import pickle
from dataclasses import dataclass, field

import numpy as np


class DatasetError(Exception):
    """A data file is missing, unreadable or malformed; the message names the file and the problem."""


@dataclass
class Dataset:
    """A data set split into train / validation / test.

    ``*_x`` are float arrays (N, D); ``*_y`` integer labels (N,) or None.
    ``likelihood`` is "bernoulli" (values in [0, 1]) or "gaussian" (real-valued).
    ``image_shape`` (height, width) is set for image data, for figures.
    ``extras`` holds per-split side information, e.g. ``"train_rotated"``.
    ``likelihood_inferred`` is True when ``likelihood`` was guessed from the values
    (see :func:`infer_likelihood`) rather than fixed by the data set or the user.
    """

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    valid_x: np.ndarray
    valid_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    likelihood: str
    image_shape: tuple = None
    source: str = ""
    extras: dict = field(default_factory=dict)
    likelihood_inferred: bool = False

    @property
    def n_in(self):
        return self.train_x.shape[1]

    @property
    def n_classes(self):
        """Number of classes (the largest label + 1 over the splits), or None without labels."""
        labels = [y for y in (self.train_y, self.valid_y, self.test_y) if y is not None and len(y)]
        return int(max(int(y.max()) for y in labels)) + 1 if labels else None

    @property
    def sizes(self):
        return tuple(len(x) for x in (self.train_x, self.valid_x, self.test_x))

    def split(self, name):
        """(x, y) of ``"train"``, ``"valid"`` or ``"test"``."""
        if name not in ("train", "valid", "test"):
            raise ValueError(f"split must be 'train', 'valid' or 'test', got {name!r}")
        return getattr(self, name + "_x"), getattr(self, name + "_y")

    def astype(self, dtype):
        """The same data set with inputs cast to ``dtype`` (labels unchanged)."""
        kw = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for s in ("train", "valid", "test"):
            kw[s + "_x"] = np.ascontiguousarray(kw[s + "_x"], dtype=dtype)
        return Dataset(**kw)

    def describe(self):
        n_train, n_valid, n_test = self.sizes
        return (f"{self.name}: {n_train:,} train | {n_valid:,} valid | {n_test:,} test, "
                f"{self.n_in} dimensions, {self.likelihood} likelihood"
                f"{' (inferred)' if self.likelihood_inferred else ''}")

    def with_likelihood(self, likelihood):
        """The same data set with ``likelihood`` forced (checked against the values)."""
        check_likelihood(self.source or self.name, likelihood,
                         [self.train_x, self.valid_x, self.test_x])
        kw = {k: getattr(self, k) for k in self.__dataclass_fields__}
        kw.update(likelihood=likelihood, likelihood_inferred=False)
        return Dataset(**kw)


def take_rows(blocks, idx):
    """Rows ``idx`` of the concatenation of the arrays ``blocks``, without concatenating them."""
    out = np.empty((len(idx),) + blocks[0].shape[1:], dtype=np.result_type(*blocks))
    start = 0
    for block in blocks:
        inside = (idx >= start) & (idx < start + len(block))
        out[inside] = block[idx[inside] - start]
        start += len(block)
    return out


def seeded_split(x, y, sizes, seed):
    """Shuffle (x, y) together with ``seed`` and cut them into consecutive parts of ``sizes``.

    ``x`` and ``y`` may be arrays or lists of arrays standing for their concatenation
    (which saves copying a large data set twice).
    """
    xs = list(x) if isinstance(x, (list, tuple)) else [x]
    ys = None if y is None else (list(y) if isinstance(y, (list, tuple)) else [y])
    n_total = sum(len(b) for b in xs)
    if sum(sizes) > n_total:
        raise ValueError(f"split sizes {sizes} need {sum(sizes)} examples, have {n_total}")
    order = np.random.default_rng(seed).permutation(n_total)
    parts, start = [], 0
    for n in sizes:
        idx = order[start:start + n]
        parts.append((take_rows(xs, idx), None if ys is None else take_rows(ys, idx)))
        start += n
    return parts


def grouped_split_indices(groups, sizes, seed):
    """Indices of a seeded split into parts of ``sizes`` that keeps every group in one part.

    ``groups`` (N,) labels each example with its group (e.g. the MNIST digit an MNIST+rot
    example was made from: its upright and its rotated copy). The groups are shuffled with
    ``seed`` and dealt to the parts in turn (test, then validation, then training fill up
    in the order ``sizes`` gives them, last part first); a group too large for the room
    left in a part waits for the next part, so the sizes are met exactly as long as there
    are enough small groups. Each part's examples are then shuffled with the same seed.
    Returns a list of index arrays, one per part.
    """
    groups = np.asarray(groups)
    if sum(sizes) != len(groups):
        raise ValueError(f"split sizes {sizes} add up to {sum(sizes)}, have {len(groups)} "
                         f"examples")
    rng = np.random.default_rng(seed)
    uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    order = rng.permutation(len(uniq))
    parts = [[] for _ in sizes]
    room = list(sizes)
    pending = list(order)
    for p in reversed(range(len(sizes))):  # the smaller validation / test parts first
        waiting = []
        for i, g in enumerate(pending):
            if room[p] == 0:
                waiting.extend(pending[i:])
                break
            if counts[g] <= room[p]:
                parts[p].append(g)
                room[p] -= counts[g]
            else:
                waiting.append(g)
        pending = waiting
        if room[p]:
            raise ValueError(f"cannot fill a part of {sizes[p]} examples with whole groups")
    out = []
    for chosen in parts:
        idx = np.concatenate([members[g] for g in chosen]) if chosen else np.zeros(0, int)
        out.append(rng.permutation(idx))
    return out


def check_array(path, what, arr, ndim=None, shape=None, kinds="f", finite=True, value_range=None):
    """Raise :class:`DatasetError` naming ``path`` unless ``arr`` is as expected."""
    if not isinstance(arr, np.ndarray):
        raise DatasetError(f"{path}: {what} is a {type(arr).__name__}, expected a NumPy array")
    if arr.dtype.kind not in kinds:
        raise DatasetError(f"{path}: {what} has dtype {arr.dtype}, expected kind {kinds!r}")
    if ndim is not None and arr.ndim != ndim:
        raise DatasetError(f"{path}: {what} has shape {arr.shape}, expected {ndim} dimensions")
    if shape is not None:
        for i, (got, want) in enumerate(zip(arr.shape, shape)):
            if want is not None and got != want:
                raise DatasetError(f"{path}: {what} has shape {arr.shape}, expected {shape} "
                                   f"(None = any)")
    if finite and arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise DatasetError(f"{path}: {what} contains NaN or infinite values")
    if value_range is not None and arr.size:
        lo, hi = value_range
        amin, amax = arr.min(), arr.max()
        if amin < lo or amax > hi:
            raise DatasetError(f"{path}: {what} has values in [{amin}, {amax}], "
                               f"expected values in [{lo}, {hi}]")
    return arr


LIKELIHOODS = ("bernoulli", "gaussian")


def _in_unit_interval(arrays):
    return all(a.size == 0 or (a.min() >= 0 and a.max() <= 1) for a in arrays)


def infer_likelihood(arrays):
    """"bernoulli" when every value of ``arrays`` lies in [0, 1], else "gaussian"."""
    return "bernoulli" if _in_unit_interval(arrays) else "gaussian"


def check_likelihood(path, likelihood, arrays):
    """Raise :class:`DatasetError` unless ``likelihood`` is known and fits ``arrays``.

    The Bernoulli likelihood -sum[x log p + (1 - x) log(1 - p)] needs x in [0, 1].
    """
    if likelihood not in LIKELIHOODS:
        raise DatasetError(f"{path}: unknown likelihood {likelihood!r}, expected one of "
                           f"{', '.join(LIKELIHOODS)} (or None to infer it)")
    if likelihood == "bernoulli" and not _in_unit_interval(arrays):
        lo = min(float(a.min()) for a in arrays if a.size)
        hi = max(float(a.max()) for a in arrays if a.size)
        raise DatasetError(f"{path}: bernoulli likelihood needs values in [0, 1], the data "
                           f"span [{lo:g}, {hi:g}]; use the gaussian likelihood or rescale")


def split_sizes(n, fractions):
    """Cut ``n`` examples into parts of ``fractions`` (sum 1); the last part takes the rest."""
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, "
                         f"got {fractions}")
    first = [int(round(n * f)) for f in fractions[:2]]
    return (first[0], first[1], n - sum(first))


def missing_file(path, what, where_to_get):
    """The :class:`DatasetError` for a file that is not there: which file, where, how to get it."""
    return DatasetError(f"{what} not found: expected the file {os.path.abspath(path)}. "
                        f"{where_to_get}")


# The only globals a pickle of NumPy arrays, tuples, lists and dicts needs (protocols 0-5,
# Python 2 pickles included). Anything else -- os.system, eval, any class -- is refused.
_PICKLE_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # how protocol 2 stores bytes written by Python 3: str -> bytes
}


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds NumPy arrays and containers and nothing else."""

    def find_class(self, module, name):
        if (module, name) in _PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refused to load {module}.{name}: data pickles may only hold NumPy arrays, "
            f"numbers, strings, tuples, lists and dicts")


def load_array_pickle(f):
    """Unpickle NumPy arrays and containers from the binary file ``f`` (Python 2 pickles
    read as latin-1); a pickle that names any other global raises ``UnpicklingError``."""
    return _ArrayUnpickler(f, encoding="latin1").load()


def read_pickle(path):
    """Unpickle ``path`` (gzip-compressed when it ends in ``.gz``), Python-2 pickles included.

    Only NumPy arrays, numbers, strings and containers are built (:func:`load_array_pickle`),
    so a hostile pickle cannot run code. Any failure -- missing, truncated, random bytes, a
    refused global -- becomes a :class:`DatasetError` naming the file.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            return load_array_pickle(f)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except Exception as e:  # pickle raises almost anything on bad bytes
        raise DatasetError(f"{path}: not a readable {'gzipped ' if opener is gzip.open else ''}"
                           f"pickle (truncated, corrupted or not plain data?): "
                           f"{type(e).__name__}: {e}") from None


def read_mat(path, names):
    """The variables ``names`` of the MATLAB file ``path`` (v4-v7; not v7.3 / HDF5).

    Raises :class:`DatasetError` naming the file when it is unreadable or lacks a variable.
    """
    import scipy.io  # imported here: only the .mat data sets need SciPy

    try:
        data = scipy.io.loadmat(path, variable_names=list(names))
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except NotImplementedError as e:  # scipy's answer to a v7.3 (HDF5) file
        raise DatasetError(f"{path}: MATLAB v7.3 files are not supported, save it with "
                           f"-v7 or earlier ({e})") from None
    except Exception as e:  # scipy.io raises ValueError, TypeError, OSError, ... on bad bytes
        raise DatasetError(f"{path}: not a readable MATLAB .mat file (truncated or "
                           f"corrupted?): {type(e).__name__}: {e}") from None
    missing = [n for n in names if n not in data]
    if missing:
        found = sorted(k for k in data if not k.startswith("__"))
        raise DatasetError(f"{path}: no variable {', '.join(map(repr, missing))} in the file "
                           f"(found {found}), expected {', '.join(map(repr, names))}")
    return {n: data[n] for n in names}


def to_float32(path, what, arr):
    """``arr`` as C-contiguous float32, refusing values too large for it (they would be inf)."""
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(arr, dtype=np.float32)
    if out.size and not np.all(np.isfinite(out)):
        raise DatasetError(f"{path}: {what} has values beyond the float32 range (|x| > "
                           f"{np.finfo(np.float32).max:.3g}), expected finite float32 values")
    return out


def describe_object(obj):
    """"a dict with keys [...]" or the type name: what an unexpected pickle held, for messages."""
    if isinstance(obj, dict):
        return f"a dict with keys {sorted(map(str, obj))}"
    return f"a {type(obj).__name__}"
